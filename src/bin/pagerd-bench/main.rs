//! `pagerd-bench`: drives the real `pagerd` release binary over loopback and
//! prints what it costs to page a human.
//!
//! The bench starts `target/release/pagerd run` as a child process (found
//! next to this executable, or `--pagerd PATH`) with its own config and a
//! fresh SQLite store per phase (WAL, synced at every commit: every accepted
//! webhook is fsynced), PagerDuty pacing and all polling off, and only
//! PagerDuty and Zendesk configured. It plays both vendors itself: it sends
//! Zendesk webhooks signed with `pagerd::fakes::sign::zendesk` from a
//! keep-alive `reqwest` client, and it answers pagerd's PagerDuty calls with
//! a lean in-process recorder that notes each request's arrival
//! ([`recorder`] says why not the test fake). It measures:
//!
//! 1. **latency**: webhook sent → PagerDuty Events request received, for
//!    sequential tickets (each waits for its page, then `--gap-ms`), plus
//!    the webhook's own answer time (the durable commit);
//! 2. **burst**: distinct emergency tickets at `--concurrency` in flight:
//!    tickets/s accepted, time until every page arrived, lost and
//!    duplicated pages (distinct `dedup_key`s received vs sent; triggers
//!    received beyond the first per key). Lost or duplicated pages fail the
//!    run;
//! 3. **timers**: incidents whose ack deadlines are spread over
//!    `--timer-window`, or over `--timers / --timer-rate` seconds when that
//!    is longer (at most 1 000 due a second by default: 100 000 timers take
//!    100 s), tickets paced over the window, `ack_timeout` =
//!    window + max(window / 2, 1 s), so all are armed before the first is
//!    due; lateness of
//!    each escalation `PUT /incidents/{id}` against the stored deadline
//!    (`paged_at + ack_timeout`, `paged_at` read from the store beside the
//!    daemon: the moment PagerDuty took the page, when the acknowledgement
//!    clock starts; pagerd's wall clock, whole milliseconds);
//! 4. **recovery**: deadlines armed, outbox drained, SIGKILL, deadlines
//!    allowed to pass, restart: spawn → last overdue escalation received;
//! 5. **memory**: VmRSS / VmHWM from `/proc` idle, after the burst, and with
//!    a store of `--stored` incidents (half resolved) that the bench builds
//!    *before* starting the daemon through the library's own
//!    `SqliteStore`/`Store::apply` (see [`seed`]), then after a burst on it;
//! 6. **flood**: a store of `--stored` incidents (1 000 000 by default here;
//!    all but 50 000 resolved 200 days ago, those open with deadlines
//!    armed), seeded through the library and copied in SQL ([`bulk`]); start to
//!    `/readyz`, RSS, sequential webhook → page latency quiet and while 64
//!    clients loop on `/readyz` and `/metrics` (and those endpoints' own
//!    latency), against a daemon on a fresh store in alternating rounds;
//!    with `store.retention = "off"` and then `"90d"` until the leader's
//!    first retention pass has deleted the old incidents; store sizes
//!    ([`flood`]);
//! 7. **postgres** (with `--postgres-url`): latency and burst on the
//!    PostgreSQL store beside SQLite, and the failover time after SIGKILL of
//!    the leader of two daemons on one database ([`pg`]);
//! 8. **peer** (`--peer alertmanager`): the same latency and burst workloads
//!    against Prometheus Alertmanager (alerts posted to `/api/v2/alerts`,
//!    one group per alert, `group_wait: 0s`, a webhook receiver in the
//!    bench), alternating with pagerd round by round so machine noise hits
//!    both; ratios are pagerd / peer. Alertmanager keeps alerts in memory
//!    and does not fsync per alert, pagerd does: read the ratio with that in
//!    mind.
//!
//! `--smoke` shrinks everything to run in seconds (CI runs it); `--json FILE`
//! writes every number. Targets are the issue's; a missed one is reported,
//! not failed. Results and where the time goes: `docs/benchmark.md`.

mod bulk;
mod flood;
mod load;
mod pg;
mod phases;
mod procs;
mod recorder;
mod report;
mod retention;
mod seed;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use serde_json::json;

use phases::{Ctx, Settings};

/// Benchmarks the real pagerd binary over loopback.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Sequential tickets for the latency phase.
    #[arg(long, default_value_t = 1000)]
    tickets: usize,
    /// Pause after each sequential ticket's page (ms), so each meets an idle daemon.
    #[arg(long, default_value_t = 5)]
    gap_ms: u64,
    /// Tickets for the latency phase's idle part: one at a time, pagerd and
    /// the peer taking turns, 600 ms apart (longer than two of the SQLite
    /// store's 250 ms checkpoint rounds, as when tickets come minutes
    /// apart); 0 skips it.
    #[arg(long, default_value_t = 40)]
    idle_tickets: usize,
    /// Tickets per burst (default 5 000, 50 000 with --large).
    #[arg(long)]
    burst: Option<usize>,
    /// A 50 000-ticket burst.
    #[arg(long)]
    large: bool,
    /// Requests in flight during a burst.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Incidents with armed deadlines in the timer phase.
    #[arg(long, default_value_t = 10_000)]
    timers: usize,
    /// Most deadlines coming due per second in the timer phase: the window
    /// grows to `--timers / --timer-rate` seconds when that is longer.
    #[arg(long, default_value_t = 1000.0)]
    timer_rate: f64,
    /// Window the timer phase spreads its deadlines over.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timer_window: Duration,
    /// Overdue deadlines at the restart of the recovery phase.
    #[arg(long, default_value_t = 1000)]
    overdue: usize,
    /// Incidents in the store of the memory phase (default 100 000) and of
    /// the flood phase (default 1 000 000).
    #[arg(long)]
    stored: Option<usize>,
    /// Open incidents, each with an armed deadline, in the flood phase's store.
    #[arg(long, default_value_t = 50_000)]
    armed: usize,
    /// Clients looping on /readyz and /metrics in the flood phase.
    #[arg(long, default_value_t = 64)]
    flood_clients: usize,
    /// Sequential tickets per daemon, quiet and flooded, in the flood phase.
    #[arg(long, default_value_t = 1000)]
    flood_tickets: usize,
    /// Do not wait for the leader's retention pass in the flood phase (it
    /// starts 5 minutes after the daemon; 1 000 000 incidents take minutes).
    #[arg(long)]
    no_retention_pass: bool,
    /// A PostgreSQL database for the postgres phase (the bench creates and
    /// drops schemas `pagerd_t_…` in it), e.g.
    /// postgres://postgres@127.0.0.1:5432/pagerd_bench.
    #[arg(long, env = "PAGERD_BENCH_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// store.lease_ttl of the postgres phase (lease_renew is a fifth of it);
    /// default: the daemon's (10s, renewed every 2s).
    #[arg(long, value_parser = humantime::parse_duration)]
    lease_ttl: Option<Duration>,
    /// Leader kills in the failover measurement.
    #[arg(long, default_value_t = 3)]
    failover_rounds: usize,
    /// Tiny sizes of everything (CI smoke test).
    #[arg(long)]
    smoke: bool,
    /// Measure a peer side by side.
    #[arg(long, value_enum)]
    peer: Option<Peer>,
    /// The Alertmanager binary (default: prometheus-alertmanager on PATH).
    #[arg(long)]
    alertmanager: Option<PathBuf>,
    /// Rounds in which pagerd and the peer alternate (default 4 with a peer, else 1).
    #[arg(long)]
    rounds: Option<usize>,
    /// The pagerd binary (default: `pagerd` next to this executable).
    #[arg(long)]
    pagerd: Option<PathBuf>,
    /// Write every result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run only these phases.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Phase>,
    /// Keep the scratch directory (configs, stores, logs).
    #[arg(long)]
    keep: bool,
    /// Only measure retention on SQLite (no daemon): seed this many old
    /// resolved incidents, prune them, report size and batch times.
    #[arg(long)]
    retention: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Peer {
    Alertmanager,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Phase {
    Latency,
    Burst,
    Timers,
    Recovery,
    Memory,
    Flood,
    Postgres,
}

impl Args {
    fn settings(&self) -> Settings {
        let burst = self
            .burst
            .unwrap_or(if self.large { 50_000 } else { 5_000 });
        let rounds = self
            .rounds
            .unwrap_or(if self.peer.is_some() { 4 } else { 1 });
        let s = Settings {
            tickets: self.tickets,
            gap: Duration::from_millis(self.gap_ms),
            idle_tickets: self.idle_tickets,
            burst,
            concurrency: self.concurrency,
            timers: self.timers,
            timer_rate: self.timer_rate,
            timer_window: self.timer_window,
            overdue: self.overdue,
            recovery_ack: Duration::from_secs(5),
            stored: self.stored.unwrap_or(100_000),
            stored_burst: 1000,
            rounds,
            flood_stored: self.stored.unwrap_or(1_000_000),
            flood_armed: self.armed,
            flood_tickets: self.flood_tickets,
            flood_clients: self.flood_clients,
            retention_pass: !self.no_retention_pass,
            postgres_url: self.postgres_url.clone(),
            lease: self.lease_ttl.map(|ttl| (ttl / 5, ttl)),
            failover_rounds: self.failover_rounds,
        };
        if !self.smoke {
            return s;
        }
        Settings {
            tickets: 50,
            idle_tickets: self.idle_tickets.min(4),
            burst: 200,
            timers: 200,
            timer_window: Duration::from_secs(1),
            overdue: 100,
            recovery_ack: Duration::from_secs(3),
            stored: 200,
            stored_burst: 50,
            rounds: rounds.min(2),
            flood_stored: 600,
            flood_armed: 100,
            flood_tickets: 20,
            flood_clients: 8,
            // The first pass starts 5 minutes after the daemon: not in CI.
            retention_pass: false,
            lease: Some(
                s.lease
                    .unwrap_or((Duration::from_millis(200), Duration::from_secs(1))),
            ),
            failover_rounds: 1,
            ..s
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pagerd-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pagerd-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(n) = args.retention {
        let scratch = procs::Scratch::new(args.keep)?;
        let figures = retention::measure(&scratch.dir("retention")?, n).await?;
        println!("{}", serde_json::to_string_pretty(&figures)?);
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&figures)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    let settings = args.settings();
    let pagerd = procs::find_pagerd(args.pagerd.as_deref())?;
    let alertmanager = match args.peer {
        None => None,
        Some(Peer::Alertmanager) => match procs::find_alertmanager(args.alertmanager.as_deref()) {
            Some(p) => Some(p),
            None => {
                eprintln!(
                    "pagerd-bench: Alertmanager is not installed; skipping the peer \
                     (Debian/Ubuntu: `apt-get install -y prometheus-alertmanager`, or pass --alertmanager PATH)"
                );
                None
            }
        },
    };
    let peer_version = alertmanager.as_ref().map(|p| version_of(p));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let rec = recorder::Recorder::start().await?;
    let scratch = procs::Scratch::new(args.keep)?;
    let ctx = Ctx::new(
        settings.clone(),
        http,
        rec,
        scratch,
        pagerd.clone(),
        alertmanager.clone(),
    );
    let want = |p: Phase| args.only.is_empty() || args.only.contains(&p);

    eprintln!(
        "pagerd-bench: {} ({} cores){}",
        pagerd.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        peer_version
            .as_ref()
            .map(|v| format!(", peer: {v}"))
            .unwrap_or_default()
    );
    let mut results = json!({
        "pagerd": pagerd.display().to_string(),
        "peer": peer_version,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "settings": format!("{settings:?}"),
        "loadavg_before": loadavg(),
    });
    let phases: [(Phase, &str); 7] = [
        (Phase::Latency, "latency"),
        (Phase::Burst, "burst"),
        (Phase::Timers, "timers"),
        (Phase::Recovery, "recovery"),
        (Phase::Memory, "memory"),
        (Phase::Flood, "flood"),
        (Phase::Postgres, "postgres"),
    ];
    for (phase, name) in phases {
        if !want(phase) {
            continue;
        }
        eprintln!("pagerd-bench: {name}…");
        let t = Instant::now();
        let load_before = loadavg();
        let v = match phase {
            Phase::Latency => ctx.latency().await,
            Phase::Burst => ctx.burst().await,
            Phase::Timers => ctx.timers().await,
            Phase::Recovery => ctx.recovery().await,
            Phase::Memory => ctx.stored().await,
            Phase::Flood => ctx.flood().await,
            Phase::Postgres => ctx.postgres().await,
        }
        .with_context(|| format!("phase {name}"))?;
        eprintln!(
            "pagerd-bench: {name} done in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        results[name] = v;
        results["phase_s"][name] = json!(t.elapsed().as_secs_f64());
        results["phase_loadavg"][name] = json!({ "before": load_before, "after": loadavg() });
    }
    results["duplicated_pages_total"] = json!(ctx.rec.duplicates_total(recorder::Kind::Trigger));
    results["unexpected_requests"] = json!(ctx.rec.unexpected());
    results["other_pagerduty_events"] = json!(ctx.rec.other_events());
    results["took_s"] = json!(started.elapsed().as_secs_f64());
    results["loadavg_after"] = json!(loadavg());

    let peer_title = peer_version.as_ref().map(|_| "alertmanager".to_string());
    let table = summary::table(&results, peer_title);
    println!("{}", table.render());
    summary::print_notes(&results, &table);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&results)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("pagerd-bench: wrote {}", path.display());
    }
    let lost = lost_or_duplicated(&results);
    if lost > 0 {
        eprintln!(
            "pagerd-bench: FAILED: pages or escalations were lost or duplicated (see the table)"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `/proc/loadavg`'s 1-minute figure: how busy the machine was (other
/// processes included), for reading the numbers.
fn loadavg() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// `alertmanager --version`'s first line, or the path.
fn version_of(bin: &std::path::Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| bin.display().to_string())
}

/// Every lost or duplicated page and missing escalation the results count:
/// a run with any fails.
fn lost_or_duplicated(r: &serde_json::Value) -> u64 {
    const POINTERS: [&str; 13] = [
        "/burst/pagerd/lost",
        "/burst/pagerd/duplicated",
        "/memory/burst/lost",
        "/memory/burst/duplicated",
        "/timers/missing",
        "/timers/duplicated",
        "/recovery/missing",
        "/postgres/burst/postgres/lost",
        "/postgres/burst/postgres/duplicated",
        "/postgres/burst/sqlite/lost",
        "/postgres/burst/sqlite/duplicated",
        "/postgres/failover/missing",
        // Pages (PagerDuty triggers) received twice for one ticket in any
        // phase, the sequential ones included.
        "/duplicated_pages_total",
    ];
    POINTERS
        .iter()
        .filter_map(|p| r.pointer(p).and_then(serde_json::Value::as_u64))
        .sum()
}

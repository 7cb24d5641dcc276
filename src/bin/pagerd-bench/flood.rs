//! `flood`: pagerd on a store of `--stored` incidents (1 000 000 by default
//! for this phase), with and without retention, while 64 clients loop on
//! `/readyz` and `/metrics`.
//!
//! 1. **Seed** one SQLite store ([`bulk::seed`]: a template of 2 000 + 2 000
//!    incidents applied through the library, then copied in SQL): all but
//!    `armed` incidents opened, paged, solved and resolved about 200 days
//!    ago (every transaction applied at that past time), `armed` opened now
//!    with their ack deadline armed (`ack_timeout` 3 h, so none fires during
//!    the phase). Copy the file, checkpointed, for the retention-on daemon.
//! 2. **Retention off** (`store.retention = "off"`): spawn → `/readyz` 200
//!    with the file in the page cache (warm), then again after evicting the
//!    file from the page cache (`dd iflag=nocache count=0`: only this file,
//!    not the machine's cache). RSS idle; sequential webhook → page latency
//!    quiet and with the flood, in rounds alternating with a daemon on a
//!    fresh store (the reference: "empty store"); the endpoints' own
//!    latencies under the flood; RSS after; store size.
//! 3. **Retention on** (`"90d"`) on the copy: the same figures before the
//!    first retention pass; then a ticket every 100 ms until the leader's
//!    pass has finished (its log line `retention: removed old resolved
//!    incidents …`, at `info` for `pagerd::retention`: the first pass starts
//!    [`pagerd::retention::EVERY`] after the leader starts, and the daemon
//!    has no metric or status field for it), the latency of those tickets
//!    during the pass; then the same figures again and the store size after.
//!
//! The flood runs on its own thread and tokio runtime, so its 64 tasks do
//! not queue in front of the bench's webhook sender and PagerDuty recorder
//! (the OS shares the 2 cores between them, and with the daemon).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::bulk;
use crate::load::{self, Sample, Sender};
use crate::phases::{Ctx, mem_json, ms};
use crate::procs::{Pagerd, PagerdSetup, StoreOpts, Timers, free_port};
use crate::report::Pct;
use crate::retention;

/// How long ago the old incidents were opened and resolved: well past the
/// default `store.retention` of 90 days.
const AGE: Duration = Duration::from_secs(200 * 86_400);

/// The text of the daemon's log line at the end of a pass that removed
/// something (`src/retention.rs`).
const PASS_DONE: &str = "retention: removed old resolved incidents";

/// The text of its log line when a pass failed.
const PASS_FAILED: &str = "retention: pass failed";

/// Spacing of the tickets sent while waiting for the retention pass.
const TRICKLE: Duration = Duration::from_millis(100);

/// What the flood's clients saw.
#[derive(Default)]
pub struct Hits {
    readyz: Vec<f64>,
    metrics: Vec<f64>,
    errors: u64,
    secs: f64,
}

impl Hits {
    fn json(&self) -> Value {
        let n = (self.readyz.len() + self.metrics.len()) as f64;
        json!({
            "readyz_ms": Pct::of(self.readyz.clone()),
            "metrics_ms": Pct::of(self.metrics.clone()),
            "requests": n,
            "requests_per_s": n / self.secs.max(1e-9),
            "errors": self.errors,
        })
    }

    fn add(&mut self, other: Hits) {
        self.readyz.extend(other.readyz);
        self.metrics.extend(other.metrics);
        self.errors += other.errors;
        self.secs += other.secs;
    }
}

/// `clients` loops of `GET /readyz`, `GET /metrics` on `base`, on a thread
/// and runtime of their own, until [`Flood::stop`].
pub struct Flood {
    stop: CancellationToken,
    thread: std::thread::JoinHandle<anyhow::Result<Hits>>,
}

impl Flood {
    /// Starts the clients.
    pub fn start(base: &str, clients: usize) -> anyhow::Result<Flood> {
        let stop = CancellationToken::new();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .build()
            .context("cannot build the flood's HTTP client")?;
        let base = base.to_string();
        let token = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bench-flood".into())
            .spawn(move || -> anyhow::Result<Hits> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("cannot start the flood's runtime")?;
                rt.block_on(async move {
                    let started = Instant::now();
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..clients.max(1) {
                        let (http, base, token) = (http.clone(), base.clone(), token.clone());
                        set.spawn(async move { client(http, base, token).await });
                    }
                    let mut all = Hits::default();
                    while let Some(h) = set.join_next().await {
                        all.add(h.context("a flood client panicked")?);
                    }
                    all.secs = started.elapsed().as_secs_f64();
                    Ok(all)
                })
            })
            .context("cannot start the flood's thread")?;
        Ok(Flood { stop, thread })
    }

    /// Stops the clients; what they saw.
    pub async fn stop(self) -> anyhow::Result<Hits> {
        self.stop.cancel();
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .context("cannot join the flood's thread")?
            .map_err(|_| anyhow::anyhow!("the flood's thread panicked"))?
    }
}

async fn client(http: reqwest::Client, base: String, stop: CancellationToken) -> Hits {
    let (readyz, metrics) = (format!("{base}/readyz"), format!("{base}/metrics"));
    let mut hits = Hits::default();
    while !stop.is_cancelled() {
        for (url, is_ready) in [(&readyz, true), (&metrics, false)] {
            let t = Instant::now();
            let ok = match http.get(url).send().await {
                Ok(r) => {
                    let ok = r.status().is_success();
                    ok && r.bytes().await.is_ok()
                }
                Err(_) => false,
            };
            let took = t.elapsed().as_secs_f64() * 1e3;
            match (ok, is_ready) {
                (false, _) => hits.errors += 1,
                (true, true) => hits.readyz.push(took),
                (true, false) => hits.metrics.push(took),
            }
        }
    }
    hits
}

/// Sequential tickets to one daemon, quiet and flooded.
#[derive(Default)]
struct Side {
    quiet: Vec<Sample>,
    flooded: Vec<Sample>,
    hits: Hits,
}

fn samples_json(s: &[Sample]) -> Value {
    json!({
        "e2e_ms": Pct::of(s.iter().map(|x| x.e2e_ms).collect()),
        "webhook_answer_ms": Pct::of(s.iter().map(|x| x.ack_ms).collect()),
    })
}

impl Side {
    fn json(&self) -> Value {
        let mut flooded = samples_json(&self.flooded);
        if let (Some(f), Value::Object(h)) = (flooded.as_object_mut(), self.hits.json()) {
            f.extend(h);
        }
        json!({ "quiet": samples_json(&self.quiet), "flooded": flooded })
    }
}

/// `a / b` of a percentile of two samples' webhook → page latency.
fn ratio(a: &[Sample], b: &[Sample], p: fn(&Pct) -> f64) -> Option<f64> {
    let of = |s: &[Sample]| Pct::of(s.iter().map(|x| x.e2e_ms).collect());
    let (a, b) = (of(a)?, of(b)?);
    (p(&b) > 0.0).then(|| p(&a) / p(&b))
}

/// The big store's figures against the fresh store's, measured in the same
/// rounds.
fn compared(big: &Side, empty: &Side) -> Value {
    json!({
        "store": big.json(),
        "empty_store": empty.json(),
        "vs_empty": {
            "quiet_p50": ratio(&big.quiet, &empty.quiet, |p| p.p50),
            "quiet_p99": ratio(&big.quiet, &empty.quiet, |p| p.p99),
            "flooded_p50": ratio(&big.flooded, &empty.flooded, |p| p.p50),
            "flooded_p99": ratio(&big.flooded, &empty.flooded, |p| p.p99),
        },
    })
}

/// Database and WAL bytes on disk now (a daemon may be running on them).
fn on_disk(path: &Path) -> Value {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let (db, wal) = (len(path), len(&path.with_extension("db-wal")));
    json!({
        "db_bytes": db,
        "wal_bytes": wal,
        "wal_mb": wal as f64 / 1e6,
        "mb": (db + wal) as f64 / 1e6,
    })
}

/// Drops one file's pages from the page cache (written back first), so
/// the next start reads it from disk; only this file, not the machine's
/// cache. `dd iflag=nocache count=0` is GNU coreutils'.
fn evict(path: &Path) -> anyhow::Result<bool> {
    let mut all = true;
    for p in [path.to_path_buf(), path.with_extension("db-wal")] {
        if !p.exists() {
            continue;
        }
        let synced = std::process::Command::new("sync").arg(&p).status();
        let dropped = std::process::Command::new("dd")
            .arg(format!("if={}", p.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .status();
        all &= matches!((synced, dropped), (Ok(a), Ok(b)) if a.success() && b.success());
    }
    Ok(all)
}

/// Incidents in a store, and how many of them are open, read-only.
fn count(path: &Path) -> anyhow::Result<Value> {
    let conn = pagerd::store::sqlite::open_reader(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let n = |sql: &str| -> anyhow::Result<i64> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
    Ok(json!({
        "incidents": n("SELECT COUNT(*) FROM incidents")?,
        "open": n("SELECT COUNT(*) FROM incidents WHERE status != 'resolved'")?,
        "journal": n("SELECT COUNT(*) FROM journal")?,
        "outbox": n("SELECT COUNT(*) FROM outbox")?,
    }))
}

/// A number after `key=` in a log line.
fn field(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(&format!("{key}="))? + key.len() + 1..];
    let digits: String = rest
        .trim_start_matches('"')
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

impl Ctx {
    /// A daemon for this phase on `dir`'s store with `opts`, started and
    /// waited for until `/readyz` answers 200.
    async fn flood_daemon(
        &self,
        dir: &Path,
        opts: &StoreOpts,
        rust_log: Option<&str>,
    ) -> anyhow::Result<(Pagerd, PagerdSetup, Duration)> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let timers = Timers {
            ack_timeout: Duration::from_secs(3 * 3600),
            crisis_after: Duration::from_secs(6 * 3600),
        };
        let mut setup = PagerdSetup::write_with(dir, addr, self.rec_addr, &timers, opts)?;
        if let Some(l) = rust_log {
            setup.rust_log = l.to_string();
        }
        let (p, ready) = Pagerd::start_ready(&self.pagerd, &setup, addr, &self.http).await?;
        Ok((p, setup, ready))
    }

    /// One round of `n` sequential tickets to `p`, with the flood on it when
    /// `flood`.
    async fn flood_round(
        &self,
        p: &Pagerd,
        send: &Sender,
        n: usize,
        flood: bool,
        side: &mut Side,
    ) -> anyhow::Result<()> {
        let ids = self.ids(n);
        if !flood {
            side.quiet
                .extend(load::sequential(send, &self.rec, &ids, self.s.gap).await?);
            return Ok(());
        }
        let f = Flood::start(&p.url(), self.s.flood_clients)?;
        // Let every client connect before the clock starts.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let samples = load::sequential(send, &self.rec, &ids, self.s.gap).await;
        let hits = f.stop().await?;
        side.flooded.extend(samples?);
        side.hits.add(hits);
        Ok(())
    }

    /// Quiet rounds, then flooded rounds, alternating `big` and `empty`.
    async fn flood_compare(&self, big: &Pagerd, empty: &Pagerd) -> anyhow::Result<Value> {
        let (bs, es) = (self.pagerd_sender(big), self.pagerd_sender(empty));
        load::sequential(&bs, &self.rec, &self.ids(20), self.s.gap).await?;
        let rounds = self.s.rounds.max(2);
        let per = self.s.flood_tickets.div_ceil(rounds);
        let (mut b, mut e) = (Side::default(), Side::default());
        for flood in [false, true] {
            for r in 0..rounds {
                // Who goes first alternates, so neither always follows the other.
                if r % 2 == 0 {
                    self.flood_round(empty, &es, per, flood, &mut e).await?;
                    self.flood_round(big, &bs, per, flood, &mut b).await?;
                } else {
                    self.flood_round(big, &bs, per, flood, &mut b).await?;
                    self.flood_round(empty, &es, per, flood, &mut e).await?;
                }
            }
        }
        let mem = big.proc.mem()?;
        let mut out = compared(&b, &e);
        out["memory_after"] = mem_json(&mem);
        // The endpoints' own cost, one client at a time (the flooded
        // figures are mostly queueing: 64 requests in flight / throughput).
        let one = |path: &str| format!("{}{path}", big.url());
        out["store"]["endpoints_one_client"] = json!({
            "readyz_ms": Pct::of(load::floor(&self.http, &one("/readyz"), 200).await?),
            "metrics_ms": Pct::of(load::floor(&self.http, &one("/metrics"), 200).await?),
        });
        Ok(out)
    }

    /// The flood phase (see the module's documentation).
    pub async fn flood(&self) -> anyhow::Result<Value> {
        let n = self.s.flood_stored;
        let armed = self.s.flood_armed.min(n);
        let off_dir = self.scratch.dir("flood-off")?;
        let on_dir = self.scratch.dir("flood-on")?;
        let off = StoreOpts {
            retention: Some("off".into()),
            postgres: None,
        };
        let on = StoreOpts {
            retention: Some("90d".into()),
            postgres: None,
        };
        // Seed through the library, with the config's policy.
        let store = off_dir.join("pagerd.db");
        let policy = {
            let addr = SocketAddr::from(([127, 0, 0, 1], 9));
            let setup = PagerdSetup::write_with(
                &off_dir,
                addr,
                self.rec_addr,
                &Timers {
                    ack_timeout: Duration::from_secs(3 * 3600),
                    crisis_after: Duration::from_secs(6 * 3600),
                },
                &off,
            )?;
            pagerd::config::Config::load(&setup.config)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .policy
        };
        eprintln!("pagerd-bench: flood: seeding {n} incidents ({armed} open)…");
        let seeded = bulk::seed(&store, &self.ids(n), armed, AGE, policy).await?;
        eprintln!(
            "pagerd-bench: flood: seeded in {:.1} s",
            seeded.took_ms / 1e3
        );
        let seeded_size = retention::size(&store)?;
        let copy = on_dir.join("pagerd.db");
        let t = Instant::now();
        std::fs::copy(&store, &copy)
            .with_context(|| format!("cannot copy {} to {}", store.display(), copy.display()))?;
        let copy_ms = ms(t.elapsed());

        // The reference: a daemon on a fresh store, running throughout.
        let empty_dir = self.scratch.dir("flood-empty")?;
        let (empty, _, _) = self
            .flood_daemon(&empty_dir, &StoreOpts::default(), None)
            .await?;

        // Retention off: warm start, then a cold one.
        let (warm, _, ready_warm) = self.flood_daemon(&off_dir, &off, None).await?;
        drop(warm);
        let evicted = evict(&store)?;
        let (big, setup, ready_cold) = self.flood_daemon(&off_dir, &off, None).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = big.proc.mem()?;
        let status = self.get_json(&big, "/api/v1/status").await?;
        eprintln!("pagerd-bench: flood: retention off, quiet and flooded rounds…");
        let figures = self.flood_compare(&big, &empty).await?;
        let running = on_disk(&setup.store);
        drop(big);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let off_json = json!({
            "ready_warm_ms": ms(ready_warm),
            "ready_cold_ms": ms(ready_cold),
            "page_cache_evicted": evicted,
            "armed_deadlines": status["armed_deadlines"],
            "memory_idle": mem_json(&idle),
            "figures": figures,
            "size_running": running,
            "size": retention::size(&setup.store)?,
        });

        // Retention on, on the copy.
        let (big, setup, ready) = self
            .flood_daemon(&on_dir, &on, Some("pagerd=warn,pagerd::retention=info"))
            .await?;
        let ready_at = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = big.proc.mem()?;
        let status = self.get_json(&big, "/api/v1/status").await?;
        eprintln!("pagerd-bench: flood: retention on, before the pass: quiet and flooded rounds…");
        let before = self.flood_compare(&big, &empty).await?;
        let before_done_s = ready_at.elapsed().as_secs_f64();
        let mut on_json = json!({
            "ready_ms": ms(ready),
            "armed_deadlines": status["armed_deadlines"],
            "memory_idle": mem_json(&idle),
            "before_pass": before,
            "before_pass_done_s_after_ready": before_done_s,
            "pass_starts_s_after_start": pagerd::retention::EVERY.as_secs_f64(),
        });
        if self.s.retention_pass {
            let pass = self.retention_pass(&big, &setup, ready_at, n).await?;
            on_json["pass"] = pass;
            on_json["memory_after_pass"] = mem_json(&big.proc.mem()?);
            on_json["size_after_pass_running"] = on_disk(&setup.store);
            on_json["counts_after_pass"] = count(&setup.store)?;
            eprintln!(
                "pagerd-bench: flood: retention on, after the pass: quiet and flooded rounds…"
            );
            on_json["after_pass"] = self.flood_compare(&big, &empty).await?;
        } else {
            on_json["pass"] = json!({ "skipped": true });
        }
        on_json["memory_end"] = mem_json(&big.proc.mem()?);
        on_json["size_running"] = on_disk(&setup.store);
        drop(big);
        drop(empty);
        tokio::time::sleep(Duration::from_millis(200)).await;
        on_json["size"] = retention::size(&setup.store)?;
        Ok(json!({
            "stored": n,
            "armed": armed,
            "clients": self.s.flood_clients,
            "tickets": self.s.flood_tickets,
            "rounds": self.s.rounds.max(2),
            "seeded": seeded,
            "seeded_size": seeded_size,
            "copy_ms": copy_ms,
            "retention_off": off_json,
            "retention_on": on_json,
        }))
    }

    /// Sends a ticket every [`TRICKLE`] until the daemon logs the end of its
    /// retention pass; the pass's counts, its approximate duration and the
    /// latency of the tickets sent while it ran.
    async fn retention_pass(
        &self,
        p: &Pagerd,
        setup: &PagerdSetup,
        ready_at: Instant,
        stored: usize,
    ) -> anyhow::Result<Value> {
        let send = self.pagerd_sender(p);
        let starts = ready_at + pagerd::retention::EVERY;
        // At most EVERY plus 1 ms per stored incident (measured: 0.3 ms).
        let deadline = starts + Duration::from_millis(stored as u64) + Duration::from_secs(300);
        eprintln!(
            "pagerd-bench: flood: waiting for the leader's retention pass (starts about {:.0} s from now)…",
            starts
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
        );
        let mut during: Vec<(Instant, Sample)> = Vec::new();
        let line = loop {
            if let Some(l) = log_line(&setup.log)? {
                break l;
            }
            if Instant::now() > deadline {
                bail!(
                    "no end of the retention pass in {} within {:?}",
                    setup.log.display(),
                    deadline.duration_since(ready_at)
                );
            }
            let id = self.ids(1);
            let t = Instant::now();
            let s = load::sequential(&send, &self.rec, &id, Duration::ZERO).await?;
            during.extend(s.into_iter().map(|s| (t, s)));
            tokio::time::sleep_until((t + TRICKLE).into()).await;
        };
        let ended = Instant::now();
        let in_pass: Vec<Sample> = during
            .iter()
            .filter(|(t, _)| *t >= starts)
            .map(|(_, s)| *s)
            .collect();
        let before: Vec<Sample> = during
            .iter()
            .filter(|(t, _)| *t < starts)
            .map(|(_, s)| *s)
            .collect();
        Ok(json!({
            "log": line.trim(),
            "incidents_deleted": field(&line, "incidents"),
            "journal_deleted": field(&line, "journal"),
            "outbox_deleted": field(&line, "outbox"),
            "examined": field(&line, "examined"),
            "took_ms_approx": ms(ended.saturating_duration_since(starts)),
            "ended_s_after_ready": ended.duration_since(ready_at).as_secs_f64(),
            "trickle_ms": ms(TRICKLE),
            "waiting_before_pass": samples_json(&before),
            "during_pass": samples_json(&in_pass),
        }))
    }
}

/// The log line that ends a retention pass, if written yet; an error if the
/// pass failed.
fn log_line(log: &Path) -> anyhow::Result<Option<String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    if let Some(l) = text.lines().find(|l| l.contains(PASS_FAILED)) {
        bail!("the daemon's retention pass failed: {l}");
    }
    Ok(text
        .lines()
        .find(|l| l.contains(PASS_DONE))
        .map(str::to_string))
}

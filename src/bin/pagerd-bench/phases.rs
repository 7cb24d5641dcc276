//! The measurements, one function each. Every phase starts its own daemon
//! on a fresh store (so one phase's history does not tax the next) and
//! returns its numbers as JSON; the caller turns them into table rows.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::load::{self, Sender};
use crate::procs::{
    Alertmanager, Mem, Pagerd, PagerdSetup, Proc, Scratch, Timers, free_port, secrets,
};
use crate::recorder::{Kind, Recorder};
use crate::report::{Pct, median};
use crate::seed;

/// The pause after each of the idle part's tickets: longer than two of
/// the SQLite store's checkpoint rounds (250 ms each; the log is restarted
/// after the first round that copies everything with no commit during it,
/// which can be the second after a ticket), so that each ticket meets a
/// store as a ticket minutes after the last one does, with or without a
/// peer taking turns. (At 300 ms without a peer, the seventh session's
/// form, which waited for a whole round without commits, often restarted
/// the log after the next ticket: idle p50 1.17 ms, against 0.86–0.90 ms
/// with a peer.)
pub const IDLE_GAP: Duration = Duration::from_millis(600);

/// Sizes and switches, after `--smoke` / `--large` are applied.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sequential tickets for latency.
    pub tickets: usize,
    /// Pause after each sequential ticket's page.
    pub gap: Duration,
    /// Tickets of the latency phase's idle part (each side), [`IDLE_GAP`]
    /// apart.
    pub idle_tickets: usize,
    /// Tickets per burst.
    pub burst: usize,
    /// Requests in flight during a burst.
    pub concurrency: usize,
    /// Incidents with armed deadlines in the timer phase.
    pub timers: usize,
    /// Most deadlines coming due per second in the timer phase (the window
    /// grows to keep under it).
    pub timer_rate: f64,
    /// Window the timer phase's tickets (hence deadlines) are spread over.
    pub timer_window: Duration,
    /// Overdue deadlines at restart.
    pub overdue: usize,
    /// `ack_timeout` of the recovery phase: the time to load and kill.
    pub recovery_ack: Duration,
    /// Incidents stored for the memory phase.
    pub stored: usize,
    /// Tickets sent to the daemon with the big store.
    pub stored_burst: usize,
    /// Rounds of the peer comparison (pagerd and peer alternate).
    pub rounds: usize,
    /// Incidents in the flood phase's store.
    pub flood_stored: usize,
    /// Of which open, with an armed deadline.
    pub flood_armed: usize,
    /// Sequential tickets per daemon and condition (quiet, flooded) in the
    /// flood phase.
    pub flood_tickets: usize,
    /// Clients looping on `/readyz` and `/metrics`.
    pub flood_clients: usize,
    /// Whether the flood phase waits for the leader's retention pass.
    pub retention_pass: bool,
    /// The PostgreSQL database the postgres phase makes its schemas in.
    pub postgres_url: Option<String>,
    /// `(lease_renew, lease_ttl)`; the daemon's defaults when `None`.
    pub lease: Option<(Duration, Duration)>,
    /// Leader kills in the failover measurement.
    pub failover_rounds: usize,
}

/// What every phase needs.
pub struct Ctx {
    /// Sizes.
    pub s: Settings,
    /// The bench's client.
    pub http: reqwest::Client,
    /// The vendors' side.
    pub rec: Arc<Recorder>,
    /// The recorder's address.
    pub rec_addr: SocketAddr,
    /// Scratch space.
    pub scratch: Scratch,
    /// The pagerd binary.
    pub pagerd: PathBuf,
    /// The peer's binary, when comparing.
    pub alertmanager: Option<PathBuf>,
    next_id: AtomicU64,
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(crate) fn mem_json(m: &Mem) -> Value {
    json!({ "rss_mb": mib(m.rss_kib), "hwm_mb": mib(m.hwm_kib) })
}

impl Ctx {
    /// A context.
    pub fn new(
        s: Settings,
        http: reqwest::Client,
        rec: (Arc<Recorder>, SocketAddr),
        scratch: Scratch,
        pagerd: PathBuf,
        alertmanager: Option<PathBuf>,
    ) -> Ctx {
        Ctx {
            s,
            http,
            rec: rec.0,
            rec_addr: rec.1,
            scratch,
            pagerd,
            alertmanager,
            next_id: AtomicU64::new(1000),
        }
    }

    /// `n` ticket ids never used before in this run.
    pub(crate) fn ids(&self, n: usize) -> Vec<u64> {
        let first = self.next_id.fetch_add(n as u64, Ordering::Relaxed);
        (first..first + n as u64).collect()
    }

    async fn pagerd(
        &self,
        name: &str,
        timers: &Timers,
    ) -> anyhow::Result<(Pagerd, PagerdSetup, Duration)> {
        let dir = self.scratch.dir(name)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let setup = PagerdSetup::write(&dir, addr, self.rec_addr, timers)?;
        let (p, ready) = Pagerd::start(&self.pagerd, &setup, addr, &self.http).await?;
        Ok((p, setup, ready))
    }

    async fn peer(&self, name: &str) -> anyhow::Result<Option<(Alertmanager, Arc<Sender>)>> {
        let Some(bin) = &self.alertmanager else {
            return Ok(None);
        };
        let dir = self.scratch.dir(&format!("{name}-alertmanager"))?;
        let (am, _) = Alertmanager::start(bin, &dir, self.rec_addr, &self.http).await?;
        let sender = Sender::alertmanager(self.http.clone(), &format!("http://{}", am.addr));
        Ok(Some((am, Arc::new(sender))))
    }

    pub(crate) fn pagerd_sender(&self, p: &Pagerd) -> Sender {
        Sender::pagerd(self.http.clone(), &p.url(), secrets::ZD_WEBHOOK)
    }

    /// GET a pagerd JSON endpoint (admin API with the bench's token).
    pub(crate) async fn get_json(&self, p: &Pagerd, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("{}{path}", p.url()))
            .bearer_auth(secrets::ADMIN)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .with_context(|| format!("GET {path}: body"))?;
        if !status.is_success() {
            bail!("GET {path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Waits until pagerd's outbox is empty (every effect delivered).
    pub(crate) async fn drained(&self, p: &Pagerd, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.get_json(p, "/api/v1/status").await?;
            if v["store"]["pending_effects"].as_u64() == Some(0) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "pagerd's outbox did not drain within {timeout:?}: {v}; its log ends with:\n{}",
                    p.proc.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Latency: sequential tickets, pagerd and the peer alternating in rounds.
    pub async fn latency(&self) -> anyhow::Result<Value> {
        let (pd, _setup, _) = self.pagerd("latency", &Timers::default()).await?;
        let pd_send = self.pagerd_sender(&pd);
        let peer = self.peer("latency").await?;
        // Warm up: connections, page cache, allocator.
        load::sequential(&pd_send, &self.rec, &self.ids(20), self.s.gap).await?;
        if let Some((_, am)) = &peer {
            load::sequential(am, &self.rec, &self.ids(20), self.s.gap).await?;
        }
        let pd_floor = load::floor(&self.http, &format!("{}/healthz", pd.url()), 200).await?;
        let am_floor = match &peer {
            Some((am, _)) => {
                load::floor(&self.http, &format!("http://{}/-/healthy", am.addr), 200).await?
            }
            None => Vec::new(),
        };
        let rounds = self.s.rounds.max(1);
        let per_round = self.s.tickets.div_ceil(rounds);
        let (mut pd_samples, mut am_samples) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            pd_samples.extend(
                load::sequential(&pd_send, &self.rec, &self.ids(per_round), self.s.gap).await?,
            );
            if let Some((_, am)) = &peer {
                am_samples.extend(
                    load::sequential(am, &self.rec, &self.ids(per_round), self.s.gap).await?,
                );
            }
        }
        // The idle part: one ticket at a time, taking turns, each side
        // idle for two gaps before its next.
        let (mut pd_idle, mut am_idle) = (Vec::new(), Vec::new());
        for _ in 0..self.s.idle_tickets {
            pd_idle.extend(load::sequential(&pd_send, &self.rec, &self.ids(1), IDLE_GAP).await?);
            if let Some((_, am)) = &peer {
                am_idle.extend(load::sequential(am, &self.rec, &self.ids(1), IDLE_GAP).await?);
            }
        }
        let side = |samples: &[load::Sample], floor: &[f64], idle: &[load::Sample]| {
            let mut v = json!({
                "health_get_ms": Pct::of(floor.to_vec()),
                "e2e_ms": Pct::of(samples.iter().map(|s| s.e2e_ms).collect()),
                "webhook_answer_ms": Pct::of(samples.iter().map(|s| s.ack_ms).collect()),
            });
            if !idle.is_empty() {
                v["idle_e2e_ms"] = json!(Pct::of(idle.iter().map(|s| s.e2e_ms).collect()));
            }
            v
        };
        let mut out = json!({
            "tickets": pd_samples.len(),
            "rounds": rounds,
            "gap_ms": ms(self.s.gap),
            "idle_tickets": pd_idle.len(),
            "idle_gap_ms": ms(IDLE_GAP),
            "pagerd": side(&pd_samples, &pd_floor, &pd_idle),
        });
        if peer.is_some() {
            out["peer"] = side(&am_samples, &am_floor, &am_idle);
        }
        Ok(out)
    }

    /// One burst against one daemon: send, wait for every page, count.
    pub(crate) async fn one_burst(
        &self,
        sender: &Arc<Sender>,
        n: usize,
        proc: &Proc,
    ) -> anyhow::Result<Value> {
        let ids = self.ids(n);
        let keys: Vec<String> = ids.iter().map(|&id| sender.key(id)).collect();
        let cpu0 = proc.cpu_ms()?;
        let sent = load::burst(sender, &ids, self.s.concurrency).await?;
        let timeout = Duration::from_secs(60) + Duration::from_millis(2 * n as u64);
        self.rec.wait_all(sender.kind(), &keys, timeout).await;
        // Late duplicates would come within moments of the last page.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let tally = self
            .rec
            .tally(sender.kind(), keys.iter().map(String::as_str));
        let cpu = proc.cpu_ms()? - cpu0;
        let accept_s = sent.last_ack.duration_since(sent.started).as_secs_f64();
        let all_pages = tally
            .last
            .map(|l| ms(l.at.saturating_duration_since(sent.started)));
        Ok(json!({
            "tickets": n,
            "concurrency": self.s.concurrency,
            "accepted_per_s": n as f64 / accept_s.max(1e-9),
            "accepted_ms": accept_s * 1e3,
            "all_pages_ms": all_pages,
            "pages_per_s": all_pages.map(|t| n as f64 / (t / 1e3).max(1e-9)),
            "received": tally.distinct,
            "lost": n - tally.distinct,
            "duplicated": tally.duplicates,
            "retries": sent.retries,
            "cpu_ms_per_ticket": cpu / n.max(1) as f64,
        }))
    }

    /// Throughput and memory around it: idle RSS, bursts alternating with
    /// the peer, RSS after the first burst.
    pub async fn burst(&self) -> anyhow::Result<Value> {
        let (pd, _setup, ready) = self.pagerd("burst", &Timers::default()).await?;
        let pd_send = Arc::new(self.pagerd_sender(&pd));
        let peer = self.peer("burst").await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = pd.proc.mem()?;
        let peer_idle = peer.as_ref().map(|(am, _)| am.proc.mem()).transpose()?;
        let (mut pd_rounds, mut am_rounds) = (Vec::new(), Vec::new());
        let (mut after, mut peer_after) = (None, None);
        // Each system's round runs with the other one stopped (see
        // `Proc::pause`).
        for _ in 0..self.s.rounds.max(1) {
            pd_rounds.push(self.one_burst(&pd_send, self.s.burst, &pd.proc).await?);
            if after.is_none() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                after = Some(pd.proc.mem()?);
            }
            if let Some((am, send)) = &peer {
                pd.proc.pause()?;
                am.proc.resume()?;
                let round = self.one_burst(send, self.s.burst, &am.proc).await;
                if peer_after.is_none() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    peer_after = Some(am.proc.mem()?);
                }
                am.proc.pause()?;
                pd.proc.resume()?;
                am_rounds.push(round?);
            }
        }
        if let Some((am, _)) = &peer {
            am.proc.resume()?;
        }
        let summary = |rounds: &[Value]| {
            let med = |k: &str| {
                median(
                    &rounds
                        .iter()
                        .filter_map(|r| r[k].as_f64())
                        .collect::<Vec<_>>(),
                )
            };
            let sum = |k: &str| rounds.iter().filter_map(|r| r[k].as_u64()).sum::<u64>();
            json!({
                "accepted_per_s": med("accepted_per_s"),
                "all_pages_ms": med("all_pages_ms"),
                "pages_per_s": med("pages_per_s"),
                "cpu_ms_per_ticket": med("cpu_ms_per_ticket"),
                "lost": sum("lost"),
                "duplicated": sum("duplicated"),
                "retries": sum("retries"),
                "rounds": rounds,
            })
        };
        let mut out = json!({
            "tickets": self.s.burst,
            "ready_ms": ms(ready),
            "pagerd": summary(&pd_rounds),
            "memory": { "idle": mem_json(&idle), "after_burst": after.as_ref().map(mem_json) },
        });
        if let (Some(idle), Some(after)) = (peer_idle, peer_after) {
            out["peer"] = summary(&am_rounds);
            out["peer_memory"] =
                json!({ "idle": mem_json(&idle), "after_burst": mem_json(&after) });
        }
        Ok(out)
    }

    /// Timer precision: deadlines spread over a window, all armed before the
    /// first comes due; lateness of each escalation against its stored
    /// deadline (`paged_at + ack_timeout`, both in pagerd's wall clock).
    pub async fn timers(&self) -> anyhow::Result<Value> {
        // Deadlines come due at most `timer_rate` a second: 100 000 armed
        // deadlines are spread over 100 s, not crammed into the window.
        let window = self.s.timer_window.max(Duration::from_secs_f64(
            self.s.timers as f64 / self.s.timer_rate.max(1.0),
        ));
        let lead = (window / 2).max(Duration::from_secs(1));
        let timers = Timers {
            ack_timeout: window + lead,
            ..Timers::default()
        };
        let ack_ms = ms(timers.ack_timeout);
        let (pd, setup, _) = self.pagerd("timers", &timers).await?;
        let send = Arc::new(self.pagerd_sender(&pd));
        let ids = self.ids(self.s.timers);
        let keys: Vec<String> = ids.iter().map(|&id| send.key(id)).collect();
        let sent = load::paced(&send, &ids, window, self.s.concurrency).await?;
        let spread = sent.last_ack.duration_since(sent.started);
        let first_due = sent.started + timers.ack_timeout;
        if Instant::now() + Duration::from_millis(300) > first_due {
            bail!(
                "sending took {spread:?}, past the first deadline; pagerd is too slow for --timer-window {window:?}"
            );
        }
        tokio::time::sleep_until((first_due - Duration::from_millis(300)).into()).await;
        let ready = self.get_json(&pd, "/api/v1/status").await?;
        let armed = ready["armed_deadlines"].as_u64();
        let timeout = timers.ack_timeout + window + Duration::from_secs(60);
        let tally = self
            .rec
            .wait_all(
                Kind::Escalation,
                &keys,
                timeout.saturating_sub(sent.started.elapsed()),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let dups = self
            .rec
            .tally(Kind::Escalation, keys.iter().map(String::as_str))
            .duplicates;
        // Each incident's stored deadline: `paged_at` read from the store
        // (read-only; the admin API lists at most 10 000 incidents).
        let paged = paged_at(&setup.store)?;
        let lateness: Vec<f64> = self
            .rec
            .arrivals(Kind::Escalation, keys.iter().map(String::as_str))
            .into_iter()
            .filter_map(|(k, a)| Some(a.wall_ms - (paged.get(&k)? + ack_ms)))
            .collect();
        // Where the time goes: deadline → pagerd's first REST call of the
        // escalation (timer fired, tick committed, outbox read).
        let to_lookup: Vec<f64> = self
            .rec
            .arrivals(Kind::Lookup, keys.iter().map(String::as_str))
            .into_iter()
            .filter_map(|(k, a)| Some(a.wall_ms - (paged.get(&k)? + ack_ms)))
            .collect();
        let early = lateness.iter().filter(|l| **l < 0.0).count();
        Ok(json!({
            "incidents": ids.len(),
            "window_ms": ms(window),
            "due_per_s": ids.len() as f64 / window.as_secs_f64().max(1e-9),
            "ack_timeout_ms": ack_ms,
            "send_spread_ms": ms(spread),
            "armed_before_first_due": armed,
            "escalated": tally.distinct,
            "missing": ids.len() - tally.distinct,
            "duplicated": dups,
            "early": early,
            "lateness_ms": Pct::of(lateness),
            "deadline_to_lookup_ms": Pct::of(to_lookup),
        }))
    }

    /// Recovery: arm `overdue` deadlines, SIGKILL, let them pass, restart;
    /// time from spawning the new process to the last overdue escalation.
    pub async fn recovery(&self) -> anyhow::Result<Value> {
        let timers = Timers {
            ack_timeout: self.s.recovery_ack,
            ..Timers::default()
        };
        let (mut pd, setup, _) = self.pagerd("recovery", &timers).await?;
        let send = Arc::new(self.pagerd_sender(&pd));
        let ids = self.ids(self.s.overdue);
        let keys: Vec<String> = ids.iter().map(|&id| send.key(id)).collect();
        let sent = load::burst(&send, &ids, self.s.concurrency).await?;
        let pages = self
            .rec
            .wait_all(Kind::Trigger, &keys, Duration::from_secs(60))
            .await;
        anyhow::ensure!(
            pages.distinct == ids.len(),
            "only {} of {} pages arrived",
            pages.distinct,
            ids.len()
        );
        self.drained(&pd, Duration::from_secs(30)).await?;
        let first_due = sent.started + timers.ack_timeout;
        if Instant::now() + Duration::from_millis(200) > first_due {
            bail!(
                "loading took too long: the first deadline would pass before the kill; raise the recovery ack_timeout"
            );
        }
        pd.proc.kill();
        let before = self
            .rec
            .tally(Kind::Escalation, keys.iter().map(String::as_str))
            .distinct;
        // Every deadline is at most `last answer + ack_timeout`.
        tokio::time::sleep_until(
            (sent.last_ack + timers.ack_timeout + Duration::from_millis(300)).into(),
        )
        .await;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        setup.relisten(addr)?;
        let (pd2, ready) = Pagerd::start(&self.pagerd, &setup, addr, &self.http).await?;
        let tally = self
            .rec
            .wait_all(Kind::Escalation, &keys, Duration::from_secs(120))
            .await;
        let since = |a: Option<crate::recorder::Arrival>| {
            a.map(|a| ms(a.at.saturating_duration_since(pd2.proc.spawned)))
        };
        Ok(json!({
            "overdue": ids.len(),
            "ack_timeout_ms": ms(timers.ack_timeout),
            "escalated_before_restart": before,
            "escalated": tally.distinct,
            "missing": ids.len() - tally.distinct,
            "ready_ms": ms(ready),
            "first_escalation_ms": since(tally.first),
            "last_escalation_ms": since(tally.last),
        }))
    }

    /// Memory with a big store: seeded through the library (see `seed`),
    /// then the daemon started on it, idle, then given a burst.
    pub async fn stored(&self) -> anyhow::Result<Value> {
        let timers = Timers {
            ack_timeout: Duration::from_secs(3600),
            crisis_after: Duration::from_secs(7200),
        };
        let dir = self.scratch.dir("stored")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let setup = PagerdSetup::write(&dir, addr, self.rec_addr, &timers)?;
        let policy = pagerd::config::Config::load(&setup.config)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .policy;
        let seeded = seed::seed(&setup.store, &self.ids(self.s.stored), policy).await?;
        let db_bytes = std::fs::metadata(&setup.store)
            .map(|m| m.len())
            .unwrap_or(0);
        let (pd, ready) = Pagerd::start(&self.pagerd, &setup, addr, &self.http).await?;
        // After a second: the scheduler loads the armed deadlines after
        // `/healthz` answers.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let ready_json = self.get_json(&pd, "/api/v1/status").await?;
        let loaded = pd.proc.mem()?;
        let send = Arc::new(self.pagerd_sender(&pd));
        let burst = self.one_burst(&send, self.s.stored_burst, &pd.proc).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = pd.proc.mem()?;
        Ok(json!({
            "seeded": seeded,
            "db_mb": db_bytes as f64 / 1048576.0,
            "ready_ms": ms(ready),
            "armed_deadlines": ready_json["armed_deadlines"],
            "loaded": mem_json(&loaded),
            "burst": burst,
            "after_burst": mem_json(&after),
        }))
    }
}

/// `dedup_key → paged_at` of every incident in a pagerd SQLite store (when
/// PagerDuty took its page, which arms the acknowledgement deadline), read
/// through a read-only connection beside the running daemon; `opened_at`
/// for one not paged.
fn paged_at(store: &std::path::Path) -> anyhow::Result<std::collections::HashMap<String, f64>> {
    let conn = pagerd::store::sqlite::open_reader(store).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut stmt = conn.prepare(
        "SELECT dedup_key, COALESCE(json_extract(state, '$.paged_at'), opened_at) FROM incidents",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as f64))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

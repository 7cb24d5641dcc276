//! `postgres`: the latency and burst workloads on the PostgreSQL store,
//! beside SQLite, and the failover time after `kill -9` of the leader.
//!
//! Needs `--postgres-url URL` (a database the bench may create schemas in,
//! e.g. `postgres://postgres@127.0.0.1:5432/pagerd_bench`); without it the
//! phase says so and is skipped. Each part runs in a fresh schema made with
//! the library's `pagerd::store::postgres::test_schema_url` (the URL gets
//! `options=-c search_path=pagerd_t_…`, the daemon creates its tables
//! there) and dropped at the end.
//!
//! - **Latency and burst**: one daemon on PostgreSQL and one on a fresh
//!   SQLite store, the same workloads as the `latency` and `burst` phases,
//!   in rounds alternating between the two so machine noise hits both.
//! - **Failover**: two daemons on the same schema (the lease timings are
//!   the daemon's defaults, `lease_renew = 2s` and `lease_ttl = 10s`,
//!   unless `--lease-ttl` is given). The leader is whichever
//!   `/api/v1/status` says; every page sent so far has arrived (and 500 ms
//!   passed for its settlement to commit); the leader gets SIGKILL; at once
//!   a new emergency ticket is sent to the survivor (which accepts it as a
//!   follower: it commits, only the leader pages). Measured from the kill:
//!   until the survivor's `/api/v1/status` says `leader` (polled every
//!   10 ms), and until that ticket's page reaches PagerDuty. The killed
//!   instance is then restarted as the follower and the roles swap for the
//!   next round.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::load::{self, Sender};
use crate::phases::{Ctx, mem_json, ms};
use crate::procs::{Pagerd, PagerdSetup, PgStore, StoreOpts, Timers, free_port};
use crate::recorder::Kind;
use crate::report::{Pct, median};

/// Summary of burst rounds (medians, and sums of what must be zero).
fn bursts(rounds: &[Value]) -> Value {
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
}

fn side(samples: &[load::Sample], floor: &[f64]) -> Value {
    json!({
        "health_get_ms": Pct::of(floor.to_vec()),
        "e2e_ms": Pct::of(samples.iter().map(|s| s.e2e_ms).collect()),
        "webhook_answer_ms": Pct::of(samples.iter().map(|s| s.ack_ms).collect()),
    })
}

impl Ctx {
    /// A pagerd on `opts`' store in scratch directory `name`, ready.
    async fn pg_daemon(
        &self,
        name: &str,
        opts: &StoreOpts,
    ) -> anyhow::Result<(Pagerd, PagerdSetup, Duration)> {
        let dir = self.scratch.dir(name)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let setup = PagerdSetup::write_with(&dir, addr, self.rec_addr, &Timers::default(), opts)?;
        let (p, ready) = Pagerd::start_ready(&self.pagerd, &setup, addr, &self.http).await?;
        Ok((p, setup, ready))
    }

    fn pg_opts(&self, url: &str) -> StoreOpts {
        StoreOpts {
            retention: None,
            postgres: Some(PgStore {
                url: url.to_string(),
                lease_renew: self.s.lease.map(|(renew, _)| renew),
                lease_ttl: self.s.lease.map(|(_, ttl)| ttl),
            }),
        }
    }

    /// The PostgreSQL phase (see the module's documentation).
    pub async fn postgres(&self) -> anyhow::Result<Value> {
        let Some(base) = self.s.postgres_url.clone() else {
            eprintln!("pagerd-bench: postgres: skipped (no --postgres-url)");
            return Ok(json!({ "skipped": "no --postgres-url" }));
        };
        let url = pagerd::store::postgres::test_schema_url(&base)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("cannot create a schema for the bench (--postgres-url)")?;
        let workloads = self.pg_workloads(&url).await;
        pagerd::store::postgres::drop_test_schema(&base, &url).await;
        let mut out = workloads?;
        let url = pagerd::store::postgres::test_schema_url(&base)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let failover = self.pg_failover(&url).await;
        pagerd::store::postgres::drop_test_schema(&base, &url).await;
        out["failover"] = failover?;
        Ok(out)
    }

    async fn pg_workloads(&self, url: &str) -> anyhow::Result<Value> {
        let (pg, _, pg_ready) = self.pg_daemon("pg", &self.pg_opts(url)).await?;
        let (lite, _, lite_ready) = self.pg_daemon("pg-sqlite", &StoreOpts::default()).await?;
        let (pg_send, lite_send) = (
            Arc::new(self.pagerd_sender(&pg)),
            Arc::new(self.pagerd_sender(&lite)),
        );
        // The single instance takes the lease at start; wait for it.
        self.wait_role(&pg, "leader", Duration::from_secs(60))
            .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let pg_idle = pg.proc.mem()?;
        load::sequential(&pg_send, &self.rec, &self.ids(20), self.s.gap).await?;
        load::sequential(&lite_send, &self.rec, &self.ids(20), self.s.gap).await?;
        let pg_floor = load::floor(&self.http, &format!("{}/healthz", pg.url()), 200).await?;
        let lite_floor = load::floor(&self.http, &format!("{}/healthz", lite.url()), 200).await?;
        let rounds = self.s.rounds.max(2);
        let per = self.s.tickets.div_ceil(rounds);
        let (mut p, mut l) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            let (a, b) = (self.ids(per), self.ids(per));
            if r % 2 == 0 {
                p.extend(load::sequential(&pg_send, &self.rec, &a, self.s.gap).await?);
                l.extend(load::sequential(&lite_send, &self.rec, &b, self.s.gap).await?);
            } else {
                l.extend(load::sequential(&lite_send, &self.rec, &b, self.s.gap).await?);
                p.extend(load::sequential(&pg_send, &self.rec, &a, self.s.gap).await?);
            }
        }
        let (mut pb, mut lb) = (Vec::new(), Vec::new());
        for _ in 0..self.s.rounds.max(1) {
            pb.push(self.one_burst(&pg_send, self.s.burst, &pg.proc).await?);
            lb.push(self.one_burst(&lite_send, self.s.burst, &lite.proc).await?);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pg_after = pg.proc.mem()?;
        Ok(json!({
            "lease_renew_ms": self.s.lease.map(|(r, _)| ms(r)),
            "lease_ttl_ms": self.s.lease.map(|(_, t)| ms(t)),
            "latency": {
                "tickets": p.len(),
                "rounds": rounds,
                "postgres": side(&p, &pg_floor),
                "sqlite": side(&l, &lite_floor),
            },
            "burst": {
                "tickets": self.s.burst,
                "postgres": bursts(&pb),
                "sqlite": bursts(&lb),
            },
            "ready_ms": { "postgres": ms(pg_ready), "sqlite": ms(lite_ready) },
            "memory": { "idle": mem_json(&pg_idle), "after_burst": mem_json(&pg_after) },
        }))
    }

    /// Waits until `p`'s `/api/v1/status` says `role`; how long it took.
    async fn wait_role(
        &self,
        p: &Pagerd,
        role: &str,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let t = Instant::now();
        loop {
            if let Ok(v) = self.get_json(p, "/api/v1/status").await
                && v["role"] == role
            {
                return Ok(t.elapsed());
            }
            if t.elapsed() > timeout {
                bail!("{} did not become {role} within {timeout:?}", p.url());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn pg_failover(&self, url: &str) -> anyhow::Result<Value> {
        let opts = self.pg_opts(url);
        let (a, sa, _) = self.pg_daemon("pg-failover-a", &opts).await?;
        self.wait_role(&a, "leader", Duration::from_secs(60))
            .await?;
        let (b, sb, _) = self.pg_daemon("pg-failover-b", &opts).await?;
        let mut nodes = [(a, sa), (b, sb)];
        let mut leader = 0;
        let mut keys: Vec<String> = Vec::new();
        // Intake on the follower, paging by the leader.
        let first = self.pagerd_sender(&nodes[1].0);
        let ids = self.ids(5);
        keys.extend(ids.iter().map(|&id| first.key(id)));
        load::sequential(&first, &self.rec, &ids, Duration::ZERO).await?;
        let ttl = self.s.lease.map_or(Duration::from_secs(10), |(_, t)| t);
        let mut rounds = Vec::new();
        for _ in 0..self.s.failover_rounds.max(1) {
            let follower = 1 - leader;
            // Quiet: every page so far arrived, and its settlement committed.
            let t = self
                .rec
                .wait_all(Kind::Trigger, &keys, Duration::from_secs(60))
                .await;
            anyhow::ensure!(
                t.distinct == keys.len(),
                "only {} of {} pages arrived before the kill",
                t.distinct,
                keys.len()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            let seen = self.get_json(&nodes[follower].0, "/api/v1/status").await?;
            let send: Sender = self.pagerd_sender(&nodes[follower].0);
            let id = self.ids(1)[0];
            let key = send.key(id);
            let prepared = send.prepare(id, "new");
            let killed = Instant::now();
            nodes[leader].0.proc.kill();
            send.send(&prepared).await?;
            let answered = killed.elapsed();
            keys.push(key.clone());
            self.wait_role(&nodes[follower].0, "leader", ttl + Duration::from_secs(60))
                .await?;
            let to_leader = killed.elapsed();
            let page = self
                .rec
                .wait_for(Kind::Trigger, &key, ttl + Duration::from_secs(60))
                .await
                .with_context(|| format!("no page for {key} after the failover"))?;
            let to_page = page.at.saturating_duration_since(killed);
            rounds.push(json!({
                "lease_expires_in_ms_at_kill": seen["lease"]["expires_in_ms"],
                "ticket_answered_ms": ms(answered),
                "kill_to_leader_ms": ms(to_leader),
                "kill_to_page_ms": ms(to_page),
            }));
            // The killed instance comes back as the follower.
            let setup = &nodes[leader].1;
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            setup.relisten(addr)?;
            let (p, _) = Pagerd::start_ready(&self.pagerd, setup, addr, &self.http).await?;
            nodes[leader].0 = p;
            leader = follower;
        }
        let tally = self
            .rec
            .wait_all(Kind::Trigger, &keys, Duration::from_secs(30))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let dups = self
            .rec
            .tally(Kind::Trigger, keys.iter().map(String::as_str))
            .duplicates;
        let pick = |k: &str| -> Vec<f64> { rounds.iter().filter_map(|r| r[k].as_f64()).collect() };
        Ok(json!({
            "lease_ttl_ms": ms(ttl),
            "lease_renew_ms": ms(self.s.lease.map_or(Duration::from_secs(2), |(r, _)| r)),
            "kill_to_leader_ms": Pct::of(pick("kill_to_leader_ms")),
            "kill_to_page_ms": Pct::of(pick("kill_to_page_ms")),
            "tickets": keys.len(),
            "missing": keys.len() - tally.distinct,
            "duplicated": dups,
            "rounds": rounds,
        }))
    }
}

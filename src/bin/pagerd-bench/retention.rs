//! `--retention N`: what retention costs and gives back on SQLite, without
//! the daemon. Seeds a fresh store with `N` incidents resolved long ago
//! (ticket solved, every effect delivered: what retention deletes), through
//! the library's own `SqliteStore`/`Store::apply` like [`crate::seed`], then
//! runs one retention pass exactly as the daemon's task does (batches of
//! [`pagerd::retention::BATCH`], [`pagerd::retention::PAUSE`] between them)
//! while a webhook-like writer applies a new ticket every 20 ms. Reports:
//! the file size before and after (database + WAL, checkpointed), the time
//! each batch holds the writer thread (the round trip of `Store::prune` on
//! an otherwise idle store: its delete job, its vacuum job and their
//! commits), and the intake latency during the pass against a baseline
//! without it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::future::try_join_all;
use pagerd::clock::Millis;
use pagerd::engine::{Event, Policy, Ticket};
use pagerd::retention::{BATCH, PAUSE};
use pagerd::store::{Intake, Pruned, SqliteStore, Store};
use serde_json::json;

/// Incidents applied together while seeding.
const SEED_BATCH: usize = 2000;

/// One day in ms.
const DAY: Millis = 86_400_000;

/// Bytes of ticket title: with the ticket stored in the incident and in two
/// journal rows, an incident then takes about what the issue measured in
/// production (1.7 GB for 300 000 incidents).
const TITLE_BYTES: usize = 800;

/// When the seeded incidents were opened and resolved: 200 and 199 days
/// before the pass's "now" (`NOW`), far past the default 90 days.
const NOW: Millis = 1_000 * DAY;

fn ticket(id: u64, status: &str) -> Ticket {
    let mut title = format!("Production is down (bench #{id}) ");
    while title.len() < TITLE_BYTES {
        title.push_str("the cluster answers 503 to every request; ");
    }
    title.truncate(TITLE_BYTES);
    Ticket {
        id: id.to_string(),
        title,
        priority: "urgent".into(),
        status: status.into(),
        tags: vec!["emergency".into()],
        url: format!("https://acme.zendesk.com/agent/tickets/{id}"),
        requester_name: "Dana Customer".into(),
        requester_email: "dana@customer.example".into(),
        organization: "Customer Corp".into(),
    }
}

async fn deliver_all(store: &SqliteStore, now: Millis) -> anyhow::Result<()> {
    loop {
        let (due, _) = store.due(now, 4 * SEED_BATCH, Vec::new()).await?;
        if due.is_empty() {
            return Ok(());
        }
        try_join_all(due.into_iter().map(|p| {
            let ev = Event::Delivered {
                effect: p.effect.kind(),
                outcome: None,
            };
            let store = store.clone();
            async move { store.complete(p.id, ev, now).await }
        }))
        .await?;
    }
}

/// Database + WAL bytes after a `TRUNCATE` checkpoint (no daemon may be
/// running on it), and SQLite's page and free-page counts.
pub(crate) fn size(path: &Path) -> anyhow::Result<serde_json::Value> {
    let conn = rusqlite::Connection::open(path)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let pragma = |name: &str| -> anyhow::Result<i64> {
        Ok(conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
    };
    let wal = path.with_extension("db-wal");
    let bytes =
        std::fs::metadata(path)?.len() + std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    Ok(json!({
        "bytes": bytes,
        "mb": bytes as f64 / 1e6,
        "pages": pragma("page_count")?,
        "free_pages": pragma("freelist_count")?,
        "auto_vacuum": pragma("auto_vacuum")?,
    }))
}

fn quantiles(mut v: Vec<f64>) -> serde_json::Value {
    if v.is_empty() {
        return json!(null);
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    json!({ "n": v.len(), "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": q(1.0) })
}

/// Applies a new emergency ticket every 20 ms until `stop`; the latencies.
async fn intake(
    store: SqliteStore,
    first_id: u64,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Vec<f64>> {
    let mut lat = Vec::new();
    let mut id = first_id;
    while !stop.is_cancelled() {
        let t = Instant::now();
        store.apply(Intake::ticket(ticket(id, "new")), NOW).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        id += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(lat)
}

/// Seeds `n` old resolved incidents in `dir/retention.db`, prunes them and
/// returns the figures.
pub async fn measure(dir: &Path, n: usize) -> anyhow::Result<serde_json::Value> {
    let path = dir.join("retention.db");
    let t0 = Instant::now();
    {
        let store = SqliteStore::open(&path, Arc::new(Policy::default()))
            .with_context(|| format!("cannot open {}", path.display()))?;
        let ids: Vec<u64> = (1..=n as u64).collect();
        for chunk in ids.chunks(SEED_BATCH) {
            let opened = 800 * DAY;
            try_join_all(
                chunk
                    .iter()
                    .map(|&id| store.apply(Intake::ticket(ticket(id, "new")), opened)),
            )
            .await?;
            deliver_all(&store, opened).await?;
            let solved = opened + DAY;
            try_join_all(
                chunk
                    .iter()
                    .map(|&id| store.apply(Intake::ticket(ticket(id, "solved")), solved)),
            )
            .await?;
            deliver_all(&store, solved).await?;
        }
    }
    let seed_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = size(&path)?;
    eprintln!("pagerd-bench: seeded {n} resolved incidents in {seed_s:.0} s: {before}");

    let store = SqliteStore::open(&path, Arc::new(Policy::default()))?;
    // Baseline: intake alone, for 5 s.
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(intake(store.clone(), 10_000_000, stop.clone()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    let baseline = writer.await??;

    // The pass, as the daemon runs it, with intake going on.
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(intake(store.clone(), 20_000_000, stop.clone()));
    let retention = 90 * DAY;
    let mut total = Pruned::default();
    let mut held = Vec::new();
    let pass = Instant::now();
    loop {
        let t = Instant::now();
        let p = store
            .prune(NOW - retention, NOW - 7 * DAY, BATCH, total.next)
            .await?;
        held.push(t.elapsed().as_secs_f64() * 1e3);
        total.add(&p);
        if p.finished {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    let pass_s = pass.elapsed().as_secs_f64();
    stop.cancel();
    let during = writer.await??;
    drop(store);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = size(&path)?;
    eprintln!("pagerd-bench: pruned in {pass_s:.0} s: {total:?}; {after}");
    Ok(json!({
        "incidents": n,
        "seed_s": seed_s,
        "before": before,
        "after": after,
        "pruned": total,
        "batches": held.len(),
        "pass_s": pass_s,
        "batch_round_trip": quantiles(held),
        "intake_baseline": quantiles(baseline),
        "intake_during_pass": quantiles(during),
    }))
}

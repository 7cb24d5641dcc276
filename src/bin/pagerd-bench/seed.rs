//! Builds a store with many incidents before the daemon starts, through the
//! library's own store (`SqliteStore` + `Store::apply`), the same code and
//! transactions the daemon runs: each ticket is applied as the webhook
//! handler would apply it, its page is marked delivered as the dispatcher
//! would, and every other incident is then resolved by a "ticket solved"
//! event whose PagerDuty resolve is delivered too. Only the HTTP hops are
//! skipped, so 100 000 incidents take seconds rather than minutes.
//!
//! [`seed_aged`] builds the flood phase's store the same way, with the
//! times real history would leave: most incidents opened, paged, solved and
//! resolved long ago (each transaction is applied at that past time, as the
//! store's `now`), the rest opened just now with their ack deadline armed.
//! It runs several batches at once so the store's writer thread, which
//! commits them in groups (one fsync per group, `synchronous=FULL` as in
//! the daemon), never waits for the bench.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::future::try_join_all;
use futures_util::{StreamExt as _, stream};
use pagerd::clock::{Clock, Millis, SystemClock};
use pagerd::engine::{Event, Policy};
use pagerd::store::{Intake, SqliteStore, Store};
use pagerd::vendors::zendesk::webhook::parse as parse_zendesk;

use crate::load::zendesk_body;

/// Incidents applied per batch (their transactions share commits).
const BATCH: usize = 2000;

/// What seeding made.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Seeded {
    /// Incidents in all.
    pub incidents: usize,
    /// Of which resolved.
    pub resolved: usize,
    /// How long it took, ms.
    pub took_ms: f64,
}

fn intake(id: u64, status: &str) -> anyhow::Result<Intake> {
    let ticket = parse_zendesk(
        zendesk_body(id, status).as_bytes(),
        "https://acme.zendesk.com",
    )
    .map_err(|e| anyhow::anyhow!("the bench's ticket does not parse: {e}"))?;
    Ok(Intake::ticket(ticket))
}

/// Marks every due outbox row delivered, as the dispatcher does after the
/// vendor accepted it.
async fn deliver_all(store: &SqliteStore) -> anyhow::Result<usize> {
    deliver_all_at(store, None).await
}

/// [`deliver_all`] at a fixed time `at` (the clock's now when `None`).
async fn deliver_all_at(store: &SqliteStore, at: Option<Millis>) -> anyhow::Result<usize> {
    let clock = SystemClock;
    let now = move || at.unwrap_or_else(|| clock.now());
    let mut n = 0;
    loop {
        let (due, _) = store.due(now(), 4 * BATCH, Vec::new()).await?;
        if due.is_empty() {
            return Ok(n);
        }
        n += due.len();
        try_join_all(due.into_iter().map(|p| {
            let ev = Event::Delivered {
                effect: p.effect.kind(),
                outcome: None,
            };
            let store = store.clone();
            async move { store.complete(p.id, ev, now()).await }
        }))
        .await?;
    }
}

/// Seeds `path` with `n` incidents for tickets `ids`, half of them resolved.
pub async fn seed(path: &Path, ids: &[u64], policy: Policy) -> anyhow::Result<Seeded> {
    let t0 = Instant::now();
    let store = SqliteStore::open(path, Arc::new(policy))
        .with_context(|| format!("cannot open {}", path.display()))?;
    let clock = SystemClock;
    let mut resolved = 0;
    for chunk in ids.chunks(BATCH) {
        let opened = chunk
            .iter()
            .map(|&id| intake(id, "new"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        try_join_all(opened.into_iter().map(|i| store.apply(i, clock.now()))).await?;
        deliver_all(&store).await?;
        let solved = chunk
            .iter()
            .step_by(2)
            .map(|&id| intake(id, "solved"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        resolved += solved.len();
        try_join_all(solved.into_iter().map(|i| store.apply(i, clock.now()))).await?;
        deliver_all(&store).await?;
    }
    let stats = store.stats(clock.now()).await?;
    anyhow::ensure!(
        stats.incidents as usize >= ids.len() && stats.pending_effects == 0,
        "seeding left {} incidents and {} pending effects",
        stats.incidents,
        stats.pending_effects
    );
    drop(store);
    // The store's thread closes the database when its last handle is gone;
    // give it a moment so the daemon opens a quiet file.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(Seeded {
        incidents: ids.len(),
        resolved,
        took_ms: t0.elapsed().as_secs_f64() * 1e3,
    })
}

/// What [`seed_aged`] made.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Aged {
    /// Incidents in all.
    pub incidents: usize,
    /// Of which resolved `age_days` ago.
    pub resolved: usize,
    /// Of which open, each with its ack deadline armed.
    pub open: usize,
    /// How long ago the resolved ones were opened and resolved, in days.
    pub age_days: f64,
    /// How long seeding took, ms.
    pub took_ms: f64,
    /// Incidents applied through the library (the rest are copies of them,
    /// see [`crate::bulk`]).
    pub template: usize,
    /// Time to apply those, ms.
    pub template_ms: f64,
    /// Time to copy them, ms.
    pub copy_ms: f64,
}

/// Incidents whose batches are in flight at once in [`seed_aged`].
const AGED_IN_FLIGHT: usize = 4;

/// One batch of [`seed_aged`]: tickets opened at `opened`, their pages
/// delivered, then (when `solved` is given) solved at that time and their
/// resolves delivered.
async fn aged_batch(
    store: SqliteStore,
    chunk: Vec<u64>,
    opened: Millis,
    solved: Option<Millis>,
) -> anyhow::Result<()> {
    let new = chunk
        .iter()
        .map(|&id| intake(id, "new"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    try_join_all(new.into_iter().map(|i| store.apply(i, opened))).await?;
    deliver_all_at(&store, Some(opened)).await?;
    if let Some(at) = solved {
        let done = chunk
            .iter()
            .map(|&id| intake(id, "solved"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        try_join_all(done.into_iter().map(|i| store.apply(i, at))).await?;
        deliver_all_at(&store, Some(at)).await?;
    }
    Ok(())
}

/// Seeds `path` with one incident per ticket of `ids`: the last `open` are
/// opened now (ack deadline armed, page delivered); the others were opened
/// `age` ago, paged, solved a minute later and their resolve delivered, all
/// at those past times. With `age` past `store.retention`, those are what
/// the leader's retention pass deletes.
pub async fn seed_aged(
    path: &Path,
    ids: &[u64],
    open: usize,
    age: Duration,
    policy: Policy,
) -> anyhow::Result<Aged> {
    let t0 = Instant::now();
    let store = SqliteStore::open(path, Arc::new(policy))
        .with_context(|| format!("cannot open {}", path.display()))?;
    let clock = SystemClock;
    let open = open.min(ids.len());
    let (old, new) = ids.split_at(ids.len() - open);
    let age_ms = Millis::try_from(age.as_millis()).unwrap_or(Millis::MAX / 4);
    let opened_at = clock.now() - age_ms;
    let mut jobs = stream::iter(old.chunks(BATCH).enumerate().map(|(i, chunk)| {
        // Spread over the history a little: one ms per batch.
        let at = opened_at + i as Millis;
        aged_batch(store.clone(), chunk.to_vec(), at, Some(at + 60_000))
    }))
    .buffer_unordered(AGED_IN_FLIGHT);
    let mut done = 0usize;
    let mut last_note = Instant::now();
    while let Some(r) = jobs.next().await {
        r?;
        done += BATCH;
        if last_note.elapsed() > Duration::from_secs(30) {
            last_note = Instant::now();
            eprintln!(
                "pagerd-bench: seeded {} of {} old incidents ({:.0} s)",
                done.min(old.len()),
                old.len(),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    drop(jobs);
    for chunk in new.chunks(BATCH) {
        aged_batch(store.clone(), chunk.to_vec(), clock.now(), None).await?;
    }
    let stats = store.stats(clock.now()).await?;
    anyhow::ensure!(
        stats.incidents as usize >= ids.len()
            && stats.pending_effects == 0
            && stats.open_incidents as usize == open,
        "seeding left {} incidents ({} open) and {} pending effects",
        stats.incidents,
        stats.open_incidents,
        stats.pending_effects
    );
    drop(store);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(Aged {
        incidents: ids.len(),
        resolved: old.len(),
        open,
        age_days: age.as_secs_f64() / 86_400.0,
        took_ms: t0.elapsed().as_secs_f64() * 1e3,
        template: ids.len(),
        template_ms: t0.elapsed().as_secs_f64() * 1e3,
        copy_ms: 0.0,
    })
}

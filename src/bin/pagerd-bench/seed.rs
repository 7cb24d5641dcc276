//! Builds a store with many incidents before the daemon starts, through the
//! library's own store (`SqliteStore` + `Store::apply`), the same code and
//! transactions the daemon runs: each ticket is applied as the webhook
//! handler would apply it, its page is marked delivered as the dispatcher
//! would, and every other incident is then resolved by a "ticket solved"
//! event whose PagerDuty resolve is delivered too. Only the HTTP hops are
//! skipped, so 100 000 incidents take seconds rather than minutes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::future::try_join_all;
use pagerd::clock::{Clock, SystemClock};
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
    let clock = SystemClock;
    let mut n = 0;
    loop {
        let (due, _) = store.due(clock.now(), 4 * BATCH, Vec::new()).await?;
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
            async move { store.complete(p.id, ev, clock.now()).await }
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

//! Retention: keeps the store bounded without stalling intake.
//!
//! The leader runs [`run`]: every [`EVERY`] it walks the resolved incidents
//! older than `store.retention` in batches of [`BATCH`] ([`Store::prune`]),
//! pausing [`PAUSE`] between batches, so each batch is one short
//! transaction (on SQLite, one short job of the writer thread) and webhooks
//! queued meanwhile commit between two batches. What is deleted and what is
//! kept is [`Store::prune`]'s to say; webhook delivery ids are kept
//! [`DELIVERY_IDS_KEPT`]. A pass that fails is logged and tried again at the
//! next round: nothing depends on it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, millis};
use crate::store::{DELIVERY_IDS_KEPT, Pruned, Store, StoreError};

/// How often a pass runs (and how long after the leader starts).
pub const EVERY: Duration = Duration::from_secs(5 * 60);

/// Resolved incidents examined per batch: a few milliseconds of the SQLite
/// writer (deleting 500 took 20-40 ms on the 2-core test machine; see the
/// README, "Retention", for measured figures).
pub const BATCH: usize = 100;

/// The pause between two batches of a pass: the writer is busy with
/// retention a fraction of the time even while catching up on a backlog.
pub const PAUSE: Duration = Duration::from_millis(20);

/// Prunes every [`EVERY`] until `shutdown`; `retention` is `store.retention`.
pub async fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        match pass(&*store, &*clock, retention, BATCH, PAUSE, &shutdown).await {
            Ok(p) if p.incidents + p.deliveries > 0 => tracing::info!(
                incidents = p.incidents,
                journal = p.journal,
                outbox = p.outbox,
                deliveries = p.deliveries,
                examined = p.examined,
                retention = %humantime::format_duration(retention),
                "retention: removed old resolved incidents and webhook delivery ids"
            ),
            Ok(p) => tracing::debug!(examined = p.examined, "retention: nothing to remove"),
            Err(e) => tracing::warn!(cause = %e, "retention: pass failed; trying again next round"),
        }
    }
}

/// One pass: batches of `batch` with `pause` between them, until the store
/// says the pass is over or `shutdown` (then the counts so far).
pub async fn pass(
    store: &dyn Store,
    clock: &dyn Clock,
    retention: Duration,
    batch: usize,
    pause: Duration,
    shutdown: &CancellationToken,
) -> Result<Pruned, StoreError> {
    // One cut-off for the whole pass, so it ends.
    let now = clock.now();
    let before = now.saturating_sub(millis(retention));
    let deliveries_before = now.saturating_sub(millis(DELIVERY_IDS_KEPT));
    let mut total = Pruned::default();
    loop {
        let p = store
            .prune(before, deliveries_before, batch, total.next)
            .await?;
        total.add(&p);
        if p.finished {
            return Ok(total);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(total),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Event, Policy, Ticket};
    use crate::store::{Intake, SqliteStore};

    struct At(i64);

    impl Clock for At {
        fn now(&self) -> i64 {
            self.0
        }
        fn real(&self, ms: i64) -> Duration {
            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        }
        fn clock_time(&self, d: Duration) -> i64 {
            millis(d)
        }
    }

    fn solved(id: &str, status: &str) -> Intake {
        Intake::ticket(Ticket {
            id: id.into(),
            title: "down".into(),
            priority: "urgent".into(),
            status: status.into(),
            tags: vec![],
            url: "u".into(),
            requester_name: "D".into(),
            requester_email: "d@c.test".into(),
            organization: "C".into(),
        })
    }

    #[tokio::test]
    async fn a_pass_walks_every_batch_with_the_clock_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("p.db"), Arc::new(Policy::default())).unwrap();
        const DAY: i64 = 86_400_000;
        for i in 0..7 {
            let t = i.to_string();
            s.apply(solved(&t, "new"), 0).await.unwrap();
            let (due, _) = s.due(0, 10, vec![]).await.unwrap();
            for p in due {
                let ev = Event::Delivered {
                    effect: p.effect.kind(),
                    outcome: None,
                };
                s.complete(p.id, ev, 0).await.unwrap();
            }
            s.apply(solved(&t, "solved"), i * DAY).await.unwrap();
            let (due, _) = s.due(i * DAY, 10, vec![]).await.unwrap();
            for p in due {
                let ev = Event::Delivered {
                    effect: p.effect.kind(),
                    outcome: None,
                };
                s.complete(p.id, ev, i * DAY).await.unwrap();
            }
        }
        let stop = CancellationToken::new();
        let days = |d: u64| Duration::from_secs(d * 86_400);
        // Resolved on days 0..=6; at day 10 with 5 days kept: days 0..=4 go.
        let p = pass(&s, &At(10 * DAY), days(5), 2, Duration::ZERO, &stop)
            .await
            .unwrap();
        assert_eq!((p.incidents, p.examined), (5, 5), "{p:?}");
        assert!(p.finished);
        assert_eq!(s.stats(10 * DAY).await.unwrap().incidents, 2);
        // A cancelled pass stops after its first batch.
        stop.cancel();
        let p = pass(&s, &At(100 * DAY), days(5), 1, Duration::ZERO, &stop)
            .await
            .unwrap();
        assert_eq!(p.incidents, 1, "{p:?}");
        assert_eq!(s.stats(10 * DAY).await.unwrap().incidents, 1);
    }
}

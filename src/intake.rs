//! The in-process core shared by intake, scheduler and dispatcher: submit an
//! event to the store, then arm the incident's next deadline and wake the
//! dispatcher if effects were queued.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::clock::Millis;
use crate::handoff::Handoff;
use crate::leader::Leadership;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::people::Directory;
use crate::shared::Shared;
use crate::store::{Applied, Intake, Store, StoreError};
use crate::timers::Scheduler;

/// Everything a request handler or background task needs.
pub struct Core {
    /// Where incidents live.
    pub store: Arc<dyn Store>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// The deadlines in memory.
    pub scheduler: Arc<Scheduler>,
    /// Asks the dispatcher to read the outbox: effects were queued that
    /// the store does not hand off.
    pub dispatch: Arc<Notify>,
    /// The rows commits hand straight to the dispatcher, and the rows
    /// claimed for delivery.
    pub handoff: Arc<Handoff>,
    /// Counters, histograms and the scrape.
    pub metrics: Arc<Metrics>,
    /// Whether this instance fires timers and delivers.
    pub leadership: Arc<Leadership>,
    /// Who people are across channels (names and e-mails of responders);
    /// a reload swaps it (the `[people]` table, the vendors' tokens).
    pub people: Shared<Directory>,
    /// Whether the leader's loops are turning.
    pub health: Arc<crate::health::Heartbeats>,
    /// The counts of `/readyz` and `/metrics`, kept in memory.
    pub live: Arc<Live>,
}

impl Core {
    /// The core of a daemon over `store`: no deadline armed, not leading
    /// yet. When the store reports its commits ([`Store::hand_off`]), the
    /// rows they make deliverable go straight to the dispatcher.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        people: Shared<Directory>,
        live: Arc<Live>,
    ) -> Core {
        let dispatch = Arc::new(Notify::new());
        let handoff = Arc::new(Handoff::new(dispatch.clone()));
        handoff.set_covers_commits(store.hand_off(handoff.clone()));
        Core {
            store,
            clock,
            scheduler: Arc::new(Scheduler::default()),
            dispatch,
            handoff,
            metrics: Arc::new(Metrics::default()),
            leadership: Arc::new(Leadership::new(Leadership::default_holder())),
            people,
            health: Default::default(),
            live,
        }
    }

    /// Applies an event durably, then updates timers and wakes delivery.
    pub async fn submit(&self, intake: Intake) -> Result<Applied, StoreError> {
        let now = self.clock.now();
        let applied = self.store.apply(intake, now).await?;
        self.after_at(&applied, now);
        Ok(applied)
    }

    /// [`Core::after_at`] for a commit made just now.
    pub fn after(&self, applied: &Applied) {
        self.after_at(applied, self.clock.now());
    }

    /// What follows the settlement of an outbox row queued at `created_at`
    /// (delivered, or given up when `failed`), committed at `now`.
    pub fn settled(&self, created_at: Millis, failed: bool, applied: &Applied, now: Millis) {
        self.live.settled(created_at, failed);
        self.after_at(applied, now);
    }

    /// What follows any commit made at `now`: re-arm the incident's
    /// deadline, wake the dispatcher when there is something to deliver,
    /// count it.
    pub fn after_at(&self, applied: &Applied, now: Millis) {
        self.live.committed(applied, now);
        self.metrics.observe_commit(applied, now);
        // Re-arming an unchanged incident is harmless and keeps a timer
        // whose tick was ignored (nothing due yet) in the set.
        if let Some((id, due)) = applied.next_due() {
            self.scheduler.arm(id, due);
        }
        // A store that hands its rows off has told the dispatcher already.
        if applied.effects > 0 && !self.handoff.covers_commits() {
            self.dispatch.notify_one();
        }
    }
}

//! The in-process core shared by intake, scheduler and dispatcher: submit an
//! event to the store, then arm the incident's next deadline and wake the
//! dispatcher if effects were queued.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::people::Directory;
use crate::scheduler::Scheduler;
use crate::store::{Applied, Change, Intake, Store, StoreError};

/// Everything a request handler or background task needs.
pub struct Core {
    /// Where incidents live.
    pub store: Arc<dyn Store>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// The deadlines in memory.
    pub scheduler: Arc<Scheduler>,
    /// Wakes the dispatcher when new effects are queued.
    pub dispatch: Arc<Notify>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Whether this instance fires timers and delivers.
    pub leadership: Arc<Leadership>,
    /// Who people are across channels (names and e-mails of responders).
    pub people: Arc<Directory>,
    /// Whether the leader's loops are turning.
    pub health: Arc<crate::health::Heartbeats>,
}

impl Core {
    /// Applies an event durably, then updates timers and wakes delivery.
    pub async fn submit(&self, intake: Intake) -> Result<Applied, StoreError> {
        let applied = self.store.apply(intake, self.clock.now()).await?;
        self.after(&applied);
        Ok(applied)
    }

    /// What follows any commit: re-arm the incident's deadline, wake the
    /// dispatcher when there is something to deliver, count it.
    pub fn after(&self, applied: &Applied) {
        let result = match &applied.result {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Ignored(_) => "ignored",
            Change::Replayed => "replayed",
        };
        self.metrics
            .inc("pagerd_events_total", format!("result=\"{result}\""));
        // Re-arming an unchanged incident is harmless and keeps a timer
        // whose tick was ignored (nothing due yet) in the set.
        if let Some((id, due)) = applied.next_due() {
            self.scheduler.arm(id, due);
        }
        if applied.effects > 0 {
            self.dispatch.notify_one();
        }
    }
}

//! Deadlines fired on time: the task that runs the armed set of
//! [`crate::timers`].
//!
//! Like mini-redis's expiry task: one task that sleeps
//! until the earliest deadline or until a new, earlier one is armed. The set
//! is rebuilt from the store on start, so a deadline that passed while the
//! daemon was down fires at once. Firing means applying `Event::Tick` to the
//! incident: the engine decides what is due (escalate, declare a crisis…)
//! and returns the incident's next deadline, which is armed again.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::Event;
use crate::intake::Core;
use crate::store::Intake;
pub use crate::timers::Scheduler;

/// How many incidents' deadlines are processed at once (their store
/// transactions then share commits).
const FIRE_CONCURRENCY: usize = 64;

impl Scheduler {
    /// Loads every deadline from the store and fires them as they come due,
    /// until `shutdown`. With `reload` set (several instances share the
    /// store, and the others' intake arms no timer here), the deadlines are
    /// reloaded that often.
    pub async fn run(
        self: Arc<Self>,
        core: Arc<Core>,
        reload: Option<Duration>,
        shutdown: CancellationToken,
    ) {
        if !self.load(&core, &shutdown).await {
            return;
        }
        tracing::info!(armed = self.len(), "scheduler: deadlines loaded");
        let mut loaded = tokio::time::Instant::now();
        // Deadlines being processed: at most FIRE_CONCURRENCY at once, and
        // the loop goes on while they commit, so one slow transaction does
        // not hold up the deadlines behind it.
        let mut firing = tokio::task::JoinSet::new();
        loop {
            core.health.beat(crate::health::Loop::Scheduler);
            while firing.try_join_next().is_some() {}
            if let Some(every) = reload
                && loaded.elapsed() >= every
            {
                if !self.load(&core, &shutdown).await {
                    break;
                }
                loaded = tokio::time::Instant::now();
            }
            let now = core.clock.now();
            let (due, next) = self.take_due(now);
            for (at, id) in due {
                while firing.len() >= FIRE_CONCURRENCY {
                    firing.join_next().await;
                }
                core.metrics.observe_timer(at, core.clock.now());
                let (me, core) = (self.clone(), core.clone());
                firing.spawn(async move { me.fire(&core, id).await });
            }
            // Re-check at least every minute: cheap, and bounds the harm of a
            // wall-clock jump.
            // And turn at least every beat, to show the loop is alive.
            let mut wait = next
                .map_or(Duration::from_secs(60), |n| core.clock.until(n))
                .min(Duration::from_secs(60))
                .min(crate::health::BEAT_EVERY);
            if let Some(every) = reload {
                wait = wait.min(every);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        while firing.join_next().await.is_some() {}
    }

    /// Arms every deadline in the store; `false` when shut down meanwhile.
    async fn load(&self, core: &Core, shutdown: &CancellationToken) -> bool {
        loop {
            match core.store.deadlines().await {
                Ok(all) => {
                    for (id, due) in all {
                        self.arm_stored(id, due);
                    }
                    return true;
                }
                Err(e) => {
                    tracing::error!(cause = %e, "scheduler: cannot load deadlines; retrying in 1s");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    async fn fire(&self, core: &Arc<Core>, id: i64) {
        let intake = Intake::incident(id, Event::Tick);
        if let Err(e) = core.submit(intake).await {
            tracing::error!(incident = id, cause = %e, "scheduler: deadline not processed; retrying in 1s");
            // Version 0: a commit's deadline armed meanwhile stands.
            self.arm(id, Some(core.clock.now() + 1000), 0);
        }
    }
}

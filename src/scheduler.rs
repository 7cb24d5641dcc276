//! Deadlines in memory, fired on time.
//!
//! Like mini-redis's expiry task: a sorted set of `(due, incident)` under a
//! std mutex that is never held across an `.await`, and one task that sleeps
//! until the earliest deadline or until a new, earlier one is armed. The set
//! is rebuilt from the store on start, so a deadline that passed while the
//! daemon was down fires at once. Firing means applying `Event::Tick` to the
//! incident: the engine decides what is due (escalate, declare a crisis…)
//! and returns the incident's next deadline, which is armed again.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Millis;
use crate::core::Core;
use crate::engine::Event;
use crate::store::Intake;

/// How many incidents' deadlines are processed at once (their store
/// transactions then share commits).
const FIRE_CONCURRENCY: usize = 64;

#[derive(Default)]
struct Timers {
    queue: BTreeSet<(Millis, i64)>,
    by_incident: HashMap<i64, Millis>,
}

/// The armed deadlines: one per incident, its earliest.
#[derive(Default)]
pub struct Scheduler {
    timers: Mutex<Timers>,
    wake: Notify,
}

impl Scheduler {
    /// Sets (or, with `None`, clears) an incident's next deadline.
    pub fn arm(&self, incident: i64, due: Option<Millis>) {
        let mut t = self.timers.lock().expect("timers lock");
        // Remove the old entry before inserting the new one, or a moved
        // deadline would fire twice.
        if let Some(old) = t.by_incident.remove(&incident) {
            t.queue.remove(&(old, incident));
        }
        let Some(due) = due else { return };
        let earliest = t.queue.first().is_none_or(|(head, _)| due < *head);
        t.queue.insert((due, incident));
        t.by_incident.insert(incident, due);
        drop(t);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// How many deadlines are armed.
    pub fn len(&self) -> usize {
        self.timers.lock().expect("timers lock").queue.len()
    }

    /// Whether no deadline is armed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every deadline due at `now`; returns them (`(due, incident)`)
    /// and the next one.
    fn take_due(&self, now: Millis) -> (Vec<(Millis, i64)>, Option<Millis>) {
        let mut t = self.timers.lock().expect("timers lock");
        let mut due = Vec::new();
        while let Some(&(at, id)) = t.queue.first() {
            if at > now {
                break;
            }
            t.queue.pop_first();
            t.by_incident.remove(&id);
            due.push((at, id));
        }
        (due, t.queue.first().map(|(at, _)| *at))
    }

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
                .map_or(Duration::from_secs(60), |n| core.clock.real(n - now))
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
                        self.arm(id, Some(due));
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

    async fn fire(&self, core: &Core, id: i64) {
        let intake = Intake::incident(id, Event::Tick);
        if let Err(e) = core.submit(intake).await {
            tracing::error!(incident = id, cause = %e, "scheduler: deadline not processed; retrying in 1s");
            self.arm(id, Some(core.clock.now() + 1000));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rearming_moves_the_deadline_instead_of_adding_one() {
        let s = Scheduler::default();
        s.arm(1, Some(100));
        s.arm(1, Some(50));
        s.arm(2, Some(70));
        assert_eq!(s.len(), 2);
        assert_eq!(s.take_due(60), (vec![(50, 1)], Some(70)));
        s.arm(2, None);
        assert!(s.is_empty());
    }
}

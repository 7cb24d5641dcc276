//! The armed deadlines in memory: one per incident, its earliest, in a
//! sorted set under a std mutex that is never held across an `.await` (as
//! mini-redis keeps its expiries). Intake arms them after each commit; the
//! loop that fires them is [`crate::scheduler`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::clock::Millis;

#[derive(Default)]
struct Timers {
    queue: BTreeSet<(Millis, i64)>,
    /// Each armed incident's deadline and the version it came from.
    by_incident: HashMap<i64, (Millis, i64)>,
}

/// The armed deadlines: one per incident, its earliest.
#[derive(Default)]
pub struct Scheduler {
    timers: Mutex<Timers>,
    /// Woken when an earlier deadline is armed (the loop in `scheduler.rs`).
    pub(crate) wake: Notify,
}

impl Scheduler {
    /// Sets (or, with `None`, clears) an incident's next deadline, as of
    /// the incident's `version` ([`crate::store::Applied::version`]; 0 for
    /// a deadline read from the store). A version older than the one armed
    /// is ignored: the sequel of an older commit heard late (the intake
    /// that queued a page answers after the page's settlement started the
    /// acknowledgement timer) must not put back the older deadline.
    pub fn arm(&self, incident: i64, due: Option<Millis>, version: i64) {
        let mut t = self.timers.lock().expect("timers lock");
        if let Some(&(old, armed)) = t.by_incident.get(&incident) {
            if version < armed {
                return;
            }
            // Remove the old entry before inserting the new one, or a moved
            // deadline would fire twice.
            t.by_incident.remove(&incident);
            t.queue.remove(&(old, incident));
        }
        let Some(due) = due else { return };
        let earliest = t.queue.first().is_none_or(|(head, _)| due < *head);
        t.queue.insert((due, incident));
        t.by_incident.insert(incident, (due, version));
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
    pub(crate) fn take_due(&self, now: Millis) -> (Vec<(Millis, i64)>, Option<Millis>) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rearming_moves_the_deadline_instead_of_adding_one() {
        let s = Scheduler::default();
        s.arm(1, Some(100), 1);
        s.arm(1, Some(50), 2);
        s.arm(2, Some(70), 1);
        assert_eq!(s.len(), 2);
        assert_eq!(s.take_due(60), (vec![(50, 1)], Some(70)));
        s.arm(2, None, 2);
        assert!(s.is_empty());
    }

    #[test]
    fn an_older_commits_deadline_heard_late_does_not_replace_a_newer_one() {
        // Found by pagerd-bench: the intake (version 10, next deadline the
        // one-hour crisis) answered after the page's settlement (version
        // 11, the 15 s acknowledgement deadline) was armed; the ack timer
        // was lost.
        let s = Scheduler::default();
        s.arm(1, Some(15_000), 11);
        s.arm(1, Some(3_600_000), 10);
        assert_eq!(s.take_due(15_000), (vec![(15_000, 1)], None));
        // Newer versions, and the same version again, still move it.
        s.arm(2, Some(500), 3);
        s.arm(2, Some(400), 3);
        s.arm(2, Some(300), 4);
        assert_eq!(s.take_due(1_000), (vec![(300, 2)], None));
        // A deadline read from the store (version 0) arms what nothing
        // armed, and moves nothing a commit armed.
        s.arm(3, Some(900), 0);
        s.arm(4, Some(800), 7);
        s.arm(4, Some(100), 0);
        assert_eq!(s.take_due(1_000), (vec![(800, 4), (900, 3)], None));
    }
}

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
    by_incident: HashMap<i64, Millis>,
}

/// The armed deadlines: one per incident, its earliest.
#[derive(Default)]
pub struct Scheduler {
    timers: Mutex<Timers>,
    /// Woken when an earlier deadline is armed (the loop in `scheduler.rs`).
    pub(crate) wake: Notify,
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
        s.arm(1, Some(100));
        s.arm(1, Some(50));
        s.arm(2, Some(70));
        assert_eq!(s.len(), 2);
        assert_eq!(s.take_due(60), (vec![(50, 1)], Some(70)));
        s.arm(2, None);
        assert!(s.is_empty());
    }
}

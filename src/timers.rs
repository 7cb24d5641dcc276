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
    /// the incident's `version` ([`crate::store::Applied::version`]). A
    /// version older than the one armed is ignored: the sequel of an older
    /// commit heard late (the intake that queued a page answers after the
    /// page's settlement started the acknowledgement timer) must not put
    /// back the older deadline.
    pub fn arm(&self, incident: i64, due: Option<Millis>, version: i64) {
        self.set(incident, due, Some(version));
    }

    /// Sets an incident's deadline as read from the store (at start, and
    /// every `reload` when other instances commit too): it replaces what is
    /// armed, whatever its version, since another instance's commits arm
    /// nothing here; commits heard later still move it.
    pub fn arm_stored(&self, incident: i64, due: Millis) {
        self.set(incident, Some(due), None);
    }

    fn set(&self, incident: i64, due: Option<Millis>, version: Option<i64>) {
        let mut t = self.timers.lock().expect("timers lock");
        let mut keep = version.unwrap_or(0);
        if let Some(&(old, armed)) = t.by_incident.get(&incident) {
            match version {
                Some(v) if v < armed => return,
                Some(_) => {}
                None => keep = armed,
            }
            // Remove the old entry before inserting the new one, or a moved
            // deadline would fire twice.
            t.by_incident.remove(&incident);
            t.queue.remove(&(old, incident));
        }
        let Some(due) = due else { return };
        let earliest = t.queue.first().is_none_or(|(head, _)| due < *head);
        t.queue.insert((due, incident));
        t.by_incident.insert(incident, (due, keep));
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
        // A deadline read from the store replaces what is armed (another
        // instance may have moved it), and keeps the version armed: a late
        // older sequel still cannot move it, a newer commit can.
        s.arm(4, Some(3_600_000), 7);
        s.arm_stored(4, 800);
        s.arm(4, Some(5_000), 6);
        assert_eq!(s.take_due(1_000), (vec![(800, 4)], None));
        s.arm(5, Some(3_600_000), 7);
        s.arm_stored(5, 800);
        s.arm(5, Some(900), 8);
        assert_eq!(s.take_due(1_000), (vec![(900, 5)], None));
    }
}

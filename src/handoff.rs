//! The in-memory hand-off from a commit to the dispatcher, and the claims
//! that keep one outbox row from being delivered twice.
//!
//! A store that sees every commit (SQLite: [`Store::hand_off`]) reports the
//! outbox rows each commit made deliverable, right after the commit is
//! durable (pages and timer escalations sooner: [`Ready`]). [`Handoff`]
//! claims them and queues them for the dispatcher, which sends them at
//! once, without reading the outbox back through the store. The rows stay
//! pending in the outbox until their outcome is stored, so a crash
//! redelivers them as before; and the dispatcher still reads the outbox
//! ([`Store::due`]) at start, on a timer, for retries, and for what the
//! hand-off declined (no dispatcher running, or too many rows already
//! waiting).
//!
//! Both ways claim a row here before delivering it, and it stays claimed
//! until its outcome is stored (or it is given back). The hand-off claims
//! before any scan can hand the row out; a scan's answer, though, may be
//! older than claims and releases made while it ran. So a scan skips the
//! rows claimed when it starts (the store leaves them out), and when it
//! ends it drops the rows claimed since, and those released since: a
//! released row was settled, or its outcome could not be stored and a later
//! scan picks it up. Why this never delivers a row twice:
//!
//! - a row reported by the hand-off is claimed before its commit is
//!   written (a page, by the store's writer thread) or after it (a timer's
//!   escalation by the writer thread, before the sync; another row by the
//!   sync thread, after it), before anything the writer ran later is
//!   answered (the sync thread answers in the writer's order); a scan that
//!   saw the row ran after that commit, so it started before the claim
//!   only if it ended after it: the row is in flight, or was released
//!   during the scan, and is dropped. (A page whose commit then failed is
//!   never seen by a scan, and its id is never given to another row.)
//! - a row claimed and released before a scan started was settled before
//!   the scan read the outbox (or its outcome was not stored, and it is due
//!   again);
//! - the hand-off reports a row once, when it becomes deliverable, and a
//!   row already claimed is declined.
//!
//! Order per incident and lane holds because only a lane's head (its oldest
//! pending row) is ever reported or scanned, and the next row becomes head
//! only when the head is settled.
//!
//! [`Store::hand_off`]: crate::store::Store::hand_off
//! [`Store::due`]: crate::store::Store::due

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::store::{Pending, Ready};

/// The rows handed to the dispatcher, and every row claimed for delivery.
pub struct Handoff {
    state: Mutex<State>,
    /// Wakes the dispatcher: rows were queued.
    queued: Notify,
    /// Asks the dispatcher to read the outbox: a row was declined.
    scan: Arc<Notify>,
    /// Whether a store reports its commits here.
    covers: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Rows claimed: queued here, or being delivered, until released.
    claimed: HashSet<i64>,
    /// While a scan runs: the rows claimed or released since it started.
    changed: Option<HashSet<i64>>,
    /// Rows waiting for the dispatcher, oldest first (all claimed).
    queue: VecDeque<Pending>,
    /// Most rows that may wait; `None` while no dispatcher takes them.
    room: Option<usize>,
    /// A row was declined for want of room: newer rows are declined too
    /// until a scan catches up, so the oldest go first (the scan reads
    /// the outbox oldest first) instead of waiting behind every newer row
    /// the hand-off would queue.
    overflow: bool,
}

impl Handoff {
    /// A hand-off that asks for a scan through `scan` (the dispatcher's
    /// wake-up) when it declines a row.
    pub fn new(scan: Arc<Notify>) -> Handoff {
        Handoff {
            state: Mutex::default(),
            queued: Notify::new(),
            scan,
            covers: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement: a panic elsewhere
        // while holding the lock leaves nothing half done.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records whether the store reports every commit here (the answer of
    /// [`crate::store::Store::hand_off`]).
    pub fn set_covers_commits(&self, covers: bool) {
        self.covers.store(covers, Ordering::Release);
    }

    /// Whether every commit's deliverable rows are reported here: then a
    /// commit or a settlement need not ask the dispatcher to read the
    /// outbox.
    pub fn covers_commits(&self) -> bool {
        self.covers.load(Ordering::Acquire)
    }

    /// A dispatcher starts taking rows; at most `room` wait for it.
    pub fn open(&self, room: usize) {
        self.lock().room = Some(room.max(1));
    }

    /// The dispatcher stops taking rows: those waiting are given back (they
    /// stay pending in the outbox for the next dispatcher or start).
    pub fn close(&self) {
        let mut st = self.lock();
        st.room = None;
        let waiting: Vec<i64> = st.queue.drain(..).map(|p| p.id).collect();
        for id in waiting {
            st.release(id);
        }
    }

    /// Waits until rows are queued (returns at once if some were queued
    /// since the last wait).
    pub async fn queued(&self) {
        self.queued.notified().await;
    }

    /// Up to `n` waiting rows, oldest first. They are claimed: deliver each,
    /// then [`Handoff::release`] it.
    pub fn take(&self, n: usize) -> Vec<Pending> {
        let mut st = self.lock();
        let n = n.min(st.queue.len());
        st.queue.drain(..n).collect()
    }

    /// A scan starts: returns the rows it must skip (claimed now).
    pub fn scan_started(&self) -> Vec<i64> {
        let mut st = self.lock();
        st.changed = Some(HashSet::new());
        st.claimed.iter().copied().collect()
    }

    /// A scan ended with `rows`: returns those nobody claimed or released
    /// since it started, now claimed for the caller. Call it (with nothing)
    /// when the scan failed, too.
    pub fn scan_ended(&self, rows: Vec<Pending>) -> Vec<Pending> {
        let mut st = self.lock();
        let changed = st.changed.take().unwrap_or_default();
        rows.into_iter()
            .filter(|p| !changed.contains(&p.id) && st.claimed.insert(p.id))
            .collect()
    }

    /// A scan found every due row: rows may be queued again.
    pub fn caught_up(&self) {
        self.lock().overflow = false;
    }

    /// Gives a claimed row back, once its outcome is stored or the attempt
    /// was abandoned (then it stays pending for a later scan).
    pub fn release(&self, id: i64) {
        self.lock().release(id);
    }

    /// How many rows are claimed (queued or being delivered).
    pub fn claimed(&self) -> usize {
        self.lock().claimed.len()
    }
}

impl State {
    fn release(&mut self, id: i64) {
        self.claimed.remove(&id);
        if let Some(changed) = self.changed.as_mut() {
            changed.insert(id);
        }
    }
}

impl Ready for Handoff {
    fn ready(&self, rows: Vec<Pending>) {
        let (mut queued, mut declined) = (false, false);
        let mut st = self.lock();
        for p in rows {
            let room = !st.overflow && st.room.is_some_and(|room| st.queue.len() < room);
            if room && st.claimed.insert(p.id) {
                st.queue.push_back(p);
                queued = true;
            } else {
                // Full (not merely claimed already): the scan takes over.
                st.overflow |= st.room.is_some() && !st.claimed.contains(&p.id);
                declined = true;
            }
        }
        drop(st);
        if queued {
            self.queued.notify_one();
        }
        if declined {
            self.scan.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Decision, Effect, Event, Incident, Policy, Ticket};

    fn incident() -> Incident {
        let ticket = Ticket {
            id: "8001".into(),
            title: "down".into(),
            priority: "urgent".into(),
            status: "new".into(),
            tags: vec![],
            url: "u".into(),
            requester_name: "D".into(),
            requester_email: "d@c.test".into(),
            organization: "C".into(),
        };
        let event = Event::Ticket {
            ticket,
            polled: false,
        };
        match crate::engine::apply(&Policy::default(), None, &event, 0) {
            Decision::Apply { incident, .. } => incident,
            Decision::Ignore(why) => panic!("not an emergency: {why}"),
        }
    }

    fn row(id: i64) -> Pending {
        Pending {
            id,
            effect: Effect::PageResolve,
            attempts: 0,
            maybe_sent: false,
            created_at: 0,
            incident: incident(),
        }
    }

    fn ids(rows: &[Pending]) -> Vec<i64> {
        rows.iter().map(|p| p.id).collect()
    }

    #[test]
    fn handed_rows_are_claimed_and_taken_in_order() {
        let h = Handoff::new(Arc::new(Notify::new()));
        h.open(10);
        h.ready(vec![row(1), row(2)]);
        h.ready(vec![row(3)]);
        assert_eq!(h.claimed(), 3);
        assert_eq!(ids(&h.take(2)), [1, 2]);
        assert_eq!(ids(&h.take(5)), [3]);
        // Reported again while claimed: declined, not queued twice.
        h.ready(vec![row(1)]);
        assert!(h.take(5).is_empty());
        h.release(1);
        h.release(2);
        h.release(3);
        assert_eq!(h.claimed(), 0);
    }

    #[test]
    fn without_a_dispatcher_or_room_rows_are_declined_and_a_scan_is_asked() {
        let scan = Arc::new(Notify::new());
        let h = Handoff::new(scan.clone());
        h.ready(vec![row(1)]);
        assert_eq!(h.claimed(), 0, "nobody takes rows: declined");
        h.open(1);
        h.ready(vec![row(2), row(3)]);
        assert_eq!(ids(&h.take(5)), [2], "room for one");
        assert_eq!(h.claimed(), 1);
        // The scan was asked for (a stored permit makes this return).
        let asked = scan.notified();
        tokio::pin!(asked);
        assert!(futures_util::FutureExt::now_or_never(asked).is_some());
    }

    #[test]
    fn once_full_newer_rows_wait_for_the_scan_behind_the_older_ones() {
        let h = Handoff::new(Arc::new(Notify::new()));
        h.open(1);
        h.ready(vec![row(1), row(2)]);
        assert_eq!(ids(&h.take(5)), [1], "room for one; row 2 declined");
        // Room again, but row 2 (declined, older) must go first: row 3 is
        // declined too and left to the scan, which reads oldest first.
        h.ready(vec![row(3)]);
        assert!(h.take(5).is_empty());
        h.scan_started();
        assert_eq!(ids(&h.scan_ended(vec![row(2), row(3)])), [2, 3]);
        h.caught_up();
        h.ready(vec![row(4)]);
        assert_eq!(ids(&h.take(5)), [4], "caught up: handed off again");
    }

    #[test]
    fn closing_gives_waiting_rows_back() {
        let h = Handoff::new(Arc::new(Notify::new()));
        h.open(10);
        h.ready(vec![row(1), row(2)]);
        let taken = h.take(1);
        h.close();
        assert_eq!(h.claimed(), 1, "the row being delivered stays claimed");
        h.release(taken[0].id);
        assert_eq!(h.claimed(), 0);
        h.ready(vec![row(3)]);
        assert_eq!(h.claimed(), 0, "closed: declined");
    }

    #[test]
    fn a_scan_never_hands_out_a_row_claimed_or_released_while_it_ran() {
        let h = Handoff::new(Arc::new(Notify::new()));
        h.open(10);
        h.ready(vec![row(1)]);
        let skip = h.scan_started();
        assert_eq!(skip, [1]);
        // While the scan runs: row 2 is handed off, delivered and settled;
        // row 3 is handed off and still waits; row 1 is settled.
        h.ready(vec![row(2), row(3)]);
        let taken = h.take(1);
        assert_eq!(ids(&taken), [1]);
        h.release(1);
        let two = h.take(1);
        assert_eq!(ids(&two), [2]);
        h.release(2);
        // The scan read the outbox before those settlements: it lists them
        // all, and row 4 that nobody claimed.
        let got = h.scan_ended(vec![row(1), row(2), row(3), row(4)]);
        assert_eq!(ids(&got), [4]);
        assert_eq!(h.claimed(), 2, "rows 3 and 4");
        // The next scan skips what is claimed, and takes what was released
        // before it started.
        let mut skip = h.scan_started();
        skip.sort_unstable();
        assert_eq!(skip, [3, 4]);
        assert_eq!(ids(&h.scan_ended(vec![row(2)])), [2]);
    }
}

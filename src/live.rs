//! What `/healthz`, `/readyz` and `/metrics` report, kept in memory.
//!
//! The public endpoints never touch the store: a flood of them must not
//! queue behind (or in front of) webhooks on SQLite's single writer, and
//! they must answer while the store is locked. So the counts are loaded
//! once at start, from a read-only connection, then changed by each commit
//! ([`crate::intake::Core::after_at`]) and each settled delivery
//! ([`crate::intake::Core::settled`]). A background task corrects them from
//! the database now and then (several instances share a PostgreSQL store
//! and each only sees its own commits) and probes the store, off the
//! request path; the probe's result is what `/readyz` reports.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Millis;
use crate::engine::Status;
use crate::store::{Applied, Change, Stats};

/// How stale the last good store probe may be before `/readyz` says no.
pub const PROBE_STALE: Duration = Duration::from_secs(5);

/// The counts, and when each pending effect was queued.
#[derive(Default)]
struct Counts {
    incidents: u64,
    open: u64,
    /// Open and acknowledged.
    acknowledged: u64,
    /// Signed, like `queued_at`: see there.
    pending: i64,
    failed: u64,
    /// Open incidents whose page failed for good, not re-sent.
    undeliverable: u64,
    /// `created_at → how many pending effects` (a multiset), for the age
    /// of the oldest. May miss rows queued by another instance until the
    /// next correction. A count may be negative for a moment: a page or a
    /// timer's escalation leaves while its commit syncs, so its delivery
    /// can be settled before the commit that queued it is counted; the
    /// two then cancel out whichever comes first. Entries are removed at 0.
    queued_at: BTreeMap<Millis, i64>,
}

impl Counts {
    /// Adds `n` (negative: takes) to the effects queued at `at`.
    fn queue(&mut self, at: Millis, n: i64) {
        let count = self.queued_at.entry(at).or_insert(0);
        *count = count.saturating_add(n);
        if *count == 0 {
            self.queued_at.remove(&at);
        }
    }
}

/// The last store probe.
struct Probe {
    at: Instant,
    ok: bool,
}

/// In-memory state of the public endpoints.
pub struct Live {
    counts: Mutex<Counts>,
    loaded: AtomicBool,
    stopping: AtomicBool,
    /// Bumped by every local change: a correction read while it moved is
    /// not applied (it may have missed or double counted that change).
    seq: AtomicU64,
    probe: Mutex<Option<Probe>>,
}

impl Default for Live {
    fn default() -> Live {
        Live {
            counts: Mutex::new(Counts::default()),
            loaded: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            probe: Mutex::new(None),
        }
    }
}

/// Why the daemon is not ready, in words safe to tell anyone.
pub type NotReady = &'static str;

impl Live {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while holding this lock leaves plain numbers: still usable.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What a commit at `now` changed.
    pub fn committed(&self, applied: &Applied, now: Millis) {
        let open_now = applied.incident.as_ref().map(|i| i.is_open());
        // Acknowledged by this very commit (the engine stamps `now`, once:
        // an acknowledged incident never goes back to triggered).
        let acked_now = applied
            .incident
            .as_ref()
            .and_then(|i| i.acked.as_ref())
            .is_some_and(|(_, at)| *at == now);
        let mut c = self.counts();
        c.undeliverable = c
            .undeliverable
            .saturating_add_signed(applied.undeliverable_delta);
        match (&applied.result, &applied.incident) {
            (Change::Created, inc) => {
                c.incidents += 1;
                if open_now == Some(true) {
                    c.open += 1;
                    if inc
                        .as_ref()
                        .is_some_and(|i| i.status == Status::Acknowledged)
                    {
                        c.acknowledged += 1;
                    }
                }
            }
            // Resolved by this very commit (the engine stamps `now`); later
            // commits on a resolved incident carry an older stamp.
            (Change::Updated, Some(inc))
                if inc.status == Status::Resolved
                    && inc.resolved.as_ref().is_some_and(|(_, at)| *at == now) =>
            {
                c.open = c.open.saturating_sub(1);
                if inc.acked.is_some() && !acked_now {
                    c.acknowledged = c.acknowledged.saturating_sub(1);
                }
            }
            (Change::Updated, Some(inc)) if inc.status == Status::Acknowledged && acked_now => {
                c.acknowledged += 1;
            }
            _ => {}
        }
        if applied.effects > 0 {
            let n = i64::try_from(applied.effects).unwrap_or(i64::MAX);
            c.pending = c.pending.saturating_add(n);
            c.queue(now, n);
        }
        drop(c);
        self.seq.fetch_add(1, Ordering::SeqCst);
    }

    /// An outbox row queued at `created_at` is done: delivered, or given up
    /// (`failed`).
    pub fn settled(&self, created_at: Millis, failed: bool) {
        let mut c = self.counts();
        c.pending = c.pending.saturating_sub(1);
        if failed {
            c.failed += 1;
        }
        c.queue(created_at, -1);
        drop(c);
        self.seq.fetch_add(1, Ordering::SeqCst);
    }

    /// The current local change number (see [`Live::correct`]).
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Replaces the counts with what the database says (read at `now`),
    /// with the queue times of pending rows when known (`queued`), else
    /// just the oldest. Applied only when nothing changed locally since
    /// `seq` was read before the query, or when `force`d (after several
    /// skipped rounds under steady load); returns whether it was.
    pub fn correct(
        &self,
        seq: u64,
        force: bool,
        stats: &Stats,
        now: Millis,
        queued: Option<BTreeMap<Millis, u64>>,
    ) -> bool {
        let mut c = self.counts();
        if !force && self.seq.load(Ordering::SeqCst) != seq {
            return false;
        }
        c.incidents = stats.incidents;
        c.open = stats.open_incidents;
        c.acknowledged = stats.acknowledged_incidents;
        c.pending = i64::try_from(stats.pending_effects).unwrap_or(i64::MAX);
        c.failed = stats.failed_effects;
        c.undeliverable = stats.undeliverable;
        match queued {
            Some(q) => {
                c.queued_at = q
                    .into_iter()
                    .map(|(at, n)| (at, i64::try_from(n).unwrap_or(i64::MAX)))
                    .collect();
            }
            None if stats.pending_effects == 0 => c.queued_at.clear(),
            None => {
                // Rows older than the database's oldest are done.
                let oldest = now - stats.oldest_pending_ms;
                c.queued_at = c.queued_at.split_off(&oldest);
                c.queued_at.entry(oldest).or_insert(1);
            }
        }
        drop(c);
        self.loaded.store(true, Ordering::SeqCst);
        true
    }

    /// The counts as of `now`.
    pub fn stats(&self, now: Millis) -> Stats {
        let c = self.counts();
        let oldest = c
            .queued_at
            .iter()
            .find(|(_, n)| **n > 0)
            .filter(|_| c.pending > 0)
            .map_or(0, |(at, _)| (now - at).max(0));
        Stats {
            open_incidents: c.open,
            acknowledged_incidents: c.acknowledged.min(c.open),
            incidents: c.incidents,
            pending_effects: u64::try_from(c.pending).unwrap_or(0),
            failed_effects: c.failed,
            undeliverable: c.undeliverable,
            oldest_pending_ms: oldest,
        }
    }

    /// Records a store probe's outcome.
    pub fn probed(&self, ok: bool) {
        *self
            .probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Probe {
            at: Instant::now(),
            ok,
        });
    }

    /// Records that shutdown began: `/readyz` says so from now on.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// `Ok` when ready to take webhooks, else why not.
    pub fn ready(&self) -> Result<(), NotReady> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err("shutting down");
        }
        if !self.loaded.load(Ordering::SeqCst) {
            return Err("starting: counts not loaded yet");
        }
        let probe = self
            .probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*probe {
            None => Err("starting: store not probed yet"),
            Some(p) if !p.ok => Err("the store does not answer or fails"),
            Some(p) if p.at.elapsed() > PROBE_STALE => Err("the store does not answer"),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Incident, Ticket};

    fn incident(status: Status, resolved_at: Option<Millis>) -> Incident {
        Incident {
            id: 1,
            dedup_key: "zendesk-1".into(),
            ticket: Ticket {
                id: "1".into(),
                title: String::new(),
                priority: "urgent".into(),
                status: "new".into(),
                tags: vec![],
                url: String::new(),
                requester_name: String::new(),
                requester_email: String::new(),
                organization: String::new(),
            },
            status,
            opened_at: 0,
            level: 1,
            acked: None,
            resolved: resolved_at.map(|at| ("ana".to_string(), at)),
            responders: vec![],
            deadlines: Default::default(),
            page_pending: false,
            fallback_sent: false,
            pagerduty_id: None,
            crisis: None,
            last_error: None,
            episode: 1,
            paged_at: None,
            escalated_at: None,
            undeliverable: None,
        }
    }

    fn applied(result: Change, inc: Incident, effects: usize) -> Applied {
        Applied {
            result,
            incident: Some(inc),
            effects,
            undeliverable_delta: 0,
            version: 0,
        }
    }

    #[test]
    fn commits_and_settlements_move_the_counts() {
        let live = Live::default();
        live.committed(
            &applied(Change::Created, incident(Status::Triggered, None), 2),
            100,
        );
        let mut acked = incident(Status::Acknowledged, None);
        acked.acked = Some(("ana".into(), 200));
        live.committed(&applied(Change::Updated, acked.clone(), 1), 200);
        // A later commit on the acknowledged incident is no second ack.
        live.committed(&applied(Change::Updated, acked.clone(), 0), 250);
        let s = live.stats(300);
        assert_eq!(
            (s.incidents, s.open_incidents, s.pending_effects),
            (1, 1, 3)
        );
        assert_eq!(s.acknowledged_incidents, 1);
        assert_eq!(s.oldest_pending_ms, 200);
        live.settled(100, false);
        live.settled(100, true);
        let s = live.stats(300);
        assert_eq!((s.pending_effects, s.failed_effects), (1, 1));
        assert_eq!(s.oldest_pending_ms, 100, "the row queued at 200 is left");
        // Resolved by this commit: one open fewer; a later commit on the
        // resolved incident changes nothing.
        let mut resolved = incident(Status::Resolved, Some(400));
        resolved.acked = acked.acked;
        live.committed(&applied(Change::Updated, resolved.clone(), 0), 400);
        live.committed(&applied(Change::Updated, resolved, 0), 500);
        assert_eq!(live.stats(500).open_incidents, 0);
        assert_eq!(live.stats(500).acknowledged_incidents, 0);
    }

    #[test]
    fn a_row_settled_before_its_commit_is_counted_leaves_nothing_pending() {
        // A page (or a timer's escalation) leaves while its commit syncs:
        // its delivery may be settled before the intake task counts the
        // commit that queued it.
        let live = Live::default();
        live.committed(
            &applied(Change::Created, incident(Status::Triggered, None), 1),
            100,
        );
        live.settled(200, false);
        live.committed(
            &applied(Change::Created, incident(Status::Triggered, None), 1),
            200,
        );
        let s = live.stats(300);
        assert_eq!(s.pending_effects, 1);
        assert_eq!(s.oldest_pending_ms, 200, "the row queued at 100 is left");
        live.settled(100, false);
        let s = live.stats(300);
        assert_eq!((s.pending_effects, s.oldest_pending_ms), (0, 0));
        // The same with nothing else pending.
        live.settled(400, false);
        assert_eq!(live.stats(500).pending_effects, 0);
        live.committed(
            &applied(Change::Created, incident(Status::Triggered, None), 2),
            400,
        );
        let s = live.stats(500);
        assert_eq!((s.pending_effects, s.oldest_pending_ms), (1, 100));
    }

    #[test]
    fn a_correction_read_during_a_local_change_is_not_applied() {
        let live = Live::default();
        assert!(live.ready().is_err(), "not loaded");
        let seq = live.seq();
        live.committed(
            &applied(Change::Created, incident(Status::Triggered, None), 0),
            1,
        );
        assert!(!live.correct(seq, false, &Stats::default(), 1, None));
        assert_eq!(live.stats(1).incidents, 1);
        let stats = Stats {
            incidents: 7,
            pending_effects: 1,
            oldest_pending_ms: 50,
            ..Stats::default()
        };
        assert!(live.correct(live.seq(), false, &stats, 100, None));
        assert_eq!(live.stats(100).incidents, 7);
        assert_eq!(live.stats(100).oldest_pending_ms, 50);
        live.probed(true);
        assert_eq!(live.ready(), Ok(()));
        live.stopping();
        assert_eq!(live.ready(), Err("shutting down"));
    }
}

//! Delivers the outbox: every effect, at least once, in order per incident
//! and lane, with backoff.
//!
//! Rows reach the loop two ways. A commit's new lane heads come straight
//! from the store's commit through the [`Handoff`] (SQLite), and go out at
//! once. The loop also reads the outbox ([`crate::store::Store::due`]: the
//! oldest pending row of each incident's lane whose retry time has come)
//! at start, when asked (a row was declined by the hand-off, a delivery
//! must be retried, a store without hand-off queued effects), when the next
//! retry comes due, and at least every `poll`. Both ways claim each row in
//! the [`Handoff`], which keeps a row from being delivered twice.
//!
//! Each row is delivered in its own task (bounded by `concurrency`), which
//! reports back: delivered (with what the remote made, fed to the engine),
//! retry later (exponential backoff with jitter, never sooner than the
//! server's `Retry-After`), or failed for good (a permanent error: logged at
//! error, counted, shown by `incidents show`, and for a page, the engine
//! switches to the e-mail fallback).
//!
//! A crash between "remote accepted" and "row marked done" redelivers the
//! effect after restart; each effect carries a stable key
//! ([`Pending::key`]) that the integrations use so the redelivery is a
//! no-op on the remote side.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::RngExt as _;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Millis;
use crate::engine::{Effect, Event, Outcome};
use crate::handoff::Handoff;
use crate::intake::Core;
use crate::store::{Pending, StoreError};
use crate::vendors::DeliveryError;

/// First retry delay; doubled per attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest delay between two attempts: a page must not sleep for long.
const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// How long the loop waits before reading the outbox again after it could
/// not.
const SCAN_RETRY: Duration = Duration::from_secs(1);

/// Something that can deliver an effect: the real integrations, or a test
/// double.
#[async_trait]
pub trait Deliver: Send + Sync + 'static {
    /// Performs the effect. `Ok(outcome)` only once the remote accepted it.
    async fn deliver(&self, pending: &Pending) -> Result<Option<Outcome>, DeliveryError>;
}

/// The delay before attempt `attempts + 1`: capped exponential, with "equal
/// jitter" (half fixed, half random) so a fleet of retries spreads out
/// without ever retrying immediately.
pub fn backoff(attempts: u32) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(attempts.min(16)))
        .min(BACKOFF_CAP);
    let half = exp / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter)
}

/// The outbox loop.
pub struct Dispatcher {
    core: Arc<Core>,
    deliver: Arc<dyn Deliver>,
    concurrency: usize,
    poll: Duration,
    /// Rows whose delivery was attempted but whose outcome could not be
    /// stored (store busy, disk full, connection lost): the remote side may
    /// have them, so the next attempt checks first.
    unrecorded: Arc<Mutex<HashSet<i64>>>,
    /// Rows queued before this instant may have been sent by a previous
    /// process (or leader) that died before recording it.
    started: crate::clock::Millis,
}

impl Dispatcher {
    /// A dispatcher delivering through `deliver`, at most `concurrency` at
    /// once, looking at the outbox at least every `poll` (other instances'
    /// intake queues effects without waking this one). Create it before
    /// anything queues effects for it: rows older than its creation count as
    /// possibly sent.
    pub fn new(
        core: Arc<Core>,
        deliver: Arc<dyn Deliver>,
        concurrency: usize,
        poll: Duration,
    ) -> Dispatcher {
        Dispatcher {
            deliver,
            concurrency: concurrency.max(1),
            poll,
            unrecorded: Default::default(),
            started: core.clock.now(),
            core,
        }
    }

    /// Runs until `shutdown`, then waits for the deliveries in flight (the
    /// caller bounds that wait); what is not delivered stays in the outbox.
    /// `wake` asks for a read of the outbox.
    pub async fn run(self, wake: Arc<Notify>, shutdown: CancellationToken) {
        let handoff = self.core.handoff.clone();
        // Rows handed off from now on wait here for a free slot; those
        // committed before are found by the first scan.
        handoff.open(self.concurrency);
        let mut tasks = JoinSet::new();
        let mut scan = true;
        let mut next_scan = Instant::now();
        loop {
            self.core.health.beat(crate::health::Loop::Dispatcher);
            while tasks.try_join_next().is_some() {}
            // Handed-off rows first: they are claimed already. A paused old
            // leader's tasks give them back without delivering.
            let free = self.concurrency.saturating_sub(tasks.len());
            for pending in handoff.take(free) {
                self.spawn(&mut tasks, pending);
            }
            let free = self.concurrency.saturating_sub(tasks.len());
            if scan && free > 0 && self.core.leadership.is_leader() {
                scan = false;
                let wait = self.scan(&handoff, &mut tasks, free).await;
                match wait {
                    Some(wait) => next_scan = Instant::now() + wait,
                    // More are due than there was room for.
                    None => scan = true,
                }
            }
            let beat = Instant::now() + crate::health::BEAT_EVERY;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => scan = true,
                _ = handoff.queued() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep_until(next_scan.min(beat)) => {
                    if Instant::now() >= next_scan {
                        scan = true;
                        next_scan = Instant::now() + self.poll;
                    }
                }
            }
        }
        handoff.close();
        if !tasks.is_empty() {
            tracing::info!(
                in_flight = tasks.len(),
                "dispatcher: finishing deliveries in flight"
            );
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Reads up to `free` due rows from the outbox and starts delivering
    /// those nobody else claimed. Returns how long until the next scan, or
    /// `None` when more rows are due at once.
    async fn scan(
        &self,
        handoff: &Arc<Handoff>,
        tasks: &mut JoinSet<()>,
        free: usize,
    ) -> Option<Duration> {
        let now = self.core.clock.now();
        let skip = handoff.scan_started();
        let result = self.core.store.due(now, free, skip).await;
        match result {
            Ok((due, next)) => {
                for pending in handoff.scan_ended(due) {
                    self.spawn(tasks, pending);
                }
                let wait = match next {
                    Some(n) if n <= now => None,
                    Some(n) => Some(self.core.clock.real(n - now).min(self.poll)),
                    None => Some(self.poll),
                };
                if wait.is_some() {
                    handoff.caught_up();
                }
                wait
            }
            Err(e) => {
                handoff.scan_ended(Vec::new());
                if matches!(e, StoreError::NotLeader) {
                    tracing::info!("dispatcher: not the leader; not delivering");
                } else {
                    tracing::error!(cause = %e, "dispatcher: cannot read the outbox; retrying in 1s");
                }
                Some(SCAN_RETRY.min(self.poll))
            }
        }
    }

    /// Delivers a claimed row in a task of its own.
    fn spawn(&self, tasks: &mut JoinSet<()>, mut pending: Pending) {
        pending.maybe_sent |= pending.attempts > 0
            || pending.created_at < self.started
            || due_before(&pending, self.started)
            || self
                .unrecorded
                .lock()
                .expect("unrecorded lock")
                .contains(&pending.id);
        tasks.spawn(deliver_one(
            self.core.clone(),
            self.deliver.clone(),
            self.unrecorded.clone(),
            pending,
        ));
    }
}

/// How far a deadline may lie after a dispatcher's start and still count as
/// due before it ([`due_before`]): a wall clock stepped back a little at a
/// reboot (a correction by NTP) must not make an escalation that an earlier
/// process made look new. The reboot after a power cut adds its own time.
/// A clock stepped back by minutes is beyond it, as it is beyond every
/// deadline of pagerd's, which are wall-clock times: each would fire
/// minutes late.
const CLOCK_STEP_MARGIN: Millis = 10_000;

/// Whether `p` is an escalation by the timer for a deadline that passed
/// before `started` (the dispatcher's start, plus [`CLOCK_STEP_MARGIN`]).
/// An earlier process may have sent it: the SQLite store sends a timer's
/// escalation while its commit syncs, so a power cut can lose the commit
/// after the request left, and the timer fires again after the restart, as
/// a new row. Its delivery must look first; one whose deadline came later
/// was made by no one else (a process crash, unlike a power cut, loses no
/// commit, and a row queued before the start is looked for anyway).
fn due_before(p: &Pending, started: Millis) -> bool {
    matches!(p.effect, Effect::PageEscalate { due: Some(due), .. } if due < started + CLOCK_STEP_MARGIN)
}

async fn deliver_one(
    core: Arc<Core>,
    deliver: Arc<dyn Deliver>,
    unrecorded: Arc<Mutex<HashSet<i64>>>,
    p: Pending,
) {
    let kind = p.effect.kind();
    let span = tracing::info_span!("deliver", incident = p.incident.id, ticket = %p.incident.ticket.id, effect = ?kind, row = p.id);
    // The lease may have lapsed while this task waited to run: a paused
    // old leader must not deliver anything after losing it.
    if !core.leadership.is_leader() {
        core.handoff.release(p.id);
        return;
    }
    let started = std::time::Instant::now();
    let result = deliver.deliver(&p).await;
    core.metrics
        .observe_delivery(kind.lane(), &result, started.elapsed());
    let now = core.clock.now();
    // Ok(true): settled for good (what it made deliverable, the store
    // hands off or asks for); Ok(false): due again later.
    let stored = match result {
        Ok(outcome) => {
            tracing::info!(parent: &span, attempts = p.attempts + 1, "delivered");
            let event = Event::Delivered {
                effect: kind,
                outcome,
            };
            core.store
                .complete(p.id, event, now)
                .await
                .map(|a| a.inspect(|a| core.settled(p.created_at, false, a, now)))
                .map(|_| true)
        }
        Err(DeliveryError::Retryable {
            reason,
            retry_after,
        }) => {
            let delay = backoff(p.attempts).max(retry_after.unwrap_or_default());
            tracing::warn!(parent: &span, attempts = p.attempts + 1, retry_in = ?delay, cause = %reason, "delivery failed; will retry");
            let at = now + core.clock.clock_time(delay);
            core.store
                .retry_later(p.id, at, reason)
                .await
                .map(|()| false)
        }
        Err(DeliveryError::Permanent { reason }) => {
            tracing::error!(parent: &span, cause = %reason, "delivery failed permanently; fix the configuration (see `pagerd incidents show`)");
            core.store
                .fail(p.id, reason, now)
                .await
                .map(|a| a.inspect(|a| core.settled(p.created_at, true, a, now)))
                .map(|_| true)
        }
    };
    let mut unrecorded = unrecorded.lock().expect("unrecorded lock");
    let settled = match stored {
        Ok(settled) => {
            unrecorded.remove(&p.id);
            settled
        }
        Err(e) => {
            // The row stays pending with its attempt count unchanged. The
            // remote side may have it already: the next attempt, whenever it
            // comes, is made as "maybe sent" and checks the idempotency
            // marker first, so the customer never gets a second comment.
            unrecorded.insert(p.id);
            tracing::error!(parent: &span, cause = %e, "cannot record the outcome of a delivery; it will be checked, then retried");
            false
        }
    };
    drop(unrecorded);
    core.handoff.release(p.id);
    // A retry (or an unrecorded outcome) is found by reading the outbox;
    // so is what a settlement made deliverable, unless the store hands it
    // off.
    if !settled || !core.handoff.covers_commits() {
        core.dispatch.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use crate::clock::Millis;
    use crate::engine::{Incident, Lane, Policy, Source, Ticket};
    use crate::store::{
        Applied, Intake, JournalEntry, OutboxRow, PruneCursor, Pruned, SqliteStore, Stats, Store,
    };

    /// A vendor that records every attempt: rows attempted twice at once,
    /// successful deliveries per row and per lane in order. The first
    /// attempt of every seventh row fails (retried after the backoff).
    #[derive(Default)]
    struct Recorder {
        state: Mutex<Record>,
    }

    #[derive(Default)]
    struct Record {
        delivering: HashSet<i64>,
        overlapping: Vec<i64>,
        attempts: HashMap<i64, u32>,
        delivered: HashMap<i64, u32>,
        lanes: HashMap<(i64, Lane), Vec<i64>>,
    }

    #[async_trait]
    impl Deliver for Recorder {
        async fn deliver(&self, p: &Pending) -> Result<Option<Outcome>, DeliveryError> {
            let first = {
                let mut st = self.state.lock().expect("record");
                if !st.delivering.insert(p.id) {
                    st.overlapping.push(p.id);
                }
                let n = st.attempts.entry(p.id).or_default();
                *n += 1;
                *n == 1
            };
            let pause = rand::rng().random_range(0..1500);
            tokio::time::sleep(Duration::from_micros(pause)).await;
            let mut st = self.state.lock().expect("record");
            st.delivering.remove(&p.id);
            if first && p.id % 7 == 0 {
                return Err(DeliveryError::retry("flaky vendor"));
            }
            *st.delivered.entry(p.id).or_default() += 1;
            st.lanes
                .entry((p.incident.id, p.effect.lane()))
                .or_default()
                .push(p.id);
            Ok(None)
        }
    }

    /// SQLite whose outbox scans answer late (0 to 3 ms after reading), so
    /// that rows handed off meanwhile are delivered and settled before the
    /// scan's answer arrives: the race the claims must win.
    struct SlowScans(SqliteStore);

    #[async_trait]
    impl Store for SlowScans {
        fn hand_off(&self, to: Arc<dyn crate::store::Ready>) -> bool {
            self.0.hand_off(to)
        }
        async fn apply(&self, intake: Intake, now: Millis) -> Result<Applied, StoreError> {
            self.0.apply(intake, now).await
        }
        async fn get(&self, id: i64) -> Result<Option<Incident>, StoreError> {
            self.0.get(id).await
        }
        async fn watch_report(
            &self,
            report: crate::reports::Report,
        ) -> Result<(crate::reports::Report, bool), StoreError> {
            self.0.watch_report(report).await
        }
        async fn report(&self, ticket: &str) -> Result<Option<crate::reports::Report>, StoreError> {
            self.0.report(ticket).await
        }
        async fn reports(&self, limit: usize) -> Result<Vec<crate::reports::Report>, StoreError> {
            self.0.reports(limit).await
        }
        async fn change_report(
            &self,
            ticket: &str,
            change: crate::reports::ReportChange,
            now: Millis,
        ) -> Result<Option<crate::reports::Report>, StoreError> {
            self.0.change_report(ticket, change, now).await
        }
        async fn change_h1(
            &self,
            id: &str,
            change: crate::reports::h1::H1Change,
            delivery: Option<String>,
            now: Millis,
        ) -> Result<crate::reports::h1::H1Applied, StoreError> {
            self.0.change_h1(id, change, delivery, now).await
        }
        async fn h1_report(
            &self,
            id: &str,
        ) -> Result<Option<crate::reports::h1::H1Report>, StoreError> {
            self.0.h1_report(id).await
        }
        async fn h1_reports(
            &self,
            limit: usize,
        ) -> Result<Vec<crate::reports::h1::H1Report>, StoreError> {
            self.0.h1_reports(limit).await
        }
        async fn by_ticket(&self, ticket: &str) -> Result<Option<Incident>, StoreError> {
            self.0.by_ticket(ticket).await
        }
        async fn list(&self, open_only: bool, limit: usize) -> Result<Vec<Incident>, StoreError> {
            self.0.list(open_only, limit).await
        }
        async fn journal(&self, id: i64) -> Result<Vec<JournalEntry>, StoreError> {
            self.0.journal(id).await
        }
        async fn outbox(&self, id: i64) -> Result<Vec<OutboxRow>, StoreError> {
            self.0.outbox(id).await
        }
        async fn deadlines(&self) -> Result<Vec<(i64, Millis)>, StoreError> {
            self.0.deadlines().await
        }
        async fn due(
            &self,
            now: Millis,
            limit: usize,
            skip: Vec<i64>,
        ) -> Result<(Vec<Pending>, Option<Millis>), StoreError> {
            let due = self.0.due(now, limit, skip).await;
            let pause = rand::rng().random_range(0..3000);
            tokio::time::sleep(Duration::from_micros(pause)).await;
            due
        }
        async fn complete(
            &self,
            row: i64,
            feedback: Event,
            now: Millis,
        ) -> Result<Option<Applied>, StoreError> {
            self.0.complete(row, feedback, now).await
        }
        async fn retry_later(&self, row: i64, at: Millis, error: String) -> Result<(), StoreError> {
            self.0.retry_later(row, at, error).await
        }
        async fn fail(
            &self,
            row: i64,
            error: String,
            now: Millis,
        ) -> Result<Option<Applied>, StoreError> {
            self.0.fail(row, error, now).await
        }
        async fn stats(&self, now: Millis) -> Result<Stats, StoreError> {
            self.0.stats(now).await
        }
        async fn lease(&self, holder: &str, ttl: Duration) -> Result<Option<i64>, StoreError> {
            self.0.lease(holder, ttl).await
        }
        async fn lease_holder(&self) -> Result<Option<(String, i64)>, StoreError> {
            self.0.lease_holder().await
        }
        async fn prune(
            &self,
            before: Millis,
            deliveries_before: Millis,
            batch: usize,
            after: Option<PruneCursor>,
        ) -> Result<Pruned, StoreError> {
            self.0.prune(before, deliveries_before, batch, after).await
        }
    }

    fn ticket(id: usize) -> Ticket {
        Ticket {
            id: id.to_string(),
            title: "down".into(),
            priority: "urgent".into(),
            status: "new".into(),
            tags: vec![],
            url: "u".into(),
            requester_name: "D".into(),
            requester_email: "d@c.test".into(),
            organization: "C".into(),
        }
    }

    /// The hand-off and the outbox scan race on purpose (the loop reads the
    /// outbox every millisecond and on every nudge, while commits hand
    /// their rows off): every row is still delivered exactly once, never
    /// twice at once, and each incident's lane in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handed_off_and_scanned_rows_go_out_once_each_in_lane_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("p.db"), Arc::new(Policy::default()))
            .expect("store");
        let store: Arc<dyn Store> = Arc::new(SlowScans(store));
        let core = Arc::new(crate::intake::testing::core(store));
        assert!(core.handoff.covers_commits(), "SQLite hands its rows off");
        core.leadership
            .renewed(Instant::now(), Duration::from_secs(3600));
        let recorder = Arc::new(Recorder::default());
        let dispatcher =
            Dispatcher::new(core.clone(), recorder.clone(), 8, Duration::from_millis(1));
        let stop = CancellationToken::new();
        let running = tokio::spawn(dispatcher.run(core.dispatch.clone(), stop.clone()));
        let nudging = {
            let (core, stop) = (core.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    core.dispatch.notify_one();
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
            })
        };
        // Per incident: the page, then an acknowledgement (a comment and
        // an acknowledge in the pager lane), then a resolve.
        let tickets = 150;
        let mut submitting = JoinSet::new();
        for n in 1..=tickets {
            let core = core.clone();
            submitting.spawn(async move {
                let applied = core
                    .submit(Intake::ticket(ticket(n)))
                    .await
                    .expect("ticket");
                let id = applied.incident.expect("incident").id;
                let by = crate::engine::Who::from("ana");
                for event in [
                    Event::Acknowledge {
                        by: by.clone(),
                        via: Source::Cli,
                    },
                    Event::Resolve {
                        by,
                        via: Source::Cli,
                    },
                ] {
                    core.submit(Intake::incident(id, event))
                        .await
                        .expect("event");
                }
                id
            });
        }
        let ids = submitting.join_all().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while core
            .store
            .stats(core.clock.now())
            .await
            .expect("stats")
            .pending_effects
            > 0
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the outbox did not drain"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        running.await.expect("dispatcher");
        nudging.await.expect("nudger");

        let st = std::mem::take(&mut *recorder.state.lock().expect("record"));
        assert!(
            st.overlapping.is_empty(),
            "attempted twice at once: {:?}",
            st.overlapping
        );
        let mut rows = 0;
        for id in ids {
            for row in core.store.outbox(id).await.expect("outbox") {
                rows += 1;
                assert_eq!(row.state, "delivered", "row {}", row.id);
                assert_eq!(
                    st.delivered.get(&row.id),
                    Some(&1),
                    "row {} deliveries",
                    row.id
                );
            }
        }
        assert!(rows >= 3 * tickets, "{rows} rows");
        for ((incident, lane), order) in &st.lanes {
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "incident {incident}, lane {lane:?}: delivered out of order {order:?}"
            );
        }
        assert_eq!(core.handoff.claimed(), 0, "every claim released");
    }

    #[cfg(feature = "demo")]
    #[test]
    fn only_a_timers_escalation_due_before_the_start_may_repeat_an_earlier_process() {
        use crate::vendors::test_pending;
        let started: Millis = 1_800_000_000_000;
        let escalation = |due| {
            test_pending(
                1,
                1,
                Effect::PageEscalate {
                    level: 2,
                    note: "n".into(),
                    due,
                },
                false,
            )
        };
        // Due before the start: an earlier process may have sent it.
        assert!(due_before(&escalation(Some(started - 1)), started));
        // Within the margin for a wall clock stepped back at a reboot.
        assert!(due_before(
            &escalation(Some(started + CLOCK_STEP_MARGIN - 1)),
            started
        ));
        // Due well after the start: no one else made it.
        assert!(!due_before(
            &escalation(Some(started + CLOCK_STEP_MARGIN)),
            started
        ));
        // Asked for by a person or a lease: never sent early.
        assert!(!due_before(&escalation(None), started));
        let page = Effect::Page {
            summary: "s".into(),
        };
        assert!(!due_before(&test_pending(1, 1, page, false), started));
    }

    #[test]
    fn backoff_grows_is_capped_and_never_zero() {
        for attempt in 0..40 {
            let d = backoff(attempt);
            let exp = BACKOFF_BASE
                .saturating_mul(2u32.saturating_pow(attempt.min(16)))
                .min(BACKOFF_CAP);
            assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d:?}");
        }
    }
}

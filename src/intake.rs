//! The in-process core shared by intake, scheduler and dispatcher: submit an
//! event to the store, then arm the incident's next deadline and wake the
//! dispatcher if effects were queued.
//!
//! What follows a commit runs whatever becomes of the caller. A webhook
//! request that times out (or whose client hangs up) while its commit is
//! under way drops its wait, not the commit's sequel: the rest of the
//! submission moves to a task of its own ([`RunToEnd`]), which still arms
//! the deadline in memory and wakes delivery, so a timer never waits for a
//! restart to fire. (The effects themselves reach the dispatcher from the
//! store's commit, see [`crate::handoff`], or from its outbox scan.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

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
    /// HackerOne reports (`[hackerone]`): watched apart from emergencies.
    pub reports: Arc<crate::reports::Reports>,
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
        metrics: Arc<Metrics>,
        reports: Arc<crate::reports::Reports>,
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
            metrics,
            leadership: Arc::new(Leadership::new(Leadership::default_holder())),
            people,
            health: Default::default(),
            live,
            reports,
        }
    }

    /// Applies an event durably, then updates timers and wakes delivery.
    ///
    /// Dropping the returned future once it started (a request timed out)
    /// does not stop either: the rest runs in a task of its own, so a
    /// commit that completes is always followed by [`Core::after_at`].
    pub fn submit(
        self: &Arc<Self>,
        intake: Intake,
    ) -> RunToEnd<impl Future<Output = Result<Applied, StoreError>> + Send + 'static> {
        let core = self.clone();
        RunToEnd::new(async move {
            let now = core.clock.now();
            let applied = core.store.apply(intake, now).await?;
            core.after_at(&applied, now);
            Ok(applied)
        })
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
            self.scheduler.arm(id, due, applied.version);
        }
        // A store that hands its rows off has told the dispatcher already.
        if applied.effects > 0 && !self.handoff.covers_commits() {
            self.dispatch.notify_one();
        }
    }
}

/// A future that, once started, runs to its end: dropped before it is done
/// (its caller gave up), it finishes in a task of its own. Awaited to the
/// end, it costs no task. A future dropped before its first poll never
/// starts.
pub struct RunToEnd<F: Future + Send + 'static> {
    future: Option<Pin<Box<F>>>,
    started: bool,
}

impl<F: Future + Send + 'static> RunToEnd<F> {
    /// `future`, to be run to its end once polled.
    pub fn new(future: F) -> RunToEnd<F> {
        RunToEnd {
            future: Some(Box::pin(future)),
            started: false,
        }
    }
}

impl<F: Future + Send + 'static> Future for RunToEnd<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.started = true;
        let Some(future) = self.future.as_mut() else {
            // Polled again after it returned: a bug in the caller.
            return Poll::Pending;
        };
        let out = future.as_mut().poll(cx);
        if out.is_ready() {
            self.future = None;
        }
        out
    }
}

impl<F: Future + Send + 'static> Drop for RunToEnd<F> {
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        if let Some(future) = self.future.take() {
            // Without a runtime the process is ending; the next start
            // reloads every deadline from the store.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = future.await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::engine::{Policy, Ticket};
    use crate::store::SqliteStore;

    fn ticket() -> Ticket {
        Ticket {
            id: "8001".into(),
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

    #[tokio::test]
    async fn run_to_end_finishes_what_was_started_and_never_starts_the_rest() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (gate, open) = tokio::sync::oneshot::channel::<()>();
        let done = Arc::new(AtomicBool::new(false));
        let started = {
            let done = done.clone();
            RunToEnd::new(async move {
                let _ = open.await;
                done.store(true, Ordering::SeqCst);
            })
        };
        let never = {
            let done = done.clone();
            RunToEnd::new(async move { done.store(true, Ordering::SeqCst) })
        };
        drop(never);
        tokio::task::yield_now().await;
        assert!(!done.load(Ordering::SeqCst), "never polled: never run");
        // Polled once, then its caller gives up.
        let gave_up = tokio::time::timeout(Duration::from_millis(10), started).await;
        assert!(gave_up.is_err());
        let _ = gate.send(());
        let until = Instant::now() + Duration::from_secs(5);
        while !done.load(Ordering::SeqCst) {
            assert!(Instant::now() < until, "the rest did not run");
            tokio::task::yield_now().await;
        }
    }

    /// The hardening issue: a webhook whose request timed out (the HTTP
    /// layer drops the handler after 10 s) while the store was slow used to
    /// lose what follows its commit. The commit went through, but the
    /// deadline was never armed in memory: it fired only after a restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_that_outlives_its_request_still_arms_its_deadline_and_it_fires() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.db");
        let policy = Policy {
            crisis_after: 1500,
            ..Policy::default()
        };
        let store = SqliteStore::open(&path, Arc::new(policy)).expect("store");
        let core = Arc::new(testing::core(Arc::new(store)));
        core.leadership
            .renewed(tokio::time::Instant::now(), Duration::from_secs(3600));
        // The timer loop runs, as in the daemon, and has loaded the (no)
        // deadlines from the store: from now on only a commit arms one.
        let stop = CancellationToken::new();
        let timers = tokio::spawn(core.scheduler.clone().run(core.clone(), None, stop.clone()));
        let loaded = Instant::now() + Duration::from_secs(10);
        while core.health.stalled(Duration::ZERO).is_empty() {
            assert!(Instant::now() < loaded, "the timer loop did not start");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        // Another connection holds the write lock: the commit waits (the
        // store's busy timeout is 5 s) and the request gives up first.
        let blocker = rusqlite::Connection::open(&path).expect("blocker");
        blocker
            .execute_batch("BEGIN IMMEDIATE")
            .expect("lock the database");
        let request = core.submit(Intake::ticket(ticket()));
        let gave_up = tokio::time::timeout(Duration::from_millis(300), request).await;
        assert!(gave_up.is_err(), "the request should time out: {gave_up:?}");
        blocker.execute_batch("COMMIT").expect("unlock");

        // The commit goes through all the same...
        let deadline = Instant::now() + Duration::from_secs(10);
        let incident = loop {
            if let Some(i) = core.store.by_ticket("8001").await.expect("by_ticket") {
                break i;
            }
            assert!(Instant::now() < deadline, "the commit never happened");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let due = incident.deadlines.next().expect("the crisis deadline");
        // ...its deadline is armed in memory...
        while core.scheduler.is_empty() {
            assert!(
                Instant::now() < deadline && core.clock.now() < due,
                "the committed deadline was not armed in memory"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // ...and fires without a restart.
        loop {
            let now = core.store.get(incident.id).await.expect("get");
            if now.is_some_and(|i| i.crisis.is_some()) {
                break;
            }
            assert!(Instant::now() < deadline, "the crisis deadline never fired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        timers.await.expect("timer loop");
    }
}

/// A [`Core`] for unit tests: the system clock, no people, no HackerOne.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A core over `store`, with a config that has no `[hackerone]`.
    pub(crate) fn core(store: Arc<dyn Store>) -> Core {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["zd-token", "zd-secret", "pd-key", "pd-token"] {
            std::fs::write(dir.path().join(f), "s3cr3t-value\n").expect("secret");
        }
        let text = "[zendesk]\nurl = \"https://acme.zendesk.com\"\nemail = \"pagerd@acme.example\"\n\
                    api_token_file = \"zd-token\"\nwebhook_secret_file = \"zd-secret\"\n\
                    [pagerduty]\nrouting_key_file = \"pd-key\"\napi_token_file = \"pd-token\"\n\
                    from = \"oncall@acme.example\"\n";
        let config = crate::config::Config::parse(&dir.path().join("pagerd.toml"), text)
            .expect("a minimal config");
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        let metrics = Arc::new(Metrics::default());
        let reports = Arc::new(crate::reports::Reports::new(
            store.clone(),
            clock.clone(),
            Shared::new(config),
            metrics.clone(),
        ));
        Core::new(
            store,
            clock,
            Shared::new(Directory::new(std::collections::HashMap::new())),
            Default::default(),
            metrics,
            reports,
        )
    }
}

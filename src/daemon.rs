//! Wiring: open the store, start the scheduler, dispatcher and pollers,
//! serve HTTP, tell systemd, and shut down gracefully. SIGHUP reloads the
//! config ([`crate::reload`]); SIGTERM and SIGINT shut down.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::deliver::Registry;
use crate::dispatcher::{Deliver, Dispatcher};
use crate::http::serve::{Limits, serve};
use crate::http::{AppState, REQUEST_TIMEOUT, app};
use crate::intake::Core;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::poller;
use crate::reload::{Cells, Reloader};
use crate::shared::Shared;
use crate::store::{PostgresStore, SqliteStore, Store, StoreError};
use crate::vendors::pagerduty::PagerDuty;
use crate::vendors::zendesk::Zendesk;

/// Deliveries in flight at once.
const DISPATCH_CONCURRENCY: usize = 64;

/// How often the store is probed for `/readyz` (and systemd's watchdog).
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a probe may take before the store counts as not answering.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the in-memory counts are checked against the database, off
/// the request path (several PostgreSQL instances each count only their
/// own commits; alone on SQLite, it is a safety net).
const CORRECT_EVERY_SHARED: Duration = Duration::from_secs(5);
const CORRECT_EVERY_ALONE: Duration = Duration::from_secs(60);
/// Most distinct queue instants of pending effects loaded from SQLite.
const PENDING_TIMES: usize = 100_000;

/// Why the daemon could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store cannot be opened (path, permissions, disk full, schema).
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// A vendor's client cannot be set up from the config.
    #[error("cannot set up a vendor: {0}")]
    Vendor(#[from] crate::deliver::SetupError),
    /// Serving HTTP failed.
    #[error("http server: {0}")]
    Http(#[from] std::io::Error),
}

/// Knobs that are not config: the clock (the demo compresses time).
#[derive(Clone)]
pub struct Options {
    /// The time source.
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            clock: Arc::new(SystemClock),
        }
    }
}

/// Runs the daemon on an already-bound listener until `shutdown` is
/// cancelled, then drains: stops accepting, finishes requests in flight,
/// lets deliveries in flight finish (bounded by `server.shutdown_grace`;
/// anything unfinished stays in the outbox for the next start).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    opts: Options,
) -> Result<(), DaemonError> {
    // What a reload swaps: each is read where it is used, at each use.
    let policy = Shared::new(config.policy.clone());
    let store: Arc<dyn Store> = match &config.store.postgres {
        Some(pg) => Arc::new(PostgresStore::connect(pg, policy.clone()).await?),
        None => Arc::new(SqliteStore::open(&config.store.path, policy.clone())?),
    };
    let integrations = Shared::new(Registry::from_config(&config)?);
    let counter = Counter::new(&config, store.clone())?;
    let live = Arc::new(Live::default());
    // Loaded once before serving, then kept up to date by each commit.
    counter.correct(&live, opts.clock.now(), true).await;
    let config = Arc::new(config);
    let shared_config = Shared::from(config.clone());
    let metrics = Arc::new(Metrics::default());
    let reports = Arc::new(crate::reports::Reports::new(
        store.clone(),
        opts.clock.clone(),
        shared_config.clone(),
        metrics.clone(),
    ));
    reports.recount().await;
    let people = crate::people::Directory::from_config(
        &config,
        crate::vendors::http_client(crate::people::LOOKUP_WAIT),
    )
    .with_clock(opts.clock.clone());
    let core = Arc::new(Core::new(
        store,
        opts.clock.clone(),
        Shared::new(people),
        live,
        metrics,
        reports,
    ));
    let tasks = CancellationToken::new();
    let (pollers, pollers_config) = watch::channel(config.clone());
    let deliver: Arc<dyn Deliver> = Arc::new(integrations.clone());
    let leading = tokio::spawn(lead(core.clone(), deliver, pollers_config, tasks.clone()));
    let reloader = Reloader::new(
        config.clone(),
        Cells {
            policy,
            registry: integrations,
            config: shared_config.clone(),
            people: core.people.clone(),
            pollers,
            metrics: core.metrics.clone(),
            clock: opts.clock.clone(),
        },
    );
    let reloading = tokio::spawn(crate::reload::on_sighup(reloader, shutdown.clone()));
    core.live.probed(matches!(
        tokio::time::timeout(PROBE_TIMEOUT, core.store.get(0)).await,
        Ok(Ok(_))
    ));
    let every = if config.store.postgres.is_some() {
        CORRECT_EVERY_SHARED
    } else {
        CORRECT_EVERY_ALONE
    };
    let watchdog = tokio::spawn(observe(core.clone(), counter, every, tasks.clone()));

    let state = AppState {
        core: core.clone(),
        config: shared_config.clone(),
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, instance = %core.leadership.holder, "pagerd is ready");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    // Bound at start: a reload warns that these wait for a restart.
    let limits = Limits {
        header_timeout: config.server.header_timeout,
        max_connections: config.server.max_connections,
        drain: REQUEST_TIMEOUT + Duration::from_secs(1),
    };
    warn_if_few_descriptors(limits.max_connections);
    let stopping = {
        let live = core.live.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            live.stopping();
        })
    };
    let served = serve(listener, app(state), limits, shutdown.clone()).await;
    stopping.abort();
    reloading.abort();
    core.live.stopping();
    // The value in force now (a reload may have changed it).
    let grace = shared_config.load().server.shutdown_grace;

    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("shutting down: no new requests; finishing deliveries in flight");
    tasks.cancel();
    if tokio::time::timeout(grace, leading).await.is_err() {
        tracing::warn!(
            ?grace,
            "deliveries did not finish in time; they stay in the outbox for the next start"
        );
    }
    let _ = watchdog.await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Holds (or waits for) the lease; while this instance leads, runs the
/// scheduler, the dispatcher and the pollers, and stops them when the lease
/// is lost or at shutdown (waiting for deliveries in flight).
async fn lead(
    core: Arc<Core>,
    deliver: Arc<dyn Deliver>,
    mut config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) {
    // The store keys wait for a restart: read once.
    let store = config.borrow_and_update().store.clone();
    // A single SQLite instance leads for good; its "lease" never lapses.
    let (renew, ttl, multi) = match &store.postgres {
        Some(pg) => (pg.lease_renew, pg.lease_ttl, true),
        None => (
            Duration::from_secs(3600),
            Duration::from_secs(100 * 365 * 86_400),
            false,
        ),
    };
    let mut running: Option<Leading> = None;
    'renewing: loop {
        let sent = tokio::time::Instant::now();
        match core.store.lease(&core.leadership.holder, ttl).await {
            Ok(Some(token)) => {
                core.leadership.renewed(sent, ttl);
                if running.is_none() {
                    if multi {
                        tracing::info!(
                            token,
                            "leader: this instance now fires timers and delivers effects"
                        );
                    }
                    let current = config.borrow_and_update().clone();
                    running = Some(leader_tasks(&core, &deliver, &current, multi));
                }
            }
            outcome => {
                core.leadership.lost();
                if let Err(e) = outcome {
                    tracing::warn!(cause = %e, "leader: cannot renew the lease");
                }
                if let Some(leading) = running.take() {
                    tracing::warn!(
                        "leader: lease lost; stopping timers and delivery on this instance"
                    );
                    leading.stop().await;
                }
            }
        }
        // Renew early when the last renewal was slow.
        let renew_at = tokio::time::Instant::now() + renew.saturating_sub(sent.elapsed());
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break 'renewing,
                _ = tokio::time::sleep_until(renew_at) => break,
                Ok(()) = config.changed() => {
                    let current = config.borrow_and_update().clone();
                    if let Some(leading) = running.as_mut() {
                        leading.restart_pollers(&core, &current);
                    }
                }
            }
        }
    }
    if let Some(leading) = running.take() {
        leading.stop().await;
    }
}

/// The leader's tasks, and the token of its pollers (a reload restarts
/// them).
struct Leading {
    token: CancellationToken,
    set: tokio::task::JoinSet<()>,
    pollers: CancellationToken,
}

impl Leading {
    /// Stops the pollers and starts them again from `config` (new
    /// intervals, credentials, URLs, emergency criteria). A round in
    /// progress finishes first; the engine de-duplicates what it learns.
    fn restart_pollers(&mut self, core: &Arc<Core>, config: &Config) {
        self.pollers.cancel();
        // Forget the tasks that already ended (earlier pollers).
        while self.set.try_join_next().is_some() {}
        self.pollers = self.token.child_token();
        spawn_pollers(&mut self.set, core, config, &self.pollers);
        tracing::info!("pollers restarted with the reloaded config");
    }

    /// Stops every task and waits for them (deliveries in flight finish).
    async fn stop(mut self) {
        self.token.cancel();
        while self.set.join_next().await.is_some() {}
    }
}

/// The leader's work: timers, delivery, polling, retention.
fn leader_tasks(
    core: &Arc<Core>,
    deliver: &Arc<dyn Deliver>,
    config: &Config,
    multi: bool,
) -> Leading {
    let token = CancellationToken::new();
    let mut set = tokio::task::JoinSet::new();
    core.health.started();
    // Other instances' intake does not wake this one: look more often.
    let (reload, poll) = if multi {
        (Some(Duration::from_secs(1)), Duration::from_millis(200))
    } else {
        (None, Duration::from_secs(5))
    };
    // The dispatcher first: what the scheduler queues from now on is new.
    let dispatcher = Dispatcher::new(core.clone(), deliver.clone(), DISPATCH_CONCURRENCY, poll);
    set.spawn(
        core.scheduler
            .clone()
            .run(core.clone(), reload, token.clone()),
    );
    set.spawn(dispatcher.run(core.dispatch.clone(), token.clone()));
    let pollers = token.child_token();
    spawn_pollers(&mut set, core, config, &pollers);
    // HackerOne reports' notices; idle without [hackerone] (a reload may
    // add it).
    set.spawn(crate::reports::timer::run(
        core.clone(),
        reload,
        token.clone(),
    ));
    if let Some(retention) = config.store.retention {
        let (store, clock) = (core.store.clone(), core.clock.clone());
        set.spawn(crate::retention::run(
            store,
            clock,
            retention,
            token.clone(),
        ));
    }
    Leading {
        token,
        set,
        pollers,
    }
}

/// The pollers `config` asks for, stopped by `token`.
fn spawn_pollers(
    set: &mut tokio::task::JoinSet<()>,
    core: &Arc<Core>,
    config: &Config,
    token: &CancellationToken,
) {
    let http = crate::vendors::http_client(crate::vendors::REQUEST_TIMEOUT);
    if let Some(every) = config.pagerduty.poll_interval {
        let pd = Arc::new(PagerDuty::from_config(
            &config.pagerduty,
            false,
            http.clone(),
        ));
        set.spawn(poller::pagerduty(core.clone(), pd, every, token.clone()));
    }
    if let Some(every) = config.zendesk.poll_interval {
        let zd = Arc::new(Zendesk::from_config(&config.zendesk, http));
        set.spawn(poller::zendesk(
            core.clone(),
            zd,
            Arc::new(config.policy.clone()),
            every,
            token.clone(),
        ));
    }
}

/// Where the in-memory counts are corrected from: a read-only SQLite
/// connection (never the writer thread), or the PostgreSQL pool.
enum Counter {
    Sqlite(Arc<std::sync::Mutex<rusqlite::Connection>>),
    Shared(Arc<dyn Store>),
}

impl Counter {
    fn new(config: &Config, store: Arc<dyn Store>) -> Result<Counter, DaemonError> {
        Ok(match &config.store.postgres {
            Some(_) => Counter::Shared(store),
            None => Counter::Sqlite(Arc::new(std::sync::Mutex::new(
                crate::store::sqlite::open_reader(&config.store.path)?,
            ))),
        })
    }

    /// Reads the counts and, if nothing changed locally meanwhile (or when
    /// `force`d), makes them the in-memory ones; returns whether it did.
    /// Failures are logged; the next round retries.
    async fn correct(&self, live: &Live, now: crate::clock::Millis, force: bool) -> bool {
        let seq = live.seq();
        let read = match self {
            Counter::Shared(store) => store.stats(now).await.map(|s| (s, None)),
            Counter::Sqlite(conn) => {
                let conn = conn.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = conn
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    // One read transaction: both reads see the same commit.
                    conn.execute_batch("BEGIN")?;
                    let read = crate::store::sqlite::read_stats(&conn, now).and_then(|s| {
                        let times = crate::store::sqlite::read_pending_times(&conn, PENDING_TIMES)?;
                        Ok((s, Some(times)))
                    });
                    let _ = conn.execute_batch("COMMIT");
                    read
                })
                .await
                .unwrap_or(Err(StoreError::Closed))
            }
        };
        match read {
            Ok((stats, times)) => live.correct(seq, force, &stats, now, times),
            Err(e) => {
                tracing::warn!(cause = %e, "cannot read the store's counts; retrying later");
                false
            }
        }
    }
}

/// Off the request path: probes the store for `/readyz` (a point lookup
/// through the same path as webhooks, so a stuck writer shows), pings
/// systemd's watchdog while it answers (a wedged store stops the pings and
/// systemd restarts the daemon), and corrects the in-memory counts.
async fn observe(
    core: Arc<Core>,
    counter: Counter,
    correct_every: Duration,
    shutdown: CancellationToken,
) {
    let watchdog = sd_notify::watchdog_enabled();
    let every = watchdog.map_or(PROBE_EVERY, |t| {
        (t / 2).clamp(Duration::from_millis(100), PROBE_EVERY)
    });
    let mut last_correction = tokio::time::Instant::now();
    let mut skipped = 0u32;
    loop {
        let ok = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, core.store.get(0)).await,
            Ok(Ok(_))
        );
        core.live.probed(ok);
        // On the leader, the dispatcher and scheduler must be turning too.
        let stalled = if core.leadership.is_leader() {
            core.health.stalled(crate::health::STALL_AFTER)
        } else {
            Vec::new()
        };
        if ok && stalled.is_empty() {
            if watchdog.is_some() {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        } else if !ok {
            tracing::error!(
                "the store does not answer: /readyz says not ready; not pinging systemd's watchdog"
            );
        } else {
            tracing::error!(
                ?stalled,
                "a loop is stuck: /readyz says not ready; not pinging systemd's watchdog"
            );
        }
        if last_correction.elapsed() >= correct_every {
            last_correction = tokio::time::Instant::now();
            // HackerOne reports seen or answered on other instances too.
            core.reports.recount().await;
            // Under steady local load every read overlaps a commit: after a
            // few skipped rounds, take it anyway (off by a commit or two
            // at most, until the next round).
            if counter
                .correct(&core.live, core.clock.now(), skipped >= 3)
                .await
            {
                skipped = 0;
            } else {
                skipped += 1;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Warns when `server.max_connections` does not fit under the open files
/// limit: past it, `accept` fails and webhooks wait.
fn warn_if_few_descriptors(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft
        && soft < max_connections + 64
    {
        tracing::warn!(
            max_connections,
            open_files = soft,
            "server.max_connections is near the open files limit (LimitNOFILE=); raise the limit or lower the setting"
        );
    }
}

/// Resolves when SIGINT or SIGTERM arrives (systemd stops with SIGTERM).
/// SIGHUP (a `systemctl reload`) is [`run`]'s: it reloads the config. This
/// only keeps one that arrives before the daemon is up (while the config
/// is read and the store opened) from killing the process: its default
/// action.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(cause = %e, "cannot listen for SIGHUP");
            None
        }
    };
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(cause = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::pin!(term);
    loop {
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = &mut term => break,
            _ = hangup => {
                tracing::debug!("SIGHUP seen by the shutdown listener (the daemon reloads on it)");
            }
        }
    }
    tracing::info!("signal received");
}

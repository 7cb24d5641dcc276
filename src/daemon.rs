//! Wiring: open the store, start the scheduler, dispatcher and pollers,
//! serve HTTP, tell systemd, and shut down gracefully.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::core::Core;
use crate::deliver::Integrations;
use crate::dispatcher::{Deliver, Dispatcher};
use crate::http::{AppState, app};
use crate::integrations::pagerduty::PagerDuty;
use crate::integrations::zendesk::Zendesk;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::poller;
use crate::scheduler::Scheduler;
use crate::store::{PostgresStore, SqliteStore, Store, StoreError};

/// Deliveries in flight at once.
const DISPATCH_CONCURRENCY: usize = 64;

/// Why the daemon could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store cannot be opened (path, permissions, disk full, schema).
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// An integration cannot be set up from the config.
    #[error("{0}")]
    Integration(String),
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
    let policy = Arc::new(config.policy.clone());
    let store: Arc<dyn Store> = match &config.store.postgres {
        Some(pg) => Arc::new(PostgresStore::connect(pg, policy.clone()).await?),
        None => Arc::new(SqliteStore::open(&config.store.path, policy.clone())?),
    };
    let integrations =
        Arc::new(Integrations::from_config(&config).map_err(DaemonError::Integration)?);
    let core = Arc::new(Core {
        store,
        clock: opts.clock.clone(),
        scheduler: Arc::new(Scheduler::default()),
        dispatch: Arc::new(Notify::new()),
        metrics: Arc::new(Metrics::default()),
        leadership: Arc::new(Leadership::new(Leadership::default_holder())),
        people: Arc::new(
            crate::people::Directory::from_config(
                &config,
                crate::integrations::http_client(crate::people::LOOKUP_WAIT),
            )
            .with_clock(opts.clock.clone()),
        ),
        health: Default::default(),
    });
    let tasks = CancellationToken::new();
    let grace = config.server.shutdown_grace;
    let leading = tokio::spawn(lead(
        core.clone(),
        integrations,
        Arc::new(config.clone()),
        tasks.clone(),
    ));
    let watchdog = tokio::spawn(watchdog(core.clone(), tasks.clone()));

    let state = AppState {
        core: core.clone(),
        config: Arc::new(config),
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, instance = %core.leadership.holder, "pagerd is ready");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;

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
    integrations: Arc<Integrations>,
    config: Arc<Config>,
    shutdown: CancellationToken,
) {
    // A single SQLite instance leads for good; its "lease" never lapses.
    let (renew, ttl, multi) = match &config.store.postgres {
        Some(pg) => (pg.lease_renew, pg.lease_ttl, true),
        None => (
            Duration::from_secs(3600),
            Duration::from_secs(100 * 365 * 86_400),
            false,
        ),
    };
    let mut running: Option<(CancellationToken, tokio::task::JoinSet<()>)> = None;
    loop {
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
                    running = Some(leader_tasks(&core, &integrations, &config, multi));
                }
            }
            outcome => {
                core.leadership.lost();
                if let Err(e) = outcome {
                    tracing::warn!(cause = %e, "leader: cannot renew the lease");
                }
                if let Some((token, mut set)) = running.take() {
                    tracing::warn!(
                        "leader: lease lost; stopping timers and delivery on this instance"
                    );
                    token.cancel();
                    while set.join_next().await.is_some() {}
                }
            }
        }
        // Renew early when the last renewal was slow.
        let wait = renew.saturating_sub(sent.elapsed());
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if let Some((token, mut set)) = running.take() {
        token.cancel();
        while set.join_next().await.is_some() {}
    }
}

/// The leader's work: timers, delivery, polling.
fn leader_tasks(
    core: &Arc<Core>,
    integrations: &Arc<Integrations>,
    config: &Config,
    multi: bool,
) -> (CancellationToken, tokio::task::JoinSet<()>) {
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
    let deliver: Arc<dyn Deliver> = integrations.clone();
    let dispatcher = Dispatcher::new(core.clone(), deliver, DISPATCH_CONCURRENCY, poll);
    set.spawn(
        core.scheduler
            .clone()
            .run(core.clone(), reload, token.clone()),
    );
    set.spawn(dispatcher.run(core.dispatch.clone(), token.clone()));
    let http = crate::integrations::http_client(crate::integrations::REQUEST_TIMEOUT);
    if let Some(every) = config.pagerduty.poll_interval {
        let p = &config.pagerduty;
        let pd = Arc::new(PagerDuty::new(
            p.events_url.clone(),
            p.api_url.clone(),
            p.routing_key.clone(),
            p.api_token.clone(),
            p.from.clone(),
            0,
            http.clone(),
        ));
        set.spawn(poller::pagerduty(core.clone(), pd, every, token.clone()));
    }
    if let Some(every) = config.zendesk.poll_interval {
        let z = &config.zendesk;
        let zd = Arc::new(Zendesk::new(z.url.clone(), &z.email, &z.api_token, http));
        set.spawn(poller::zendesk(
            core.clone(),
            zd,
            Arc::new(config.policy.clone()),
            every,
            token.clone(),
        ));
    }
    (token, set)
}

/// Pings systemd's watchdog while the store answers and, on the leader, the
/// dispatcher and scheduler loops turn; a wedged store or loop stops the
/// pings and systemd restarts the daemon.
async fn watchdog(core: Arc<Core>, shutdown: CancellationToken) {
    let (store, clock) = (core.store.clone(), core.clock.clone());
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (timeout / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match tokio::time::timeout(every, store.stats(clock.now())).await {
            Ok(Ok(_)) => {
                let stalled = if core.leadership.is_leader() {
                    core.health.stalled(crate::health::STALL_AFTER)
                } else {
                    Vec::new()
                };
                if stalled.is_empty() {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                } else {
                    tracing::error!(?stalled, "watchdog: a loop is stuck; not pinging systemd");
                }
            }
            _ => tracing::error!("watchdog: the store does not answer; not pinging systemd"),
        }
    }
}

/// Resolves when SIGINT or SIGTERM arrives (systemd stops with SIGTERM).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(cause = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("signal received");
}

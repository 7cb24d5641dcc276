//! Wiring: open the store, start the scheduler, dispatcher and pollers,
//! serve HTTP, tell systemd, and shut down gracefully.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
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
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::store::{SqliteStore, Store, StoreError};
use crate::{poller, store};

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
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.store.path, policy.clone())?);
    let integrations =
        Arc::new(Integrations::from_config(&config).map_err(DaemonError::Integration)?);
    let core = Arc::new(Core {
        store,
        clock: opts.clock,
        scheduler: Arc::new(Scheduler::default()),
        dispatch: Arc::new(Notify::new()),
        metrics: Arc::new(Metrics::default()),
    });
    let tasks = CancellationToken::new();
    let mut background = tokio::task::JoinSet::new();
    background.spawn(core.scheduler.clone().run(core.clone(), tasks.clone()));
    let deliver: Arc<dyn Deliver> = integrations.clone();
    let dispatcher = Dispatcher::new(core.clone(), deliver, DISPATCH_CONCURRENCY);
    let dispatch_done = tokio::spawn(dispatcher.run(core.dispatch.clone(), tasks.clone()));
    if let Some(every) = config.pagerduty.poll_interval {
        let pd = Arc::new(crate::integrations::pagerduty::PagerDuty::new(
            config.pagerduty.events_url.clone(),
            config.pagerduty.api_url.clone(),
            config.pagerduty.routing_key.clone(),
            config.pagerduty.api_token.clone(),
            config.pagerduty.from.clone(),
            0,
            crate::integrations::http_client(crate::integrations::REQUEST_TIMEOUT),
        ));
        background.spawn(poller::pagerduty(core.clone(), pd, every, tasks.clone()));
    }
    if let Some(every) = config.zendesk.poll_interval {
        let zd = Arc::new(crate::integrations::zendesk::Zendesk::new(
            config.zendesk.url.clone(),
            &config.zendesk.email,
            &config.zendesk.api_token,
            crate::integrations::http_client(crate::integrations::REQUEST_TIMEOUT),
        ));
        background.spawn(poller::zendesk(
            core.clone(),
            zd,
            policy.clone(),
            every,
            tasks.clone(),
        ));
    }
    background.spawn(watchdog(
        core.store.clone(),
        core.clock.clone(),
        tasks.clone(),
    ));

    let grace = config.server.shutdown_grace;
    let state = AppState {
        core: core.clone(),
        config: Arc::new(config),
        leader: Arc::new(AtomicBool::new(true)),
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "pagerd is ready");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;

    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("shutting down: no new requests; finishing deliveries in flight");
    tasks.cancel();
    if tokio::time::timeout(grace, dispatch_done).await.is_err() {
        tracing::warn!(
            ?grace,
            "deliveries did not finish in time; they stay in the outbox for the next start"
        );
    }
    background.shutdown().await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Pings systemd's watchdog while the store answers; a wedged store stops
/// the pings and systemd restarts the daemon.
async fn watchdog(
    store: Arc<dyn store::Store>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
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
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
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

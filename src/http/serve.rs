//! The accept loop: HTTP/1.1 with hyper, bounded in time, count and size.
//!
//! `axum::serve` has no header-read timeout and no connection cap, so a few
//! hundred clients that open a connection and send half a header (or keep
//! an idle keep-alive) could hold the daemon's file descriptors and starve
//! the webhooks that page people. Here:
//! - every connection has [`Limits::header_timeout`] to send a request's
//!   headers, counted from when it opens or from the end of the previous
//!   response (so it is also the idle keep-alive timeout);
//! - at most [`Limits::max_connections`] are open at once; past that the
//!   loop stops accepting, and new clients wait in the kernel's backlog
//!   until a slot frees (a slowloris holds a slot at most `header_timeout`);
//! - headers are limited in count and size, so a connection's memory is
//!   bounded (bodies are limited by the router: [`super::MAX_BODY`]);
//! - an `accept` error (out of file descriptors) is logged and retried
//!   after a pause, never fatal.
//!
//! Shutdown stops accepting, lets requests in flight finish (each is
//! bounded by the router's 10 s timeout) and closes idle connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;
/// Largest request head (request line and headers), in bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest read buffer of a connection, in bytes.
const MAX_BUF: usize = 64 * 1024;
/// Pause after a failed `accept` (usually: out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The bounds of the HTTP edge (`[server]` in the config).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's headers; also the idle keep-alive timeout.
    pub header_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long shutdown waits for open connections.
    pub drain: Duration,
}

/// Serves `app` on `listener` until `shutdown`, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_BUF);
    let mut warned_full = false;
    loop {
        // A slot first: over the cap, clients wait in the backlog.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !warned_full {
                    tracing::warn!(
                        max = limits.max_connections,
                        "server.max_connections reached: new connections wait"
                    );
                    warned_full = true;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(cause = %e, "cannot accept a connection; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        if slots.available_permits() > 0 {
            warned_full = false;
        }
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            app.clone()
                .map_request(|req: hyper::Request<Incoming>| req.map(Body::new)),
        );
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Timeouts, resets and malformed requests: the client's doing.
                tracing::debug!(%peer, cause = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.drain) => {
            tracing::warn!("connections still open after the drain time; closing them");
        }
    }
    Ok(())
}

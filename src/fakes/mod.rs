//! Local stand-ins for the vendors: PagerDuty, Zendesk, Slack, Google
//! (Drive, Docs, Calendar), GitLab and an SMTP sink.
//!
//! They speak the real wire protocols (as described in `../shared/specs/`),
//! check what the real services check (auth headers, content types, required
//! fields) and record what they received. `pagerd demo` runs the daemon
//! against them, and the end-to-end tests assert on their records. They can
//! be told to misbehave ([`Faults`]) to prove retries and fallbacks.
//!
//! They bind `127.0.0.1:0` only: nothing here ever leaves the machine.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

pub mod gitlab;
pub mod google;
pub mod pagerduty;
pub mod sign;
pub mod slack;
pub mod smtp;
pub mod stand_ins;
pub mod zendesk;

/// A line for the demo's timeline: each fake says what it saw, in words.
#[derive(Clone, Default)]
pub struct Timeline(Option<mpsc::UnboundedSender<String>>);

impl Timeline {
    /// A timeline that forwards lines to `tx`.
    pub fn new(tx: mpsc::UnboundedSender<String>) -> Timeline {
        Timeline(Some(tx))
    }

    /// Records one line; silently dropped when nobody listens.
    pub fn say(&self, line: impl Into<String>) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(line.into());
        }
    }
}

/// Every request a fake received, as `METHOD /path` (no query: it may
/// carry cursors, never credentials, but stays out for brevity), in order,
/// faults included. Tests assert on it, e.g. that `pagerd doctor` only
/// reads.
#[derive(Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<String>>>);

impl RequestLog {
    /// The requests so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Wraps `router` so every request is recorded before it is handled.
    pub fn record(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            record_request,
        ))
    }
}

async fn record_request(
    axum::extract::State(log): axum::extract::State<RequestLog>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let line = format!("{} {}", req.method(), req.uri().path());
    log.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    next.run(req).await
}

/// One way to misbehave on the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` when given) instead of
    /// handling the request. The request is not applied.
    Status {
        /// HTTP status to answer with.
        status: u16,
        /// Seconds for the `Retry-After` header.
        retry_after: Option<u64>,
    },
    /// Wait this long before handling the request (to trip client timeouts).
    Delay(Duration),
    /// Answer 200 with a body that is not JSON. The request is not applied.
    MalformedJson,
}

/// A queue of faults to inject, consumed one per request, shared by a fake
/// and the test that drives it.
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<VecDeque<Fault>>>);

impl Faults {
    /// Queues `fault` for the next `n` requests.
    pub fn push(&self, fault: Fault, n: usize) {
        let mut q = self.0.lock().expect("faults lock");
        for _ in 0..n {
            q.push_back(fault.clone());
        }
    }

    /// Forgets every queued fault.
    pub fn clear(&self) {
        self.0.lock().expect("faults lock").clear();
    }

    /// How many faults are still queued.
    pub fn len(&self) -> usize {
        self.0.lock().expect("faults lock").len()
    }

    /// Whether no fault is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the fault for this request, if any.
    pub fn next(&self) -> Option<Fault> {
        self.0.lock().expect("faults lock").pop_front()
    }

    /// Applies the next fault: `Some(response)` short-circuits the handler;
    /// `None` means handle the request normally (after any delay).
    pub async fn intercept(&self) -> Option<Response> {
        match self.next()? {
            Fault::Status {
                status,
                retry_after,
            } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut headers = HeaderMap::new();
                if let Some(secs) = retry_after {
                    headers.insert("retry-after", HeaderValue::from(secs));
                }
                Some((status, headers, "{\"error\":\"injected fault\"}").into_response())
            }
            Fault::Delay(d) => {
                tokio::time::sleep(d).await;
                None
            }
            Fault::MalformedJson => Some((StatusCode::OK, "<html>not json").into_response()),
        }
    }
}

/// At most `max` characters of `s` on one line (white space folded), with
/// `…` when cut: the fakes' timeline lines stay one line long, and show
/// no terminal escapes (the demo prints them).
pub(crate) fn shorten(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::render::terminal(&crate::render::truncate(&one_line, max))
}

/// A fake's HTTP server: its address and the task serving it (aborted on drop).
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `127.0.0.1:0` and serves `router` until dropped.
    pub async fn spawn(router: Router) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Server { addr, task })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

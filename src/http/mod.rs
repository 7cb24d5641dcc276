//! The HTTP edge: webhooks in, admin API, health and metrics.
//!
//! Handlers verify and parse strictly, then hand one event to the core,
//! which commits it before the handler answers 2xx. Anything refused (bad
//! signature, bad JSON, too large) is answered 4xx and stored nowhere.
//!
//! Only `/webhooks/*` need face the internet. `/healthz`, `/readyz` and
//! `/metrics` need no token and read memory only ([`crate::live`]): they
//! never wait for the store. `/readyz` says whether this instance takes
//! webhooks and, if not, why, and nothing about the host; the details
//! (instance, lease holder, counts) are behind the admin token at
//! `/api/v1/status`. Every 503 carries `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::intake::Core;
use crate::shared::Shared;
use crate::store::StoreError;

pub mod admin;
pub mod serve;
pub mod webhooks;

/// Largest accepted request body. PagerDuty guarantees ≤ 55 KB and drops
/// anything over 256 KB; Zendesk and Slack bodies are far smaller.
pub const MAX_BODY: usize = 256 * 1024;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The core.
    pub core: Arc<Core>,
    /// The validated config (secrets for verifying webhooks, the admin
    /// token); a reload swaps it, and each request reads the current one.
    pub config: Shared<Config>,
}

/// The router; `app(state).oneshot(request)` in tests needs no socket.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/webhooks/zendesk", post(webhooks::zendesk))
        .route("/webhooks/pagerduty", post(webhooks::pagerduty))
        .route("/webhooks/slack", post(webhooks::slack))
        .route("/webhooks/hackerone", post(webhooks::hackerone))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", admin::routes(state.clone()))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TraceLayer::new_for_http())
        // Graceful shutdown waits for requests in flight; bound them.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        // Outermost: also covers the timeout's 503.
        .layer(axum::middleware::map_response(retry_after))
        .with_state(state)
}

/// Longest time a request may take, body included; then 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Seconds a client is told to wait after a 503.
const RETRY_AFTER_SECS: &str = "5";

/// Adds `Retry-After` to every 503 that lacks one.
async fn retry_after(mut resp: Response) -> Response {
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE
        && !resp.headers().contains_key(header::RETRY_AFTER)
    {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    resp
}

/// `GET /readyz`: `ready` (200) or `not_ready` and why (503), from memory.
async fn readyz(State(st): State<AppState>) -> Response {
    // A leader whose dispatcher or scheduler stopped turning pages nobody.
    if st.core.leadership.is_leader()
        && !st
            .core
            .health
            .stalled(crate::health::STALL_AFTER)
            .is_empty()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({ "status": "not_ready", "reason": "a delivery or timer loop is stuck" }),
            ),
        )
            .into_response();
    }
    match st.core.live.ready() {
        Ok(()) => (StatusCode::OK, axum::Json(json!({ "status": "ready" }))).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "not_ready", "reason": why })),
        )
            .into_response(),
    }
}

/// `GET /metrics`, from memory.
async fn metrics(State(st): State<AppState>) -> Response {
    let asked = std::time::Instant::now();
    let core = &st.core;
    let scrape = || crate::metrics::Scrape {
        stats: core.live.stats(core.clock.now()),
        leader: core.leadership.is_leader(),
        armed: core.scheduler.len(),
    };
    match core.metrics.scrape(asked, scrape).await {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(cause = %e, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// An error answered to a client: 4xx say what was wrong; 5xx say little.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request does not parse or is not valid.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or wrong credentials or signature.
    #[error("{0}")]
    Unauthorized(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 415: not the content type this endpoint takes.
    #[error("expected Content-Type {0}")]
    UnsupportedMediaType(&'static str),
    /// 503: the store failed; the sender should retry.
    #[error("temporarily unavailable, retry")]
    Unavailable(#[source] StoreError),
    /// 503: a vendor pagerd must ask first did not answer; the sender
    /// should retry.
    #[error("temporarily unavailable, retry")]
    Upstream(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::Unavailable(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(e) => {
                tracing::error!(cause = %e, "store failed; answering 503");
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Upstream(why) => {
                tracing::warn!(cause = %why, "a vendor did not answer; answering 503");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let mut resp = (status, axum::Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

/// The value of a header, if present and ASCII.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Refuses a body whose `Content-Type` is not `expected`.
pub(crate) fn require_content_type(
    headers: &HeaderMap,
    expected: &'static str,
) -> Result<(), ApiError> {
    let ct = header_str(headers, header::CONTENT_TYPE.as_str()).unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(expected))
    }
}

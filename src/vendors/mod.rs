//! Thin clients for the services pagerd talks to, one module each.
//!
//! Every client method returns `Result<_, DeliveryError>`, and the error says
//! whether trying again can help. The dispatcher owns retries, backoff and
//! idempotency bookkeeping; the clients only speak the wire protocol (as in
//! `../shared/specs/`) and classify what came back.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

pub mod email;
pub mod gitlab;
pub mod google;
pub mod hackerone;
pub mod pagerduty;
pub mod signing;
pub mod slack;
pub mod zendesk;

/// A responder: one e-mail address, one real name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Person {
    /// The e-mail address, trimmed and lower-cased: the identity.
    pub email: String,
    /// The real name, for customer-visible text.
    pub name: String,
}

impl Person {
    /// A person; the e-mail is normalised ([`normalize_email`]) and a blank
    /// name becomes the e-mail address.
    pub fn new(email: &str, name: &str) -> Person {
        let email = normalize_email(email);
        let name = name.trim();
        let name = if name.is_empty() {
            email.clone()
        } else {
            name.to_string()
        };
        Person { email, name }
    }
}

/// The canonical form of an e-mail address: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A vendor that takes effects: the dispatcher hands it every effect of
/// its lane ([`crate::engine::Lane`]) through the registry
/// ([`crate::deliver::Registry`]).
#[async_trait::async_trait]
pub trait Vendor: Send + Sync + 'static {
    /// Performs the effect. `Ok(outcome)` only once the remote accepted it;
    /// with `pending.maybe_sent`, first looks for an earlier attempt's
    /// marker so nothing is done twice.
    async fn deliver(
        &self,
        pending: &crate::store::Pending,
    ) -> Result<Option<crate::engine::Outcome>, DeliveryError>;
}

/// An effect routed to the wrong vendor: a bug in the registry, refused.
pub(crate) fn wrong_lane(vendor: &str, effect: &crate::engine::Effect) -> DeliveryError {
    DeliveryError::permanent(format!("{vendor} does not deliver {:?}", effect.kind()))
}

/// Why a delivery did not happen.
///
/// The `reason` is shown to operators (`pagerd incidents show`, logs); it
/// names the service and the status and never contains a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The service is down, slow or rate limiting: try again later, no sooner
    /// than `retry_after` when the service said so.
    #[error("{reason}")]
    Retryable {
        /// What failed, for operators.
        reason: String,
        /// The wait the service asked for (`Retry-After`, `ratelimit-reset`).
        retry_after: Option<Duration>,
    },
    /// The request itself is wrong (bad credentials, unknown channel, invalid
    /// routing key): trying again cannot help, a human must fix the config.
    #[error("{reason}")]
    Permanent {
        /// What failed, for operators.
        reason: String,
    },
}

impl DeliveryError {
    /// A retryable error without a server-given delay.
    pub fn retry(reason: impl Into<String>) -> DeliveryError {
        DeliveryError::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A permanent error.
    pub fn permanent(reason: impl Into<String>) -> DeliveryError {
        DeliveryError::Permanent {
            reason: reason.into(),
        }
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DeliveryError::Retryable { .. })
    }
}

/// Why a read-only check of an integration (`pagerd doctor`) failed.
///
/// The checks ask things (who am I, does this file exist) rather than do
/// things, so what matters is not whether a retry helps but what a human
/// must fix: a refused credential, a thing that is not there, or anything
/// else (unreachable, a 5xx, a body that does not parse). Like
/// [`DeliveryError`], the reason names the service and never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The credential was refused: HTTP 401/403, Slack `invalid_auth`,
    /// an OAuth `invalid_grant`, an SMTP login refused.
    #[error("{reason}")]
    Rejected {
        /// What was refused, for operators.
        reason: String,
    },
    /// What was asked for does not exist, or is not visible to the
    /// credential (HTTP 404, Slack `channel_not_found`).
    #[error("{reason}")]
    NotFound {
        /// What is missing, for operators.
        reason: String,
    },
    /// Anything else, classified as a delivery would be.
    #[error("{0}")]
    Failed(DeliveryError),
}

impl From<ProbeError> for DeliveryError {
    /// A refused credential and a missing thing are permanent; the rest
    /// keeps its delivery classification.
    fn from(e: ProbeError) -> DeliveryError {
        match e {
            ProbeError::Rejected { reason } | ProbeError::NotFound { reason } => {
                DeliveryError::Permanent { reason }
            }
            ProbeError::Failed(e) => e,
        }
    }
}

/// Reads the response of a read-only check: the parsed JSON body and the
/// headers on success; 401 and 403 are [`ProbeError::Rejected`], 404
/// [`ProbeError::NotFound`], the rest as [`json_response`] classifies them.
pub async fn probe_response<T: serde::de::DeserializeOwned>(
    service: &str,
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<(T, HeaderMap), ProbeError> {
    let resp = resp.map_err(|e| ProbeError::Failed(from_transport(service, &e)))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .text()
        .await
        .map_err(|e| ProbeError::Failed(from_transport(service, &e)))?;
    if !status.is_success() {
        let reason = from_status(service, status, &headers, &body).to_string();
        return Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ProbeError::Rejected { reason },
            StatusCode::NOT_FOUND => ProbeError::NotFound { reason },
            _ => ProbeError::Failed(from_status(service, status, &headers, &body)),
        });
    }
    let value = serde_json::from_str(&body).map_err(|e| {
        ProbeError::Failed(DeliveryError::retry(format!(
            "{service} answered {status} with a body that does not parse: {e}"
        )))
    })?;
    Ok((value, headers))
}

/// Percent-encodes `segment` for one URL path segment: everything but
/// ASCII letters, digits and `-_.~` (so `support/crises` becomes
/// `support%2Fcrises`, as GitLab wants a project path).
pub fn path_segment(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Timeout of one outbound request: connect, send, and read the response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client every integration shares: bounded timeouts, no redirects
/// to other hosts, a user agent that names us.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pagerd/", env!("CARGO_PKG_VERSION")))
        .build()
        // Only fails if the TLS backend cannot initialise, which is a broken
        // build rather than a runtime condition.
        .expect("the HTTP client builds")
}

/// The delay a response asks for: `Retry-After` in seconds (Slack, Zendesk,
/// most 503s) or PagerDuty's `ratelimit-reset`. Capped at ten minutes so a
/// silly header cannot park a page for a day.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs = ["retry-after", "ratelimit-reset"]
        .iter()
        .filter_map(|name| {
            headers
                .get(*name)?
                .to_str()
                .ok()?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .find(|s| s.is_finite() && *s >= 0.0)?;
    Some(Duration::from_secs_f64(secs.min(600.0)))
}

/// Classifies a non-success HTTP response: 408, 429 and 5xx are worth another
/// try; any other 4xx is permanent.
pub fn from_status(
    service: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> DeliveryError {
    let mut snippet: String = body.chars().take(200).collect();
    if snippet.len() < body.len() {
        snippet.push('…');
    }
    let reason = format!("{service} answered {status}: {}", snippet.trim());
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        DeliveryError::Retryable {
            reason,
            retry_after: retry_after(headers),
        }
    } else {
        DeliveryError::Permanent { reason }
    }
}

/// Classifies a transport error (connection refused, timeout, reset): always
/// retryable, because the request may simply not have arrived.
pub fn from_transport(service: &str, err: &reqwest::Error) -> DeliveryError {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "unreachable"
    } else if err.is_decode() {
        "sent a response that does not parse"
    } else {
        "request failed"
    };
    // `without_url` keeps query strings (which may carry cursors) out of logs.
    DeliveryError::retry(format!("{service} {what}: {}", err_chain(err)))
}

fn err_chain(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut out = String::new();
    let mut cur: Option<&dyn std::error::Error> = err.source();
    while let Some(e) = cur {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&e.to_string());
        cur = e.source();
    }
    if out.is_empty() { err.to_string() } else { out }
}

/// Reads a response: the parsed JSON body on success, a classified error
/// otherwise. A 2xx whose body is not the JSON we expect is retryable: a
/// proxy in between may have mangled it.
pub async fn json_response<T: serde::de::DeserializeOwned>(
    service: &str,
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, DeliveryError> {
    let resp = resp.map_err(|e| from_transport(service, &e))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.map_err(|e| from_transport(service, &e))?;
    if !status.is_success() {
        return Err(from_status(service, status, &headers, &body));
    }
    serde_json::from_str(&body).map_err(|e| {
        DeliveryError::retry(format!(
            "{service} answered {status} with a body that does not parse: {e}"
        ))
    })
}

/// An outbox row of `effect` for incident `incident_id` (ticket 4711,
/// with a crisis doc `doc-1`), row `row`: what the vendors' delivery tests
/// hand their vendor (those run against the stand-ins).
#[cfg(all(test, feature = "demo"))]
pub(crate) fn test_pending(
    incident_id: i64,
    row: i64,
    effect: crate::engine::Effect,
    maybe_sent: bool,
) -> crate::store::Pending {
    use crate::engine::{Crisis, Doc, Incident, Status, Ticket};
    let incident = Incident {
        id: incident_id,
        dedup_key: "zendesk-4711".into(),
        episode: 1,
        ticket: Ticket {
            id: "4711".into(),
            title: "Production instance down".into(),
            priority: "urgent".into(),
            status: "open".into(),
            tags: vec![],
            url: String::new(),
            requester_name: "Dana Customer".into(),
            requester_email: "dana@customer.test".into(),
            organization: "Customer Corp".into(),
        },
        status: Status::Resolved,
        opened_at: 0,
        level: 1,
        acked: None,
        resolved: None,
        responders: vec![],
        deadlines: Default::default(),
        page_pending: false,
        fallback_sent: false,
        pagerduty_id: None,
        crisis: Some(Crisis {
            declared_at: 0,
            reason: "test".into(),
            doc: Some(Doc {
                id: "doc-1".into(),
                url: String::new(),
            }),
            threads: Default::default(),
            deprecated: false,
            handoff: None,
            follow_up: None,
        }),
        last_error: None,
        paged_at: None,
        escalated_at: None,
        undeliverable: None,
    };
    crate::store::Pending {
        id: row,
        effect,
        attempts: u32::from(maybe_sent),
        maybe_sent,
        created_at: 0,
        incident,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses_are_classified() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        let e = from_status("Slack", StatusCode::TOO_MANY_REQUESTS, &h, "{}");
        assert_eq!(
            e,
            DeliveryError::Retryable {
                reason: "Slack answered 429 Too Many Requests: {}".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(from_status("x", StatusCode::BAD_GATEWAY, &HeaderMap::new(), "").is_retryable());
        assert!(!from_status("x", StatusCode::UNAUTHORIZED, &HeaderMap::new(), "").is_retryable());
        assert!(!from_status("x", StatusCode::BAD_REQUEST, &HeaderMap::new(), "").is_retryable());
    }

    #[test]
    fn retry_after_reads_pagerduty_reset_and_caps() {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-reset", HeaderValue::from_static("30"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
        h.insert("retry-after", HeaderValue::from_static("99999"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(600)));
    }
}

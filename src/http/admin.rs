//! The admin API under `/api/v1`, used by `pagerd incidents …`.
//!
//! Every route needs `Authorization: Bearer <server.admin_token>`, compared
//! in constant time whatever the lengths (the SHA-256 digests of both are
//! compared). Without a configured token the API is off (403), so a daemon
//! is never controllable by accident. `GET /status` is what `pagerd status`
//! prints: role, instance, lease, counts (from memory).
//! `GET /incidents/by-ticket/{ticket}` answers what `GET /incidents/{id}`
//! does for the ticket's latest episode (`pagerd incidents show '#4711'`).
//! `GET /reports` and `GET /reports/{ticket}` show the watched HackerOne
//! reports (`pagerd reports list|show`).

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState, header_str};
use crate::engine::{Event, Incident, Source};
use crate::store::{Change, Intake};

/// The `/api/v1` routes.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/status", get(status))
        .route("/incidents", get(list))
        .route("/incidents/{id}", get(show))
        .route("/incidents/by-ticket/{ticket}", get(show_ticket))
        .route("/incidents/{id}/{action}", post(act))
        .route("/reports", get(reports))
        .route("/reports/{ticket}", get(report))
        .route_layer(middleware::from_fn_with_state(state, auth))
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let config = st.config.load();
    let Some(token) = &config.server.admin_token else {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(
                json!({ "error": "the admin API is off: set server.admin_token_file (or _env)" }),
            ),
        )
            .into_response();
    };
    let given = header_str(req.headers(), "authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    if token_matches(given, token.expose()) {
        next.run(req).await
    } else {
        ApiError::Unauthorized("missing or wrong admin token".into()).into_response()
    }
}

/// Whether `given` is `expected`, in time that depends on neither (equal
/// length digests, compared in constant time).
fn token_matches(given: &str, expected: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// `GET /status`: readiness, role, instance, lease and counts.
async fn status(State(st): State<AppState>) -> Response {
    let now = st.core.clock.now();
    let stats = st.core.live.stats(now);
    let (ready, reason) = match st.core.live.ready() {
        Ok(()) => ("ready", None),
        Err(why) => ("not_ready", Some(why)),
    };
    // PostgreSQL: one query on the pool; SQLite answers without the store.
    let lease = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        st.core.store.lease_holder(),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .flatten();
    let body = json!({
        "status": ready,
        "reason": reason,
        "role": if st.core.leadership.is_leader() { "leader" } else { "follower" },
        "instance": st.core.leadership.holder,
        "lease": lease.map(|(holder, expires_in_ms)| json!({ "holder": holder, "expires_in_ms": expires_in_ms })),
        "armed_deadlines": st.core.scheduler.len(),
        "lag_ms": stats.oldest_pending_ms,
        "store": stats,
    });
    axum::Json(body).into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    limit: Option<usize>,
}

async fn list(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let incidents = st
        .core
        .store
        .list(!q.all, q.limit.unwrap_or(100).min(10_000))
        .await?;
    let incidents: Vec<Value> = incidents.iter().map(with_paged).collect();
    Ok(axum::Json(json!({ "incidents": incidents })).into_response())
}

/// The incident as the API shows it: its state, plus `"paged"`, whether
/// PagerDuty has accepted its page.
fn with_paged(i: &Incident) -> Value {
    // Infallible: an incident serialises to a JSON object with string keys.
    let mut v = json!(i);
    v["paged"] = json!(i.paged());
    v
}

async fn show(State(st): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let Some(incident) = st.core.store.get(id).await? else {
        return Err(ApiError::NotFound(format!("no incident {id}")));
    };
    detail(&st, incident).await
}

/// `GET /incidents/by-ticket/{ticket}`: what `GET /incidents/{id}` answers,
/// for the latest episode of a Zendesk ticket.
async fn show_ticket(
    State(st): State<AppState>,
    Path(ticket): Path<String>,
) -> Result<Response, ApiError> {
    let ticket = ticket.trim_start_matches('#');
    let Some(incident) = st.core.store.by_ticket(ticket).await? else {
        return Err(ApiError::NotFound(format!(
            "no incident for ticket #{}",
            crate::render::truncate(ticket, 100)
        )));
    };
    detail(&st, incident).await
}

/// An incident with its journal and outbox rows.
async fn detail(st: &AppState, incident: Incident) -> Result<Response, ApiError> {
    let id = incident.id;
    let journal = st.core.store.journal(id).await?;
    let outbox = st.core.store.outbox(id).await?;
    Ok(axum::Json(
        json!({ "incident": with_paged(&incident), "journal": journal, "outbox": outbox }),
    )
    .into_response())
}

/// `GET /reports`: `{"reports": [...]}`, oldest deadline first.
async fn reports(State(st): State<AppState>) -> Result<Response, ApiError> {
    let all = st
        .core
        .store
        .reports(crate::reports::watch::MAX_REPORTS)
        .await?;
    let h1: std::collections::HashMap<String, crate::reports::h1::H1Report> = st
        .core
        .store
        .h1_reports(crate::reports::watch::MAX_REPORTS)
        .await?
        .into_iter()
        .map(|h| (h.id.clone(), h))
        .collect();
    let config = st.core.reports.config();
    let now = st.core.clock.now();
    let reports: Vec<Value> = all
        .iter()
        .map(|r| {
            let found = r.h1_report.as_ref().and_then(|id| h1.get(id));
            report_json(r, found, config.hackerone.as_ref(), now)
        })
        .collect();
    Ok(axum::Json(json!({ "reports": reports })).into_response())
}

/// A report with what HackerOne's webhook said about it (`hackerone`:
/// `null` until it said something).
fn report_json(
    r: &crate::reports::Report,
    h1: Option<&crate::reports::h1::H1Report>,
    cfg: Option<&crate::reports::config::HackerOneConfig>,
    now: crate::clock::Millis,
) -> Value {
    let mut v = crate::reports::text::json(r, cfg, now);
    v["hackerone"] = h1.map_or(Value::Null, |h| crate::reports::text::h1_json(h, cfg));
    v
}

/// `GET /reports/{ticket}`: `{"report": {...}}` (`#4711` or `4711`).
async fn report(
    State(st): State<AppState>,
    Path(ticket): Path<String>,
) -> Result<Response, ApiError> {
    let ticket = ticket.trim_start_matches('#');
    let Some(r) = st.core.store.report(ticket).await? else {
        return Err(ApiError::NotFound(format!(
            "no HackerOne report is watched for ticket #{}",
            crate::render::truncate(ticket, 100)
        )));
    };
    let h1 = match &r.h1_report {
        Some(id) => st.core.store.h1_report(id).await?,
        None => None,
    };
    let config = st.core.reports.config();
    let v = report_json(
        &r,
        h1.as_ref(),
        config.hackerone.as_ref(),
        st.core.clock.now(),
    );
    Ok(axum::Json(json!({ "report": v })).into_response())
}

#[derive(Deserialize, Default)]
struct ActBody {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn act(
    State(st): State<AppState>,
    Path((id, action)): Path<(i64, String)>,
    body: Option<axum::Json<ActBody>>,
) -> Result<Response, ApiError> {
    let body = body.map(|b| b.0).unwrap_or_default();
    // A person, by e-mail: the customer may read their name, and the same
    // e-mail from PagerDuty or Slack is the same responder.
    let Some(email) = body
        .by
        .map(|b| b.trim().to_string())
        .filter(|b| crate::config::looks_like_email(b))
    else {
        return Err(ApiError::BadRequest(
            "say who you are: \"by\" must be your e-mail (the CLI's --as EMAIL)".into(),
        ));
    };
    let by = st.core.people.load().who_email(&email).await;
    let reason = body.reason.unwrap_or_default();
    let Some(event) = Event::action(&action, by, &reason, Source::Cli) else {
        return Err(ApiError::NotFound(format!(
            "no action {action:?}; use ack, escalate, crisis, join, resolve, repage or note"
        )));
    };
    let before = st.core.clock.now();
    let applied = st.core.submit(Intake::incident(id, event)).await?;
    let crisis_declared = applied.crisis_declared_since(before).map(str::to_string);
    let (result, reason) = match &applied.result {
        Change::Ignored(_) if applied.incident.is_none() => {
            return Err(ApiError::NotFound(format!("no incident {id}")));
        }
        Change::Ignored(r) => ("ignored", Some(r.clone())),
        Change::Created | Change::Updated => ("updated", None),
        Change::Replayed => ("replayed", None),
    };
    Ok(axum::Json(json!({
        "result": result,
        "reason": reason,
        "crisis_declared": crisis_declared,
        "incident": applied.incident,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn tokens_match_only_when_equal_whatever_the_lengths() {
        let t = "SECRET-0123456789abcdef0123456789abcdef";
        assert!(token_matches(t, t));
        assert!(!token_matches("", t));
        assert!(!token_matches(&t[..31], t));
        assert!(!token_matches(&format!("{t}x"), t));
    }
}

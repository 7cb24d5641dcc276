//! Inbound webhooks: one verify-then-submit path that each vendor plugs
//! into. The vendor's folder owns its wire details (signature headers and
//! scheme, body shape: `vendors::*::webhook` and `vendors::slack::actions`);
//! this module only orders the steps and turns their outcome into HTTP:
//!
//! 1. the vendor verifies the signature over the raw body (401 and nothing
//!    stored on failure);
//! 2. the content type is checked (415);
//! 3. the vendor parses strictly (400 on a malformed body);
//! 4. people are resolved (`crate::people`), the event is submitted, and
//!    the answer is given only once it is committed.

use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, AppState, require_content_type};
use crate::engine::{Event, Source, Ticket};
use crate::reports::watch::ReportError;
use crate::store::{Applied, Change, Intake, Target};
use crate::vendors::signing::{SignatureError, unix_now};
use crate::vendors::{pagerduty, slack, zendesk};

fn count(st: &AppState, source: &str, result: &str) {
    st.core.metrics.observe_webhook(source, result);
}

/// Step 1 for every vendor: a refused signature is counted, logged and
/// answered 401.
fn verified(st: &AppState, source: &str, r: Result<(), SignatureError>) -> Result<(), ApiError> {
    r.map_err(|e| {
        count(st, source, "unauthorized");
        tracing::warn!(source, cause = %e, "webhook refused");
        ApiError::Unauthorized(format!("{source} webhook refused: {e}"))
    })
}

/// Step 3's refusal: counted, answered 400.
fn malformed(st: &AppState, source: &str, why: String) -> ApiError {
    count(st, source, "bad_request");
    ApiError::BadRequest(why)
}

/// A well-formed request that asks nothing of pagerd: 200, so the vendor
/// does not retry it.
fn ignored(st: &AppState, source: &str, reason: &str) -> Response {
    count(st, source, "ignored");
    (
        StatusCode::OK,
        axum::Json(json!({ "result": "ignored", "reason": reason })),
    )
        .into_response()
}

fn answer(applied: &Applied) -> Response {
    let (result, reason) = match &applied.result {
        Change::Created => ("created", None),
        Change::Updated => ("updated", None),
        Change::Ignored(r) => ("ignored", Some(r.as_str())),
        Change::Replayed => ("replayed", None),
    };
    let body = json!({ "result": result, "reason": reason, "incident": applied.incident.as_ref().map(|i| i.id) });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `POST /webhooks/zendesk`: a ticket was created or updated.
pub async fn zendesk(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config = st.config.load();
    let secret = config.zendesk.webhook_secret.expose();
    verified(
        &st,
        "zendesk",
        zendesk::webhook::verify_request(secret, &headers, &body, unix_now()),
    )?;
    require_content_type(&headers, "application/json")?;
    let ticket = zendesk::webhook::parse(&body, &config.zendesk.url)
        .map_err(|e| malformed(&st, "zendesk", e))?;
    if st.core.reports.is_report(&ticket) {
        return report(&st, ticket, &body).await;
    }
    let span = tracing::info_span!("zendesk_webhook", ticket = %ticket.id);
    let applied = st.core.submit(Intake::ticket(ticket)).await?;
    check_reply_soon(&st, &applied);
    count(&st, "zendesk", "accepted");
    span.in_scope(|| match &applied.result {
        Change::Created => tracing::info!(
            incident = applied.incident.as_ref().map(|i| i.id),
            "emergency: paging"
        ),
        Change::Ignored(reason) => tracing::info!(%reason, "ticket ignored"),
        _ => tracing::info!("ticket update applied"),
    });
    Ok(answer(&applied))
}

/// A HackerOne report's ticket (`[hackerone] tags`): not an emergency, so
/// it pages nobody. Its clock starts once, at the ticket's creation (the
/// body's `created_at`, else Zendesk's); its comments are read off the
/// request path, in case an agent replied. An incident the ticket already
/// has (an emergency before it was tagged, or a `page_on_breach` page)
/// still hears the update, so solving the ticket resolves it.
async fn report(st: &AppState, ticket: Ticket, body: &[u8]) -> Result<Response, ApiError> {
    let span = tracing::info_span!("zendesk_webhook", ticket = %ticket.id);
    let created_at = match zendesk::webhook::created_at(body) {
        Ok(at) => at.map(|t| t.as_millisecond()),
        Err(e) => {
            span.in_scope(|| tracing::warn!(cause = %e, "hackerone: the body's created_at is not a timestamp; asking Zendesk"));
            None
        }
    };
    let h1_report = crate::reports::h1::report_id_of(
        zendesk::webhook::external_id(body).as_deref(),
        &ticket.title,
    );
    let seen = st
        .core
        .reports
        .seen(&ticket, created_at, h1_report)
        .await
        .map_err(|e| match e {
            ReportError::Store(e) => ApiError::Unavailable(e),
            ReportError::Zendesk(e) => ApiError::Upstream(format!(
                "hackerone: cannot read ticket {}'s creation time from Zendesk: {e}",
                ticket.id
            )),
        })?;
    if let Some(r) = &seen {
        st.core.reports.check_soon(r.ticket.clone());
    }
    let incident = match st.core.store.by_ticket(&ticket.id).await? {
        Some(inc) if inc.is_open() => st.core.submit(Intake::ticket(ticket)).await?.incident,
        _ => None,
    };
    count(st, "zendesk", "accepted");
    span.in_scope(|| tracing::info!("hackerone report: watched, not paged"));
    let body = json!({
        "result": "report",
        "state": seen.as_ref().map(|r| r.state.as_str()),
        "respond_by": seen.as_ref().map(|r| crate::clock::rfc3339(r.respond_by)),
        "incident": incident.map(|i| i.id),
    });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// `POST /webhooks/pagerduty`: acknowledged or resolved in PagerDuty.
pub async fn pagerduty(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config = st.config.load();
    let Some(secret) = &config.pagerduty.webhook_secret else {
        count(&st, "pagerduty", "unauthorized");
        return Err(ApiError::Unauthorized(
            "PagerDuty webhooks are off: set pagerduty.webhook_secret_file (polling still works)"
                .into(),
        ));
    };
    verified(
        &st,
        "pagerduty",
        pagerduty::webhook::verify_request(secret.expose(), &headers, &body),
    )?;
    require_content_type(&headers, "application/json")?;
    let notice = match pagerduty::webhook::parse(&body, SystemTime::now()) {
        Ok(n) => n,
        Err(pagerduty::webhook::Refused::Ignored(why)) => {
            tracing::debug!(reason = why, "pagerduty webhook: not acted on");
            return Ok(ignored(&st, "pagerduty", why));
        }
        Err(e @ pagerduty::webhook::Refused::Stale(_)) => {
            count(&st, "pagerduty", "stale");
            tracing::warn!(source = "pagerduty", cause = %e, "webhook refused");
            return Err(ApiError::BadRequest(format!(
                "pagerduty webhook refused: {e}"
            )));
        }
        Err(e) => return Err(malformed(&st, "pagerduty", e.to_string())),
    };
    let agent = &notice.agent;
    let by = st
        .core
        .people
        .load()
        .who_pagerduty(agent.id.as_deref(), agent.summary.as_deref())
        .await;
    let via = Source::Pagerduty;
    let event = match notice.action {
        pagerduty::webhook::Action::Acknowledged => Event::Acknowledge { by, via },
        pagerduty::webhook::Action::Resolved => Event::Resolve { by, via },
        pagerduty::webhook::Action::Annotated { content } => {
            // The marker is the first test (in `parse`); a note by the user
            // pagerd writes as is pagerd's too, marker trimmed off or not.
            let from = crate::vendors::normalize_email(&config.pagerduty.from);
            if by.email.as_deref() == Some(from.as_str()) {
                return Ok(ignored(&st, "pagerduty", "pagerd's own note"));
            }
            Event::Progress {
                by,
                what: crate::render::truncate(content.trim(), 500),
                via,
            }
        }
    };
    let target = match notice.incident {
        pagerduty::webhook::IncidentRef::Key(key) => Target::DedupKey(key),
        pagerduty::webhook::IncidentRef::Id(id) => match by_pagerduty_id(&st, &id).await? {
            Some(target) => target,
            None => return Ok(ignored(&st, "pagerduty", "not an open pagerd incident")),
        },
    };
    // The signed event id, not an unsigned delivery header: a captured body
    // sent again is recognised as the same event.
    let intake = Intake {
        target,
        event,
        delivery: Some(("pagerduty".into(), format!("event:{}", notice.event_id))),
    };
    let applied = st.core.submit(intake).await?;
    count(&st, "pagerduty", "accepted");
    Ok(answer(&applied))
}

/// `POST /webhooks/hackerone`: HackerOne's program webhook, served only
/// with `[hackerone] webhook_secret_file` (else 404, like any unknown
/// route). Verify, then parse, then record: a closure or a disclosure
/// request or publication is kept per HackerOne report (once per
/// `X-H1-Delivery`), and the leader's report timer posts what follows.
pub async fn hackerone(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    use crate::reports::h1::{H1Event, valid_id};
    use crate::vendors::hackerone::webhook::{self as h1, Happened};
    let config = st.config.load();
    let Some(secret) = config
        .hackerone
        .as_ref()
        .and_then(|h| h.webhook_secret.as_ref())
    else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    verified(
        &st,
        "hackerone",
        h1::verify_request(secret.expose(), &headers, &body),
    )?;
    require_content_type(&headers, "application/json")?;
    let event = h1::parse_request(&headers, &body)
        .map_err(|e| malformed(&st, "hackerone", e.to_string()))?;
    if !valid_id(&event.report_id) {
        return Err(malformed(
            &st,
            "hackerone",
            "data.report.id must be a HackerOne report number".into(),
        ));
    }
    let what = match event.happened {
        Happened::Closed(how) => H1Event::Closed(how),
        Happened::DisclosureRequested => H1Event::DisclosureRequested,
        Happened::Disclosed => H1Event::Disclosed,
        Happened::Other => return Ok(ignored(&st, "hackerone", "event not acted on")),
    };
    let applied = st
        .core
        .reports
        .h1_event(&event.report_id, what, event.delivery.clone())
        .await?;
    count(&st, "hackerone", "accepted");
    let result = match (applied.replayed, applied.changed) {
        (true, _) => "replayed",
        (false, true) => "recorded",
        (false, false) => "unchanged",
    };
    tracing::info!(
        report = %event.report_id,
        event = %crate::render::terminal(&event.name),
        result,
        "hackerone webhook"
    );
    let body = json!({ "result": result, "report": event.report_id });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// The open incident whose PagerDuty incident is `id` (a note's event
/// names no key): the open incident that learnt that id, else the key
/// PagerDuty gives for it (`GET /incidents/{id}`). `None` when neither is
/// pagerd's.
async fn by_pagerduty_id(st: &AppState, id: &str) -> Result<Option<Target>, ApiError> {
    let open = st.core.store.list(true, OPEN_SCAN).await?;
    if let Some(inc) = open.iter().find(|i| i.pagerduty_id.as_deref() == Some(id)) {
        return Ok(Some(Target::Incident(inc.id)));
    }
    let config = st.config.load();
    let pd = pagerduty::PagerDuty::from_config(
        &config.pagerduty,
        false,
        crate::vendors::http_client(crate::vendors::REQUEST_TIMEOUT),
    );
    let key = pd.incident_key(id).await.map_err(|e| {
        ApiError::Upstream(format!("pagerduty: cannot read incident {id}'s key: {e}"))
    })?;
    Ok(key
        .filter(|k| k.starts_with(pagerduty::webhook::KEY_PREFIX))
        .map(Target::DedupKey))
}

/// Most open incidents searched for a PagerDuty id.
const OPEN_SCAN: usize = 10_000;

/// An emergency's ticket was updated: when its incident is acknowledged
/// and its lease armed (`policy.ack_lease`), a public reply by an agent
/// written since the lease was last renewed is progress. The comments are
/// read off the request path; each reply renews the lease once (its
/// comment id is the delivery id, and it must be newer than the last
/// renewal).
fn check_reply_soon(st: &AppState, applied: &Applied) {
    let Some(inc) = applied
        .incident
        .as_ref()
        .filter(|i| i.is_open() && i.status == crate::engine::Status::Acknowledged)
    else {
        return;
    };
    let (Some(expires), Some(lease)) = (inc.deadlines.lease, st.config.load().policy.ack_lease)
    else {
        return;
    };
    let renewed = expires - lease;
    let (core, id, ticket) = (st.core.clone(), inc.id, inc.ticket.id.clone());
    tokio::spawn(async move {
        let reply = match core.reports.latest_agent_reply(&ticket).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(ticket = %ticket, cause = %e, "cannot read the ticket's comments for progress");
                return;
            }
        };
        let (comment, at, author) = reply;
        // Zendesk's times are whole seconds: a reply in the second of the
        // renewal still counts (once: its id is the delivery id).
        if at < renewed - 1_000 {
            return;
        }
        let intake = Intake {
            target: Target::Incident(id),
            event: Event::Progress {
                by: crate::engine::Who::named(&format!("Zendesk agent {author}")),
                what: format!("replied publicly on ticket #{ticket}"),
                via: Source::Zendesk,
            },
            delivery: Some(("zendesk-reply".into(), comment.to_string())),
        };
        if let Err(e) = core.submit(intake).await {
            tracing::warn!(ticket = %ticket, cause = %e, "cannot record a reply as progress");
        }
    });
}

/// `POST /webhooks/slack`: interactivity (buttons) and the `/pagerd` command.
pub async fn slack(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config = st.config.load();
    let Some(secret) = config
        .slack
        .as_ref()
        .and_then(|s| s.signing_secret.as_ref())
    else {
        count(&st, "slack", "unauthorized");
        return Err(ApiError::Unauthorized(
            "Slack requests are off: set slack.signing_secret_file".into(),
        ));
    };
    verified(
        &st,
        "slack",
        slack::actions::verify_request(secret.expose(), &headers, &body, unix_now()),
    )?;
    require_content_type(&headers, slack::actions::CONTENT_TYPE)?;
    let request = slack::actions::parse(&body).map_err(|e| malformed(&st, "slack", e))?;
    let people = st.core.people.load();
    let reply = |text: &str| axum::Json(slack::blocks::ephemeral(text)).into_response();
    match request {
        slack::actions::Request::Other => {
            count(&st, "slack", "ignored");
            Ok(StatusCode::OK.into_response())
        }
        slack::actions::Request::Clicks { user, clicks } => {
            let who = people
                .who_slack(user.id.as_deref(), user.handle.as_deref())
                .await;
            for (verb, id) in clicks {
                if let Some(event) = Event::action(&verb, who.clone(), "", Source::Slack) {
                    st.core.submit(Intake::incident(id, event)).await?;
                }
            }
            count(&st, "slack", "accepted");
            Ok(StatusCode::OK.into_response())
        }
        slack::actions::Request::Status { .. } => {
            count(&st, "slack", "accepted");
            let open = st.core.store.list(true, 20).await?;
            Ok(reply(&slack::blocks::status(&open)))
        }
        slack::actions::Request::Command {
            user,
            verb,
            incident,
            reason,
        } => {
            count(&st, "slack", "accepted");
            let who = people
                .who_slack(user.id.as_deref(), user.handle.as_deref())
                .await;
            let (Some(event), Some(id)) =
                (Event::action(&verb, who, &reason, Source::Slack), incident)
            else {
                return Ok(reply(slack::actions::SLASH_HELP));
            };
            let before = st.core.clock.now();
            let applied = st.core.submit(Intake::incident(id, event)).await?;
            let crisis = applied.crisis_declared_since(before);
            let text = match &applied.result {
                Change::Ignored(reason) if applied.incident.is_none() => {
                    format!("No incident {id}: {}.", crate::render::slack(reason))
                }
                Change::Ignored(reason) => {
                    slack::blocks::command_answer(&verb, id, Some(reason), None)
                }
                _ => slack::blocks::command_answer(&verb, id, None, crisis),
            };
            Ok(reply(&text))
        }
    }
}

//! Inbound webhooks: Zendesk (emergency tickets), PagerDuty v3 (acks and
//! resolutions from the phone app) and Slack (buttons and `/pagerd`).
//!
//! Each handler verifies the signature over the raw body first, then parses
//! strictly; only a verified, well-formed request becomes an event.
//!
//! Replays: Zendesk and Slack sign a timestamp, checked against a window.
//! PagerDuty v3 signs only the body, so a captured request could be sent
//! again under a fresh (unsigned) `X-Webhook-Id`; pagerd therefore
//! de-duplicates on the signed `event.id` (PagerDuty's retries and a second
//! subscription carry the same one), and refuses an acted-on event whose
//! signed `event.occurred_at` is more than [`PAGERDUTY_MAX_AGE`] away from
//! now, so a captured body is worthless after that.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, header_str, require_content_type};
use crate::engine::{Event, Source, Status, Ticket};
use crate::render;
use crate::signature;
use crate::store::{Applied, Change, Intake, Target};

/// Signed timestamps are checked against the real wall clock (not the
/// demo's compressed one): they come from the vendor's clock.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How far a PagerDuty event's signed `occurred_at` may be from now (either
/// way) for pagerd to act on it. PagerDuty retries a failed delivery for
/// well under an hour; past that, polling (`pagerduty.poll_interval`) has
/// long caught up with the incident.
pub const PAGERDUTY_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

fn count(st: &AppState, source: &str, result: &str) {
    st.core.metrics.observe_webhook(source, result);
}

/// Runs a verification step, counting and logging a refusal.
fn verified(
    st: &AppState,
    source: &str,
    r: Result<(), signature::SignatureError>,
) -> Result<(), ApiError> {
    r.map_err(|e| {
        count(st, source, "unauthorized");
        tracing::warn!(source, cause = %e, "webhook refused");
        ApiError::Unauthorized(format!("{source} webhook refused: {e}"))
    })
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

// ---- Zendesk ----------------------------------------------------------------

/// A Zendesk placeholder may render as a string (the usual case) or, if an
/// admin edited the template, as a number or a list.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Loose {
    Text(String),
    Number(serde_json::Number),
    List(Vec<String>),
    #[default]
    Null,
}

impl Loose {
    fn text(self) -> String {
        match self {
            Loose::Text(s) => s.trim().to_string(),
            Loose::Number(n) => n.to_string(),
            Loose::List(l) => l.join(" "),
            Loose::Null => String::new(),
        }
    }

    /// Tags: Zendesk tags never contain white space, so every item of a
    /// list is split too (found by cargo fuzz).
    fn words(self) -> Vec<String> {
        self.text()
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
            .collect()
    }
}

#[derive(Deserialize)]
struct ZendeskBody {
    ticket: ZendeskTicket,
}

#[derive(Deserialize)]
struct ZendeskTicket {
    id: Loose,
    #[serde(default)]
    title: Loose,
    #[serde(default)]
    priority: Loose,
    #[serde(default)]
    status: Loose,
    #[serde(default)]
    tags: Loose,
    /// `{{ticket.link}}`: accepted, not used (see [`ticket_link`]).
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "documented in the template; the link is built from config"
    )]
    url: Loose,
    #[serde(default)]
    requester: Option<Requester>,
    #[serde(default)]
    organization: Loose,
}

#[derive(Deserialize, Default)]
struct Requester {
    #[serde(default)]
    name: Loose,
    #[serde(default)]
    email: Loose,
}

/// The agent link of a ticket, built from trusted parts only: the
/// configured Zendesk URL and the (all-digits) ticket number. The body's
/// `url` (`{{ticket.link}}`) is not used: it arrives in the same JSON as
/// the customer's title, and pagerd renders this link as a live link in
/// Slack.
fn ticket_link(base: &str, id: &str) -> String {
    format!("{}/agent/tickets/{id}", base.trim_end_matches('/'))
}

/// Parses the documented trigger body (see the README) into a ticket.
pub fn parse_zendesk(body: &[u8], base_url: &str) -> Result<Ticket, String> {
    let parsed: ZendeskBody =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let t = parsed.ticket;
    let id = t.id.text();
    if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("ticket.id must be the ticket number, got {id:?}"));
    }
    let requester = t.requester.unwrap_or_default();
    Ok(Ticket {
        url: ticket_link(base_url, &id),
        title: t.title.text(),
        priority: t.priority.text().to_lowercase(),
        status: t.status.text().to_lowercase(),
        tags: t.tags.words(),
        requester_name: requester.name.text(),
        requester_email: requester.email.text(),
        organization: t.organization.text(),
        id,
    })
}

/// `POST /webhooks/zendesk`.
pub async fn zendesk(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let secret = st.config.zendesk.webhook_secret.expose();
    verified(
        &st,
        "zendesk",
        signature::zendesk_verify(
            secret,
            header_str(&headers, "x-zendesk-webhook-signature"),
            header_str(&headers, "x-zendesk-webhook-signature-timestamp"),
            &body,
            unix_now(),
        ),
    )?;
    require_content_type(&headers, "application/json")?;
    let ticket = parse_zendesk(&body, &st.config.zendesk.url).map_err(|e| {
        count(&st, "zendesk", "bad_request");
        ApiError::BadRequest(e)
    })?;
    let span = tracing::info_span!("zendesk_webhook", ticket = %ticket.id);
    let intake = Intake::ticket(ticket);
    let applied = st.core.submit(intake).await?;
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

// ---- PagerDuty --------------------------------------------------------------

#[derive(Deserialize)]
struct PdBody {
    event: PdEvent,
}

#[derive(Deserialize)]
struct PdEvent {
    id: String,
    event_type: String,
    #[serde(default)]
    occurred_at: Option<String>,
    #[serde(default)]
    agent: Option<PdRef>,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
struct PdRef {
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// `POST /webhooks/pagerduty`.
pub async fn pagerduty(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(secret) = &st.config.pagerduty.webhook_secret else {
        count(&st, "pagerduty", "unauthorized");
        return Err(ApiError::Unauthorized(
            "PagerDuty webhooks are off: set pagerduty.webhook_secret_file (polling still works)"
                .into(),
        ));
    };
    verified(
        &st,
        "pagerduty",
        signature::pagerduty_verify(
            secret.expose(),
            header_str(&headers, "x-pagerduty-signature"),
            &body,
        ),
    )?;
    require_content_type(&headers, "application/json")?;
    let parsed: PdBody = serde_json::from_slice(&body).map_err(|e| {
        count(&st, "pagerduty", "bad_request");
        ApiError::BadRequest(format!("invalid JSON body: {e}"))
    })?;
    let ev = parsed.event;
    let event = match ev.event_type.as_str() {
        kind @ ("incident.acknowledged" | "incident.resolved") => {
            let agent = ev.agent.as_ref();
            let by = st
                .core
                .people
                .who_pagerduty(
                    agent.and_then(|a| a.id.as_deref()),
                    agent.and_then(|a| a.summary.as_deref()),
                )
                .await;
            if kind == "incident.acknowledged" {
                Event::Acknowledge {
                    by,
                    via: Source::Pagerduty,
                }
            } else {
                Event::Resolve {
                    by,
                    via: Source::Pagerduty,
                }
            }
        }
        other => {
            // Subscriptions often carry more types than pagerd acts on.
            tracing::debug!(
                event_type = other,
                "pagerduty webhook: event type not acted on"
            );
            count(&st, "pagerduty", "ignored");
            return Ok((
                StatusCode::OK,
                axum::Json(json!({ "result": "ignored", "reason": "event type not acted on" })),
            )
                .into_response());
        }
    };
    let Some(key) = ev
        .data
        .get("incident_key")
        .and_then(Value::as_str)
        .filter(|k| k.starts_with("zendesk-"))
    else {
        count(&st, "pagerduty", "ignored");
        return Ok((
            StatusCode::OK,
            axum::Json(json!({ "result": "ignored", "reason": "not a pagerd incident" })),
        )
            .into_response());
    };
    if let Err(why) = recent(ev.occurred_at.as_deref(), SystemTime::now()) {
        count(&st, "pagerduty", "stale");
        tracing::warn!(source = "pagerduty", cause = why, "webhook refused");
        return Err(ApiError::BadRequest(format!(
            "pagerduty webhook refused: {why}"
        )));
    }
    if ev.id.trim().is_empty() {
        count(&st, "pagerduty", "bad_request");
        return Err(ApiError::BadRequest("event.id is empty".into()));
    }
    // The signed event id, not the unsigned X-Webhook-Id: a captured body
    // sent again under a new header is recognised as the same event.
    let intake = Intake {
        target: Target::DedupKey(key.to_string()),
        event,
        delivery: Some(("pagerduty".into(), format!("event:{}", ev.id))),
    };
    let applied = st.core.submit(intake).await?;
    count(&st, "pagerduty", "accepted");
    Ok(answer(&applied))
}

/// Whether a signed `occurred_at` is within [`PAGERDUTY_MAX_AGE`] of `now`.
fn recent(occurred_at: Option<&str>, now: SystemTime) -> Result<(), &'static str> {
    let at = occurred_at.ok_or("event.occurred_at is missing")?;
    let at = humantime::parse_rfc3339(at)
        .or_else(|_| humantime::parse_rfc3339_weak(at.trim_end_matches('Z')))
        .map_err(|_| "event.occurred_at is not an RFC 3339 time")?;
    let off = match now.duration_since(at) {
        Ok(age) => age,
        Err(e) => e.duration(),
    };
    if off > PAGERDUTY_MAX_AGE {
        return Err("event.occurred_at is more than an hour away from now (a replay?)");
    }
    Ok(())
}

// ---- Slack ------------------------------------------------------------------

#[derive(Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user: Option<SlackUser>,
    #[serde(default)]
    actions: Vec<SlackAction>,
}

#[derive(Deserialize)]
struct SlackUser {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct SlackAction {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

/// An answer only the user sees; `text` is mrkdwn, cut to Slack's limit.
fn ephemeral(text: String) -> Response {
    let text = render::slack_cut(&text, render::SLACK_TEXT_MAX);
    (
        StatusCode::OK,
        axum::Json(json!({ "response_type": "ephemeral", "text": text })),
    )
        .into_response()
}

/// Cap on a title in `/pagerd status` (20 incidents fit one message).
const STATUS_TITLE_MAX: usize = 300;

const SLASH_HELP: &str =
    "Usage: /pagerd status | ack ID | escalate ID [reason] | crisis ID | join ID | resolve ID";

/// `POST /webhooks/slack`: interactivity (buttons) and the `/pagerd` command.
pub async fn slack(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(secret) = st
        .config
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
        signature::slack_verify(
            secret.expose(),
            header_str(&headers, "x-slack-signature"),
            header_str(&headers, "x-slack-request-timestamp"),
            &body,
            unix_now(),
        ),
    )?;
    require_content_type(&headers, "application/x-www-form-urlencoded")?;
    let bad = |e: String| {
        count(&st, "slack", "bad_request");
        ApiError::BadRequest(e)
    };
    let form: Vec<(String, String)> = serde_urlencoded_pairs(&body).map_err(bad)?;
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(payload) = field("payload") {
        let i: Interaction =
            serde_json::from_str(&payload).map_err(|e| bad(format!("invalid payload: {e}")))?;
        if i.kind != "block_actions" {
            count(&st, "slack", "ignored");
            return Ok(StatusCode::OK.into_response());
        }
        let user = i.user.unwrap_or(SlackUser {
            id: None,
            username: None,
            name: None,
        });
        let who = st
            .core
            .people
            .who_slack(user.id.as_deref(), user.username.or(user.name).as_deref())
            .await;
        for action in i.actions {
            let verb = action.action_id.strip_prefix("pagerd_").unwrap_or_default();
            let id = action.value.as_deref().and_then(|v| v.parse::<i64>().ok());
            let (Some(event), Some(id)) = (Event::action(verb, who.clone(), "", Source::Slack), id)
            else {
                continue;
            };
            st.core.submit(Intake::incident(id, event)).await?;
        }
        count(&st, "slack", "accepted");
        return Ok(StatusCode::OK.into_response());
    }
    // Slash command.
    let text = field("text").unwrap_or_default();
    let who = st
        .core
        .people
        .who_slack(field("user_id").as_deref(), field("user_name").as_deref())
        .await;
    let mut words = text.split_whitespace();
    let verb = words.next().unwrap_or("help").to_lowercase();
    count(&st, "slack", "accepted");
    if verb == "status" {
        let open = st.core.store.list(true, 20).await?;
        if open.is_empty() {
            return Ok(ephemeral("No open emergencies.".into()));
        }
        let lines: Vec<String> = open
            .iter()
            .map(|i| {
                let who = match (&i.status, &i.acked) {
                    (Status::Acknowledged, Some((by, _))) => format!(
                        "acknowledged by {}",
                        render::slack_field(by, render::SLACK_NAME_MAX)
                    ),
                    _ => "NOT acknowledged".into(),
                };
                format!(
                    "• {} — #{} {} ({}), level {}, {who}",
                    i.id,
                    i.ticket.id,
                    render::slack_field(&i.ticket.title, STATUS_TITLE_MAX),
                    render::slack_field(i.ticket.customer(), render::SLACK_NAME_MAX),
                    i.level
                )
            })
            .collect();
        return Ok(ephemeral(lines.join("\n")));
    }
    let id = words
        .next()
        .and_then(|w| w.trim_start_matches('#').parse::<i64>().ok());
    let reason = words.collect::<Vec<_>>().join(" ");
    let (Some(event), Some(id)) = (Event::action(&verb, who, &reason, Source::Slack), id) else {
        return Ok(ephemeral(SLASH_HELP.into()));
    };
    let before = st.core.clock.now();
    let applied = st.core.submit(Intake::incident(id, event)).await?;
    // Declared by this very action (the store stamps it at or after `before`).
    let crisis = applied
        .incident
        .as_ref()
        .and_then(|i| i.crisis.as_ref())
        .filter(|c| c.declared_at >= before)
        .map(|c| {
            format!(
                "\n:rotating_light: This declared a *crisis* ({}): the crisis doc and announcements follow.",
                render::slack_field(&c.reason, render::SLACK_NAME_MAX)
            )
        })
        .unwrap_or_default();
    // The reason may name people, the verb is the user's own word: both
    // are escaped for Slack.
    let msg = match applied.result {
        Change::Ignored(reason) if applied.incident.is_none() => {
            format!("No incident {id}: {}.", render::slack(&reason))
        }
        Change::Ignored(reason) => {
            format!(
                "Nothing to do for incident {id}: {}.",
                render::slack(&reason)
            )
        }
        _ => format!(
            "Done: {} on incident {id}.{crisis}",
            render::slack_field(&verb, render::SLACK_NAME_MAX)
        ),
    };
    Ok(ephemeral(msg))
}

/// Decodes `application/x-www-form-urlencoded`.
fn serde_urlencoded_pairs(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8".to_string())?;
    let url = reqwest::Url::parse(&format!("http://x/?{text}"))
        .map_err(|e| format!("invalid form body: {e}"))?;
    Ok(url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

#[cfg(test)]
mod tests {

    #[test]
    fn pagerduty_events_older_or_newer_than_an_hour_are_refused() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let at = |secs: u64| {
            humantime::format_rfc3339_millis(
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs),
            )
            .to_string()
        };
        assert_eq!(super::recent(Some(&at(1_700_000_000 - 3599)), now), Ok(()));
        assert_eq!(super::recent(Some(&at(1_700_000_000 + 60)), now), Ok(()));
        assert!(super::recent(Some(&at(1_700_000_000 - 3601)), now).is_err());
        assert!(super::recent(Some(&at(1_700_000_000 + 3601)), now).is_err());
        assert!(super::recent(Some("2023-11-14T22:13:20Z"), now).is_ok());
        assert!(super::recent(Some("yesterday"), now).is_err());
        assert!(super::recent(None, now).is_err());
    }

    use super::*;

    #[test]
    fn parses_the_body_zendesk_renders() {
        let v: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/signature-test-vectors.json"
        ))
        .unwrap();
        let body = v["zendesk"][0]["body"].as_str().unwrap();
        let t = parse_zendesk(body.as_bytes(), "https://acme.zendesk.com").unwrap();
        assert_eq!(t.id, "4711");
        assert_eq!(t.priority, "urgent");
        assert_eq!(t.status, "new");
        assert_eq!(t.tags, vec!["emergency", "premium"]);
        assert_eq!(t.url, "https://acme.zendesk.com/agent/tickets/4711");
        assert_eq!(t.requester_email, "dana@customer.test");
        assert_eq!(t.organization, "Customer Corp");
    }

    #[test]
    fn tags_never_contain_white_space() {
        let body = br#"{"ticket":{"id":"1","tags":["a b","Emergency\u0020VIP","c,d"]}}"#;
        let t = parse_zendesk(body, "u").unwrap();
        assert_eq!(t.tags, vec!["a", "b", "emergency", "vip", "c", "d"]);
    }

    #[test]
    fn refuses_bodies_without_a_ticket_number() {
        assert!(parse_zendesk(br#"{"ticket":{"id":"{{ticket.id}}"}}"#, "u").is_err());
        assert!(parse_zendesk(br#"{"ticket":{}}"#, "u").is_err());
        assert!(parse_zendesk(b"\xff\xfe", "u").is_err());
        assert!(
            parse_zendesk(br#"{"ticket":{"id":4711}}"#, "u").is_ok(),
            "a number is fine too"
        );
    }
}

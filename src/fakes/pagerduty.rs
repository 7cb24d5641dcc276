//! A local stand-in for PagerDuty: the Events API v2 (`POST /v2/enqueue`),
//! the slice of the REST API v2 pagerd uses (`/incidents…`, `/users…`: see
//! [`users`] for the latter), and the v3
//! webhooks PagerDuty sends when a responder acknowledges or resolves.
//!
//! One server answers both APIs, so the daemon's `events_url` and `api_url`
//! are both [`FakePagerDuty::url`]. It checks what PagerDuty checks (routing
//! key, `Authorization: Token token=…`, the versioning `Accept` header, the
//! `From` header on writes, required fields and enums) and answers with
//! PagerDuty's status codes and error shapes, so a client that passes here
//! has a fair chance against the real thing. It keeps PagerDuty's dedup
//! semantics: one open incident per `dedup_key`, a new one only after resolve.
//!
//! Deliberate simplification: webhooks are only sent for changes made "by a
//! person" through [`FakePagerDuty::acknowledge`] / [`FakePagerDuty::resolve`]
//! / [`FakePagerDuty::annotate`]. Changes pagerd makes itself (Events API,
//! REST `PUT`) are not echoed back as webhooks, which the real service would
//! do if subscribed; its notes are, after [`FakePagerDuty::echo_notes`].

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Faults, RequestLog, Server, Timeline, shorten};

pub mod users;

/// The versioning `Accept` header every REST operation declares as required.
const ACCEPT_V2: &str = "application/vnd.pagerduty+json;version=2";
/// Longest `payload.summary` the Events API takes (developer docs).
const MAX_SUMMARY_CHARS: usize = 1024;
/// Longest `dedup_key` the Events API takes (developer docs).
const MAX_DEDUP_KEY_CHARS: usize = 255;
/// Largest Events API request (developer docs: 512 KB).
const MAX_EVENT_BYTES: usize = 512 * 1024;
/// Notes one incident can hold (REST spec: "Max 2000 notes per incident").
const MAX_NOTES: usize = 2000;
/// Levels of the fake's escalation policy; escalating past it fails like
/// PagerDuty's "Cannot Escalate" (1006).
pub const ESCALATION_LEVELS: u32 = 5;
/// Default and largest page of `GET /incidents` (`limit` ≤ 100).
const PAGE_DEFAULT: usize = 25;
const PAGE_MAX: usize = 100;

/// How to start a [`FakePagerDuty`].
pub struct PagerDutyOptions {
    /// The Events API v2 integration key pagerd must send as `routing_key`.
    pub routing_key: String,
    /// The REST API key pagerd must send as `Authorization: Token token=…`.
    pub api_token: String,
    /// Where the fake tells the demo what it saw.
    pub timeline: Timeline,
}

/// One accepted Events API call (including ack/resolve that were dropped
/// because nothing was open, as PagerDuty also answers those 202).
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// `trigger`, `acknowledge` or `resolve`.
    pub action: String,
    /// The dedup key the event applied to (generated when a trigger had none).
    pub dedup_key: String,
    /// The request body as received.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

/// An incident as PagerDuty holds it: what tests assert on.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRecord {
    /// PagerDuty's incident id, like `PINC0001`.
    pub id: String,
    /// The incident number shown to humans (`#1`).
    pub number: u64,
    /// The `dedup_key` (REST: `incident_key`) it was opened for.
    pub dedup_key: String,
    /// The trigger's `payload.summary`.
    pub title: String,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    /// The level of the escalation policy being paged (1 when opened).
    pub escalation_level: u32,
    /// Contents of the notes added through the REST API, in order.
    pub notes: Vec<String>,
    /// Everyone who acknowledged it (users by name; `Events API` for an
    /// acknowledge event), in order.
    pub acknowledgers: Vec<String>,
    /// The trigger's `links`.
    pub links: Vec<Value>,
    /// The trigger's `payload.custom_details` (`null` when absent).
    pub custom_details: Value,
}

/// A PagerDuty that runs on `127.0.0.1`, for tests and `pagerd demo`.
pub struct FakePagerDuty {
    server: Server,
    shared: Arc<Shared>,
    client: reqwest::Client,
    /// Faults for `POST /v2/enqueue`.
    pub events_faults: Faults,
    /// Faults for the REST API (`/incidents…`).
    pub rest_faults: Faults,
    /// Every request received (Events and REST API).
    pub requests: RequestLog,
}

/// What every handler sees.
struct Shared {
    routing_key: String,
    api_token: String,
    timeline: Timeline,
    /// Set once the server is bound; used for `self` and `html_url`.
    base_url: OnceLock<String>,
    events_faults: Faults,
    rest_faults: Faults,
    state: Mutex<Db>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Db> {
        self.state.lock().expect("pagerduty state lock")
    }

    fn base(&self) -> &str {
        self.base_url.get().map_or("", String::as_str)
    }
}

#[derive(Default)]
struct Db {
    events: Vec<EventRecord>,
    incidents: Vec<Incident>,
    escalations: Vec<(String, u32)>,
    next_note: u64,
    webhook: Option<(String, String)>,
    last_webhook: Option<Webhook>,
    /// Webhooks to deliver again: PagerDuty retries on connection errors,
    /// timeouts, 429 and 5xx (for up to 48 h), and drops other 4xx.
    undelivered: Vec<Webhook>,
    /// Users seeded with [`FakePagerDuty::add_user`].
    users: Vec<users::SeededUser>,
    /// Whether notes added through the REST API (pagerd's) come back as
    /// `incident.annotated` webhooks, as PagerDuty sends them.
    echo_notes: bool,
    /// Every webhook delivered: what it was, and pagerd's status.
    delivered: Vec<(String, u16)>,
    /// `GET /users…` requests that passed the REST guard.
    user_requests: usize,
}

impl Db {
    /// The open (not resolved) incident for a key: there is at most one.
    fn open_index(&self, key: &str) -> Option<usize> {
        self.incidents
            .iter()
            .rposition(|i| i.record.dedup_key == key && i.record.status != "resolved")
    }

    /// An incident by id (`PINC0001`) or number (`1`), as PagerDuty allows.
    fn find(&self, id: &str) -> Option<usize> {
        self.incidents
            .iter()
            .position(|i| i.record.id == id || i.record.number.to_string() == id)
    }

    /// Adds a note by `user` to incident `idx`.
    fn add_note(&mut self, idx: usize, content: &str, user: &str) -> Note {
        self.next_note += 1;
        let note = Note {
            id: format!("PNOTE{:04}", self.next_note),
            content: content.to_string(),
            created_at: now_rfc3339(),
            user: user.to_string(),
        };
        let inc = &mut self.incidents[idx];
        inc.notes.push(note.clone());
        inc.record.notes.push(content.to_string());
        note
    }
}

/// The `incident.annotated` webhook of `note` on incident `idx` by `user`,
/// when a subscription is set: `data` is the note, the incident a
/// reference (PagerDuty's v3 payload for that event).
fn annotated_hook(st: &Db, idx: usize, note: &Note, user: &str, base: &str) -> Option<Webhook> {
    let (url, secret) = st.webhook.clone()?;
    let r = &st.incidents[idx].record;
    let inc_url = format!("{base}/incidents/{}", r.id);
    let id = unique_id();
    let body = json!({"event": {
        "id": id,
        "event_type": "incident.annotated",
        "resource_type": "incident",
        "occurred_at": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "agent": user_ref(user, base),
        "client": null,
        "data": {
            "incident": {"id": r.id, "type": "incident_reference",
                         "summary": format!("[#{}] {}", r.number, r.title),
                         "self": inc_url, "html_url": inc_url},
            "id": note.id,
            "content": note.content,
            "trimmed": false,
            "type": "incident_note",
        },
    }})
    .to_string();
    Some(Webhook {
        signature: Some(super::sign::pagerduty(&secret, body.as_bytes())),
        url,
        body,
        id,
        what: format!("incident.annotated for incident #{}", r.number),
    })
}

/// An incident plus what only the JSON views need.
struct Incident {
    record: IncidentRecord,
    created_at: String,
    updated_at: String,
    last_status_change_at: String,
    /// `None` = changed by the integration (Events API), not a user.
    last_status_change_by: Option<String>,
    resolved_at: Option<String>,
    assigned_at: String,
    acknowledgements: Vec<Ack>,
    notes: Vec<Note>,
    /// Log entries pagerd may read back (escalations through the REST API).
    log: Vec<LogEntry>,
}

/// An `escalate_log_entry` (the only log entry type the fake records).
struct LogEntry {
    id: String,
    at: SystemTime,
    by: String,
    level: u32,
}

/// One acknowledgement; `by: None` means the Events API integration.
struct Ack {
    at: String,
    by: Option<String>,
}

#[derive(Clone)]
struct Note {
    id: String,
    content: String,
    created_at: String,
    user: String,
}

impl Incident {
    fn set_status(&mut self, status: &str, by: Option<&str>) {
        let now = now_rfc3339();
        self.record.status = status.to_string();
        self.last_status_change_at = now.clone();
        self.last_status_change_by = by.map(str::to_string);
        self.resolved_at = (status == "resolved").then(|| now.clone());
        self.updated_at = now;
    }

    fn acknowledge(&mut self, by: Option<&str>) {
        let name = by.unwrap_or("Events API").to_string();
        self.set_status("acknowledged", by);
        self.acknowledgements.push(Ack {
            at: now_rfc3339(),
            by: by.map(str::to_string),
        });
        self.record.acknowledgers.push(name);
    }

    /// Back to `triggered`: acknowledgements are cleared, as when PagerDuty
    /// reassigns or unacknowledges an incident.
    fn retrigger(&mut self, by: Option<&str>) {
        self.set_status("triggered", by);
        self.acknowledgements.clear();
        self.assigned_at = now_rfc3339();
    }

    fn has_acknowledger(&self, user: &str) -> bool {
        self.acknowledgements
            .iter()
            .any(|a| a.by.as_deref() == Some(user))
    }
}

/// A webhook as sent, kept for byte-for-byte redelivery.
#[derive(Clone)]
struct Webhook {
    url: String,
    body: String,
    signature: Option<String>,
    id: String,
    /// For the timeline: "incident.acknowledged for incident #1".
    what: String,
}

/// A person's action in the phone app.
#[derive(Clone, Copy)]
enum Tap {
    Acknowledge,
    Resolve,
}

impl FakePagerDuty {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start(opts: PagerDutyOptions) -> std::io::Result<FakePagerDuty> {
        let events_faults = Faults::default();
        let rest_faults = Faults::default();
        let shared = Arc::new(Shared {
            routing_key: opts.routing_key,
            api_token: opts.api_token,
            timeline: opts.timeline,
            base_url: OnceLock::new(),
            events_faults: events_faults.clone(),
            rest_faults: rest_faults.clone(),
            state: Mutex::new(Db::default()),
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let requests = RequestLog::default();
        let server = Server::spawn(requests.record(router(shared.clone()))).await?;
        let _ = shared.base_url.set(server.url());
        Ok(FakePagerDuty {
            server,
            shared,
            client,
            events_faults,
            rest_faults,
            requests,
        })
    }

    /// `http://127.0.0.1:PORT`: both the Events API and the REST API base.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Subscribes `url` (pagerd's `/webhooks/pagerduty`) to v3 webhooks
    /// signed with `secret`.
    pub fn set_webhook(&self, url: String, secret: String) {
        self.shared.lock().webhook = Some((url, secret));
    }

    /// Every accepted Events API call, in order.
    pub fn events(&self) -> Vec<EventRecord> {
        self.shared.lock().events.clone()
    }

    /// Every incident ever opened, oldest first.
    pub fn incidents(&self) -> Vec<IncidentRecord> {
        self.shared
            .lock()
            .incidents
            .iter()
            .map(|i| i.record.clone())
            .collect()
    }

    /// The newest incident opened for `dedup_key`.
    pub fn incident_by_key(&self, dedup_key: &str) -> Option<IncidentRecord> {
        let st = self.shared.lock();
        st.incidents
            .iter()
            .rev()
            .find(|i| i.record.dedup_key == dedup_key)
            .map(|i| i.record.clone())
    }

    /// How many incidents PagerDuty opened for `dedup_key`: how many times
    /// someone was paged for it.
    pub fn opened_for(&self, dedup_key: &str) -> usize {
        self.shared
            .lock()
            .incidents
            .iter()
            .filter(|i| i.record.dedup_key == dedup_key)
            .count()
    }

    /// Every accepted `PUT /incidents/{id}` that set `escalation_level`, as
    /// `(incident id, level)`, in order.
    pub fn escalations(&self) -> Vec<(String, u32)> {
        self.shared.lock().escalations.clone()
    }

    /// `user` acknowledges the open incident for `dedup_key`, as if tapped in
    /// the phone app; sends an `incident.acknowledged` webhook when one is
    /// set. Another user acknowledging adds an acknowledger (and a webhook);
    /// the same user again changes nothing and sends nothing. Errs when
    /// nothing is open for the key or pagerd's answer is not 2xx (the
    /// acknowledgement itself stands, as it would at PagerDuty).
    pub async fn acknowledge(&self, dedup_key: &str, user: &str) -> Result<(), String> {
        self.tap(dedup_key, user, Tap::Acknowledge).await
    }

    /// `user` resolves the open incident for `dedup_key`, as if tapped in the
    /// phone app; sends an `incident.resolved` webhook when one is set.
    pub async fn resolve(&self, dedup_key: &str, user: &str) -> Result<(), String> {
        self.tap(dedup_key, user, Tap::Resolve).await
    }

    /// From now on (`on`), every note added through the REST API (pagerd's
    /// own) comes back as an `incident.annotated` webhook, as the real
    /// service sends it to a subscription with that event.
    pub fn echo_notes(&self, on: bool) {
        self.shared.lock().echo_notes = on;
    }

    /// Every webhook delivered so far: `(what, pagerd's status)`, e.g.
    /// `("incident.annotated for incident #1", 200)`.
    pub fn delivered(&self) -> Vec<(String, u16)> {
        self.shared.lock().delivered.clone()
    }

    /// `user` adds a note to the open incident for `dedup_key` in the
    /// PagerDuty app; sends an `incident.annotated` webhook when one is set.
    pub async fn annotate(&self, dedup_key: &str, user: &str, content: &str) -> Result<(), String> {
        let hook = {
            let mut st = self.shared.lock();
            let idx = st
                .open_index(dedup_key)
                .ok_or_else(|| format!("PagerDuty has no open incident for {dedup_key}"))?;
            let note = st.add_note(idx, content, user);
            annotated_hook(&st, idx, &note, user, self.shared.base())
        };
        self.shared.timeline.say(format!(
            "PagerDuty: {user} added a note on {dedup_key}: \"{}\"",
            shorten(content, 100)
        ));
        match hook {
            Some(hook) => {
                let status = self.post_webhook(&hook).await?;
                if (200..300).contains(&status) {
                    Ok(())
                } else {
                    Err(format!(
                        "pagerd answered the {} webhook with {status}",
                        hook.what
                    ))
                }
            }
            None => Ok(()),
        }
    }

    /// POSTs the last webhook again, byte for byte with the same
    /// `X-Webhook-Id` (PagerDuty delivers at least once); returns the status.
    pub async fn redeliver_last_webhook(&self) -> Result<u16, String> {
        let hook = self.shared.lock().last_webhook.clone();
        let mut hook = hook.ok_or("no webhook has been sent yet")?;
        hook.what = format!("{} (redelivery)", hook.what);
        self.post_webhook(&hook).await
    }

    /// Delivers again, with the same `X-Webhook-Id`, every webhook that met a
    /// connection error, a 429 or a 5xx, as PagerDuty's retries do; returns
    /// how many are still undelivered.
    pub async fn redeliver_failed(&self) -> usize {
        let hooks = std::mem::take(&mut self.shared.lock().undelivered);
        // Each webhook is retried on its own, not behind the others.
        let answers =
            futures_util::future::join_all(hooks.iter().map(|hook| self.post_webhook(hook))).await;
        let still: Vec<Webhook> = hooks
            .into_iter()
            .zip(answers)
            .filter(|(_, answer)| !matches!(answer, Ok(status) if *status != 429 && *status < 500))
            .map(|(hook, _)| hook)
            .collect();
        let mut st = self.shared.lock();
        st.undelivered.extend(still);
        st.undelivered.len()
    }

    /// POSTs an arbitrary body to the subscribed webhook URL with the given
    /// `X-PagerDuty-Signature` (none when `None`) and `X-Webhook-Id`, for
    /// hostile-input tests; returns the status.
    pub async fn send_webhook_raw(
        &self,
        body: &str,
        signature: Option<&str>,
        webhook_id: &str,
    ) -> Result<u16, String> {
        let url = self
            .shared
            .lock()
            .webhook
            .as_ref()
            .map(|(url, _)| url.clone());
        let url = url.ok_or("no webhook subscription: call set_webhook first")?;
        let hook = Webhook {
            url,
            body: body.to_string(),
            signature: signature.map(str::to_string),
            id: webhook_id.to_string(),
            what: "a hand-made webhook".to_string(),
        };
        self.post_webhook(&hook).await
    }

    async fn tap(&self, dedup_key: &str, user: &str, tap: Tap) -> Result<(), String> {
        let (line, hook) = {
            let mut st = self.shared.lock();
            let idx = st
                .open_index(dedup_key)
                .ok_or_else(|| format!("PagerDuty has no open incident for {dedup_key}"))?;
            let inc = &mut st.incidents[idx];
            let number = inc.record.number;
            let (event_type, line) = match tap {
                Tap::Acknowledge if inc.has_acknowledger(user) => {
                    let line = format!(
                        "PagerDuty: {user} tapped acknowledge again on incident #{number}; nothing changes"
                    );
                    drop(st);
                    self.shared.timeline.say(line);
                    return Ok(());
                }
                Tap::Acknowledge => {
                    inc.acknowledge(Some(user));
                    let line = format!(
                        "PagerDuty: {user} acknowledged incident #{number} in the phone app"
                    );
                    ("incident.acknowledged", line)
                }
                Tap::Resolve => {
                    inc.set_status("resolved", Some(user));
                    let line =
                        format!("PagerDuty: {user} resolved incident #{number} in the phone app");
                    ("incident.resolved", line)
                }
            };
            let data = webhook_data(&st.incidents[idx], self.shared.base());
            let hook = st.webhook.clone().map(|(url, secret)| {
                let id = unique_id();
                let body = json!({"event": {
                    "id": id,
                    "event_type": event_type,
                    "resource_type": "incident",
                    "occurred_at": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                    "agent": user_ref(user, self.shared.base()),
                    "client": null,
                    "data": data,
                }})
                .to_string();
                Webhook {
                    signature: Some(super::sign::pagerduty(&secret, body.as_bytes())),
                    url,
                    body,
                    id,
                    what: format!("{event_type} for incident #{number}"),
                }
            });
            if hook.is_some() {
                st.last_webhook = hook.clone();
            }
            (line, hook)
        };
        self.shared.timeline.say(line);
        if let Some(hook) = hook {
            let status = match self.post_webhook(&hook).await {
                Ok(status) => status,
                Err(e) => {
                    self.shared.lock().undelivered.push(hook);
                    return Err(e);
                }
            };
            if status == 429 || status >= 500 {
                self.shared.lock().undelivered.push(hook.clone());
            }
            if !(200..300).contains(&status) {
                return Err(format!(
                    "pagerd answered the {} webhook with {status}",
                    hook.what
                ));
            }
        }
        Ok(())
    }

    async fn post_webhook(&self, hook: &Webhook) -> Result<u16, String> {
        let mut req = self
            .client
            .post(&hook.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "PagerDuty-Webhook/V3.0")
            .header("X-Webhook-Id", &hook.id)
            .body(hook.body.clone());
        if let Some(sig) = &hook.signature {
            req = req.header("X-PagerDuty-Signature", sig);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                self.shared
                    .lock()
                    .delivered
                    .push((hook.what.clone(), status));
                self.shared.timeline.say(format!(
                    "PagerDuty: webhook {} → pagerd answered {status}",
                    hook.what
                ));
                Ok(status)
            }
            Err(e) => {
                self.shared.timeline.say(format!(
                    "PagerDuty: webhook {} could not be delivered: {e}",
                    hook.what
                ));
                Err(format!("webhook {} not delivered: {e}", hook.what))
            }
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let rest = Router::new()
        .route("/incidents", get(list_incidents))
        .route("/incidents/{id}", get(show_incident).put(update_incident))
        .route("/incidents/{id}/notes", get(list_notes).post(create_note))
        .route("/incidents/{id}/log_entries", get(list_log_entries))
        .route("/users", get(users::list))
        .route("/users/{id}", get(users::show))
        .route_layer(middleware::from_fn_with_state(shared.clone(), rest_guard));
    Router::new()
        .route("/v2/enqueue", post(enqueue))
        .merge(rest)
        .fallback(not_found)
        .with_state(shared)
}

// ---------------------------------------------------------------- Events API

/// A 400 in the Events API's error shape.
fn event_error(status: &str, message: &str, errors: Vec<String>) -> Response {
    let body = json!({"status": status, "message": message, "errors": errors});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn invalid_event(errors: Vec<String>) -> Response {
    event_error("invalid event", "Event object is invalid", errors)
}

/// An event that passed validation.
struct Event {
    action: String,
    dedup_key: Option<String>,
    summary: String,
    links: Vec<Value>,
    custom_details: Value,
}

/// Checks an event as PagerDuty does; the errors are PagerDuty-worded.
fn validate_event(v: &Value, routing_key: &str) -> Result<Event, Vec<String>> {
    let Some(obj) = v.as_object() else {
        return Err(vec!["Event object must be a JSON object".to_string()]);
    };
    let mut errors = Vec::new();
    match obj.get("routing_key") {
        None | Some(Value::Null) => errors.push("'routing_key' is missing or blank".to_string()),
        Some(Value::String(k)) if k == routing_key => {}
        Some(_) => errors.push("Invalid routing key".to_string()),
    }
    let action = match obj.get("event_action").and_then(Value::as_str) {
        Some(a @ ("trigger" | "acknowledge" | "resolve")) => a.to_string(),
        None => {
            errors.push("'event_action' is missing or blank".to_string());
            String::new()
        }
        Some(_) => {
            errors.push("'event_action' must be one of trigger, acknowledge, resolve".to_string());
            String::new()
        }
    };
    let dedup_key = match obj.get("dedup_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if k.chars().count() > MAX_DEDUP_KEY_CHARS => {
            errors.push(format!(
                "'dedup_key' must be at most {MAX_DEDUP_KEY_CHARS} characters"
            ));
            None
        }
        Some(Value::String(k)) if k.trim().is_empty() => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => {
            errors.push("'dedup_key' must be a string".to_string());
            None
        }
    };
    if dedup_key.is_none() && matches!(action.as_str(), "acknowledge" | "resolve") {
        errors.push(format!("'dedup_key' is required for {action} events"));
    }
    let mut summary = String::new();
    let mut custom_details = Value::Null;
    if action == "trigger" {
        match obj.get("payload").and_then(Value::as_object) {
            None => errors.push("'payload' is missing or not an object".to_string()),
            Some(p) => {
                match p.get("summary").and_then(Value::as_str) {
                    Some(s) if s.trim().is_empty() => {
                        errors.push("'payload.summary' is missing or blank".to_string())
                    }
                    Some(s) if s.chars().count() > MAX_SUMMARY_CHARS => errors.push(format!(
                        "'payload.summary' must be at most {MAX_SUMMARY_CHARS} characters"
                    )),
                    Some(s) => summary = s.to_string(),
                    None => errors.push("'payload.summary' is missing or blank".to_string()),
                }
                match p.get("source").and_then(Value::as_str) {
                    Some(s) if !s.trim().is_empty() => {}
                    _ => errors.push("'payload.source' is missing or blank".to_string()),
                }
                match p.get("severity").and_then(Value::as_str) {
                    Some("critical" | "warning" | "error" | "info") => {}
                    None => errors.push("'payload.severity' is missing or blank".to_string()),
                    Some(_) => errors.push(
                        "'payload.severity' must be one of critical, warning, error, info"
                            .to_string(),
                    ),
                }
                custom_details = p.get("custom_details").cloned().unwrap_or(Value::Null);
            }
        }
    }
    let links = match obj.get("links") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(links)) => {
            for (i, l) in links.iter().enumerate() {
                if !l.get("href").is_some_and(Value::is_string) {
                    errors.push(format!("'links[{i}].href' is missing or not a string"));
                }
            }
            links.clone()
        }
        Some(_) => {
            errors.push("'links' must be an array".to_string());
            Vec::new()
        }
    };
    match obj.get("images") {
        None | Some(Value::Null) => {}
        Some(Value::Array(images)) => {
            for (i, img) in images.iter().enumerate() {
                if !img.get("src").is_some_and(Value::is_string) {
                    errors.push(format!("'images[{i}].src' is missing or not a string"));
                }
            }
        }
        Some(_) => errors.push("'images' must be an array".to_string()),
    }
    if errors.is_empty() {
        Ok(Event {
            action,
            dedup_key,
            summary,
            links,
            custom_details,
        })
    } else {
        Err(errors)
    }
}

/// `POST /v2/enqueue`.
async fn enqueue(State(sh): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(resp) = sh.events_faults.intercept().await {
        sh.timeline.say(format!(
            "PagerDuty: answered POST /v2/enqueue with {} (injected fault)",
            resp.status()
        ));
        return resp;
    }
    let refuse = |resp: Response, why: &str| {
        sh.timeline
            .say(format!("PagerDuty: refused an event (400): {why}"));
        resp
    };
    if !is_json(&headers) {
        let why = "Content-Type must be application/json".to_string();
        return refuse(invalid_event(vec![why.clone()]), &why);
    }
    if body.len() > MAX_EVENT_BYTES {
        let why = "Event exceeds the 512 KB size limit".to_string();
        return refuse(invalid_event(vec![why.clone()]), &why);
    }
    // The spec's own example for a body that does not parse.
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        let resp = event_error(
            "Unrecognized object",
            "Event object format is unrecognized",
            vec!["JSON parse error".to_string()],
        );
        return refuse(resp, "the body is not JSON");
    };
    let ev = match validate_event(&v, &sh.routing_key) {
        Ok(ev) => ev,
        Err(errors) => {
            let why = errors.join("; ");
            return refuse(invalid_event(errors), &why);
        }
    };
    let dedup_key = ev
        .dedup_key
        .clone()
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    let line = {
        let mut st = sh.lock();
        st.events.push(EventRecord {
            action: ev.action.clone(),
            dedup_key: dedup_key.clone(),
            body: v,
            at: Instant::now(),
        });
        apply_event(&mut st, ev, &dedup_key)
    };
    sh.timeline.say(line);
    let body = json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key});
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

/// Applies an accepted event with PagerDuty's dedup rules; returns the
/// timeline line.
fn apply_event(st: &mut Db, ev: Event, key: &str) -> String {
    let open = st.open_index(key);
    match (ev.action.as_str(), open) {
        ("trigger", Some(idx)) => {
            let n = st.incidents[idx].record.number;
            format!("PagerDuty: trigger for {key} joined open incident #{n}; nobody is paged again")
        }
        ("trigger", None) => {
            let number = st.incidents.len() as u64 + 1;
            let now = now_rfc3339();
            let record = IncidentRecord {
                id: format!("PINC{number:04}"),
                number,
                dedup_key: key.to_string(),
                title: ev.summary,
                status: "triggered".to_string(),
                escalation_level: 1,
                notes: Vec::new(),
                acknowledgers: Vec::new(),
                links: ev.links,
                custom_details: ev.custom_details,
            };
            let line = format!(
                "PagerDuty: incident #{number} opened for {key} \"{}\" (paging level 1)",
                shorten(&record.title, 100)
            );
            st.incidents.push(Incident {
                record,
                created_at: now.clone(),
                updated_at: now.clone(),
                last_status_change_at: now.clone(),
                last_status_change_by: None,
                resolved_at: None,
                assigned_at: now,
                acknowledgements: Vec::new(),
                notes: Vec::new(),
                log: Vec::new(),
            });
            line
        }
        ("acknowledge", Some(idx)) => {
            let inc = &mut st.incidents[idx];
            let n = inc.record.number;
            if inc.record.status == "acknowledged" {
                format!("PagerDuty: acknowledge for {key}: incident #{n} is already acknowledged")
            } else {
                inc.acknowledge(None);
                format!("PagerDuty: incident #{n} acknowledged through the Events API")
            }
        }
        ("resolve", Some(idx)) => {
            let inc = &mut st.incidents[idx];
            inc.set_status("resolved", None);
            format!(
                "PagerDuty: incident #{} resolved through the Events API",
                inc.record.number
            )
        }
        (action, _) => {
            format!("PagerDuty: {action} for {key} dropped: no open incident has that key")
        }
    }
}

// ------------------------------------------------------------------ REST API

/// A REST error: `{"error":{"message","code","errors"?}}`.
fn rest_error(status: StatusCode, code: u32, message: &str, errors: &[String]) -> Response {
    let mut err = serde_json::Map::new();
    err.insert("message".into(), json!(message));
    err.insert("code".into(), json!(code));
    if !errors.is_empty() {
        err.insert("errors".into(), json!(errors));
    }
    (status, axum::Json(json!({"error": err}))).into_response()
}

/// A refusal ready to send, boxed because a `Response` is large.
type Refusal = Box<Response>;

/// `Err` with a boxed refusal.
fn fail<T>(resp: Response) -> Result<T, Refusal> {
    Err(Box::new(resp))
}

fn invalid_input(why: impl Into<String>) -> Response {
    rest_error(
        StatusCode::BAD_REQUEST,
        2001,
        "Invalid Input Provided",
        &[why.into()],
    )
}

fn not_found_error() -> Response {
    rest_error(StatusCode::NOT_FOUND, 2100, "Not Found", &[])
}

async fn not_found() -> Response {
    not_found_error()
}

/// Runs before every REST handler: faults, then authentication, then the
/// versioning header.
///
/// A missing or wrong `Accept` is answered `400` (code 2001), not `406`: the
/// REST spec declares the header required on every operation and lists only
/// 400/401/403/404/429 as error answers, and PagerDuty's error docs list no
/// 406. (The real service falls back to the token's API version when the
/// header is absent; being stricter here keeps pagerd honest.)
async fn rest_guard(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let what = format!("{} {}", req.method(), req.uri().path());
    if let Some(resp) = sh.rest_faults.intercept().await {
        sh.timeline.say(format!(
            "PagerDuty: answered {what} with {} (injected fault)",
            resp.status()
        ));
        return resp;
    }
    let headers = req.headers();
    let expected = format!("Token token={}", sh.api_token);
    if header_str(headers, header::AUTHORIZATION.as_str()) != Some(expected.as_str()) {
        sh.timeline.say(format!(
            "PagerDuty: refused {what}: authentication failed (401)"
        ));
        return rest_error(StatusCode::UNAUTHORIZED, 2006, "Authentication failed", &[]);
    }
    if !accepts_v2(header_str(headers, header::ACCEPT.as_str())) {
        sh.timeline.say(format!(
            "PagerDuty: refused {what}: no versioning Accept header (400)"
        ));
        return invalid_input(format!("Accept header must be {ACCEPT_V2}"));
    }
    next.run(req).await
}

/// Writes also need `Content-Type: application/json` and a `From` e-mail;
/// returns the `From` address.
fn write_guard(sh: &Shared, headers: &HeaderMap, what: &str) -> Result<String, Refusal> {
    if !is_json(headers) {
        sh.timeline.say(format!(
            "PagerDuty: refused {what}: Content-Type is not application/json (400)"
        ));
        return fail(invalid_input("Content-Type must be application/json"));
    }
    match header_str(headers, "from").map(str::trim) {
        Some(from) if looks_like_email(from) => Ok(from.to_string()),
        _ => {
            sh.timeline.say(format!(
                "PagerDuty: refused {what}: no valid From header (400)"
            ));
            fail(rest_error(
                StatusCode::BAD_REQUEST,
                2001,
                "A valid user e-mail address is required in the From header",
                &["From header is missing or is not an e-mail address".to_string()],
            ))
        }
    }
}

/// `GET /incidents?incident_key=…&statuses[]=…&limit=…&offset=…`.
async fn list_incidents(State(sh): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let mut key = None;
    let mut statuses = Vec::new();
    let mut limit = PAGE_DEFAULT;
    let mut offset = 0usize;
    for (k, v) in query_pairs(query.as_deref()) {
        match k.as_str() {
            "incident_key" => key = Some(v),
            "statuses[]" | "statuses" => match v.as_str() {
                "triggered" | "acknowledged" | "resolved" => statuses.push(v),
                _ => {
                    return invalid_input(format!(
                        "statuses[] must be triggered, acknowledged or resolved, not {v:?}"
                    ));
                }
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=PAGE_MAX).contains(&n) => limit = n,
                _ => return invalid_input(format!("limit must be between 1 and {PAGE_MAX}")),
            },
            "offset" => match v.parse::<usize>() {
                Ok(n) => offset = n,
                Err(_) => return invalid_input("offset must be a non-negative integer"),
            },
            _ => {}
        }
    }
    let st = sh.lock();
    let matching: Vec<&Incident> = st
        .incidents
        .iter()
        .filter(|i| key.as_deref().is_none_or(|k| i.record.dedup_key == k))
        .filter(|i| statuses.is_empty() || statuses.contains(&i.record.status))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|i| incident_json(i, sh.base()))
        .collect();
    let more = offset.saturating_add(limit) < matching.len();
    axum::Json(
        json!({"incidents": page, "limit": limit, "offset": offset, "more": more, "total": null}),
    )
    .into_response()
}

/// `GET /incidents/{id}` (id or number).
async fn show_incident(State(sh): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let st = sh.lock();
    match st.find(&id) {
        Some(idx) => axum::Json(json!({"incident": incident_json(&st.incidents[idx], sh.base())}))
            .into_response(),
        None => not_found_error(),
    }
}

/// What a `PUT /incidents/{id}` asks for, once validated.
struct Update {
    level: Option<u32>,
    status: Option<String>,
    title: Option<String>,
}

fn parse_update(body: &[u8]) -> Result<Update, Refusal> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| invalid_input("the body is not valid JSON"))?;
    let inc = v
        .get("incident")
        .filter(|i| i.is_object())
        .ok_or_else(|| invalid_input("incident is required"))?;
    match inc.get("type").and_then(Value::as_str) {
        Some("incident" | "incident_reference") => {}
        _ => {
            return fail(invalid_input(
                "incident.type is required: incident or incident_reference",
            ));
        }
    }
    let level = match inc.get("escalation_level") {
        None | Some(Value::Null) => None,
        Some(l) => match l.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (1..=ESCALATION_LEVELS).contains(&n) => Some(n),
            Some(_) => {
                return fail(rest_error(
                    StatusCode::BAD_REQUEST,
                    1006,
                    "Cannot Escalate",
                    &[format!(
                        "the escalation policy has levels 1 to {ESCALATION_LEVELS}"
                    )],
                ));
            }
            None => {
                return fail(invalid_input(
                    "incident.escalation_level must be a positive integer",
                ));
            }
        },
    };
    let status = match inc.get("status") {
        None | Some(Value::Null) => None,
        Some(s) => match s.as_str() {
            Some(s @ ("acknowledged" | "resolved" | "triggered")) => Some(s.to_string()),
            _ => {
                return fail(rest_error(
                    StatusCode::BAD_REQUEST,
                    1003,
                    "Invalid Status Provided",
                    &["incident.status must be acknowledged, resolved or triggered".to_string()],
                ));
            }
        },
    };
    let title = match inc.get("title") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if !t.trim().is_empty() => Some(t.clone()),
        Some(_) => return fail(invalid_input("incident.title must be a non-empty string")),
    };
    Ok(Update {
        level,
        status,
        title,
    })
}

/// `PUT /incidents/{id}`: escalate, acknowledge, resolve, reopen, retitle.
async fn update_incident(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let from = match write_guard(&sh, &headers, "PUT /incidents/{id}") {
        Ok(from) => from,
        Err(resp) => return *resp,
    };
    let up = match parse_update(&body) {
        Ok(up) => up,
        Err(resp) => {
            sh.timeline.say(format!(
                "PagerDuty: refused an update of incident {id} (400)"
            ));
            return *resp;
        }
    };
    let mut lines = Vec::new();
    let resp = {
        let mut st = sh.lock();
        let Some(idx) = st.find(&id) else {
            return not_found_error();
        };
        let key = st.incidents[idx].record.dedup_key.clone();
        let resolved = st.incidents[idx].record.status == "resolved";
        // Check everything before changing anything.
        if resolved {
            match up.status.as_deref() {
                Some("resolved") | None if up.level.is_some() || up.status.is_some() => {
                    return rest_error(
                        StatusCode::BAD_REQUEST,
                        1001,
                        "Incident Already Resolved",
                        &[],
                    );
                }
                Some(_) if st.open_index(&key).is_some() => {
                    return invalid_input(format!(
                        "another incident with incident_key {key} is open"
                    ));
                }
                _ => {}
            }
        }
        let inc = &mut st.incidents[idx];
        let n = inc.record.number;
        if let Some(title) = up.title {
            inc.record.title = title;
            inc.updated_at = now_rfc3339();
            lines.push(format!("PagerDuty: incident #{n} retitled by {from}"));
        }
        if resolved && up.status.is_some() {
            inc.retrigger(Some(&from));
            lines.push(format!("PagerDuty: incident #{n} reopened by {from}"));
        }
        if let Some(level) = up.level {
            // Escalating reassigns to the level's on-call, which
            // un-acknowledges an acknowledged incident.
            inc.record.escalation_level = level;
            inc.retrigger(Some(&from));
            inc.log.push(LogEntry {
                id: unique_id(),
                at: SystemTime::now(),
                by: from.clone(),
                level,
            });
            lines.push(format!("PagerDuty: incident #{n} escalated to level {level} by {from} (paging level {level})"));
        }
        match up.status.as_deref() {
            Some("acknowledged") if !inc.has_acknowledger(&from) => {
                inc.acknowledge(Some(&from));
                lines.push(format!(
                    "PagerDuty: incident #{n} acknowledged by {from} through the REST API"
                ));
            }
            Some("resolved") => {
                inc.set_status("resolved", Some(&from));
                lines.push(format!(
                    "PagerDuty: incident #{n} resolved by {from} through the REST API"
                ));
            }
            Some("triggered") if inc.record.status == "acknowledged" => {
                inc.retrigger(Some(&from));
                lines.push(format!(
                    "PagerDuty: incident #{n} un-acknowledged by {from}"
                ));
            }
            _ => {}
        }
        let json = incident_json(inc, sh.base());
        let inc_id = inc.record.id.clone();
        if let Some(level) = up.level {
            st.escalations.push((inc_id, level));
        }
        axum::Json(json!({"incident": json})).into_response()
    };
    for line in lines {
        sh.timeline.say(line);
    }
    resp
}

/// `POST /incidents/{id}/notes`. The spec answers `200 {"note":{…}}`.
async fn create_note(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let from = match write_guard(&sh, &headers, "POST /incidents/{id}/notes") {
        Ok(from) => from,
        Err(resp) => return *resp,
    };
    let content = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("note")?.get("content")?.as_str().map(str::to_string));
    let Some(content) = content.filter(|c| !c.trim().is_empty()) else {
        sh.timeline.say(format!(
            "PagerDuty: refused a note on incident {id}: note.content missing (400)"
        ));
        return invalid_input("note.content is required");
    };
    let (line, json, echo) = {
        let mut st = sh.lock();
        let Some(idx) = st.find(&id) else {
            return not_found_error();
        };
        if st.incidents[idx].notes.len() >= MAX_NOTES {
            return invalid_input(format!("an incident holds at most {MAX_NOTES} notes"));
        }
        let note = st.add_note(idx, &content, &from);
        let json = note_json(&note, sh.base());
        let echo = if st.echo_notes {
            annotated_hook(&st, idx, &note, &from, sh.base())
        } else {
            None
        };
        let line = format!(
            "PagerDuty: note on incident #{} by {from}: \"{}\"",
            st.incidents[idx].record.number,
            shorten(&content, 100)
        );
        (line, json, echo)
    };
    sh.timeline.say(line);
    if let Some(hook) = echo {
        // Sent after the answer, as PagerDuty's delivery is asynchronous.
        let sh = sh.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let resp = client
                .post(&hook.url)
                .header(header::CONTENT_TYPE, "application/json")
                .header("X-Webhook-Id", &hook.id)
                .header(
                    "X-PagerDuty-Signature",
                    hook.signature.clone().unwrap_or_default(),
                )
                .body(hook.body.clone())
                .send()
                .await;
            if let Ok(r) = resp {
                let status = r.status().as_u16();
                sh.lock().delivered.push((hook.what.clone(), status));
                sh.timeline.say(format!(
                    "PagerDuty: webhook {} (pagerd's own note) → pagerd answered {status}",
                    hook.what
                ));
            }
        });
    }
    (StatusCode::OK, axum::Json(json!({"note": json}))).into_response()
}

/// `GET /incidents/{id}/notes`.
async fn list_notes(State(sh): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let st = sh.lock();
    let Some(idx) = st.find(&id) else {
        return not_found_error();
    };
    let notes: Vec<Value> = st.incidents[idx]
        .notes
        .iter()
        .map(|n| note_json(n, sh.base()))
        .collect();
    axum::Json(json!({"notes": notes})).into_response()
}

/// `GET /incidents/{id}/log_entries`, honouring `since` (RFC 3339): the
/// escalations made through the REST API, as `escalate_log_entry` items
/// (channel `api`, agent the `From` user), oldest first.
async fn list_log_entries(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let since = match q.iter().find(|(k, _)| k == "since") {
        None => None,
        Some((_, v)) => match humantime::parse_rfc3339_weak(v) {
            Ok(t) => Some(t),
            Err(_) => return invalid_input(format!("since {v:?} is not an ISO 8601 date-time")),
        },
    };
    let st = sh.lock();
    let Some(idx) = st.find(&id) else {
        return not_found_error();
    };
    let base = sh.base();
    let entries: Vec<Value> = st.incidents[idx]
        .log
        .iter()
        .filter(|e| since.is_none_or(|s| e.at >= s))
        .map(|e| {
            json!({
                "id": e.id,
                "type": "escalate_log_entry",
                "summary": format!("Escalated to level {} by {}", e.level, e.by),
                "created_at": humantime::format_rfc3339_millis(e.at).to_string(),
                "channel": {"type": "api"},
                "agent": user_ref(&e.by, base),
                "assignees": [level_assignee(e.level, base)],
            })
        })
        .collect();
    let total = entries.len();
    axum::Json(
        json!({"log_entries": entries, "limit": 100, "offset": 0, "more": false, "total": total}),
    )
    .into_response()
}

// ---------------------------------------------------------------- JSON views

/// The user id the fake gives the person called `name` wherever it shows
/// them (acknowledgers, webhook agents, note authors): stable per name, so
/// the same person is the same user everywhere. Seed
/// [`FakePagerDuty::add_user`] with it to make `GET /users/{id}` know them.
pub fn user_id(name: &str) -> String {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("PUSER{:06X}", hash & 0xFF_FFFF)
}

fn user_ref(name: &str, base: &str) -> Value {
    let id = user_id(name);
    json!({"id": id, "type": "user_reference", "summary": name,
           "self": format!("{base}/users/{id}"), "html_url": format!("{base}/users/{id}")})
}

fn service_ref(base: &str) -> Value {
    json!({"id": "PSVC001", "type": "service_reference", "summary": "pagerd emergencies",
           "self": format!("{base}/services/PSVC001"), "html_url": format!("{base}/service-directory/PSVC001")})
}

fn policy_ref(base: &str) -> Value {
    json!({"id": "PESC001", "type": "escalation_policy_reference", "summary": "Emergency on-call",
           "self": format!("{base}/escalation_policies/PESC001"),
           "html_url": format!("{base}/escalation_policies/PESC001")})
}

/// Who is paged at a level of the fake escalation policy.
fn level_assignee(level: u32, base: &str) -> Value {
    user_ref(&format!("Level {level} on-call"), base)
}

fn incident_json(inc: &Incident, base: &str) -> Value {
    let r = &inc.record;
    let url = format!("{base}/incidents/{}", r.id);
    let assignments: Vec<Value> = if r.status == "resolved" {
        Vec::new()
    } else {
        vec![json!({"at": inc.assigned_at, "assignee": level_assignee(r.escalation_level, base)})]
    };
    let acks: Vec<Value> = inc
        .acknowledgements
        .iter()
        .map(|a| {
            let who =
                a.by.as_deref()
                    .map_or_else(|| service_ref(base), |u| user_ref(u, base));
            json!({"at": a.at, "acknowledger": who})
        })
        .collect();
    let changed_by = inc
        .last_status_change_by
        .as_deref()
        .map_or_else(|| service_ref(base), |u| user_ref(u, base));
    json!({
        "id": r.id,
        "type": "incident",
        "summary": format!("[#{}] {}", r.number, r.title),
        "self": url,
        "html_url": url,
        "incident_number": r.number,
        "title": r.title,
        "description": r.title,
        "created_at": inc.created_at,
        "updated_at": inc.updated_at,
        "status": r.status,
        "incident_key": r.dedup_key,
        "service": service_ref(base),
        "assignments": assignments,
        "assigned_via": "escalation_policy",
        "last_status_change_at": inc.last_status_change_at,
        "last_status_change_by": changed_by,
        "resolved_at": inc.resolved_at,
        "acknowledgements": acks,
        "escalation_policy": policy_ref(base),
        "teams": [],
        "urgency": "high",
        "priority": null,
        "incident_type": {"name": "incident_default"},
    })
}

fn note_json(n: &Note, base: &str) -> Value {
    json!({"id": n.id, "user": user_ref(&n.user, base),
           "channel": {"summary": "The PagerDuty website or APIs"},
           "content": n.content, "created_at": n.created_at, "updated_at": n.created_at})
}

/// `event.data` of an incident webhook.
fn webhook_data(inc: &Incident, base: &str) -> Value {
    let r = &inc.record;
    let url = format!("{base}/incidents/{}", r.id);
    let assignees: Vec<Value> = if r.status == "resolved" {
        Vec::new()
    } else {
        vec![level_assignee(r.escalation_level, base)]
    };
    json!({
        "id": r.id,
        "type": "incident",
        "self": url,
        "html_url": url,
        "number": r.number,
        "status": r.status,
        "incident_key": r.dedup_key,
        "created_at": inc.created_at,
        "title": r.title,
        "service": service_ref(base),
        "assignees": assignees,
        "escalation_policy": policy_ref(base),
        "teams": [],
        "priority": null,
        "urgency": "high",
        "conference_bridge": null,
        "resolve_reason": null,
    })
}

// ------------------------------------------------------------------- helpers

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE.as_str())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether one of the `Accept` media ranges asks for version 2.
fn accepts_v2(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|range| {
            let compact: String = range.chars().filter(|c| !c.is_whitespace()).collect();
            compact.eq_ignore_ascii_case(ACCEPT_V2)
        })
    })
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Decoded `key=value` pairs of a query string.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    match reqwest::Url::parse(&format!("http://fake/?{query}")) {
        Ok(url) => url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// An id unique across this process, shaped like PagerDuty's (26 chars of
/// Crockford base32, time first).
fn unique_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut n = (millis << 80) | (rand::random::<u128>() >> 48);
    let mut out = [0u8; 26];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n & 31) as usize];
        n >>= 5;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "R0UT1NGKEY0000000000000000000001";
    const TOKEN: &str = "pd-api-token";

    async fn fake() -> FakePagerDuty {
        let opts = PagerDutyOptions {
            routing_key: KEY.into(),
            api_token: TOKEN.into(),
            timeline: Timeline::default(),
        };
        FakePagerDuty::start(opts).await.unwrap()
    }

    fn trigger(key: &str, summary: &str) -> Value {
        json!({"routing_key": KEY, "event_action": "trigger", "dedup_key": key,
               "payload": {"summary": summary, "source": "pagerd", "severity": "critical",
                           "custom_details": {"ticket": 4711}},
               "links": [{"href": "https://example.zendesk.com/agent/tickets/4711", "text": "ticket"}]})
    }

    async fn send(pd: &FakePagerDuty, body: &Value) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}/v2/enqueue", pd.url()))
            .json(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    fn rest(method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, url)
            .header("Authorization", format!("Token token={TOKEN}"))
            .header("Accept", ACCEPT_V2)
            .header("From", "pagerd@example.com")
    }

    #[tokio::test]
    async fn rest_refuses_missing_or_wrong_credentials_and_accept() {
        let pd = fake().await;
        let url = format!("{}/incidents", pd.url());
        let c = reqwest::Client::new();
        for auth in [
            None,
            Some("Token token=wrong"),
            Some("Bearer pd-api-token"),
            Some("Token pd-api-token"),
        ] {
            let mut req = c.get(&url).header("Accept", ACCEPT_V2);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{auth:?}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                body,
                json!({"error": {"message": "Authentication failed", "code": 2006}})
            );
        }
        let resp = c
            .get(&url)
            .header("Authorization", format!("Token token={TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], 2001);
        let resp = rest(reqwest::Method::GET, url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            json!({"incidents": [], "limit": 25, "offset": 0, "more": false, "total": null})
        );
        let resp = rest(
            reqwest::Method::GET,
            format!("{}/incidents/PNOPE", pd.url()),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"error": {"message": "Not Found", "code": 2100}})
        );
    }

    #[tokio::test]
    async fn dedup_follows_pagerduty() {
        let pd = fake().await;
        let (status, body) = send(&pd, &trigger("zendesk-4711", "Production instance down")).await;
        assert_eq!(status, 202);
        assert_eq!(
            body,
            json!({"status": "success", "message": "Event processed", "dedup_key": "zendesk-4711"})
        );
        send(&pd, &trigger("zendesk-4711", "Production instance down")).await;
        assert_eq!(
            pd.opened_for("zendesk-4711"),
            1,
            "a second trigger while open pages nobody"
        );
        assert_eq!(pd.events().len(), 2);

        let ack =
            json!({"routing_key": KEY, "event_action": "acknowledge", "dedup_key": "zendesk-4711"});
        assert_eq!(send(&pd, &ack).await.0, 202);
        assert_eq!(
            pd.incident_by_key("zendesk-4711").unwrap().status,
            "acknowledged"
        );
        let resolve =
            json!({"routing_key": KEY, "event_action": "resolve", "dedup_key": "zendesk-4711"});
        assert_eq!(send(&pd, &resolve).await.0, 202);
        assert_eq!(
            pd.incident_by_key("zendesk-4711").unwrap().status,
            "resolved"
        );
        // Nothing open now: accepted, but dropped.
        assert_eq!(send(&pd, &resolve).await.0, 202);

        send(
            &pd,
            &trigger("zendesk-4711", "Production instance down again"),
        )
        .await;
        assert_eq!(pd.opened_for("zendesk-4711"), 2);
        let inc = pd.incident_by_key("zendesk-4711").unwrap();
        assert_eq!(
            (
                inc.id.as_str(),
                inc.number,
                inc.status.as_str(),
                inc.escalation_level
            ),
            ("PINC0002", 2, "triggered", 1)
        );
        assert_eq!(inc.custom_details, json!({"ticket": 4711}));
        assert_eq!(inc.links.len(), 1);

        // A trigger without a dedup_key gets one generated and returned.
        let mut anon = trigger("x", "no key");
        anon.as_object_mut().unwrap().remove("dedup_key");
        let (_, body) = send(&pd, &anon).await;
        let key = body["dedup_key"].as_str().unwrap();
        assert_eq!(pd.opened_for(key), 1);
    }

    #[tokio::test]
    async fn invalid_events_are_refused_with_400() {
        let pd = fake().await;
        let url = format!("{}/v2/enqueue", pd.url());
        let c = reqwest::Client::new();
        let resp = c
            .post(&url)
            .header("Content-Type", "text/plain")
            .body(trigger("k", "s").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let resp = c
            .post(&url)
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert!(resp.json::<Value>().await.unwrap()["errors"].is_array());

        let mut cases = Vec::new();
        let mut wrong_key = trigger("k", "s");
        wrong_key["routing_key"] = json!("nope");
        cases.push((wrong_key, "Invalid routing key"));
        let mut bad_action = trigger("k", "s");
        bad_action["event_action"] = json!("escalate");
        cases.push((bad_action, "event_action"));
        let mut bad_severity = trigger("k", "s");
        bad_severity["payload"]["severity"] = json!("fatal");
        cases.push((bad_severity, "severity"));
        let mut no_source = trigger("k", "s");
        no_source["payload"]
            .as_object_mut()
            .unwrap()
            .remove("source");
        cases.push((no_source, "payload.source"));
        cases.push((trigger("k", ""), "payload.summary"));
        cases.push((trigger("k", &"x".repeat(1025)), "1024"));
        cases.push((trigger(&"k".repeat(256), "s"), "255"));
        let mut bad_link = trigger("k", "s");
        bad_link["links"] = json!([{"text": "no href"}]);
        cases.push((bad_link, "href"));
        cases.push((
            json!({"routing_key": KEY, "event_action": "resolve"}),
            "dedup_key",
        ));
        cases.push((json!([1, 2]), "object"));
        for (body, needle) in cases {
            let (status, resp) = send(&pd, &body).await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(resp["status"], "invalid event");
            assert_eq!(resp["message"], "Event object is invalid");
            assert!(
                resp["errors"].to_string().contains(needle),
                "{resp} lacks {needle}"
            );
        }
        assert!(pd.events().is_empty(), "refused events are not recorded");
        assert!(pd.incidents().is_empty());
        // The limits themselves are fine.
        assert_eq!(
            send(&pd, &trigger(&"k".repeat(255), &"x".repeat(1024)))
                .await
                .0,
            202
        );
    }

    #[tokio::test]
    async fn escalations_and_notes_are_recorded() {
        let pd = fake().await;
        send(&pd, &trigger("zendesk-1", "Down")).await;
        let id = pd.incident_by_key("zendesk-1").unwrap().id;
        let put = |body: Value| {
            rest(reqwest::Method::PUT, format!("{}/incidents/{id}", pd.url())).json(&body)
        };

        let resp = put(json!({"incident": {"escalation_level": 2}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "type is required");
        for from in [None, Some("not-an-email"), Some("a b@example.com")] {
            let mut req = reqwest::Client::new()
                .put(format!("{}/incidents/{id}", pd.url()))
                .header("Authorization", format!("Token token={TOKEN}"))
                .header("Accept", ACCEPT_V2)
                .json(&json!({"incident": {"type": "incident_reference", "escalation_level": 2}}));
            if let Some(from) = from {
                req = req.header("From", from);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 400, "From {from:?}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], 2001);
            assert!(body["error"]["message"].as_str().unwrap().contains("From"));
        }
        let resp = rest(reqwest::Method::PUT, format!("{}/incidents/{id}", pd.url()))
            .header("Content-Type", "text/plain")
            .body(r#"{"incident":{"type":"incident_reference","escalation_level":2}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            400,
            "writes need Content-Type: application/json"
        );
        assert!(pd.escalations().is_empty());

        let resp = put(json!({"incident": {"type": "incident_reference", "escalation_level": 2}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["incident"]["id"], json!(id));
        assert_eq!(
            body["incident"]["assignments"][0]["assignee"]["summary"],
            "Level 2 on-call"
        );
        assert_eq!(pd.escalations(), vec![(id.clone(), 2)]);
        assert_eq!(pd.incident_by_key("zendesk-1").unwrap().escalation_level, 2);
        let resp = put(json!({"incident": {"type": "incident_reference", "escalation_level": 99}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);

        let notes_url = format!("{}/incidents/{id}/notes", pd.url());
        let resp = rest(reqwest::Method::POST, notes_url.clone())
            .json(&json!({"note": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let resp = rest(reqwest::Method::POST, notes_url.clone())
            .json(&json!({"note": {"content": "Escalated: nobody acknowledged in 5m"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["note"]["content"],
            "Escalated: nobody acknowledged in 5m"
        );
        assert_eq!(body["note"]["user"]["summary"], "pagerd@example.com");
        let resp = rest(reqwest::Method::GET, notes_url).send().await.unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["notes"].as_array().unwrap().len(), 1);
        assert_eq!(
            pd.incident_by_key("zendesk-1").unwrap().notes,
            vec!["Escalated: nobody acknowledged in 5m"]
        );
        let resp = rest(
            reqwest::Method::POST,
            format!("{}/incidents/PNOPE/notes", pd.url()),
        )
        .json(&json!({"note": {"content": "x"}}))
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), 404);

        // Listing by key and status; lookup by number.
        let list =
            |q: &str| rest(reqwest::Method::GET, format!("{}/incidents?{q}", pd.url())).send();
        let body: Value = list("incident_key=zendesk-1&statuses%5B%5D=triggered")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["incidents"][0]["incident_key"], "zendesk-1");
        assert_eq!(body["incidents"][0]["status"], "triggered");
        let body: Value = list("incident_key=zendesk-1&statuses[]=resolved")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["incidents"], json!([]));
        assert_eq!(list("statuses[]=bogus").await.unwrap().status(), 400);
        let resp = rest(reqwest::Method::GET, format!("{}/incidents/1", pd.url()))
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["incident"]["incident_number"], 1);
        for field in [
            "html_url",
            "created_at",
            "urgency",
            "escalation_policy",
            "last_status_change_at",
        ] {
            assert!(!body["incident"][field].is_null(), "{field}");
        }

        // Resolve through REST; escalating a resolved incident fails.
        let resp = put(json!({"incident": {"type": "incident", "status": "resolved"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let resp = put(json!({"incident": {"type": "incident", "escalation_level": 2}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(pd.escalations().len(), 1);
    }

    /// What the test receiver saw: (headers, body).
    type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

    async fn receiver(status: StatusCode) -> (Server, Seen) {
        let seen: Seen = Arc::default();
        let app = Router::new()
            .route(
                "/webhooks/pagerduty",
                post(
                    move |State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
                        seen.lock().unwrap().push((headers, body));
                        status
                    },
                ),
            )
            .with_state(seen.clone());
        (Server::spawn(app).await.unwrap(), seen)
    }

    #[tokio::test]
    async fn acknowledge_posts_a_signed_webhook() {
        let pd = fake().await;
        let (rx, seen) = receiver(StatusCode::ACCEPTED).await;
        pd.set_webhook(format!("{}/webhooks/pagerduty", rx.url()), "whsec".into());
        assert!(
            pd.acknowledge("zendesk-9", "alice").await.is_err(),
            "nothing open yet"
        );
        send(&pd, &trigger("zendesk-9", "Checkout broken")).await;

        pd.acknowledge("zendesk-9", "alice").await.unwrap();
        let (headers, body) = seen.lock().unwrap()[0].clone();
        let sig = headers
            .get("x-pagerduty-signature")
            .and_then(|v| v.to_str().ok());
        // Cross-check: pagerd's own verifier accepts what the stand-in signs.
        crate::vendors::pagerduty::webhook::verify("whsec", sig, &body).unwrap();
        assert!(crate::vendors::pagerduty::webhook::verify("other", sig, &body).is_err());
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["user-agent"], "PagerDuty-Webhook/V3.0");
        let event: Value = serde_json::from_slice(&body).unwrap();
        let event = &event["event"];
        assert_eq!(
            headers["x-webhook-id"].to_str().unwrap(),
            event["id"].as_str().unwrap()
        );
        assert_eq!(event["event_type"], "incident.acknowledged");
        assert_eq!(event["resource_type"], "incident");
        assert_eq!(event["agent"]["summary"], "alice");
        assert!(event["agent"]["id"].as_str().unwrap().starts_with("PUSER"));
        assert_eq!(event["data"]["incident_key"], "zendesk-9");
        assert_eq!(event["data"]["status"], "acknowledged");
        assert_eq!(event["data"]["number"], 1);
        assert!(humantime::parse_rfc3339(event["occurred_at"].as_str().unwrap()).is_ok());

        // The PagerDuty side changed too, visible to REST polling.
        let resp = rest(reqwest::Method::GET, format!("{}/incidents/1", pd.url()))
            .send()
            .await
            .unwrap();
        let inc: Value = resp.json().await.unwrap();
        assert_eq!(inc["incident"]["status"], "acknowledged");
        assert_eq!(
            inc["incident"]["acknowledgements"][0]["acknowledger"]["summary"],
            "alice"
        );
        assert_eq!(
            pd.incident_by_key("zendesk-9").unwrap().acknowledgers,
            vec!["alice"]
        );

        // At-least-once: the same bytes and id again.
        assert_eq!(pd.redeliver_last_webhook().await, Ok(202));
        let again = seen.lock().unwrap()[1].clone();
        assert_eq!(again.1, body);
        assert_eq!(again.0["x-webhook-id"], headers["x-webhook-id"]);

        // A second responder, then resolve: one webhook each, distinct ids.
        pd.acknowledge("zendesk-9", "bob").await.unwrap();
        pd.resolve("zendesk-9", "bob").await.unwrap();
        let all = seen.lock().unwrap().clone();
        assert_eq!(all.len(), 4);
        let last: Value = serde_json::from_slice(&all[3].1).unwrap();
        assert_eq!(last["event"]["event_type"], "incident.resolved");
        assert_ne!(all[3].0["x-webhook-id"], all[2].0["x-webhook-id"]);
        assert!(
            pd.resolve("zendesk-9", "bob").await.is_err(),
            "nothing open any more"
        );

        assert_eq!(pd.send_webhook_raw("{}", None, "hostile-1").await, Ok(202));
        let raw = seen.lock().unwrap()[4].clone();
        assert!(raw.0.get("x-pagerduty-signature").is_none());
        assert_eq!(raw.0["x-webhook-id"], "hostile-1");
    }

    #[test]
    fn the_async_methods_can_be_spawned() {
        fn assert_send<T: Send>(_: T) {}
        let pd: Option<&FakePagerDuty> = None;
        if let Some(pd) = pd {
            assert_send(pd.acknowledge("k", "u"));
            assert_send(pd.resolve("k", "u"));
            assert_send(pd.redeliver_last_webhook());
            assert_send(pd.send_webhook_raw("{}", None, "id"));
        }
    }

    #[tokio::test]
    async fn a_refused_webhook_is_an_error_but_the_ack_stands() {
        let pd = fake().await;
        let (rx, _seen) = receiver(StatusCode::UNAUTHORIZED).await;
        pd.set_webhook(format!("{}/webhooks/pagerduty", rx.url()), "whsec".into());
        send(&pd, &trigger("zendesk-2", "Down")).await;
        assert!(pd.acknowledge("zendesk-2", "alice").await.is_err());
        assert_eq!(
            pd.incident_by_key("zendesk-2").unwrap().status,
            "acknowledged"
        );
    }

    #[tokio::test]
    async fn faults_and_timeline() {
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        let opts = PagerDutyOptions {
            routing_key: KEY.into(),
            api_token: TOKEN.into(),
            timeline: Timeline::new(tx),
        };
        let pd = FakePagerDuty::start(opts).await.unwrap();
        pd.events_faults.push(
            super::super::Fault::Status {
                status: 429,
                retry_after: None,
            },
            1,
        );
        assert_eq!(
            send(&pd, &trigger("zendesk-4711", "Production instance down"))
                .await
                .0,
            429
        );
        assert!(
            pd.incidents().is_empty(),
            "a faulted request is not applied"
        );
        assert_eq!(
            lines.recv().await.unwrap(),
            "PagerDuty: answered POST /v2/enqueue with 429 Too Many Requests (injected fault)",
            "the timeline shows an injected outage"
        );
        send(&pd, &trigger("zendesk-4711", "Production instance down")).await;
        assert_eq!(
            lines.recv().await.unwrap(),
            "PagerDuty: incident #1 opened for zendesk-4711 \"Production instance down\" (paging level 1)"
        );
    }
}

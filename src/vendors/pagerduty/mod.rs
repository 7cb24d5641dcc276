//! PagerDuty: Events API v2 (trigger, acknowledge, resolve) and the REST API
//! (find an incident by key, escalate, add notes, look users up).
//!
//! The Events API is idempotent by `dedup_key` while the incident is open,
//! which is what makes a redelivered page harmless. Calls are paced to the
//! per-key limit (a sliding window of `events_per_minute`), because past it
//! PagerDuty answers 429 and drops the event.

pub mod webhook;

pub mod config;
pub mod deliver;
pub mod poll;
use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{
    DeliveryError, ProbeError, from_status, from_transport, json_response, probe_response,
};
use super::{Person, normalize_email};
use crate::secret::Secret;

const SERVICE: &str = "PagerDuty";
const REST: &str = "PagerDuty REST API";
/// Page size of `GET /users`, and the most pages read for one e-mail (a
/// query matches names and e-mails by substring, so a few may come back).
const USERS_PAGE: usize = 100;
const MAX_USER_PAGES: usize = 5;
const ACCEPT: &str = "application/vnd.pagerduty+json;version=2";

/// A PagerDuty client.
pub struct PagerDuty {
    events_url: String,
    api_url: String,
    routing_key: Secret,
    api_token: Secret,
    from: String,
    http: reqwest::Client,
    pacer: Option<Mutex<VecDeque<Instant>>>,
    per_minute: usize,
}

/// A page to send.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    /// `zendesk-<ticket>`.
    pub dedup_key: &'a str,
    /// One line for the phone.
    pub summary: &'a str,
    /// The affected system / customer.
    pub source: &'a str,
    /// Link back to the ticket.
    pub ticket_url: &'a str,
    /// The ticket number, for the link text.
    pub ticket_id: &'a str,
    /// Requester, organisation and so on.
    pub custom_details: Value,
}

/// What pagerd reads of a PagerDuty incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteIncident {
    /// PagerDuty's id (`PXXXXXX`).
    pub id: String,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    /// Who acknowledged.
    pub acknowledgers: Vec<RemoteUser>,
}

/// A PagerDuty user as an incident references them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUser {
    /// The user id (`PXXXXXX`), when given.
    pub id: Option<String>,
    /// The summary (the user's name), or the id when no summary was given.
    pub name: String,
}

#[derive(Deserialize)]
struct IncidentJson {
    id: String,
    status: String,
    #[serde(default)]
    acknowledgements: Vec<AckJson>,
}

#[derive(Deserialize)]
struct AckJson {
    acknowledger: Option<RefJson>,
}

#[derive(Deserialize)]
struct RefJson {
    summary: Option<String>,
    id: Option<String>,
}

/// The part of a `User` pagerd reads.
#[derive(Deserialize)]
struct UserJson {
    id: Option<String>,
    name: Option<String>,
    summary: Option<String>,
    email: Option<String>,
}

impl UserJson {
    /// The person, or a permanent error when the user carries no e-mail.
    fn person(self) -> Result<Person, DeliveryError> {
        let id = self.id.unwrap_or_default();
        let Some(email) = self.email.filter(|e| !e.trim().is_empty()) else {
            return Err(DeliveryError::permanent(format!(
                "{REST}: user {id} has no e-mail address"
            )));
        };
        let name = self.name.or(self.summary).unwrap_or_default();
        Ok(Person::new(&email, &name))
    }
}

impl From<IncidentJson> for RemoteIncident {
    fn from(i: IncidentJson) -> RemoteIncident {
        let acknowledgers = i
            .acknowledgements
            .into_iter()
            .filter_map(|a| {
                let r = a.acknowledger?;
                let name = r.summary.clone().or_else(|| r.id.clone())?;
                Some(RemoteUser { id: r.id, name })
            })
            .collect();
        RemoteIncident {
            id: i.id,
            status: i.status,
            acknowledgers,
        }
    }
}

impl PagerDuty {
    /// A client; `events_per_minute` 0 disables pacing (benchmarks).
    pub fn new(
        events_url: String,
        api_url: String,
        routing_key: Secret,
        api_token: Secret,
        from: String,
        events_per_minute: u32,
        http: reqwest::Client,
    ) -> PagerDuty {
        let per_minute = events_per_minute as usize;
        let pacer = (per_minute > 0).then(|| Mutex::new(VecDeque::with_capacity(per_minute)));
        PagerDuty {
            events_url,
            api_url,
            routing_key,
            api_token,
            from,
            http,
            pacer,
            per_minute,
        }
    }

    /// Waits for a free slot in the sliding one-minute window.
    async fn pace(&self) {
        let Some(pacer) = &self.pacer else { return };
        let mut sent = pacer.lock().await;
        let window = Duration::from_secs(60);
        let now = Instant::now();
        while sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            sent.pop_front();
        }
        if sent.len() >= self.per_minute
            && let Some(oldest) = sent.pop_front()
        {
            tracing::warn!(
                per_minute = self.per_minute,
                "pagerduty: pacing events to the per-key rate limit"
            );
            tokio::time::sleep_until(oldest + window).await;
        }
        sent.push_back(Instant::now());
    }

    async fn enqueue(&self, body: Value) -> Result<(), DeliveryError> {
        self.pace().await;
        let resp = self
            .http
            .post(format!("{}/v2/enqueue", self.events_url))
            .json(&body)
            .send()
            .await;
        let resp = resp.map_err(|e| from_transport(SERVICE, &e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Err(from_status("PagerDuty Events API", status, &headers, &text))
    }

    /// Triggers (pages). Idempotent while the incident is open.
    pub async fn trigger(&self, page: &Page<'_>) -> Result<(), DeliveryError> {
        self.enqueue(json!({
            "routing_key": self.routing_key.expose(),
            "event_action": "trigger",
            "dedup_key": page.dedup_key,
            "client": "pagerd",
            "client_url": page.ticket_url,
            "payload": {
                "summary": crate::render::pagerduty_summary(page.summary),
                "source": crate::render::pagerduty_detail(page.source),
                "severity": "critical",
                "component": "customer production instance",
                "group": "support-emergency",
                "class": "zendesk emergency ticket",
                "custom_details": page.custom_details,
            },
            "links": [{ "href": page.ticket_url, "text": format!("Zendesk ticket #{}", page.ticket_id) }],
        }))
        .await
    }

    /// `acknowledge` or `resolve` through the Events API.
    pub async fn update(&self, dedup_key: &str, action: &str) -> Result<(), DeliveryError> {
        self.enqueue(json!({
            "routing_key": self.routing_key.expose(),
            "event_action": action,
            "dedup_key": dedup_key,
        }))
        .await
    }

    fn rest(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api_url))
            .header(
                "Authorization",
                format!("Token token={}", self.api_token.expose()),
            )
            .header("Accept", ACCEPT)
    }

    /// The newest incident for `dedup_key`, if PagerDuty has one.
    pub async fn find(&self, dedup_key: &str) -> Result<Option<RemoteIncident>, DeliveryError> {
        #[derive(Deserialize)]
        struct List {
            incidents: Vec<IncidentJson>,
        }
        let req = self
            .rest(reqwest::Method::GET, "/incidents")
            .query(&[("incident_key", dedup_key)]);
        let list: List = json_response("PagerDuty REST API", req.send().await).await?;
        Ok(list.incidents.into_iter().last().map(RemoteIncident::from))
    }

    /// The `incident_key` (pagerd's `dedup_key`) of PagerDuty incident
    /// `id` (`GET /incidents/{id}`); `None` when PagerDuty does not know
    /// it or it has no key.
    pub async fn incident_key(&self, id: &str) -> Result<Option<String>, DeliveryError> {
        #[derive(Deserialize)]
        struct One {
            incident: KeyJson,
        }
        #[derive(Deserialize)]
        struct KeyJson {
            #[serde(default)]
            incident_key: Option<String>,
        }
        // PagerDuty ids are alphanumeric: nothing else reaches the path.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        let resp = self
            .rest(reqwest::Method::GET, &format!("/incidents/{id}"))
            .send()
            .await;
        if let Ok(r) = &resp
            && r.status() == reqwest::StatusCode::NOT_FOUND
        {
            return Ok(None);
        }
        let one: One = json_response("PagerDuty REST API", resp).await?;
        Ok(one.incident.incident_key)
    }

    /// Escalates the incident to `level`.
    pub async fn escalate(&self, id: &str, level: u8) -> Result<(), DeliveryError> {
        let body =
            json!({ "incident": { "type": "incident_reference", "escalation_level": level } });
        let req = self
            .rest(reqwest::Method::PUT, &format!("/incidents/{id}"))
            .header("From", &self.from)
            .json(&body);
        let _: Value = json_response("PagerDuty REST API", req.send().await).await?;
        Ok(())
    }

    /// Whether the incident was escalated through the REST API since `since`
    /// (an `escalate_log_entry` on channel `api`): how a redelivered
    /// escalation learns that its first attempt got through.
    pub async fn escalated_since(
        &self,
        id: &str,
        since: crate::clock::Millis,
    ) -> Result<bool, DeliveryError> {
        #[derive(Deserialize)]
        struct Entries {
            log_entries: Vec<Value>,
        }
        let req = self
            .rest(
                reqwest::Method::GET,
                &format!("/incidents/{id}/log_entries"),
            )
            .query(&[
                ("since", crate::clock::rfc3339(since)),
                ("is_overview", "false".into()),
            ]);
        let entries: Entries = json_response("PagerDuty REST API", req.send().await).await?;
        Ok(entries
            .log_entries
            .iter()
            .any(|e| e["type"] == "escalate_log_entry" && e["channel"]["type"] == "api"))
    }

    /// Whether the incident has a note carrying `marker`.
    pub async fn has_note(&self, id: &str, marker: &str) -> Result<bool, DeliveryError> {
        #[derive(Deserialize)]
        struct Notes {
            notes: Vec<NoteJson>,
        }
        #[derive(Deserialize)]
        struct NoteJson {
            content: String,
        }
        let list = self.rest(reqwest::Method::GET, &format!("/incidents/{id}/notes"));
        let notes: Notes = json_response("PagerDuty REST API", list.send().await).await?;
        let tag = format!("[{marker}]");
        Ok(notes.notes.iter().any(|n| n.content.contains(&tag)))
    }

    /// Adds a note tagged with `marker`, unless one exists (a redelivery).
    pub async fn note(&self, id: &str, content: &str, marker: &str) -> Result<(), DeliveryError> {
        if self.has_note(id, marker).await? {
            return Ok(());
        }
        self.add_note(id, content, marker).await
    }

    /// Adds a note tagged with `marker`.
    pub async fn add_note(
        &self,
        id: &str,
        content: &str,
        marker: &str,
    ) -> Result<(), DeliveryError> {
        let tagged = format!("{}\n[{marker}]", crate::render::pagerduty_note(content));
        let req = self
            .rest(reqwest::Method::POST, &format!("/incidents/{id}/notes"))
            .header("From", &self.from)
            .json(&json!({ "note": { "content": tagged } }));
        let _: Value = json_response("PagerDuty REST API", req.send().await).await?;
        Ok(())
    }

    /// The user `id` (`PXXXXXX`); `None` when PagerDuty answers 404 (or the
    /// id could not be one).
    pub async fn user(&self, id: &str) -> Result<Option<Person>, DeliveryError> {
        #[derive(Deserialize)]
        struct One {
            user: UserJson,
        }
        // PagerDuty ids are alphanumeric; anything else is no user, and must
        // not reach the path.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        let resp = self
            .rest(reqwest::Method::GET, &format!("/users/{id}"))
            .send()
            .await
            .map_err(|e| from_transport(REST, &e))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let one: One = json_response(REST, Ok(resp)).await?;
        one.user.person().map(Some)
    }

    /// The user whose e-mail is `email` (case-insensitively), found with
    /// `GET /users?query=`; `None` when no user has exactly that address.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<Person>, DeliveryError> {
        self.find_user(email).await.map_err(DeliveryError::from)
    }

    /// [`PagerDuty::user_by_email`] for `pagerd doctor`: a refused REST token
    /// is [`ProbeError::Rejected`], so the check can say which key to fix.
    /// Read-only (`GET /users`).
    pub async fn find_user(&self, email: &str) -> Result<Option<Person>, ProbeError> {
        #[derive(Deserialize)]
        struct Page {
            users: Vec<UserJson>,
            #[serde(default)]
            more: bool,
        }
        let wanted = normalize_email(email);
        if wanted.is_empty() {
            return Ok(None);
        }
        let mut offset = 0;
        for _ in 0..MAX_USER_PAGES {
            let req = self.rest(reqwest::Method::GET, "/users").query(&[
                ("query", wanted.clone()),
                ("limit", USERS_PAGE.to_string()),
                ("offset", offset.to_string()),
            ]);
            let (page, _): (Page, _) = probe_response(REST, req.send().await).await?;
            let n = page.users.len();
            let found = page.users.into_iter().find(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| normalize_email(e) == wanted)
            });
            if let Some(user) = found {
                return user.person().map(Some).map_err(ProbeError::Failed);
            }
            if !page.more || n == 0 {
                break;
            }
            offset += n;
        }
        Ok(None)
    }
}

/// Length of an Events API v2 integration key (`routing_key`).
pub const ROUTING_KEY_LEN: usize = 32;

/// Whether `key` looks like an Events API v2 integration key: the spec
/// calls it "the GUID of one of your Events API V2 integrations" (the
/// "Integration Key" of the integration's page), 32 characters, and its
/// examples are lower-case letters and digits (`e93facc04764012d7bfb002500d5d1a6`).
/// `Err` says what is wrong without showing the key. Checked offline:
/// sending an event would page someone.
pub fn check_routing_key(key: &str) -> Result<(), String> {
    let len = key.chars().count();
    if len != ROUTING_KEY_LEN {
        return Err(format!(
            "it has {len} characters; an Events API v2 integration key has {ROUTING_KEY_LEN}"
        ));
    }
    if let Some(bad) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
    {
        let what = if bad.is_ascii_uppercase() {
            "an upper-case letter"
        } else if bad.is_whitespace() {
            "white space"
        } else {
            "a character other than a-z and 0-9"
        };
        return Err(format!(
            "it contains {what}; an Events API v2 integration key is lower-case letters and digits"
        ));
    }
    Ok(())
}

// The tests run against the stand-ins (the `demo` feature).
#[cfg(all(test, feature = "demo"))]
mod tests;

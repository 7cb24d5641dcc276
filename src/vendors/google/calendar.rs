//! Google Calendar v3: the after-crisis hand-off call, an event with a
//! Google Meet link on `google.calendar_id`.
//!
//! Booking is idempotent: the event carries private extended properties
//! `pagerd_incident=<id>` and `pagerd_key=<effect key>`, and
//! [`Calendar::book`] first lists the calendar's events with both as
//! `privateExtendedProperty` filters; only when none is found does it insert
//! one (`conferenceDataVersion=1`, a `conferenceData.createRequest` of type
//! `hangoutsMeet` whose `requestId` is the effect key, `sendUpdates=all` so
//! the attendees are invited by e-mail).
//!
//! Attendees can only be invited by a user: Google refuses them from a
//! service account acting as itself. With `google.impersonate` the token
//! carries `sub = impersonate` (domain-wide delegation, granted to the
//! service account's client ID for [`super::CALENDAR_SCOPES`] in the
//! Workspace admin console) and the event invites everyone; without it the
//! event is booked without attendees and their addresses are listed in its
//! description.
//!
//! Google creates the Meet conference asynchronously: an answer whose
//! `conferenceData.createRequest.status` is still `pending` is retryable,
//! and the next attempt finds the event and reads its link.

use reqwest::Method;
use serde_json::{Value, json};

use super::{TokenSource, call, enc};
use crate::clock::{Millis, rfc3339};
use crate::vendors::{DeliveryError, ProbeError, probe_response};

/// The private extended property holding the incident id.
pub const INCIDENT_PROPERTY: &str = "pagerd_incident";
/// The private extended property holding the effect's key.
pub const KEY_PROPERTY: &str = "pagerd_key";
/// The default Calendar API base.
pub const DEFAULT_CALENDAR_URL: &str = "https://www.googleapis.com/calendar/v3";

/// Where the hand-off events go and who books them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarSettings {
    /// The OAuth token endpoint (the JWT `aud`).
    pub token_url: String,
    /// Calendar v3 base, [`DEFAULT_CALENDAR_URL`].
    pub calendar_url: String,
    /// The calendar (`team@acme.example`, or a `…@group.calendar.google.com`
    /// id).
    pub calendar_id: String,
    /// The user the service account acts as (JWT `sub`), when domain-wide
    /// delegation is set up; needed to invite attendees.
    pub impersonate: Option<String>,
}

/// The call to book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffRequest<'a> {
    /// The event's title.
    pub title: &'a str,
    /// Its description (plain text).
    pub description: &'a str,
    /// When it starts.
    pub start: Millis,
    /// How long it lasts.
    pub minutes: u32,
    /// Who is invited (e-mail addresses).
    pub attendees: &'a [String],
}

/// A booked hand-off call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// The Calendar event id.
    pub event_id: String,
    /// The Google Meet link (`hangoutLink`).
    pub meet_url: String,
    /// The event in the Calendar web UI (`htmlLink`).
    pub event_url: String,
}

/// A calendar as `calendars.get` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarMeta {
    /// Its id.
    pub id: String,
    /// Its title.
    pub summary: String,
}

/// A Calendar client acting as the service account, or as
/// [`CalendarSettings::impersonate`].
pub struct Calendar {
    settings: CalendarSettings,
    auth: TokenSource,
    http: reqwest::Client,
}

impl std::fmt::Debug for Calendar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calendar")
            .field("settings", &self.settings)
            .field("client_email", &self.auth.account())
            .finish_non_exhaustive()
    }
}

impl Calendar {
    /// A client; `http` must carry a timeout. An unusable key is reported by
    /// the first call, as a permanent error.
    pub fn new(
        settings: CalendarSettings,
        key: super::ServiceAccountKey,
        http: reqwest::Client,
    ) -> Calendar {
        let settings = CalendarSettings {
            calendar_url: settings.calendar_url.trim_end_matches('/').to_string(),
            ..settings
        };
        let auth = TokenSource::new(
            key,
            settings.token_url.clone(),
            super::CALENDAR_SCOPES,
            settings.impersonate.clone(),
            http.clone(),
        );
        Calendar {
            settings,
            auth,
            http,
        }
    }

    /// Who books: the impersonated user, or the service account.
    pub fn acting_as(&self) -> &str {
        self.auth.subject().unwrap_or(self.auth.account())
    }

    /// The calendar booked on.
    pub fn calendar_id(&self) -> &str {
        &self.settings.calendar_id
    }

    /// Books the hand-off call of incident `incident_id` for the effect
    /// `key`, or returns the event an earlier attempt booked.
    pub async fn book(
        &self,
        handoff: &HandoffRequest<'_>,
        incident_id: i64,
        key: &str,
    ) -> Result<Booking, DeliveryError> {
        if let Some(event) = self.find(incident_id, key).await? {
            return booking(&event);
        }
        if handoff.start < 0 || handoff.minutes == 0 {
            return Err(DeliveryError::permanent(format!(
                "Google Calendar: the hand-off call of incident {incident_id} has no valid time \
                 (start {}, {} minutes)",
                handoff.start, handoff.minutes
            )));
        }
        let end = handoff
            .start
            .saturating_add(i64::from(handoff.minutes).saturating_mul(60_000));
        let mut description = crate::render::calendar_description(handoff.description);
        let invite = self.settings.impersonate.is_some();
        if !invite && !handoff.attendees.is_empty() {
            // Google refuses attendees from a service account acting as
            // itself; say who should come instead of booking nothing.
            description.push_str(&format!(
                "\n\nPlease join: {} (pagerd could not invite them: google.impersonate is not set)",
                crate::render::calendar_description(&handoff.attendees.join(", "))
            ));
        }
        let mut event = json!({
            "summary": crate::render::calendar_title(handoff.title),
            "description": description,
            "start": { "dateTime": rfc3339(handoff.start) },
            "end": { "dateTime": rfc3339(end) },
            "conferenceData": { "createRequest": {
                "requestId": key,
                "conferenceSolutionKey": { "type": "hangoutsMeet" },
            }},
            "extendedProperties": { "private": {
                INCIDENT_PROPERTY: incident_id.to_string(),
                KEY_PROPERTY: key,
            }},
        });
        if invite {
            let attendees: Vec<Value> = handoff
                .attendees
                .iter()
                .map(|a| json!({ "email": a }))
                .collect();
            event["attendees"] = json!(attendees);
        }
        let url = self.events_url();
        let query = [("conferenceDataVersion", "1"), ("sendUpdates", "all")];
        let created = call(
            &self.http,
            &self.auth,
            Method::POST,
            &url,
            &query,
            Some(&event),
            &format!("Calendar events.insert on {}", self.settings.calendar_id),
        )
        .await?;
        booking(&created)
    }

    /// The event booked for incident `incident_id` by the effect `key`, if
    /// any (`events.list` filtered by both private properties).
    pub async fn find(&self, incident_id: i64, key: &str) -> Result<Option<Value>, DeliveryError> {
        let by_incident = format!("{INCIDENT_PROPERTY}={incident_id}");
        let by_key = format!("{KEY_PROPERTY}={key}");
        let query = [
            ("privateExtendedProperty", by_incident.as_str()),
            ("privateExtendedProperty", by_key.as_str()),
            ("maxResults", "10"),
        ];
        let list = call(
            &self.http,
            &self.auth,
            Method::GET,
            &self.events_url(),
            &query,
            None,
            &format!("Calendar events.list on {}", self.settings.calendar_id),
        )
        .await?;
        Ok(list["items"]
            .as_array()
            .and_then(|items| items.iter().find(|e| e["status"] != "cancelled"))
            .cloned())
    }

    /// `calendars.get` of the calendar: whether the token (and the
    /// impersonation) is accepted and the calendar visible. Read-only.
    pub async fn check(&self) -> Result<CalendarMeta, ProbeError> {
        let token = self.auth.probe().await?;
        let url = format!(
            "{}/calendars/{}",
            self.settings.calendar_url,
            enc(&self.settings.calendar_id)
        );
        let resp = self.http.get(&url).bearer_auth(token.expose()).send().await;
        let service = format!(
            "Google Calendar calendars.get of {}",
            self.settings.calendar_id
        );
        let (v, _): (Value, _) = probe_response(&service, resp).await?;
        Ok(CalendarMeta {
            id: v["id"].as_str().unwrap_or_default().to_string(),
            summary: v["summary"].as_str().unwrap_or_default().to_string(),
        })
    }

    fn events_url(&self) -> String {
        format!(
            "{}/calendars/{}/events",
            self.settings.calendar_url,
            enc(&self.settings.calendar_id)
        )
    }
}

/// The links of an event as Calendar describes it: its Meet link
/// (`hangoutLink`, else the conference's video entry point) and `htmlLink`.
/// A conference still being created is retryable; one that failed, or none
/// at all, is permanent.
fn booking(event: &Value) -> Result<Booking, DeliveryError> {
    let id = event["id"].as_str().unwrap_or_default().to_string();
    let event_url = event["htmlLink"].as_str().unwrap_or_default().to_string();
    let video = event["conferenceData"]["entryPoints"]
        .as_array()
        .and_then(|eps| {
            eps.iter()
                .find(|ep| ep["entryPointType"] == "video")
                .and_then(|ep| ep["uri"].as_str())
        });
    let meet = event["hangoutLink"]
        .as_str()
        .or(video)
        .filter(|u| !u.is_empty());
    if let Some(meet) = meet {
        return Ok(Booking {
            event_id: id,
            meet_url: meet.to_string(),
            event_url,
        });
    }
    let status = event["conferenceData"]["createRequest"]["status"]["statusCode"]
        .as_str()
        .unwrap_or_default();
    match status {
        "pending" => Err(DeliveryError::retry(format!(
            "Google Calendar booked the hand-off event {id}; its Meet link is still being \
             created (the next attempt reads it)"
        ))),
        "failure" => Err(DeliveryError::permanent(format!(
            "Google Calendar booked the hand-off event {event_url} but could not create its \
             Meet link (conference create request failed): is Google Meet enabled for the \
             calendar's organisation?"
        ))),
        _ => Err(DeliveryError::permanent(format!(
            "Google Calendar answered the hand-off event {id} without a Meet link \
             (no conferenceData)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meet_link_is_read_or_its_absence_classified() {
        let ok = booking(&json!({
            "id": "e1", "htmlLink": "https://calendar/e1",
            "conferenceData": { "entryPoints": [
                { "entryPointType": "phone", "uri": "tel:+1" },
                { "entryPointType": "video", "uri": "https://meet/abc" },
            ]},
        }))
        .unwrap();
        assert_eq!(ok.meet_url, "https://meet/abc");
        assert_eq!(ok.event_url, "https://calendar/e1");
        let pending = json!({ "id": "e2", "conferenceData": { "createRequest": {
            "requestId": "k", "status": { "statusCode": "pending" } } } });
        assert!(booking(&pending).unwrap_err().is_retryable());
        let failed = json!({ "id": "e3", "conferenceData": { "createRequest": {
            "requestId": "k", "status": { "statusCode": "failure" } } } });
        assert!(!booking(&failed).unwrap_err().is_retryable());
        assert!(!booking(&json!({ "id": "e4" })).unwrap_err().is_retryable());
    }
}

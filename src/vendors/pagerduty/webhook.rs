//! PagerDuty's v3 webhook: the signature (`X-PagerDuty-Signature`, one or
//! more `v1=<hex HMAC-SHA256 of the body>`) and the event envelope, parsed
//! into what pagerd acts on.
//!
//! Replays: PagerDuty v3 signs only the body, so a captured request could be
//! sent again under a fresh (unsigned) `X-Webhook-Id`; pagerd therefore
//! de-duplicates on the signed `event.id` (PagerDuty's retries and a second
//! subscription carry the same one), and refuses an acted-on event whose
//! signed `event.occurred_at` is more than [`MAX_AGE`] away from now, so a
//! captured body is worthless after that.

use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use crate::vendors::signing::{Mac as _, SignatureError, mac};

/// How far a PagerDuty event's signed `occurred_at` may be from now (either
/// way) for pagerd to act on it. PagerDuty retries a failed delivery for
/// well under an hour; past that, polling (`pagerduty.poll_interval`) has
/// long caught up with the incident.
pub const MAX_AGE: Duration = Duration::from_secs(3600);

/// The prefix of every `dedup_key` pagerd sends (`zendesk-<ticket>`): an
/// incident without it is not pagerd's.
pub const KEY_PREFIX: &str = "zendesk-";

/// Verifies a request's signature header over its raw body.
pub fn verify_request(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    let h = headers
        .get("x-pagerduty-signature")
        .and_then(|v| v.to_str().ok());
    verify(secret, h, body)
}

/// Verifies a PagerDuty v3 webhook: any of the comma-separated `v1=<hex>`
/// entries may match (several are sent while a secret is being rotated).
pub fn verify(secret: &str, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
    const SIG: &str = "X-PagerDuty-Signature";
    let header = header.ok_or(SignatureError::Missing(SIG))?;
    let mut seen_v1 = false;
    for entry in header.split(',') {
        let Some(hex_mac) = entry.trim().strip_prefix("v1=") else {
            continue;
        };
        seen_v1 = true;
        let Ok(given) = hex::decode(hex_mac) else {
            continue;
        };
        if mac(secret.as_bytes(), &[body]).verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    if seen_v1 {
        Err(SignatureError::Mismatch)
    } else {
        Err(SignatureError::Malformed(SIG))
    }
}

/// What a webhook asks of pagerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Someone acknowledged in PagerDuty (the phone app).
    Acknowledged,
    /// Someone resolved in PagerDuty.
    Resolved,
    /// Someone added a note (`incident.annotated`): progress, which renews
    /// the acknowledgement's lease. Never pagerd's own note: those are
    /// refused as [`Refused::Ignored`] ([`is_pagerd_note`]).
    Annotated {
        /// The note (`data.content`; PagerDuty may trim a long one).
        content: String,
    },
}

/// Which incident an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentRef {
    /// pagerd's `dedup_key` (`data.incident_key` of an incident event).
    Key(String),
    /// PagerDuty's incident id (`data.incident.id` of a note event, which
    /// carries no key).
    Id(String),
}

/// Who acted, as PagerDuty references them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Agent {
    /// The user id (`PXXXXXX`).
    pub id: Option<String>,
    /// The user's name as the event summarises it.
    pub summary: Option<String>,
}

/// A verified event pagerd acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The signed event id: the de-duplication key.
    pub event_id: String,
    /// What happened.
    pub action: Action,
    /// Who did it.
    pub agent: Agent,
    /// The incident.
    pub incident: IncidentRef,
}

/// Why a well-signed event is not acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not JSON of the v3 envelope: a 400.
    #[error("invalid JSON body: {0}")]
    Malformed(String),
    /// A replay or a clock far off: a 400.
    #[error("{0}")]
    Stale(&'static str),
    /// Well-formed, but nothing for pagerd (another event type, another
    /// integration's incident): answered 200 so PagerDuty does not retry.
    #[error("{0}")]
    Ignored(&'static str),
}

#[derive(Deserialize)]
struct Body {
    event: Envelope,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    event_type: String,
    #[serde(default)]
    occurred_at: Option<String>,
    #[serde(default)]
    agent: Option<Ref>,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
struct Ref {
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// Parses a verified body into what pagerd acts on, at `now`.
pub fn parse(body: &[u8], now: SystemTime) -> Result<Notice, Refused> {
    let parsed: Body =
        serde_json::from_slice(body).map_err(|e| Refused::Malformed(e.to_string()))?;
    let ev = parsed.event;
    let action = match ev.event_type.as_str() {
        "incident.acknowledged" => Action::Acknowledged,
        "incident.resolved" => Action::Resolved,
        "incident.annotated" => {
            let content = ev
                .data
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            // pagerd's own notes (escalations, re-pages, progress from
            // Slack or the CLI) come back too: they are not a human's
            // progress, or pagerd's re-page note would renew the lease it
            // reports on.
            if is_pagerd_note(&content) {
                return Err(Refused::Ignored("pagerd's own note"));
            }
            Action::Annotated { content }
        }
        // Subscriptions often carry more types than pagerd acts on.
        _ => return Err(Refused::Ignored("event type not acted on")),
    };
    let incident = if let Action::Annotated { .. } = action {
        // A note's data is the note; its incident is a reference by id.
        let Some(id) = ev
            .data
            .get("incident")
            .and_then(|i| i.get("id"))
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
        else {
            // Answered 200 like any event pagerd cannot act on: PagerDuty
            // drops a 4xx and disables a subscription that keeps failing.
            return Err(Refused::Ignored("a note without its incident"));
        };
        IncidentRef::Id(id.to_string())
    } else {
        let Some(key) = ev
            .data
            .get("incident_key")
            .and_then(Value::as_str)
            .filter(|k| k.starts_with(KEY_PREFIX))
        else {
            return Err(Refused::Ignored("not a pagerd incident"));
        };
        IncidentRef::Key(key.to_string())
    };
    recent(ev.occurred_at.as_deref(), now).map_err(Refused::Stale)?;
    if ev.id.trim().is_empty() {
        return Err(Refused::Malformed("event.id is empty".into()));
    }
    let agent = ev.agent.map_or_else(Agent::default, |a| Agent {
        id: a.id,
        summary: a.summary,
    });
    Ok(Notice {
        event_id: ev.id,
        action,
        agent,
        incident,
    })
}

/// Whether a note is one pagerd wrote: every note pagerd adds ends with
/// its effect's marker on a line of its own, `[pagerd-<incident>-<row>]`
/// (`PagerDuty::add_note`). The handler also refuses a note whose author
/// is `pagerduty.from`, in case PagerDuty trimmed the marker off a long
/// note.
pub fn is_pagerd_note(content: &str) -> bool {
    content.lines().any(|line| {
        let Some(inner) = line
            .trim()
            .strip_prefix("[pagerd-")
            .and_then(|l| l.strip_suffix(']'))
        else {
            return false;
        };
        let mut parts = inner.split('-');
        let digits = |p: Option<&str>| {
            p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
    })
}

/// Whether a signed `occurred_at` is within [`MAX_AGE`] of `now`.
fn recent(occurred_at: Option<&str>, now: SystemTime) -> Result<(), &'static str> {
    let at = occurred_at.ok_or("event.occurred_at is missing")?;
    let at = humantime::parse_rfc3339(at)
        .or_else(|_| humantime::parse_rfc3339_weak(at.trim_end_matches('Z')))
        .map_err(|_| "event.occurred_at is not an RFC 3339 time")?;
    let off = match now.duration_since(at) {
        Ok(age) => age,
        Err(e) => e.duration(),
    };
    if off > MAX_AGE {
        return Err("event.occurred_at is more than an hour away from now (a replay?)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_vectors_verify() {
        let v: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/signature-test-vectors.json"
        ))
        .expect("vectors");
        let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
        for v in v["pagerduty"].as_array().expect("pagerduty vectors") {
            let r = verify(
                &s(v, "secret"),
                Some(&s(v, "X-PagerDuty-Signature")),
                s(v, "body").as_bytes(),
            );
            assert_eq!(r.is_ok(), v["valid"].as_bool().unwrap(), "{v}");
        }
        assert_eq!(
            verify("k", None, b"{}"),
            Err(SignatureError::Missing("X-PagerDuty-Signature"))
        );
    }

    #[test]
    fn events_older_or_newer_than_an_hour_are_refused() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |secs: u64| {
            humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
                .to_string()
        };
        assert_eq!(recent(Some(&at(1_700_000_000 - 3599)), now), Ok(()));
        assert_eq!(recent(Some(&at(1_700_000_000 + 60)), now), Ok(()));
        assert!(recent(Some(&at(1_700_000_000 - 3601)), now).is_err());
        assert!(recent(Some(&at(1_700_000_000 + 3601)), now).is_err());
        assert!(recent(Some("2023-11-14T22:13:20Z"), now).is_ok());
        assert!(recent(Some("yesterday"), now).is_err());
        assert!(recent(None, now).is_err());
    }

    #[test]
    fn parses_what_pagerd_acts_on_and_ignores_the_rest() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let body = |kind: &str, key: &str| {
            serde_json::json!({"event": {"id": "E1", "event_type": kind,
                "occurred_at": "2023-11-14T22:13:20Z",
                "agent": {"id": "PANA", "summary": "Ana"},
                "data": {"incident_key": key}}})
            .to_string()
        };
        let n = parse(body("incident.acknowledged", "zendesk-1").as_bytes(), now).unwrap();
        assert_eq!(n.action, Action::Acknowledged);
        assert_eq!(n.agent.id.as_deref(), Some("PANA"));
        assert_eq!(n.incident, IncidentRef::Key("zendesk-1".into()));
        assert!(matches!(
            parse(
                body("incident.priority_updated", "zendesk-1").as_bytes(),
                now
            ),
            Err(Refused::Ignored(_))
        ));
        assert!(matches!(
            parse(body("incident.resolved", "other-1").as_bytes(), now),
            Err(Refused::Ignored(_))
        ));
        assert!(matches!(parse(b"{", now), Err(Refused::Malformed(_))));
    }

    /// `incident.annotated` as PagerDuty sends it: `data` is the note,
    /// its incident a reference by id.
    fn note(content: &str) -> String {
        serde_json::json!({"event": {"id": "E2", "event_type": "incident.annotated",
            "resource_type": "incident", "occurred_at": "2023-11-14T22:13:20Z",
            "agent": {"id": "PANA", "summary": "Ana", "type": "user_reference"},
            "client": null,
            "data": {"incident": {"id": "PGR0VU2", "type": "incident_reference",
                                  "summary": "[#1] Production down"},
                     "id": "PNOTE1", "content": content, "trimmed": false,
                     "type": "incident_note"}}})
        .to_string()
    }

    #[test]
    fn a_human_note_is_progress_and_pagerds_own_note_is_not() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let n = parse(note("failing over the DB").as_bytes(), now).unwrap();
        assert_eq!(
            n.action,
            Action::Annotated {
                content: "failing over the DB".into()
            }
        );
        assert_eq!(n.incident, IncidentRef::Id("PGR0VU2".into()));
        assert_eq!(n.agent.id.as_deref(), Some("PANA"));
        // What pagerd's notes look like (PagerDuty::add_note): the text,
        // then the effect's marker on its own line.
        let own =
            "Acknowledged by Ana, but no progress for 30m: pagerd re-paged level 1.\n[pagerd-7-42]";
        assert_eq!(
            parse(note(own).as_bytes(), now),
            Err(Refused::Ignored("pagerd's own note"))
        );
        assert!(is_pagerd_note("Progress from Bo: x\r\n [pagerd-1-2] "));
        // A human quoting something like it is still a human.
        for human in [
            "see [pagerd-7] above",
            "[pagerd-a-1]",
            "[pagerd-1-2-3]",
            "pagerd-1-2",
        ] {
            assert!(!is_pagerd_note(human), "{human}");
        }
        let mut bad: Value = serde_json::from_str(&note("x")).unwrap();
        bad["event"]["data"]["incident"]["id"] = "../users".into();
        assert_eq!(
            parse(bad.to_string().as_bytes(), now),
            Err(Refused::Ignored("a note without its incident"))
        );
    }
}

//! Zendesk's webhook: the signature scheme (HMAC-SHA256 over the signed
//! timestamp and the body, base64, in `X-Zendesk-Webhook-Signature` with
//! `X-Zendesk-Webhook-Signature-Timestamp`) and the trigger body the README
//! documents, parsed strictly into a [`Ticket`].

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use crate::engine::Ticket;
use crate::vendors::signing::{Mac as _, SignatureError, fresh, mac};

/// Verifies a request's signature headers over its raw body.
pub fn verify_request(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    verify(
        secret,
        h("x-zendesk-webhook-signature"),
        h("x-zendesk-webhook-signature-timestamp"),
        body,
        now_secs,
    )
}

/// Parses the Zendesk timestamp header: RFC 3339 (`2026-11-24T12:00:00Z`),
/// or unix seconds, which some proxies rewrite it to.
fn zendesk_timestamp_secs(ts: &str) -> Option<i64> {
    if let Ok(secs) = ts.parse::<i64>() {
        return Some(secs);
    }
    let t = humantime::parse_rfc3339_weak(ts).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_secs()).ok()
}

/// Verifies a Zendesk webhook: base64(HMAC-SHA256(secret, timestamp + body)).
pub fn verify(
    secret: &str,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
    const SIG: &str = "X-Zendesk-Webhook-Signature";
    const TS: &str = "X-Zendesk-Webhook-Signature-Timestamp";
    let signature = signature.ok_or(SignatureError::Missing(SIG))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing(TS))?;
    let given = BASE64
        .decode(signature.trim())
        .map_err(|_| SignatureError::Malformed(SIG))?;
    mac(secret.as_bytes(), &[timestamp.as_bytes(), body])
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)?;
    let ts = zendesk_timestamp_secs(timestamp.trim()).ok_or(SignatureError::Malformed(TS))?;
    fresh(ts, now_secs)
}

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
    /// `{{ticket.created_at_with_timestamp}}`: read by [`created_at`] for
    /// HackerOne reports only.
    #[serde(default)]
    created_at: Loose,
    /// `{{ticket.external_id}}`: read by [`external_id`] for HackerOne
    /// reports only.
    #[serde(default)]
    external_id: Loose,
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
pub fn parse(body: &[u8], base_url: &str) -> Result<Ticket, String> {
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

/// The ticket's creation time in the documented body
/// (`"created_at":"{{ticket.created_at_with_timestamp}}"`, ISO 8601 with
/// `Z` or an offset): the start of a HackerOne report's clock. `Ok(None)`
/// when the body has none (a trigger written before the key was
/// documented); `Err` when it is there but not a timestamp. Only reports
/// read it: an emergency never waits on it.
pub fn created_at(body: &[u8]) -> Result<Option<jiff::Timestamp>, String> {
    let parsed: ZendeskBody =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let text = parsed.ticket.created_at.text();
    if text.is_empty() {
        return Ok(None);
    }
    crate::business_time::parse_timestamp(&text)
        .map(Some)
        .map_err(|e| format!("ticket.created_at: {e}"))
}

/// The ticket's `external_id` in the documented body
/// (`"external_id":"{{ticket.external_id}}"`), `None` when absent or
/// empty (a trigger written before the key was documented, a ticket
/// without one). Only HackerOne reports read it
/// ([`crate::reports::h1::report_id_of`]).
pub fn external_id(body: &[u8]) -> Option<String> {
    let parsed: ZendeskBody = serde_json::from_slice(body).ok()?;
    Some(parsed.ticket.external_id.text()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn vectors() -> Value {
        let text = include_str!("../../../tests/fixtures/signature-test-vectors.json");
        serde_json::from_str(text).expect("vectors parse")
    }

    fn s<'a>(v: &'a Value, k: &str) -> &'a str {
        v[k].as_str().unwrap_or_default()
    }

    #[test]
    fn the_published_vectors_verify_and_a_stale_one_is_refused() {
        let now = zendesk_timestamp_secs("2026-11-24T12:00:30Z").unwrap();
        for v in vectors()["zendesk"].as_array().unwrap() {
            let r = verify(
                s(v, "secret"),
                Some(s(v, "X-Zendesk-Webhook-Signature")),
                Some(s(v, "header_timestamp")),
                s(v, "body").as_bytes(),
                now,
            );
            assert_eq!(r.is_ok(), v["valid"].as_bool().unwrap(), "{v}");
        }
        let v = &vectors()["zendesk"][0];
        let late = zendesk_timestamp_secs("2026-11-24T12:05:01Z").unwrap();
        let r = verify(
            s(v, "secret"),
            Some(s(v, "X-Zendesk-Webhook-Signature")),
            Some(s(v, "header_timestamp")),
            s(v, "body").as_bytes(),
            late,
        );
        assert_eq!(r, Err(SignatureError::Stale));
        assert_eq!(
            verify("k", Some("abc"), None, b"{}", 0),
            Err(SignatureError::Missing(
                "X-Zendesk-Webhook-Signature-Timestamp"
            ))
        );
    }

    #[test]
    fn parses_the_body_zendesk_renders() {
        let body = vectors()["zendesk"][0]["body"]
            .as_str()
            .unwrap()
            .to_string();
        let t = parse(body.as_bytes(), "https://acme.zendesk.com").unwrap();
        assert_eq!(t.id, "4711");
        assert_eq!(t.priority, "urgent");
        assert_eq!(t.status, "new");
        assert_eq!(t.tags, vec!["emergency", "premium"]);
        assert_eq!(t.url, "https://acme.zendesk.com/agent/tickets/4711");
        assert_eq!(t.requester_email, "dana@customer.test");
        assert_eq!(t.organization, "Customer Corp");
    }

    #[test]
    fn created_at_takes_z_and_offsets_and_may_be_absent() {
        let at = |v: &str| {
            let body = serde_json::json!({"ticket": {"id": "1", "created_at": v}}).to_string();
            created_at(body.as_bytes())
        };
        let utc = at("2027-03-26T14:00:00Z").unwrap().unwrap();
        assert_eq!(at("2027-03-26T15:00:00+01:00").unwrap(), Some(utc));
        assert_eq!(at(" 2027-03-26T15:00:00+01:00 ").unwrap(), Some(utc));
        assert_eq!(at("").unwrap(), None);
        assert_eq!(created_at(br#"{"ticket":{"id":"1"}}"#).unwrap(), None);
        let no_offset = at("2027-03-26 15:00:00").unwrap_err();
        assert!(no_offset.contains("ticket.created_at"), "{no_offset}");
        assert!(at("{{ticket.created_at_with_timestamp}}").is_err());
    }

    /// The trigger body the README tells operators to paste: every key
    /// pagerd reads, with the placeholders Zendesk renders.
    #[test]
    fn the_documented_body_names_every_placeholder() {
        let readme = include_str!("../../../README.md");
        let line = readme
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("{\"ticket\":"))
            .expect("the README shows the trigger body");
        let body: Value = serde_json::from_str(line).expect("the documented body is JSON");
        let t = &body["ticket"];
        for (key, placeholder) in [
            ("id", "{{ticket.id}}"),
            ("title", "{{ticket.title}}"),
            ("priority", "{{ticket.priority}}"),
            ("status", "{{ticket.status}}"),
            ("tags", "{{ticket.tags}}"),
            ("organization", "{{ticket.organization.name}}"),
            ("created_at", "{{ticket.created_at_with_timestamp}}"),
            ("external_id", "{{ticket.external_id}}"),
        ] {
            assert_eq!(t[key], placeholder, "{key}");
        }
        assert_eq!(t["requester"]["email"], "{{ticket.requester.email}}");
        // Rendered, it parses into a ticket and a creation time.
        let rendered = line.replace("{{ticket.id}}", "4711").replace(
            "{{ticket.created_at_with_timestamp}}",
            "2027-03-26T14:00:00Z",
        );
        assert_eq!(
            parse(rendered.as_bytes(), "https://z.example").unwrap().id,
            "4711"
        );
        assert!(created_at(rendered.as_bytes()).unwrap().is_some());
        let linked = rendered.replace("{{ticket.external_id}}", "548");
        assert_eq!(external_id(linked.as_bytes()).as_deref(), Some("548"));
        let unlinked = rendered.replace("{{ticket.external_id}}", "");
        assert_eq!(external_id(unlinked.as_bytes()), None);
    }

    #[test]
    fn tags_never_contain_white_space() {
        let body = br#"{"ticket":{"id":"1","tags":["a b","Emergency\u0020VIP","c,d"]}}"#;
        let t = parse(body, "u").unwrap();
        assert_eq!(t.tags, vec!["a", "b", "emergency", "vip", "c", "d"]);
    }

    #[test]
    fn refuses_bodies_without_a_ticket_number() {
        assert!(parse(br#"{"ticket":{"id":"{{ticket.id}}"}}"#, "u").is_err());
        assert!(parse(br#"{"ticket":{}}"#, "u").is_err());
        assert!(parse(b"\xff\xfe", "u").is_err());
        assert!(
            parse(br#"{"ticket":{"id":4711}}"#, "u").is_ok(),
            "a number is fine too"
        );
    }

    mod props {
        use proptest::prelude::*;

        use super::super::parse;

        proptest! {
        #[test]
        fn the_zendesk_parser_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body, "https://z.example");
        }
        #[test]
        fn the_zendesk_parser_takes_any_ticket_number(id in 0u64..u64::MAX, title in ".{0,40}", tags in "[a-z ]{0,30}") {
            let body = serde_json::json!({"ticket": {"id": id.to_string(), "title": title, "priority": "Urgent", "tags": tags}});
            let t = parse(body.to_string().as_bytes(), "https://z.example").unwrap();
            prop_assert_eq!(t.id, id.to_string());
            prop_assert_eq!(t.priority, "urgent");
            prop_assert!(t.tags.iter().all(|t| !t.is_empty() && !t.contains(' ')));
        }
            }
    }
}

//! Slack's requests to pagerd: the signature (`X-Slack-Signature` =
//! `v0=<hex HMAC-SHA256 of "v0:{timestamp}:{body}">`, with
//! `X-Slack-Request-Timestamp`), interactivity payloads (the buttons of a
//! crisis announcement) and the `/pagerd` slash command, parsed into what
//! pagerd acts on.

use axum::http::HeaderMap;
use serde::Deserialize;

use crate::vendors::signing::{Mac as _, SignatureError, fresh, mac};

/// The content type of Slack's requests.
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// The prefix of pagerd's button `action_id`s (`pagerd_ack`, …).
pub const ACTION_PREFIX: &str = "pagerd_";

/// What `/pagerd` takes, for its help answer.
pub const SLASH_HELP: &str = "Usage: /pagerd status | ack ID | escalate ID [reason] | crisis ID | join ID | resolve ID | repage ID | note ID text";

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
        h("x-slack-signature"),
        h("x-slack-request-timestamp"),
        body,
        now_secs,
    )
}

/// Verifies a Slack request (`X-Slack-Signature`, `X-Slack-Request-Timestamp`).
pub fn verify(
    secret: &str,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
    const SIG: &str = "X-Slack-Signature";
    const TS: &str = "X-Slack-Request-Timestamp";
    let signature = signature.ok_or(SignatureError::Missing(SIG))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing(TS))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed(TS))?;
    let given = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Malformed(SIG))?;
    mac(
        secret.as_bytes(),
        &[b"v0:", timestamp.trim().as_bytes(), b":", body],
    )
    .verify_slice(&given)
    .map_err(|_| SignatureError::Mismatch)?;
    fresh(ts, now_secs)
}

/// A Slack user as a request names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// The user id (`U…`).
    pub id: Option<String>,
    /// The handle (`username` or `name`, or the slash command's `user_name`).
    pub handle: Option<String>,
}

/// What a verified request asks of pagerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Buttons clicked: `(verb, incident id)` each (`ack`, `escalate`, …).
    Clicks {
        /// Who clicked.
        user: User,
        /// What was clicked, on which incident.
        clicks: Vec<(String, i64)>,
    },
    /// `/pagerd status`.
    Status {
        /// Who asked.
        user: User,
    },
    /// `/pagerd VERB ID [reason]`; `incident` is `None` when the command
    /// named none (pagerd answers with the help).
    Command {
        /// Who asked.
        user: User,
        /// The verb, lower-cased.
        verb: String,
        /// The incident, `#` allowed.
        incident: Option<i64>,
        /// The rest of the words.
        reason: String,
    },
    /// Another kind of interaction: nothing to do.
    Other,
}

#[derive(Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user: Option<InteractionUser>,
    #[serde(default)]
    actions: Vec<Action>,
}

#[derive(Deserialize)]
struct InteractionUser {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

/// Parses a verified request body (a form: `payload=` for interactivity,
/// `command`/`text`/`user_id`/`user_name` for the slash command).
pub fn parse(body: &[u8]) -> Result<Request, String> {
    let form = form_pairs(body)?;
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(payload) = field("payload") {
        let i: Interaction =
            serde_json::from_str(&payload).map_err(|e| format!("invalid payload: {e}"))?;
        if i.kind != "block_actions" {
            return Ok(Request::Other);
        }
        let u = i.user.unwrap_or(InteractionUser {
            id: None,
            username: None,
            name: None,
        });
        let user = User {
            id: u.id,
            handle: u.username.or(u.name),
        };
        let clicks = i
            .actions
            .into_iter()
            .filter_map(|a| {
                let verb = a.action_id.strip_prefix(ACTION_PREFIX)?.to_string();
                let id = a.value.as_deref()?.parse::<i64>().ok()?;
                Some((verb, id))
            })
            .collect();
        return Ok(Request::Clicks { user, clicks });
    }
    let user = User {
        id: field("user_id"),
        handle: field("user_name"),
    };
    let text = field("text").unwrap_or_default();
    let mut words = text.split_whitespace();
    let verb = words.next().unwrap_or("help").to_lowercase();
    if verb == "status" {
        return Ok(Request::Status { user });
    }
    let incident = words
        .next()
        .and_then(|w| w.trim_start_matches('#').parse::<i64>().ok());
    Ok(Request::Command {
        user,
        verb,
        incident,
        reason: words.collect::<Vec<_>>().join(" "),
    })
}

/// Decodes `application/x-www-form-urlencoded`.
fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, String> {
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
    use serde_json::Value;

    use super::*;

    #[test]
    fn the_documented_vector_verifies_and_stale_or_wrong_is_refused() {
        let all: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/signature-test-vectors.json"
        ))
        .expect("vectors");
        let v = &all["slack"][0];
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let ts = s("X-Slack-Request-Timestamp");
        let now: i64 = ts.parse().unwrap();
        let body = s("body");
        let sig = s("X-Slack-Signature");
        let check = |secret: &str, now| verify(secret, Some(&sig), Some(&ts), body.as_bytes(), now);
        assert!(check(&s("secret"), now + 10).is_ok());
        assert_eq!(check(&s("secret"), now + 301), Err(SignatureError::Stale));
        assert_eq!(check("wrong", now), Err(SignatureError::Mismatch));
    }

    #[test]
    fn parses_clicks_and_commands() {
        let payload = serde_json::json!({"type": "block_actions", "user": {"id": "U1", "username": "ana"},
            "actions": [{"action_id": "pagerd_join", "value": "7"}, {"action_id": "other", "value": "1"}]});
        let body = format!("payload={}", urlencode(&payload.to_string()));
        assert_eq!(
            parse(body.as_bytes()).unwrap(),
            Request::Clicks {
                user: User {
                    id: Some("U1".into()),
                    handle: Some("ana".into())
                },
                clicks: vec![("join".into(), 7)],
            }
        );
        let cmd = parse(b"command=%2Fpagerd&text=escalate+%2312+db+down&user_id=U2&user_name=bo")
            .unwrap();
        assert!(
            matches!(cmd, Request::Command { verb, incident: Some(12), reason, .. }
            if verb == "escalate" && reason == "db down")
        );
        assert!(matches!(
            parse(b"text=status").unwrap(),
            Request::Status { .. }
        ));
    }

    fn urlencode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
}

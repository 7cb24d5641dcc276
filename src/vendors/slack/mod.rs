//! Slack Web API client: posts pages to channels and threads, and looks
//! users up (`users.info`, for their e-mail and real name).
//!
//! One write, `chat.postMessage` (JSON body, bot token as `Authorization:
//! Bearer`), carries an idempotency marker in the message `metadata`
//! (`event_type` `pagerd_effect`, `event_payload.pagerd_key`). When the
//! dispatcher retries a post that may already have reached Slack (a crash or
//! a timeout after sending), [`Slack::post`] first reads the channel (or the
//! thread) back with `include_all_metadata=true` and returns the message that
//! carries the marker instead of posting a duplicate.
//!
//! Slack answers most failures with HTTP 200 and `{"ok":false,"error":…}`, so
//! every answer's `ok` is checked; the error code decides whether a retry can
//! help (see [`classify`]).

pub mod actions;
pub mod blocks;

pub mod config;
pub mod deliver;
use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::Person;
use super::{DeliveryError, ProbeError, json_response, probe_response};
use crate::render;
use crate::secret::Secret;

/// `metadata.event_type` of every message pagerd posts.
pub const METADATA_EVENT_TYPE: &str = "pagerd_effect";

/// Slack error codes that mean "later may work"; every other code is
/// permanent (bad token, unknown channel, invalid blocks, missing scope…).
const RETRYABLE_CODES: &[&str] = &[
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// The bot token scopes pagerd uses: `chat:write` (`chat.postMessage`),
/// `channels:read` (`conversations.list`, `conversations.info`),
/// `channels:history` (`conversations.history` / `.replies`, so a retried
/// post finds its first copy), `users:read` and `users:read.email`
/// (`users.info`, to tell who clicked a button).
pub const REQUIRED_SCOPES: &[&str] = &[
    "chat:write",
    "channels:read",
    "channels:history",
    "users:read",
    "users:read.email",
];

/// Slack error codes that mean the token itself is refused.
const REJECTED_CODES: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
];

/// What `auth.test` says about the bot token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInfo {
    /// The workspace's name.
    pub team: String,
    /// The bot user's name (what `/invite @name` takes).
    pub user: String,
    /// The bot user's ID.
    pub user_id: String,
    /// The token's scopes from the `x-oauth-scopes` response header; `None`
    /// when Slack sent no such header.
    pub scopes: Option<Vec<String>>,
}

/// What `conversations.info` says about a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel ID.
    pub id: String,
    /// The channel's name, without `#`.
    pub name: String,
    /// Whether the bot is a member (it can only post where it is).
    pub is_member: bool,
    /// Whether the channel is archived (nobody can post).
    pub is_archived: bool,
}

/// Page size of `conversations.list`.
const LIST_PAGE: &str = "200";
/// Upper bound on `conversations.list` pages (200 000 channels) and on
/// `conversations.replies` pages, so a broken cursor cannot loop forever.
const MAX_PAGES: usize = 1000;
const MAX_REPLY_PAGES: usize = 10;

/// A Slack bot-token client.
pub struct Slack {
    api_url: String,
    token: Secret,
    http: reqwest::Client,
    /// Channel name (without `#`) → channel ID, from `conversations.list`
    /// and from the channels `chat.postMessage` reported.
    channel_ids: Mutex<HashMap<String, String>>,
}

/// One message to post.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackMessage {
    /// `#general`, `general` or a channel ID (`C…`, `G…`, `D…`).
    pub channel: String,
    /// Plain text; always sent, as the notification fallback when `blocks`
    /// are given.
    pub text: String,
    /// Block Kit blocks (a JSON array).
    pub blocks: Option<Value>,
    /// The parent message's `ts`, to reply in its thread.
    pub thread_ts: Option<String>,
    /// The idempotency key of this effect (`metadata.event_payload.pagerd_key`).
    pub marker: String,
}

/// Where a message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The channel ID as Slack returned it.
    pub channel: String,
    /// The message's `ts`, its ID within the channel (parent for replies).
    pub ts: String,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("api_url", &self.api_url)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Slack {
    /// A client for `api_url` (e.g. `https://slack.com/api`, no trailing
    /// slash needed) with a bot token (`xoxb-…`). `http` must carry a
    /// timeout (see [`super::http_client`]).
    pub fn new(api_url: String, token: Secret, http: reqwest::Client) -> Slack {
        Slack {
            api_url: api_url.trim_end_matches('/').to_string(),
            token,
            http,
            channel_ids: Mutex::new(HashMap::new()),
        }
    }

    /// Posts `msg` with `chat.postMessage`.
    ///
    /// With `maybe_sent_before` (a retry of an attempt that may have reached
    /// Slack), first looks for a message carrying `msg.marker` in the
    /// channel's recent history (or in the thread, for a reply) and returns
    /// it instead of posting again. If that lookup is refused permanently
    /// (e.g. the bot lacks `channels:history`), it posts anyway: a duplicate
    /// page is better than none.
    pub async fn post(
        &self,
        msg: &SlackMessage,
        maybe_sent_before: bool,
    ) -> Result<Posted, DeliveryError> {
        if maybe_sent_before {
            match self.find_marker(msg).await {
                Ok(Some(found)) => {
                    tracing::info!(channel = %msg.channel, ts = %found.ts, "Slack message already posted, not posting again");
                    return Ok(found);
                }
                Ok(None) => {}
                Err(e @ DeliveryError::Retryable { .. }) => return Err(e),
                Err(DeliveryError::Permanent { reason }) => {
                    tracing::warn!(%reason, "cannot check Slack for an earlier copy; posting, a duplicate is possible");
                }
            }
        }
        // The last step before Slack: whatever the caller built, the text and
        // blocks are cut to what Slack accepts (a refusal is permanent, and
        // the message would be lost).
        let mut body = json!({
            "channel": msg.channel,
            "text": render::slack_cut(&msg.text, render::SLACK_TEXT_MAX),
            "metadata": {
                "event_type": METADATA_EVENT_TYPE,
                "event_payload": { "pagerd_key": msg.marker },
            },
        });
        if let Some(blocks) = &msg.blocks {
            body["blocks"] = within_limits(blocks.clone());
        }
        if let Some(ts) = &msg.thread_ts {
            body["thread_ts"] = json!(ts);
        }
        let what = format!("chat.postMessage to {}", msg.channel);
        let resp = self
            .http
            .post(self.method_url("chat.postMessage"))
            .bearer_auth(self.token.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(body.to_string())
            .send()
            .await;
        let v = self.check("chat.postMessage", &what, resp).await?;
        let channel = v["channel"].as_str().unwrap_or_default().to_string();
        let ts = v["ts"].as_str().unwrap_or_default().to_string();
        if channel.is_empty() || ts.is_empty() {
            // `ok:true` without a ts: the message was probably posted, but we
            // cannot thread under it. A retry will find it by its marker.
            return Err(DeliveryError::retry(format!(
                "Slack {what}: ok without channel/ts"
            )));
        }
        if let Some(name) = channel_name(&msg.channel) {
            self.cache_lock().insert(name.to_string(), channel.clone());
        }
        Ok(Posted { channel, ts })
    }

    /// Looks for a message carrying `msg.marker` where `msg` would go.
    async fn find_marker(&self, msg: &SlackMessage) -> Result<Option<Posted>, DeliveryError> {
        let Some(channel) = self.channel_id(&msg.channel).await? else {
            // Unknown name: the post itself will say channel_not_found.
            return Ok(None);
        };
        let mut cursor = String::new();
        let (method, pages) = if msg.thread_ts.is_some() {
            ("conversations.replies", MAX_REPLY_PAGES)
        } else {
            // Newest first: a retry's earlier copy is among the latest 100.
            ("conversations.history", 1)
        };
        let what = format!("{method} of {}", msg.channel);
        for _ in 0..pages {
            let mut query = vec![
                ("channel", channel.as_str()),
                ("limit", "100"),
                ("include_all_metadata", "true"),
            ];
            if let Some(ts) = &msg.thread_ts {
                query.push(("ts", ts.as_str()));
            }
            if !cursor.is_empty() {
                query.push(("cursor", cursor.as_str()));
            }
            let resp = self
                .http
                .get(self.method_url(method))
                .bearer_auth(self.token.expose())
                .query(&query)
                .send()
                .await;
            let v = self.check(method, &what, resp).await?;
            let messages = v["messages"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if let Some(ts) = messages
                .iter()
                .find(|m| carries_marker(m, &msg.marker))
                .and_then(|m| m["ts"].as_str())
            {
                return Ok(Some(Posted {
                    channel,
                    ts: ts.to_string(),
                }));
            }
            cursor = next_cursor(&v);
            if cursor.is_empty() {
                break;
            }
        }
        Ok(None)
    }

    /// The ID of `channel`: itself when it already is one, else from the
    /// cache or `conversations.list`. `None` when no visible channel has
    /// that name.
    async fn channel_id(&self, channel: &str) -> Result<Option<String>, DeliveryError> {
        let Some(name) = channel_name(channel) else {
            return Ok(Some(channel.to_string()));
        };
        if let Some(id) = self.cache_lock().get(name) {
            return Ok(Some(id.clone()));
        }
        let mut found = HashMap::new();
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("types", "public_channel,private_channel"),
                ("limit", LIST_PAGE),
            ];
            if !cursor.is_empty() {
                query.push(("cursor", cursor.as_str()));
            }
            let resp = self
                .http
                .get(self.method_url("conversations.list"))
                .bearer_auth(self.token.expose())
                .query(&query)
                .send()
                .await;
            let v = self
                .check("conversations.list", "conversations.list", resp)
                .await?;
            for c in v["channels"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if let (Some(n), Some(id)) = (c["name"].as_str(), c["id"].as_str()) {
                    found.insert(n.to_string(), id.to_string());
                }
            }
            cursor = next_cursor(&v);
            if cursor.is_empty() {
                break;
            }
        }
        let id = found.get(name).cloned();
        self.cache_lock().extend(found);
        Ok(id)
    }

    /// Reads a Web API answer: HTTP errors via [`json_response`], then the
    /// JSON `ok` flag.
    async fn check(
        &self,
        method: &str,
        what: &str,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Value, DeliveryError> {
        let v: Value = json_response(&format!("Slack {method}"), resp).await?;
        answer(what, v)
    }

    /// The user `user_id` (`U…`, `W…`) with `users.info`: their profile
    /// e-mail and real name (`real_name`, else `profile.real_name`, else the
    /// handle). `None` when Slack does not know the user (or cannot show it
    /// to the bot), and for bots, which have no e-mail.
    ///
    /// Needs the `users:read` and `users:read.email` scopes; without them
    /// the error is permanent and says so.
    pub async fn user_info(&self, user_id: &str) -> Result<Option<Person>, DeliveryError> {
        let resp = self
            .http
            .get(self.method_url("users.info"))
            .bearer_auth(self.token.expose())
            .query(&[("user", user_id)])
            .send()
            .await;
        let v: Value = json_response("Slack users.info", resp).await?;
        let what = format!("users.info of {user_id}");
        if v["ok"] != true {
            match v["error"].as_str() {
                Some("user_not_found" | "user_not_visible") => return Ok(None),
                Some("missing_scope") => {
                    let needed = v["needed"].as_str().unwrap_or("users:read");
                    return Err(DeliveryError::permanent(format!(
                        "Slack {what}: missing_scope (needs {needed}): the bot needs the \
                         users:read and users:read.email scopes to tell who acted"
                    )));
                }
                _ => {}
            }
        }
        let v = answer(&what, v)?;
        person_of(&what, &v["user"])
    }

    /// `auth.test`: whether the token is valid, whose it is, and (from the
    /// `x-oauth-scopes` header) what it may do. Read-only.
    pub async fn auth_test(&self) -> Result<AuthInfo, ProbeError> {
        let resp = self
            .http
            .get(self.method_url("auth.test"))
            .bearer_auth(self.token.expose())
            .send()
            .await;
        let (v, headers): (Value, _) = probe_response("Slack auth.test", resp).await?;
        let v = probe_answer("auth.test", v)?;
        let scopes = headers
            .get("x-oauth-scopes")
            .and_then(|h| h.to_str().ok())
            .map(|h| {
                h.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            });
        let field = |name: &str| v[name].as_str().unwrap_or_default().to_string();
        Ok(AuthInfo {
            team: field("team"),
            user: field("user"),
            user_id: field("user_id"),
            scopes,
        })
    }

    /// The channel `channel` (`#name`, `name` or an ID) as
    /// `conversations.info` describes it, names resolved through
    /// `conversations.list` as [`Slack::post`] does. [`ProbeError::NotFound`]
    /// when no channel visible to the bot has that name or ID. Read-only.
    pub async fn channel_info(&self, channel: &str) -> Result<ChannelInfo, ProbeError> {
        let not_found = || ProbeError::NotFound {
            reason: format!("Slack: no channel {channel} visible to the bot"),
        };
        let id = self
            .channel_id(channel)
            .await
            .map_err(ProbeError::Failed)?
            .ok_or_else(not_found)?;
        let what = format!("conversations.info of {channel}");
        let resp = self
            .http
            .get(self.method_url("conversations.info"))
            .bearer_auth(self.token.expose())
            .query(&[("channel", id.as_str())])
            .send()
            .await;
        let (v, _): (Value, _) = probe_response("Slack conversations.info", resp).await?;
        let v = probe_answer(&what, v).map_err(|e| match e {
            ProbeError::NotFound { .. } => not_found(),
            e => e,
        })?;
        let c = &v["channel"];
        Ok(ChannelInfo {
            id: c["id"].as_str().unwrap_or(&id).to_string(),
            name: c["name"]
                .as_str()
                .unwrap_or(channel.trim_start_matches('#'))
                .to_string(),
            is_member: c["is_member"] == true,
            is_archived: c["is_archived"] == true,
        })
    }

    fn method_url(&self, method: &str) -> String {
        format!("{}/{method}", self.api_url)
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A poisoned cache is still a valid map of names to IDs.
        self.channel_ids.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `blocks` with every text and value cut to Slack's limits: section text
/// (and fields) [`render::SLACK_SECTION_MAX`], header text
/// [`render::SLACK_HEADER_MAX`], button text and value
/// [`render::SLACK_BUTTON_TEXT_MAX`] / [`render::SLACK_BUTTON_VALUE_MAX`].
pub fn within_limits(mut blocks: Value) -> Value {
    // `pointer_mut`, not indexing: indexing would add missing keys.
    fn cut(v: &mut Value, pointer: &str, max: usize) {
        if let Some(v) = v.pointer_mut(pointer)
            && let Some(s) = v.as_str()
            && s.chars().count() > max
        {
            *v = Value::String(render::slack_cut(s, max));
        }
    }
    for block in blocks.as_array_mut().into_iter().flatten() {
        match block["type"].as_str() {
            Some("section") => {
                cut(block, "/text/text", render::SLACK_SECTION_MAX);
                if let Some(fields) = block.get_mut("fields").and_then(Value::as_array_mut) {
                    for f in fields {
                        cut(f, "/text", SLACK_FIELD_MAX);
                    }
                }
            }
            Some("header") => cut(block, "/text/text", render::SLACK_HEADER_MAX),
            Some("actions") => {
                if let Some(elements) = block.get_mut("elements").and_then(Value::as_array_mut) {
                    for e in elements {
                        cut(e, "/text/text", render::SLACK_BUTTON_TEXT_MAX);
                        cut(e, "/value", render::SLACK_BUTTON_VALUE_MAX);
                    }
                }
            }
            _ => {}
        }
    }
    blocks
}

/// Longest text of one section field.
const SLACK_FIELD_MAX: usize = 2_000;

/// The person a `users.info` user object describes: `None` for bots;
/// a permanent error for a human without a profile e-mail (Slack leaves it
/// out when the token lacks `users:read.email`).
fn person_of(what: &str, user: &Value) -> Result<Option<Person>, DeliveryError> {
    if user["is_bot"] == true || user["id"] == "USLACKBOT" {
        return Ok(None);
    }
    let Some(email) = text(&user["profile"]["email"]) else {
        // Slack leaves the field out when the token lacks users:read.email.
        return Err(DeliveryError::permanent(format!(
            "Slack {what}: no e-mail in the profile; the bot needs the \
             users:read and users:read.email scopes"
        )));
    };
    let name = text(&user["real_name"])
        .or_else(|| text(&user["profile"]["real_name"]))
        .or_else(|| text(&user["name"]))
        .unwrap_or(email);
    Ok(Some(Person::new(email, name)))
}

/// A non-blank string field, trimmed.
fn text(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// A Web API answer's `ok` flag: the answer itself, or the classified
/// `error` code.
fn answer(what: &str, v: Value) -> Result<Value, DeliveryError> {
    if v["ok"].as_bool() == Some(true) {
        return Ok(v);
    }
    let code = v["error"]
        .as_str()
        .unwrap_or("ok:false without an error code");
    let mut reason = format!("Slack {what}: {code}");
    if let Some(needed) = v["needed"].as_str() {
        reason.push_str(&format!(" (needs scope {needed})"));
    }
    Err(classify(code, reason))
}

/// [`answer`] for a read-only check: a refused token is
/// [`ProbeError::Rejected`], an unknown channel [`ProbeError::NotFound`].
fn probe_answer(what: &str, v: Value) -> Result<Value, ProbeError> {
    let code = v["error"].as_str().unwrap_or_default().to_string();
    answer(what, v).map_err(|e| {
        if REJECTED_CODES.contains(&code.as_str()) {
            ProbeError::Rejected {
                reason: e.to_string(),
            }
        } else if code == "channel_not_found" {
            ProbeError::NotFound {
                reason: e.to_string(),
            }
        } else {
            ProbeError::Failed(e)
        }
    })
}

/// Classifies a Slack `error` code: rate limits and Slack-side failures are
/// retryable, everything else needs a human.
pub fn classify(code: &str, reason: String) -> DeliveryError {
    if RETRYABLE_CODES.contains(&code) {
        DeliveryError::Retryable {
            reason,
            retry_after: None,
        }
    } else {
        DeliveryError::Permanent { reason }
    }
}

/// The name in `#general` / `general`; `None` for a channel ID.
fn channel_name(channel: &str) -> Option<&str> {
    if let Some(name) = channel.strip_prefix('#') {
        return Some(name);
    }
    // IDs are upper-case (C…, G… channels, D… DMs); names never are.
    let is_id = channel.len() >= 9
        && channel.starts_with(['C', 'G', 'D'])
        && channel
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if is_id { None } else { Some(channel) }
}

fn carries_marker(message: &Value, marker: &str) -> bool {
    let meta = &message["metadata"];
    meta["event_type"].as_str() == Some(METADATA_EVENT_TYPE)
        && meta["event_payload"]["pagerd_key"].as_str() == Some(marker)
}

fn next_cursor(v: &Value) -> String {
    v["response_metadata"]["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// The tests run against the stand-ins (the `demo` feature).
#[cfg(all(test, feature = "demo"))]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fakes::slack::{FakeSlack, FakeSlackOptions};
    use crate::fakes::{Fault, Timeline};
    use crate::vendors::{REQUEST_TIMEOUT, http_client};

    const TOKEN: &str = "xoxb-test-token";

    async fn setup() -> (FakeSlack, Slack) {
        let fake = FakeSlack::start(FakeSlackOptions {
            bot_token: TOKEN.into(),
            channels: vec![
                ("general".into(), "C0GENERAL1".into()),
                ("oncall".into(), "C0ONCALL01".into()),
            ],
            timeline: Timeline::default(),
            scopes: None,
        })
        .await
        .unwrap();
        let slack = Slack::new(fake.url(), Secret::new(TOKEN), http_client(REQUEST_TIMEOUT));
        (fake, slack)
    }

    fn msg(channel: &str, text: &str, marker: &str) -> SlackMessage {
        SlackMessage {
            channel: channel.into(),
            text: text.into(),
            blocks: None,
            thread_ts: None,
            marker: marker.into(),
        }
    }

    #[tokio::test]
    async fn post_can_be_spawned_and_debug_hides_the_token() {
        fn assert_send<T: Send>(_: &T) {}
        let (_fake, slack) = setup().await;
        let m = msg("#general", "x", "k");
        assert_send(&slack.post(&m, true));
        assert!(!format!("{slack:?}").contains(TOKEN));
    }

    #[test]
    fn names_and_ids_are_told_apart() {
        assert_eq!(channel_name("#general"), Some("general"));
        assert_eq!(channel_name("general"), Some("general"));
        assert_eq!(channel_name("C0GENERAL1"), None);
        assert_eq!(channel_name("D012AB3CD"), None);
        assert_eq!(channel_name("ops-2"), Some("ops-2"));
    }

    #[tokio::test]
    async fn posts_then_replies_in_thread() {
        let (fake, slack) = setup().await;
        let mut m = msg("#general", "P1: db down", "inc-1/slack");
        m.blocks = Some(json!([{"type":"section","text":{"type":"mrkdwn","text":"*P1* db down"}}]));
        let top = slack.post(&m, false).await.unwrap();
        assert_eq!(top.channel, "C0GENERAL1");

        let mut reply = msg("general", "acknowledged by alice", "inc-1/ack");
        reply.thread_ts = Some(top.ts.clone());
        let r = slack.post(&reply, false).await.unwrap();
        assert_ne!(r.ts, top.ts);

        let all = fake.messages();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].marker.as_deref(), Some("inc-1/slack"));
        assert!(all[0].blocks.is_some());
        assert_eq!(fake.top_level_in("general").len(), 1);
        let replies = fake.replies_in("#general");
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].thread_ts.as_deref(), Some(top.ts.as_str()));
    }

    #[tokio::test]
    async fn the_fake_tells_the_story() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let fake = FakeSlack::start(FakeSlackOptions {
            bot_token: TOKEN.into(),
            channels: vec![("general".into(), "C0GENERAL1".into())],
            timeline: Timeline::new(tx),
            scopes: None,
        })
        .await
        .unwrap();
        let slack = Slack::new(fake.url(), Secret::new(TOKEN), http_client(REQUEST_TIMEOUT));
        let top = slack
            .post(&msg("#general", "P1: db down", "k1"), false)
            .await
            .unwrap();
        let mut reply = msg("#general", "acked", "k2");
        reply.thread_ts = Some(top.ts.clone());
        slack.post(&reply, true).await.unwrap();
        let _ = slack.post(&msg("#random", "x", "k3"), false).await;
        drop(slack);
        drop(fake);
        let mut lines = Vec::new();
        while let Some(l) = rx.recv().await {
            lines.push(l);
        }
        assert_eq!(
            lines,
            [
                "Slack: message in #general: \"P1: db down\"".to_string(),
                format!("Slack: pagerd read the thread {} in #general", top.ts),
                format!(
                    "Slack: thread reply in #general under {}: \"acked\"",
                    top.ts
                ),
                "Slack: refused a message to #random: channel_not_found".to_string(),
            ]
        );
    }

    #[tokio::test]
    async fn oversized_text_and_blocks_are_cut_to_slack_limits() {
        let (fake, slack) = setup().await;
        let long = format!("{}&amp;{}", "x".repeat(2_996), "y".repeat(60_000));
        let mut m = msg("#general", &long, "k-long");
        m.blocks = Some(json!([
            { "type": "section", "text": { "type": "mrkdwn", "text": long } },
            { "type": "header", "text": { "type": "plain_text", "text": "h".repeat(500) } },
            { "type": "actions", "elements": [{ "type": "button",
                "text": { "type": "plain_text", "text": "b".repeat(100) },
                "action_id": "a", "value": "v".repeat(3_000) }] },
            { "type": "divider" },
        ]));
        slack.post(&m, false).await.unwrap();
        let sent = &fake.messages()[0];
        assert_eq!(sent.text.chars().count(), render::SLACK_TEXT_MAX);
        let blocks = sent.blocks.clone().unwrap();
        let section = blocks[0]["text"]["text"].as_str().unwrap();
        // Cut before the escape rather than through it.
        assert_eq!(section, format!("{}…", "x".repeat(2_996)));
        assert_eq!(
            blocks[1]["text"]["text"].as_str().unwrap().chars().count(),
            150
        );
        assert_eq!(blocks[3], json!({ "type": "divider" }), "no keys added");
    }

    #[tokio::test]
    async fn retry_finds_the_marker_instead_of_posting_twice() {
        let (fake, slack) = setup().await;
        let m = msg("#oncall", "P1: db down", "inc-2/slack");
        let first = slack.post(&m, false).await.unwrap();
        let again = slack.post(&m, true).await.unwrap();
        assert_eq!(again, first);
        assert_eq!(fake.messages().len(), 1);

        // Same for a thread reply.
        let mut reply = msg("#oncall", "escalated", "inc-2/escalate");
        reply.thread_ts = Some(first.ts.clone());
        let r1 = slack.post(&reply, false).await.unwrap();
        let r2 = slack.post(&reply, true).await.unwrap();
        assert_eq!(r1, r2);
        assert_eq!(fake.messages().len(), 2);

        // A retry whose first attempt never arrived posts.
        let fresh = msg("C0ONCALL01", "new", "inc-3/slack");
        slack.post(&fresh, true).await.unwrap();
        assert_eq!(fake.messages().len(), 3);
    }

    #[tokio::test]
    async fn channel_list_is_paged_and_cached() {
        let mut channels: Vec<(String, String)> = (0..250)
            .map(|i| (format!("chan-{i}"), format!("C{i:09}")))
            .collect();
        channels.push(("late".into(), "C0LATE0001".into()));
        let fake = FakeSlack::start(FakeSlackOptions {
            bot_token: TOKEN.into(),
            channels,
            timeline: Timeline::default(),
            scopes: None,
        })
        .await
        .unwrap();
        let slack = Slack::new(fake.url(), Secret::new(TOKEN), http_client(REQUEST_TIMEOUT));
        let m = msg("#late", "x", "k1");
        slack.post(&m, false).await.unwrap();
        assert_eq!(
            slack.channel_id("#late").await.unwrap().as_deref(),
            Some("C0LATE0001")
        );
        assert_eq!(
            slack.channel_id("chan-249").await.unwrap().as_deref(),
            Some("C000000249")
        );
        assert_eq!(slack.post(&m, true).await.unwrap().channel, "C0LATE0001");
        assert_eq!(fake.messages().len(), 1);
    }

    #[tokio::test]
    async fn auth_test_reports_the_scopes_and_channels_their_membership() {
        let fake = FakeSlack::start(FakeSlackOptions {
            bot_token: TOKEN.into(),
            channels: vec![
                ("general".into(), "C0GENERAL1".into()),
                ("oncall".into(), "C0ONCALL01".into()),
            ],
            timeline: Timeline::default(),
            scopes: Some(vec!["chat:write".into(), "channels:read".into()]),
        })
        .await
        .unwrap();
        let slack = Slack::new(fake.url(), Secret::new(TOKEN), http_client(REQUEST_TIMEOUT));
        let auth = slack.auth_test().await.unwrap();
        assert_eq!(auth.user, "pagerd");
        assert_eq!(
            auth.scopes,
            Some(vec!["chat:write".to_string(), "channels:read".to_string()])
        );
        fake.remove_bot_from("#oncall");
        let general = slack.channel_info("#general").await.unwrap();
        assert_eq!(
            (general.id.as_str(), general.is_member),
            ("C0GENERAL1", true)
        );
        let oncall = slack.channel_info("C0ONCALL01").await.unwrap();
        assert!(!oncall.is_member);
        assert!(matches!(
            slack.channel_info("#nope").await,
            Err(ProbeError::NotFound { .. })
        ));
        assert!(matches!(
            slack.channel_info("C0NOSUCH01").await,
            Err(ProbeError::NotFound { .. })
        ));
        // Posting where the bot is not: refused, as Slack does.
        let e = slack
            .post(&msg("#oncall", "x", "k"), false)
            .await
            .unwrap_err();
        assert!(e.to_string().ends_with("not_in_channel"), "{e}");

        let bad = Slack::new(
            fake.url(),
            Secret::new("xoxb-wrong"),
            http_client(REQUEST_TIMEOUT),
        );
        match bad.auth_test().await {
            Err(ProbeError::Rejected { reason }) => {
                assert!(reason.contains("invalid_auth"), "{reason}");
                assert!(!reason.contains("xoxb"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(fake.messages().is_empty());
        assert!(
            fake.requests()
                .iter()
                .any(|r| r == "GET /conversations.info")
        );
    }

    #[tokio::test]
    async fn conversations_info_needs_channels_read() {
        let fake = FakeSlack::start(FakeSlackOptions {
            bot_token: TOKEN.into(),
            channels: vec![("general".into(), "C0GENERAL1".into())],
            timeline: Timeline::default(),
            scopes: Some(vec!["chat:write".into()]),
        })
        .await
        .unwrap();
        let slack = Slack::new(fake.url(), Secret::new(TOKEN), http_client(REQUEST_TIMEOUT));
        match slack.channel_info("C0GENERAL1").await {
            Err(ProbeError::Failed(e)) => {
                assert!(e.to_string().contains("needs scope channels:read"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn errors_are_classified() {
        let (fake, slack) = setup().await;
        let e = slack
            .post(&msg("#nope", "x", "k"), false)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            DeliveryError::permanent("Slack chat.postMessage to #nope: channel_not_found")
        );

        let bad = Slack::new(
            fake.url(),
            Secret::new("xoxb-wrong"),
            http_client(REQUEST_TIMEOUT),
        );
        let e = bad
            .post(&msg("#general", "x", "k"), false)
            .await
            .unwrap_err();
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("invalid_auth"), "{e}");
        assert!(!e.to_string().contains("xoxb"), "{e}");

        fake.fail_next(1, "ratelimited");
        let e = slack
            .post(&msg("#general", "x", "k"), false)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            DeliveryError::retry("Slack chat.postMessage to #general: ratelimited")
        );

        fake.faults.push(
            Fault::Status {
                status: 429,
                retry_after: Some(3),
            },
            1,
        );
        let e = slack
            .post(&msg("#general", "x", "k"), false)
            .await
            .unwrap_err();
        match e {
            DeliveryError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)))
            }
            other => panic!("{other:?}"),
        }

        fake.faults.push(Fault::MalformedJson, 1);
        assert!(
            slack
                .post(&msg("#general", "x", "k"), false)
                .await
                .unwrap_err()
                .is_retryable()
        );

        let mut orphan = msg("#general", "x", "k");
        orphan.thread_ts = Some("123.000100".into());
        let e = slack.post(&orphan, false).await.unwrap_err();
        assert!(e.to_string().ends_with("thread_not_found"), "{e}");
        assert_eq!(fake.messages().len(), 0);
    }
}

// The tests run against the stand-ins (the `demo` feature).
#[cfg(all(test, feature = "demo"))]
mod user_tests;

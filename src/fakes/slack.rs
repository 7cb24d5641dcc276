//! A fake Slack workspace: the Web API methods pagerd calls, plus helpers
//! that play Slack towards pagerd (signed slash commands and button clicks).
//!
//! Implemented methods, with Slack's checks and answers (HTTP 200 with
//! `{"ok":false,"error":…}` for every API-level error):
//! - `chat.postMessage` — JSON or form body, bot token as `Authorization:
//!   Bearer` (or a `token` form field), channel by `#name`, `name` or ID,
//!   `text` or `blocks` required, `thread_ts` must name a top-level message
//!   of that channel; `metadata` is stored. `text` over 40 000 characters
//!   is refused with `msg_too_long`; blocks over Slack's limits (more than
//!   50, a section text over 3 000, a header over 150, a button text over
//!   75 or value over 2 000) with `invalid_blocks`.
//! - `conversations.list`, `conversations.history`, `conversations.replies`
//!   — GET query or POST form, cursor paging; `metadata` is only returned
//!   with `include_all_metadata=true`, as Slack does.
//! - `users.info` — GET query or POST form `user=`; the users a test seeds
//!   with [`FakeSlack::add_user`] plus the bot itself (see [`users`]).
//! - `auth.test` — who the token is, with the granted scopes in the
//!   `x-oauth-scopes` response header, as Slack sends them.
//! - `conversations.info` — a channel by ID (`channel_not_found` for a
//!   name), with `is_member`; needs `channels:read`. The bot is a member of
//!   every channel until [`FakeSlack::remove_bot_from`]; then
//!   `chat.postMessage` there answers `not_in_channel`.
//!
//! Every request is recorded ([`FakeSlack::requests`]).

#![allow(
    clippy::result_large_err,
    reason = "helpers of axum handlers return the early answer as a Response; a loopback test fake"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::sign::slack as slack_sign;
use super::{Faults, RequestLog, Server, Timeline};

pub mod users;

/// The workspace the fake pretends to be.
pub const TEAM_ID: &str = "T0PAGERD01";
/// Its domain.
pub const TEAM_DOMAIN: &str = "pagerd-demo";
/// The `user` of messages the bot posts.
pub const BOT_USER_ID: &str = "U0PAGERBOT";
/// The app's ID in interaction payloads.
pub const APP_ID: &str = "A0PAGERD01";
/// A `response_url` that goes nowhere: port 9 on loopback (discard), so a
/// daemon that calls it under test fails fast and nothing leaves the machine.
pub const RESPONSE_URL: &str = "http://127.0.0.1:9/slack-response-url";

/// The scopes `auth.test` reports when [`FakeSlackOptions::scopes`] is
/// `None` (every scope pagerd could want).
pub const ALL_SCOPES: &[&str] = &[
    "chat:write",
    "channels:read",
    "channels:history",
    "groups:read",
    "groups:history",
    "users:read",
    "users:read.email",
    "commands",
];

/// Biggest `text` Slack accepts (it truncates past 40 000, refuses beyond).
const MAX_TEXT: usize = 40_000;
/// Most blocks in one message.
const MAX_BLOCKS: usize = 50;

/// Whether one block keeps Slack's Block Kit limits on its texts.
fn block_ok(block: &Value) -> bool {
    let within = |v: Option<&Value>, max: usize| {
        v.and_then(Value::as_str)
            .is_none_or(|s| s.chars().count() <= max)
    };
    match block["type"].as_str() {
        Some("section") => {
            within(block.pointer("/text/text"), 3_000)
                && block["fields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|f| within(f.get("text"), 2_000))
        }
        Some("header") => within(block.pointer("/text/text"), 150),
        Some("actions") => block["elements"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| within(e.pointer("/text/text"), 75) && within(e.get("value"), 2_000)),
        _ => true,
    }
}

/// How to start a [`FakeSlack`].
#[derive(Clone, Default)]
pub struct FakeSlackOptions {
    /// The bot token (`xoxb-…`) requests must carry.
    pub bot_token: String,
    /// The channels: `(name without #, ID)`.
    pub channels: Vec<(String, String)>,
    /// Where to say what happened.
    pub timeline: Timeline,
    /// The scopes the bot token was granted; `None` grants every scope.
    /// `users.info` answers `missing_scope` without `users:read` or
    /// `users:read.email`.
    pub scopes: Option<Vec<String>>,
}

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackRecord {
    /// The channel ID.
    pub channel_id: String,
    /// The channel name, without `#`.
    pub channel_name: String,
    /// `text` as sent (may be empty when only blocks were sent).
    pub text: String,
    /// `blocks` as sent.
    pub blocks: Option<Value>,
    /// The parent's ts, for a thread reply.
    pub thread_ts: Option<String>,
    /// The ts the fake assigned.
    pub ts: String,
    /// `metadata.event_payload.pagerd_key`, when present.
    pub marker: Option<String>,
}

struct Stored {
    record: SlackRecord,
    metadata: Option<Value>,
}

struct Inner {
    channels: Vec<(String, String)>,
    messages: Vec<Stored>,
    next_ts: u64,
    fail_next: Vec<String>,
    users: Vec<users::SeededUser>,
    user_lookups: usize,
    /// IDs of channels the bot is not a member of.
    not_member: Vec<String>,
}

struct Shared {
    token: String,
    scopes: Option<Vec<String>>,
    timeline: Timeline,
    faults: Faults,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake Slack; stops when dropped.
pub struct FakeSlack {
    server: Server,
    shared: Arc<Shared>,
    /// Faults to inject into the next requests (any method).
    pub faults: Faults,
    /// Every request received, as `METHOD /method.name`.
    pub requests: RequestLog,
}

impl FakeSlack {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start(opts: FakeSlackOptions) -> std::io::Result<FakeSlack> {
        let faults = Faults::default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1_700_000_000);
        let shared = Arc::new(Shared {
            token: opts.bot_token,
            scopes: opts.scopes,
            timeline: opts.timeline,
            faults: faults.clone(),
            inner: Mutex::new(Inner {
                channels: opts.channels,
                messages: Vec::new(),
                next_ts: now,
                fail_next: Vec::new(),
                users: Vec::new(),
                user_lookups: 0,
                not_member: Vec::new(),
            }),
        });
        let router = Router::new()
            .route("/chat.postMessage", post(post_message))
            .route(
                "/conversations.list",
                get(conversations_list).post(conversations_list),
            )
            .route(
                "/conversations.history",
                get(conversations_history).post(conversations_history),
            )
            .route(
                "/conversations.replies",
                get(conversations_replies).post(conversations_replies),
            )
            .route("/users.info", get(users::info).post(users::info))
            .route("/auth.test", get(auth_test).post(auth_test))
            .route(
                "/conversations.info",
                get(conversations_info).post(conversations_info),
            )
            .with_state(shared.clone());
        let requests = RequestLog::default();
        let server = Server::spawn(requests.record(router)).await?;
        Ok(FakeSlack {
            server,
            shared,
            faults,
            requests,
        })
    }

    /// `http://127.0.0.1:PORT`: the Web API base URL (`{url}/chat.postMessage`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr
    }

    /// Every message accepted, in order.
    pub fn messages(&self) -> Vec<SlackRecord> {
        self.shared
            .lock()
            .messages
            .iter()
            .map(|m| m.record.clone())
            .collect()
    }

    /// Top-level messages of a channel (`general` or `#general`).
    pub fn top_level_in(&self, channel_name: &str) -> Vec<SlackRecord> {
        let name = channel_name.trim_start_matches('#');
        self.messages()
            .into_iter()
            .filter(|m| m.channel_name == name && m.thread_ts.is_none())
            .collect()
    }

    /// Thread replies in a channel (`general` or `#general`).
    pub fn replies_in(&self, channel_name: &str) -> Vec<SlackRecord> {
        let name = channel_name.trim_start_matches('#');
        self.messages()
            .into_iter()
            .filter(|m| m.channel_name == name && m.thread_ts.is_some())
            .collect()
    }

    /// Takes the bot out of a channel (`general` or `#general`):
    /// `conversations.info` and `.list` say `is_member: false`, and
    /// `chat.postMessage` there answers `not_in_channel`.
    pub fn remove_bot_from(&self, channel_name: &str) {
        let mut inner = self.shared.lock();
        if let Some((_, id)) = find_channel(&inner, channel_name) {
            inner.not_member.push(id);
        }
    }

    /// Every Web API method called, in order (`GET /auth.test`, …).
    pub fn requests(&self) -> Vec<String> {
        self.requests.all()
    }

    /// Answers the next `n` `chat.postMessage` calls with HTTP 200
    /// `{"ok":false,"error":error}` (e.g. `ratelimited`, `is_archived`)
    /// without posting.
    pub fn fail_next(&self, n: usize, error: &str) {
        let mut inner = self.shared.lock();
        inner
            .fail_next
            .extend(std::iter::repeat_n(error.to_string(), n));
    }
}

// ---------------------------------------------------------------- handlers

fn ok(mut v: Value) -> Response {
    v["ok"] = json!(true);
    axum::Json(v).into_response()
}

fn slack_error(code: &str) -> Response {
    axum::Json(json!({ "ok": false, "error": code })).into_response()
}

/// The arguments of a call: the query string, then a form or JSON body.
/// Values of a JSON body stay JSON; form values are strings.
fn arguments(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<HashMap<String, Value>, &'static str> {
    let mut args: HashMap<String, Value> = HashMap::new();
    for (k, v) in form_decode(query.unwrap_or_default()) {
        args.insert(k, Value::String(v));
    }
    if body.is_empty() {
        return Ok(args);
    }
    let ctype = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ctype.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => args.extend(map),
            Ok(_) => return Err("json_not_object"),
            Err(_) => return Err("invalid_json"),
        }
    } else if ctype.starts_with("application/x-www-form-urlencoded") {
        let text = std::str::from_utf8(body).map_err(|_| "invalid_charset")?;
        for (k, v) in form_decode(text) {
            args.insert(k, Value::String(v));
        }
    } else if ctype.is_empty() {
        return Err("missing_post_type");
    } else {
        return Err("invalid_post_type");
    }
    Ok(args)
}

/// Checks the bot token: `Authorization: Bearer` or a `token` argument.
fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    args: &HashMap<String, Value>,
) -> Result<(), &'static str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token = bearer.or_else(|| args.get("token").and_then(Value::as_str));
    match token {
        None | Some("") => Err("not_authed"),
        Some(t) if t == shared.token => Ok(()),
        Some(_) => Err("invalid_auth"),
    }
}

fn str_arg<'a>(args: &'a HashMap<String, Value>, name: &str) -> Option<&'a str> {
    args.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn bool_arg(args: &HashMap<String, Value>, name: &str) -> bool {
    match args.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

fn usize_arg(args: &HashMap<String, Value>, name: &str, default: usize) -> usize {
    match args.get(name) {
        Some(Value::Number(n)) => n.as_u64().map(|n| n as usize).unwrap_or(default),
        Some(Value::String(s)) => s.parse().unwrap_or(default),
        _ => default,
    }
    .clamp(1, 1000)
}

/// A JSON-valued argument: JSON bodies carry it as JSON, forms as a string
/// holding JSON.
fn json_arg(args: &HashMap<String, Value>, name: &str) -> Result<Option<Value>, ()> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
        Some(v) => Ok(Some(v.clone())),
    }
}

/// Finds a channel by `#name`, `name` or ID: `(name, id)`.
fn find_channel(inner: &Inner, channel: &str) -> Option<(String, String)> {
    let name = channel.trim_start_matches('#');
    inner
        .channels
        .iter()
        .find(|(n, id)| id == channel || n == name)
        .cloned()
}

fn message_json(m: &Stored, with_metadata: bool, reply_count: usize) -> Value {
    let r = &m.record;
    let mut v = json!({
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": "B0PAGERBOT",
        "app_id": APP_ID,
        "team": TEAM_ID,
        "text": r.text,
        "ts": r.ts,
    });
    if let Some(b) = &r.blocks {
        v["blocks"] = b.clone();
    }
    if let Some(t) = &r.thread_ts {
        v["thread_ts"] = json!(t);
        v["parent_user_id"] = json!(BOT_USER_ID);
    } else if reply_count > 0 {
        v["thread_ts"] = json!(r.ts);
        v["reply_count"] = json!(reply_count);
    }
    if with_metadata && let Some(md) = &m.metadata {
        v["metadata"] = md.clone();
    }
    v
}

fn quote(text: &str) -> String {
    let one_line = text.replace('\n', " ");
    let mut short: String = one_line.chars().take(100).collect();
    if short.len() < one_line.len() {
        short.push('…');
    }
    format!("\"{short}\"")
}

async fn post_message(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if let Some(r) = shared.faults.intercept().await {
        return r;
    }
    let args = match arguments(&headers, query.as_deref(), &body) {
        Ok(a) => a,
        Err(code) => return slack_error(code),
    };
    if let Err(code) = authorize(&shared, &headers, &args) {
        shared
            .timeline
            .say(format!("Slack: refused chat.postMessage: {code}"));
        return slack_error(code);
    }
    let channel = str_arg(&args, "channel").unwrap_or_default().to_string();
    let said = |what: &str| {
        shared
            .timeline
            .say(format!("Slack: refused a message to {channel}: {what}"))
    };
    let mut inner = shared.lock();
    if !inner.fail_next.is_empty() {
        let code = inner.fail_next.remove(0);
        drop(inner);
        said(&format!("{code} (injected)"));
        return slack_error(&code);
    }
    let Some((name, id)) = find_channel(&inner, &channel) else {
        drop(inner);
        said("channel_not_found");
        return slack_error("channel_not_found");
    };
    if inner.not_member.contains(&id) {
        drop(inner);
        said("not_in_channel");
        return slack_error("not_in_channel");
    }
    let text = str_arg(&args, "text").unwrap_or_default().to_string();
    let blocks = match json_arg(&args, "blocks") {
        Ok(Some(b))
            if b.as_array().is_some_and(|a| {
                a.len() <= MAX_BLOCKS && a.iter().all(|x| x["type"].is_string() && block_ok(x))
            }) =>
        {
            Some(b)
        }
        Ok(None) => None,
        _ => {
            drop(inner);
            said("invalid_blocks");
            return slack_error("invalid_blocks");
        }
    };
    if text.is_empty()
        && blocks
            .as_ref()
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
    {
        drop(inner);
        said("no_text");
        return slack_error("no_text");
    }
    if text.chars().count() > MAX_TEXT {
        drop(inner);
        said("msg_too_long");
        return slack_error("msg_too_long");
    }
    let thread_ts = str_arg(&args, "thread_ts").map(str::to_string);
    if let Some(parent) = &thread_ts {
        let exists = inner.messages.iter().any(|m| {
            m.record.channel_id == id && &m.record.ts == parent && m.record.thread_ts.is_none()
        });
        if !exists {
            drop(inner);
            said("thread_not_found");
            return slack_error("thread_not_found");
        }
    }
    let metadata = match json_arg(&args, "metadata") {
        Ok(md) => md,
        Err(()) => {
            drop(inner);
            said("invalid_metadata_format");
            return slack_error("invalid_metadata_format");
        }
    };
    if let Some(md) = &metadata
        && (!md["event_type"].is_string() || !md["event_payload"].is_object())
    {
        drop(inner);
        said("invalid_metadata_format");
        return slack_error("invalid_metadata_format");
    }
    let marker = metadata
        .as_ref()
        .and_then(|m| m["event_payload"]["pagerd_key"].as_str())
        .map(str::to_string);
    let ts = format!("{}.000100", inner.next_ts);
    inner.next_ts += 1;
    let stored = Stored {
        record: SlackRecord {
            channel_id: id.clone(),
            channel_name: name.clone(),
            text: text.clone(),
            blocks,
            thread_ts: thread_ts.clone(),
            ts: ts.clone(),
            marker,
        },
        metadata,
    };
    let message = message_json(&stored, true, 0);
    inner.messages.push(stored);
    drop(inner);
    let shown = if text.is_empty() {
        "(blocks only)".to_string()
    } else {
        quote(&text)
    };
    match &thread_ts {
        Some(parent) => shared.timeline.say(format!(
            "Slack: thread reply in #{name} under {parent}: {shown}"
        )),
        None => shared
            .timeline
            .say(format!("Slack: message in #{name}: {shown}")),
    }
    ok(json!({ "channel": id, "ts": ts, "message": message }))
}

/// Parses a `cursor` the fake issued (`next:<offset>`).
fn cursor_offset(args: &HashMap<String, Value>) -> Result<usize, ()> {
    match str_arg(args, "cursor") {
        None => Ok(0),
        Some(c) => c
            .strip_prefix("next:")
            .and_then(|n| n.parse().ok())
            .ok_or(()),
    }
}

/// One page of `items` from the request's cursor, and the next cursor.
fn page<T: Clone>(
    items: &[T],
    args: &HashMap<String, Value>,
    default_limit: usize,
) -> Result<(Vec<T>, String), Response> {
    let offset = cursor_offset(args).map_err(|()| slack_error("invalid_cursor"))?;
    let limit = usize_arg(args, "limit", default_limit);
    let end = (offset + limit).min(items.len());
    let slice = items.get(offset..end).unwrap_or_default().to_vec();
    let next = if end < items.len() {
        format!("next:{end}")
    } else {
        String::new()
    };
    Ok((slice, next))
}

async fn read_call(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<HashMap<String, Value>, Response> {
    if let Some(r) = shared.faults.intercept().await {
        return Err(r);
    }
    let args = arguments(headers, query, body).map_err(slack_error)?;
    authorize(shared, headers, &args).map_err(slack_error)?;
    Ok(args)
}

async fn conversations_list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let args = match read_call(&shared, &headers, query.as_deref(), &body).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let types = str_arg(&args, "types").unwrap_or("public_channel");
    if types
        .split(',')
        .any(|t| !["public_channel", "private_channel", "mpim", "im"].contains(&t.trim()))
    {
        return slack_error("invalid_types");
    }
    let channels: Vec<Value> = {
        let inner = shared.lock();
        inner
            .channels
            .iter()
            .map(|(name, id)| channel_json(name, id, !inner.not_member.contains(id)))
            .collect()
    };
    match page(&channels, &args, 100) {
        Ok((channels, next)) => {
            ok(json!({ "channels": channels, "response_metadata": { "next_cursor": next } }))
        }
        Err(r) => r,
    }
}

fn channel_json(name: &str, id: &str, is_member: bool) -> Value {
    json!({
        "id": id, "name": name, "is_channel": true, "is_private": false,
        "is_archived": false, "is_member": is_member, "context_team_id": TEAM_ID,
    })
}

/// The scopes granted to the token, as `x-oauth-scopes` lists them.
fn granted_scopes(shared: &Shared) -> String {
    match &shared.scopes {
        Some(s) => s.join(","),
        None => ALL_SCOPES.join(","),
    }
}

/// `auth.test`: the token's workspace and bot user; its scopes in the
/// `x-oauth-scopes` header.
async fn auth_test(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(r) = read_call(&shared, &headers, query.as_deref(), &body).await {
        return r;
    }
    let mut resp = ok(json!({
        "url": format!("https://{TEAM_DOMAIN}.slack.com/"),
        "team": "pagerd demo",
        "user": "pagerd",
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": "B0PAGERBOT",
        "is_enterprise_install": false,
    }));
    if let Ok(v) = axum::http::HeaderValue::from_str(&granted_scopes(&shared)) {
        resp.headers_mut().insert("x-oauth-scopes", v);
    }
    resp
}

/// `conversations.info`: a channel by ID.
async fn conversations_info(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let args = match read_call(&shared, &headers, query.as_deref(), &body).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Some(r) = users::missing_scope(&shared, "channels:read") {
        return r;
    }
    let (id, name) = match channel_by_id(&shared, &args) {
        Ok(found) => found,
        Err(r) => return r,
    };
    let is_member = !shared.lock().not_member.contains(&id);
    ok(json!({ "channel": channel_json(&name, &id, is_member) }))
}

/// The channel of a history/replies call: Slack wants the ID here.
/// `(id, name)`.
fn channel_by_id(
    shared: &Shared,
    args: &HashMap<String, Value>,
) -> Result<(String, String), Response> {
    let id = str_arg(args, "channel").unwrap_or_default();
    let inner = shared.lock();
    inner
        .channels
        .iter()
        .find(|(_, i)| i == id)
        .map(|(n, i)| (i.clone(), n.clone()))
        .ok_or_else(|| slack_error("channel_not_found"))
}

async fn conversations_history(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let args = match read_call(&shared, &headers, query.as_deref(), &body).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (id, name) = match channel_by_id(&shared, &args) {
        Ok(found) => found,
        Err(r) => return r,
    };
    let with_md = bool_arg(&args, "include_all_metadata");
    let messages: Vec<Value> = {
        let inner = shared.lock();
        let in_channel: Vec<&Stored> = inner
            .messages
            .iter()
            .filter(|m| m.record.channel_id == id)
            .collect();
        // Newest first, top-level only (replies live in conversations.replies).
        in_channel
            .iter()
            .rev()
            .filter(|m| m.record.thread_ts.is_none())
            .map(|m| {
                let replies = in_channel
                    .iter()
                    .filter(|r| r.record.thread_ts.as_deref() == Some(&m.record.ts))
                    .count();
                message_json(m, with_md, replies)
            })
            .collect()
    };
    shared
        .timeline
        .say(format!("Slack: pagerd read the history of #{name}"));
    match page(&messages, &args, 100) {
        Ok((messages, next)) => ok(json!({
            "messages": messages,
            "has_more": !next.is_empty(),
            "pin_count": 0,
            "channel_actions_ts": null,
            "channel_actions_count": 0,
            "response_metadata": { "next_cursor": next },
        })),
        Err(r) => r,
    }
}

async fn conversations_replies(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let args = match read_call(&shared, &headers, query.as_deref(), &body).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (id, name) = match channel_by_id(&shared, &args) {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Some(ts) = str_arg(&args, "ts").map(str::to_string) else {
        return slack_error("invalid_arguments");
    };
    let with_md = bool_arg(&args, "include_all_metadata");
    let messages: Option<Vec<Value>> = {
        let inner = shared.lock();
        let in_channel: Vec<&Stored> = inner
            .messages
            .iter()
            .filter(|m| m.record.channel_id == id)
            .collect();
        in_channel
            .iter()
            .find(|m| m.record.ts == ts && m.record.thread_ts.is_none())
            .map(|parent| {
                let replies: Vec<&&Stored> = in_channel
                    .iter()
                    .filter(|r| r.record.thread_ts.as_deref() == Some(ts.as_str()))
                    .collect();
                // The parent first, then the replies oldest first, as Slack does.
                std::iter::once(message_json(parent, with_md, replies.len()))
                    .chain(replies.iter().map(|r| message_json(r, with_md, 0)))
                    .collect()
            })
    };
    let Some(messages) = messages else {
        return slack_error("thread_not_found");
    };
    shared
        .timeline
        .say(format!("Slack: pagerd read the thread {ts} in #{name}"));
    match page(&messages, &args, 100) {
        Ok((messages, next)) => ok(json!({
            "messages": messages,
            "has_more": !next.is_empty(),
            "response_metadata": { "next_cursor": next },
        })),
        Err(r) => r,
    }
}

// ------------------------------------------------- playing Slack to pagerd

/// The body Slack POSTs to an app's interactivity URL when someone clicks a
/// button: `payload=<url-encoded JSON>` of a `block_actions` interaction.
/// The channel is the fake's `#general` (`C0GENERAL1`); `response_url`
/// points at a dead loopback port ([`RESPONSE_URL`]).
pub fn block_action_body(action_id: &str, value: &str, user_id: &str, user_name: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let message_ts = format!("{:.6}", now - 60.0);
    let payload = json!({
        "type": "block_actions",
        "user": { "id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID },
        "api_app_id": APP_ID,
        "token": "fake-verification-token",
        "container": { "type": "message", "message_ts": message_ts, "channel_id": "C0GENERAL1", "is_ephemeral": false },
        "trigger_id": format!("{}.{}.fake", now as u64, 4242),
        "team": { "id": TEAM_ID, "domain": TEAM_DOMAIN },
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": { "id": "C0GENERAL1", "name": "general" },
        "message": {
            "type": "message", "user": BOT_USER_ID, "bot_id": "B0PAGERBOT",
            "ts": message_ts, "text": "pagerd page", "team": TEAM_ID,
        },
        "state": { "values": {} },
        "response_url": RESPONSE_URL,
        "actions": [{
            "action_id": action_id,
            "block_id": "pagerd_actions",
            "text": { "type": "plain_text", "text": action_id, "emoji": true },
            "value": value,
            "type": "button",
            "action_ts": format!("{now:.6}"),
        }],
    });
    form_encode(&[("payload", &payload.to_string())])
}

/// The body Slack POSTs for a slash command (`/page`, `/pagerd` …): the
/// form fields Slack documents, in its order.
pub fn slash_command_body(command: &str, text: &str, user_id: &str, user_name: &str) -> String {
    form_encode(&[
        ("token", "fake-verification-token"),
        ("team_id", TEAM_ID),
        ("team_domain", TEAM_DOMAIN),
        ("channel_id", "C0GENERAL1"),
        ("channel_name", "general"),
        ("user_id", user_id),
        ("user_name", user_name),
        ("command", command),
        ("text", text),
        ("api_app_id", APP_ID),
        ("is_enterprise_install", "false"),
        ("response_url", RESPONSE_URL),
        ("trigger_id", "1234567890.4242.fake"),
    ])
}

/// POSTs `body` to `url` as Slack would: form-encoded, with
/// `X-Slack-Request-Timestamp` and a v0 `X-Slack-Signature` made with
/// `signing_secret`. Returns the HTTP status.
pub async fn send_signed(
    url: &str,
    signing_secret: &str,
    body: &str,
    timestamp: i64,
) -> Result<u16, String> {
    let ts = timestamp.to_string();
    let signature = slack_sign(signing_secret, &ts, body.as_bytes());
    let client = crate::vendors::http_client(crate::vendors::REQUEST_TIMEOUT);
    let resp = client
        .post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header("X-Slack-Request-Timestamp", ts)
        .header("X-Slack-Signature", signature)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("POST {url} failed: {e}"))?;
    Ok(resp.status().as_u16())
}

// ------------------------------------------------------ form url-encoding

/// `application/x-www-form-urlencoded` serialisation (space as `+`).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(k, &mut out);
        out.push('=');
        enc(v, &mut out);
    }
    out
}

/// Parses an `application/x-www-form-urlencoded` string (a body or a query).
pub fn form_decode(s: &str) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    match std::str::from_utf8(&bytes[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_round_trip() {
        let body = form_encode(&[("payload", "{\"a\":\"b c&d=é%\"}"), ("x", "")]);
        assert_eq!(
            form_decode(&body),
            vec![
                ("payload".to_string(), "{\"a\":\"b c&d=é%\"}".to_string()),
                ("x".to_string(), String::new())
            ]
        );
        assert_eq!(
            form_decode("a=%2"),
            vec![("a".to_string(), "%2".to_string())]
        );
    }

    #[test]
    fn block_action_payload_is_a_block_actions_interaction() {
        let body = block_action_body("ack", "inc-7", "U123", "alice");
        let (k, v) = form_decode(&body).remove(0);
        assert_eq!(k, "payload");
        let p: Value = serde_json::from_str(&v).unwrap();
        assert_eq!(p["type"], "block_actions");
        assert_eq!(p["user"]["id"], "U123");
        assert_eq!(p["user"]["username"], "alice");
        assert_eq!(p["actions"][0]["action_id"], "ack");
        assert_eq!(p["actions"][0]["value"], "inc-7");
        assert_eq!(p["actions"][0]["type"], "button");
        let fields: HashMap<String, String> =
            form_decode(&slash_command_body("/page", "db is down", "U1", "bob"))
                .into_iter()
                .collect();
        assert_eq!(fields["command"], "/page");
        assert_eq!(fields["text"], "db is down");
        assert_eq!(fields["user_name"], "bob");
    }

    #[tokio::test]
    async fn post_message_checks_like_slack() {
        let fake = FakeSlack::start(FakeSlackOptions {
            bot_token: "xoxb-1".into(),
            channels: vec![("general".into(), "C0GENERAL1".into())],
            timeline: Timeline::default(),
            scopes: None,
        })
        .await
        .unwrap();
        let http = crate::vendors::http_client(crate::vendors::REQUEST_TIMEOUT);
        let url = format!("{}/chat.postMessage", fake.url());
        let call = |req: reqwest::RequestBuilder| async move {
            req.send().await.unwrap().json::<Value>().await.unwrap()
        };

        let v = call(
            http.post(&url)
                .json(&json!({"channel":"#general","text":"hi"})),
        )
        .await;
        assert_eq!(v["error"], "not_authed");
        let v = call(
            http.post(&url)
                .bearer_auth("xoxb-2")
                .json(&json!({"channel":"#general","text":"hi"})),
        )
        .await;
        assert_eq!(v["error"], "invalid_auth");
        let v = call(
            http.post(&url)
                .bearer_auth("xoxb-1")
                .json(&json!({"channel":"general"})),
        )
        .await;
        assert_eq!(v["error"], "no_text");
        // Form-encoded, token as a field, blocks as a JSON string.
        let form = form_encode(&[
            ("token", "xoxb-1"),
            ("channel", "C0GENERAL1"),
            ("blocks", "[{\"type\":\"divider\"}]"),
        ]);
        let v = call(
            http.post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["channel"], "C0GENERAL1");
        assert!(v["ts"].as_str().unwrap().ends_with(".000100"));

        // Metadata only with include_all_metadata.
        let v = call(http.post(&url).bearer_auth("xoxb-1").json(&json!({
            "channel": "general", "text": "m",
            "metadata": {"event_type": "pagerd_effect", "event_payload": {"pagerd_key": "k"}},
        })))
        .await;
        assert_eq!(v["ok"], true);
        let hist = format!("{}/conversations.history", fake.url());
        let v = call(
            http.get(&hist)
                .bearer_auth("xoxb-1")
                .query(&[("channel", "C0GENERAL1")]),
        )
        .await;
        assert_eq!(v["messages"].as_array().unwrap().len(), 2);
        assert!(v["messages"][0].get("metadata").is_none());
        let v = call(
            http.get(&hist)
                .bearer_auth("xoxb-1")
                .query(&[("channel", "C0GENERAL1"), ("include_all_metadata", "true")]),
        )
        .await;
        assert_eq!(
            v["messages"][0]["metadata"]["event_payload"]["pagerd_key"],
            "k"
        );
        assert_eq!(fake.messages()[1].marker.as_deref(), Some("k"));

        // Slack's length limits.
        let post = |body: Value| call(http.post(&url).bearer_auth("xoxb-1").json(&body));
        let v = post(json!({"channel": "general", "text": "x".repeat(40_001)})).await;
        assert_eq!(v["error"], "msg_too_long");
        let v = post(json!({"channel": "general", "text": "é".repeat(40_000)})).await;
        assert_eq!(v["ok"], true, "40 000 characters (not bytes) are fine");
        let section = |n: usize| json!([{"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(n)}}]);
        let v = post(json!({"channel": "general", "text": "t", "blocks": section(3_001)})).await;
        assert_eq!(v["error"], "invalid_blocks");
        let v = post(json!({"channel": "general", "text": "t", "blocks": section(3_000)})).await;
        assert_eq!(v["ok"], true);
        let header =
            json!([{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]);
        let v = post(json!({"channel": "general", "text": "t", "blocks": header})).await;
        assert_eq!(v["error"], "invalid_blocks");
        let button = json!([{"type": "actions", "elements": [{"type": "button",
            "text": {"type": "plain_text", "text": "Ack"}, "value": "v".repeat(2_001)}]}]);
        let v = post(json!({"channel": "general", "text": "t", "blocks": button})).await;
        assert_eq!(v["error"], "invalid_blocks");
    }
}

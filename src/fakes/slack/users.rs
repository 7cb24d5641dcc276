//! The fake Slack's `users.info`: the users a test seeds, plus the bot.
//!
//! Checks as Slack does: the bot token (like every method), then the token's
//! scopes ([`FakeSlackOptions::scopes`](super::FakeSlackOptions::scopes)):
//! `users:read` for the method and, by this fake's stricter choice,
//! `users:read.email` too (real Slack leaves `profile.email` out instead;
//! pagerd treats both alike). Unknown or missing `user` → `user_not_found`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{BOT_USER_ID, FakeSlack, Shared, TEAM_ID, ok, read_call, slack_error, str_arg};

/// A user seeded with [`FakeSlack::add_user`].
#[derive(Debug, Clone)]
pub(super) struct SeededUser {
    id: String,
    real_name: String,
    email: String,
}

impl FakeSlack {
    /// Adds a member of the workspace that `users.info` will describe.
    pub fn add_user(&self, id: &str, real_name: &str, email: &str) {
        self.shared.lock().users.push(SeededUser {
            id: id.to_string(),
            real_name: real_name.to_string(),
            email: email.to_string(),
        });
    }

    /// How many `users.info` calls passed the token check.
    pub fn user_lookups(&self) -> usize {
        self.shared.lock().user_lookups
    }
}

pub(super) fn missing_scope(shared: &Shared, needed: &str) -> Option<Response> {
    let granted = shared.scopes.as_ref()?;
    if granted.iter().any(|s| s == needed) {
        return None;
    }
    let body = json!({
        "ok": false,
        "error": "missing_scope",
        "needed": needed,
        "provided": granted.join(","),
    });
    Some(axum::Json(body).into_response())
}

/// `users.info`.
pub(super) async fn info(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let args = match read_call(&shared, &headers, query.as_deref(), &body).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    shared.lock().user_lookups += 1;
    for needed in ["users:read", "users:read.email"] {
        if let Some(r) = missing_scope(&shared, needed) {
            return r;
        }
    }
    let id = str_arg(&args, "user").unwrap_or_default();
    if id == BOT_USER_ID {
        return ok(json!({ "user": bot_json() }));
    }
    let found = shared.lock().users.iter().find(|u| u.id == id).cloned();
    match found {
        Some(u) => ok(json!({ "user": user_json(&u) })),
        None => slack_error("user_not_found"),
    }
}

/// A user object shaped like the spec's `users.info` example.
fn user_json(u: &SeededUser) -> Value {
    let handle = u.email.split('@').next().unwrap_or_default();
    json!({
        "id": u.id,
        "team_id": TEAM_ID,
        "name": handle,
        "deleted": false,
        "color": "9f69e7",
        "real_name": u.real_name,
        "tz": "Europe/Berlin",
        "tz_label": "Central European Time",
        "tz_offset": 3600,
        "profile": {
            "real_name": u.real_name,
            "real_name_normalized": u.real_name,
            "display_name": handle,
            "display_name_normalized": handle,
            "email": u.email,
            "team": TEAM_ID,
        },
        "is_admin": false,
        "is_owner": false,
        "is_primary_owner": false,
        "is_restricted": false,
        "is_ultra_restricted": false,
        "is_bot": false,
        "is_app_user": false,
        "updated": 1_700_000_000,
        "has_2fa": false,
    })
}

/// The bot user: no e-mail, as for every bot.
fn bot_json() -> Value {
    json!({
        "id": BOT_USER_ID,
        "team_id": TEAM_ID,
        "name": "pagerd",
        "deleted": false,
        "real_name": "pagerd",
        "profile": { "real_name": "pagerd", "display_name": "pagerd", "bot_id": "B0PAGERBOT", "team": TEAM_ID },
        "is_bot": true,
        "is_app_user": false,
        "updated": 1_700_000_000,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{FakeSlackOptions, form_encode};
    use super::*;
    use crate::fakes::Timeline;

    async fn fake(scopes: Option<Vec<String>>) -> FakeSlack {
        let fake = FakeSlack::start(FakeSlackOptions {
            bot_token: "xoxb-1".into(),
            channels: Vec::new(),
            timeline: Timeline::default(),
            scopes,
        })
        .await
        .unwrap();
        fake.add_user("U0ANA00001", "Ana Engineer", "Ana@Acme.example");
        fake
    }

    async fn call(req: reqwest::RequestBuilder) -> Value {
        req.send().await.unwrap().json().await.unwrap()
    }

    #[tokio::test]
    async fn users_info_answers_like_slack() {
        let fake = fake(None).await;
        let http = reqwest::Client::new();
        let url = format!("{}/users.info", fake.url());
        let v = call(http.get(&url).query(&[("user", "U0ANA00001")])).await;
        assert_eq!(v["error"], "not_authed");
        let v = call(
            http.get(&url)
                .bearer_auth("xoxb-2")
                .query(&[("user", "U0ANA00001")]),
        )
        .await;
        assert_eq!(v["error"], "invalid_auth");
        assert_eq!(fake.user_lookups(), 0);

        let v = call(
            http.get(&url)
                .bearer_auth("xoxb-1")
                .query(&[("user", "U0ANA00001")]),
        )
        .await;
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["user"]["real_name"], "Ana Engineer");
        assert_eq!(v["user"]["profile"]["email"], "Ana@Acme.example");
        assert_eq!(v["user"]["name"], "Ana");

        // Form body with the token as a field.
        let form = form_encode(&[("token", "xoxb-1"), ("user", "U0NOBODY01")]);
        let v = call(
            http.post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
        assert_eq!(v, json!({"ok": false, "error": "user_not_found"}));
        let v = call(http.get(&url).bearer_auth("xoxb-1")).await;
        assert_eq!(v["error"], "user_not_found");
        let v = call(
            http.get(&url)
                .bearer_auth("xoxb-1")
                .query(&[("user", BOT_USER_ID)]),
        )
        .await;
        assert_eq!(v["user"]["is_bot"], true);
        assert!(v["user"]["profile"].get("email").is_none());
        assert_eq!(fake.user_lookups(), 4);
    }

    #[tokio::test]
    async fn users_info_needs_both_scopes() {
        let http = reqwest::Client::new();
        for (granted, needed) in [
            (vec!["chat:write"], "users:read"),
            (vec!["chat:write", "users:read"], "users:read.email"),
        ] {
            let fake = fake(Some(granted.iter().map(|s| s.to_string()).collect())).await;
            let url = format!("{}/users.info", fake.url());
            let v = call(
                http.get(&url)
                    .bearer_auth("xoxb-1")
                    .query(&[("user", "U0ANA00001")]),
            )
            .await;
            assert_eq!(v["error"], "missing_scope");
            assert_eq!(v["needed"], needed);
            assert_eq!(v["provided"], granted.join(","));
        }
        let all = ["users:read", "users:read.email"]
            .map(String::from)
            .to_vec();
        let fake = fake(Some(all)).await;
        let url = format!("{}/users.info", fake.url());
        let v = call(
            http.get(&url)
                .bearer_auth("xoxb-1")
                .query(&[("user", "U0ANA00001")]),
        )
        .await;
        assert_eq!(v["ok"], true, "{v}");
    }
}

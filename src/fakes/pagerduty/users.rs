//! The fake PagerDuty's users: `GET /users` and `GET /users/{id}`, answered
//! from the users a test seeds with [`FakePagerDuty::add_user`].
//!
//! Both sit behind the REST guard (token auth, versioning `Accept`), like
//! every REST route. Checked as the REST spec declares: `limit` (1–100,
//! default 25) and `offset` are integers, `total` a boolean, `include[]`
//! one of the listed models; an unknown id is a 404 in PagerDuty's error
//! shape. `query` matches names and e-mail addresses, case-insensitively and
//! by substring (the spec says "name"; PagerDuty's reference also matches
//! e-mails, which is how a user is found by address), so a client must pick
//! the exact address out of the answer. `team_ids[]` matches nobody: the
//! fake's users belong to no team.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    FakePagerDuty, PAGE_DEFAULT, PAGE_MAX, Refusal, Shared, fail, invalid_input, not_found_error,
};

/// A user seeded with [`FakePagerDuty::add_user`].
#[derive(Debug, Clone)]
pub(super) struct SeededUser {
    id: String,
    name: String,
    email: String,
}

impl FakePagerDuty {
    /// Adds a user of the account (see [`super::user_id`] for the id the
    /// fake shows for a name in acknowledgements and webhooks).
    pub fn add_user(&self, id: &str, name: &str, email: &str) {
        self.shared.lock().users.push(SeededUser {
            id: id.to_string(),
            name: name.to_string(),
            email: email.to_string(),
        });
    }

    /// How many `GET /users…` requests passed the REST guard.
    pub fn user_requests(&self) -> usize {
        self.shared.lock().user_requests
    }
}

const INCLUDES: &[&str] = &[
    "contact_methods",
    "notification_rules",
    "teams",
    "subdomains",
];

/// Checks `include[]`; `detail` also allows `calendar_urls` (`GET /users/{id}`).
fn check_include(value: &str, detail: bool) -> Result<(), Refusal> {
    if INCLUDES.contains(&value) || (detail && value == "calendar_urls") {
        Ok(())
    } else {
        fail(invalid_input(format!(
            "include[] must be one of {}, not {value:?}",
            INCLUDES.join(", ")
        )))
    }
}

/// `GET /users?query=…&limit=…&offset=…&total=…`.
pub(super) async fn list(State(sh): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    sh.lock().user_requests += 1;
    let mut filter = String::new();
    let mut limit = PAGE_DEFAULT;
    let mut offset = 0usize;
    let mut total = false;
    let mut teams = false;
    for (k, v) in super::query_pairs(query.as_deref()) {
        match k.as_str() {
            "query" => filter = v.to_lowercase(),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=PAGE_MAX).contains(&n) => limit = n,
                _ => return invalid_input(format!("limit must be between 1 and {PAGE_MAX}")),
            },
            "offset" => match v.parse::<usize>() {
                Ok(n) => offset = n,
                Err(_) => return invalid_input("offset must be a non-negative integer"),
            },
            "total" => match v.as_str() {
                "true" => total = true,
                "false" => total = false,
                _ => return invalid_input("total must be true or false"),
            },
            "include[]" => {
                if let Err(r) = check_include(&v, false) {
                    return *r;
                }
            }
            "team_ids[]" => teams = true,
            _ => {}
        }
    }
    let st = sh.lock();
    let matching: Vec<&SeededUser> = st
        .users
        .iter()
        .filter(|_| !teams)
        .filter(|u| {
            filter.is_empty()
                || u.name.to_lowercase().contains(&filter)
                || u.email.to_lowercase().contains(&filter)
        })
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|u| user_json(u, sh.base()))
        .collect();
    let more = offset.saturating_add(limit) < matching.len();
    let total = if total {
        json!(matching.len())
    } else {
        Value::Null
    };
    axum::Json(
        json!({"users": page, "limit": limit, "offset": offset, "more": more, "total": total}),
    )
    .into_response()
}

/// `GET /users/{id}`.
pub(super) async fn show(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    sh.lock().user_requests += 1;
    for (k, v) in super::query_pairs(query.as_deref()) {
        if k == "include[]"
            && let Err(r) = check_include(&v, true)
        {
            return *r;
        }
    }
    let st = sh.lock();
    match st.users.iter().find(|u| u.id == id) {
        Some(u) => axum::Json(json!({"user": user_json(u, sh.base())})).into_response(),
        None => not_found_error(),
    }
}

/// A `User` shaped like the spec's example.
fn user_json(u: &SeededUser, base: &str) -> Value {
    let url = format!("{base}/users/{}", u.id);
    json!({
        "id": u.id, "type": "user", "summary": u.name, "self": url, "html_url": url,
        "name": u.name, "email": u.email, "time_zone": "Europe/Berlin", "color": "green",
        "role": "user", "avatar_url": "https://pd-static-assets.pagerduty.com/users/blank-avatar.png",
        "description": null, "invitation_sent": false, "created_via_sso": false,
        "job_title": "Engineer", "teams": [], "contact_methods": [], "notification_rules": [],
    })
}

#[cfg(test)]
mod tests {
    use super::super::{ACCEPT_V2, PagerDutyOptions};
    use super::*;
    use crate::fakes::Timeline;

    const TOKEN: &str = "pd-api-token";

    async fn get(url: String, auth: bool) -> (u16, Value) {
        let mut req = reqwest::Client::new().get(url).header("Accept", ACCEPT_V2);
        if auth {
            req = req.header("Authorization", format!("Token token={TOKEN}"));
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    #[tokio::test]
    async fn users_are_listed_searched_and_shown() {
        let pd = FakePagerDuty::start(PagerDutyOptions {
            routing_key: "R".into(),
            api_token: TOKEN.into(),
            timeline: Timeline::default(),
        })
        .await
        .unwrap();
        pd.add_user("PANA001", "Ana Engineer", "ana@acme.example");
        pd.add_user("PDIANA1", "Diana Prince", "Diana@Acme.example");
        pd.add_user("PBOB001", "Bob Builder", "bob@acme.example");
        let base = pd.url();

        let (status, _) = get(format!("{base}/users/PANA001"), false).await;
        assert_eq!(status, 401);
        assert_eq!(pd.user_requests(), 0);

        let (status, v) = get(format!("{base}/users/PANA001"), true).await;
        assert_eq!(status, 200);
        assert_eq!(v["user"]["email"], "ana@acme.example");
        assert_eq!(v["user"]["name"], "Ana Engineer");
        assert_eq!(v["user"]["self"], format!("{base}/users/PANA001"));
        let (status, v) = get(format!("{base}/users/PNOPE01"), true).await;
        assert_eq!(status, 404);
        assert_eq!(v["error"]["code"], 2100);

        // Substring of names and e-mails, any case: both Ana and Diana.
        let (status, v) = get(format!("{base}/users?query=ANA%40acme.example"), true).await;
        assert_eq!(status, 200);
        let ids: Vec<&str> = v["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["PANA001", "PDIANA1"]);
        assert_eq!(v["total"], Value::Null);
        let (_, v) = get(format!("{base}/users?query=builder&total=true"), true).await;
        assert_eq!(v["users"][0]["id"], "PBOB001");
        assert_eq!(v["total"], 1);
        let (_, v) = get(format!("{base}/users?limit=2&offset=1"), true).await;
        assert_eq!(v["users"].as_array().unwrap().len(), 2);
        assert_eq!(v["more"], false);
        let (_, v) = get(format!("{base}/users?limit=1"), true).await;
        assert_eq!(v["more"], true);
        let (_, v) = get(format!("{base}/users?team_ids[]=PT1"), true).await;
        assert_eq!(v["users"], json!([]));

        for bad in [
            "limit=0",
            "limit=101",
            "offset=-1",
            "total=yes",
            "include[]=pets",
        ] {
            let (status, v) = get(format!("{base}/users?{bad}"), true).await;
            assert_eq!((status, &v["error"]["code"]), (400, &json!(2001)), "{bad}");
        }
        let (status, _) = get(
            format!("{base}/users/PANA001?include[]=calendar_urls"),
            true,
        )
        .await;
        assert_eq!(status, 200);
    }
}

//! A local stand-in for GitLab's REST API v4: the project and issue
//! endpoints pagerd uses.
//!
//! Like GitLab it wants the `PRIVATE-TOKEN` header on every request (401
//! `{"message":"401 Unauthorized"}` otherwise), names a project by its
//! numeric id or its URL-encoded path (`support%2Fcrises`: an unencoded
//! `support/crises` is another route, and 404s as in GitLab), and answers:
//! - `GET /api/v4/projects/:id`;
//! - `GET /api/v4/projects/:id/issues` with `search` (every word must occur,
//!   case-insensitively), `in` (`title`, `description`, or both joined by a
//!   comma), `state` (`opened`, `closed`, `all`), `per_page` (at most 100)
//!   and `page`, newest first;
//! - `POST /api/v4/projects/:id/issues` (JSON or form body: `title`
//!   required, `description` at most 1 048 576 characters, `labels` comma
//!   separated), answering `201 Created` with the issue.
//!
//! Tests read the issues back with [`FakeGitLab::issues`], and close one
//! with [`FakeGitLab::close_issue`] (a closed issue is still found).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::slack::form_decode;
use super::{Faults, RequestLog, Server, Timeline, shorten};

/// GitLab's largest `per_page`.
const PER_PAGE_MAX: usize = 100;
/// GitLab's longest issue description.
const DESCRIPTION_MAX: usize = 1_048_576;
/// GitLab's longest issue title.
const TITLE_MAX: usize = 255;

/// How to start a [`FakeGitLab`].
#[derive(Clone, Default)]
pub struct GitLabOptions {
    /// The access token pagerd must send as `PRIVATE-TOKEN`.
    pub token: String,
    /// The one project: its full path (`support/crises`).
    pub project_path: String,
    /// Its numeric id.
    pub project_id: u64,
    /// Where the fake tells the demo what it saw.
    pub timeline: Timeline,
}

/// An issue as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIssue {
    /// The issue's number in the project.
    pub iid: u64,
    /// Its title.
    pub title: String,
    /// Its description, as sent.
    pub description: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// `opened` or `closed`.
    pub state: String,
    /// Its page.
    pub web_url: String,
}

struct Shared {
    token: String,
    project_path: String,
    project_id: u64,
    timeline: Timeline,
    faults: Faults,
    base_url: OnceLock<String>,
    issues: Mutex<Vec<FakeIssue>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<FakeIssue>> {
        self.issues.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn base(&self) -> &str {
        self.base_url.get().map_or("", String::as_str)
    }

    /// Whether `id` (decoded from the path) names the project, as GitLab
    /// resolves it: the numeric id, or the full path (case-insensitive).
    fn is_project(&self, id: &str) -> bool {
        id == self.project_id.to_string() || id.eq_ignore_ascii_case(&self.project_path)
    }

    fn project_url(&self) -> String {
        format!("{}/{}", self.base(), self.project_path)
    }
}

/// A GitLab that runs on `127.0.0.1`, for tests and `pagerd demo`.
pub struct FakeGitLab {
    server: Server,
    shared: Arc<Shared>,
    /// Faults for every API request.
    pub faults: Faults,
    /// Every request received.
    pub requests: RequestLog,
}

impl FakeGitLab {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start(opts: GitLabOptions) -> std::io::Result<FakeGitLab> {
        let faults = Faults::default();
        let shared = Arc::new(Shared {
            token: opts.token,
            project_path: opts.project_path,
            project_id: opts.project_id,
            timeline: opts.timeline,
            faults: faults.clone(),
            base_url: OnceLock::new(),
            issues: Mutex::new(Vec::new()),
        });
        let requests = RequestLog::default();
        let server = Server::spawn(requests.record(router(shared.clone()))).await?;
        let _ = shared.base_url.set(server.url());
        Ok(FakeGitLab {
            server,
            shared,
            faults,
            requests,
        })
    }

    /// `http://127.0.0.1:PORT`: the daemon's `gitlab.url`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The project's path, as `gitlab.project` names it.
    pub fn project_path(&self) -> String {
        self.shared.project_path.clone()
    }

    /// Every issue created through the API, oldest first.
    pub fn issues(&self) -> Vec<FakeIssue> {
        self.shared.lock().clone()
    }

    /// Closes an issue, as someone would in GitLab's UI.
    pub fn close_issue(&self, iid: u64) {
        if let Some(i) = self.shared.lock().iter_mut().find(|i| i.iid == iid) {
            i.state = "closed".into();
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v4/projects/{id}", get(project))
        .route(
            "/api/v4/projects/{id}/issues",
            get(list_issues).post(create_issue),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), guard))
        .fallback(fallback)
        .with_state(shared)
}

fn message(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

fn bad_request(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": error })),
    )
        .into_response()
}

fn project_not_found() -> Response {
    message(StatusCode::NOT_FOUND, "404 Project Not Found")
}

/// Unknown routes (an unencoded project path among them) answer as GitLab
/// does; an issue's `web_url` shows the issue as plain text, so the demo's
/// links open something local.
async fn fallback(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().trim_start_matches('/');
    if let Some(iid) = path
        .strip_prefix(sh.project_path.as_str())
        .and_then(|rest| rest.strip_prefix("/-/issues/"))
        .and_then(|n| n.parse::<u64>().ok())
        && let Some(issue) = sh.lock().iter().find(|i| i.iid == iid)
    {
        return (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("#{} {}\n\n{}", issue.iid, issue.title, issue.description),
        )
            .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "error": "404 Not Found" })),
    )
        .into_response()
}

/// Runs before every API handler: faults, then the token.
async fn guard(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if let Some(resp) = sh.faults.intercept().await {
        return resp;
    }
    let given = req
        .headers()
        .get("private-token")
        .and_then(|v| v.to_str().ok());
    if given != Some(sh.token.as_str()) {
        sh.timeline.say(format!(
            "GitLab: refused {} {}: 401 Unauthorized",
            req.method(),
            req.uri().path()
        ));
        return message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    }
    next.run(req).await
}

fn issue_json(sh: &Shared, i: &FakeIssue) -> Value {
    json!({
        "id": 9_000 + i.iid,
        "iid": i.iid,
        "project_id": sh.project_id,
        "title": i.title,
        "description": i.description,
        "state": i.state,
        "labels": i.labels,
        "web_url": i.web_url,
        "references": { "short": format!("#{}", i.iid), "full": format!("{}#{}", sh.project_path, i.iid) },
    })
}

/// `GET /api/v4/projects/:id`.
async fn project(State(sh): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if !sh.is_project(&id) {
        return project_not_found();
    }
    let name = sh
        .project_path
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    axum::Json(json!({
        "id": sh.project_id,
        "name": name,
        "path_with_namespace": sh.project_path,
        "web_url": sh.project_url(),
        "issues_enabled": true,
    }))
    .into_response()
}

/// `GET /api/v4/projects/:id/issues`.
async fn list_issues(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !sh.is_project(&id) {
        return project_not_found();
    }
    let (in_title, in_description) = match q.get("in").map(String::as_str) {
        None | Some("") => (true, true),
        Some(v) => {
            let mut t = false;
            let mut d = false;
            for part in v.split(',') {
                match part.trim() {
                    "title" => t = true,
                    "description" => d = true,
                    _ => return bad_request("in does not have a valid value"),
                }
            }
            (t, d)
        }
    };
    let state = q.get("state").map(String::as_str).unwrap_or("all");
    if !matches!(state, "opened" | "closed" | "all") {
        return bad_request("state does not have a valid value");
    }
    let per_page = match q.get("per_page").map(|p| p.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if n >= 1 => n.min(PER_PAGE_MAX),
        Some(_) => return bad_request("per_page is invalid"),
    };
    let page = match q.get("page").map(|p| p.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return bad_request("page is invalid"),
    };
    let search = q.get("search").map(String::as_str).unwrap_or_default();
    let words: Vec<String> = search.split_whitespace().map(str::to_lowercase).collect();
    let found: Vec<Value> = {
        let issues = sh.lock();
        issues
            .iter()
            .rev()
            .filter(|i| state == "all" || i.state == state)
            .filter(|i| {
                let title = i.title.to_lowercase();
                let description = i.description.to_lowercase();
                words.iter().all(|w| {
                    (in_title && title.contains(w.as_str()))
                        || (in_description && description.contains(w.as_str()))
                })
            })
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|i| issue_json(&sh, i))
            .collect()
    };
    if !search.is_empty() {
        sh.timeline.say(format!(
            "GitLab: search for {:?} in {} found {}",
            shorten(search, 60),
            sh.project_path,
            found.len()
        ));
    }
    axum::Json(Value::Array(found)).into_response()
}

/// `POST /api/v4/projects/:id/issues`.
async fn create_issue(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !sh.is_project(&id) {
        return project_not_found();
    }
    // GitLab takes parameters from the query, a form or a JSON body.
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let mut params: HashMap<String, Value> = query
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    if json_body {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => params.extend(m),
            _ => return bad_request("400 Bad request - the body is not a JSON object"),
        }
    } else {
        params.extend(
            form_decode(&String::from_utf8_lossy(&body))
                .into_iter()
                .map(|(k, v)| (k, Value::String(v))),
        );
    }
    let Some(title) = params
        .get("title")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return bad_request("title is missing");
    };
    if title.chars().count() > TITLE_MAX {
        return message(
            StatusCode::BAD_REQUEST,
            "title is too long (maximum is 255 characters)",
        );
    }
    let description = match params.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(d)) => d.clone(),
        Some(_) => return bad_request("description is invalid"),
    };
    if description.chars().count() > DESCRIPTION_MAX {
        return message(
            StatusCode::BAD_REQUEST,
            "description is too long (maximum is 1048576 characters)",
        );
    }
    let labels: Vec<String> = match params.get("labels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(_) => return bad_request("labels is invalid"),
    };
    let (issue, mut v) = {
        let mut issues = sh.lock();
        let iid = issues.len() as u64 + 1;
        let issue = FakeIssue {
            iid,
            title: title.to_string(),
            description,
            labels,
            state: "opened".into(),
            web_url: format!("{}/-/issues/{iid}", sh.project_url()),
        };
        issues.push(issue.clone());
        let v = issue_json(&sh, &issue);
        (issue, v)
    };
    v["created_at"] = json!(humantime::format_rfc3339_millis(SystemTime::now()).to_string());
    sh.timeline.say(format!(
        "GitLab: opened issue #{} \"{}\" in {} (labels {})",
        issue.iid,
        shorten(&issue.title, 80),
        sh.project_path,
        issue.labels.join(", ")
    ));
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fake() -> FakeGitLab {
        FakeGitLab::start(GitLabOptions {
            token: "tok".into(),
            project_path: "support/crises".into(),
            project_id: 7,
            timeline: Timeline::default(),
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn routes_only_the_encoded_path_and_wants_the_token() {
        let f = fake().await;
        let http = reqwest::Client::new();
        let get = |path: &str, token: Option<&str>| {
            let mut r = http.get(format!("{}{path}", f.url()));
            if let Some(t) = token {
                r = r.header("PRIVATE-TOKEN", t);
            }
            async move { r.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(
            get("/api/v4/projects/support%2Fcrises", Some("tok")).await,
            200
        );
        assert_eq!(get("/api/v4/projects/7/issues", Some("tok")).await, 200);
        assert_eq!(
            get("/api/v4/projects/support/crises", Some("tok")).await,
            404
        );
        assert_eq!(
            get("/api/v4/projects/support/crises/issues", Some("tok")).await,
            404
        );
        assert_eq!(get("/api/v4/projects/other%2Fone", Some("tok")).await, 404);
        assert_eq!(get("/api/v4/projects/7", Some("nope")).await, 401);
        assert_eq!(get("/api/v4/projects/7", None).await, 401);
        assert_eq!(
            get("/api/v4/projects/7/issues?in=body", Some("tok")).await,
            400
        );
    }

    #[tokio::test]
    async fn creates_and_searches_issues() {
        let f = fake().await;
        let http = reqwest::Client::new();
        let url = format!("{}/api/v4/projects/support%2Fcrises/issues", f.url());
        let r = http
            .post(&url)
            .header("PRIVATE-TOKEN", "tok")
            .json(&json!({"description": "no title"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = http
            .post(&url)
            .header("PRIVATE-TOKEN", "tok")
            .json(&json!({"title": "T", "description": "marker-abc here", "labels": "a, b"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["iid"], 1);
        assert!(
            v["web_url"]
                .as_str()
                .unwrap()
                .ends_with("/support/crises/-/issues/1")
        );
        assert_eq!(f.issues()[0].labels, ["a", "b"]);
        let search = |q: &'static str| {
            let req = http
                .get(format!("{url}?{q}"))
                .header("PRIVATE-TOKEN", "tok");
            async move {
                req.send()
                    .await
                    .unwrap()
                    .json::<Vec<Value>>()
                    .await
                    .unwrap()
                    .len()
            }
        };
        assert_eq!(search("search=MARKER-abc&in=description").await, 1);
        assert_eq!(search("search=marker-abc&in=title").await, 0);
        f.close_issue(1);
        assert_eq!(search("search=marker-abc&state=opened").await, 0);
        assert_eq!(search("search=marker-abc").await, 1);
    }
}

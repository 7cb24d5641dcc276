//! GitLab: the follow-up issue of a crisis, through the REST API v4.
//!
//! Every request carries the token in the `PRIVATE-TOKEN` header (a
//! personal, group or project access token with the `api` scope). The
//! project is named by its numeric id or its full path, which GitLab wants
//! URL-encoded as one path segment (`support/crises` → `support%2Fcrises`).
//!
//! Opening an issue is idempotent: its description starts with a marker,
//! an HTML comment GitLab does not render (`<!-- pagerd:incident=42
//! key=pagerd-42-17 -->`). [`GitLab::open_issue`] first lists the project's
//! issues (`GET /projects/:id/issues?search=<key>&in=description`, open and
//! closed) and keeps one whose description starts with exactly that marker
//! (GitLab's search matches words, not exact strings; customer text further
//! down cannot fake a match); only when none is found does it create one
//! (`POST /projects/:id/issues` with title, description and labels).

pub mod config;
pub mod deliver;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::{DeliveryError, ProbeError, json_response, path_segment, probe_response};
use crate::secret::Secret;

const SERVICE: &str = "GitLab";

/// Issues asked for per search (GitLab's largest page).
const PER_PAGE: &str = "100";

/// The marker a follow-up issue's description starts with.
pub fn marker(incident_id: i64, key: &str) -> String {
    format!("<!-- pagerd:incident={incident_id} key={key} -->")
}

/// An issue GitLab holds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Issue {
    /// The issue's number within its project (`#12`).
    pub iid: u64,
    /// Its page, for humans.
    pub web_url: String,
    /// Its description (Markdown).
    #[serde(default)]
    pub description: Option<String>,
}

/// A project as `GET /projects/:id` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Project {
    /// Its numeric id.
    pub id: u64,
    /// `group/project`.
    #[serde(default)]
    pub path_with_namespace: String,
    /// Its page.
    #[serde(default)]
    pub web_url: String,
}

/// A GitLab client for one project.
pub struct GitLab {
    /// `https://gitlab.example.com` (no trailing slash; a path for GitLab
    /// under a relative URL root).
    url: String,
    /// The project's id or path, as configured.
    project: String,
    token: Secret,
    labels: Vec<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for GitLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLab")
            .field("url", &self.url)
            .field("project", &self.project)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl GitLab {
    /// A client of `project` on the GitLab at `url`, creating issues with
    /// `labels`; `http` must carry a timeout.
    pub fn new(
        url: &str,
        project: &str,
        token: Secret,
        labels: Vec<String>,
        http: reqwest::Client,
    ) -> GitLab {
        GitLab {
            url: url.trim_end_matches('/').to_string(),
            project: project.to_string(),
            token,
            labels,
            http,
        }
    }

    /// The project as configured (path or id).
    pub fn project(&self) -> &str {
        &self.project
    }

    /// `{url}/api/v4/projects/{encoded project}{rest}`.
    fn project_url(&self, rest: &str) -> String {
        format!(
            "{}/api/v4/projects/{}{rest}",
            self.url,
            path_segment(&self.project)
        )
    }

    fn req(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("PRIVATE-TOKEN", self.token.expose())
            .header("Accept", "application/json")
    }

    /// Opens the follow-up issue of incident `incident_id` for the effect
    /// `key`, or returns the one an earlier attempt opened.
    pub async fn open_issue(
        &self,
        title: &str,
        description: &str,
        incident_id: i64,
        key: &str,
    ) -> Result<Issue, DeliveryError> {
        if let Some(issue) = self.find_issue(incident_id, key).await? {
            return Ok(issue);
        }
        let body = json!({
            "title": crate::render::gitlab_title(title),
            "description": format!(
                "{}\n\n{}",
                marker(incident_id, key),
                crate::render::gitlab_description(description)
            ),
            "labels": self.labels.join(","),
        });
        let service = format!("{SERVICE} issue create in {}", self.project);
        let url = self.project_url("/issues");
        json_response(
            &service,
            self.req(Method::POST, &url).json(&body).send().await,
        )
        .await
    }

    /// The issue whose description starts with the marker of `incident_id`
    /// and `key`, if any, open or closed.
    pub async fn find_issue(
        &self,
        incident_id: i64,
        key: &str,
    ) -> Result<Option<Issue>, DeliveryError> {
        let service = format!("{SERVICE} issue search in {}", self.project);
        let url = self.project_url("/issues");
        let query = [
            ("search", key),
            ("in", "description"),
            ("per_page", PER_PAGE),
        ];
        let issues: Vec<Issue> = json_response(
            &service,
            self.req(Method::GET, &url).query(&query).send().await,
        )
        .await?;
        let marker = marker(incident_id, key);
        Ok(issues.into_iter().find(|i| {
            i.description
                .as_deref()
                .is_some_and(|d| d.starts_with(&marker))
        }))
    }

    /// `GET /projects/:id`: the token is accepted (else
    /// [`ProbeError::Rejected`]) and the project visible to it (else
    /// [`ProbeError::NotFound`]: GitLab answers 404 for a project the
    /// token may not see too). Read-only.
    pub async fn check_project(&self) -> Result<Project, ProbeError> {
        let service = format!("{SERVICE} project {}", self.project);
        let url = self.project_url("");
        let (project, _) =
            probe_response(&service, self.req(Method::GET, &url).send().await).await?;
        Ok(project)
    }
}

// The tests run against the stand-in (the `demo` feature).
#[cfg(all(test, feature = "demo"))]
mod tests;

//! `[gitlab]` of the config file: its keys, their defaults and checks.

use std::path::PathBuf;

use serde::Deserialize;

use crate::secret::Secret;
use crate::validate::Check;

/// The labels of a follow-up issue when `gitlab.labels` is not set.
pub const DEFAULT_LABELS: [&str; 2] = ["crisis", "follow-up"];

/// `[gitlab]`.
#[derive(Debug, Clone)]
pub struct GitLabConfig {
    /// The GitLab instance, `https://gitlab.example.com`.
    pub url: String,
    /// The project of the follow-up issues: its path (`support/crises`) or
    /// numeric id.
    pub project: String,
    /// An access token with the `api` scope, sent as `PRIVATE-TOKEN`.
    pub token: Secret,
    /// The labels of each follow-up issue.
    pub labels: Vec<String>,
}

/// The section as written in the file (unknown keys refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGitLab {
    pub(crate) url: Option<String>,
    pub(crate) project: Option<String>,
    pub(crate) token_file: Option<PathBuf>,
    pub(crate) token_env: Option<String>,
    pub(crate) labels: Option<Vec<String>>,
}

/// Checks `[gitlab]` (optional: `None` when absent), recording every problem
/// in `c`.
pub(crate) fn check(c: &mut Check, raw: Option<RawGitLab>) -> Option<GitLabConfig> {
    let g = raw?;
    let project = c.required("gitlab.project", g.project).trim().to_string();
    if project.starts_with('/') || project.ends_with('/') || project.contains("//") {
        c.problem(
            "gitlab.project",
            format!("{project:?} is not a project path like \"support/crises\" (nor a numeric id)"),
        );
    }
    let labels: Vec<String> = g
        .labels
        .unwrap_or_else(|| DEFAULT_LABELS.map(String::from).to_vec())
        .into_iter()
        .map(|l| l.trim().to_string())
        .collect();
    for l in &labels {
        if l.is_empty() || l.contains(',') {
            c.problem(
                "gitlab.labels",
                format!("{l:?} is not a label: labels are non-empty and have no comma"),
            );
        }
    }
    Some(GitLabConfig {
        url: c.url("gitlab.url", g.url, None),
        project,
        token: c.required_secret("gitlab", "token", g.token_file, g.token_env),
        labels,
    })
}

impl super::GitLab {
    /// The client of `[gitlab]`.
    pub fn from_config(c: &GitLabConfig, http: reqwest::Client) -> Self {
        super::GitLab::new(&c.url, &c.project, c.token.clone(), c.labels.clone(), http)
    }
}

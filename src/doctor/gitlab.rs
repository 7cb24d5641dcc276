//! GitLab: the token and the project of the follow-up issues
//! (`GET /api/v4/projects/:id`, read-only).

use super::Check;
use crate::config::Config;
use crate::vendors::ProbeError;
use crate::vendors::gitlab::GitLab;

const TOKEN: &str = "GitLab token";
const PROJECT: &str = "GitLab project";

pub(super) async fn checks(config: &Config, http: reqwest::Client) -> Vec<Check> {
    let Some(gc) = &config.gitlab else {
        return vec![Check::pass("GitLab", "not configured (no [gitlab])")];
    };
    let client = GitLab::from_config(gc, http);
    let token_ok = || {
        Check::pass(
            TOKEN,
            format!("accepted by {} (GET /api/v4/projects/:id)", gc.url),
        )
    };
    match client.check_project().await {
        Ok(project) => vec![
            token_ok(),
            Check::pass(
                PROJECT,
                format!(
                    "{} (id {}) is visible: follow-up issues go there",
                    if project.path_with_namespace.is_empty() {
                        &gc.project
                    } else {
                        &project.path_with_namespace
                    },
                    project.id
                ),
            ),
        ],
        Err(ProbeError::Rejected { reason }) => vec![Check::fail(
            TOKEN,
            format!("the token in gitlab.token_file (or _env) is rejected: {reason}"),
            format!(
                "create a project access token (or a personal access token of a member of \
                 {}) with the api scope and the Reporter role or more (GitLab → the project → \
                 Settings → Access tokens), and write it to gitlab.token_file",
                gc.project
            ),
        )],
        // GitLab answers 404 both for a project that does not exist and
        // for one the token's user may not see; the token itself passed.
        Err(ProbeError::NotFound { reason }) => vec![
            token_ok(),
            Check::fail(
                PROJECT,
                format!(
                    "no project {} is visible to the token (gitlab.project): {reason}",
                    gc.project
                ),
                "set gitlab.project to the project's path (group/project, as in its URL) or \
                 numeric id, and make the token's user a member of it",
            ),
        ],
        Err(e) => vec![Check::fail(
            TOKEN,
            format!("cannot check it: {e}"),
            format!(
                "check gitlab.url ({}) and that this host reaches it",
                gc.url
            ),
        )],
    }
}

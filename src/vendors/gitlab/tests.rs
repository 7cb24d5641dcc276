//! The GitLab client and its delivery against the stand-in: one issue per
//! effect however often it is delivered, the project path encoded, a
//! refused token a permanent error, the doctor probe's answers.

use super::*;
use crate::engine::{Effect, Outcome};
use crate::fakes::gitlab::{FakeGitLab, GitLabOptions};
use crate::fakes::{Fault, Timeline};
use crate::store::Pending;
use crate::vendors::{REQUEST_TIMEOUT, Vendor, http_client};

const TOKEN: &str = "glpat-test-token";
const PROJECT: &str = "support/crises";

async fn fake() -> FakeGitLab {
    FakeGitLab::start(GitLabOptions {
        token: TOKEN.into(),
        project_path: PROJECT.into(),
        project_id: 99,
        timeline: Timeline::default(),
    })
    .await
    .expect("fake GitLab")
}

fn client(fake: &FakeGitLab, token: &str, project: &str) -> GitLab {
    GitLab::new(
        &format!("{}/", fake.url()),
        project,
        Secret::new(token),
        vec!["crisis".into(), "follow-up".into()],
        http_client(REQUEST_TIMEOUT),
    )
}

fn pending(incident: i64, row: i64, maybe_sent: bool) -> Pending {
    let effect = Effect::OpenFollowUp {
        title: "Follow-up of incident 42: db down".into(),
        description: "- [ ] move the know-how into docs\n- [ ] deprecate the doc".into(),
    };
    crate::vendors::test_pending(incident, row, effect, maybe_sent)
}

#[tokio::test]
async fn opens_one_issue_however_often_the_effect_is_delivered() {
    let fake = fake().await;
    let gitlab = client(&fake, TOKEN, PROJECT);
    let first = gitlab.deliver(&pending(42, 17, false)).await.unwrap();
    let again = gitlab.deliver(&pending(42, 17, true)).await.unwrap();
    assert_eq!(first, again);
    let issues = fake.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    let issue = &issues[0];
    assert_eq!(
        first,
        Some(Outcome::FollowUp {
            url: issue.web_url.clone()
        })
    );
    assert_eq!(issue.title, "Follow-up of incident 42: db down");
    assert_eq!(issue.labels, ["crisis", "follow-up"]);
    assert!(
        issue
            .description
            .starts_with("<!-- pagerd:incident=42 key=pagerd-42-17 -->\n\n- [ ] move"),
        "{}",
        issue.description
    );
    // Closed meanwhile: still found, not opened again.
    fake.close_issue(issue.iid);
    gitlab.deliver(&pending(42, 17, true)).await.unwrap();
    // Another effect (another key) is another issue.
    gitlab.deliver(&pending(42, 18, false)).await.unwrap();
    assert_eq!(fake.issues().len(), 2);
    // The project went URL-encoded, as one path segment.
    let requests = fake.requests.all();
    assert!(
        requests
            .iter()
            .all(|r| r.contains("/api/v4/projects/support%2Fcrises/issues")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn a_description_merely_mentioning_the_marker_does_not_count() {
    let fake = fake().await;
    let gitlab = client(&fake, TOKEN, PROJECT);
    // Another incident's issue quoting this one's marker further down (say,
    // from customer text): it is not this effect's issue.
    gitlab
        .open_issue(
            "other",
            "quoted: <!-- pagerd:incident=42 key=pagerd-42-17 -->",
            41,
            "pagerd-42-17",
        )
        .await
        .unwrap();
    assert!(
        gitlab
            .find_issue(42, "pagerd-42-17")
            .await
            .unwrap()
            .is_none()
    );
    gitlab.deliver(&pending(42, 17, true)).await.unwrap();
    assert_eq!(fake.issues().len(), 2);
}

#[tokio::test]
async fn a_refused_token_is_permanent_and_names_gitlab_and_the_status() {
    let fake = fake().await;
    let gitlab = client(&fake, "glpat-wrong", PROJECT);
    let e = gitlab.deliver(&pending(42, 17, false)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    let shown = e.to_string();
    assert!(shown.contains("GitLab") && shown.contains("401"), "{shown}");
    assert!(!shown.contains("glpat-wrong"), "{shown}");
    assert!(fake.issues().is_empty());
}

#[tokio::test]
async fn outages_are_retryable_and_the_retry_opens_one_issue() {
    let fake = fake().await;
    let gitlab = client(&fake, TOKEN, PROJECT);
    fake.faults.push(
        Fault::Status {
            status: 502,
            retry_after: None,
        },
        1,
    );
    let e = gitlab.deliver(&pending(5, 1, false)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    gitlab.deliver(&pending(5, 1, true)).await.unwrap();
    assert_eq!(fake.issues().len(), 1);
}

#[tokio::test]
async fn the_probe_tells_a_refused_token_from_a_missing_project() {
    let fake = fake().await;
    let project = client(&fake, TOKEN, PROJECT).check_project().await.unwrap();
    assert_eq!(
        (project.id, project.path_with_namespace.as_str()),
        (99, PROJECT)
    );
    assert_eq!(
        client(&fake, TOKEN, "99").check_project().await.unwrap().id,
        99
    );
    assert!(matches!(
        client(&fake, "nope", PROJECT).check_project().await,
        Err(ProbeError::Rejected { .. })
    ));
    assert!(matches!(
        client(&fake, TOKEN, "support/other").check_project().await,
        Err(ProbeError::NotFound { .. })
    ));
    assert!(fake.requests.all().iter().all(|r| r.starts_with("GET ")));
    assert!(fake.issues().is_empty());
}

#[tokio::test]
async fn the_wrong_lane_is_refused() {
    let fake = fake().await;
    let gitlab = client(&fake, TOKEN, PROJECT);
    let mut p = pending(1, 1, false);
    p.effect = Effect::ShareDoc;
    assert!(!gitlab.deliver(&p).await.unwrap_err().is_retryable());
}

//! `pagerd doctor`, the real binary against the stand-ins: it passes on a
//! good setup while the daemon runs, sends nothing that writes (every
//! stand-in's request log is read back), and names the vendor and the key
//! of each thing that is wrong.

use std::path::{Path, PathBuf};
use std::process::Output;

use pagerd::fakes::stand_ins::{Extra, Options, secrets};
use serde_json::Value;

use crate::util::Harness;

const TEMPLATE_ID: &str = "1TemplateDoc0000000000000000000000000000";
const FOLDER_ID: &str = "0FolderOfCrisisDocs000000000";

async fn doctor(config: &Path, json: bool) -> Output {
    let config = config.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pagerd"));
        cmd.arg("--config").arg(&config).arg("doctor");
        if json {
            cmd.arg("--json");
        }
        cmd.output().expect("run pagerd doctor")
    })
    .await
    .expect("doctor task")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every stand-in, the `From` user known to PagerDuty, a template doc and
/// a folder in Drive, both named in `[google]`.
async fn good_setup() -> Harness {
    let h = Harness::new(
        Options {
            slack: true,
            google: true,
            email: true,
            ..Options::default()
        },
        Extra::default(),
    )
    .await;
    h.vendors
        .pagerduty
        .add_user("PONCALL", "Olga Oncall", "oncall@acme.example");
    let google = h.vendors.google.as_ref().expect("google");
    google.add_template(TEMPLATE_ID, "Crisis template", "{{incident}}");
    google.add_folder(FOLDER_ID, "Crisis docs");
    h
}

/// Adds `template_id` and `folder_id` to the `[google]` of `config`.
fn with_google_ids(config: &Path, template: &str) {
    let toml: String = std::fs::read_to_string(config)
        .expect("config")
        .lines()
        .filter(|l| !l.starts_with("template_id =") && !l.starts_with("folder_id ="))
        .map(|l| format!("{l}\n"))
        .collect();
    let toml = toml.replacen(
        "[google]\n",
        &format!("[google]\ntemplate_id = {template:?}\nfolder_id = {FOLDER_ID:?}\n"),
        1,
    );
    std::fs::write(config, toml).expect("config");
}

fn secret_free(out: &str) {
    for s in [
        secrets::ROUTING_KEY,
        secrets::PD_API_TOKEN,
        secrets::PD_WEBHOOK,
        secrets::ZD_API_TOKEN,
        secrets::ZD_WEBHOOK,
        secrets::SLACK_BOT,
        secrets::SLACK_SIGNING,
        secrets::ADMIN,
        secrets::GITLAB_TOKEN,
    ] {
        assert!(!out.contains(s), "a secret in the output:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_on_a_good_setup_and_writes_nothing() {
    let mut h = good_setup().await;
    // The daemon runs on the same store: doctor must neither take its lock
    // nor fail because of it.
    h.start().await;
    with_google_ids(&h.config_path, TEMPLATE_ID);
    let before = |log: &pagerd::fakes::RequestLog| log.all().len();
    let pd_before = before(&h.vendors.pagerduty.requests);
    let zd_before = before(&h.vendors.zendesk.requests);
    let slack = h.vendors.slack.as_ref().expect("slack");
    let slack_before = before(&slack.requests);
    let google = h.vendors.google.as_ref().expect("google");
    let google_before = google.requests().len();
    let smtp = h.vendors.smtp.as_ref().expect("smtp");

    let out = doctor(&h.config_path, false).await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    for line in [
        "✓ PagerDuty routing key: well-formed",
        "✓ PagerDuty REST API token: accepted",
        "✓ PagerDuty From user: oncall@acme.example is the PagerDuty user Olga Oncall",
        "✓ Zendesk API token: accepted for pagerd@acme.example",
        "✓ Zendesk agent: pagerd@acme.example is an agent",
        "✓ Slack bot token: valid: bot @pagerd",
        "✓ Slack scopes: has chat:write, channels:read, channels:history, users:read, users:read.email",
        "✓ Slack channel #infrastructure: the bot is a member (C0INFRA001",
        "✓ Slack channel #development: the bot is a member",
        "✓ Slack channel #general: the bot is a member",
        "✓ Google service account: pagerd@acme-demo.iam.gserviceaccount.com got an access token",
        "✓ Google template doc: 1TemplateDoc",
        "✓ Google folder: 0FolderOfCrisisDocs",
        "✓ Google Calendar: crisis-handoffs@acme.example (\"Crisis hand-offs\") is visible to oncall-bot@acme.example (calendars.get)",
        "✓ GitLab token: accepted by http://127.0.0.1:",
        "✓ GitLab project: support/crises (id 4242) is visible",
        "✓ SMTP relay: connected, EHLO and NOOP accepted; no mail sent",
        "✓ Webhooks: on: Zendesk (/webhooks/zendesk), PagerDuty (/webhooks/pagerduty), Slack (/webhooks/slack)",
        "✓ Store: SQLite ",
        "all 19 checks passed",
    ] {
        assert!(shown.contains(line), "no {line:?} in:\n{shown}");
    }
    assert!(!shown.contains('✗'), "{shown}");
    if Path::new("/proc/locks").exists() {
        assert!(shown.contains("a daemon is running on it"), "{shown}");
    }
    secret_free(&shown);

    // The proof: no request that writes reached any stand-in. The daemon
    // runs meanwhile, but with no ticket it only reads (polling) too.
    let writes = |log: Vec<String>, from: usize| -> Vec<String> {
        log.into_iter()
            .skip(from)
            .filter(|r| !r.starts_with("GET "))
            .collect()
    };
    let pd = h.vendors.pagerduty.requests.all();
    assert!(
        pd[pd_before..].iter().any(|r| r == "GET /users"),
        "doctor asked PagerDuty for the From user: {pd:?}"
    );
    assert_eq!(writes(pd, pd_before), Vec::<String>::new(), "PagerDuty");
    assert!(
        h.vendors.pagerduty.events().is_empty(),
        "no event: nobody paged"
    );
    assert!(h.vendors.pagerduty.incidents().is_empty());
    let zd = h.vendors.zendesk.requests.all();
    assert!(
        zd[zd_before..]
            .iter()
            .any(|r| r == "GET /api/v2/users/me.json"),
        "{zd:?}"
    );
    assert_eq!(writes(zd, zd_before), Vec::<String>::new(), "Zendesk");
    let sl = slack.requests();
    let sl = &sl[slack_before..];
    for asked in [
        "GET /auth.test",
        "GET /conversations.list",
        "GET /conversations.info",
    ] {
        assert!(sl.iter().any(|r| r == asked), "no {asked} in {sl:?}");
    }
    assert!(
        !sl.iter()
            .any(|r| r.contains("chat.postMessage") || r.contains("conversations.join")),
        "{sl:?}"
    );
    assert!(slack.messages().is_empty());
    let gr = google.requests();
    assert!(
        gr[google_before..]
            .iter()
            .any(|r| r == &format!("GET /drive/v3/files/{TEMPLATE_ID}")),
        "{gr:?}"
    );
    assert!(
        gr[google_before..]
            .iter()
            .any(|r| r == "GET /calendar/v3/calendars/crisis-handoffs@acme.example"),
        "{gr:?}"
    );
    assert_eq!(writes(gr, google_before), Vec::<String>::new(), "Google");
    assert!(google.docs().is_empty(), "no doc created");
    assert!(google.events().is_empty(), "no event booked");
    let gl = h.vendors.gitlab.requests.all();
    assert!(
        gl.iter()
            .any(|r| r == "GET /api/v4/projects/support%2Fcrises"),
        "{gl:?}"
    );
    assert_eq!(writes(gl, 0), Vec::<String>::new(), "GitLab");
    assert!(h.vendors.gitlab.issues().is_empty(), "no issue opened");
    let commands = smtp.commands();
    assert!(commands.contains(&"EHLO".to_string()), "{commands:?}");
    assert!(commands.contains(&"NOOP".to_string()), "{commands:?}");
    for verb in ["MAIL", "RCPT", "DATA"] {
        assert!(
            !commands.contains(&verb.to_string()),
            "{verb} in {commands:?}"
        );
    }
    assert!(smtp.messages().is_empty(), "no mail");

    h.stop().await;
}

/// A copy of the good config whose PagerDuty token is wrong, one of whose
/// Slack channels the stand-in does not know, whose Google template does
/// not exist; and the bot is taken out of `#general`.
async fn broken_setup(h: &Harness) -> (tempfile::TempDir, PathBuf) {
    let copy = tempfile::tempdir().expect("tempdir");
    let wrong_token = copy.path().join("pagerduty-api-token");
    std::fs::write(&wrong_token, "u+wrong-token-of-someone-else\n").expect("token");
    let original = h.dir.path().join("pagerduty-api-token");
    let toml = std::fs::read_to_string(&h.config_path)
        .expect("config")
        .replace(
            &format!("{:?}", original.display().to_string()),
            &format!("{:?}", wrong_token.display().to_string()),
        )
        .replace(
            "channels = [\"#infrastructure\", \"#development\", \"#general\"]",
            "channels = [\"#infrastructure\", \"#war-room\", \"#general\"]",
        );
    assert!(toml.contains("#war-room"), "{toml}");
    let config = copy.path().join("pagerd.toml");
    std::fs::write(&config, toml).expect("config");
    with_google_ids(&config, "no-such-template");
    h.vendors
        .slack
        .as_ref()
        .expect("slack")
        .remove_bot_from("general");
    (copy, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_vendor_and_key_of_each_failure() {
    let h = good_setup().await;
    let (_copy, config) = broken_setup(&h).await;
    let out = doctor(&config, false).await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    for line in [
        "✗ PagerDuty REST API token: the REST API token in pagerduty.api_token_file (or _env) is rejected: PagerDuty REST API answered 401",
        "    fix: create a new one under PagerDuty → Integrations → API Access Keys",
        "✗ Slack channel #war-room: no channel #war-room is visible to the bot",
        "(slack.channels; looked up with conversations.list)",
        "✗ Slack channel #general: the bot is not a member of #general (C0GENERAL1)",
        "    fix: invite the bot: /invite @pagerd in #general",
        "✗ Google template doc: pagerd@acme-demo.iam.gserviceaccount.com cannot read no-such-template (google.template_id)",
        "    fix: share the doc with pagerd@acme-demo.iam.gserviceaccount.com",
        // What is right stays right.
        "✓ PagerDuty routing key",
        "✓ Zendesk API token",
        "✓ Slack channel #infrastructure",
        "✓ Google folder",
        "✓ SMTP relay",
        "✓ Google Calendar",
        "✓ GitLab project",
        "4 of 18 checks failed",
    ] {
        assert!(shown.contains(line), "no {line:?} in:\n{shown}");
    }
    assert!(!shown.contains("u+wrong-token"), "{shown}");
    secret_free(&shown);
    assert!(h.vendors.pagerduty.events().is_empty());
    assert!(
        h.vendors
            .slack
            .as_ref()
            .expect("slack")
            .messages()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_json_has_the_documented_shape() {
    let h = good_setup().await;
    // The good config, as JSON: ok.
    with_google_ids(&h.config_path, TEMPLATE_ID);
    let good = doctor(&h.config_path, true).await;
    let v: Value = serde_json::from_slice(&good.stdout).expect("stdout is JSON");
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(good.status.code(), Some(0));

    let (_copy, config) = broken_setup(&h).await;
    let out = doctor(&config, true).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    let top = keys(&v);
    assert_eq!(top, ["checks", "ok"]);
    assert_eq!(v["ok"], false);
    let checks = v["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 18);
    for c in checks {
        assert_eq!(keys(c), ["detail", "fix", "name", "ok"], "{c}");
        assert!(c["name"].is_string() && c["detail"].is_string(), "{c}");
        match c["ok"].as_bool().expect("ok is a bool") {
            true => assert!(c["fix"].is_null(), "{c}"),
            false => assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "{c}"),
        }
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c["ok"] == false)
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "PagerDuty REST API token",
            "Slack channel #war-room",
            "Slack channel #general",
            "Google template doc",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_gitlab_token_file_when_gitlab_refuses_the_token() {
    let h = good_setup().await;
    let copy = tempfile::tempdir().expect("tempdir");
    let wrong = copy.path().join("gitlab-token");
    std::fs::write(&wrong, "glpat-wrong-token-of-someone\n").expect("token");
    let original = h.dir.path().join("gitlab-token");
    let toml = std::fs::read_to_string(&h.config_path)
        .expect("config")
        .replace(
            &format!("{:?}", original.display().to_string()),
            &format!("{:?}", wrong.display().to_string()),
        );
    assert!(
        toml.contains(&*wrong.display().to_string()),
        "the token file was replaced: {toml}"
    );
    let config = copy.path().join("pagerd.toml");
    std::fs::write(&config, toml).expect("config");
    let out = doctor(&config, false).await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    for line in [
        "✗ GitLab token: the token in gitlab.token_file (or _env) is rejected: GitLab project support/crises answered 401 Unauthorized",
        "    fix: create a project access token",
        "✓ Google Calendar",
        "1 of 16 checks failed",
    ] {
        assert!(shown.contains(line), "no {line:?} in:\n{shown}");
    }
    assert!(!shown.contains("glpat-wrong"), "{shown}");
    secret_free(&shown);
    assert!(h.vendors.gitlab.issues().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reads_the_postgres_schema_and_lease() {
    let Some(mut h) = Harness::new_on(
        crate::util::Backend::Postgres,
        Options::default(),
        Extra::default(),
    )
    .await
    else {
        return;
    };
    h.vendors
        .pagerduty
        .add_user("PONCALL", "Olga Oncall", "oncall@acme.example");
    h.start().await;
    // The daemon takes the lease at start; wait until it holds it.
    let status = h.url("/api/v1/status");
    crate::util::eventually("the daemon leads", || async {
        let Ok(r) = reqwest::Client::new()
            .get(&status)
            .bearer_auth(secrets::ADMIN)
            .send()
            .await
        else {
            return false;
        };
        r.json::<Value>().await.is_ok_and(|b| b["role"] == "leader")
    })
    .await;
    let out = doctor(&h.config_path, false).await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("✓ Store: PostgreSQL 127.0.0.1:5432/"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "reachable (SELECT 1), schema version {}; leader lease held by ",
            pagerd::store::postgres::SCHEMA_VERSION
        )),
        "{shown}"
    );
    secret_free(&shown);
    h.stop().await;
}

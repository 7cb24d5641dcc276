//! HackerOne's own webhook, the real daemon against the stand-ins: a
//! report closed in HackerOne while its Zendesk ticket is open gets one
//! reminder to close the ticket (none when the ticket is solved), across
//! redeliveries and a restart, whichever of the ticket and the event
//! arrives first; a disclosure request counts down to its reminder with
//! the pre-publication checklist, and publication stops it; unsigned or
//! forged deliveries are refused and change nothing; without a secret the
//! route does not exist.
//!
//! The deliveries are signed here, with the `hmac` and `sha2` crates
//! directly, not with pagerd's verifier or the stand-ins' signing.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use pagerd::fakes::slack::{FakeSlack, SlackRecord};
use pagerd::fakes::stand_ins::{Extra, Options};
use pagerd::fakes::zendesk::TicketSpec;
use serde_json::{Value, json};

use crate::util::{Backend, Harness, eventually};

const SECRET: &str = "SECRET-h1-webhook-5b6c7d";

/// `[hackerone]` lines: every hour is business time and the first-reply
/// clock is long (no report reminder during a test), the webhook's secret
/// in `dir`, and `more` lines.
fn lines(dir: &std::path::Path, more: &str) -> String {
    let path = dir.join("h1-secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    format!(
        "timezone = \"UTC\"\nbusiness_hours = \"00:00-24:00\"\n\
         business_days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\n\
         respond_within = \"2h\"\nremind_before = \"1h\"\n\
         webhook_secret_file = {:?}\n{more}",
        path.display().to_string()
    )
}

async fn started(hackerone: String) -> Harness {
    let extra = Extra {
        pagerduty: "poll_interval = \"off\"".into(),
        zendesk: "poll_interval = \"off\"".into(),
        hackerone,
        ..Extra::default()
    };
    let opts = Options {
        slack: true,
        ..Options::default()
    };
    let mut h = Harness::new_on(Backend::Sqlite, opts, extra)
        .await
        .expect("sqlite");
    h.start().await;
    h
}

/// HMAC-SHA256 of `body` with `secret`, as `X-H1-Signature` carries it.
fn sign(secret: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A HackerOne payload about `report`.
fn payload(report: &str) -> String {
    json!({"data": {
        "activity": {"type": "activity", "id": "1337"},
        "report": {"id": report, "type": "report", "attributes": {
            "title": "<!channel> XSS", "state": "resolved"}}}})
    .to_string()
}

/// POSTs `event` about `report` as HackerOne does, signed with
/// `signature` (`None`: unsigned); returns the status and body.
async fn post(
    h: &Harness,
    event: &str,
    delivery: &str,
    body: &str,
    signature: Option<String>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(h.url("/webhooks/hackerone"))
        .header("Content-Type", "application/json")
        .header("X-H1-Event", event)
        .header("X-H1-Delivery", delivery)
        .body(body.to_string());
    if let Some(sig) = signature {
        req = req.header("X-H1-Signature", sig);
    }
    let resp = req.send().await.expect("delivered");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A signed delivery of `event` about `report`.
async fn deliver(h: &Harness, event: &str, delivery: &str, report: &str) -> (u16, Value) {
    let body = payload(report);
    post(h, event, delivery, &body, Some(sign(SECRET, &body))).await
}

/// A report ticket (tagged `hackerone`), its subject as given, seen by
/// pagerd through its webhook; `external_id` set first when given.
async fn ticket(h: &Harness, id: u64, subject: &str, external_id: Option<&str>) {
    let zd = &h.vendors.zendesk;
    zd.upsert_ticket(TicketSpec {
        id,
        subject: subject.into(),
        priority: "normal".into(),
        status: "new".into(),
        tags: vec!["hackerone".into()],
        requester_name: "Rita Researcher".into(),
        requester_email: "rita@researchers.example".into(),
        organization: String::new(),
    });
    if let Some(ext) = external_id {
        zd.set_external_id(id, ext);
    }
    assert_eq!(
        zd.send_webhook(&h.url("/webhooks/zendesk"), id).await,
        Ok(200)
    );
}

fn slack(h: &Harness) -> &FakeSlack {
    h.vendors.slack.as_ref().expect("slack")
}

fn marked(h: &Harness, marker: &str) -> Vec<SlackRecord> {
    slack(h)
        .messages()
        .into_iter()
        .filter(|m| m.marker.as_deref() == Some(marker))
        .collect()
}

async fn shown(h: &Harness, ticket: u64) -> Value {
    let (status, body) = h
        .admin(reqwest::Method::GET, &format!("/reports/{ticket}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["report"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hackerone_closed_report_reminds_to_close_its_ticket_once() {
    let secrets = tempfile::tempdir().unwrap();
    let mut h = started(lines(secrets.path(), "")).await;
    ticket(&h, 9101, "Stored XSS in profile page", Some("548")).await;
    assert_eq!(shown(&h, 9101).await["hackerone_report"], "548");

    // doctor says the route is on.
    let config = h.config_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pagerd"))
            .arg("--config")
            .arg(&config)
            .args(["doctor", "--json"])
            .output()
            .expect("run pagerd doctor")
    })
    .await
    .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let webhooks = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Webhooks")
        .cloned()
        .unwrap();
    assert!(
        webhooks["detail"]
            .as_str()
            .unwrap()
            .contains("HackerOne (/webhooks/hackerone)"),
        "{webhooks}"
    );

    let (status, body) = deliver(&h, "report_resolved", "d-548-1", "548").await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("recorded")),
        "{body}"
    );
    eventually("the closure reminder", || async {
        !marked(&h, "pagerd-h1-548-closed").is_empty()
    })
    .await;
    let m = marked(&h, "pagerd-h1-548-closed").remove(0);
    assert_eq!(m.channel_name, "security");
    let link = format!("<{}/agent/tickets/9101|#9101>", h.vendors.zendesk.url());
    assert!(m.text.contains(&link), "{}", m.text);
    assert!(m.text.contains("Close ticket #9101"), "{}", m.text);
    assert!(m.text.contains("hackerone.com/reports/548"), "{}", m.text);
    assert!(
        h.vendors
            .zendesk
            .requests
            .all()
            .iter()
            .any(|r| r == "GET /api/v2/tickets/9101.json"),
        "the ticket's status is read before posting"
    );

    // Redelivered, or another delivery of the same news: nothing more.
    let (status, body) = deliver(&h, "report_resolved", "d-548-1", "548").await;
    assert_eq!((status, body["result"].as_str()), (200, Some("replayed")));
    let (status, body) = deliver(&h, "report_closed_as_duplicate", "d-548-2", "548").await;
    assert_eq!((status, body["result"].as_str()), (200, Some("unchanged")));
    // Events pagerd does not act on are answered, not stored.
    let (status, body) = deliver(&h, "report_comment_created", "d-548-3", "548").await;
    assert_eq!((status, body["result"].as_str()), (200, Some("ignored")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(marked(&h, "pagerd-h1-548-closed").len(), 1);

    // A restart posts nothing again.
    h.stop().await;
    h.start().await;
    let (status, _) = deliver(&h, "report_resolved", "d-548-1", "548").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(marked(&h, "pagerd-h1-548-closed").len(), 1);
    let r = shown(&h, 9101).await;
    assert_eq!(r["hackerone"]["closure"], "resolved", "{r}");
    assert_eq!(r["hackerone"]["close_notice"], "posted", "{r}");
    assert!(r["hackerone"]["closed_at"].is_string(), "{r}");
    assert!(h.vendors.pagerduty.events().is_empty(), "nobody is paged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hackerone_event_before_ticket_links_later_and_solved_ticket_gets_none() {
    let secrets = tempfile::tempdir().unwrap();
    let h = started(lines(secrets.path(), "")).await;
    // HackerOne first: kept, though no ticket names report 549 yet.
    let (status, _) = deliver(&h, "report_closed_as_informative", "d-549", "549").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(marked(&h, "pagerd-h1-549-closed").is_empty());
    // The ticket arrives, named in its subject: the reminder follows.
    ticket(&h, 9102, "Report #549: SSRF in the webhook tester", None).await;
    eventually("the closure reminder once the ticket is known", || async {
        !marked(&h, "pagerd-h1-549-closed").is_empty()
    })
    .await;
    let m = marked(&h, "pagerd-h1-549-closed").remove(0);
    assert!(m.text.contains("closed as informative"), "{}", m.text);

    // A ticket solved in Zendesk (no webhook reached pagerd) when
    // HackerOne closes the report: no reminder.
    ticket(&h, 9103, "IDOR in /api/users", Some("550")).await;
    h.vendors.zendesk.set_status(9103, "solved");
    let (status, _) = deliver(&h, "report_resolved", "d-550", "550").await;
    assert_eq!(status, 200);
    eventually("the closure settled without a reminder", || async {
        shown(&h, 9103).await["hackerone"]["close_notice"] == "ticket_done"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(marked(&h, "pagerd-h1-550-closed").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hackerone_disclosure_request_reminds_with_the_checklist_before_release() {
    let secrets = tempfile::tempdir().unwrap();
    // A compressed month: released 6 s after the request, reminded 3 s
    // before (the defaults are 30 and 5 days).
    let more = "disclosure_after = \"6s\"\ndisclosure_remind_before = \"3s\"";
    let h = started(lines(secrets.path(), more)).await;
    ticket(&h, 9104, "Report #551 <!channel> open redirect", None).await;
    ticket(&h, 9105, "Clickjacking", Some("552")).await;
    let start = std::time::Instant::now();
    for (report, delivery) in [("551", "d-551"), ("552", "d-552")] {
        let (status, _) = deliver(&h, "report_agreed_on_going_public", delivery, report).await;
        assert_eq!(status, 200);
    }
    // 552 becomes public at once: its countdown stops.
    let (status, _) = deliver(&h, "report_became_public", "d-552-public", "552").await;
    assert_eq!(status, 200);

    eventually("the disclosure reminder", || async {
        !marked(&h, "pagerd-h1-551-disclosure").is_empty()
    })
    .await;
    assert!(
        start.elapsed() >= Duration::from_millis(2_500),
        "not before day 25: {:?}",
        start.elapsed()
    );
    let m = marked(&h, "pagerd-h1-551-disclosure").remove(0);
    assert_eq!(m.channel_name, "security");
    for words in [
        "will be disclosed on",
        "no sensitive information",
        "links the merge request that fixed it",
        "hackerone.com/reports/551",
    ] {
        assert!(m.text.contains(words), "{words}: {}", m.text);
    }
    assert!(
        m.text.contains("&lt;!channel&gt;") && !m.text.contains("<!channel>"),
        "the ticket's title is data: {}",
        m.text
    );
    let r = shown(&h, 9104).await;
    assert!(r["hackerone"]["disclosure_at"].is_string(), "{r}");
    assert!(r["hackerone"]["disclosure_reminded_at"].is_string(), "{r}");
    // Past the release: one reminder, and none for the public report.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(marked(&h, "pagerd-h1-551-disclosure").len(), 1);
    assert!(marked(&h, "pagerd-h1-552-disclosure").is_empty());
    let public = shown(&h, 9105).await;
    assert!(public["hackerone"]["disclosed_at"].is_string(), "{public}");
    assert_eq!(public["hackerone"]["disclosure_at"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hackerone_unsigned_or_forged_deliveries_are_refused_and_change_nothing() {
    let secrets = tempfile::tempdir().unwrap();
    let h = started(lines(secrets.path(), "")).await;
    ticket(&h, 9106, "XSS", Some("560")).await;
    let body = payload("560");
    let refused = [
        post(&h, "report_resolved", "f-1", &body, None).await,
        post(
            &h,
            "report_resolved",
            "f-2",
            &body,
            Some(sign("guessed", &body)),
        )
        .await,
        post(
            &h,
            "report_resolved",
            "f-3",
            &payload("561"),
            Some(sign(SECRET, &body)),
        )
        .await,
        post(
            &h,
            "report_resolved",
            "f-4",
            &body,
            Some("sha256=zz".into()),
        )
        .await,
    ];
    for (status, body) in &refused {
        assert_eq!(*status, 401, "{body}");
    }
    // Signed, but not a report event: 400.
    let junk = "<html>";
    let (status, _) = post(&h, "report_resolved", "f-5", junk, Some(sign(SECRET, junk))).await;
    assert_eq!(status, 400);
    let no_id = r#"{"data":{"report":{"id":"../../etc"}}}"#;
    let (status, _) = post(
        &h,
        "report_resolved",
        "f-6",
        no_id,
        Some(sign(SECRET, no_id)),
    )
    .await;
    assert_eq!(status, 400);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        shown(&h, 9106).await["hackerone"],
        Value::Null,
        "nothing stored"
    );
    assert!(marked(&h, "pagerd-h1-560-closed").is_empty());
    // The real one, with a delivery id a forgery used: applied.
    let (status, body) = deliver(&h, "report_resolved", "f-1", "560").await;
    assert_eq!((status, body["result"].as_str()), (200, Some("recorded")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hackerone_route_is_not_served_without_a_secret() {
    let secrets = tempfile::tempdir().unwrap();
    let without = lines(secrets.path(), "")
        .lines()
        .filter(|l| !l.starts_with("webhook_secret_file"))
        .collect::<Vec<_>>()
        .join("\n");
    let h = started(without).await;
    let (status, _) = deliver(&h, "report_resolved", "d-1", "548").await;
    assert_eq!(status, 404, "like any unknown route");
    let unknown = reqwest::Client::new()
        .post(h.url("/webhooks/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

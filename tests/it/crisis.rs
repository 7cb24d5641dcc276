use std::time::Duration;

use pagerd::fakes::stand_ins::{Extra, Options, secrets};
use pagerd::fakes::{Fault, slack};
use reqwest::Method;
use serde_json::json;

use crate::util::{Harness, eventually};

const KEY: &str = "zendesk-4711";
const CHANNELS: [&str; 3] = ["infrastructure", "development", "general"];

fn all() -> Options {
    Options {
        slack: true,
        google: true,
        email: true,
        ..Options::default()
    }
}

async fn crisis_harness(policy: &str) -> Harness {
    let mut h = Harness::new(
        all(),
        Extra {
            policy: policy.into(),
            ..Extra::default()
        },
    )
    .await;
    h.start().await;
    h
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Waits until the crisis is fully announced, then checks it happened once.
async fn assert_one_crisis(h: &Harness) {
    let slack = h.vendors.slack.as_ref().unwrap();
    let google = h.vendors.google.as_ref().unwrap();
    eventually("announced in every channel", || async {
        CHANNELS.iter().all(|c| !slack.top_level_in(c).is_empty())
    })
    .await;
    eventually("doc link on the ticket", || async {
        h.vendors
            .zendesk
            .comments(4711)
            .iter()
            .any(|c| c.body.contains("crisis document"))
    })
    .await;
    eventually("doc link on the incident", || async {
        h.vendors
            .pagerduty
            .incident_by_key(KEY)
            .is_some_and(|i| i.notes.iter().any(|n| n.contains("Crisis document")))
    })
    .await;
    // Sharing is two Drive calls in a row (company, then customer).
    eventually("doc shared with the customer", || async {
        google.docs().iter().any(|d| {
            d.permissions
                .iter()
                .any(|p| p["emailAddress"] == "dana@customer.test")
        })
    })
    .await;
    let docs = google.docs();
    assert_eq!(docs.len(), 1, "exactly one crisis doc");
    let doc = &docs[0];
    let url = format!("/document/d/{}/", doc.id);
    assert!(
        doc.text.contains("#4711") && doc.text.contains("Customer Corp"),
        "{}",
        doc.text
    );
    for c in CHANNELS {
        let top = slack.top_level_in(c);
        assert_eq!(top.len(), 1, "one announcement in #{c}");
        assert!(
            top[0].text.contains(&url) && top[0].text.contains("Crisis"),
            "{}",
            top[0].text
        );
        let actions = top[0]
            .blocks
            .as_ref()
            .map(|b| b.to_string())
            .unwrap_or_default();
        assert!(
            actions.contains("pagerd_ack") && actions.contains("pagerd_resolve"),
            "{actions}"
        );
    }
    let perms = &doc.permissions;
    assert!(
        perms.iter().any(|p| p["type"] == "domain"
            && p["domain"] == "acme.example"
            && p["role"] == "writer"),
        "{perms:?}"
    );
    assert!(
        perms.iter().any(|p| p["type"] == "user"
            && p["emailAddress"] == "dana@customer.test"
            && p["role"] == "commenter"),
        "{perms:?}"
    );
    let crisis_comments = h
        .vendors
        .zendesk
        .comments(4711)
        .iter()
        .filter(|c| c.body.contains("crisis document"))
        .count();
    assert_eq!(crisis_comments, 1);
    let inc = h.vendors.pagerduty.incident_by_key(KEY).unwrap();
    assert_eq!(
        inc.notes
            .iter()
            .filter(|n| n.contains("Crisis document"))
            .count(),
        1
    );
}

#[tokio::test]
async fn unresolved_after_crisis_after_creates_shares_and_announces_the_doc() {
    let h = crisis_harness("crisis_after = \"400ms\"\nack_timeout = \"10s\"").await;
    h.ticket(4711, "urgent", &[]).await;
    assert_one_crisis(&h).await;
    let body = h.incident(1).await;
    assert_eq!(
        body["incident"]["crisis"]["reason"],
        "unresolved after 400ms"
    );
}

#[tokio::test]
async fn a_second_responder_declares_the_crisis() {
    let h = crisis_harness("ack_timeout = \"10s\"").await;
    h.paged(4711).await;
    h.vendors
        .pagerduty
        .acknowledge(KEY, "Ana Engineer")
        .await
        .unwrap();
    assert!(
        h.incident(1).await["incident"]["crisis"].is_null(),
        "one responder is not a crisis"
    );
    let (status, _) = h
        .admin(
            Method::POST,
            "/incidents/1/join",
            Some(json!({"by": "bo@acme.example"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_one_crisis(&h).await;
    assert_eq!(
        h.incident(1).await["incident"]["crisis"]["reason"],
        "2 people are involved"
    );
}

#[tokio::test]
async fn manual_escalation_and_crisis_from_the_cli() {
    let h = crisis_harness("ack_timeout = \"10s\"\ncrisis_responders = 5").await;
    h.paged(4711).await;
    let body = json!({"by": "ana@acme.example", "reason": "database is read-only"});
    assert_eq!(
        h.admin(Method::POST, "/incidents/1/escalate", Some(body))
            .await
            .0,
        200
    );
    eventually("escalated with who and why", || async {
        h.vendors.pagerduty.incident_by_key(KEY).is_some_and(|i| {
            i.escalation_level == 2
                && i.notes
                    .iter()
                    .any(|n| n.contains("by ana@acme.example: database is read-only"))
        })
    })
    .await;
    assert_eq!(
        h.admin(
            Method::POST,
            "/incidents/1/crisis",
            Some(json!({"by": "ana@acme.example"}))
        )
        .await
        .0,
        200
    );
    assert_one_crisis(&h).await;
    assert_eq!(
        h.incident(1).await["incident"]["crisis"]["reason"],
        "declared by ana@acme.example"
    );
}

#[tokio::test]
async fn resolution_posts_the_checklist_then_the_doc_is_deprecated() {
    let h = crisis_harness(
        "crisis_after = \"200ms\"\nack_timeout = \"10s\"\ndoc_deprecate_after = \"500ms\"",
    )
    .await;
    h.ticket(4711, "urgent", &[]).await;
    assert_one_crisis(&h).await;
    h.vendors
        .pagerduty
        .resolve(KEY, "Ana Engineer")
        .await
        .unwrap();
    let slack = h.vendors.slack.as_ref().unwrap();
    eventually("checklist in every thread", || async {
        CHANNELS.iter().all(|c| {
            slack
                .replies_in(c)
                .iter()
                .any(|m| m.text.contains("hand-off call"))
        })
    })
    .await;
    let checklist = slack
        .replies_in("general")
        .into_iter()
        .find(|m| m.text.contains("hand-off call"))
        .unwrap();
    assert!(
        checklist.text.contains("know-how") && checklist.text.contains("Deprecate the crisis doc"),
        "{}",
        checklist.text
    );
    assert_eq!(
        checklist.thread_ts,
        Some(slack.top_level_in("general")[0].ts.clone())
    );
    let google = h.vendors.google.as_ref().unwrap();
    eventually("doc renamed and marked", || async {
        let doc = &google.docs()[0];
        doc.name.starts_with("[DEPRECATED] ") && doc.text.starts_with("DEPRECATED:")
    })
    .await;
    eventually("thread told", || async {
        slack
            .replies_in("general")
            .iter()
            .any(|m| m.text.contains("marked deprecated"))
    })
    .await;
}

#[tokio::test]
async fn email_reaches_level_two_when_pagerduty_keeps_failing() {
    let extra = Extra {
        policy: "ack_timeout = \"10s\"".into(),
        email: "fallback_after = \"300ms\"".into(),
        ..Extra::default()
    };
    let mut h = Harness::new(all(), extra).await;
    h.vendors.pagerduty.events_faults.push(
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        3,
    );
    h.start().await;
    h.ticket(4711, "urgent", &[]).await;
    let smtp = h.vendors.smtp.as_ref().unwrap();
    eventually("fallback e-mail", || async { !smtp.messages().is_empty() }).await;
    let mail = &smtp.messages()[0];
    assert_eq!(mail.to, vec!["level2@acme.example".to_string()]);
    assert!(mail.subject.contains("#4711"), "{}", mail.subject);
    assert!(mail.body.contains("/agent/tickets/4711"), "{}", mail.body);
    eventually("paged once PagerDuty recovers", || async {
        h.vendors.pagerduty.opened_for(KEY) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.messages().len(), 1, "the fallback is sent once");
}

#[tokio::test]
async fn a_refused_page_falls_back_to_email_at_once_and_says_why() {
    let extra = Extra {
        email: "fallback_after = \"1h\"".into(),
        ..Extra::default()
    };
    let mut h = Harness::new(all(), extra).await;
    h.vendors.pagerduty.events_faults.push(
        Fault::Status {
            status: 400,
            retry_after: None,
        },
        1,
    );
    h.start().await;
    h.ticket(4711, "urgent", &[]).await;
    let smtp = h.vendors.smtp.as_ref().unwrap();
    eventually("fallback e-mail", || async { smtp.messages().len() == 1 }).await;
    let body = h.incident(1).await;
    assert!(
        body["incident"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("400"),
        "{body}"
    );
    assert_eq!(body["outbox"][0]["state"], "failed");
}

#[tokio::test]
async fn slack_buttons_and_slash_command_drive_the_incident() {
    let h = crisis_harness("ack_timeout = \"10s\"\ncrisis_responders = 5").await;
    h.ticket(4711, "urgent", &[]).await;
    let url = h.url("/webhooks/slack");
    let click = slack::block_action_body("pagerd_ack", "1", "U0ANA0001", "ana");
    assert_eq!(
        slack::send_signed(&url, secrets::SLACK_SIGNING, &click, unix_now()).await,
        Ok(200)
    );
    let body = h.incident(1).await;
    assert_eq!(body["incident"]["status"], "acknowledged");
    assert_eq!(body["incident"]["acked"][0], "@ana");
    eventually("customer asked", || async {
        h.vendors.zendesk.comments(4711).len() == 1
    })
    .await;
    let cmd = slack::slash_command_body("/pagerd", "status", "U0BO00001", "bo");
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", unix_now().to_string())
        .header(
            "X-Slack-Signature",
            pagerd::fakes::sign::slack(
                secrets::SLACK_SIGNING,
                &unix_now().to_string(),
                cmd.as_bytes(),
            ),
        )
        .body(cmd)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.json::<serde_json::Value>().await.unwrap()["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text.contains("#4711") && text.contains("acknowledged by @ana"),
        "{text}"
    );
    // The reply says when an action declared a crisis.
    let text = slash(&url, "crisis 1").await;
    assert!(text.contains("declared a *crisis*"), "{text}");
    let resolve = slack::slash_command_body("/pagerd", "resolve 1", "U0BO00001", "bo");
    assert_eq!(
        slack::send_signed(&url, secrets::SLACK_SIGNING, &resolve, unix_now()).await,
        Ok(200)
    );
    assert_eq!(h.incident(1).await["incident"]["status"], "resolved");
}

/// Sends `/pagerd TEXT` as Bo; returns the ephemeral reply's text.
async fn slash(url: &str, text: &str) -> String {
    let cmd = slack::slash_command_body("/pagerd", text, "U0BO00001", "bo");
    let now = unix_now().to_string();
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", &now)
        .header(
            "X-Slack-Signature",
            pagerd::fakes::sign::slack(secrets::SLACK_SIGNING, &now, cmd.as_bytes()),
        )
        .body(cmd)
        .send()
        .await
        .expect("slash command");
    assert_eq!(resp.status(), 200);
    resp.json::<serde_json::Value>().await.expect("json")["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn slack_requests_with_a_wrong_or_stale_signature_are_refused() {
    let h = crisis_harness("").await;
    h.ticket(4711, "urgent", &[]).await;
    let url = h.url("/webhooks/slack");
    let click = slack::block_action_body("pagerd_resolve", "1", "U0EVE0001", "eve");
    assert_eq!(
        slack::send_signed(&url, "not-the-secret", &click, unix_now()).await,
        Ok(401)
    );
    assert_eq!(
        slack::send_signed(&url, secrets::SLACK_SIGNING, &click, unix_now() - 301).await,
        Ok(401)
    );
    assert_eq!(h.incident(1).await["incident"]["status"], "triggered");
}

#[tokio::test]
async fn slack_rate_limits_are_retried_and_a_bad_channel_fails_loudly() {
    let h = crisis_harness("ack_timeout = \"10s\"\ncrisis_responders = 5").await;
    let slack = h.vendors.slack.as_ref().unwrap();
    slack.faults.push(
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
        1,
    );
    slack.fail_next(1, "ratelimited");
    h.ticket(4711, "urgent", &[]).await;
    assert_eq!(
        h.admin(
            Method::POST,
            "/incidents/1/crisis",
            Some(json!({"by": "ana@acme.example"}))
        )
        .await
        .0,
        200
    );
    assert_one_crisis(&h).await;
    let body = h.incident(1).await;
    let slack_rows: Vec<_> = body["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["effect"]["type"] == "slack_post")
        .collect();
    assert!(
        slack_rows.iter().all(|r| r["state"] == "delivered"),
        "{slack_rows:?}"
    );
    assert!(
        slack_rows.iter().any(|r| r["attempts"].as_u64() > Some(1)),
        "a retry happened: {slack_rows:?}"
    );

    // A permanent error (the bot was removed from the channel) is not retried.
    slack.fail_next(3, "not_in_channel");
    assert_eq!(
        h.admin(
            Method::POST,
            "/incidents/1/join",
            Some(json!({"by": "bo@acme.example"}))
        )
        .await
        .0,
        200
    );
    eventually("failed for good", || async {
        let body = h.incident(1).await;
        body["outbox"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["state"] == "failed")
            .count()
            == 3
    })
    .await;
    let body = h.incident(1).await;
    assert!(
        body["incident"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("not_in_channel"),
        "{body}"
    );
    let metrics = reqwest::get(h.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pagerd_deliveries_total{lane=\"slack\",result=\"failed\"} 3"),
        "{metrics}"
    );
}

//! Vendor faults: retried with backoff, `Retry-After` honoured, nothing
//! dropped, nothing doubled, and one vendor's outage never delays a page.

use std::time::{Duration, Instant};

use pagerd::fakes::Fault;
use pagerd::fakes::stand_ins::{Extra, Options};
use reqwest::Method;
use serde_json::json;

use crate::util::{Backend, Harness, eventually};

const KEY: &str = "zendesk-4711";

#[tokio::test]
async fn retry_after_is_honoured_and_the_comment_lands_once() {
    let Some(h) = Harness::started_on(Backend::Sqlite, "ack_timeout = \"1h\"").await else {
        return;
    };
    h.ticket(4711, "urgent", &[]).await;
    h.vendors.zendesk.faults.push(
        Fault::Status {
            status: 429,
            retry_after: Some(2),
        },
        1,
    );
    let acked = Instant::now();
    assert_eq!(
        h.admin(
            Method::POST,
            "/incidents/1/ack",
            Some(json!({"by": "ana@acme.example"}))
        )
        .await
        .0,
        200
    );
    eventually("comment after the rate limit", || async {
        h.vendors.zendesk.comments(4711).len() == 1
    })
    .await;
    assert!(
        acked.elapsed() >= Duration::from_secs(2),
        "retried before Retry-After: {:?}",
        acked.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.vendors.zendesk.comments(4711).len(), 1);
}

#[tokio::test]
async fn slow_and_malformed_answers_are_retried_without_doubling() {
    let Some(h) = Harness::started_on(Backend::Sqlite, "ack_timeout = \"300ms\"").await else {
        return;
    };
    h.vendors
        .pagerduty
        .events_faults
        .push(Fault::Delay(Duration::from_millis(400)), 2);
    h.vendors
        .pagerduty
        .rest_faults
        .push(Fault::MalformedJson, 2);
    h.ticket(4711, "urgent", &[]).await;
    eventually("escalated", || async {
        !h.vendors.pagerduty.escalations().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.vendors.pagerduty.opened_for(KEY), 1);
    assert_eq!(h.vendors.pagerduty.escalations().len(), 1);
    let body = h.incident(1).await;
    let esc = body["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["effect"]["type"] == "pagerduty_escalate")
        .unwrap();
    assert_eq!(esc["state"], "delivered");
    assert!(esc["attempts"].as_u64() >= Some(2), "{esc}");
}

#[tokio::test]
async fn an_outage_is_retried_with_backoff_not_a_busy_loop() {
    let Some(h) = Harness::started_on(Backend::Sqlite, "ack_timeout = \"1h\"").await else {
        return;
    };
    h.vendors.pagerduty.events_faults.push(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1000,
    );
    h.ticket(4711, "urgent", &[]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tried = 1000 - h.vendors.pagerduty.events_faults.len();
    // 0.5 s doubling with jitter: 3 to 5 attempts in 3 s, never hundreds.
    assert!((2..=6).contains(&tried), "{tried} attempts in 3 s");
    let body = h.incident(1).await;
    assert_eq!(body["outbox"][0]["state"], "pending");
    assert!(
        body["outbox"][0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("503"),
        "{body}"
    );
    h.vendors.pagerduty.events_faults.clear();
    eventually("paged once PagerDuty is back", || async {
        h.vendors.pagerduty.opened_for(KEY) == 1
    })
    .await;
}

#[tokio::test]
async fn slack_and_google_down_do_not_delay_the_escalation() {
    let opts = Options {
        slack: true,
        google: true,
        ..Options::default()
    };
    let extra = Extra {
        policy: "ack_timeout = \"800ms\"".into(),
        ..Extra::default()
    };
    let Some(mut h) = Harness::new_on(Backend::Sqlite, opts, extra).await else {
        return;
    };
    h.vendors.slack.as_ref().unwrap().faults.push(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1000,
    );
    h.vendors.google.as_ref().unwrap().faults.push(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1000,
    );
    h.start().await;
    let sent = Instant::now();
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
    eventually("escalated on time", || async {
        !h.vendors.pagerduty.escalations().is_empty()
    })
    .await;
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "escalation waited for Google: {:?}",
        sent.elapsed()
    );
    assert!(
        h.vendors.google.as_ref().unwrap().docs().is_empty(),
        "Google is still down"
    );
}

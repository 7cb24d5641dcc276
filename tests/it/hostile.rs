//! Hostile and broken input: refused with a 4xx, stored nowhere, never a
//! panic or a changed incident.

use pagerd::fakes::sign;
use pagerd::fakes::stand_ins::{Extra, Options, secrets};
use serde_json::json;

use crate::util::{Backend, Harness, eventually};

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

async fn zendesk(h: &Harness, content_type: &str, body: Vec<u8>) -> u16 {
    let ts = now();
    reqwest::Client::new()
        .post(h.url("/webhooks/zendesk"))
        .header("content-type", content_type)
        .header(
            "X-Zendesk-Webhook-Signature",
            sign::zendesk(secrets::ZD_WEBHOOK, &ts, &body),
        )
        .header("X-Zendesk-Webhook-Signature-Timestamp", ts)
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn pagerduty(h: &Harness, body: &str) -> u16 {
    let sig = sign::pagerduty(secrets::PD_WEBHOOK, body.as_bytes());
    h.vendors
        .pagerduty
        .send_webhook_raw(body, Some(&sig), &format!("wh-{}", body.len()))
        .await
        .unwrap_or(0)
}

#[tokio::test]
async fn hostile_webhooks_are_refused_and_change_nothing() {
    let opts = Options {
        slack: true,
        ..Options::default()
    };
    let extra = Extra {
        policy: "ack_timeout = \"1h\"".into(),
        ..Extra::default()
    };
    let Some(mut h) = Harness::new_on(Backend::Sqlite, opts, extra).await else {
        return;
    };
    h.start().await;
    h.ticket(4711, "urgent", &[]).await;
    eventually("paged and recorded", || async {
        h.incident(1).await["outbox"][0]["state"] == "delivered"
    })
    .await;
    let before = h.incident(1).await;

    let huge = format!(
        r#"{{"ticket":{{"id":"1","title":"{}"}}}}"#,
        "x".repeat(300 * 1024)
    );
    assert_eq!(
        zendesk(&h, "application/json", huge.into_bytes()).await,
        413,
        "over 256 KiB"
    );
    let ticket = h.vendors.zendesk.webhook_body(4711).replace("4711", "4712");
    assert_eq!(
        zendesk(&h, "text/plain", ticket.clone().into_bytes()).await,
        415,
        "wrong content type"
    );
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(
        zendesk(&h, "application/json", deep.into_bytes()).await,
        400,
        "deep JSON"
    );
    let mut invalid = ticket.clone().into_bytes();
    invalid[20] = 0xff;
    assert_eq!(
        zendesk(&h, "application/json", invalid).await,
        400,
        "invalid UTF-8"
    );
    assert_eq!(zendesk(&h, "application/json", b"null".to_vec()).await, 400);
    assert_eq!(
        zendesk(
            &h,
            "application/json",
            br#"{"ticket":{"id":"-1"}}"#.to_vec()
        )
        .await,
        400
    );

    // PagerDuty: event types pagerd does not act on are accepted and ignored.
    let key = "zendesk-4711";
    for event_type in [
        "incident.annotated",
        "incident.priority_updated",
        "service.updated",
        "pagey.ping",
    ] {
        let body = json!({"event": {"id": event_type, "event_type": event_type, "resource_type": "incident",
            "occurred_at": now(), "agent": null, "client": null, "data": {"incident_key": key, "id": "PX"}}});
        assert_eq!(pagerduty(&h, &body.to_string()).await, 200, "{event_type}");
    }
    assert_eq!(pagerduty(&h, "{").await, 400, "malformed PagerDuty JSON");
    let foreign = json!({"event": {"id": "f", "event_type": "incident.acknowledged", "data": {"incident_key": "other-1"}}});
    assert_eq!(
        pagerduty(&h, &foreign.to_string()).await,
        200,
        "not ours: ignored, not retried forever"
    );
    let unsigned = h
        .vendors
        .pagerduty
        .send_webhook_raw(&foreign.to_string(), None, "u")
        .await;
    assert_eq!(unsigned, Ok(401));

    // Slack: garbage that is correctly signed.
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (body, expected) in [
        ("payload=%7Bnot-json", 400),
        ("payload=%7B%22type%22%3A%22view_submission%22%7D", 200),
        (
            "payload=%7B%22type%22%3A%22block_actions%22%2C%22actions%22%3A%5B%7B%22action_id%22%3A%22pagerd_resolve%22%2C%22value%22%3A%22x%22%7D%5D%7D",
            200,
        ),
        ("command=%2Fpagerd&text=%ff%fe+1", 200),
        ("command=%2Fpagerd&text=resolve+99999", 200),
    ] {
        let status = pagerd::fakes::slack::send_signed(
            &h.url("/webhooks/slack"),
            secrets::SLACK_SIGNING,
            body,
            ts,
        )
        .await;
        assert_eq!(status, Ok(expected), "{body}");
    }

    assert_eq!(h.incident_count().await, 1, "nothing new stored");
    let after = h.incident(1).await;
    assert_eq!(
        before["incident"], after["incident"],
        "the incident did not change"
    );
    assert_eq!(before["journal"], after["journal"]);
    let health = reqwest::get(h.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "still alive");
}

use std::time::{Duration, Instant};

use pagerd::fakes::Fault;
use pagerd::fakes::sign;
use pagerd::fakes::stand_ins::{Extra, Options, secrets};
use reqwest::Method;
use serde_json::json;

use crate::util::{Backend, Harness, eventually};

const KEY: &str = "zendesk-4711";

async fn emergency_ticket_pages_pagerduty_with_a_link_back(b: Backend) {
    let Some(h) = Harness::started_on(b, "").await else {
        return;
    };
    assert_eq!(h.ticket(4711, "urgent", &[]).await, 200);
    eventually("PagerDuty opened an incident", || async {
        h.vendors.pagerduty.opened_for(KEY) == 1
    })
    .await;
    let inc = h.vendors.pagerduty.incident_by_key(KEY).expect("incident");
    assert!(
        inc.title.contains("#4711")
            && inc.title.contains("Production instance down")
            && inc.title.contains("Customer Corp"),
        "{}",
        inc.title
    );
    let href = inc.links[0]["href"].as_str().unwrap_or_default();
    assert!(
        href.starts_with("http") && href.ends_with("/agent/tickets/4711"),
        "{href}"
    );
    assert_eq!(inc.custom_details["requester_email"], "dana@customer.test");
    assert_eq!(inc.custom_details["organization"], "Customer Corp");
}

async fn emergency_tag_pages_and_ordinary_ticket_does_not(b: Backend) {
    let Some(h) = Harness::started_on(b, "").await else {
        return;
    };
    assert_eq!(h.ticket(1, "normal", &["billing"]).await, 200);
    assert_eq!(h.ticket(2, "low", &["emergency"]).await, 200);
    eventually("tagged ticket paged", || async {
        h.vendors.pagerduty.opened_for("zendesk-2") == 1
    })
    .await;
    // Both webhooks were answered in order, and the ordinary one created no
    // incident: nothing to deliver for it, ever.
    assert_eq!(h.incident_count().await, 1);
    assert_eq!(h.triggers("zendesk-1"), 0);
}

async fn the_same_ticket_pages_once_even_when_sent_at_once(b: Backend) {
    let Some(h) = Harness::started_on(b, "").await else {
        return;
    };
    let sends = (0..8).map(|_| h.ticket(4711, "urgent", &[]));
    let statuses = futures_util::future::join_all(sends).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    eventually("paged", || async { h.triggers(KEY) == 1 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.triggers(KEY), 1, "a duplicate ticket must not page again");
    assert_eq!(h.incident_count().await, 1);
}

async fn no_ack_in_time_escalates_to_level_two_with_a_note(b: Backend) {
    let Some(h) = Harness::started_on(b, "ack_timeout = \"300ms\"").await else {
        return;
    };
    let sent = Instant::now();
    h.ticket(4711, "urgent", &[]).await;
    eventually("escalated", || async {
        !h.vendors.pagerduty.escalations().is_empty()
    })
    .await;
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "escalated before the deadline"
    );
    let inc = h.vendors.pagerduty.incident_by_key(KEY).expect("incident");
    assert_eq!(h.vendors.pagerduty.escalations(), vec![(inc.id.clone(), 2)]);
    eventually("note added", || async {
        h.vendors.pagerduty.incident_by_key(KEY).is_some_and(|i| {
            i.notes
                .iter()
                .any(|n| n.contains("No acknowledgement within 300ms"))
        })
    })
    .await;
    assert_eq!(h.incident(1).await["incident"]["level"], 2);
}

async fn ack_from_the_phone_app_stops_escalation_and_asks_the_customer(b: Backend) {
    let Some(h) = Harness::started_on(b, "ack_timeout = \"700ms\"").await else {
        return;
    };
    h.paged(4711).await;
    h.vendors
        .pagerduty
        .acknowledge(KEY, "Ana Engineer")
        .await
        .expect("ack webhook accepted");
    eventually("customer asked", || async {
        !h.vendors.zendesk.comments(4711).is_empty()
    })
    .await;
    let c = &h.vendors.zendesk.comments(4711)[0];
    assert!(c.public);
    assert!(
        c.body.contains("Ana Engineer") && c.body.contains("Phone, Skype, WebEx or Hangouts"),
        "{}",
        c.body
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        h.vendors.pagerduty.escalations().is_empty(),
        "acknowledged incidents are not escalated"
    );
    assert_eq!(h.incident(1).await["incident"]["status"], "acknowledged");
    // The webhook delivered again (PagerDuty is at-least-once) changes nothing.
    assert_eq!(h.vendors.pagerduty.redeliver_last_webhook().await, Ok(200));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.vendors.zendesk.comments(4711).len(), 1);
}

async fn ack_is_learned_by_polling_when_webhooks_are_lost(b: Backend) {
    let extra = Extra {
        policy: "ack_timeout = \"5s\"".into(),
        pagerduty: "poll_interval = \"100ms\"".into(),
        ..Extra::default()
    };
    let Some(mut h) = Harness::new_on(b, Options::default(), extra).await else {
        return;
    };
    h.start().await;
    h.paged(4711).await;
    // Point PagerDuty's webhooks nowhere: the ack is only visible by polling.
    h.vendors
        .pagerduty
        .set_webhook("http://127.0.0.1:9/lost".into(), "x".into());
    let _ = h.vendors.pagerduty.acknowledge(KEY, "Ana Engineer").await;
    eventually("ack learned by polling", || async {
        h.vendors.zendesk.comments(4711).len() == 1
    })
    .await;
    assert_eq!(h.incident(1).await["incident"]["acked"][0], "Ana Engineer");
}

async fn cli_ack_comments_and_acknowledges_in_pagerduty_too(b: Backend) {
    let Some(h) = Harness::started_on(b, "ack_timeout = \"2s\"").await else {
        return;
    };
    h.ticket(4711, "urgent", &[]).await;
    let (status, body) = h
        .admin(
            Method::POST,
            "/incidents/1/ack",
            Some(json!({"by": "ana@acme.example"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    eventually("Zendesk comment", || async {
        h.vendors.zendesk.comments(4711).len() == 1
    })
    .await;
    eventually("PagerDuty acknowledged", || async {
        h.vendors
            .pagerduty
            .incident_by_key(KEY)
            .is_some_and(|i| i.status == "acknowledged")
    })
    .await;
}

async fn resolve_disarms_every_timer(b: Backend) {
    let Some(h) = Harness::started_on(b, "ack_timeout = \"400ms\"").await else {
        return;
    };
    h.ticket(4711, "urgent", &[]).await;
    let (status, _) = h
        .admin(
            Method::POST,
            "/incidents/1/resolve",
            Some(json!({"by": "ana@acme.example"})),
        )
        .await;
    assert_eq!(status, 200);
    let body = h.incident(1).await;
    assert_eq!(body["incident"]["status"], "resolved");
    assert_eq!(
        body["incident"]["deadlines"],
        json!({"ack": null, "crisis": null, "fallback": null, "deprecate": null})
    );
    eventually("resolved in PagerDuty", || async {
        h.vendors
            .pagerduty
            .incident_by_key(KEY)
            .is_some_and(|i| i.status == "resolved")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(h.vendors.pagerduty.escalations().is_empty());
}

async fn zendesk_solved_resolves_the_incident(b: Backend) {
    let Some(h) = Harness::started_on(b, "").await else {
        return;
    };
    h.ticket(4711, "urgent", &[]).await;
    h.vendors.zendesk.set_status(4711, "solved");
    assert_eq!(
        h.vendors
            .zendesk
            .send_webhook(&h.url("/webhooks/zendesk"), 4711)
            .await,
        Ok(200)
    );
    assert_eq!(h.incident(1).await["incident"]["status"], "resolved");
}

async fn unsigned_badly_signed_and_stale_webhooks_are_refused_and_stored_nowhere(b: Backend) {
    let Some(h) = Harness::started_on(b, "").await else {
        return;
    };
    h.ticket(1, "normal", &[]).await; // seeds the fake; not an emergency
    let body = h
        .vendors
        .zendesk
        .webhook_body(1)
        .replace("\"Normal\"", "\"Urgent\"");
    let url = h.url("/webhooks/zendesk");
    let http = reqwest::Client::new();
    let post = |sig: Option<String>, ts: Option<String>| {
        let mut r = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(s) = sig {
            r = r.header("X-Zendesk-Webhook-Signature", s);
        }
        if let Some(t) = ts {
            r = r.header("X-Zendesk-Webhook-Signature-Timestamp", t);
        }
        r.send()
    };
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stale =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() - Duration::from_secs(600))
            .to_string();
    let good = sign::zendesk(secrets::ZD_WEBHOOK, &now, body.as_bytes());
    assert_eq!(post(None, None).await.unwrap().status(), 401, "unsigned");
    assert_eq!(
        post(
            Some(sign::zendesk("wrong", &now, body.as_bytes())),
            Some(now.clone())
        )
        .await
        .unwrap()
        .status(),
        401
    );
    assert_eq!(
        post(Some(good.clone()), Some(stale.clone()))
            .await
            .unwrap()
            .status(),
        401,
        "timestamp swapped"
    );
    let stale_sig = sign::zendesk(secrets::ZD_WEBHOOK, &stale, body.as_bytes());
    assert_eq!(
        post(Some(stale_sig), Some(stale)).await.unwrap().status(),
        401,
        "stale"
    );
    let pd = h
        .vendors
        .pagerduty
        .send_webhook_raw(r#"{"event":{}}"#, Some("v1=00"), "x")
        .await;
    assert_eq!(pd, Ok(401));
    assert_eq!(h.incident_count().await, 0);
    assert!(h.vendors.pagerduty.events().is_empty());
    // The same body correctly signed is accepted: the refusals were about the signature.
    assert_eq!(post(Some(good), Some(now)).await.unwrap().status(), 200);
    assert_eq!(h.incident_count().await, 1);
}

async fn malformed_json_is_a_400_and_stores_nothing(b: Backend) {
    let Some(h) = Harness::started_on(b, "").await else {
        return;
    };
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let http = reqwest::Client::new();
    for body in ["{not json", r#"{"ticket":{"id":"{{ticket.id}}"}}"#, "[]"] {
        let resp = http
            .post(h.url("/webhooks/zendesk"))
            .header("content-type", "application/json")
            .header(
                "X-Zendesk-Webhook-Signature",
                sign::zendesk(secrets::ZD_WEBHOOK, &now, body.as_bytes()),
            )
            .header("X-Zendesk-Webhook-Signature-Timestamp", &now)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
    }
    assert_eq!(h.incident_count().await, 0);
}

async fn pagerduty_500_then_202_delivers_exactly_one_page(b: Backend) {
    let Some(h) = Harness::started_on(b, "").await else {
        return;
    };
    h.vendors.pagerduty.events_faults.push(
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        2,
    );
    h.ticket(4711, "urgent", &[]).await;
    eventually("paged after retries", || async {
        h.vendors.pagerduty.opened_for(KEY) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.triggers(KEY), 1);
    let body = h.incident(1).await;
    let trigger = &body["outbox"][0];
    assert_eq!(trigger["state"], "delivered");
    assert_eq!(trigger["attempts"], 3, "two 500s, then success: {trigger}");
}

async fn a_deadline_that_passed_while_down_fires_at_once_on_restart(b: Backend) {
    let Some(mut h) = Harness::started_on(b, "ack_timeout = \"1s\"").await else {
        return;
    };
    h.paged(4711).await;
    h.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        h.vendors.pagerduty.escalations().is_empty(),
        "nobody escalates while pagerd is down"
    );
    let restarted = Instant::now();
    h.start().await;
    eventually("overdue escalation after restart", || async {
        !h.vendors.pagerduty.escalations().is_empty()
    })
    .await;
    assert!(
        restarted.elapsed() < Duration::from_secs(2),
        "took {:?}",
        restarted.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.vendors.pagerduty.escalations().len(), 1);
    assert_eq!(h.triggers(KEY), 1, "the restart did not page again");
}

async fn admin_api_needs_the_token(b: Backend) {
    let Some(h) = Harness::started_on(b, "").await else {
        return;
    };
    let http = reqwest::Client::new();
    let none = http.get(h.url("/api/v1/incidents")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = http
        .get(h.url("/api/v1/incidents"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let (status, _) = h.admin(Method::GET, "/incidents", None).await;
    assert_eq!(status, 200);
    let by = Some(json!({"by": "ana@acme.example"}));
    let (status, body) = h.admin(Method::POST, "/incidents/99/ack", by).await;
    assert_eq!(status, 404, "{body}");
    // Nobody named, or a login instead of an e-mail: refused.
    let (status, body) = h.admin(Method::POST, "/incidents/1/ack", None).await;
    assert_eq!(status, 400, "{body}");
    let root = Some(json!({"by": "root"}));
    let (status, body) = h.admin(Method::POST, "/incidents/1/ack", root).await;
    assert_eq!(status, 400, "{body}");
}

/// `/metrics` as a Prometheus server reads it.
async fn scrape(h: &Harness) -> (String, prometheus_parse::Scrape) {
    let resp = reqwest::get(h.url("/metrics")).await.expect("scraped");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()[reqwest::header::CONTENT_TYPE].clone();
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    let text = resp.text().await.expect("body");
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("a valid exposition");
    (text, parsed)
}

/// The value of sample `name` whose labels include `labels`.
fn sample(p: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    use prometheus_parse::Value;
    p.samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// Whether `name` is a histogram with buckets up to `+Inf`.
fn is_histogram(p: &prometheus_parse::Scrape, name: &str) -> bool {
    p.samples.iter().any(|s| {
        s.metric == name
            && matches!(&s.value, prometheus_parse::Value::Histogram(b)
                if b.iter().any(|c| c.less_than.is_infinite()))
    })
}

async fn metrics_and_readiness_report(b: Backend) {
    let Some(h) = Harness::started_on(b, "").await else {
        return;
    };
    // On PostgreSQL the instance leads once it has taken the lease, a moment
    // after it answers: wait for that, as an operator's alert would.
    h.eventually("this instance leads", || async {
        let (_, status) = h.admin(Method::GET, "/status", None).await;
        status["role"] == "leader"
    })
    .await;
    // Before anything happens: histograms, zero counters, the build.
    let (text, p) = scrape(&h).await;
    for name in [
        "pagerd_page_latency_seconds",
        "pagerd_time_to_ack_seconds",
        "pagerd_timer_lateness_seconds",
        "pagerd_delivery_duration_seconds",
    ] {
        assert!(is_histogram(&p, name), "{name} histogram:\n{text}");
    }
    assert_eq!(
        sample(&p, "pagerd_page_latency_seconds_count", &[]),
        Some(0.0)
    );
    let zero = [
        (
            "pagerd_webhooks_total",
            [("source", "zendesk"), ("result", "accepted")],
        ),
        (
            "pagerd_webhooks_total",
            [("source", "pagerduty"), ("result", "unauthorized")],
        ),
        (
            "pagerd_deliveries_total",
            [("lane", "pagerduty"), ("result", "delivered")],
        ),
        (
            "pagerd_deliveries_total",
            [("lane", "email"), ("result", "failed")],
        ),
    ];
    for (name, labels) in &zero {
        assert_eq!(
            sample(&p, name, labels),
            Some(0.0),
            "{name}{labels:?}:\n{text}"
        );
    }
    assert_eq!(
        sample(&p, "pagerd_events_total", &[("result", "created")]),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &p,
            "pagerd_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&p, "pagerd_leader", &[]), Some(1.0));
    assert!(
        sample(&p, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0),
        "{text}"
    );
    promtool_check_metrics(&text).await;

    h.paged(4711).await;
    // PagerDuty's acceptance is committed just after the fake records it.
    eventually("page latency observed", || async {
        sample(
            &scrape(&h).await.1,
            "pagerd_page_latency_seconds_count",
            &[],
        ) == Some(1.0)
    })
    .await;
    let (text, p) = scrape(&h).await;
    assert_eq!(
        sample(
            &p,
            "pagerd_webhooks_total",
            &[("source", "zendesk"), ("result", "accepted")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&p, "pagerd_incidents_open", &[("state", "triggered")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &p,
            "pagerd_deliveries_total",
            &[("lane", "pagerduty"), ("result", "delivered")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &p,
            "pagerd_delivery_duration_seconds_count",
            &[("lane", "pagerduty"), ("result", "delivered")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&p, "pagerd_deadlines_armed", &[]),
        Some(1.0),
        "{text}"
    );
    let latency = sample(&p, "pagerd_page_latency_seconds_sum", &[]).unwrap_or(-1.0);
    assert!((0.0..10.0).contains(&latency), "{latency}\n{text}");
    assert!(
        text.contains("pagerd_incidents_open{state=\"triggered\"} 1\n"),
        "{text}"
    );
    promtool_check_metrics(&text).await;
    let http = reqwest::Client::new();
    let ready: serde_json::Value = http
        .get(h.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready.as_object().map(|o| o.len()), Some(1), "{ready}");
    let (_, status) = h.admin(reqwest::Method::GET, "/status", None).await;
    assert_eq!(status["status"], "ready");
    assert_eq!(status["armed_deadlines"], 1);
    assert_eq!(status["store"]["open_incidents"], 1);
}

/// `promtool check metrics` (Prometheus's own linter of expositions), when
/// installed (CI installs it).
async fn promtool_check_metrics(text: &str) {
    use tokio::io::AsyncWriteExt as _;
    let Ok(mut child) = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed: exposition lint skipped");
        return;
    };
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("written");
    drop(stdin);
    let out = child.wait_with_output().await.expect("promtool ran");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every scenario above runs on both stores.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name(crate::util::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name(crate::util::Backend::Postgres).await } )*
        }
    };
}

on_both_stores!(
    emergency_ticket_pages_pagerduty_with_a_link_back,
    emergency_tag_pages_and_ordinary_ticket_does_not,
    the_same_ticket_pages_once_even_when_sent_at_once,
    no_ack_in_time_escalates_to_level_two_with_a_note,
    ack_from_the_phone_app_stops_escalation_and_asks_the_customer,
    ack_is_learned_by_polling_when_webhooks_are_lost,
    cli_ack_comments_and_acknowledges_in_pagerduty_too,
    resolve_disarms_every_timer,
    zendesk_solved_resolves_the_incident,
    unsigned_badly_signed_and_stale_webhooks_are_refused_and_stored_nowhere,
    malformed_json_is_a_400_and_stores_nothing,
    pagerduty_500_then_202_delivers_exactly_one_page,
    a_deadline_that_passed_while_down_fires_at_once_on_restart,
    admin_api_needs_the_token,
    metrics_and_readiness_report,
);

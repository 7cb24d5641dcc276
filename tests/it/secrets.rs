//! Secret hygiene: a whole scenario, errors included, with debug logging;
//! no secret appears in any log line, metric, API answer or CLI output.

use std::time::Duration;

use pagerd::fakes::Fault;
use pagerd::fakes::stand_ins::{Extra, Options, StandIns, secrets};

use crate::util::{Proc, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_metrics_errors_or_cli_output() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        slack: true,
        google: true,
        email: true,
        ..Options::default()
    };
    let vendors = StandIns::start(opts).await.unwrap();
    let extra = Extra {
        policy:
            "ack_timeout = \"300ms\"\ncrisis_after = \"600ms\"\ndoc_deprecate_after = \"200ms\""
                .into(),
        pagerduty: "poll_interval = \"100ms\"".into(),
        zendesk: "poll_interval = \"100ms\"".into(),
        email: "fallback_after = \"100ms\"".into(),
        ..Extra::default()
    };
    let mut daemon = Proc::for_stand_ins(&vendors, dir.path(), &extra);
    let addr = daemon.addr;
    daemon.rust_log = "pagerd=trace,tower_http=trace,reqwest=debug,hyper=debug".into();
    daemon.start().await;
    vendors.pagerduty.set_webhook(
        format!("http://{addr}/webhooks/pagerduty"),
        secrets::PD_WEBHOOK.into(),
    );

    // Failures on every integration, so error paths log too.
    vendors.pagerduty.events_faults.push(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        2,
    );
    vendors.pagerduty.rest_faults.push(
        Fault::Status {
            status: 401,
            retry_after: None,
        },
        1,
    );
    vendors.zendesk.faults.push(
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        1,
    );
    vendors.slack.as_ref().unwrap().fail_next(1, "invalid_auth");
    vendors.google.as_ref().unwrap().faults.push(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
    );
    vendors
        .smtp
        .as_ref()
        .unwrap()
        .fail_next(1, "451 4.3.0 try later");

    vendors
        .zendesk
        .upsert_ticket(crate::util::urgent(4711, "Production instance down"));
    assert_eq!(
        vendors
            .zendesk
            .send_webhook(&format!("http://{addr}/webhooks/zendesk"), 4711)
            .await,
        Ok(200)
    );
    eventually("page", || async {
        vendors.pagerduty.opened_for("zendesk-4711") == 1
    })
    .await;
    eventually("crisis doc", || async {
        !vendors.google.as_ref().unwrap().docs().is_empty()
    })
    .await;
    let _ = vendors.pagerduty.acknowledge("zendesk-4711", "Ana").await;
    eventually("customer asked", || async {
        !vendors.zendesk.comments(4711).is_empty()
    })
    .await;

    let http = reqwest::Client::new();
    let mut outputs = Vec::new();
    for (path, token) in [
        ("/metrics", None),
        ("/readyz", None),
        ("/api/v1/incidents/1", Some(secrets::ADMIN)),
        ("/api/v1/incidents", Some("wrong")),
    ] {
        let mut req = http.get(format!("http://{addr}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        outputs.push(req.send().await.unwrap().text().await.unwrap());
    }
    let bad_sig = http
        .post(format!("http://{addr}/webhooks/zendesk"))
        .header("content-type", "application/json")
        .header("X-Zendesk-Webhook-Signature", "AAAA")
        .header("X-Zendesk-Webhook-Signature-Timestamp", "0")
        .body("{}")
        .send()
        .await
        .unwrap();
    outputs.push(bad_sig.text().await.unwrap());
    let cli = {
        let config = daemon.config.clone();
        tokio::task::spawn_blocking(move || {
            ["show", "list"].map(|cmd| {
                let mut args = vec![
                    "--config".to_string(),
                    config.display().to_string(),
                    "incidents".into(),
                    cmd.into(),
                ];
                if cmd == "show" {
                    args.push("1".into());
                }
                let o = std::process::Command::new(env!("CARGO_BIN_EXE_pagerd"))
                    .args(&args)
                    .output()
                    .unwrap();
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
        })
        .await
        .unwrap()
    };
    outputs.extend(cli);
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.kill().await;
    let logged = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(
        logged.lines().count() > 50,
        "debug logging was on: {} lines",
        logged.lines().count()
    );
    outputs.push(logged);

    let key_line = pagerd::fakes::google::DEMO_KEY_PEM
        .lines()
        .nth(3)
        .unwrap()
        .to_string();
    let all = [
        secrets::ROUTING_KEY,
        secrets::PD_API_TOKEN,
        secrets::PD_WEBHOOK,
        secrets::ZD_API_TOKEN,
        secrets::ZD_WEBHOOK,
        secrets::SLACK_BOT,
        secrets::SLACK_SIGNING,
        secrets::ADMIN,
        secrets::GITLAB_TOKEN,
        &key_line,
    ];
    for text in &outputs {
        for secret in all {
            assert!(
                !text.contains(secret),
                "a secret leaked into: {}",
                &text[..text.len().min(2000)]
            );
        }
        // Zendesk's Basic credentials, encoded.
        assert!(!text.contains("Basic "), "basic auth header leaked");
    }
}

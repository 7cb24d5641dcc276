//! The rest of the handbook against the real daemon: an acknowledgement
//! that goes stale is paged again, and a progress note renews it.

use std::time::Duration;

use crate::util::{Backend, Harness, eventually};

fn pagerd(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pagerd"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run pagerd")
}

async fn lease(h: &Harness) -> Option<i64> {
    h.incident(1).await["incident"]["deadlines"]["lease"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_ack_is_re_paged_once_per_lease_and_a_note_renews_it() {
    let Some(h) =
        Harness::started_on(Backend::Sqlite, "ack_timeout = \"1h\"\nack_lease = \"2s\"").await
    else {
        return;
    };
    h.ticket(8101, "urgent", &[]).await;
    h.paged(8101).await;
    let cfg = h.config_path.clone();
    let ack = tokio::task::spawn_blocking(move || {
        pagerd(
            &cfg,
            &["incidents", "ack", "#8101", "--as", "ana@acme.example"],
        )
    })
    .await
    .expect("cli");
    assert!(ack.status.success(), "{ack:?}");
    eventually("the stale acknowledgement is paged again", || async {
        !h.vendors.pagerduty.escalations().is_empty()
    })
    .await;
    let first = h.vendors.pagerduty.escalations();
    assert_eq!(first.len(), 1, "one re-page per lease: {first:?}");
    assert_eq!(first[0].1, 1, "re-paged at the current level");
    let incident = h
        .vendors
        .pagerduty
        .incident_by_key("zendesk-8101")
        .expect("incident");
    assert!(
        incident
            .notes
            .iter()
            .any(|n| n.contains("no progress for 2s")),
        "the note says why: {:?}",
        incident.notes
    );
    assert_eq!(h.incident(1).await["incident"]["status"], "acknowledged");

    // A progress note from the CLI renews the lease and reaches PagerDuty.
    let before = lease(&h).await.expect("lease re-armed");
    let cfg = h.config_path.clone();
    let note = tokio::task::spawn_blocking(move || {
        pagerd(
            &cfg,
            &[
                "incidents",
                "note",
                "1",
                "--as",
                "ana@acme.example",
                "-m",
                "failing over the DB",
            ],
        )
    })
    .await
    .expect("cli");
    assert!(note.status.success(), "{note:?}");
    let after = lease(&h).await.expect("lease");
    assert!(
        after > before,
        "the note renewed the lease: {before} -> {after}"
    );
    eventually("the note reaches PagerDuty", || async {
        h.vendors
            .pagerduty
            .incident_by_key("zendesk-8101")
            .is_some_and(|i| i.notes.iter().any(|n| n.contains("failing over the DB")))
    })
    .await;
    let explain = {
        let cfg = h.config_path.clone();
        tokio::task::spawn_blocking(move || pagerd(&cfg, &["incidents", "explain", "1"]))
            .await
            .expect("cli")
    };
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        text.contains("re-pages level 1 unless there is progress"),
        "{text}"
    );
    assert!(text.contains("noted progress"), "{text}");

    // Resolution ends the lease: nothing more is paged.
    let cfg = h.config_path.clone();
    let done = tokio::task::spawn_blocking(move || {
        pagerd(
            &cfg,
            &["incidents", "resolve", "1", "--as", "ana@acme.example"],
        )
    })
    .await
    .expect("cli");
    assert!(done.status.success(), "{done:?}");
    let escalations = h.vendors.pagerduty.escalations().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.vendors.pagerduty.escalations().len(), escalations);
    assert_eq!(lease(&h).await, None);
}

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
    eventually("the re-page's note says why", || async {
        h.vendors
            .pagerduty
            .incident_by_key("zendesk-8101")
            .is_some_and(|i| i.notes.iter().any(|n| n.contains("no progress for 2s")))
    })
    .await;
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

/// The progress events of incident 1's journal: `(who, via)`.
async fn progress(h: &Harness) -> Vec<(String, String)> {
    h.incident(1).await["journal"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "progress")
        .map(|e| {
            let by = &e["event"]["by"];
            let name = by.as_str().or_else(|| by["name"].as_str()).unwrap_or("?");
            (
                name.to_string(),
                e["event"]["via"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pagerduty_note_by_a_human_renews_the_lease_and_pagerds_own_note_does_not() {
    let Some(h) =
        Harness::started_on(Backend::Sqlite, "ack_timeout = \"1h\"\nack_lease = \"3s\"").await
    else {
        return;
    };
    let pd = &h.vendors.pagerduty;
    // pagerd's own notes come back as incident.annotated, as PagerDuty
    // sends them to a subscription with that event.
    pd.echo_notes(true);
    h.paged(8201).await;
    pd.acknowledge("zendesk-8201", "Ana Engineer")
        .await
        .unwrap();
    let acked = std::time::Instant::now();
    eventually("acknowledged", || async {
        h.incident(1).await["incident"]["status"] == "acknowledged"
    })
    .await;
    let first = lease(&h).await.expect("lease armed");

    // Half-way through the lease, a responder writes a note in PagerDuty.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pd.annotate("zendesk-8201", "Bo Builder", "failing over the DB")
        .await
        .unwrap();
    let renewed = lease(&h).await.expect("lease");
    assert!(renewed >= first + 1_000, "renewed: {first} -> {renewed}");
    assert_eq!(
        progress(&h).await,
        [("Bo Builder".to_string(), "pagerduty".to_string())]
    );
    // Past the old expiry: nobody re-paged.
    let old_expiry = Duration::from_millis(3_400);
    tokio::time::sleep(old_expiry.saturating_sub(acked.elapsed())).await;
    assert!(
        pd.escalations().is_empty(),
        "the note renewed the lease: {:?}",
        pd.escalations()
    );

    // At the renewed expiry: re-paged, with a note; that note comes back
    // as incident.annotated and renews nothing.
    eventually("re-paged at the renewed expiry", || async {
        !pd.escalations().is_empty()
    })
    .await;
    eventually(
        "pagerd's re-page note came back and was answered",
        || async {
            pd.delivered()
                .iter()
                .filter(|(what, status)| what.starts_with("incident.annotated") && *status == 200)
                .count()
                >= 2
        },
    )
    .await;
    let after_repage = lease(&h).await.expect("lease");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        lease(&h).await,
        Some(after_repage),
        "its own note renews nothing"
    );
    assert_eq!(progress(&h).await.len(), 1, "{:?}", progress(&h).await);
    assert_eq!(pd.escalations().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_reply_on_the_ticket_renews_the_lease_once() {
    let Some(h) =
        Harness::started_on(Backend::Sqlite, "ack_timeout = \"1h\"\nack_lease = \"30s\"").await
    else {
        return;
    };
    h.paged(8301).await;
    let pd = &h.vendors.pagerduty;
    pd.acknowledge("zendesk-8301", "Ana Engineer")
        .await
        .unwrap();
    eventually("acknowledged", || async {
        h.incident(1).await["incident"]["status"] == "acknowledged"
    })
    .await;
    let zd = &h.vendors.zendesk;
    let url = h.url("/webhooks/zendesk");
    // An update without a new reply (pagerd's own public comment, an
    // internal note): no progress.
    let requester = zd.requester_id(8301).unwrap();
    zd.add_comment(8301, requester, "still down!", true)
        .unwrap();
    zd.add_comment(
        8301,
        pagerd::fakes::zendesk::HUMAN_AGENT_ID,
        "looking",
        false,
    )
    .unwrap();
    let reads = || {
        zd.requests
            .all()
            .iter()
            .filter(|r| *r == "GET /api/v2/tickets/8301/comments.json")
            .count()
    };
    assert_eq!(zd.send_webhook(&url, 8301).await, Ok(200));
    eventually("the comments are read", || async { reads() >= 1 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(progress(&h).await.is_empty(), "{:?}", progress(&h).await);

    // An agent replies publicly: progress, once, however many webhooks follow.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = lease(&h).await.expect("lease");
    zd.reply_as_agent(8301, "We are failing over the database now.")
        .unwrap();
    assert_eq!(zd.send_webhook(&url, 8301).await, Ok(200));
    eventually("the reply is progress", || async {
        progress(&h).await.len() == 1
    })
    .await;
    assert_eq!(progress(&h).await[0].1, "zendesk");
    assert!(lease(&h).await.expect("lease") > before, "renewed");
    for _ in 0..2 {
        let n = reads();
        assert_eq!(zd.send_webhook(&url, 8301).await, Ok(200));
        eventually("the comments are read again", || async { reads() > n }).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(progress(&h).await.len(), 1, "once per reply");
    eventually("the reply reached PagerDuty as a note", || async {
        pd.incident_by_key("zendesk-8301")
            .is_some_and(|i| i.notes.iter().any(|n| n.contains("replied publicly")))
    })
    .await;
}

// ---- after the crisis --------------------------------------------------------

const KEY: &str = "zendesk-4711";
const CHANNELS: [&str; 3] = ["infrastructure", "development", "general"];

fn with_everything() -> pagerd::fakes::stand_ins::Options {
    pagerd::fakes::stand_ins::Options {
        slack: true,
        google: true,
        email: true,
        ..Default::default()
    }
}

fn after_crisis_extra() -> pagerd::fakes::stand_ins::Extra {
    pagerd::fakes::stand_ins::Extra {
        policy: "ack_timeout = \"1h\"\nhandoff_after = \"1h\"\ntimezone = \"Europe/Amsterdam\""
            .into(),
        pagerduty: "poll_interval = \"off\"".into(),
        zendesk: "poll_interval = \"off\"".into(),
        people: "\"ana@acme.example\" = \"Ana Engineer\"\n\"bo@acme.example\" = \"Bo Builder\""
            .into(),
        ..Default::default()
    }
}

/// Posts an admin action on incident 1 to the daemon at `base`.
async fn act_on(base: &str, verb: &str, by: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/incidents/1/{verb}"))
        .bearer_auth(pagerd::fakes::stand_ins::secrets::ADMIN)
        .json(&serde_json::json!({ "by": by }))
        .send()
        .await
        .expect("admin API");
    assert_eq!(resp.status(), 200, "{verb}");
}

/// Everything the after-crisis hand-off made, once each: one calendar event
/// with a Meet link and both responders, one follow-up issue linking the
/// call and the doc, the timeline once in the doc, the links in every
/// thread.
async fn assert_after_care_once(vendors: &pagerd::fakes::stand_ins::StandIns) {
    let google = vendors.google.as_ref().expect("google");
    let slack = vendors.slack.as_ref().expect("slack");
    eventually(
        "the hand-off call and the follow-up issue are linked in every thread",
        || async {
            CHANNELS.iter().all(|c| {
                let replies = slack.replies_in(c);
                replies.iter().any(|m| m.text.contains("Hand-off call"))
                    && replies.iter().any(|m| m.text.contains("Follow-up issue"))
            })
        },
    )
    .await;
    // The timeline goes through the doc's own lane (behind its sharing),
    // not the calendar's and GitLab's: it may land after the links.
    eventually("the timeline in the doc", || async {
        google
            .docs()
            .first()
            .is_some_and(|d| d.text.contains("Timeline of incident 1"))
    })
    .await;
    let events = google.events();
    assert_eq!(events.len(), 1, "one hand-off call: {events:?}");
    let call = &events[0];
    let meet = call.hangout_link.clone().expect("a Meet link");
    let mut attendees = call.attendees.clone();
    attendees.sort();
    assert_eq!(attendees, vec!["ana@acme.example", "bo@acme.example"]);
    let issues = vendors.gitlab.issues();
    assert_eq!(issues.len(), 1, "one follow-up issue: {issues:?}");
    let issue = &issues[0];
    assert!(
        issue.title.starts_with("Crisis follow-up: #4711"),
        "{}",
        issue.title
    );
    assert!(issue.description.contains(&meet), "{}", issue.description);
    assert!(
        issue
            .description
            .contains("- [ ] Move the pertinent know-how")
    );
    let doc = &google.docs()[0];
    assert_eq!(
        doc.text.matches("Timeline of incident 1").count(),
        1,
        "the timeline once in the doc:\n{}",
        doc.text
    );
    assert!(
        doc.text.contains("Times in Europe/Amsterdam."),
        "{}",
        doc.text
    );
    assert!(
        doc.text.contains("resolved by Ana Engineer"),
        "{}",
        doc.text
    );
    let notes = vendors
        .pagerduty
        .incident_by_key(KEY)
        .expect("incident")
        .notes;
    assert_eq!(
        notes.iter().filter(|n| n.contains(&meet)).count(),
        1,
        "the call on the PagerDuty incident once: {notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_crisis_books_the_handoff_opens_the_follow_up_and_writes_the_timeline() {
    let mut h = Harness::new(with_everything(), after_crisis_extra()).await;
    h.start().await;
    h.ticket(4711, "urgent", &[]).await;
    h.paged(4711).await;
    let base = h.url("");
    act_on(&base, "ack", "ana@acme.example").await;
    act_on(&base, "join", "bo@acme.example").await;
    let google = h.vendors.google.as_ref().expect("google");
    eventually("the crisis doc", || async { !google.docs().is_empty() }).await;
    act_on(&base, "resolve", "ana@acme.example").await;
    assert_after_care_once(&h.vendors).await;
    // The follow-up issue and the call are on the incident too.
    let inc = h.incident(1).await;
    let crisis = &inc["incident"]["crisis"];
    assert!(crisis["handoff"]["meet_url"].is_string(), "{inc}");
    assert!(crisis["follow_up"].is_string(), "{inc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_after_care_happens_once_across_kill_dash_nine() {
    use pagerd::fakes::stand_ins::StandIns;
    let dir = tempfile::tempdir().expect("tempdir");
    let vendors = StandIns::start(with_everything()).await.expect("stand-ins");
    let mut p = crate::util::Proc::for_stand_ins(&vendors, dir.path(), &after_crisis_extra());
    p.start().await;
    vendors.pagerduty.set_webhook(
        format!("http://{}/webhooks/pagerduty", p.addr),
        pagerd::fakes::stand_ins::secrets::PD_WEBHOOK.into(),
    );
    let base = format!("http://{}", p.addr);
    vendors
        .zendesk
        .upsert_ticket(crate::util::urgent(4711, "Production instance down"));
    let status = vendors
        .zendesk
        .send_webhook(&format!("{base}/webhooks/zendesk"), 4711)
        .await
        .expect("webhook");
    assert_eq!(status, 200);
    eventually("paged", || async { vendors.pagerduty.opened_for(KEY) == 1 }).await;
    act_on(&base, "ack", "ana@acme.example").await;
    act_on(&base, "join", "bo@acme.example").await;
    let google = vendors.google.as_ref().expect("google");
    eventually("the crisis doc", || async { !google.docs().is_empty() }).await;
    // Slow the vendors down so that the kills land mid-delivery.
    for faults in [&google.faults, &vendors.gitlab.faults] {
        faults.push(pagerd::fakes::Fault::Delay(Duration::from_millis(150)), 6);
    }
    act_on(&base, "resolve", "ana@acme.example").await;
    for pause in [40, 120, 200] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        p.kill().await;
        p.start().await;
    }
    assert_after_care_once(&vendors).await;
    p.kill().await;
}

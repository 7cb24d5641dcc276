//! HackerOne reports, the real daemon against the stand-ins: a report pages
//! nobody; `remind_before` its deadline a reminder is posted in
//! `#security`, at the deadline an overdue notice in the reminder's thread;
//! a public reply by an agent stops the clock; restarts, crashes between
//! post and record, and Slack faults neither lose a notice nor post it
//! twice; the CLI shows it all.

use std::time::Duration;

use pagerd::fakes::Fault;
use pagerd::fakes::slack::{FakeSlack, SlackRecord};
use pagerd::fakes::stand_ins::{Extra, Options};
use pagerd::fakes::zendesk::TicketSpec;
use serde_json::Value;

use crate::util::{Backend, Harness, eventually};

/// A clock of seconds: every hour of the week is business time.
fn hackerone(respond_within: &str, remind_before: &str) -> String {
    format!(
        "timezone = \"UTC\"\nbusiness_hours = \"00:00-24:00\"\n\
         business_days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\n\
         respond_within = {respond_within:?}\nremind_before = {remind_before:?}"
    )
}

/// A daemon with Slack and `[hackerone]` (these extra lines), pollers off
/// unless `zendesk` says otherwise; `None` when `backend` is not available.
async fn started(backend: Backend, hackerone_lines: &str, zendesk: &str) -> Option<Harness> {
    let extra = Extra {
        pagerduty: "poll_interval = \"off\"".into(),
        zendesk: zendesk.into(),
        hackerone: hackerone_lines.into(),
        ..Extra::default()
    };
    let opts = Options {
        slack: true,
        ..Options::default()
    };
    let mut h = Harness::new_on(backend, opts, extra).await?;
    h.start().await;
    Some(h)
}

const POLL_OFF: &str = "poll_interval = \"off\"";

/// A report from a researcher: tagged `hackerone`, `priority` as given.
fn report_ticket(id: u64, priority: &str) -> TicketSpec {
    TicketSpec {
        id,
        subject: "Stored XSS in <!channel> profile page".into(),
        priority: priority.into(),
        status: "new".into(),
        tags: vec!["hackerone".into()],
        requester_name: "Rita Researcher".into(),
        requester_email: "rita@researchers.example".into(),
        organization: String::new(),
    }
}

/// Seeds a report and posts its webhook; returns pagerd's status.
async fn report(h: &Harness, id: u64) -> u16 {
    h.vendors.zendesk.upsert_ticket(report_ticket(id, "normal"));
    h.vendors
        .zendesk
        .send_webhook(&h.url("/webhooks/zendesk"), id)
        .await
        .expect("webhook sent")
}

fn slack(h: &Harness) -> &FakeSlack {
    h.vendors.slack.as_ref().expect("slack")
}

/// The messages carrying `marker` (every channel and thread).
fn marked(h: &Harness, marker: &str) -> Vec<SlackRecord> {
    slack(h)
        .messages()
        .into_iter()
        .filter(|m| m.marker.as_deref() == Some(marker))
        .collect()
}

fn reminder_of(id: u64) -> String {
    format!("pagerd-report-{id}-reminder")
}

fn overdue_of(id: u64) -> String {
    format!("pagerd-report-{id}-overdue")
}

/// `GET /api/v1/reports/{id}`'s report.
async fn shown(h: &Harness, id: u64) -> Value {
    let (status, body) = h
        .admin(reqwest::Method::GET, &format!("/reports/{id}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["report"].clone()
}

async fn state_becomes(h: &Harness, id: u64, state: &str) {
    eventually(&format!("report {id} is {state}"), || async {
        shown(h, id).await["state"] == state
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_reminded_then_told_overdue_in_the_same_thread_and_pages_nobody() {
    let Some(h) = started(Backend::Sqlite, &hackerone("2s", "1s"), POLL_OFF).await else {
        return;
    };
    // Urgent, and still no page: a report is not an emergency.
    h.vendors
        .zendesk
        .upsert_ticket(report_ticket(9001, "urgent"));
    let status = h
        .vendors
        .zendesk
        .send_webhook(&h.url("/webhooks/zendesk"), 9001)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let watched = shown(&h, 9001).await;
    assert_eq!(watched["state"], "waiting");
    let created = h.vendors.zendesk.ticket(9001).unwrap()["created_at"].clone();
    assert_eq!(
        watched["created_at"], created,
        "the clock starts at creation"
    );

    eventually("the reminder", || async {
        !marked(&h, &reminder_of(9001)).is_empty()
    })
    .await;
    let reminder = marked(&h, &reminder_of(9001)).remove(0);
    assert_eq!(reminder.channel_name, "security");
    assert_eq!(reminder.thread_ts, None);
    let link = format!("<{}/agent/tickets/9001|#9001>", h.vendors.zendesk.url());
    assert!(reminder.text.contains(&link), "{}", reminder.text);
    assert!(
        reminder
            .text
            .contains("e-mail us at any time for an update"),
        "{}",
        reminder.text
    );
    assert!(
        reminder.text.contains("left") || reminder.text.contains("overdue by"),
        "the time left: {}",
        reminder.text
    );
    assert!(
        reminder.text.contains("&lt;!channel&gt;") && !reminder.text.contains("<!channel>"),
        "the researcher's title is data: {}",
        reminder.text
    );

    eventually("the overdue notice", || async {
        !marked(&h, &overdue_of(9001)).is_empty()
    })
    .await;
    let overdue = marked(&h, &overdue_of(9001)).remove(0);
    assert_eq!(overdue.thread_ts.as_deref(), Some(reminder.ts.as_str()));
    assert_eq!(overdue.channel_name, "security");
    assert!(overdue.text.contains("Overdue"), "{}", overdue.text);
    state_becomes(&h, 9001, "overdue").await;
    let r = shown(&h, 9001).await;
    assert_eq!(r["reminder"]["ts"], reminder.ts.as_str());

    // Nothing more, and nobody paged.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(marked(&h, &reminder_of(9001)).len(), 1);
    assert_eq!(marked(&h, &overdue_of(9001)).len(), 1);
    assert!(h.vendors.pagerduty.events().is_empty(), "nobody is paged");
    assert_eq!(h.incident_count().await, 0);
    let crisis_channels = ["infrastructure", "development", "general"];
    assert!(
        crisis_channels
            .iter()
            .all(|c| slack(&h).top_level_in(c).is_empty())
    );
    let metrics = reqwest::get(h.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pagerd_hackerone_reports{state=\"overdue\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("pagerd_hackerone_reports{state=\"waiting\"} 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_reply_by_an_agent_stops_the_clock() {
    // Reminder one second in, deadline four seconds in.
    let Some(h) = started(Backend::Sqlite, &hackerone("4s", "3s"), POLL_OFF).await else {
        return;
    };
    assert_eq!(report(&h, 9002).await, 200);
    eventually("the reminder", || async {
        !marked(&h, &reminder_of(9002)).is_empty()
    })
    .await;
    state_becomes(&h, 9002, "reminded").await;

    // The researcher asks again, an agent writes an internal note: the
    // clock runs on.
    let zd = &h.vendors.zendesk;
    let requester = zd.requester_id(9002).unwrap();
    zd.add_comment(9002, requester, "Any news?", true).unwrap();
    zd.add_comment(
        9002,
        pagerd::fakes::zendesk::HUMAN_AGENT_ID,
        "triaging",
        false,
    )
    .unwrap();
    let reads = || {
        zd.requests
            .all()
            .iter()
            .filter(|r| *r == "GET /api/v2/tickets/9002/comments.json")
            .count()
    };
    let before = reads();
    assert_eq!(
        zd.send_webhook(&h.url("/webhooks/zendesk"), 9002).await,
        Ok(200)
    );
    eventually("the comments are read", || async { reads() > before }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(shown(&h, 9002).await["state"], "reminded");

    // An agent replies publicly; the trigger's webhook tells pagerd.
    zd.reply_as_agent(9002, "Thank you, we are looking into it.")
        .unwrap();
    assert_eq!(
        zd.send_webhook(&h.url("/webhooks/zendesk"), 9002).await,
        Ok(200)
    );
    state_becomes(&h, 9002, "answered").await;
    let r = shown(&h, 9002).await;
    assert!(r["answered_at"].is_string(), "{r}");
    assert_eq!(r["business_seconds_left"], Value::Null);

    // Past the deadline: no overdue notice.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(marked(&h, &overdue_of(9002)).is_empty());
    assert_eq!(slack(&h).replies_in("security").len(), 0);
    assert_eq!(shown(&h, 9002).await["state"], "answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_list_and_show_on_the_command_line() {
    let Some(h) = started(Backend::Sqlite, &hackerone("1h", "10m"), POLL_OFF).await else {
        return;
    };
    assert_eq!(report(&h, 9003).await, 200);
    assert_eq!(report(&h, 9004).await, 200);
    h.vendors
        .zendesk
        .reply_as_agent(9004, "Thanks, triaged.")
        .unwrap();
    assert_eq!(
        h.vendors
            .zendesk
            .send_webhook(&h.url("/webhooks/zendesk"), 9004)
            .await,
        Ok(200)
    );
    state_becomes(&h, 9004, "answered").await;
    let token = h.dir.path().join("admin-token");
    let url = h.url("");
    let run = move |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pagerd"))
            .arg("--url")
            .arg(&url)
            .arg("--token-file")
            .arg(&token)
            .args(args)
            .env("TZ", "Europe/Amsterdam")
            .output()
            .expect("run pagerd");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let (json, list, show, show_json) = tokio::task::spawn_blocking(move || {
        (
            run(&["reports", "list", "--json"]),
            run(&["reports", "list"]),
            run(&["reports", "show", "#9003"]),
            run(&["reports", "show", "9004", "--json"]),
        )
    })
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&json).expect("JSON");
    let reports = v["reports"].as_array().expect("{\"reports\": [...]}");
    assert_eq!(reports.len(), 2, "{v}");
    for r in reports {
        for key in ["ticket", "respond_by", "state"] {
            assert!(r[key].is_string(), "{key}: {r}");
        }
        let respond_by = r["respond_by"].as_str().unwrap();
        assert!(respond_by.ends_with('Z'), "RFC 3339 in UTC: {respond_by}");
        assert!(
            respond_by.parse::<jiff::Timestamp>().is_ok(),
            "{respond_by}"
        );
    }
    let state = |t: &str| {
        reports
            .iter()
            .find(|r| r["ticket"] == t)
            .map(|r| r["state"].clone())
    };
    assert_eq!(state("9003"), Some("waiting".into()));
    assert_eq!(state("9004"), Some("answered".into()));

    assert!(list.contains("#9003"), "{list}");
    assert!(list.contains("waiting"), "{list}");
    assert!(
        list.contains("59m") && list.contains("left"),
        "time left: {list}"
    );
    assert!(list.contains("answered"), "{list}");
    assert!(list.contains("times in Europe/Amsterdam"), "{list}");
    assert!(show.contains("report    #9003"), "{show}");
    assert!(show.contains("due       "), "{show}");
    assert!(show.contains("of business time"), "{show}");
    assert!(!show.contains('\u{1b}'));
    let one: Value = serde_json::from_str(&show_json).unwrap();
    assert_eq!(one["report"]["ticket"], "9004");
    assert_eq!(one["report"]["state"], "answered");

    let (status, body) = h.admin(reqwest::Method::GET, "/reports/4711", None).await;
    assert_eq!(status, 404, "{body}");
}

/// A reminder posted before a restart is not posted again after it, and
/// the overdue notice still goes into its thread.
async fn restart_keeps_the_state(backend: Backend) {
    let Some(mut h) = started(backend, &hackerone("3s", "2s"), POLL_OFF).await else {
        return;
    };
    assert_eq!(report(&h, 9005).await, 200);
    state_becomes(&h, 9005, "reminded").await;
    let reminder = marked(&h, &reminder_of(9005)).remove(0);
    h.stop().await;
    h.start().await;
    assert_eq!(
        shown(&h, 9005).await["state"],
        "reminded",
        "kept across the restart"
    );
    eventually("the overdue notice after the restart", || async {
        !marked(&h, &overdue_of(9005)).is_empty()
    })
    .await;
    let overdue = marked(&h, &overdue_of(9005)).remove(0);
    assert_eq!(overdue.thread_ts.as_deref(), Some(reminder.ts.as_str()));
    state_becomes(&h, 9005, "overdue").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(marked(&h, &reminder_of(9005)).len(), 1, "not posted again");
    assert_eq!(marked(&h, &overdue_of(9005)).len(), 1);
    h.stop().await;
    h.start().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(shown(&h, 9005).await["state"], "overdue");
    assert_eq!(
        slack(&h).messages().len(),
        2,
        "nothing posted after a second restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_keeps_the_state_on_sqlite() {
    restart_keeps_the_state(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_keeps_the_state_on_postgres() {
    restart_keeps_the_state(Backend::Postgres).await;
}

/// A crash between Slack taking the reminder and pagerd recording it
/// (replayed on the SQLite file: the intent without the outcome) makes the
/// next start look in the channel's history and take that message,
/// instead of posting a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_cut_off_by_a_crash_is_found_in_slack_not_posted_twice() {
    let Some(mut h) = started(Backend::Sqlite, &hackerone("1h", "1h"), POLL_OFF).await else {
        return;
    };
    assert_eq!(report(&h, 9006).await, 200);
    state_becomes(&h, 9006, "reminded").await;
    let reminder = marked(&h, &reminder_of(9006)).remove(0);
    h.stop().await;
    let db = rusqlite::Connection::open(h.dir.path().join("pagerd.db")).unwrap();
    db.execute(
        "UPDATE reports SET state = 'waiting', posting = 'reminder', reminder_channel = NULL,
         reminder_ts = NULL WHERE ticket_id = '9006'",
        [],
    )
    .unwrap();
    drop(db);
    let history_reads = |h: &Harness| {
        slack(h)
            .requests()
            .iter()
            .filter(|r| r.ends_with("/conversations.history"))
            .count()
    };
    let before = history_reads(&h);
    h.start().await;
    state_becomes(&h, 9006, "reminded").await;
    assert!(history_reads(&h) > before, "Slack's history was read first");
    assert_eq!(marked(&h, &reminder_of(9006)).len(), 1, "not posted twice");
    let r = shown(&h, 9006).await;
    assert_eq!(
        r["reminder"]["ts"],
        reminder.ts.as_str(),
        "the message found"
    );
    assert_eq!(r["posting"], Value::Null);
}

/// Slack rate limits and fails: the reminder is retried with backoff until
/// it is posted, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_faults_delay_a_reminder_but_never_lose_or_double_it() {
    let Some(h) = started(Backend::Sqlite, &hackerone("1h", "1h"), POLL_OFF).await else {
        return;
    };
    let s = slack(&h);
    s.faults.push(
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
        1,
    );
    s.faults.push(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        2,
    );
    assert_eq!(report(&h, 9007).await, 200);
    state_becomes(&h, 9007, "reminded").await;
    assert!(s.faults.is_empty(), "every fault was met");
    assert_eq!(marked(&h, &reminder_of(9007)).len(), 1);
    let posts = s
        .requests()
        .iter()
        .filter(|r| r.ends_with("/chat.postMessage"))
        .count();
    assert!(posts >= 2, "retried: {posts} posts");
}

/// `page_on_breach`: a deadline passed without a reply pages like an
/// emergency, once, and the researcher never gets the crisis doc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_on_breach_pages_once_at_the_deadline() {
    let lines = format!("{}\npage_on_breach = true", hackerone("2s", "1s"));
    let Some(h) = started(Backend::Sqlite, &lines, POLL_OFF).await else {
        return;
    };
    assert_eq!(report(&h, 9008).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.triggers("zendesk-9008"), 0, "not before the deadline");
    eventually("the page", || async { h.triggers("zendesk-9008") == 1 }).await;
    eventually("the overdue notice", || async {
        !marked(&h, &overdue_of(9008)).is_empty()
    })
    .await;
    let notice = marked(&h, &overdue_of(9008)).remove(0);
    assert!(notice.text.contains("paged"), "{}", notice.text);
    state_becomes(&h, 9008, "overdue").await;
    assert!(shown(&h, 9008).await["paged_at"].is_string());
    let (_, body) = h
        .admin(reqwest::Method::GET, "/incidents/by-ticket/9008", None)
        .await;
    let ticket = &body["incident"]["ticket"];
    assert_eq!(ticket["requester_email"], "", "{body}");
    assert!(
        ticket["title"]
            .as_str()
            .unwrap()
            .starts_with("HackerOne report"),
        "{body}"
    );
    // Later webhooks of the ticket reach its incident, and page no more.
    assert_eq!(
        h.vendors
            .zendesk
            .send_webhook(&h.url("/webhooks/zendesk"), 9008)
            .await,
        Ok(200)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.triggers("zendesk-9008"), 1);
    h.vendors.zendesk.set_status(9008, "solved");
    h.vendors
        .zendesk
        .send_webhook(&h.url("/webhooks/zendesk"), 9008)
        .await
        .unwrap();
    eventually("solving the ticket resolves its incident", || async {
        let (_, body) = h
            .admin(reqwest::Method::GET, "/incidents/by-ticket/9008", None)
            .await;
        body["incident"]["status"] == "resolved"
    })
    .await;
}

/// Without a webhook, the poller finds the report (with its creation time)
/// and, later, the agent's reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_watches_reports_the_webhook_missed_and_sees_replies() {
    let extra = Extra {
        pagerduty: "poll_interval = \"off\"".into(),
        zendesk: "poll_interval = \"200ms\"".into(),
        hackerone: hackerone("1h", "10m"),
        ..Extra::default()
    };
    let opts = Options {
        slack: true,
        ..Options::default()
    };
    let mut h = Harness::new(opts, extra).await;
    // Seeded before the daemon starts: the poller sees it whole.
    let zd = &h.vendors.zendesk;
    zd.upsert_ticket(report_ticket(9009, "urgent"));
    zd.set_created_at(9009, "2027-03-26T14:00:00Z");
    h.start().await;
    let zd = &h.vendors.zendesk;
    eventually("the poller watches it", || async {
        h.admin(reqwest::Method::GET, "/reports/9009", None).await.0 == 200
    })
    .await;
    let r = shown(&h, 9009).await;
    assert_eq!(r["created_at"], "2027-03-26T14:00:00Z");
    assert_eq!(r["respond_by"], "2027-03-26T15:00:00Z");
    zd.reply_as_agent(9009, "On it.").unwrap();
    state_becomes(&h, 9009, "answered").await;
    assert_eq!(h.triggers("zendesk-9009"), 0, "urgent, still no page");
    assert_eq!(h.incident_count().await, 0);
}

/// `pagerd doctor` with `[hackerone]`: the calendar in words, and the bot's
/// membership of `hackerone.channel`, named when it is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_calendar_and_the_reports_channel() {
    let lines = "timezone = \"Europe/Amsterdam\"\nholidays = [\"2099-12-25\"]";
    let Some(h) = started(Backend::Sqlite, lines, POLL_OFF).await else {
        return;
    };
    h.vendors
        .pagerduty
        .add_user("PONCALL", "Olga Oncall", "oncall@acme.example");
    let config = h.config_path.clone();
    let doctor = move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pagerd"))
            .arg("--config")
            .arg(&config)
            .args(["doctor", "--json"])
            .output()
            .expect("run pagerd doctor");
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        (out.status.code(), report)
    };
    let check = |report: &Value, name: &str| -> Value {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no check {name:?}: {report}"))
    };
    let run = doctor.clone();
    let (code, good) = tokio::task::spawn_blocking(run).await.unwrap();
    assert_eq!(code, Some(0), "{good}");
    let calendar = check(&good, "HackerOne calendar");
    assert_eq!(calendar["ok"], true);
    let detail = calendar["detail"].as_str().unwrap();
    assert!(detail.contains("Europe/Amsterdam 09:00-17:00"), "{detail}");
    assert!(detail.contains("8h of business time"), "{detail}");
    assert_eq!(check(&good, "Slack channel #security")["ok"], true);
    let webhooks = check(&good, "Webhooks");
    let detail = webhooks["detail"].as_str().unwrap();
    assert!(
        detail.contains("HackerOne (no hackerone.webhook_secret_file"),
        "HackerOne's webhook is said to be off: {detail}"
    );

    slack(&h).remove_bot_from("#security");
    let (code, bad) = tokio::task::spawn_blocking(doctor).await.unwrap();
    assert_eq!(code, Some(1), "{bad}");
    let channel = check(&bad, "Slack channel #security");
    assert_eq!(channel["ok"], false);
    assert!(
        channel["fix"]
            .as_str()
            .unwrap()
            .contains("/invite @pagerd in #security"),
        "{channel}"
    );
    assert!(slack(&h).messages().is_empty(), "doctor posts nothing");
}

//! Every emergency reaches a human: reopened tickets page again, a refused
//! page is shown and can be re-sent, the ack clock starts when the phone
//! can ring, one person is one responder, an outcome the store could not
//! record is not delivered twice, and a broken log output stops nothing.

use std::time::{Duration, Instant};

use pagerd::fakes::Fault;
use pagerd::fakes::stand_ins::{Extra, Options, StandIns, secrets};
use reqwest::Method;
use serde_json::{Value, json};

use crate::util::{Backend, Harness, Proc, eventually};

/// Posts the Zendesk webhook for the ticket as the stand-in holds it now.
async fn update(h: &Harness, id: u64) -> u16 {
    h.vendors
        .zendesk
        .send_webhook(&h.url("/webhooks/zendesk"), id)
        .await
        .expect("webhook sent")
}

async fn status_of(h: &Harness, id: i64) -> String {
    h.incident(id).await["incident"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn metrics(h: &Harness) -> String {
    reqwest::get(h.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default()
}

fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn act(h: &Harness, id: i64, verb: &str, by: &str) -> Value {
    let (status, body) = h
        .admin(
            Method::POST,
            &format!("/incidents/{id}/{verb}"),
            Some(json!({ "by": by })),
        )
        .await;
    assert_eq!(status, 200, "{verb}: {body}");
    body
}

/// Waits until incident 1's comment is recorded as delivered, then checks
/// that ticket 4711 got it exactly once.
async fn the_comment_is_recorded_and_reached_the_customer_once(h: &Harness) {
    eventually("the comment is recorded as delivered", || async {
        h.incident(1).await["outbox"]
            .as_array()
            .is_some_and(|rows| {
                rows.iter()
                    .any(|r| r["effect"]["type"] == "zendesk_comment" && r["state"] == "delivered")
            })
    })
    .await;
    assert_eq!(
        h.vendors.zendesk.comments(4711).len(),
        1,
        "the customer got the same comment twice"
    );
}

/// Seeds urgent ticket `id` in the Zendesk stand-in and posts its webhook
/// to the pagerd process at `addr`; returns pagerd's answer.
async fn send_urgent(vendors: &StandIns, addr: std::net::SocketAddr, id: u64) -> u16 {
    vendors
        .zendesk
        .upsert_ticket(crate::util::urgent(id, "Production instance down"));
    vendors
        .zendesk
        .send_webhook(&format!("http://{addr}/webhooks/zendesk"), id)
        .await
        .expect("webhook")
}

async fn a_reopened_ticket_pages_a_new_episode_once(b: Backend) {
    let Some(h) = Harness::started_on(b, "").await else {
        return;
    };
    assert_eq!(h.ticket(8001, "urgent", &[]).await, 200);
    eventually("the first page", || async {
        h.triggers("zendesk-8001") == 1
    })
    .await;
    h.vendors.zendesk.set_status(8001, "solved");
    assert_eq!(update(&h, 8001).await, 200);
    eventually("resolved by the solved ticket", || async {
        status_of(&h, 1).await == "resolved"
    })
    .await;
    // A ticket that stays solved stays quiet.
    assert_eq!(update(&h, 8001).await, 200);
    h.vendors.zendesk.set_status(8001, "open");
    assert_eq!(update(&h, 8001).await, 200);
    eventually("the second episode's page", || async {
        h.triggers("zendesk-8001-2") == 1
    })
    .await;
    // A duplicate webhook of the open episode pages nobody twice.
    assert_eq!(update(&h, 8001).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.triggers("zendesk-8001-2"), 1);
    assert_eq!(h.triggers("zendesk-8001"), 1);
    assert_eq!(h.incident_count().await, 2);
    let second = h.incident(2).await;
    assert_eq!(second["incident"]["episode"], 2, "{second}");
    assert_eq!(second["incident"]["dedup_key"], "zendesk-8001-2");
    eventually("the new episode is paged", || async {
        h.incident(2).await["incident"]["paged"] == true
    })
    .await;
    // The first episode keeps its key and its history.
    assert_eq!(h.incident(1).await["incident"]["dedup_key"], "zendesk-8001");
}

#[tokio::test]
async fn the_poller_pages_a_reopened_ticket_but_not_one_resolved_in_pagerduty() {
    let extra = Extra {
        zendesk: "poll_interval = \"100ms\"".into(),
        ..Extra::default()
    };
    let Some(mut h) = Harness::new_on(Backend::Sqlite, Options::default(), extra).await else {
        return;
    };
    h.start().await;
    // Resolved in the PagerDuty app while the ticket stays open: the poller
    // alone does not page it again (it would on every round)...
    h.paged(8002).await;
    h.vendors
        .pagerduty
        .resolve("zendesk-8002", "Ana Engineer")
        .await
        .expect("resolved in PagerDuty");
    eventually("resolved", || async {
        status_of(&h, 1).await == "resolved"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(h.incident_count().await, 1, "polled rounds opened nothing");
    // ... but an update (the customer writes "still down!") does.
    assert_eq!(update(&h, 8002).await, 200);
    eventually("paged again after the update", || async {
        h.triggers("zendesk-8002-2") == 1
    })
    .await;

    // A ticket solved, then reopened with its webhook lost: the poller
    // finds it and pages a new episode, once.
    h.paged(8003).await;
    h.vendors.zendesk.set_status(8003, "solved");
    update(&h, 8003).await;
    eventually("resolved", || async {
        status_of(&h, 3).await == "resolved"
    })
    .await;
    h.vendors.zendesk.set_status(8003, "open");
    eventually("the poller paged the reopened ticket", || async {
        h.triggers("zendesk-8003-2") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.triggers("zendesk-8003-2"), 1, "once, whatever the rounds");
    assert_eq!(h.incident_count().await, 4);
}

async fn a_refused_page_is_shown_counted_mailed_once_and_resent_by_repage(b: Backend) {
    let extra = Extra {
        policy: "ack_timeout = \"1h\"".into(),
        ..Extra::default()
    };
    let opts = Options {
        email: true,
        ..Options::default()
    };
    let Some(mut h) = Harness::new_on(b, opts, extra).await else {
        return;
    };
    h.start().await;
    // The Events API refuses the trigger (a wrong routing key answers 400).
    h.vendors.pagerduty.events_faults.push(
        Fault::Status {
            status: 400,
            retry_after: None,
        },
        1,
    );
    h.ticket(4711, "urgent", &[]).await;
    eventually("the page is given up", || async {
        h.incident(1).await["incident"]["undeliverable"].is_string()
    })
    .await;
    let smtp = h.vendors.smtp.as_ref().expect("smtp");
    eventually("level 2 e-mailed", || async { smtp.messages().len() == 1 }).await;
    let (_, list) = h.admin(Method::GET, "/incidents", None).await;
    assert_eq!(list["incidents"][0]["paged"], false, "{list}");
    let text = pagerd::client::format_list(&list);
    assert!(text.contains("NOT PAGED"), "{text}");
    eventually("the gauge counts it", || async {
        gauge(&metrics(&h).await, "pagerd_pages_undeliverable") == Some(1.0)
    })
    .await;

    // An escalation asked for meanwhile fails at once, naming the page.
    act(&h, 1, "escalate", "ana@acme.example").await;
    eventually("the escalation names the failed trigger", || async {
        h.incident(1).await["incident"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("never accepted the page"))
    })
    .await;
    assert!(h.vendors.pagerduty.escalations().is_empty());

    // The operator fixed the key: repage sends the page and the escalation.
    let body = act(&h, 1, "repage", "ana@acme.example").await;
    assert_eq!(body["result"], "updated", "{body}");
    eventually("paged", || async { h.triggers("zendesk-4711") == 1 }).await;
    eventually("escalated", || async {
        h.vendors.pagerduty.escalations().len() == 1
    })
    .await;
    eventually("shown as paged", || async {
        h.incident(1).await["incident"]["paged"] == true
    })
    .await;
    eventually("the gauge is back to 0", || async {
        gauge(&metrics(&h).await, "pagerd_pages_undeliverable") == Some(0.0)
    })
    .await;
    // Nothing left to re-send; the e-mail went once.
    let again = act(&h, 1, "repage", "ana@acme.example").await;
    assert_eq!(again["result"], "ignored", "{again}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.triggers("zendesk-4711"), 1);
    assert_eq!(h.vendors.pagerduty.escalations().len(), 1);
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn the_ack_clock_starts_when_pagerduty_accepts_the_page() {
    let Some(h) = Harness::started_on(Backend::Sqlite, "ack_timeout = \"2s\"").await else {
        return;
    };
    // PagerDuty answers 500 three times: the page lands after the backoff
    // (0.25–0.5 s, 0.5–1 s, 1–2 s).
    h.vendors.pagerduty.events_faults.push(
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        3,
    );
    let sent = Instant::now();
    h.paged(4711).await;
    let accepted = h
        .vendors
        .pagerduty
        .events()
        .iter()
        .find(|e| e.action == "trigger")
        .map(|e| e.at)
        .expect("trigger");
    assert!(
        accepted - sent >= Duration::from_millis(1_700),
        "the outage lasted {:?}",
        accepted - sent
    );
    let mut escalated = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if !h.vendors.pagerduty.escalations().is_empty() {
            escalated = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let escalated = escalated.expect("escalated");
    // Level 1 had the whole ack_timeout from the moment its phone could ring.
    assert!(
        escalated - accepted >= Duration::from_millis(1_950),
        "escalated {:?} after PagerDuty accepted the page",
        escalated - accepted
    );
    let inc = &h.incident(1).await["incident"];
    assert!(inc["paged_at"].is_i64(), "{inc}");
}

#[tokio::test]
async fn one_person_from_three_channels_is_one_responder_with_a_real_name() {
    let extra = Extra {
        policy: "ack_timeout = \"1h\"\ncrisis_responders = 2".into(),
        people: "\"cy@acme.example\" = \"Cy Person\"".into(),
        ..Extra::default()
    };
    let opts = Options {
        slack: true,
        ..Options::default()
    };
    let Some(mut h) = Harness::new_on(Backend::Sqlite, opts, extra).await else {
        return;
    };
    h.start().await;
    let pd = &h.vendors.pagerduty;
    pd.add_user(
        &pagerd::fakes::pagerduty::user_id("Ana Engineer"),
        "Ana Engineer",
        "ana@acme.example",
    );
    let slack = h.vendors.slack.as_ref().expect("slack");
    slack.add_user("U0ANA0001", "Ana E.", "ana@acme.example");
    slack.add_user("U0BO00001", "Bo Builder", "bo@acme.example");

    h.paged(4711).await;
    pd.acknowledge("zendesk-4711", "Ana Engineer")
        .await
        .expect("ack in the app");
    eventually("the customer is told", || async {
        h.vendors.zendesk.comments(4711).len() == 1
    })
    .await;
    let comment = &h.vendors.zendesk.comments(4711)[0].body;
    assert!(
        comment.contains("Ana Engineer from our engineering team"),
        "{comment}"
    );

    // Ana again, from the CLI (by e-mail, any case) and from Slack (by id).
    let join = act(&h, 1, "join", "ANA@acme.example").await;
    assert_eq!(join["result"], "ignored", "{join}");
    let click = pagerd::fakes::slack::block_action_body("pagerd_join", "1", "U0ANA0001", "ana");
    pagerd::fakes::slack::send_signed(
        &h.url("/webhooks/slack"),
        secrets::SLACK_SIGNING,
        &click,
        unix_now(),
    )
    .await
    .expect("slack click");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let inc = &h.incident(1).await["incident"];
    assert_eq!(inc["responders"].as_array().map(Vec::len), Some(1), "{inc}");
    assert!(
        inc["crisis"].is_null(),
        "one person declared a crisis: {inc}"
    );

    // Bo, from Slack, is the second person: that is a crisis.
    let click = pagerd::fakes::slack::block_action_body("pagerd_join", "1", "U0BO00001", "bo");
    pagerd::fakes::slack::send_signed(
        &h.url("/webhooks/slack"),
        secrets::SLACK_SIGNING,
        &click,
        unix_now(),
    )
    .await
    .expect("slack click");
    eventually("the crisis", || async {
        !h.incident(1).await["incident"]["crisis"].is_null()
    })
    .await;
    let inc = &h.incident(1).await["incident"];
    assert_eq!(
        inc["responders"],
        json!([
            { "name": "Ana Engineer", "email": "ana@acme.example" },
            { "name": "Bo Builder", "email": "bo@acme.example" },
        ])
    );

    // A name from [people], and the CLI is told when its action declares a
    // crisis.
    h.paged(4712).await;
    act(&h, 2, "ack", "cy@acme.example").await;
    eventually("the customer is told", || async {
        h.vendors.zendesk.comments(4712).len() == 1
    })
    .await;
    let comment = &h.vendors.zendesk.comments(4712)[0].body;
    assert!(
        comment.contains("Cy Person from our engineering team"),
        "{comment}"
    );
    let body = act(&h, 2, "join", "bo@acme.example").await;
    assert_eq!(body["crisis_declared"], "2 people are involved", "{body}");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_whose_outcome_could_not_be_stored_is_not_sent_twice() {
    let Some(h) = Harness::started_on(Backend::Sqlite, "ack_timeout = \"1h\"").await else {
        return;
    };
    h.paged(4711).await;
    // The comment's request is slow; while it is in flight an operator's
    // sqlite3 shell takes the write lock, for longer than the busy timeout.
    h.vendors
        .zendesk
        .faults
        .push(Fault::Delay(Duration::from_millis(800)), 1);
    act(&h, 1, "ack", "ana@acme.example").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let db = h.dir.path().join("pagerd.db");
    let locker = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).expect("open");
        conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
        std::thread::sleep(Duration::from_millis(7_000));
        conn.execute_batch("COMMIT").expect("unlock");
    });
    eventually("the comment reached Zendesk", || async {
        h.vendors.zendesk.comments(4711).len() == 1
    })
    .await;
    tokio::task::spawn_blocking(move || locker.join().expect("locker"))
        .await
        .expect("join");
    the_comment_is_recorded_and_reached_the_customer_once(&h).await;
}

/// `pagerd run` whose stderr is a closed pipe, or a full disk, still pages
/// and stops on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_log_output_neither_stops_paging_nor_shutdown() {
    for (what, stderr) in [
        ("closed pipe", None),
        (
            "/dev/full",
            Some(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .expect("/dev/full"),
            ),
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let vendors = StandIns::start(Options::default())
            .await
            .expect("stand-ins");
        let mut p = Proc::for_stand_ins(&vendors, dir.path(), &Extra::default());
        p.rust_log = "pagerd=debug".into();
        let (err, out) = match stderr {
            None => (std::process::Stdio::piped(), std::process::Stdio::piped()),
            Some(f) => (f.into(), std::process::Stdio::null()),
        };
        p.start_with(err, out).await;
        for id in 1..=3u64 {
            assert_eq!(send_urgent(&vendors, p.addr, id).await, 200, "{what}");
        }
        eventually("paged", || async {
            (1..=3).all(|id| vendors.pagerduty.opened_for(&format!("zendesk-{id}")) == 1)
        })
        .await;
        let exit = p.terminate().await;
        assert!(
            exit.is_some_and(|s| s.success()),
            "{what}: SIGTERM did not stop the daemon cleanly: {exit:?}"
        );
    }
}

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
    a_reopened_ticket_pages_a_new_episode_once,
    a_refused_page_is_shown_counted_mailed_once_and_resent_by_repage,
);

/// The same on PostgreSQL: another session holds the incident's row lock
/// (a long migration, an operator's `psql`) past pagerd's statement
/// timeout while a comment is in flight, so recording its outcome fails.
/// (The waiting transaction also holds the lease row, so the leader loses
/// its lease meanwhile; the next leadership treats older rows as maybe
/// sent as well: either way the marker is checked before sending again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_an_unrecorded_outcome_is_not_sent_twice() {
    let Some(store) = crate::util::store_lines(Backend::Postgres).await else {
        return;
    };
    let url = store
        .lines()
        .find_map(|l| l.strip_prefix("url = "))
        .and_then(|u| serde_json::from_str::<String>(u).ok())
        .expect("store url");
    let extra = Extra {
        policy: "ack_timeout = \"1h\"".into(),
        store,
        ..Extra::default()
    };
    let mut h = Harness::new(Options::default(), extra).await;
    h.start().await;
    h.paged(4711).await;
    h.vendors
        .zendesk
        .faults
        .push(Fault::Delay(Duration::from_millis(800)), 1);
    act(&h, 1, "ack", "ana@acme.example").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let tx = client.transaction().await.expect("begin");
    tx.execute("SELECT 1 FROM incidents WHERE id = 1 FOR UPDATE", &[])
        .await
        .expect("lock the incident");
    eventually("the comment reached Zendesk", || async {
        h.vendors.zendesk.comments(4711).len() == 1
    })
    .await;
    // Longer than pagerd's statement timeout (its lease TTL here, at least 5 s).
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    tx.rollback().await.expect("unlock");
    the_comment_is_recorded_and_reached_the_customer_once(&h).await;
}

/// Logs written to a file (or journald) carry no colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_file_hold_no_escape_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vendors = StandIns::start(Options::default())
        .await
        .expect("stand-ins");
    let mut p = Proc::for_stand_ins(&vendors, dir.path(), &Extra::default());
    p.rust_log = "pagerd=info".into();
    p.start().await;
    assert_eq!(send_urgent(&vendors, p.addr, 1).await, 200);
    eventually("paged", || async {
        vendors.pagerduty.opened_for("zendesk-1") == 1
    })
    .await;
    assert!(p.terminate().await.is_some_and(|s| s.success()));
    let log = std::fs::read(&p.log).expect("log file");
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("emergency: paging"), "{text}");
    assert!(!log.contains(&0x1b), "colour codes in a log file:\n{text}");
}

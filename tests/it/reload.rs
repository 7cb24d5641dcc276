//! SIGHUP reloads the config, against the real `pagerd` binary: the next
//! decisions follow the new policy while armed deadlines keep their time, a
//! broken file is refused (the daemon keeps paging), a new webhook secret
//! takes effect, and `server.listen` waits for a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use pagerd::fakes::sign;
use pagerd::fakes::stand_ins::{Extra, Options, StandIns, secrets};

use crate::util::{Proc, eventually, urgent};

/// Stand-ins and the real daemon (logging at info) with `policy` lines,
/// started; PagerDuty's webhooks point at it.
async fn daemon(policy: &str) -> (StandIns, tempfile::TempDir, Proc, Extra) {
    let vendors = StandIns::start(Options::default())
        .await
        .expect("stand-ins");
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = Extra {
        policy: policy.into(),
        ..Extra::default()
    };
    let mut proc = Proc::for_stand_ins(&vendors, dir.path(), &extra);
    proc.rust_log = "pagerd=info".into();
    proc.start().await;
    vendors.pagerduty.set_webhook(
        format!("http://{}/webhooks/pagerduty", proc.addr),
        secrets::PD_WEBHOOK.into(),
    );
    (vendors, dir, proc, extra)
}

/// Rewrites the config (and its secret files) with `extra`, listening on
/// `listen`.
fn rewrite(vendors: &StandIns, dir: &Path, listen: &str, extra: &Extra) {
    vendors
        .write_config(dir, listen, &dir.join("pagerd.db"), extra)
        .expect("config rewritten");
}

fn log(proc: &Proc) -> String {
    std::fs::read_to_string(&proc.log).unwrap_or_default()
}

/// Sends SIGHUP and waits until the daemon logged the reload's outcome
/// (`what`) one more time than before.
async fn reload(proc: &Proc, what: &str) {
    let before = log(proc).matches(what).count();
    proc.signal("HUP");
    eventually(&format!("log says {what:?}"), || async {
        log(proc).matches(what).count() > before
    })
    .await;
}

/// Seeds ticket `id` and posts its webhook signed as the stand-in signs it.
async fn ticket(vendors: &StandIns, proc: &Proc, id: u64) -> u16 {
    vendors
        .zendesk
        .upsert_ticket(urgent(id, "Production instance down"));
    vendors
        .zendesk
        .send_webhook(&format!("http://{}/webhooks/zendesk", proc.addr), id)
        .await
        .expect("webhook sent")
}

async fn metrics(proc: &Proc) -> String {
    reqwest::get(format!("http://{}/metrics", proc.addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body")
}

async fn incident(proc: &Proc, id: i64) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("http://{}/api/v1/incidents/{id}", proc.addr))
        .bearer_auth(secrets::ADMIN)
        .send()
        .await
        .expect("admin call")
        .json()
        .await
        .expect("incident JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_the_next_decisions_while_an_armed_deadline_keeps_its_time() {
    let (vendors, dir, proc, mut extra) =
        daemon("ack_timeout = \"2s\"\ncontact_channels = [\"Phone\"]").await;
    let pd = &vendors.pagerduty;

    // Incident 1: paged, its ack deadline armed 2 s after the page.
    assert_eq!(ticket(&vendors, &proc, 4801).await, 200);
    eventually("paged", || async { pd.opened_for("zendesk-4801") == 1 }).await;
    let paged = Instant::now();

    extra.policy = "ack_timeout = \"1h\"\ncontact_channels = [\"Zoom\", \"Signal\"]".into();
    rewrite(&vendors, dir.path(), &proc.addr.to_string(), &extra);
    reload(&proc, "config reloaded").await;
    let text = log(&proc);
    let line = text
        .lines()
        .rfind(|l| l.contains("config reloaded"))
        .expect("reload line");
    assert!(
        line.contains("policy.ack_timeout") && line.contains("policy.contact_channels"),
        "the changed keys are named: {line}"
    );

    // Incident 2, after the reload: the 1 h ack timeout.
    assert_eq!(ticket(&vendors, &proc, 4802).await, 200);
    eventually("paged", || async { pd.opened_for("zendesk-4802") == 1 }).await;

    // The deadline armed before the reload fires at its original time.
    eventually("incident 1 escalated", || async {
        !pd.escalations().is_empty()
    })
    .await;
    let escalated = paged.elapsed();
    assert!(
        escalated >= Duration::from_millis(1500) && escalated < Duration::from_secs(6),
        "the armed 2 s deadline kept its time, escalated after {escalated:?}"
    );
    let first = pd.incident_by_key("zendesk-4801").expect("incident 1");
    assert_eq!(pd.escalations(), vec![(first.id, 2)]);

    // Incident 2's ack deadline follows the new policy.
    eventually("incident 2's ack clock armed", || async {
        incident(&proc, 2).await["incident"]["deadlines"]["ack"].is_i64()
    })
    .await;
    let inc2 = incident(&proc, 2).await;
    let ack = inc2["incident"]["deadlines"]["ack"].as_i64().unwrap();
    let paged_at = inc2["incident"]["paged_at"].as_i64().unwrap();
    assert_eq!(ack - paged_at, 3_600_000, "{inc2}");

    // The next acknowledgement comment offers the new channels.
    pd.acknowledge("zendesk-4802", "Ana Engineer")
        .await
        .expect("ack webhook accepted");
    eventually("customer asked", || async {
        !vendors.zendesk.comments(4802).is_empty()
    })
    .await;
    let comment = &vendors.zendesk.comments(4802)[0].body;
    assert!(
        comment.contains("Zoom or Signal") && !comment.contains("Phone"),
        "{comment}"
    );
    assert!(
        metrics(&proc)
            .await
            .contains("pagerd_config_reloads_total{result=\"applied\"} 1"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pd.escalations().len(), 1, "incident 2 is not escalated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_is_refused_and_the_daemon_keeps_paging_on_the_old_config() {
    let (vendors, dir, proc, mut extra) = daemon("ack_timeout = \"1h\"").await;
    extra.policy = "ack_timeout = \"soon\"\ncrisis_responders = 0".into();
    rewrite(&vendors, dir.path(), &proc.addr.to_string(), &extra);
    reload(&proc, "config reload refused").await;
    let text = log(&proc);
    let line = text
        .lines()
        .rfind(|l| l.contains("config reload refused"))
        .expect("refusal line");
    assert!(
        line.contains("ERROR")
            && line.contains("policy.ack_timeout")
            && line.contains("\"soon\" is not a duration")
            && line.contains("policy.crisis_responders"),
        "each problem is named by key: {line}"
    );
    assert!(
        metrics(&proc)
            .await
            .contains("pagerd_config_reloads_total{result=\"refused\"} 1")
    );

    // Still running, still paging, on the old policy.
    assert_eq!(ticket(&vendors, &proc, 4811).await, 200);
    eventually("paged after a refused reload", || async {
        vendors.pagerduty.opened_for("zendesk-4811") == 1
    })
    .await;
    eventually("ack clock armed", || async {
        incident(&proc, 1).await["incident"]["deadlines"]["ack"].is_i64()
    })
    .await;
    let inc = incident(&proc, 1).await;
    let ack = inc["incident"]["deadlines"]["ack"].as_i64().unwrap();
    let paged_at = inc["incident"]["paged_at"].as_i64().unwrap();
    assert_eq!(ack - paged_at, 3_600_000, "the old ack_timeout still rules");

    // A missing secret file is refused the same way.
    extra.policy = "ack_timeout = \"1h\"".into();
    rewrite(&vendors, dir.path(), &proc.addr.to_string(), &extra);
    std::fs::remove_file(dir.path().join("pagerduty-api-token")).unwrap();
    reload(&proc, "config reload refused").await;
    assert!(
        log(&proc)
            .lines()
            .rfind(|l| l.contains("config reload refused"))
            .is_some_and(|l| l.contains("pagerduty.api_token")),
        "{}",
        log(&proc)
    );
    assert!(!log(&proc).contains(secrets::PD_API_TOKEN));
}

/// Posts ticket `id`'s webhook signed with `secret`; returns pagerd's status.
async fn signed_with(vendors: &StandIns, proc: &Proc, id: u64, secret: &str) -> u16 {
    vendors
        .zendesk
        .upsert_ticket(urgent(id, "Production instance down"));
    let body = vendors.zendesk.webhook_body(id);
    let timestamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    reqwest::Client::new()
        .post(format!("http://{}/webhooks/zendesk", proc.addr))
        .header("content-type", "application/json")
        .header(
            "X-Zendesk-Webhook-Signature",
            sign::zendesk(secret, &timestamp, body.as_bytes()),
        )
        .header("X-Zendesk-Webhook-Signature-Timestamp", timestamp)
        .body(body)
        .send()
        .await
        .expect("webhook sent")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_webhook_secret_takes_effect_and_a_new_listen_address_waits_for_a_restart() {
    let (vendors, dir, proc, extra) = daemon("ack_timeout = \"1h\"").await;
    const NEW: &str = "SECRET-zd-webhook-rotated-0a1b2c";
    assert_eq!(
        signed_with(&vendors, &proc, 4821, secrets::ZD_WEBHOOK).await,
        200
    );

    let other = crate::util::free_port();
    rewrite(&vendors, dir.path(), &other.to_string(), &extra);
    std::fs::write(
        dir.path().join("zendesk-webhook-secret"),
        format!("{NEW}\n"),
    )
    .unwrap();
    reload(&proc, "config reloaded").await;

    assert_eq!(
        signed_with(&vendors, &proc, 4822, secrets::ZD_WEBHOOK).await,
        401,
        "the old secret is refused"
    );
    assert_eq!(
        signed_with(&vendors, &proc, 4823, NEW).await,
        200,
        "the new secret is accepted"
    );
    eventually("paged", || async {
        vendors.pagerduty.opened_for("zendesk-4823") == 1
    })
    .await;
    assert_eq!(vendors.pagerduty.opened_for("zendesk-4822"), 0);

    let text = log(&proc);
    assert!(
        text.lines().any(|l| l.contains("WARN")
            && l.contains("server.listen")
            && l.contains("only after a restart")),
        "{text}"
    );
    assert!(
        text.lines()
            .rfind(|l| l.contains("config reloaded"))
            .is_some_and(|l| l.contains("zendesk.webhook_secret") && !l.contains("server.listen")),
        "{text}"
    );
    assert!(!text.contains(NEW) && !text.contains(secrets::ZD_WEBHOOK));
    assert!(
        std::net::TcpStream::connect(other).is_err(),
        "nothing listens on the new address before a restart"
    );
    let healthz = reqwest::get(format!("http://{}/healthz", proc.addr))
        .await
        .expect("still on the old address");
    assert!(healthz.status().is_success());
}

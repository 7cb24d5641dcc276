//! The HTTP edge under abuse, against the real `pagerd` binary: slow and
//! idle clients, a connection cap, a locked store, SIGHUP, a short admin
//! token, replayed PagerDuty webhooks, and what `/readyz` tells strangers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pagerd::fakes::sign;
use pagerd::fakes::stand_ins::{Extra, Options, StandIns, secrets};
use serde_json::json;

use crate::util::{Backend, Harness, Proc, eventually, urgent};

const KEY: &str = "zendesk-4711";

/// Stand-ins and the real daemon with `server` lines, started.
async fn daemon(server: &str) -> (StandIns, tempfile::TempDir, Proc) {
    let vendors = StandIns::start(Options::default())
        .await
        .expect("stand-ins");
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = Extra {
        server: server.into(),
        policy: "ack_timeout = \"1h\"".into(),
        ..Extra::default()
    };
    let mut proc = Proc::for_stand_ins(&vendors, dir.path(), &extra);
    proc.start().await;
    (vendors, dir, proc)
}

/// Seeds ticket `id` and posts its signed webhook; returns the status and
/// how long pagerd took.
async fn webhook(vendors: &StandIns, proc: &Proc, id: u64) -> (u16, Duration) {
    vendors
        .zendesk
        .upsert_ticket(urgent(id, "Production instance down"));
    let t = Instant::now();
    let status = vendors
        .zendesk
        .send_webhook(&format!("http://{}/webhooks/zendesk", proc.addr), id)
        .await
        .unwrap_or(0);
    (status, t.elapsed())
}

/// `n` connections that send the start of a request and then nothing.
fn half_sent(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"POST /webhooks/zendesk HTTP/1.1\r\nHost: pagerd\r\nContent-Le")
                .expect("write");
            s
        })
        .collect()
}

/// Whether the server closed `s` (read sees EOF or a reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let _ = s.set_read_timeout(Some(within));
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or similar before the close is fine: keep reading.
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_do_not_starve_webhooks() {
    let (vendors, _dir, proc) = daemon("header_timeout = \"1s\"").await;
    let opened = Instant::now();
    let mut slow = tokio::task::spawn_blocking({
        let addr = proc.addr;
        move || half_sent(addr, 300)
    })
    .await
    .unwrap();
    let (status, took) = webhook(&vendors, &proc, 4711).await;
    println!("signed webhook with 300 half-sent requests open: {status} in {took:?}");
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "{took:?}");

    // An idle keep-alive connection: one request, then silence.
    let mut idle = TcpStream::connect(proc.addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: pagerd\r\n\r\n")
        .unwrap();

    let cut = tokio::task::spawn_blocking(move || {
        let all = slow
            .iter_mut()
            .all(|s| closed_within(s, Duration::from_secs(3)));
        (
            all,
            opened.elapsed(),
            closed_within(&mut idle, Duration::from_secs(3)),
        )
    })
    .await
    .unwrap();
    println!("300 half-sent requests cut after {:?}", cut.1);
    assert!(cut.0, "every half-sent request is cut");
    assert!(cut.1 < Duration::from_secs(4), "{:?}", cut.1);
    assert!(cut.2, "the idle keep-alive connection is closed");
    let (status, _) = webhook(&vendors, &proc, 4712).await;
    assert_eq!(status, 200, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_and_the_daemon_lives() {
    let (vendors, _dir, proc) = daemon("header_timeout = \"1s\"\nmax_connections = 20").await;
    let _slow = tokio::task::spawn_blocking({
        let addr = proc.addr;
        move || half_sent(addr, 40)
    })
    .await
    .unwrap();
    // The cap is full of slow clients: the webhook waits for a slot (at
    // most the header timeout, twice: 40 slow clients, 20 slots).
    let (status, took) = webhook(&vendors, &proc, 4711).await;
    println!("webhook over the cap: {status} in {took:?}");
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(4), "{took:?}");
    eventually("paged", || async { vendors.pagerduty.opened_for(KEY) == 1 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_store_leaves_the_public_endpoints_fast_and_webhooks_get_retry_after() {
    let (vendors, dir, proc) = daemon("").await;
    let (status, _) = webhook(&vendors, &proc, 4711).await;
    assert_eq!(status, 200);
    eventually("paged", || async { vendors.pagerduty.opened_for(KEY) == 1 }).await;

    // Another connection takes the write lock and holds it.
    let db = dir.path().join("pagerd.db");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).expect("open");
        conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(Duration::from_secs(30));
        conn.execute_batch("ROLLBACK").expect("unlock");
    });
    locked_rx.recv().unwrap();

    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let http = http.clone();
        let url = format!("http://{}{path}", proc.addr);
        async move {
            let t = Instant::now();
            let r = http
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .expect("answered");
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            (status, body, t.elapsed())
        }
    };
    let webhook = tokio::spawn({
        let url = format!("http://{}/webhooks/zendesk", proc.addr);
        let body = vendors.zendesk.webhook_body(4711).replace("4711", "4712");
        async move {
            let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
            let t = Instant::now();
            let r = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header(
                    "X-Zendesk-Webhook-Signature",
                    sign::zendesk(secrets::ZD_WEBHOOK, &ts, body.as_bytes()),
                )
                .header("X-Zendesk-Webhook-Signature-Timestamp", ts)
                .body(body)
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .expect("webhook answered");
            (
                r.status().as_u16(),
                r.headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string()),
                t.elapsed(),
            )
        }
    });
    let mut worst = Duration::ZERO;
    let mut not_ready = None;
    let started = Instant::now();
    while !webhook.is_finished() && started.elapsed() < Duration::from_secs(15) {
        for path in ["/readyz", "/metrics", "/healthz"] {
            let (status, body, took) = get(path).await;
            worst = worst.max(took);
            if path == "/readyz" && status == 503 {
                not_ready = Some(body);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, retry_after, took) = webhook.await.unwrap();
    println!(
        "store locked: slowest of /readyz, /metrics, /healthz {worst:?}; webhook {status} \
         (Retry-After {retry_after:?}) after {took:?}; /readyz said {not_ready:?}"
    );
    assert!(worst < Duration::from_millis(200), "{worst:?}");
    assert_eq!(status, 503);
    assert!(retry_after.is_some(), "503 without Retry-After");
    let not_ready = not_ready.expect("/readyz noticed the stuck store");
    assert!(not_ready.contains("store"), "{not_ready}");

    release_tx.send(()).unwrap();
    holder.join().unwrap();
    let http = reqwest::Client::new();
    eventually("ready again", || async {
        http.get(format!("http://{}/readyz", proc.addr))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let (status, _) = crate::edge::webhook(&vendors, &proc, 4713).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_the_daemon_still_pages() {
    let (vendors, _dir, proc) = daemon("").await;
    proc.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    proc.signal("HUP");
    let http = reqwest::Client::new();
    eventually("both reloads applied", || async {
        let Ok(r) = http
            .get(format!("http://{}/metrics", proc.addr))
            .send()
            .await
        else {
            return false;
        };
        r.text()
            .await
            .is_ok_and(|t| t.contains("pagerd_config_reloads_total{result=\"applied\"} 2"))
    })
    .await;
    let (status, _) = webhook(&vendors, &proc, 4711).await;
    assert_eq!(status, 200, "alive after SIGHUP");
    eventually("paged after SIGHUP", || async {
        vendors.pagerduty.opened_for(KEY) == 1
    })
    .await;
}

#[tokio::test]
async fn a_short_admin_token_is_refused_naming_the_key_and_file() {
    let h = Harness::new(Options::default(), Extra::default()).await;
    let short = "x".repeat(31);
    let file = h.dir.path().join("admin-token");
    std::fs::write(&file, format!("{short}\n")).unwrap();
    for cmd in ["check-config", "run"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pagerd"))
            .arg("--config")
            .arg(&h.config_path)
            .arg(cmd)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{cmd}: {text}");
        assert!(
            text.contains("server.admin_token_file")
                && text.contains(&file.display().to_string())
                && text.contains("32"),
            "{cmd}: {text}"
        );
        assert!(!text.contains(&short), "{cmd} printed the token: {text}");
    }
}

#[tokio::test]
async fn replayed_or_stale_pagerduty_webhooks_change_nothing() {
    let Some(mut h) = Harness::new_on(Backend::Sqlite, Options::default(), Extra::default()).await
    else {
        return;
    };
    h.start().await;
    h.paged(4711).await;
    let signed = |id: &str, at: std::time::SystemTime| {
        let body = json!({"event": {"id": id, "event_type": "incident.acknowledged",
            "resource_type": "incident", "occurred_at": humantime::format_rfc3339_millis(at).to_string(),
            "agent": {"summary": "Ana"}, "data": {"incident_key": KEY, "id": "PX1"}}})
        .to_string();
        let sig = sign::pagerduty(secrets::PD_WEBHOOK, body.as_bytes());
        (body, sig)
    };
    let pd = &h.vendors.pagerduty;
    let send = |body: String, sig: String, webhook_id: &'static str| async move {
        pd.send_webhook_raw(&body, Some(&sig), webhook_id)
            .await
            .unwrap()
    };

    // Too old: refused, nothing stored.
    let (old, old_sig) = signed(
        "evt-old",
        std::time::SystemTime::now() - Duration::from_secs(2 * 3600),
    );
    assert_eq!(send(old, old_sig, "wh-old").await, 400);
    let before = h.incident(1).await;
    assert_eq!(before["incident"]["status"], "triggered");

    let (body, sig) = signed("evt-1", std::time::SystemTime::now());
    assert_eq!(send(body.clone(), sig.clone(), "wh-1").await, 200);
    let acked = h.incident(1).await;
    assert_eq!(acked["incident"]["status"], "acknowledged");
    // The same signed body under a new X-Webhook-Id: the same event.
    assert_eq!(send(body, sig, "wh-2").await, 200);
    let again = h.incident(1).await;
    assert_eq!(acked["journal"], again["journal"], "no second effect");
    assert_eq!(
        acked["outbox"].as_array().map(Vec::len),
        again["outbox"].as_array().map(Vec::len),
        "nothing more queued"
    );
}

#[tokio::test]
async fn readyz_tells_strangers_nothing_about_the_host() {
    let Some(h) = Harness::started_on(Backend::Sqlite, "").await else {
        return;
    };
    let body = reqwest::get(h.url("/readyz"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let pid = std::process::id().to_string();
    assert_eq!(body, r#"{"status":"ready"}"#);
    assert!(
        !body.contains(host.trim()) && !body.contains(&pid),
        "{body}"
    );
    let (status, detail) = h.admin(reqwest::Method::GET, "/status", None).await;
    assert_eq!(status, 200);
    assert!(
        detail["instance"]
            .as_str()
            .is_some_and(|i| i.contains(&pid)),
        "{detail}"
    );
    let anonymous = reqwest::get(h.url("/api/v1/status")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

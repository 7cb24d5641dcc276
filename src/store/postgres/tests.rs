//! Against a real PostgreSQL: set `PAGERD_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`). Each test works in a schema
//! of its own and drops it at the end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::engine::{EffectKind, Source, Ticket};
use crate::secret::Secret;

const ENV: &str = "PAGERD_TEST_POSTGRES_URL";

fn config(url: &str) -> PostgresConfig {
    PostgresConfig {
        url: Secret::new(url),
        password: None,
        lease_renew: Duration::from_millis(100),
        lease_ttl: Duration::from_millis(300),
        tls: StoreTls::Disable,
        ca_file: None,
    }
}

/// A fresh schema, or `None` (after saying so) when no database is set.
struct Db {
    base: String,
    url: String,
}

impl Db {
    async fn fresh() -> Option<Db> {
        let base = match std::env::var(ENV) {
            Ok(u) if !u.trim().is_empty() => u,
            _ => {
                println!("skipping: set {ENV}=postgres://… to run the PostgreSQL tests");
                return None;
            }
        };
        let url = test_schema_url(&base).await.unwrap();
        Some(Db { base, url })
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&config(&self.url), Arc::new(Policy::default()))
            .await
            .unwrap()
    }

    async fn drop(self) {
        drop_test_schema(&self.base, &self.url).await;
    }
}

fn ticket(id: &str) -> Ticket {
    Ticket {
        id: id.into(),
        title: "down".into(),
        priority: "urgent".into(),
        status: "new".into(),
        tags: vec![],
        url: "u".into(),
        requester_name: "D".into(),
        requester_email: "d@c.test".into(),
        organization: "C".into(),
    }
}

fn seen(id: &str) -> Intake {
    Intake {
        target: Target::Ticket(id.into()),
        event: Event::Ticket {
            ticket: ticket(id),
            polled: false,
        },
        delivery: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_ticket_seen_at_once_on_two_instances_opens_one_incident_and_pages_once() {
    let Some(db) = Db::fresh().await else { return };
    let (a, b) = (db.store().await, db.store().await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { s.apply(seen("7"), 1_000).await });
    }
    let mut created = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap().unwrap().result {
            Change::Created => created += 1,
            Change::Ignored(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
    let incidents = a.list(false, 10).await.unwrap();
    assert_eq!(incidents.len(), 1);
    let rows = b.outbox(incidents[0].id).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].effect.kind(), EffectKind::Page);
    assert_eq!(a.journal(incidents[0].id).await.unwrap().len(), 1);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_webhook_delivery_on_two_instances_is_applied_once() {
    let Some(db) = Db::fresh().await else { return };
    let (a, b) = (db.store().await, db.store().await);
    let id = a.apply(seen("1"), 0).await.unwrap().incident.unwrap().id;
    let ack = || Intake {
        target: Target::DedupKey("zendesk-1".into()),
        event: Event::Acknowledge {
            by: "ana".into(),
            via: Source::Pagerduty,
        },
        delivery: Some(("pagerduty".into(), "wh-1".into())),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let intake = ack();
        tasks.spawn(async move { s.apply(intake, 1).await });
    }
    let (mut updated, mut replayed) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap().unwrap().result {
            Change::Updated => updated += 1,
            Change::Replayed => replayed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((updated, replayed), (1, 19));
    assert_eq!(a.journal(id).await.unwrap().len(), 2);
    db.drop().await;
}

#[tokio::test]
async fn the_lease_elects_one_leader_and_fences_a_lapsed_one() {
    let Some(db) = Db::fresh().await else { return };
    let (a, b, c) = (db.store().await, db.store().await, db.store().await);
    let ttl = Duration::from_millis(300);
    assert_eq!(a.lease_holder().await.unwrap(), None);
    assert!(
        matches!(c.due(0, 10, vec![]).await, Err(StoreError::NotLeader)),
        "a store that never took the lease is not the leader"
    );
    let first = a
        .lease("a", ttl)
        .await
        .unwrap()
        .expect("a takes the free lease");
    assert_eq!(b.lease("b", ttl).await.unwrap(), None, "b must wait");
    assert_eq!(
        a.lease("a", ttl).await.unwrap(),
        Some(first),
        "renewing within the TTL keeps the token"
    );
    let (holder, left) = b.lease_holder().await.unwrap().unwrap();
    assert_eq!(holder, "a");
    assert!(left > 0 && left <= 300, "{left}");

    a.apply(seen("1"), 0).await.unwrap();
    let (due, _) = a.due(10, 10, vec![]).await.unwrap();
    let row = due[0].id;

    // a is "paused" past its TTL: it cannot claim rows any more…
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        a.due(10, 10, vec![]).await,
        Err(StoreError::NotLeader)
    ));
    // b holds it for longer than the rest of the test takes, however slow
    // the machine (with `ttl` it lapsed once under a loaded CI run, and a
    // took it back).
    let second = b
        .lease("b", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("b takes the lapsed lease");
    assert!(second > first, "{second} > {first}");
    // …nor settle the row it had claimed.
    let done = Event::Delivered {
        effect: EffectKind::Page,
        outcome: None,
    };
    assert!(matches!(
        a.complete(row, done.clone(), 20).await,
        Err(StoreError::NotLeader)
    ));
    assert!(matches!(
        a.retry_later(row, 30, "late".into()).await,
        Err(StoreError::NotLeader)
    ));
    assert!(matches!(
        a.fail(row, "late".into(), 20).await,
        Err(StoreError::NotLeader)
    ));
    assert_eq!(a.lease("a", ttl).await.unwrap(), None, "b holds it now");
    assert!(matches!(
        a.due(10, 10, vec![]).await,
        Err(StoreError::NotLeader)
    ));
    // The new leader finds the row still pending and settles it.
    let (due, _) = b.due(10, 10, vec![]).await.unwrap();
    assert_eq!(due[0].id, row);
    assert_eq!(due[0].attempts, 0);
    assert!(b.complete(row, done, 20).await.unwrap().is_some());
    assert_eq!(
        b.lease_holder().await.unwrap().map(|(h, _)| h),
        Some("b".into())
    );
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_migrate_once() {
    let Some(db) = Db::fresh().await else { return };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let cfg = config(&db.url);
        tasks.spawn(async move { PostgresStore::connect(&cfg, Arc::new(Policy::default())).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let s = db.store().await;
    let client = s.client("test").await.unwrap();
    let versions: Vec<i64> = client
        .query("SELECT version FROM pagerd_schema ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Each migration applied once, in order.
    assert_eq!(versions, (1..=schema::SCHEMA_VERSION).collect::<Vec<i64>>());
    db.drop().await;
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_refused() {
    let Some(db) = Db::fresh().await else { return };
    let s = db.store().await;
    s.client("test")
        .await
        .unwrap()
        .execute(
            "INSERT INTO pagerd_schema(version) VALUES ($1)",
            &[&(schema::SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let err = PostgresStore::connect(&config(&db.url), Arc::new(Policy::default()))
        .await
        .expect_err("a newer schema must be refused");
    let msg = err.to_string();
    assert!(msg.contains("newer than this pagerd knows"), "{msg}");
    assert!(msg.contains("/test") || msg.contains('/'), "{msg}");
    db.drop().await;
}

#[tokio::test]
async fn connect_errors_name_the_host_but_never_the_url_or_password() {
    let mut cfg = config("postgres://pagerd:hunter2@127.0.0.1:1/pagerdb");
    cfg.password = Some(Secret::new("s3cret"));
    let err = PostgresStore::connect(&cfg, Arc::new(Policy::default()))
        .await
        .expect_err("nothing listens on port 1");
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1/pagerdb"), "{msg}");
    assert!(!msg.contains("hunter2") && !msg.contains("s3cret"), "{msg}");
    assert!(!msg.contains("postgres://"), "{msg}");
}

#[tokio::test]
async fn a_takeover_waits_for_a_paused_leaders_open_transaction() {
    let Some(db) = Db::fresh().await else { return };
    let (a, b) = (db.store().await, db.store().await);
    let ttl = Duration::from_millis(300);
    let token = a.lease("a", ttl).await.unwrap().unwrap();
    // a begins a fenced transaction, then freezes inside it.
    let mut client = a.client("test").await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(&a.guard()).await.unwrap();
    lease::check(&tx, "a", token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let frozen = std::time::Instant::now();
    // Expired, but b cannot take over while a's transaction may still
    // commit; the server ends a's idle transaction after tx_timeout.
    let taken = loop {
        if let Some(t) = b.lease("b", ttl).await.unwrap() {
            break t;
        }
        assert!(frozen.elapsed() < a.tx_timeout * 2, "never taken over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(taken > token);
    assert!(
        frozen.elapsed() >= a.tx_timeout - Duration::from_millis(500),
        "taken over after {:?}, while a's transaction was open",
        frozen.elapsed()
    );
    assert!(tx.commit().await.is_err(), "a's session was ended");
    drop(client);
    assert!(matches!(
        a.due(0, 10, vec![]).await,
        Err(StoreError::NotLeader)
    ));
    db.drop().await;
}

#[tokio::test]
async fn hackerone_reports_are_watched_once_and_survive_a_restart() {
    let Some(db) = Db::fresh().await else { return };
    crate::store::contract::reports(async || Box::new(db.store().await) as Box<dyn Store>).await;
    db.drop().await;
}

#[tokio::test]
async fn hackerone_events_are_kept_once_per_report_and_survive_a_restart() {
    let Some(db) = Db::fresh().await else { return };
    crate::store::contract::hackerone_events(async || Box::new(db.store().await) as Box<dyn Store>)
        .await;
    db.drop().await;
}

#[tokio::test]
async fn retention_keeps_what_is_needed_and_deletes_the_rest() {
    let Some(db) = Db::fresh().await else { return };
    let s = PostgresStore::connect(&config(&db.url), Arc::new(crate::store::contract::policy()))
        .await
        .unwrap();
    crate::store::contract::retention(&s).await;
    db.drop().await;
}

// ---- the store contract (src/store/contract.rs) ----------------------------

#[tokio::test]
async fn contract_first_sight() {
    let Some(db) = Db::fresh().await else { return };
    crate::store::contract::first_sight(&db.store().await).await;
    db.drop().await;
}

#[tokio::test]
async fn contract_lanes() {
    let Some(db) = Db::fresh().await else { return };
    crate::store::contract::lanes(&db.store().await).await;
    db.drop().await;
}

#[tokio::test]
async fn contract_given_up() {
    let Some(db) = Db::fresh().await else { return };
    crate::store::contract::given_up(&db.store().await).await;
    db.drop().await;
}

#[tokio::test]
async fn contract_replayed_delivery() {
    let Some(db) = Db::fresh().await else { return };
    crate::store::contract::replayed_delivery(&db.store().await).await;
    db.drop().await;
}

#[tokio::test]
async fn contract_policy_reload() {
    let Some(db) = Db::fresh().await else { return };
    let policy = crate::shared::Shared::new(Policy {
        ack_timeout: 2_000,
        crisis_after: 10_000,
        ..Policy::default()
    });
    let s = PostgresStore::connect(&config(&db.url), policy.clone())
        .await
        .unwrap();
    crate::store::contract::policy_reload(&s, &policy).await;
    db.drop().await;
}

// ---- TLS ------------------------------------------------------------------

/// A CA that signed nothing the server holds.
const OTHER_CA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/store/postgres/testdata/other-ca.pem"
);

/// `url` with its host replaced by `host`, when its host is a loopback one
/// (the certificate tests need the server on this machine).
fn with_host(url: &str, host: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (old, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (hostport, None),
    };
    if !matches!(old, "127.0.0.1" | "localhost") {
        return None;
    }
    let mut out = format!("{scheme}://");
    if let Some(u) = userinfo {
        out.push_str(u);
        out.push('@');
    }
    out.push_str(host);
    if let Some(p) = port {
        out.push(':');
        out.push_str(p);
    }
    out.push_str(tail);
    Some(out)
}

/// A fresh schema on a server with `ssl = on`, and the server's
/// certificate file (the CA for `verify-full`: Debian's snakeoil
/// certificate is self-signed, for `localhost`). `None`, after one line,
/// when there is no server or it has no TLS.
async fn tls_db() -> Option<(Db, PathBuf)> {
    let db = Db::fresh().await?;
    let s = db.store().await;
    let client = s.client("test").await.unwrap();
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if ssl != "on" {
        println!(
            "skipping: the PostgreSQL server has ssl = off (.ci/run turns it on: ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf())"
        );
        drop(client);
        db.drop().await;
        return None;
    }
    // Readable by the (trust-auth) test user; Debian's path otherwise.
    let cert: String = match client.query_one("SHOW ssl_cert_file", &[]).await {
        Ok(row) => row.get(0),
        Err(_) => "/etc/ssl/certs/ssl-cert-snakeoil.pem".to_string(),
    };
    let mut cert = PathBuf::from(cert);
    if cert.is_relative() {
        let data: String = client
            .query_one("SHOW data_directory", &[])
            .await
            .unwrap()
            .get(0);
        cert = Path::new(&data).join(cert);
    }
    drop(client);
    Some((db, cert))
}

/// Whether the store's connections are encrypted, per the server.
async fn encrypted(s: &PostgresStore) -> bool {
    s.client("test")
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn connect_with(
    url: &str,
    tls: StoreTls,
    ca_file: Option<&Path>,
) -> Result<PostgresStore, StoreError> {
    let mut cfg = config(url);
    cfg.tls = tls;
    cfg.ca_file = ca_file.map(Path::to_path_buf);
    PostgresStore::connect(&cfg, Arc::new(Policy::default())).await
}

#[tokio::test]
async fn verify_full_with_the_servers_ca_connects_by_its_name() {
    let Some((db, cert)) = tls_db().await else {
        return;
    };
    let Some(url) = with_host(&db.url, "localhost") else {
        println!("skipping: the certificate tests need the server on 127.0.0.1/localhost");
        db.drop().await;
        return;
    };
    let s = connect_with(&url, StoreTls::VerifyFull, Some(&cert))
        .await
        .unwrap();
    assert!(encrypted(&s).await, "verify-full must encrypt");
    // The lease runs over the same verified connections.
    assert!(
        s.lease("a", Duration::from_secs(5))
            .await
            .unwrap()
            .is_some()
    );
    db.drop().await;
}

#[tokio::test]
async fn verify_full_with_another_ca_fails_naming_store_ca_file() {
    let Some((db, _)) = tls_db().await else {
        return;
    };
    let Some(url) = with_host(&db.url, "localhost") else {
        db.drop().await;
        return;
    };
    let msg = connect_with(&url, StoreTls::VerifyFull, Some(Path::new(OTHER_CA)))
        .await
        .expect_err("a certificate from another CA must be refused")
        .to_string();
    assert!(
        msg.contains("store.ca_file") && msg.contains("other-ca.pem"),
        "{msg}"
    );
    assert!(msg.contains("not signed by a CA"), "{msg}");
    assert!(msg.contains("localhost:5432"), "{msg}");
    db.drop().await;
}

#[tokio::test]
async fn verify_full_without_ca_file_refuses_a_private_certificate() {
    let Some((db, _)) = tls_db().await else {
        return;
    };
    let Some(url) = with_host(&db.url, "localhost") else {
        db.drop().await;
        return;
    };
    let msg = connect_with(&url, StoreTls::VerifyFull, None)
        .await
        .expect_err("the snakeoil certificate is in no public root store")
        .to_string();
    assert!(
        msg.contains("bundled Mozilla roots") && msg.contains("set store.ca_file"),
        "{msg}"
    );
    db.drop().await;
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_name() {
    let Some((db, cert)) = tls_db().await else {
        return;
    };
    // The certificate is for localhost, not for 127.0.0.1.
    let Some(url) = with_host(&db.url, "127.0.0.1") else {
        db.drop().await;
        return;
    };
    let msg = connect_with(&url, StoreTls::VerifyFull, Some(&cert))
        .await
        .expect_err("the certificate does not name 127.0.0.1")
        .to_string();
    assert!(msg.contains("not for the host in store.url"), "{msg}");
    db.drop().await;
}

#[tokio::test]
async fn require_encrypts_without_verifying() {
    let Some((db, _)) = tls_db().await else {
        return;
    };
    // By address: the certificate's name does not matter to `require`.
    let s = connect_with(&db.url, StoreTls::Require, None)
        .await
        .unwrap();
    assert!(encrypted(&s).await, "require must encrypt");
    db.drop().await;
}

#[tokio::test]
async fn disable_stays_plaintext_with_a_tls_server() {
    let Some((db, _)) = tls_db().await else {
        return;
    };
    let s = connect_with(&db.url, StoreTls::Disable, None)
        .await
        .unwrap();
    assert!(!encrypted(&s).await, "disable must not encrypt");
    db.drop().await;
}

#[tokio::test]
async fn an_sslmode_in_the_url_that_conflicts_with_store_tls_is_refused() {
    let url = "postgres://pagerd:hunter2@127.0.0.1:1/pagerdb?sslmode=require";
    let msg = connect_with(url, StoreTls::Disable, None)
        .await
        .expect_err("conflicting modes")
        .to_string();
    assert!(
        msg.contains("sslmode") && msg.contains("store.tls"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}

/// A server with `ssl = off`, as far as TLS goes: answers `N` to the
/// SSLRequest, then hangs up.
async fn server_without_tls() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                if socket.read_exact(&mut request).await.is_ok() {
                    // length 8, code 80877103: SSLRequest.
                    assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
                    let _ = socket.write_all(b"N").await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn require_fails_clearly_when_the_server_has_no_tls() {
    let addr = server_without_tls().await;
    for mode in [StoreTls::Require, StoreTls::VerifyFull] {
        let url = format!("postgres://pagerd:hunter2@{addr}/pagerdb");
        let msg = connect_with(&url, mode, Some(Path::new(OTHER_CA)))
            .await
            .expect_err("no plaintext fallback")
            .to_string();
        assert!(
            msg.contains("does not offer TLS") && msg.contains(&format!("store.tls = \"{mode}\"")),
            "{msg}"
        );
        assert!(msg.contains(&format!("{addr}/pagerdb")), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pagerd::config::Config;
use pagerd::fakes::stand_ins::{self, Extra, Options, StandIns, secrets};
use pagerd::fakes::zendesk::TicketSpec;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Which store the daemon under test uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// A fresh schema in the PostgreSQL of `PAGERD_TEST_POSTGRES_URL`.
    Postgres,
}

/// The PostgreSQL base URL for tests, or `None` (and one line saying how to
/// enable them).
pub fn postgres_url() -> Option<String> {
    match std::env::var("PAGERD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!(
                "skipping: set PAGERD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test to run the PostgreSQL tests"
            );
            None
        }
    }
}

/// Store lines for the backend: `None` when PostgreSQL is not available.
pub async fn store_lines(backend: Backend) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(String::new()),
        Backend::Postgres => {
            let base = postgres_url()?;
            let url = pagerd::store::postgres::test_schema_url(&base)
                .await
                .expect("test schema");
            Some(format!(
                "url = {url:?}\nlease_renew = \"200ms\"\nlease_ttl = \"1s\""
            ))
        }
    }
}

/// A daemon under test and its world.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub vendors: StandIns,
    pub extra: Extra,
    pub config_path: PathBuf,
    pub addr: Option<SocketAddr>,
    running: Option<(CancellationToken, JoinHandle<()>)>,
    http: reqwest::Client,
}

impl Harness {
    /// Stand-ins started, config written, daemon not yet running.
    pub async fn new(opts: Options, extra: Extra) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let vendors = StandIns::start(opts).await.expect("stand-ins start");
        let mut h = Harness {
            dir,
            vendors,
            extra,
            config_path: PathBuf::new(),
            addr: None,
            running: None,
            http: reqwest::Client::new(),
        };
        h.write_config("127.0.0.1:0");
        h
    }

    /// A harness with PagerDuty and Zendesk only and the given policy lines,
    /// started on `backend`; `None` when that store is not available.
    pub async fn started_on(backend: Backend, policy: &str) -> Option<Harness> {
        let extra = Extra {
            policy: policy.into(),
            ..Extra::default()
        };
        let mut h = Harness::new_on(backend, Options::default(), extra).await?;
        h.start().await;
        Some(h)
    }

    /// Like [`Harness::new`] on `backend`; `None` when it is not available.
    pub async fn new_on(backend: Backend, opts: Options, mut extra: Extra) -> Option<Harness> {
        extra.store = store_lines(backend).await?;
        Some(Harness::new(opts, extra).await)
    }

    fn write_config(&mut self, listen: &str) {
        let store = self.dir.path().join("pagerd.db");
        self.config_path = self
            .vendors
            .write_config(self.dir.path(), listen, &store, &self.extra)
            .expect("config");
    }

    /// Starts (or restarts) the daemon on a fresh port.
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "already running");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        self.write_config(&addr.to_string());
        let config = Config::load(&self.config_path).expect("config valid");
        let token = CancellationToken::new();
        let stop = token.clone();
        let task = tokio::spawn(async move {
            pagerd::daemon::run(config, listener, stop, Default::default())
                .await
                .expect("daemon ran");
        });
        self.vendors.pagerduty.set_webhook(
            format!("http://{addr}/webhooks/pagerduty"),
            secrets::PD_WEBHOOK.into(),
        );
        self.addr = Some(addr);
        self.running = Some((token, task));
        self.eventually("daemon answers /healthz", || async {
            self.http
                .get(self.url("/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }

    /// Stops the daemon gracefully (as SIGTERM does).
    pub async fn stop(&mut self) {
        let (token, task) = self.running.take().expect("running");
        token.cancel();
        task.await.expect("daemon task");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr.expect("started"))
    }

    /// Seeds a ticket in Zendesk and posts its signed webhook; returns the
    /// status pagerd answered.
    pub async fn ticket(&self, id: u64, priority: &str, tags: &[&str]) -> u16 {
        self.vendors.zendesk.upsert_ticket(TicketSpec {
            id,
            subject: "Production instance down".into(),
            priority: priority.into(),
            status: "new".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            requester_name: "Dana Customer".into(),
            requester_email: "dana@customer.test".into(),
            organization: "Customer Corp".into(),
        });
        self.vendors
            .zendesk
            .send_webhook(&self.url("/webhooks/zendesk"), id)
            .await
            .expect("webhook sent")
    }

    /// Seeds an urgent ticket, posts its webhook and waits until PagerDuty
    /// has the page (`zendesk-<id>`).
    pub async fn paged(&self, id: u64) {
        assert_eq!(
            self.ticket(id, "urgent", &[]).await,
            200,
            "webhook of ticket {id}"
        );
        let key = format!("zendesk-{id}");
        eventually(&format!("ticket {id} paged"), || async {
            self.vendors.pagerduty.opened_for(&key) == 1
        })
        .await;
    }

    /// Calls the admin API.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(&format!("/api/v1{path}")))
            .bearer_auth(secrets::ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin call");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The incident for a ticket, from the admin API.
    pub async fn incident(&self, id: i64) -> Value {
        let (status, body) = self
            .admin(reqwest::Method::GET, &format!("/incidents/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// How many incidents the daemon holds (open and resolved).
    pub async fn incident_count(&self) -> usize {
        let (_, body) = self
            .admin(reqwest::Method::GET, "/incidents?all=true", None)
            .await;
        body["incidents"].as_array().map_or(0, Vec::len)
    }

    /// Polls `cond` until it holds (10 s at most), else fails naming `what`.
    pub async fn eventually<F, Fut>(&self, what: &str, cond: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        eventually(what, cond).await;
    }

    pub fn triggers(&self, key: &str) -> usize {
        self.vendors
            .pagerduty
            .events()
            .iter()
            .filter(|e| e.action == "trigger" && e.dedup_key == key)
            .count()
    }
}

/// An urgent ticket from Dana at Customer Corp, as the tests seed them.
pub fn urgent(id: u64, subject: &str) -> TicketSpec {
    TicketSpec {
        id,
        subject: subject.into(),
        priority: "urgent".into(),
        status: "new".into(),
        tags: vec![],
        requester_name: "Dana".into(),
        requester_email: "dana@customer.test".into(),
        organization: "Customer Corp".into(),
    }
}

/// Polls `cond` every 10 ms until it holds (10 s at most).
pub async fn eventually<F, Fut>(what: &str, cond: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Unused-import guard for modules that only need some helpers.
#[allow(dead_code)]
pub fn _uses() {
    let _ = stand_ins::ZENDESK_EMAIL;
}

/// The real `pagerd` binary as a child process, for kill -9 tests.
pub struct Proc {
    pub config: PathBuf,
    pub log: PathBuf,
    pub addr: SocketAddr,
    /// `RUST_LOG` of the child (default `pagerd=warn`).
    pub rust_log: String,
    child: Option<tokio::process::Child>,
}

impl Proc {
    /// A daemon that will listen on `addr` with the config at `config`.
    pub fn new(config: PathBuf, log: PathBuf, addr: SocketAddr) -> Proc {
        Proc {
            config,
            log,
            addr,
            rust_log: "pagerd=warn".into(),
            child: None,
        }
    }

    /// A daemon for `vendors` on a free port, with its config, store and log
    /// in `dir` (not started).
    pub fn for_stand_ins(vendors: &StandIns, dir: &std::path::Path, extra: &Extra) -> Proc {
        let addr = free_port();
        let config = vendors
            .write_config(dir, &addr.to_string(), &dir.join("pagerd.db"), extra)
            .expect("config");
        Proc::new(config, dir.join("pagerd.log"), addr)
    }

    /// Starts it and waits until `/healthz` answers.
    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        self.start_with(log.into(), std::process::Stdio::null())
            .await;
    }

    /// Like [`Proc::start`], with the child's stderr and stdout as given.
    pub async fn start_with(&mut self, stderr: std::process::Stdio, stdout: std::process::Stdio) {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pagerd"))
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .env("RUST_LOG", &self.rust_log)
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn pagerd");
        let mut child = child;
        // A piped output is closed at once: nobody reads it (log pipe tests).
        drop(child.stderr.take());
        drop(child.stdout.take());
        self.child = Some(child);
        let url = format!("http://{}/healthz", self.addr);
        let http = reqwest::Client::new();
        eventually("pagerd process answers /healthz", || async {
            http.get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }

    /// SIGKILL: no shutdown of any kind.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill -9");
        }
    }

    /// Sends a signal (`STOP`, `CONT`, …) without waiting.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().and_then(|c| c.id()).expect("running");
        let ok = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{sig} {pid}");
    }

    /// `/api/v1/status` (role, lease, counts) as JSON.
    pub async fn ready(&self) -> serde_json::Value {
        self.admin_get("/status").await
    }

    /// `GET /api/v1{path}` as JSON (`Null` when the daemon does not answer
    /// within 2 s).
    pub async fn admin_get(&self, path: &str) -> serde_json::Value {
        let url = format!("http://{}/api/v1{path}", self.addr);
        match reqwest::Client::new()
            .get(&url)
            .bearer_auth(secrets::ADMIN)
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(serde_json::Value::Null),
            Err(_) => serde_json::Value::Null,
        }
    }

    /// SIGTERM, then waits; returns the exit status.
    pub async fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id()?;
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .ok()?
            .ok()
    }
}

/// A port that was free a moment ago, so a restarted daemon keeps its
/// address (vendors' webhooks point at it).
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

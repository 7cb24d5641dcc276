//! The processes under test: the real `pagerd` binary and, as a peer,
//! Prometheus Alertmanager; their config files, a scratch directory, free
//! ports and memory readings from `/proc`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

/// Credentials written to the daemon's secret files.
pub mod secrets {
    /// Zendesk webhook signing secret: the bench signs with it.
    pub const ZD_WEBHOOK: &str = "bench-zendesk-webhook-secret";
    /// The admin API token: the bench reads incidents with it.
    pub const ADMIN: &str = "bench-admin-token-0123456789abcdef";
    /// Events API routing key (the recorder does not check it).
    pub const ROUTING_KEY: &str = "bench-routing-key";
    /// PagerDuty REST token (the recorder does not check it).
    pub const PD_API_TOKEN: &str = "bench-pd-api-token";
    /// Zendesk API token (never used: pagerd makes no Zendesk call here).
    pub const ZD_API_TOKEN: &str = "bench-zd-api-token";
}

/// A scratch directory, removed on drop unless kept.
pub struct Scratch {
    /// Where.
    pub path: PathBuf,
    keep: bool,
}

impl Scratch {
    /// Creates `$TMPDIR/pagerd-bench-<pid>-<nanos>`.
    pub fn new(keep: bool) -> anyhow::Result<Scratch> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("pagerd-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Scratch { path, keep })
    }

    /// A subdirectory, created.
    pub fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let d = self.path.join(name);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        Ok(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("pagerd-bench: kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A port free right now on 127.0.0.1 (another process could take it before
/// we use it; on a bench machine that is unlikely enough).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Resident memory of a process, in KiB, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Mem {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size so far.
    pub hwm_kib: u64,
}

impl Mem {
    /// Reads `/proc/PID/status`.
    pub fn of(pid: u32) -> anyhow::Result<Mem> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let field = |name: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.starts_with(name))?;
            line.split_whitespace().nth(1)?.parse().ok()
        };
        match (field("VmRSS:"), field("VmHWM:")) {
            (Some(rss_kib), Some(hwm_kib)) => Ok(Mem { rss_kib, hwm_kib }),
            _ => bail!("{path} has no VmRSS/VmHWM lines"),
        }
    }
}

/// A child process, killed (SIGKILL) on drop.
pub struct Proc {
    child: Child,
    name: &'static str,
    log: PathBuf,
    /// When it was spawned.
    pub spawned: Instant,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> anyhow::Result<Proc> {
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let spawned = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(Proc {
            child,
            name,
            log,
            spawned,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its memory now.
    pub fn mem(&self) -> anyhow::Result<Mem> {
        Mem::of(self.pid())
    }

    /// CPU time used so far (user + system), from `/proc/PID/stat`, in ms
    /// (10 ms resolution: clock ticks of 1/100 s, Linux's `USER_HZ`).
    pub fn cpu_ms(&self) -> anyhow::Result<f64> {
        let path = format!("/proc/{}/stat", self.pid());
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        // Fields after the command name, which is in parentheses and may
        // contain spaces: state is the first, utime the 12th, stime the 13th.
        let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        match (tick(11), tick(12)) {
            (Some(u), Some(s)) => Ok((u + s) as f64 * 10.0),
            _ => bail!("{path} does not parse"),
        }
    }

    /// Stops it (`SIGSTOP`) while the other system runs a burst round:
    /// Alertmanager goes on working for more than 30 s after a burst of
    /// 5 000 alerts (up to 1.8 cores, measured), and the other system's
    /// round would pay for it. [`Proc::resume`] lets it go on.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a paused process go on (`SIGCONT`).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let status = std::process::Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .with_context(|| format!("cannot run kill {sig}"))?;
        if !status.success() {
            bail!("kill {sig} {} failed: {status}", self.name);
        }
        Ok(())
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fails with the tail of its log if it has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); its log ends with:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of its output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Polls `url` until it answers 2xx; returns how long after spawning.
    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if let Ok(r) = http.get(url).timeout(Duration::from_secs(1)).send().await
                && r.status().is_success()
            {
                return Ok(self.spawned.elapsed());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer {url} within {timeout:?}; its log ends with:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `[policy]` timers of one run.
#[derive(Debug, Clone)]
pub struct Timers {
    /// `policy.ack_timeout`.
    pub ack_timeout: Duration,
    /// `policy.crisis_after`.
    pub crisis_after: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            ack_timeout: Duration::from_secs(300),
            crisis_after: Duration::from_secs(3600),
        }
    }
}

/// humantime text of a duration, in milliseconds so nothing is rounded.
fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// A pagerd instance's files: config, secrets and store in `dir`.
pub struct PagerdSetup {
    /// The config file.
    pub config: PathBuf,
    /// The SQLite store (unused when the store is PostgreSQL).
    pub store: PathBuf,
    /// The log of its output.
    pub log: PathBuf,
    /// `RUST_LOG` of the daemon.
    pub rust_log: String,
}

/// The `[store]` section beyond `path`: retention and PostgreSQL.
#[derive(Debug, Clone, Default)]
pub struct StoreOpts {
    /// `store.retention` (`"off"`, `"90d"`); the daemon's default when `None`.
    pub retention: Option<String>,
    /// PostgreSQL instead of SQLite.
    pub postgres: Option<PgStore>,
}

/// `store.url` and the lease timings (the daemon's defaults when `None`).
#[derive(Debug, Clone)]
pub struct PgStore {
    /// `store.url`.
    pub url: String,
    /// `store.lease_renew`.
    pub lease_renew: Option<Duration>,
    /// `store.lease_ttl`.
    pub lease_ttl: Option<Duration>,
}

impl StoreOpts {
    /// The `[store]` lines after `path`.
    fn lines(&self) -> String {
        let mut out = String::new();
        if let Some(r) = &self.retention {
            out.push_str(&format!("retention = {r:?}\n"));
        }
        if let Some(pg) = &self.postgres {
            out.push_str(&format!("url = {:?}\n", pg.url));
            if let Some(d) = pg.lease_renew {
                out.push_str(&format!("lease_renew = {:?}\n", ms(d)));
            }
            if let Some(d) = pg.lease_ttl {
                out.push_str(&format!("lease_ttl = {:?}\n", ms(d)));
            }
        }
        out
    }
}

impl PagerdSetup {
    /// Writes the config for a daemon on `listen`, sending to the recorder
    /// at `vendor`. Pacing and polling are off, and so are crisis docs,
    /// Slack and e-mail: only the paging path is measured.
    pub fn write(
        dir: &Path,
        listen: SocketAddr,
        vendor: SocketAddr,
        timers: &Timers,
    ) -> anyhow::Result<PagerdSetup> {
        PagerdSetup::write_with(dir, listen, vendor, timers, &StoreOpts::default())
    }

    /// [`PagerdSetup::write`] with retention or PostgreSQL set in `[store]`.
    pub fn write_with(
        dir: &Path,
        listen: SocketAddr,
        vendor: SocketAddr,
        timers: &Timers,
        store_opts: &StoreOpts,
    ) -> anyhow::Result<PagerdSetup> {
        let secret = |name: &str, value: &str| -> anyhow::Result<String> {
            let p = dir.join(name);
            std::fs::write(&p, format!("{value}\n"))
                .with_context(|| format!("cannot write {}", p.display()))?;
            Ok(p.display().to_string())
        };
        let store = dir.join("pagerd.db");
        let vendor = format!("http://{vendor}");
        let toml = format!(
            "[server]\nlisten = {listen:?}\nadmin_token_file = {admin:?}\n\n\
             [store]\npath = {store:?}\n{store_lines}\n\
             [policy]\nack_timeout = {ack:?}\ncrisis_after = {crisis:?}\n\n\
             [zendesk]\nurl = {vendor:?}\nemail = \"bench@acme.example\"\napi_token_file = {zd_token:?}\n\
             webhook_secret_file = {zd_hook:?}\npoll_interval = \"off\"\n\n\
             [pagerduty]\nevents_url = {vendor:?}\napi_url = {vendor:?}\nrouting_key_file = {key:?}\n\
             api_token_file = {pd_token:?}\nfrom = \"oncall@acme.example\"\npoll_interval = \"off\"\nevents_per_minute = 0\n",
            listen = listen.to_string(),
            admin = secret("admin-token", secrets::ADMIN)?,
            store = store.display().to_string(),
            store_lines = store_opts.lines(),
            ack = ms(timers.ack_timeout),
            crisis = ms(timers.crisis_after),
            zd_token = secret("zendesk-api-token", secrets::ZD_API_TOKEN)?,
            zd_hook = secret("zendesk-webhook-secret", secrets::ZD_WEBHOOK)?,
            key = secret("pagerduty-routing-key", secrets::ROUTING_KEY)?,
            pd_token = secret("pagerduty-api-token", secrets::PD_API_TOKEN)?,
        );
        let config = dir.join("pagerd.toml");
        std::fs::write(&config, toml)
            .with_context(|| format!("cannot write {}", config.display()))?;
        Ok(PagerdSetup {
            config,
            store,
            log: dir.join("pagerd.log"),
            rust_log: "pagerd=warn".into(),
        })
    }

    /// Rewrites only the listen address (a restart on a new port).
    pub fn relisten(&self, listen: SocketAddr) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(&self.config)?;
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("listen = ") {
                    format!("listen = {:?}", listen.to_string())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&self.config, text + "\n")?;
        Ok(())
    }
}

/// A running pagerd.
pub struct Pagerd {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Pagerd {
    /// Starts `bin run --config …` with `RUST_LOG=pagerd=warn` and waits
    /// until `/healthz` answers; returns it and the time to ready.
    pub async fn start(
        bin: &Path,
        setup: &PagerdSetup,
        addr: SocketAddr,
        http: &reqwest::Client,
    ) -> anyhow::Result<(Pagerd, Duration)> {
        Pagerd::start_until(bin, setup, addr, http, "/healthz").await
    }

    /// Like [`Pagerd::start`], but waits until `/readyz` answers 200 (store
    /// opened, counts loaded, a store probe passed): spawn → ready.
    pub async fn start_ready(
        bin: &Path,
        setup: &PagerdSetup,
        addr: SocketAddr,
        http: &reqwest::Client,
    ) -> anyhow::Result<(Pagerd, Duration)> {
        Pagerd::start_until(bin, setup, addr, http, "/readyz").await
    }

    async fn start_until(
        bin: &Path,
        setup: &PagerdSetup,
        addr: SocketAddr,
        http: &reqwest::Client,
        path: &str,
    ) -> anyhow::Result<(Pagerd, Duration)> {
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&setup.config)
            .arg("run")
            .env("RUST_LOG", &setup.rust_log);
        let mut proc = Proc::spawn("pagerd", cmd, setup.log.clone())?;
        let ready = proc
            .wait_ready(
                http,
                &format!("http://{addr}{path}"),
                Duration::from_secs(120),
            )
            .await?;
        Ok((Pagerd { proc, addr }, ready))
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A running Alertmanager.
pub struct Alertmanager {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Alertmanager {
    /// Starts Alertmanager with one route that notifies every alert alone
    /// (`group_by: ['...']`), at once (`group_wait: 0s`), to the recorder's
    /// `/hook`; clustering off, storage in `dir`.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        hook: SocketAddr,
        http: &reqwest::Client,
    ) -> anyhow::Result<(Alertmanager, Duration)> {
        let config = dir.join("alertmanager.yml");
        let yaml = format!(
            "route:\n  receiver: hook\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 4h\n  group_by: ['...']\n\
             receivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{hook}/hook\n        send_resolved: false\n"
        );
        std::fs::write(&config, yaml)
            .with_context(|| format!("cannot write {}", config.display()))?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn");
        let mut proc = Proc::spawn("alertmanager", cmd, dir.join("alertmanager.log"))?;
        let ready = proc
            .wait_ready(
                http,
                &format!("http://{addr}/-/ready"),
                Duration::from_secs(30),
            )
            .await?;
        Ok((Alertmanager { proc, addr }, ready))
    }
}

/// Where Alertmanager is installed, if it is: `--alertmanager`, else
/// `prometheus-alertmanager` or `alertmanager` on `PATH`.
pub fn find_alertmanager(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return p.exists().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
        for name in ["prometheus-alertmanager", "alertmanager"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The pagerd binary: `--pagerd`, else `pagerd` next to this executable.
/// Warns when it is older than the bench (only the bench was rebuilt).
pub fn find_pagerd(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find this executable")?;
    let bin = match given {
        Some(p) => p.to_path_buf(),
        None => me
            .parent()
            .map(|d| d.join("pagerd"))
            .context("this executable has no directory")?,
    };
    if !bin.is_file() {
        bail!(
            "no pagerd binary at {}: run `cargo build --release --bins` first, or pass --pagerd PATH",
            bin.display()
        );
    }
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if given.is_none()
        && let (Some(theirs), Some(mine)) = (modified(&bin), modified(&me))
        && theirs + Duration::from_secs(5) < mine
    {
        eprintln!(
            "pagerd-bench: warning: {} is older than this bench; `cargo build --release --bins` rebuilds both",
            bin.display()
        );
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state letter of `/proc/PID/stat` (`T`: stopped).
    fn state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    }

    fn wait_for_state(pid: u32, want: impl Fn(char) -> bool) -> Option<char> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = state(pid);
            if now.is_some_and(&want) || Instant::now() >= deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pause_stops_the_process_and_resume_lets_it_go_on() {
        let log =
            std::env::temp_dir().join(format!("pagerd-bench-pause-{}.log", std::process::id()));
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let p = Proc::spawn("sleep", cmd, log.clone()).expect("spawns sleep");
        p.pause().expect("pauses");
        assert_eq!(wait_for_state(p.pid(), |s| s == 'T'), Some('T'));
        p.resume().expect("resumes");
        let after = wait_for_state(p.pid(), |s| s != 'T');
        assert!(after.is_some_and(|s| s != 'T'), "{after:?}");
        drop(p);
        let _ = std::fs::remove_file(log);
    }
}

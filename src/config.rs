//! Configuration: the TOML file, validated into typed settings.
//!
//! Loading happens in two steps, ripgrep-style: serde reads the file into raw
//! structs that mirror it (unknown keys are refused), then `validate` turns
//! them into [`Config`], reading every secret from its `*_file` or `*_env`
//! and collecting *all* problems, each named by its key, so `pagerd
//! check-config` can list everything wrong at once.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::clock::millis;
use crate::engine::Policy;
pub use crate::reports::config::{HackerOneConfig, RawHackerOne};
use crate::secret::Secret;
pub use crate::validate::{Check, Problem, looks_like_email};
pub use crate::vendors::email::config::{EmailConfig, RawEmail};
pub use crate::vendors::gitlab::config::{GitLabConfig, RawGitLab};
pub use crate::vendors::google::config::{GoogleConfig, RawGoogle};
pub use crate::vendors::pagerduty::config::{PagerDutyConfig, RawPagerDuty};
pub use crate::vendors::slack::config::{RawSlack, SlackConfig};
pub use crate::vendors::zendesk::config::{RawZendesk, ZendeskConfig};

/// Where the config file is looked for when neither `--config` nor
/// `PAGERD_CONFIG` says.
pub const DEFAULT_PATH: &str = "/etc/pagerd/pagerd.toml";

/// Everything wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// The problems, in file order where possible.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config file {}: ", self.path.display())?;
        if let [one] = self.problems.as_slice() {
            return write!(f, "{}: {}", one.key, one.message);
        }
        write!(f, "{} problems", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  - {}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

/// The validated configuration of a daemon.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// The engine's rules, from `[policy]` and the integrations.
    pub policy: Policy,
    /// `[zendesk]`.
    pub zendesk: ZendeskConfig,
    /// `[pagerduty]`.
    pub pagerduty: PagerDutyConfig,
    /// `[slack]`, when configured.
    pub slack: Option<SlackConfig>,
    /// `[google]`, when configured.
    pub google: Option<GoogleConfig>,
    /// `[email]`, when configured.
    pub email: Option<EmailConfig>,
    /// `[gitlab]`, when configured: the follow-up issues.
    pub gitlab: Option<GitLabConfig>,
    /// `[hackerone]`, when configured: HackerOne reports are watched.
    pub hackerone: Option<HackerOneConfig>,
    /// `[people]`: real names by e-mail (keys lower-cased), which win over
    /// the names PagerDuty and Slack hold. Empty when absent.
    pub people: HashMap<String, String>,
    /// `[cli]`.
    pub cli: CliConfig,
    /// What is valid but probably not meant, by key (a secret file every
    /// user can read): `pagerd check-config` prints them and exits 0.
    pub warnings: Vec<Problem>,
}

/// `[cli]`: defaults of the command line on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliConfig {
    /// The e-mail (lower-cased) CLI actions are taken as, when the command
    /// names nobody.
    pub operator: Option<String>,
}

/// `[server]`: the HTTP listener and the admin API.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Bearer token of `/api/v1`; the admin API is off without one.
    pub admin_token: Option<Secret>,
    /// How long SIGTERM waits for in-flight work before exiting.
    pub shutdown_grace: Duration,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, from when the
    /// connection opens or the previous response ends (so also the idle
    /// keep-alive timeout).
    pub header_timeout: Duration,
}

/// Shortest admin token accepted: guessing must be hopeless.
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// Default and largest `server.max_connections`.
const MAX_CONNECTIONS: (usize, usize) = (1024, 65_536);

/// Largest `server.header_timeout`.
const MAX_HEADER_TIMEOUT: Duration = Duration::from_secs(60);

/// `[store]`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The SQLite database file (when no `url` is set).
    pub path: PathBuf,
    /// PostgreSQL, for several instances sharing one database.
    pub postgres: Option<PostgresConfig>,
    /// `store.retention`: resolved incidents untouched for this long are
    /// deleted with their journal and outbox; `None` (`"off"`) keeps
    /// everything. See [`crate::retention`].
    pub retention: Option<Duration>,
}

/// Shortest `store.retention`: people still look at last week's incidents.
pub const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// `[store] url = "postgres://…"` and its companions.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// The connection URL. Kept as a secret in case someone puts a password
    /// in it; use `password_file` instead.
    pub url: Secret,
    /// The password, from `store.password_file` or `store.password_env`.
    pub password: Option<Secret>,
    /// How often the leader renews its lease.
    pub lease_renew: Duration,
    /// How long a lease lasts without renewal: the failover time.
    pub lease_ttl: Duration,
    /// `store.tls`, resolved: from the key, else from the URL's `sslmode`,
    /// else `disable` for a loopback host or a Unix socket and
    /// `verify-full` for any other host.
    pub tls: StoreTls,
    /// `store.ca_file` (relative paths resolved against the config file's
    /// folder): the roots for `verify-full`. `None`: the bundled Mozilla
    /// roots.
    pub ca_file: Option<PathBuf>,
}

/// `store.tls`: TLS to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreTls {
    /// Plaintext (the default for a loopback host or a Unix socket).
    Disable,
    /// Encrypted, the server's certificate not verified: no protection
    /// against an active attacker (like libpq's `sslmode=require`).
    Require,
    /// Encrypted, the certificate verified against `store.ca_file` (or the
    /// bundled Mozilla roots) and for the host in the URL (the default for
    /// any other host).
    VerifyFull,
}

impl StoreTls {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreTls::Disable => "disable",
            StoreTls::Require => "require",
            StoreTls::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for StoreTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---- raw file shape -------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    policy: RawPolicy,
    zendesk: Option<RawZendesk>,
    pagerduty: Option<RawPagerDuty>,
    slack: Option<RawSlack>,
    google: Option<RawGoogle>,
    email: Option<RawEmail>,
    gitlab: Option<RawGitLab>,
    hackerone: Option<RawHackerOne>,
    people: Option<HashMap<String, String>>,
    cli: Option<RawCli>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCli {
    operator: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    admin_token_file: Option<PathBuf>,
    admin_token_env: Option<String>,
    shutdown_grace: Option<String>,
    max_connections: Option<usize>,
    header_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
    url: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    lease_renew: Option<String>,
    lease_ttl: Option<String>,
    retention: Option<String>,
    tls: Option<String>,
    ca_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    ack_timeout: Option<String>,
    crisis_after: Option<String>,
    crisis_responders: Option<usize>,
    doc_deprecate_after: Option<String>,
    contact_channels: Option<Vec<String>>,
    ack_comment: Option<String>,
    ack_lease: Option<String>,
    handoff_after: Option<String>,
    timezone: Option<String>,
}

// ---- validation -----------------------------------------------------------

/// `server.admin_token_*`: a secret of at least [`MIN_ADMIN_TOKEN_LEN`]
/// characters.
fn admin_token(c: &mut Check, file: Option<PathBuf>, env: Option<String>) -> Option<Secret> {
    let from = match (&file, &env) {
        (Some(path), None) => {
            let path = if path.is_relative() {
                c.base.join(path)
            } else {
                path.clone()
            };
            Some(("server.admin_token_file", format!("{}", path.display())))
        }
        (None, Some(var)) => Some((
            "server.admin_token_env",
            format!("environment variable {var}"),
        )),
        _ => None,
    };
    let token = c.secret("server", "admin_token", file, env)?;
    let len = token.expose().chars().count();
    if len < MIN_ADMIN_TOKEN_LEN {
        if let Some((key, source)) = from {
            c.problem(
                key,
                format!(
                    "the admin token in {source} has {len} characters; it needs at least \
                     {MIN_ADMIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)"
                ),
            );
        }
        return None;
    }
    Some(token)
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            problems: vec![Problem {
                key: "(file)".into(),
                message: format!("cannot read it: {e}"),
            }],
        })?;
        Config::parse(path, &text)
    }

    /// Validates config text; `path` names the file in errors and anchors
    /// relative secret paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let err = |problems| ConfigError {
            path: path.to_path_buf(),
            problems,
        };
        let raw: RawFile = from_toml(text).map_err(|p| err(vec![p]))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut c = Check::new(base);
        let mut config = validate(&mut c, path, raw);
        config.warnings = c.warnings;
        if c.problems.is_empty() {
            Ok(config)
        } else {
            Err(err(c.problems))
        }
    }
}

/// Reads TOML text into `T`. A problem names the key at fault when there is
/// one (a value of the wrong type: `policy.ack_timeout`; an unknown key:
/// `server.max_conections`, as written) and its line, so a wrong type is as
/// easy to find as a wrong value.
fn from_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Problem> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_problem(&e, text, ""))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        toml_problem(e.inner(), text, &path)
    })
}

/// One problem from a TOML error at `path` (`"."` or empty: the whole file).
fn toml_problem(e: &toml::de::Error, text: &str, path: &str) -> Problem {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    // serde names Rust types; an operator reads "a whole number".
    let mut message = e.message().to_string();
    for int in ["usize", "u64", "u32", "u16", "u8"] {
        if let Some(head) = message.strip_suffix(&format!("expected {int}")) {
            message = format!("{head}expected a whole number");
        }
    }
    match (path, line) {
        ("" | ".", Some(n)) => Problem {
            key: format!("line {n}"),
            message,
        },
        ("" | ".", None) => Problem {
            key: "(syntax)".to_string(),
            message,
        },
        (key, Some(n)) => Problem {
            key: key.to_string(),
            message: format!("line {n}: {message}"),
        },
        (key, None) => Problem {
            key: key.to_string(),
            message,
        },
    }
}

/// `store.tls` and `store.ca_file`, checked against the URL: an
/// `sslmode` in `store.url` counts as `store.tls` and must agree with it;
/// without either, a loopback host or a Unix socket gets `disable` and any
/// other host `verify-full`. Never names anything but the URL's hosts.
fn store_tls(
    c: &mut Check,
    url: &str,
    tls: Option<&str>,
    ca_file: Option<PathBuf>,
) -> (StoreTls, Option<PathBuf>) {
    use crate::store::postgres::tls;
    let (rest, sslmode) = tls::split_sslmode(url);
    let parsed = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match rest.parse::<tokio_postgres::Config>() {
            Ok(p) => Some(p),
            Err(e) => {
                c.problem(
                    "store.url",
                    format!(
                        "is not a PostgreSQL URL ({e}); write it like postgres://pagerd@db.internal:5432/pagerd"
                    ),
                );
                None
            }
        }
    } else {
        None
    };
    let key = match tls {
        None => None,
        Some(v) => match tls::from_sslmode(v) {
            Ok(mode) => Some(mode),
            Err(_) => {
                c.problem(
                    "store.tls",
                    format!("{v:?} is not one of \"disable\", \"require\", \"verify-full\""),
                );
                return (StoreTls::VerifyFull, None);
            }
        },
    };
    let from_url = match sslmode.as_deref().map(tls::from_sslmode) {
        None => None,
        Some(Ok(mode)) => Some(mode),
        Some(Err(why)) => {
            c.problem("store.url", why);
            return (StoreTls::VerifyFull, None);
        }
    };
    let mode = match (key, from_url) {
        (Some(k), Some(u)) if k != u => {
            c.problem(
                "store.tls",
                format!(
                    "\"{k}\" conflicts with sslmode={u} in store.url; remove sslmode from the URL (store.tls is the setting to use)"
                ),
            );
            k
        }
        (Some(mode), _) | (None, Some(mode)) => mode,
        (None, None) => match &parsed {
            Some(p) if tls::is_local(p) => StoreTls::Disable,
            _ => StoreTls::VerifyFull,
        },
    };
    if mode != StoreTls::Disable && parsed.as_ref().is_some_and(tls::has_unix_socket) {
        c.problem(
            "store.tls",
            format!(
                "\"{mode}\" cannot be used with a Unix socket host: PostgreSQL offers no TLS there; use \"disable\""
            ),
        );
    }
    let ca_file = ca_file.map(|p| if p.is_relative() { c.base.join(p) } else { p });
    if let Some(path) = &ca_file {
        if mode == StoreTls::VerifyFull {
            if let Err(e) = tls::load_ca_file(path) {
                c.problem("store.ca_file", e.to_string());
            }
        } else {
            let why = if key.is_some() || from_url.is_some() {
                String::new()
            } else {
                " (the default for a loopback host)".to_string()
            };
            c.problem(
                "store.ca_file",
                format!(
                    "only applies with store.tls = \"verify-full\", and store.tls is \"{mode}\"{why}; \
                     set store.tls = \"verify-full\" to verify the server against it"
                ),
            );
        }
    }
    (mode, ca_file)
}

/// `[store]`: SQLite (`path`) or PostgreSQL (`url` and its companions),
/// and retention.
fn store(c: &mut Check, s: RawStore) -> StoreConfig {
    let postgres = match s.url {
        None => {
            for (key, set) in [
                ("store.password_file", s.password_file.is_some()),
                ("store.password_env", s.password_env.is_some()),
                ("store.lease_renew", s.lease_renew.is_some()),
                ("store.lease_ttl", s.lease_ttl.is_some()),
                ("store.tls", s.tls.is_some()),
                ("store.ca_file", s.ca_file.is_some()),
            ] {
                if set {
                    c.problem(key, "only applies with store.url (PostgreSQL)");
                }
            }
            None
        }
        Some(url) => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                c.problem(
                    "store.url",
                    "must start with postgres:// (SQLite needs only store.path)",
                );
            }
            let lease_renew = c.duration("store.lease_renew", s.lease_renew.as_deref(), "2s");
            let lease_ttl = c.duration("store.lease_ttl", s.lease_ttl.as_deref(), "10s");
            if lease_ttl <= lease_renew.saturating_mul(2) {
                c.problem(
                    "store.lease_ttl",
                    "must be more than twice store.lease_renew, or one slow renewal loses the lease",
                );
            }
            let (tls, ca_file) = store_tls(c, &url, s.tls.as_deref(), s.ca_file);
            Some(PostgresConfig {
                url: Secret::new(url),
                password: c.secret("store", "password", s.password_file, s.password_env),
                lease_renew,
                lease_ttl,
                tls,
                ca_file,
            })
        }
    };
    let retention = match s.retention.as_deref() {
        Some("off") => None,
        value => {
            let d = c.duration("store.retention", value, "90d");
            if d < MIN_RETENTION {
                c.problem(
                    "store.retention",
                    format!(
                        "{} is too short: at least 1d (people still look at recent incidents), or \"off\" to keep everything",
                        humantime::format_duration(d)
                    ),
                );
            }
            Some(d)
        }
    };
    StoreConfig {
        path: s.path.unwrap_or_else(|| "/var/lib/pagerd/pagerd.db".into()),
        postgres,
        retention,
    }
}

fn validate(c: &mut Check, path: &Path, raw: RawFile) -> Config {
    let server = {
        let s = raw.server;
        let listen_text = s.listen.unwrap_or_else(|| "127.0.0.1:8780".into());
        let listen = listen_text.parse().unwrap_or_else(|_| {
            c.problem(
                "server.listen",
                format!("{listen_text:?} is not an address like \"127.0.0.1:8780\""),
            );
            SocketAddr::from(([127, 0, 0, 1], 8780))
        });
        let max_connections = match s.max_connections {
            None => MAX_CONNECTIONS.0,
            Some(n) if (1..=MAX_CONNECTIONS.1).contains(&n) => n,
            Some(n) => {
                c.problem(
                    "server.max_connections",
                    format!(
                        "{n} is out of range: 1 to {} (keep it under the file descriptor limit)",
                        MAX_CONNECTIONS.1
                    ),
                );
                MAX_CONNECTIONS.0
            }
        };
        let header_timeout =
            c.duration("server.header_timeout", s.header_timeout.as_deref(), "10s");
        if header_timeout.is_zero() || header_timeout > MAX_HEADER_TIMEOUT {
            c.problem(
                "server.header_timeout",
                "must be more than 0s and at most 60s (default 10s)",
            );
        }
        ServerConfig {
            listen,
            admin_token: admin_token(c, s.admin_token_file, s.admin_token_env),
            shutdown_grace: c.duration("server.shutdown_grace", s.shutdown_grace.as_deref(), "10s"),
            max_connections,
            header_timeout,
        }
    };
    let store = store(c, raw.store);

    let p = raw.policy;
    let mut policy = Policy {
        ack_timeout: millis(c.duration("policy.ack_timeout", p.ack_timeout.as_deref(), "5m")),
        crisis_after: millis(c.duration("policy.crisis_after", p.crisis_after.as_deref(), "1h")),
        crisis_responders: p.crisis_responders.unwrap_or(2),
        doc_deprecate_after: millis(c.duration(
            "policy.doc_deprecate_after",
            p.doc_deprecate_after.as_deref(),
            "7d",
        )),
        ..Policy::default()
    };
    if policy.crisis_responders == 0 {
        c.problem("policy.crisis_responders", "must be at least 1");
    }
    if policy.ack_timeout == 0 {
        c.problem("policy.ack_timeout", "must be longer than 0s");
    }
    if let Some(channels) = p.contact_channels {
        if channels.is_empty() {
            c.problem(
                "policy.contact_channels",
                "name at least one way to reach the customer",
            );
        }
        policy.contact_channels = channels;
    }
    policy.ack_lease = match p.ack_lease.as_deref() {
        None | Some("off") => None,
        value => {
            let d = c.duration("policy.ack_lease", value, "1h");
            if d.is_zero() {
                c.problem(
                    "policy.ack_lease",
                    "must be longer than 0s (\"off\", or leave it out, to let an acknowledgement last)",
                );
            }
            Some(millis(d))
        }
    };
    let handoff_after =
        millis(c.duration("policy.handoff_after", p.handoff_after.as_deref(), "1h"));
    if let Some(tz) = p.timezone {
        if jiff::tz::TimeZone::get(&tz).is_err() {
            c.problem(
                "policy.timezone",
                format!(
                    "{tz:?} is not an IANA time zone name (e.g. \"Europe/Amsterdam\", \"UTC\")"
                ),
            );
        }
        policy.timezone = tz;
    }
    if let Some(comment) = p.ack_comment {
        if !comment.contains("{channels}") {
            c.problem(
                "policy.ack_comment",
                "must contain {channels}: the comment asks the customer how to reach them",
            );
        }
        policy.ack_comment = comment;
    }

    let zendesk = crate::vendors::zendesk::config::check(c, raw.zendesk, &mut policy);
    let pagerduty = crate::vendors::pagerduty::config::check(c, raw.pagerduty);
    let slack = crate::vendors::slack::config::check(c, raw.slack, &mut policy);
    let google = crate::vendors::google::config::check(c, raw.google, &mut policy);
    let email = crate::vendors::email::config::check(c, raw.email, &mut policy);
    let gitlab = crate::vendors::gitlab::config::check(c, raw.gitlab);
    // The after-crisis hand-off: booked when a calendar is configured; the
    // follow-up issue opened when an issue tracker is.
    policy.handoff_after = google
        .as_ref()
        .and_then(|g| g.calendar_id.as_ref())
        .map(|_| handoff_after);
    policy.follow_up = gitlab.is_some();
    let hackerone = crate::reports::config::check(c, raw.hackerone, slack.is_some());
    let people = people(c, raw.people.unwrap_or_default());
    let cli = cli(c, raw.cli.unwrap_or_default());
    Config {
        path: path.to_path_buf(),
        server,
        store,
        policy,
        zendesk,
        pagerduty,
        slack,
        google,
        email,
        gitlab,
        hackerone,
        people,
        cli,
        warnings: Vec::new(),
    }
}

/// `[people]`: every key an e-mail, every name non-blank, no address twice
/// (keys differing only by case are the same address).
fn people(c: &mut Check, raw: HashMap<String, String>) -> HashMap<String, String> {
    let mut entries: Vec<(String, String)> = raw.into_iter().collect();
    entries.sort();
    let mut people = HashMap::new();
    for (email, name) in entries {
        let key = format!("people.{email:?}");
        let before = c.problems.len();
        c.email(&key, email.trim());
        if name.trim().is_empty() {
            c.problem(&key, "the real name is empty");
        }
        if c.problems.len() > before {
            continue;
        }
        let lower = email.trim().to_lowercase();
        if people.contains_key(&lower) {
            c.problem(
                &key,
                format!("{lower} is listed twice (e-mail addresses ignore case)"),
            );
            continue;
        }
        people.insert(lower, name.trim().to_string());
    }
    people
}

fn cli(c: &mut Check, raw: RawCli) -> CliConfig {
    let operator = raw.operator.map(|o| o.trim().to_lowercase());
    if let Some(o) = &operator {
        c.email("cli.operator", o);
    }
    CliConfig { operator }
}

/// The CLI's default identity on this host: `[cli] operator`, validated and
/// lower-cased. Only `[cli]` is read (like [`load_cli`], an operator need
/// not be able to read the vendor secrets); `None` when it is not set.
pub fn load_cli_operator(path: &Path) -> Result<Option<String>, ConfigError> {
    #[derive(Deserialize)]
    struct Partial {
        #[serde(default)]
        cli: RawCli,
    }
    let raw: Partial = read_partial(path)?;
    let mut c = Check::new(PathBuf::new());
    let cli = cli(&mut c, raw.cli);
    checked(path, c, cli.operator)
}

/// Reads `path` and parses the sections `T` declares (the rest of the file
/// is not looked at).
fn read_partial<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let err = |problems| ConfigError {
        path: path.to_path_buf(),
        problems,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(vec![Problem {
            key: "(file)".into(),
            message: format!("cannot read it: {e}"),
        }])
    })?;
    from_toml(&text).map_err(|p| err(vec![p]))
}

/// `value` when `c` found no problem, else every problem with `path`.
fn checked<T>(path: &Path, c: Check, value: T) -> Result<T, ConfigError> {
    if c.problems.is_empty() {
        Ok(value)
    } else {
        Err(ConfigError {
            path: path.to_path_buf(),
            problems: c.problems,
        })
    }
}

/// `[store]` alone, checked as `run` checks it, for `pagerd backup`: the
/// store can be backed up while a vendor secret is missing or unreadable
/// (only the PostgreSQL password is read, when one is set).
pub fn load_store(path: &Path) -> Result<StoreConfig, ConfigError> {
    #[derive(Deserialize)]
    struct Partial {
        #[serde(default)]
        store: RawStore,
    }
    let raw: Partial = read_partial(path)?;
    let mut c = Check::new(path.parent().map(Path::to_path_buf).unwrap_or_default());
    let store = store(&mut c, raw.store);
    checked(path, c, store)
}

/// What the CLI needs to reach a running daemon: its address and the admin
/// token. Only `[server]` is read, so an operator does not need to be able to
/// read the vendor secrets.
pub fn load_cli(path: &Path) -> Result<(SocketAddr, Option<Secret>), ConfigError> {
    #[derive(Deserialize)]
    struct Partial {
        #[serde(default)]
        server: RawServer,
    }
    let raw: Partial = read_partial(path)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut c = Check::new(base);
    let s = raw.server;
    let listen_text = s.listen.unwrap_or_else(|| "127.0.0.1:8780".into());
    let listen = listen_text.parse().unwrap_or_else(|_| {
        c.problem(
            "server.listen",
            format!("{listen_text:?} is not an address"),
        );
        SocketAddr::from(([127, 0, 0, 1], 8780))
    });
    let token = admin_token(&mut c, s.admin_token_file, s.admin_token_env);
    checked(path, c, (listen, token))
}

#[cfg(test)]
mod tests;

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
use crate::secret::Secret;

/// Where the config file is looked for when neither `--config` nor
/// `PAGERD_CONFIG` says.
pub const DEFAULT_PATH: &str = "/etc/pagerd/pagerd.toml";

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key at fault, like `pagerduty.routing_key_file`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

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
    /// `[people]`: real names by e-mail (keys lower-cased), which win over
    /// the names PagerDuty and Slack hold. Empty when absent.
    pub people: HashMap<String, String>,
    /// `[cli]`.
    pub cli: CliConfig,
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
}

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

/// `[zendesk]`.
#[derive(Debug, Clone)]
pub struct ZendeskConfig {
    /// `https://acme.zendesk.com`.
    pub url: String,
    /// The agent e-mail the API token belongs to.
    pub email: String,
    /// API token.
    pub api_token: Secret,
    /// The webhook's signing secret.
    pub webhook_secret: Secret,
    /// How often to search for emergency tickets the webhook missed; `None` = never.
    pub poll_interval: Option<Duration>,
}

/// `[pagerduty]`.
#[derive(Debug, Clone)]
pub struct PagerDutyConfig {
    /// Events API v2 base (`/v2/enqueue` is appended).
    pub events_url: String,
    /// REST API base.
    pub api_url: String,
    /// Integration key of the Events API v2 integration.
    pub routing_key: Secret,
    /// REST API token (escalation, notes, polling).
    pub api_token: Secret,
    /// E-mail of a PagerDuty user, sent as `From` on REST writes.
    pub from: String,
    /// v3 webhook signing secret; webhooks are refused without one.
    pub webhook_secret: Option<Secret>,
    /// How often to poll open incidents' status; `None` = never.
    pub poll_interval: Option<Duration>,
    /// Pace of Events API calls (PagerDuty allows ~120/min per key); 0 = unpaced.
    pub events_per_minute: u32,
}

/// `[slack]`.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// Web API base, `https://slack.com/api`.
    pub api_url: String,
    /// Bot token (`xoxb-…`).
    pub bot_token: Secret,
    /// Signing secret of `/webhooks/slack`; buttons and `/pagerd` are off without it.
    pub signing_secret: Option<Secret>,
    /// Channels a crisis is announced in.
    pub channels: Vec<String>,
}

/// `[google]`.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// OAuth token endpoint.
    pub token_url: String,
    /// Drive v3 base.
    pub drive_url: String,
    /// Docs base.
    pub docs_url: String,
    /// The service account's JSON key file.
    pub service_account_file: PathBuf,
    /// Doc to copy for each crisis; blank doc when `None`.
    pub template_id: Option<String>,
    /// Drive folder (or shared drive folder) for the docs.
    pub folder_id: Option<String>,
    /// Company domain that gets writer access.
    pub share_domain: Option<String>,
    /// The customer's role: `writer`, `commenter` or `reader`.
    pub customer_role: String,
}

/// `[email]`.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// `smtp://host:25`, `smtps://host:465`, `smtp://host:587?tls=required`.
    pub smtp_url: String,
    /// Sender address.
    pub from: String,
    /// Level-2 recipients of the fallback page.
    pub level2: Vec<String>,
    /// SMTP user, when the relay wants one.
    pub username: Option<String>,
    /// SMTP password.
    pub password: Option<Secret>,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZendesk {
    url: Option<String>,
    email: Option<String>,
    api_token_file: Option<PathBuf>,
    api_token_env: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    webhook_secret_env: Option<String>,
    emergency_priorities: Option<Vec<String>>,
    emergency_tags: Option<Vec<String>>,
    poll_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPagerDuty {
    events_url: Option<String>,
    api_url: Option<String>,
    routing_key_file: Option<PathBuf>,
    routing_key_env: Option<String>,
    api_token_file: Option<PathBuf>,
    api_token_env: Option<String>,
    from: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    webhook_secret_env: Option<String>,
    poll_interval: Option<String>,
    events_per_minute: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    api_url: Option<String>,
    bot_token_file: Option<PathBuf>,
    bot_token_env: Option<String>,
    signing_secret_file: Option<PathBuf>,
    signing_secret_env: Option<String>,
    channels: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGoogle {
    token_url: Option<String>,
    drive_url: Option<String>,
    docs_url: Option<String>,
    service_account_file: Option<PathBuf>,
    template_id: Option<String>,
    folder_id: Option<String>,
    share_domain: Option<String>,
    customer_role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    smtp_url: Option<String>,
    from: Option<String>,
    level2: Option<Vec<String>>,
    fallback_after: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
}

// ---- validation -----------------------------------------------------------

/// Collects problems while validating, so all of them are reported.
struct Check {
    base: PathBuf,
    problems: Vec<Problem>,
}

impl Check {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, value: Option<&str>, default: &str) -> Duration {
        let text = value.unwrap_or(default);
        match humantime::parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    key,
                    format!(
                        "{text:?} is not a duration ({e}); write it like \"30s\", \"5m\", \"1h\""
                    ),
                );
                humantime::parse_duration(default).unwrap_or_default()
            }
        }
    }

    /// A poll interval: `"0s"` or `"off"` turns polling off.
    fn interval(&mut self, key: &str, value: Option<&str>, default: &str) -> Option<Duration> {
        if value == Some("off") {
            return None;
        }
        let d = self.duration(key, value, default);
        (!d.is_zero()).then_some(d)
    }

    fn url(&mut self, key: &str, value: Option<String>, default: Option<&str>) -> String {
        let Some(v) = value.or(default.map(String::from)) else {
            self.problem(key, "is required");
            return String::new();
        };
        match reqwest::Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => v.trim_end_matches('/').to_string(),
            _ => {
                self.problem(key, format!("{v:?} is not an http(s) URL"));
                String::new()
            }
        }
    }

    fn required(&mut self, key: &str, value: Option<String>) -> String {
        match value {
            Some(v) if !v.trim().is_empty() => v,
            _ => {
                self.problem(key, "is required");
                String::new()
            }
        }
    }

    /// Reads the secret `name` from `name_file` or `name_env`.
    fn secret(
        &mut self,
        section: &str,
        name: &str,
        file: Option<PathBuf>,
        env: Option<String>,
    ) -> Option<Secret> {
        let (fkey, ekey) = (
            format!("{section}.{name}_file"),
            format!("{section}.{name}_env"),
        );
        match (file, env) {
            (Some(_), Some(_)) => {
                self.problem(&fkey, format!("set only one of {fkey} and {ekey}"));
                None
            }
            (Some(path), None) => {
                let path = if path.is_relative() {
                    self.base.join(path)
                } else {
                    path
                };
                match std::fs::read_to_string(&path) {
                    Ok(v) if !v.trim().is_empty() => Some(Secret::new(v)),
                    Ok(_) => {
                        self.problem(&fkey, format!("{} is empty", path.display()));
                        None
                    }
                    Err(e) => {
                        self.problem(&fkey, format!("cannot read {}: {e}", path.display()));
                        None
                    }
                }
            }
            (None, Some(var)) => match std::env::var(&var) {
                Ok(v) if !v.trim().is_empty() => Some(Secret::new(v)),
                _ => {
                    self.problem(
                        &ekey,
                        format!("environment variable {var} is not set or empty"),
                    );
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// `server.admin_token_*`: a secret of at least [`MIN_ADMIN_TOKEN_LEN`]
    /// characters.
    fn admin_token(&mut self, file: Option<PathBuf>, env: Option<String>) -> Option<Secret> {
        let from = match (&file, &env) {
            (Some(path), None) => {
                let path = if path.is_relative() {
                    self.base.join(path)
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
        let token = self.secret("server", "admin_token", file, env)?;
        let len = token.expose().chars().count();
        if len < MIN_ADMIN_TOKEN_LEN {
            if let Some((key, source)) = from {
                self.problem(
                    key,
                    format!(
                        "the admin token in {source} has {len} characters; it needs at least \
                         {MIN_ADMIN_TOKEN_LEN} (e.g. `head -c 32 /dev/urandom | base64`)"
                    ),
                );
            }
            return None;
        }
        Some(token)
    }

    fn required_secret(
        &mut self,
        section: &str,
        name: &str,
        file: Option<PathBuf>,
        env: Option<String>,
    ) -> Secret {
        let before = self.problems.len();
        let s = self.secret(section, name, file, env);
        if s.is_none() && self.problems.len() == before {
            self.problem(
                &format!("{section}.{name}_file"),
                format!("is required (or {section}.{name}_env naming an environment variable)"),
            );
        }
        s.unwrap_or_else(|| Secret::new(""))
    }

    fn email(&mut self, key: &str, value: &str) {
        if !looks_like_email(value) {
            self.problem(key, format!("{value:?} is not an e-mail address"));
        }
    }
}

/// `local@domain.tld`: one `@`, something before it, a dotted domain after
/// it, no white space.
pub fn looks_like_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn lower(v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
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
        let raw: RawFile = toml::from_str(text).map_err(|e| err(vec![toml_problem(&e, text)]))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut c = Check {
            base,
            problems: Vec::new(),
        };
        let config = validate(&mut c, path, raw);
        if c.problems.is_empty() {
            Ok(config)
        } else {
            Err(err(c.problems))
        }
    }
}

fn toml_problem(e: &toml::de::Error, text: &str) -> Problem {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let key = match line {
        Some(n) => format!("line {n}"),
        None => "(syntax)".to_string(),
    };
    Problem {
        key,
        message: e.message().to_string(),
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
            admin_token: c.admin_token(s.admin_token_file, s.admin_token_env),
            shutdown_grace: c.duration("server.shutdown_grace", s.shutdown_grace.as_deref(), "10s"),
            max_connections,
            header_timeout,
        }
    };
    let s = raw.store;
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
    let store = StoreConfig {
        path: s.path.unwrap_or_else(|| "/var/lib/pagerd/pagerd.db".into()),
        postgres,
    };

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
    if let Some(comment) = p.ack_comment {
        if !comment.contains("{channels}") {
            c.problem(
                "policy.ack_comment",
                "must contain {channels}: the comment asks the customer how to reach them",
            );
        }
        policy.ack_comment = comment;
    }

    let zendesk = match raw.zendesk {
        None => {
            c.problem("zendesk", "section [zendesk] is required");
            None
        }
        Some(z) => {
            if let Some(p) = z.emergency_priorities {
                policy.emergency_priorities = lower(p);
            }
            if let Some(t) = z.emergency_tags {
                policy.emergency_tags = lower(t);
            }
            if policy.emergency_priorities.is_empty() && policy.emergency_tags.is_empty() {
                c.problem(
                    "zendesk.emergency_priorities",
                    "with no emergency priorities nor tags nothing would ever page",
                );
            }
            let email = c.required("zendesk.email", z.email);
            if !email.is_empty() {
                c.email("zendesk.email", &email);
            }
            Some(ZendeskConfig {
                url: c.url("zendesk.url", z.url, None),
                email,
                api_token: c.required_secret(
                    "zendesk",
                    "api_token",
                    z.api_token_file,
                    z.api_token_env,
                ),
                webhook_secret: c.required_secret(
                    "zendesk",
                    "webhook_secret",
                    z.webhook_secret_file,
                    z.webhook_secret_env,
                ),
                poll_interval: c.interval(
                    "zendesk.poll_interval",
                    z.poll_interval.as_deref(),
                    "2m",
                ),
            })
        }
    };

    let pagerduty = match raw.pagerduty {
        None => {
            c.problem("pagerduty", "section [pagerduty] is required");
            None
        }
        Some(p) => {
            let from = c.required("pagerduty.from", p.from);
            if !from.is_empty() {
                c.email("pagerduty.from", &from);
            }
            Some(PagerDutyConfig {
                events_url: c.url(
                    "pagerduty.events_url",
                    p.events_url,
                    Some("https://events.pagerduty.com"),
                ),
                api_url: c.url(
                    "pagerduty.api_url",
                    p.api_url,
                    Some("https://api.pagerduty.com"),
                ),
                routing_key: c.required_secret(
                    "pagerduty",
                    "routing_key",
                    p.routing_key_file,
                    p.routing_key_env,
                ),
                api_token: c.required_secret(
                    "pagerduty",
                    "api_token",
                    p.api_token_file,
                    p.api_token_env,
                ),
                from,
                webhook_secret: c.secret(
                    "pagerduty",
                    "webhook_secret",
                    p.webhook_secret_file,
                    p.webhook_secret_env,
                ),
                poll_interval: c.interval(
                    "pagerduty.poll_interval",
                    p.poll_interval.as_deref(),
                    "30s",
                ),
                events_per_minute: p.events_per_minute.unwrap_or(120),
            })
        }
    };

    let slack = raw.slack.map(|s| {
        let channels = s.channels.unwrap_or_else(|| {
            ["#infrastructure", "#development", "#general"]
                .map(String::from)
                .to_vec()
        });
        if channels.is_empty() {
            c.problem(
                "slack.channels",
                "name at least one channel (or remove [slack])",
            );
        }
        SlackConfig {
            api_url: c.url("slack.api_url", s.api_url, Some("https://slack.com/api")),
            bot_token: c.required_secret("slack", "bot_token", s.bot_token_file, s.bot_token_env),
            signing_secret: c.secret(
                "slack",
                "signing_secret",
                s.signing_secret_file,
                s.signing_secret_env,
            ),
            channels,
        }
    });
    if let Some(s) = &slack {
        policy.slack_channels = s.channels.clone();
    }

    let google = raw.google.map(|g| {
        let role = g.customer_role.unwrap_or_else(|| "commenter".into());
        if !matches!(role.as_str(), "writer" | "commenter" | "reader") {
            c.problem(
                "google.customer_role",
                format!("{role:?} is not one of writer, commenter, reader"),
            );
        }
        let file = match g.service_account_file {
            Some(f) if f.is_relative() => c.base.join(f),
            Some(f) => f,
            None => {
                c.problem(
                    "google.service_account_file",
                    "is required: the service account's JSON key",
                );
                PathBuf::new()
            }
        };
        if !file.as_os_str().is_empty()
            && let Err(e) = crate::vendors::google::ServiceAccountKey::from_file(&file)
        {
            c.problem("google.service_account_file", e);
        }
        GoogleConfig {
            token_url: c.url(
                "google.token_url",
                g.token_url,
                Some("https://oauth2.googleapis.com/token"),
            ),
            drive_url: c.url(
                "google.drive_url",
                g.drive_url,
                Some("https://www.googleapis.com/drive/v3"),
            ),
            docs_url: c.url(
                "google.docs_url",
                g.docs_url,
                Some("https://docs.googleapis.com"),
            ),
            service_account_file: file,
            template_id: g.template_id.filter(|t| !t.is_empty()),
            folder_id: g.folder_id.filter(|t| !t.is_empty()),
            share_domain: g.share_domain.filter(|t| !t.is_empty()),
            customer_role: role,
        }
    });
    policy.crisis_docs = google.is_some();

    let email = raw.email.map(|e| {
        let level2 = e.level2.unwrap_or_default();
        if level2.is_empty() {
            c.problem(
                "email.level2",
                "name at least one level-2 address for the fallback page",
            );
        }
        for a in &level2 {
            c.email("email.level2", a);
        }
        let from = c.required("email.from", e.from);
        if !from.is_empty() {
            c.email("email.from", &from);
        }
        policy.fallback_after = Some(millis(c.duration(
            "email.fallback_after",
            e.fallback_after.as_deref(),
            "2m",
        )));
        let smtp_url = c.required("email.smtp_url", e.smtp_url);
        if !(smtp_url.is_empty()
            || smtp_url.starts_with("smtp://")
            || smtp_url.starts_with("smtps://"))
        {
            c.problem(
                "email.smtp_url",
                format!("{smtp_url:?} must start with smtp:// or smtps://"),
            );
        }
        EmailConfig {
            smtp_url,
            from,
            level2,
            username: e.username,
            password: c.secret("email", "password", e.password_file, e.password_env),
        }
    });

    // Placeholders keep the shape when a required section is missing; the
    // problem is already recorded, so this value is never used.
    let zendesk = zendesk.unwrap_or_else(|| ZendeskConfig {
        url: String::new(),
        email: String::new(),
        api_token: Secret::new(""),
        webhook_secret: Secret::new(""),
        poll_interval: None,
    });
    let pagerduty = pagerduty.unwrap_or_else(|| PagerDutyConfig {
        events_url: String::new(),
        api_url: String::new(),
        routing_key: Secret::new(""),
        api_token: Secret::new(""),
        from: String::new(),
        webhook_secret: None,
        poll_interval: None,
        events_per_minute: 0,
    });
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
        people,
        cli,
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
    #[derive(Deserialize)]
    struct Partial {
        #[serde(default)]
        cli: RawCli,
    }
    let raw: Partial = toml::from_str(&text).map_err(|e| err(vec![toml_problem(&e, &text)]))?;
    let mut c = Check {
        base: PathBuf::new(),
        problems: Vec::new(),
    };
    let cli = cli(&mut c, raw.cli);
    if c.problems.is_empty() {
        Ok(cli.operator)
    } else {
        Err(err(c.problems))
    }
}

/// What the CLI needs to reach a running daemon: its address and the admin
/// token. Only `[server]` is read, so an operator does not need to be able to
/// read the vendor secrets.
pub fn load_cli(path: &Path) -> Result<(SocketAddr, Option<Secret>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        problems: vec![Problem {
            key: "(file)".into(),
            message: format!("cannot read it: {e}"),
        }],
    })?;
    #[derive(Deserialize)]
    struct Partial {
        #[serde(default)]
        server: RawServer,
    }
    let err = |problems| ConfigError {
        path: path.to_path_buf(),
        problems,
    };
    let raw: Partial = toml::from_str(&text).map_err(|e| err(vec![toml_problem(&e, &text)]))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut c = Check {
        base,
        problems: Vec::new(),
    };
    let s = raw.server;
    let listen_text = s.listen.unwrap_or_else(|| "127.0.0.1:8780".into());
    let listen = listen_text.parse().unwrap_or_else(|_| {
        c.problem(
            "server.listen",
            format!("{listen_text:?} is not an address"),
        );
        SocketAddr::from(([127, 0, 0, 1], 8780))
    });
    let token = c.admin_token(s.admin_token_file, s.admin_token_env);
    if c.problems.is_empty() {
        Ok((listen, token))
    } else {
        Err(err(c.problems))
    }
}

#[cfg(test)]
mod tests;

//! Reloading the config on SIGHUP (`systemctl reload pagerd`).
//!
//! A reload reads the config file and every secret it names again and
//! validates them as `pagerd run` does (the file, then the vendors' clients:
//! the Google key, the SMTP URL). A file that does not pass is refused: the
//! problems are logged at error, key by key as `check-config` prints them,
//! `pagerd_config_reloads_total{result="refused"}` counts it, and the daemon
//! carries on with the config it has.
//!
//! A valid file is swapped in, each part where it is read
//! ([`crate::shared::Shared`] cells, loaded per use):
//!
//! - the policy, read by the store at each decision: timeouts, contact
//!   channels, the ack comment, the emergency criteria, crisis settings,
//!   Slack channels. Deadlines already armed keep their time and the outbox
//!   is left as it is; the deadlines armed from now on follow the new values;
//! - the vendors' clients (tokens, URLs, channels): a new registry under the
//!   dispatcher, used by the next delivery (those in flight finish with the
//!   old one);
//! - the webhook secrets and the admin token, read by each request;
//! - the people directory (`[people]`, and the PagerDuty and Slack clients
//!   it looks people up with);
//! - the pollers, restarted with their new intervals, clients and queries
//!   when a `[pagerduty]` or `[zendesk]` key changed;
//! - `[hackerone]`, read by the reports at each use: a report first seen
//!   from now on gets the new calendar and durations (a watched report
//!   keeps the deadlines it got), and the next notice goes to the new
//!   channel (an overdue notice still replies in its reminder's thread).
//!
//! What is bound at start keeps its old value until a restart, with a
//! warning naming the key: `server.listen`, `server.max_connections`,
//! `server.header_timeout` and every `store.*` key ([`RESTART_KEYS`]).
//!
//! What changed is logged at info by key; secret values never are (they are
//! compared by digest).

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{Config, ConfigError, Problem};
use crate::deliver::{Registry, SetupError};
use crate::engine::Policy;
use crate::metrics::Metrics;
use crate::people::Directory;
use crate::secret::Secret;
use crate::shared::Shared;

/// Keys read once at start: a change is warned about and waits for a
/// restart.
pub const RESTART_KEYS: [&str; 8] = [
    "server.listen",
    "server.max_connections",
    "server.header_timeout",
    "store.path",
    "store.url",
    "store.password",
    "store.lease_renew",
    "store.lease_ttl",
];

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file or a secret it names is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A vendor's client cannot be built from it.
    #[error("cannot set up a vendor: {0}")]
    Vendor(#[from] SetupError),
    /// The reading task did not finish (the runtime is shutting down).
    #[error("the reload did not finish: {0}")]
    Interrupted(String),
}

impl ReloadError {
    /// The problems, each named by its key, as `check-config` lists them.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ReloadError::Config(e) => e.problems.clone(),
            ReloadError::Vendor(e) => vec![Problem {
                key: e.key.to_string(),
                message: e.message.clone(),
            }],
            ReloadError::Interrupted(why) => vec![Problem {
                key: "(reload)".into(),
                message: why.clone(),
            }],
        }
    }
}

/// What an applied reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The keys whose new value is in force.
    pub changed: Vec<&'static str>,
    /// The keys that changed in the file but wait for a restart.
    pub need_restart: Vec<&'static str>,
}

/// The cells a reload swaps, shared with the parts of the daemon that read
/// them.
pub struct Cells {
    /// The engine's rules, read by the store at each decision.
    pub policy: Shared<Policy>,
    /// The vendors' clients, read by the dispatcher at each delivery.
    pub registry: Shared<Registry>,
    /// The config the HTTP handlers read (secrets, admin token).
    pub config: Shared<Config>,
    /// The people directory.
    pub people: Shared<Directory>,
    /// The pollers' config: a new value restarts them.
    pub pollers: watch::Sender<Arc<Config>>,
    /// Where reloads are counted.
    pub metrics: Arc<Metrics>,
    /// The clock of the people directory's cache.
    pub clock: Arc<dyn Clock>,
}

/// Reloads the config into [`Cells`].
pub struct Reloader {
    cells: Cells,
    /// The config in force (restart-only keys at their start value).
    current: Arc<Config>,
    /// Its fingerprint by key.
    prints: Prints,
}

/// A fingerprint of every key of a config: its value, or a digest for a
/// secret (never logged either way; only keys are).
type Prints = BTreeMap<&'static str, String>;

impl Reloader {
    /// A reloader of `config` (the one the daemon started with, already in
    /// the cells) from its file.
    pub fn new(config: Arc<Config>, cells: Cells) -> Reloader {
        let prints = fingerprint(&config);
        Reloader {
            cells,
            current: config,
            prints,
        }
    }

    /// The config in force.
    pub fn current(&self) -> &Arc<Config> {
        &self.current
    }

    /// Reads the file again and, if it is valid, swaps it in; logs and
    /// counts the outcome either way.
    pub async fn reload(&mut self) -> Result<Applied, ReloadError> {
        let path = self.current.path.clone();
        tracing::info!(file = %path.display(), "reloading the config");
        let read = tokio::task::spawn_blocking(move || {
            let config = Config::load(&path)?;
            let registry = Registry::from_config(&config)?;
            let prints = fingerprint(&config);
            Ok::<_, ReloadError>((config, registry, prints))
        })
        .await
        .map_err(|e| ReloadError::Interrupted(e.to_string()))
        .and_then(|r| r);
        match read {
            Ok((config, registry, prints)) => {
                let applied = self.apply(config, registry, prints);
                self.cells.metrics.observe_reload(true);
                for key in &applied.need_restart {
                    tracing::warn!(
                        key,
                        "config reload: {key} changed, but it takes effect only after a restart; \
                         still using the old value"
                    );
                }
                if applied.changed.is_empty() {
                    tracing::info!("config reloaded: nothing changed");
                } else {
                    tracing::info!(
                        changed = %applied.changed.join(", "),
                        "config reloaded: the new values apply from the next decision, delivery and request; \
                         deadlines already armed keep their time"
                    );
                }
                Ok(applied)
            }
            Err(e) => {
                self.cells.metrics.observe_reload(false);
                let problems = e.problems();
                let listed = problems
                    .iter()
                    .map(|p| format!("{}: {}", p.key, p.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::error!(
                    file = %self.current.path.display(),
                    problems = %listed,
                    "config reload refused: {} problem(s); carrying on with the current config \
                     (fix the file, check it with `pagerd check-config`, then reload again)",
                    problems.len()
                );
                Err(e)
            }
        }
    }

    /// Swaps in a validated config.
    fn apply(&mut self, mut next: Config, registry: Registry, mut prints: Prints) -> Applied {
        let old = self.current.clone();
        let need_restart: Vec<&'static str> = RESTART_KEYS
            .into_iter()
            .filter(|k| prints.get(k) != self.prints.get(k))
            .collect();
        // Keep what is bound at start.
        next.server.listen = old.server.listen;
        next.server.max_connections = old.server.max_connections;
        next.server.header_timeout = old.server.header_timeout;
        next.store = old.store.clone();
        for key in RESTART_KEYS {
            if let Some(v) = self.prints.get(key) {
                prints.insert(key, v.clone());
            }
        }
        let changed: Vec<&'static str> = prints
            .iter()
            .filter(|(k, v)| self.prints.get(*k) != Some(*v))
            .map(|(k, _)| *k)
            .collect();
        let touched = |prefixes: &[&str]| {
            changed
                .iter()
                .any(|k| prefixes.iter().any(|p| k.starts_with(p)))
        };
        let next = Arc::new(next);
        if next.policy != old.policy {
            self.cells.policy.store(Arc::new(next.policy.clone()));
        }
        // Rebuilt only when a vendor changed: a new client starts with an
        // empty token cache and pace.
        if touched(&["pagerduty.", "zendesk.", "slack", "google", "email"]) {
            self.cells.registry.store(Arc::new(registry));
        }
        if touched(&["people", "pagerduty.", "slack"]) {
            let directory = Directory::from_config(
                &next,
                crate::vendors::http_client(crate::people::LOOKUP_WAIT),
            )
            .with_clock(self.cells.clock.clone());
            self.cells.people.store(Arc::new(directory));
        }
        self.cells.config.store(next.clone());
        if touched(&["pagerduty.", "zendesk."]) {
            // Nobody listening (no lead task) is fine: nothing to restart.
            let _ = self.cells.pollers.send(next.clone());
        }
        self.current = next;
        self.prints = prints;
        Applied {
            changed,
            need_restart,
        }
    }
}

/// Reloads on each SIGHUP until `shutdown`, telling systemd (`RELOADING=1`,
/// then `READY=1`). Signals that arrive during a reload are merged into one
/// more reload.
pub async fn on_sighup(mut reloader: Reloader, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(cause = %e, "cannot listen for SIGHUP: the config cannot be reloaded (restart to apply changes)");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        tracing::info!("SIGHUP received: reloading the config");
        let mut reloading = vec![sd_notify::NotifyState::Reloading];
        if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
            reloading.push(now);
        }
        let _ = sd_notify::notify(&reloading);
        // Logged and counted by `reload` itself.
        let _ = reloader.reload().await;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    }
}

/// Every key of `c` with a fingerprint of its value.
fn fingerprint(c: &Config) -> Prints {
    let mut m = Prints::new();
    let mut put = |key: &'static str, value: String| {
        m.insert(key, value);
    };
    let s = &c.server;
    put("server.listen", s.listen.to_string());
    put("server.admin_token", opt_secret(s.admin_token.as_ref()));
    put("server.shutdown_grace", format!("{:?}", s.shutdown_grace));
    put("server.max_connections", s.max_connections.to_string());
    put("server.header_timeout", format!("{:?}", s.header_timeout));
    put("store.path", c.store.path.display().to_string());
    let pg = c.store.postgres.as_ref();
    put("store.url", opt_secret(pg.map(|p| &p.url)));
    put(
        "store.password",
        opt_secret(pg.and_then(|p| p.password.as_ref())),
    );
    put(
        "store.lease_renew",
        format!("{:?}", pg.map(|p| p.lease_renew)),
    );
    put("store.lease_ttl", format!("{:?}", pg.map(|p| p.lease_ttl)));

    let p = &c.policy;
    put("policy.ack_timeout", p.ack_timeout.to_string());
    put("policy.crisis_after", p.crisis_after.to_string());
    put("policy.crisis_responders", p.crisis_responders.to_string());
    put(
        "policy.doc_deprecate_after",
        p.doc_deprecate_after.to_string(),
    );
    put(
        "policy.contact_channels",
        format!("{:?}", p.contact_channels),
    );
    put("policy.ack_comment", format!("{:?}", p.ack_comment));
    put(
        "zendesk.emergency_priorities",
        format!("{:?}", p.emergency_priorities),
    );
    put("zendesk.emergency_tags", format!("{:?}", p.emergency_tags));
    put("email.fallback_after", format!("{:?}", p.fallback_after));

    let z = &c.zendesk;
    put("zendesk.url", z.url.clone());
    put("zendesk.email", z.email.clone());
    put("zendesk.api_token", digest(&z.api_token));
    put("zendesk.webhook_secret", digest(&z.webhook_secret));
    put("zendesk.poll_interval", format!("{:?}", z.poll_interval));

    let d = &c.pagerduty;
    put("pagerduty.events_url", d.events_url.clone());
    put("pagerduty.api_url", d.api_url.clone());
    put("pagerduty.routing_key", digest(&d.routing_key));
    put("pagerduty.api_token", digest(&d.api_token));
    put("pagerduty.from", d.from.clone());
    put(
        "pagerduty.webhook_secret",
        opt_secret(d.webhook_secret.as_ref()),
    );
    put("pagerduty.poll_interval", format!("{:?}", d.poll_interval));
    put(
        "pagerduty.events_per_minute",
        d.events_per_minute.to_string(),
    );

    let sl = c.slack.as_ref();
    put("slack", sl.is_some().to_string());
    put("slack.api_url", format!("{:?}", sl.map(|s| &s.api_url)));
    put("slack.bot_token", opt_secret(sl.map(|s| &s.bot_token)));
    put(
        "slack.signing_secret",
        opt_secret(sl.and_then(|s| s.signing_secret.as_ref())),
    );
    put("slack.channels", format!("{:?}", sl.map(|s| &s.channels)));

    let g = c.google.as_ref();
    put("google", g.is_some().to_string());
    put("google.token_url", format!("{:?}", g.map(|g| &g.token_url)));
    put("google.drive_url", format!("{:?}", g.map(|g| &g.drive_url)));
    put("google.docs_url", format!("{:?}", g.map(|g| &g.docs_url)));
    // The path and what the key file holds (a rotated key changes it).
    put(
        "google.service_account_file",
        match g {
            Some(g) => format!(
                "{} {}",
                g.service_account_file.display(),
                std::fs::read(&g.service_account_file)
                    .map(|b| hex::encode(Sha256::digest(&b)))
                    .unwrap_or_default()
            ),
            None => String::new(),
        },
    );
    put(
        "google.template_id",
        format!("{:?}", g.map(|g| &g.template_id)),
    );
    put("google.folder_id", format!("{:?}", g.map(|g| &g.folder_id)));
    put(
        "google.share_domain",
        format!("{:?}", g.map(|g| &g.share_domain)),
    );
    put(
        "google.customer_role",
        format!("{:?}", g.map(|g| &g.customer_role)),
    );

    let e = c.email.as_ref();
    put("email", e.is_some().to_string());
    put("email.smtp_url", format!("{:?}", e.map(|e| &e.smtp_url)));
    put("email.from", format!("{:?}", e.map(|e| &e.from)));
    put("email.level2", format!("{:?}", e.map(|e| &e.level2)));
    put("email.username", format!("{:?}", e.map(|e| &e.username)));
    put(
        "email.password",
        opt_secret(e.and_then(|e| e.password.as_ref())),
    );

    let h = c.hackerone.as_ref();
    put("hackerone", h.is_some().to_string());
    put("hackerone.tags", format!("{:?}", h.map(|h| &h.tags)));
    put(
        "hackerone.timezone",
        format!("{:?}", h.map(|h| &h.timezone)),
    );
    put(
        "hackerone.business_hours",
        format!("{:?}", h.map(|h| &h.business_hours)),
    );
    put(
        "hackerone.business_days",
        format!("{:?}", h.map(|h| &h.business_days)),
    );
    put(
        "hackerone.holidays",
        format!("{:?}", h.map(|h| &h.holidays)),
    );
    put(
        "hackerone.respond_within",
        format!("{:?}", h.map(|h| h.respond_within)),
    );
    put(
        "hackerone.remind_before",
        format!("{:?}", h.map(|h| h.remind_before)),
    );
    put("hackerone.channel", format!("{:?}", h.map(|h| &h.channel)));
    put(
        "hackerone.page_on_breach",
        format!("{:?}", h.map(|h| h.page_on_breach)),
    );
    put(
        "hackerone.webhook_secret",
        opt_secret(h.and_then(|h| h.webhook_secret.as_ref())),
    );
    put(
        "hackerone.disclosure_after",
        format!("{:?}", h.map(|h| h.disclosure_after)),
    );
    put(
        "hackerone.disclosure_remind_before",
        format!("{:?}", h.map(|h| h.disclosure_remind_before)),
    );

    let people: BTreeMap<_, _> = c.people.iter().collect();
    put("people", format!("{people:?}"));
    put("cli.operator", format!("{:?}", c.cli.operator));
    m
}

/// A secret's SHA-256, so a change shows without the value being kept in
/// the fingerprint.
fn digest(s: &Secret) -> String {
    hex::encode(Sha256::digest(s.expose().as_bytes()))
}

fn opt_secret(s: Option<&Secret>) -> String {
    s.map(digest).unwrap_or_default()
}

#[cfg(test)]
mod tests;

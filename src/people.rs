//! People: who a responder is, whichever channel they act from.
//!
//! This module owns the identity of responders. A person is their e-mail
//! address (lower-cased): the same engineer acknowledging from the PagerDuty
//! app, a Slack button and the CLI is one [`Person`], and customer-visible
//! text uses their real name. The [`Directory`] resolves a PagerDuty user id,
//! a Slack user id or an e-mail address to a person:
//!
//! - the `[people]` table of the config (e-mail → real name) comes first and
//!   always wins for the name;
//! - then the vendors: PagerDuty `GET /users/{id}` and `GET /users?query=`,
//!   Slack's user lookup.
//!
//! Vendor answers are cached in memory (hits for an hour, misses for five
//! minutes by default, a bounded number of entries); errors are never
//! cached. A lookup that fails returns a [`LookupError`]: callers keep the
//! name they already have ([`Directory::name_or`] does that for them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::{Clock, Millis, SystemClock, millis};
use crate::config::Config;
use crate::vendors::DeliveryError;
use crate::vendors::pagerduty::PagerDuty;
use crate::vendors::slack::Slack;

// The tests run against the stand-ins (the `demo` feature).
#[cfg(all(test, feature = "demo"))]
mod tests;
mod who;

pub use who::LOOKUP_WAIT;

pub use crate::vendors::{Person, normalize_email};

/// Why a person could not be resolved. Callers fall back to the name they
/// already have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The vendor could not answer: down, rate limiting, or refusing the
    /// credentials or scopes (the reason says which).
    #[error("{service} could not say who {who} is: {source}")]
    Vendor {
        /// `PagerDuty` or `Slack`.
        service: &'static str,
        /// The id or e-mail looked up.
        who: String,
        /// What the client reported.
        source: DeliveryError,
    },
    /// No client for that vendor was given to the directory.
    #[error("{0} is not configured: its users cannot be looked up")]
    NotConfigured(&'static str),
}

impl LookupError {
    /// Whether asking again later may work.
    pub fn is_retryable(&self) -> bool {
        match self {
            LookupError::Vendor { source, .. } => source.is_retryable(),
            LookupError::NotConfigured(_) => false,
        }
    }
}

/// How long answers are kept, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// How long a found person is kept.
    pub hit_ttl: Duration,
    /// How long "nobody by that id / e-mail" is kept.
    pub miss_ttl: Duration,
    /// Most entries kept; the ones closest to expiry go first.
    pub capacity: usize,
}

impl Default for CacheSettings {
    fn default() -> CacheSettings {
        CacheSettings {
            hit_ttl: Duration::from_secs(3600),
            miss_ttl: Duration::from_secs(300),
            capacity: 10_000,
        }
    }
}

/// What a cache entry answers for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    PagerDuty(String),
    Slack(String),
    Email(String),
}

struct Entry {
    person: Option<Person>,
    expires: Millis,
}

/// Resolves PagerDuty users, Slack users and e-mail addresses to people.
/// Cheap to share: wrap it in an [`Arc`]; every method takes `&self`.
pub struct Directory {
    people: HashMap<String, String>,
    pagerduty: Option<Arc<PagerDuty>>,
    slack: Option<Arc<Slack>>,
    settings: CacheSettings,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<Key, Entry>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("people", &self.people.len())
            .field("pagerduty", &self.pagerduty.is_some())
            .field("slack", &self.slack.is_some())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// A directory of the `[people]` table only (e-mail → real name; e-mails
    /// are normalised here). Add vendors with [`Directory::with_pagerduty`]
    /// and [`Directory::with_slack`].
    pub fn new(people: HashMap<String, String>) -> Directory {
        let people = people
            .into_iter()
            .map(|(email, name)| (normalize_email(&email), name.trim().to_string()))
            .collect();
        Directory {
            people,
            pagerduty: None,
            slack: None,
            settings: CacheSettings::default(),
            clock: Arc::new(SystemClock),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The directory the daemon uses: `[people]`, the PagerDuty REST API and
    /// Slack (when `[slack]` is configured), with the default cache.
    pub fn from_config(config: &Config, http: reqwest::Client) -> Directory {
        let pagerduty = PagerDuty::from_config(&config.pagerduty, false, http.clone());
        let mut dir = Directory::new(config.people.clone()).with_pagerduty(Arc::new(pagerduty));
        if let Some(s) = &config.slack {
            let slack = Slack::from_config(s, http);
            dir = dir.with_slack(Arc::new(slack));
        }
        dir
    }

    /// Looks PagerDuty users up with `pagerduty`.
    pub fn with_pagerduty(mut self, pagerduty: Arc<PagerDuty>) -> Directory {
        self.pagerduty = Some(pagerduty);
        self
    }

    /// Looks Slack users up with `slack`.
    pub fn with_slack(mut self, slack: Arc<Slack>) -> Directory {
        self.slack = Some(slack);
        self
    }

    /// Replaces the cache settings.
    pub fn with_cache(mut self, settings: CacheSettings) -> Directory {
        self.settings = settings;
        self
    }

    /// Replaces the clock the cache expires by (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Directory {
        self.clock = clock;
        self
    }

    /// The person the `[people]` table names for `email`, without asking
    /// any vendor.
    pub fn configured(&self, email: &str) -> Option<Person> {
        let email = normalize_email(email);
        let name = self.people.get(&email)?;
        Some(Person::new(&email, name))
    }

    /// The PagerDuty user `id` (`PXXXXXX`); `Ok(None)` when PagerDuty has no
    /// such user.
    pub async fn pagerduty_user(&self, id: &str) -> Result<Option<Person>, LookupError> {
        let key = Key::PagerDuty(id.to_string());
        if let Some(cached) = self.cached(&key) {
            return Ok(cached);
        }
        let pd = self
            .pagerduty
            .as_ref()
            .ok_or(LookupError::NotConfigured("PagerDuty"))?;
        let found = pd
            .user(id)
            .await
            .map_err(|source| vendor("PagerDuty", id, source))?;
        Ok(self.remember(key, found))
    }

    /// The Slack user `id` (`U…`, `W…`); `Ok(None)` when Slack has no such
    /// user, or it is a bot.
    pub async fn slack_user(&self, id: &str) -> Result<Option<Person>, LookupError> {
        let key = Key::Slack(id.to_string());
        if let Some(cached) = self.cached(&key) {
            return Ok(cached);
        }
        let slack = self
            .slack
            .as_ref()
            .ok_or(LookupError::NotConfigured("Slack"))?;
        let found = slack
            .user_info(id)
            .await
            .map_err(|source| vendor("Slack", id, source))?;
        Ok(self.remember(key, found))
    }

    /// The person with this e-mail: from the `[people]` table, else from
    /// PagerDuty. `Ok(None)` when neither knows them (or PagerDuty is not
    /// given to this directory).
    pub async fn by_email(&self, email: &str) -> Result<Option<Person>, LookupError> {
        if let Some(p) = self.configured(email) {
            return Ok(Some(p));
        }
        let email = normalize_email(email);
        let key = Key::Email(email.clone());
        if let Some(cached) = self.cached(&key) {
            return Ok(cached);
        }
        let Some(pd) = &self.pagerduty else {
            return Ok(None);
        };
        let found = pd
            .user_by_email(&email)
            .await
            .map_err(|source| vendor("PagerDuty", &email, source))?;
        Ok(self.remember(key, found))
    }

    /// The real name for `email`, or `fallback` when nobody knows it or the
    /// lookup fails (logged as a warning).
    pub async fn name_or(&self, email: &str, fallback: &str) -> String {
        match self.by_email(email).await {
            Ok(Some(p)) => p.name,
            Ok(None) => fallback.to_string(),
            Err(e) => {
                tracing::warn!(error = %e, "people: keeping the name we have");
                fallback.to_string()
            }
        }
    }

    /// How many answers are cached (tests, metrics).
    pub fn cached_len(&self) -> usize {
        self.lock().len()
    }

    /// A cached answer that has not expired; `Some(None)` is a cached miss.
    fn cached(&self, key: &Key) -> Option<Option<Person>> {
        let now = self.clock.now();
        let mut cache = self.lock();
        match cache.get(key) {
            Some(e) if e.expires > now => Some(e.person.clone()),
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }

    /// Caches a vendor's answer (with the table's name for a configured
    /// e-mail) and returns it.
    fn remember(&self, key: Key, found: Option<Person>) -> Option<Person> {
        let found = found.map(|p| self.configured(&p.email).unwrap_or(p));
        let ttl = if found.is_some() {
            self.settings.hit_ttl
        } else {
            self.settings.miss_ttl
        };
        let capacity = self.settings.capacity;
        if capacity == 0 || ttl.is_zero() {
            return found;
        }
        let now = self.clock.now();
        let expires = now.saturating_add(millis(ttl));
        let mut cache = self.lock();
        if cache.len() >= capacity && !cache.contains_key(&key) {
            cache.retain(|_, e| e.expires > now);
        }
        while cache.len() >= capacity && !cache.contains_key(&key) {
            let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            cache.remove(&oldest);
        }
        cache.insert(
            key,
            Entry {
                person: found.clone(),
                expires,
            },
        );
        found
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // A poisoned cache still holds valid entries.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn vendor(service: &'static str, who: &str, source: DeliveryError) -> LookupError {
    LookupError::Vendor {
        service,
        who: who.to_string(),
        source,
    }
}

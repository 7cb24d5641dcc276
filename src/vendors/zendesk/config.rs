//! `[zendesk]` of the config file: its keys, their defaults and checks.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::engine::Policy;
use crate::secret::Secret;
use crate::validate::{Check, lower};

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

/// The section as written in the file (unknown keys refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZendesk {
    pub(crate) url: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) api_token_file: Option<PathBuf>,
    pub(crate) api_token_env: Option<String>,
    pub(crate) webhook_secret_file: Option<PathBuf>,
    pub(crate) webhook_secret_env: Option<String>,
    pub(crate) emergency_priorities: Option<Vec<String>>,
    pub(crate) emergency_tags: Option<Vec<String>>,
    pub(crate) poll_interval: Option<String>,
}

/// Checks `[zendesk]` (required), recording every problem in `c`; what it
/// decides of the emergency policy goes into `policy`. When the section is
/// missing the problem is recorded and a placeholder returned (never used:
/// the config is refused).
pub(crate) fn check(c: &mut Check, raw: Option<RawZendesk>, policy: &mut Policy) -> ZendeskConfig {
    let checked = match raw {
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
    // Placeholder: the problem is already recorded.
    checked.unwrap_or_else(|| ZendeskConfig {
        url: String::new(),
        email: String::new(),
        api_token: Secret::new(""),
        webhook_secret: Secret::new(""),
        poll_interval: None,
    })
}

impl super::Zendesk {
    /// The client of `[zendesk]`.
    pub fn from_config(c: &ZendeskConfig, http: reqwest::Client) -> Self {
        super::Zendesk::new(c.url.clone(), &c.email, &c.api_token, http)
    }
}

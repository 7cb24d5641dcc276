//! `[pagerduty]` of the config file: its keys, their defaults and checks.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;
use crate::validate::Check;

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

/// The section as written in the file (unknown keys refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPagerDuty {
    pub(crate) events_url: Option<String>,
    pub(crate) api_url: Option<String>,
    pub(crate) routing_key_file: Option<PathBuf>,
    pub(crate) routing_key_env: Option<String>,
    pub(crate) api_token_file: Option<PathBuf>,
    pub(crate) api_token_env: Option<String>,
    pub(crate) from: Option<String>,
    pub(crate) webhook_secret_file: Option<PathBuf>,
    pub(crate) webhook_secret_env: Option<String>,
    pub(crate) poll_interval: Option<String>,
    pub(crate) events_per_minute: Option<u32>,
}

/// Checks `[pagerduty]` (required), recording every problem in `c`. When
/// the section is missing the problem is recorded and a placeholder returned (never used:
/// the config is refused).
pub(crate) fn check(c: &mut Check, raw: Option<RawPagerDuty>) -> PagerDutyConfig {
    let checked = match raw {
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
    // Placeholder: the problem is already recorded.
    checked.unwrap_or_else(|| PagerDutyConfig {
        events_url: String::new(),
        api_url: String::new(),
        routing_key: Secret::new(""),
        api_token: Secret::new(""),
        from: String::new(),
        webhook_secret: None,
        poll_interval: None,
        events_per_minute: 0,
    })
}

impl super::PagerDuty {
    /// The client of `[pagerduty]`. Only the dispatcher sends Events API
    /// calls, so only it is `paced` by `events_per_minute`.
    pub fn from_config(c: &PagerDutyConfig, paced: bool, http: reqwest::Client) -> Self {
        super::PagerDuty::new(
            c.events_url.clone(),
            c.api_url.clone(),
            c.routing_key.clone(),
            c.api_token.clone(),
            c.from.clone(),
            if paced { c.events_per_minute } else { 0 },
            http,
        )
    }
}

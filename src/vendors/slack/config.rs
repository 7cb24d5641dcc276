//! `[slack]` of the config file: its keys, their defaults and checks.

use std::path::PathBuf;

use serde::Deserialize;

use crate::engine::Policy;
use crate::secret::Secret;
use crate::validate::Check;

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

/// The section as written in the file (unknown keys refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlack {
    pub(crate) api_url: Option<String>,
    pub(crate) bot_token_file: Option<PathBuf>,
    pub(crate) bot_token_env: Option<String>,
    pub(crate) signing_secret_file: Option<PathBuf>,
    pub(crate) signing_secret_env: Option<String>,
    pub(crate) channels: Option<Vec<String>>,
}

/// Checks `[slack]` (optional: `None` when absent), recording every problem
/// in `c`; what it decides of the policy goes into `policy`.
pub(crate) fn check(
    c: &mut Check,
    raw: Option<RawSlack>,
    policy: &mut Policy,
) -> Option<SlackConfig> {
    let slack = raw.map(|s| {
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
    slack
}

impl super::Slack {
    /// The client of `[slack]`.
    pub fn from_config(c: &SlackConfig, http: reqwest::Client) -> Self {
        super::Slack::new(c.api_url.clone(), c.bot_token.clone(), http)
    }
}

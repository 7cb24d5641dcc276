//! Slack: the bot token (`auth.test`), its scopes (the `x-oauth-scopes`
//! header), and the bot's membership of each configured channel
//! (`conversations.list` to resolve the name, then `conversations.info`):
//! `slack.channels`, and `hackerone.channel` when `[hackerone]` is set.

use super::Check;
use crate::config::Config;
use crate::vendors::ProbeError;
use crate::vendors::slack::{REQUIRED_SCOPES, Slack};

const TOKEN: &str = "Slack bot token";
const SCOPES: &str = "Slack scopes";

pub(super) async fn checks(config: &Config, http: reqwest::Client) -> Vec<Check> {
    let Some(sc) = &config.slack else {
        return vec![Check::pass("Slack", "not configured (no [slack])")];
    };
    let client = Slack::from_config(sc, http);
    let auth = match client.auth_test().await {
        Ok(a) => a,
        Err(ProbeError::Rejected { reason }) => {
            return vec![Check::fail(
                TOKEN,
                format!("the bot token in slack.bot_token_file (or _env) is rejected: {reason}"),
                "copy the Bot User OAuth Token (xoxb-…) from your Slack app's OAuth & \
                 Permissions page (reinstall the app if it was revoked) into slack.bot_token_file",
            )];
        }
        Err(e) => {
            return vec![Check::fail(
                TOKEN,
                format!("cannot check it: {e}"),
                format!(
                    "check slack.api_url ({}) and that this host reaches it",
                    sc.api_url
                ),
            )];
        }
    };
    let bot = if auth.user.is_empty() {
        "pagerd".to_string()
    } else {
        auth.user.clone()
    };
    let mut out = vec![Check::pass(
        TOKEN,
        format!("valid: bot @{bot} in workspace {:?} (auth.test)", auth.team),
    )];
    out.push(match &auth.scopes {
        None => Check::pass(
            SCOPES,
            "Slack did not list the token's scopes (no x-oauth-scopes header); not checked",
        ),
        Some(granted) => {
            let missing: Vec<&str> = REQUIRED_SCOPES
                .iter()
                .copied()
                .filter(|s| !granted.iter().any(|g| g == s))
                .collect();
            if missing.is_empty() {
                Check::pass(SCOPES, format!("has {}", REQUIRED_SCOPES.join(", ")))
            } else {
                Check::fail(
                    SCOPES,
                    format!("the bot token lacks {}", missing.join(", ")),
                    format!(
                        "add {} under OAuth & Permissions → Bot Token Scopes of the Slack app, \
                         reinstall it, and put the new bot token in slack.bot_token_file",
                        missing.join(", ")
                    ),
                )
            }
        }
    });
    // Each channel once, with the key that names it.
    let mut channels: Vec<(&str, &str)> = sc
        .channels
        .iter()
        .map(|c| (c.as_str(), "slack.channels"))
        .collect();
    if let Some(h1) = &config.hackerone {
        let bare = |c: &str| c.trim_start_matches('#').to_string();
        if !channels.iter().any(|(c, _)| bare(c) == bare(&h1.channel)) {
            channels.push((h1.channel.as_str(), "hackerone.channel"));
        }
    }
    for (channel, key) in channels {
        let shown = if channel.starts_with('#') {
            channel.to_string()
        } else {
            format!("#{channel}")
        };
        let name = format!("Slack channel {shown}");
        let invite = format!("invite the bot: /invite @{bot} in {shown}");
        out.push(match client.channel_info(channel).await {
            Ok(c) if c.is_archived => Check::fail(
                name,
                format!("{shown} ({}) is archived: nothing can be posted there", c.id),
                format!("unarchive it, or name another channel in {key}"),
            ),
            Ok(c) if c.is_member => Check::pass(
                name,
                format!("the bot is a member ({}, conversations.info)", c.id),
            ),
            Ok(c) => Check::fail(
                name,
                format!("the bot is not a member of {shown} ({})", c.id),
                invite,
            ),
            Err(ProbeError::NotFound { .. }) => Check::fail(
                name,
                format!(
                    "no channel {shown} is visible to the bot ({key}; looked up with conversations.list)"
                ),
                format!(
                    "fix the name in {key}, or create {shown}; a private channel is \
                     only visible once the bot is in it: {invite}"
                ),
            ),
            Err(e) => Check::fail(
                name,
                format!("cannot check it: {e}"),
                "see the error: a missing scope is added under OAuth & Permissions of the Slack app",
            ),
        });
    }
    out
}

//! Webhook secrets: Zendesk's is required (the config refuses to load
//! without it); PagerDuty's, Slack's and HackerOne's are optional, and the
//! check says which webhooks are off and what stands in for them. A
//! HackerOne secret, when set, was read and is not empty (the config
//! refuses an empty one): its route is on.

use super::Check;
use crate::config::Config;

const NAME: &str = "Webhooks";

pub(super) fn checks(config: &Config) -> Vec<Check> {
    let mut on = Vec::new();
    let mut off = Vec::new();
    // Required by the config: present whenever it loaded.
    if config.zendesk.webhook_secret.expose().is_empty() {
        return vec![Check::fail(
            NAME,
            "no Zendesk webhook signing secret (zendesk.webhook_secret_file)",
            "copy the signing secret of the Zendesk webhook (Admin Center → Webhooks) into \
             zendesk.webhook_secret_file",
        )];
    }
    on.push("Zendesk (/webhooks/zendesk)".to_string());
    let pd_poll = config.pagerduty.poll_interval;
    match (&config.pagerduty.webhook_secret, pd_poll) {
        (Some(_), _) => on.push("PagerDuty (/webhooks/pagerduty)".to_string()),
        (None, Some(every)) => off.push(format!(
            "PagerDuty (no pagerduty.webhook_secret_file: acknowledgements are learnt by polling every {})",
            humantime::format_duration(every)
        )),
        (None, None) => {
            return vec![Check::fail(
                NAME,
                "PagerDuty webhooks are off (no pagerduty.webhook_secret_file) and polling too \
                 (pagerduty.poll_interval = off): pagerd never learns that someone acknowledged, \
                 and escalates every page",
                "add a v3 webhook subscription (Integrations → Generic Webhooks (v3)) and put its \
                 signing secret in pagerduty.webhook_secret_file, or set pagerduty.poll_interval",
            )];
        }
    }
    if let Some(slack) = &config.slack {
        if slack.signing_secret.is_some() {
            on.push("Slack (/webhooks/slack)".to_string());
        } else {
            off.push(
                "Slack (no slack.signing_secret_file: the buttons and /pagerd are off)".to_string(),
            );
        }
    }
    if let Some(h1) = &config.hackerone {
        if h1.webhook_secret.is_some() {
            on.push("HackerOne (/webhooks/hackerone)".to_string());
        } else {
            off.push(
                "HackerOne (no hackerone.webhook_secret_file: closures and disclosure requests \
                 in HackerOne are not followed)"
                    .to_string(),
            );
        }
    }
    let mut detail = format!("on: {}", on.join(", "));
    if !off.is_empty() {
        detail.push_str(&format!("; off: {}", off.join("; ")));
    }
    vec![Check::pass(NAME, detail)]
}

//! Zendesk: the API token and whose it is (`GET /api/v2/users/me.json`).

use super::Check;
use crate::config::Config;
use crate::vendors::zendesk::Zendesk;
use crate::vendors::{ProbeError, normalize_email};

const TOKEN: &str = "Zendesk API token";
const AGENT: &str = "Zendesk agent";

pub(super) async fn checks(config: &Config, http: reqwest::Client) -> Vec<Check> {
    let zd = &config.zendesk;
    let client = Zendesk::from_config(zd, http);
    let new_token = format!(
        "create an API token (Admin Center → Apps and integrations → Zendesk API; token access \
         enabled) for the agent {}, and write it to zendesk.api_token_file",
        zd.email
    );
    let me = match client.me().await {
        Ok(me) => me,
        Err(ProbeError::Rejected { reason }) => {
            return vec![Check::fail(
                TOKEN,
                format!(
                    "the API token in zendesk.api_token_file (or _env) is rejected for {}: {reason}",
                    zd.email
                ),
                new_token,
            )];
        }
        Err(e) => {
            return vec![Check::fail(
                TOKEN,
                format!("cannot check it: {e}"),
                format!(
                    "check zendesk.url ({}) and that this host reaches it",
                    zd.url
                ),
            )];
        }
    };
    let email = me.email.as_deref().map(normalize_email).unwrap_or_default();
    if me.id.is_none() || email != normalize_email(&zd.email) {
        // Zendesk describes an anonymous user when it did not take the
        // credentials as someone's.
        return vec![Check::fail(
            TOKEN,
            format!(
                "Zendesk took the token as {:?}, not as zendesk.email {}",
                me.email.unwrap_or_default(),
                zd.email
            ),
            new_token,
        )];
    }
    let role = me.role.unwrap_or_default();
    vec![
        Check::pass(
            TOKEN,
            format!("accepted for {} (GET /api/v2/users/me.json)", zd.email),
        ),
        if role == "agent" || role == "admin" {
            Check::pass(
                AGENT,
                format!("{} is an {role}: pagerd can comment on tickets", zd.email),
            )
        } else {
            Check::fail(
                AGENT,
                format!(
                    "{} has the role {role:?}; pagerd comments on tickets and needs an agent or admin",
                    zd.email
                ),
                format!(
                    "make {} an agent (Admin Center → People → Team members), or set zendesk.email \
                     and its token to an agent's",
                    zd.email
                ),
            )
        },
    ]
}

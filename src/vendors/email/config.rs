//! `[email]` of the config file: its keys, their defaults and checks.

use std::path::PathBuf;

use serde::Deserialize;

use crate::clock::millis;
use crate::engine::Policy;
use crate::secret::Secret;
use crate::validate::Check;

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

/// The section as written in the file (unknown keys refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub(crate) smtp_url: Option<String>,
    pub(crate) from: Option<String>,
    pub(crate) level2: Option<Vec<String>>,
    pub(crate) fallback_after: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) password_env: Option<String>,
}

/// Checks `[email]` (optional: `None` when absent), recording every problem
/// in `c`; what it decides of the policy goes into `policy`.
pub(crate) fn check(
    c: &mut Check,
    raw: Option<RawEmail>,
    policy: &mut Policy,
) -> Option<EmailConfig> {
    raw.map(|e| {
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
    })
}

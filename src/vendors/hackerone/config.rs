//! `[hackerone]` of the config file: the webhook's signing secret.
//!
//! Not yet part of [`crate::config::Config`]: whoever routes the webhook
//! adds `hackerone: Option<RawHackerOne>` to the file's shape and calls
//! [`check`].

use std::path::PathBuf;

use serde::Deserialize;

use crate::secret::Secret;
use crate::validate::Check;

/// `[hackerone]`.
#[derive(Debug, Clone)]
pub struct HackerOneConfig {
    /// The secret set on the program's webhook (HackerOne → Program
    /// settings → Webhooks): the HMAC key of `X-H1-Signature`.
    pub webhook_secret: Secret,
}

/// The section as written in the file (unknown keys refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHackerOne {
    /// `webhook_secret_file`.
    pub webhook_secret_file: Option<PathBuf>,
    /// `webhook_secret_env`.
    pub webhook_secret_env: Option<String>,
}

/// Checks `[hackerone]` (optional: `None` when absent), recording every
/// problem in `c`. The secret is required: HackerOne signs with an empty
/// key when a webhook has no secret, which anyone could forge.
pub fn check(c: &mut Check, raw: Option<RawHackerOne>) -> Option<HackerOneConfig> {
    let h = raw?;
    Some(HackerOneConfig {
        webhook_secret: c.required_secret(
            "hackerone",
            "webhook_secret",
            h.webhook_secret_file,
            h.webhook_secret_env,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_read_and_required() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("h1"), "h1-secret\n").unwrap();
        let mut c = Check::new(dir.path().to_path_buf());
        let raw = RawHackerOne {
            webhook_secret_file: Some("h1".into()),
            webhook_secret_env: None,
        };
        let h = check(&mut c, Some(raw)).unwrap();
        assert_eq!(h.webhook_secret.expose(), "h1-secret");
        assert!(c.problems.is_empty());
        let raw = RawHackerOne {
            webhook_secret_file: None,
            webhook_secret_env: None,
        };
        check(&mut c, Some(raw));
        assert_eq!(c.problems[0].key, "hackerone.webhook_secret_file");
        assert!(check(&mut c, None).is_none());
    }
}

//! `pagerd doctor`: checks every configured integration with the real
//! config, without side effects, and says for each failure what to fix.
//!
//! Every check only asks (who am I, does this user, channel or file exist,
//! does the relay greet us): no event is sent to PagerDuty (that would page
//! someone), no comment, message, doc, permission or mail is created, the
//! store is neither written nor locked. The one POST is Google's OAuth token
//! request, which grants a token and changes nothing. The end-to-end test
//! `tests/it/doctor.rs` proves it on the stand-ins' request logs.
//!
//! One file per vendor builds its checks; they run concurrently (each
//! request is bounded by [`crate::vendors::REQUEST_TIMEOUT`]) and are
//! reported in a fixed order: PagerDuty, Zendesk, Slack, the HackerOne
//! calendar, Google (Drive, Docs, Calendar), GitLab, e-mail, webhooks, store.

use serde::Serialize;

use crate::clock::Clock as _;
use crate::config::Config;
use crate::render;

mod email;
mod gitlab;
mod google;
mod hackerone;
mod pagerduty;
mod slack;
mod store;
mod webhooks;
mod zendesk;

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. `PagerDuty REST API token`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found (or sent), in words; never a secret.
    pub detail: String,
    /// What to do about a failure, in words; `None` when it passed.
    pub fix: Option<String>,
}

impl Check {
    /// A check that passed.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A check that failed, and how to fix it.
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every check, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether every check passed.
    pub ok: bool,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// A report of `checks`.
    pub fn new(checks: Vec<Check>) -> Report {
        Report {
            ok: checks.iter().all(|c| c.ok),
            checks,
        }
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// `{"ok": bool, "checks": [{"name", "ok", "detail", "fix"}]}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({ "ok": false }))
    }

    /// The checklist for a terminal: one line per check (`✓` / `✗`), the
    /// fix indented under each failure, a count at the end. Vendor and
    /// config text goes through [`render::terminal`].
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = if c.ok { "✓" } else { "✗" };
            out.push_str(&format!(
                "{mark} {}: {}\n",
                render::terminal(&c.name),
                render::terminal(&c.detail)
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("    fix: {}\n", render::terminal(fix)));
            }
        }
        let failed = self.failures().count();
        if failed == 0 {
            out.push_str(&format!(
                "all {} checks passed (nothing was sent or written)\n",
                self.checks.len()
            ));
        } else {
            out.push_str(&format!(
                "{failed} of {} checks failed (nothing was sent or written)\n",
                self.checks.len()
            ));
        }
        out
    }
}

/// Runs every check of `config`, the vendors concurrently.
pub async fn run(config: &Config) -> Report {
    let http = crate::vendors::http_client(crate::vendors::REQUEST_TIMEOUT);
    let (pd, zd, slack, google, gitlab, email, store) = tokio::join!(
        pagerduty::checks(config, http.clone()),
        zendesk::checks(config, http.clone()),
        slack::checks(config, http.clone()),
        google::checks(config, http.clone()),
        gitlab::checks(config, http.clone()),
        email::checks(config),
        store::checks(config),
    );
    let mut checks = Vec::new();
    let now = crate::clock::SystemClock.now();
    for group in [
        pd,
        zd,
        slack,
        hackerone::checks(config, now),
        google,
        gitlab,
        email,
        webhooks::checks(config),
        store,
    ] {
        checks.extend(group);
    }
    Report::new(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_ok_only_when_every_check_passes() {
        let good = Report::new(vec![Check::pass("a", "fine")]);
        assert!(good.ok);
        assert!(good.text().contains("✓ a: fine"));
        assert!(good.text().contains("all 1 checks passed"));
        let bad = Report::new(vec![
            Check::pass("a", "fine"),
            Check::fail("b", "broken\x1b[31m", "mend it"),
        ]);
        assert!(!bad.ok);
        let text = bad.text();
        assert!(text.contains("✗ b: broken"), "{text}");
        assert!(text.contains("    fix: mend it"), "{text}");
        assert!(!text.contains('\x1b'), "terminal escapes are neutralised");
        assert!(text.contains("1 of 2 checks failed"), "{text}");
        let v = bad.json();
        assert_eq!(v["ok"], false);
        assert_eq!(v["checks"][1]["name"], "b");
        assert_eq!(v["checks"][1]["fix"], "mend it");
        assert_eq!(v["checks"][0]["fix"], serde_json::Value::Null);
    }
}

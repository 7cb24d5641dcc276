//! From a channel's own handle of a person (a PagerDuty user id, a Slack
//! user id, an e-mail given to the CLI) to the engine's [`Who`]: the
//! person's real name and e-mail, so that one person acting from several
//! channels counts once. A lookup that fails or takes too long falls back
//! to what the channel said (logged), so an answer never waits on a vendor
//! for long and an acknowledgement is never lost for want of a name.

use std::future::Future;
use std::time::Duration;

use super::{Directory, LookupError, Person};
use crate::engine::Who;

/// The longest a webhook waits for a name before it carries on without.
pub const LOOKUP_WAIT: Duration = Duration::from_secs(2);

impl Directory {
    /// A PagerDuty user, by id; `summary` is the name the webhook or the
    /// incident gave.
    pub async fn who_pagerduty(&self, id: Option<&str>, summary: Option<&str>) -> Who {
        let fallback = summary
            .filter(|s| !s.trim().is_empty())
            .or(id)
            .unwrap_or("a PagerDuty user");
        match id {
            Some(id) => resolve(self.pagerduty_user(id), fallback).await,
            None => Who::named(fallback),
        }
    }

    /// A Slack user, by id; `handle` is the user name Slack sent.
    pub async fn who_slack(&self, id: Option<&str>, handle: Option<&str>) -> Who {
        let fallback = match (handle.filter(|h| !h.trim().is_empty()), id) {
            (Some(h), _) => format!("@{h}"),
            (None, Some(id)) => format!("slack:{id}"),
            (None, None) => "a Slack user".into(),
        };
        match id {
            Some(id) => resolve(self.slack_user(id), &fallback).await,
            None => Who::named(&fallback),
        }
    }

    /// A person by e-mail (the CLI's `--as`): their name from `[people]`
    /// or PagerDuty; the e-mail stands for the name when nobody knows it.
    pub async fn who_email(&self, email: &str) -> Who {
        let email = super::normalize_email(email);
        let who = resolve(self.by_email(&email), &email).await;
        Who::new(who.name, Some(email))
    }
}

async fn resolve(
    lookup: impl Future<Output = Result<Option<Person>, LookupError>>,
    fallback: &str,
) -> Who {
    match tokio::time::timeout(LOOKUP_WAIT, lookup).await {
        Ok(Ok(Some(p))) => Who::new(p.name, Some(p.email)),
        Ok(Ok(None)) => Who::named(fallback),
        Ok(Err(e)) => {
            tracing::warn!(cause = %e, who = fallback, "people: lookup failed; using the name the channel gave");
            Who::named(fallback)
        }
        Err(_) => {
            tracing::warn!(who = fallback, wait = ?LOOKUP_WAIT, "people: lookup timed out; using the name the channel gave");
            Who::named(fallback)
        }
    }
}

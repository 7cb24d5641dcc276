//! The tracker's effect, delivered through GitLab: the follow-up issue,
//! marked with the incident and the effect's key so a redelivery finds it.

use async_trait::async_trait;

use super::GitLab;
use crate::engine::{Effect, Outcome};
use crate::store::Pending;
use crate::vendors::{DeliveryError, Vendor, wrong_lane};

#[async_trait]
impl Vendor for GitLab {
    async fn deliver(&self, p: &Pending) -> Result<Option<Outcome>, DeliveryError> {
        match &p.effect {
            Effect::OpenFollowUp { title, description } => {
                // Always searches first (one read): cheap, and safe even
                // when `maybe_sent` is wrong.
                let issue = self
                    .open_issue(title, description, p.incident.id, &p.key())
                    .await?;
                Ok(Some(Outcome::FollowUp { url: issue.web_url }))
            }
            other => Err(wrong_lane("GitLab", other)),
        }
    }
}

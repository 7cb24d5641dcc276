//! The fallback page, delivered by e-mail to level 2.

use async_trait::async_trait;

use super::Mailer;
use crate::engine::{Effect, Outcome};
use crate::store::Pending;
use crate::vendors::{DeliveryError, Vendor, wrong_lane};

/// The mailer and whom the fallback page goes to.
pub struct Fallback {
    /// The SMTP client.
    pub mailer: Mailer,
    /// Level 2's addresses.
    pub level2: Vec<String>,
}

#[async_trait]
impl Vendor for Fallback {
    async fn deliver(&self, p: &Pending) -> Result<Option<Outcome>, DeliveryError> {
        match &p.effect {
            Effect::Mail { subject, body } => self
                .mailer
                .send(&self.level2, subject, body, &p.key())
                .await
                .map(|()| None),
            other => Err(wrong_lane("e-mail", other)),
        }
    }
}

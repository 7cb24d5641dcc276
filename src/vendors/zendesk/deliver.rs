//! The ticket's effects, delivered through Zendesk: comments, tagged with
//! the effect's key so a redelivery finds them.

use async_trait::async_trait;

use super::Zendesk;
use crate::engine::{Effect, Outcome};
use crate::store::Pending;
use crate::vendors::{DeliveryError, Vendor, wrong_lane};

#[async_trait]
impl Vendor for Zendesk {
    async fn deliver(&self, p: &Pending) -> Result<Option<Outcome>, DeliveryError> {
        match &p.effect {
            Effect::TicketComment { body, public } => self
                .comment(&p.incident.ticket.id, body, *public, &p.key(), p.maybe_sent)
                .await
                .map(|()| None),
            other => Err(wrong_lane("Zendesk", other)),
        }
    }
}

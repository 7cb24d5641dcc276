//! Google's lanes. The crisis doc's effects, delivered through Drive and
//! Docs: create it, share it with the company and the customer, append the
//! timeline, deprecate it. The hand-off call, booked in Calendar with a
//! Meet link.

use async_trait::async_trait;

use super::calendar::{Calendar, HandoffRequest};
use super::{Google, Grantee, timeline_marker};
use crate::engine::{Doc, Effect, Handoff, Incident, Outcome};
use crate::store::Pending;
use crate::vendors::{DeliveryError, Vendor, wrong_lane};

/// Title prefix of a deprecated crisis doc.
pub const DEPRECATED_PREFIX: &str = "[DEPRECATED] ";

/// Google as the crisis doc's home, with how docs are shared.
pub struct Docs {
    /// The client.
    pub google: Google,
    /// The company's domain, given write access; `None`: not shared so.
    pub share_domain: Option<String>,
    /// The customer's role on the doc (`commenter`, `reader`, `writer`).
    pub customer_role: String,
}

fn doc(inc: &Incident) -> Result<&Doc, DeliveryError> {
    inc.crisis
        .as_ref()
        .and_then(|c| c.doc.as_ref())
        .ok_or_else(|| DeliveryError::permanent("the incident has no crisis doc"))
}

#[async_trait]
impl Vendor for Docs {
    async fn deliver(&self, p: &Pending) -> Result<Option<Outcome>, DeliveryError> {
        let inc = &p.incident;
        match &p.effect {
            Effect::CreateDoc { title, body } => {
                let made = self.google.create_doc(title, body, &p.key()).await?;
                Ok(Some(Outcome::Doc {
                    doc: Doc {
                        id: made.id,
                        url: made.url,
                    },
                }))
            }
            Effect::ShareDoc => {
                let doc = doc(inc)?;
                // Sequential on purpose: Drive applies only the last of
                // concurrent permission changes to one file.
                if let Some(domain) = &self.share_domain {
                    self.google
                        .share(&doc.id, &Grantee::Domain(domain.clone()), "writer")
                        .await?;
                }
                if !inc.ticket.requester_email.is_empty() {
                    let customer = Grantee::User(inc.ticket.requester_email.clone());
                    self.google
                        .share(&doc.id, &customer, &self.customer_role)
                        .await?;
                }
                Ok(None)
            }
            Effect::AppendTimeline { text } => {
                let marker = timeline_marker(inc.id, &p.key());
                self.google
                    .append_timeline(&doc(inc)?.id, &marker, text, p.maybe_sent)
                    .await
                    .map(|()| None)
            }
            Effect::DeprecateDoc { notice } => self
                .google
                .deprecate(&doc(inc)?.id, DEPRECATED_PREFIX, notice)
                .await
                .map(|()| None),
            other => Err(wrong_lane("Google", other)),
        }
    }
}

/// Calendar as the hand-off call's home.
#[async_trait]
impl Vendor for Calendar {
    async fn deliver(&self, p: &Pending) -> Result<Option<Outcome>, DeliveryError> {
        match &p.effect {
            Effect::BookHandoff {
                title,
                description,
                start,
                minutes,
                attendees,
            } => {
                let request = HandoffRequest {
                    title,
                    description,
                    start: *start,
                    minutes: *minutes,
                    attendees,
                };
                // Always looks first (one read): cheap, and safe even when
                // `maybe_sent` is wrong.
                let booked = self.book(&request, p.incident.id, &p.key()).await?;
                Ok(Some(Outcome::Handoff {
                    handoff: Handoff {
                        meet_url: booked.meet_url,
                        event_url: booked.event_url,
                    },
                }))
            }
            other => Err(wrong_lane("Google Calendar", other)),
        }
    }
}

//! The pager's effects, delivered through PagerDuty: the page (Events API
//! `trigger`), acknowledge and resolve, the escalation to level 2 and notes
//! (REST), each with its redelivery check.

use async_trait::async_trait;
use serde_json::json;

use super::{Page, PagerDuty};
use crate::clock::Millis;
use crate::engine::{Effect, Incident, Outcome};
use crate::render;
use crate::store::Pending;
use crate::vendors::{DeliveryError, Vendor, wrong_lane};

impl PagerDuty {
    /// PagerDuty's id for the incident: known, or looked up by key.
    async fn incident_id(&self, inc: &Incident) -> Result<(String, bool), DeliveryError> {
        if let Some(id) = &inc.pagerduty_id {
            return Ok((id.clone(), false));
        }
        // PagerDuty refused the trigger for good: there is no incident to
        // act on, and waiting for one would retry forever.
        if !inc.paged()
            && let Some(why) = &inc.undeliverable
        {
            return Err(DeliveryError::permanent(format!(
                "PagerDuty never accepted the page for {} ({why}); fix the cause, then \
                 `pagerd incidents repage {}` sends it and this again",
                inc.dedup_key, inc.id
            )));
        }
        match self.find(&inc.dedup_key).await? {
            Some(remote) => Ok((remote.id, true)),
            // The trigger is accepted before PagerDuty opens the incident.
            None => Err(DeliveryError::retry(format!(
                "PagerDuty has no incident for {} yet (the trigger is still being processed)",
                inc.dedup_key
            ))),
        }
    }

    async fn page(&self, inc: &Incident, summary: &str) -> Result<(), DeliveryError> {
        let t = &inc.ticket;
        let source = if t.organization.is_empty() {
            "zendesk"
        } else {
            t.organization.as_str()
        };
        let detail = render::pagerduty_detail;
        let source = detail(source);
        let tags: Vec<String> = t.tags.iter().take(50).map(|x| detail(x)).collect();
        let page = Page {
            dedup_key: &inc.dedup_key,
            summary,
            source: &source,
            ticket_url: &t.url,
            ticket_id: &t.id,
            custom_details: json!({
                "ticket": t.id, "title": detail(&t.title),
                "requester": detail(&t.requester_name),
                "requester_email": detail(&t.requester_email),
                "organization": detail(&t.organization),
                "priority": detail(&t.priority), "tags": tags, "pagerd_incident": inc.id,
            }),
        };
        self.trigger(&page).await
    }

    async fn escalate_once(
        &self,
        p: &Pending,
        level: u8,
        note: &str,
        due: Option<Millis>,
    ) -> Result<Option<Outcome>, DeliveryError> {
        let key = p.key();
        let (id, learned) = self.incident_id(&p.incident).await?;
        let outcome = learned.then_some(Outcome::PagerIncident { id: id.clone() });
        // A redelivery first looks for what an earlier attempt did: the note
        // (written after the escalation, tagged with this effect's key)
        // means both happened; an API escalation in PagerDuty's log since
        // the effect was queued means the escalation did. Escalating twice
        // would page level 2 twice.
        //
        // An escalation by the timer may have been made before, by an
        // earlier process whose commit of it a power cut lost after the
        // request left (it leaves while the commit syncs): the timer then
        // fires again, and this row is a new one, queued after the
        // restart. So the look goes back to the deadline.
        if p.maybe_sent {
            if self.has_note(&id, &key).await? {
                return Ok(outcome);
            }
            let since = due.map_or(p.created_at, |d| d.min(p.created_at));
            // A minute of slack for the clocks of pagerd and PagerDuty.
            if !self.escalated_since(&id, since - 60_000).await? {
                self.escalate(&id, level).await?;
            }
        } else {
            self.escalate(&id, level).await?;
        }
        self.add_note(&id, note, &key).await?;
        Ok(outcome)
    }
}

#[async_trait]
impl Vendor for PagerDuty {
    async fn deliver(&self, p: &Pending) -> Result<Option<Outcome>, DeliveryError> {
        let inc = &p.incident;
        match &p.effect {
            Effect::Page { summary } => {
                // A redelivery (the outcome of an earlier attempt was not
                // recorded: a crash, a lapsed lease) looks first: a second
                // trigger after the incident was resolved in PagerDuty would
                // open a new incident and page the engineer again.
                if p.maybe_sent
                    && let Some(remote) = self.find(&inc.dedup_key).await?
                {
                    return Ok(Some(Outcome::PagerIncident { id: remote.id }));
                }
                self.page(inc, summary).await.map(|()| None)
            }
            Effect::PageAcknowledge => self
                .update(&inc.dedup_key, "acknowledge")
                .await
                .map(|()| None),
            Effect::PageResolve => self.update(&inc.dedup_key, "resolve").await.map(|()| None),
            Effect::PageEscalate { level, note, due } => {
                self.escalate_once(p, *level, note, *due).await
            }
            Effect::PageNote { text } => {
                let (id, learned) = self.incident_id(inc).await?;
                self.note(&id, text, &p.key()).await?;
                Ok(learned.then_some(Outcome::PagerIncident { id }))
            }
            other => Err(wrong_lane("PagerDuty", other)),
        }
    }
}

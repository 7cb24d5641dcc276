//! The real [`Deliver`]: maps each effect to its integration call, filling
//! in what earlier effects produced (PagerDuty's incident id, the doc, the
//! Slack thread) from the incident as it is at delivery time.

use async_trait::async_trait;
use serde_json::json;

use crate::config::Config;
use crate::dispatcher::Deliver;
use crate::engine::{Doc, Effect, Incident, Outcome, SlackThread};
use crate::render;
use crate::store::Pending;
use crate::vendors::email::Mailer;
use crate::vendors::google::{Google, GoogleSettings, Grantee, ServiceAccountKey};
use crate::vendors::pagerduty::{Page, PagerDuty};
use crate::vendors::slack::{Slack, SlackMessage};
use crate::vendors::zendesk::Zendesk;
use crate::vendors::{DeliveryError, REQUEST_TIMEOUT, http_client};

/// Title prefix of a deprecated crisis doc.
pub const DEPRECATED_PREFIX: &str = "[DEPRECATED] ";

/// Every configured integration.
pub struct Integrations {
    /// PagerDuty.
    pub pagerduty: PagerDuty,
    /// Zendesk.
    pub zendesk: Zendesk,
    slack: Option<Slack>,
    google: Option<Google>,
    mailer: Option<Mailer>,
    share_domain: Option<String>,
    customer_role: String,
    level2: Vec<String>,
}

fn not_configured(what: &str) -> DeliveryError {
    DeliveryError::permanent(format!(
        "[{what}] is not configured, but an effect for it was queued; add the section"
    ))
}

impl Integrations {
    /// Builds the clients from a validated config.
    pub fn from_config(config: &Config) -> Result<Integrations, String> {
        let http = http_client(REQUEST_TIMEOUT);
        let pd = &config.pagerduty;
        let zd = &config.zendesk;
        let google = match &config.google {
            None => None,
            Some(g) => {
                let key = ServiceAccountKey::from_file(&g.service_account_file)
                    .map_err(|e| format!("google.service_account_file: {e}"))?;
                let settings = GoogleSettings {
                    token_url: g.token_url.clone(),
                    drive_url: g.drive_url.clone(),
                    docs_url: g.docs_url.clone(),
                    template_id: g.template_id.clone(),
                    folder_id: g.folder_id.clone(),
                };
                Some(Google::new(settings, key, http.clone()))
            }
        };
        let mailer = match &config.email {
            None => None,
            Some(e) => Some(
                Mailer::new(&e.smtp_url, &e.from, e.password.clone(), e.username.clone())
                    .map_err(|err| format!("email: {err}"))?,
            ),
        };
        Ok(Integrations {
            pagerduty: PagerDuty::new(
                pd.events_url.clone(),
                pd.api_url.clone(),
                pd.routing_key.clone(),
                pd.api_token.clone(),
                pd.from.clone(),
                pd.events_per_minute,
                http.clone(),
            ),
            zendesk: Zendesk::new(zd.url.clone(), &zd.email, &zd.api_token, http.clone()),
            slack: config
                .slack
                .as_ref()
                .map(|s| Slack::new(s.api_url.clone(), s.bot_token.clone(), http.clone())),
            google,
            mailer,
            share_domain: config.google.as_ref().and_then(|g| g.share_domain.clone()),
            customer_role: config
                .google
                .as_ref()
                .map_or_else(|| "commenter".into(), |g| g.customer_role.clone()),
            level2: config
                .email
                .as_ref()
                .map(|e| e.level2.clone())
                .unwrap_or_default(),
        })
    }

    /// PagerDuty's id for the incident: known, or looked up by key.
    async fn pagerduty_id(&self, inc: &Incident) -> Result<(String, bool), DeliveryError> {
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
        match self.pagerduty.find(&inc.dedup_key).await? {
            Some(remote) => Ok((remote.id, true)),
            // The trigger is accepted before PagerDuty opens the incident.
            None => Err(DeliveryError::retry(format!(
                "PagerDuty has no incident for {} yet (the trigger is still being processed)",
                inc.dedup_key
            ))),
        }
    }

    fn doc<'a>(&self, inc: &'a Incident) -> Result<&'a Doc, DeliveryError> {
        inc.crisis
            .as_ref()
            .and_then(|c| c.doc.as_ref())
            .ok_or_else(|| DeliveryError::permanent("the incident has no crisis doc"))
    }
}

#[async_trait]
impl Deliver for Integrations {
    async fn deliver(&self, p: &Pending) -> Result<Option<Outcome>, DeliveryError> {
        let inc = &p.incident;
        let key = p.key();
        let retry = p.maybe_sent;
        match &p.effect {
            Effect::PagerdutyTrigger { summary } => {
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
                self.pagerduty.trigger(&page).await.map(|()| None)
            }
            Effect::PagerdutyAcknowledge => self
                .pagerduty
                .update(&inc.dedup_key, "acknowledge")
                .await
                .map(|()| None),
            Effect::PagerdutyResolve => self
                .pagerduty
                .update(&inc.dedup_key, "resolve")
                .await
                .map(|()| None),
            Effect::PagerdutyEscalate { level, note } => {
                let (id, learned) = self.pagerduty_id(inc).await?;
                let outcome = learned.then_some(Outcome::PagerdutyIncident { id: id.clone() });
                // A redelivery first looks for what an earlier attempt did:
                // the note (written after the escalation, tagged with this
                // effect's key) means both happened; an API escalation in
                // PagerDuty's log since the effect was queued means the
                // escalation did. Escalating twice would page level 2 twice.
                if retry {
                    if self.pagerduty.has_note(&id, &key).await? {
                        return Ok(outcome);
                    }
                    // A minute of slack for the clocks of pagerd and PagerDuty.
                    if !self
                        .pagerduty
                        .escalated_since(&id, p.created_at - 60_000)
                        .await?
                    {
                        self.pagerduty.escalate(&id, *level).await?;
                    }
                } else {
                    self.pagerduty.escalate(&id, *level).await?;
                }
                self.pagerduty.add_note(&id, note, &key).await?;
                Ok(outcome)
            }
            Effect::PagerdutyNote { text } => {
                let (id, learned) = self.pagerduty_id(inc).await?;
                self.pagerduty.note(&id, text, &key).await?;
                Ok(learned.then_some(Outcome::PagerdutyIncident { id }))
            }
            Effect::ZendeskComment { body, public } => self
                .zendesk
                .comment(&inc.ticket.id, body, *public, &key, retry)
                .await
                .map(|()| None),
            Effect::SlackPost {
                channel,
                text,
                buttons: with_buttons,
            } => {
                let slack = self.slack.as_ref().ok_or_else(|| not_configured("slack"))?;
                let thread = inc.crisis.as_ref().and_then(|c| c.threads.get(channel));
                let msg = SlackMessage {
                    channel: thread.map_or_else(|| channel.clone(), |t| t.channel_id.clone()),
                    text: render::slack_cut(text, render::SLACK_TEXT_MAX),
                    blocks: (*with_buttons && thread.is_none())
                        .then(|| crate::vendors::slack::blocks::announcement_blocks(text, inc.id)),
                    thread_ts: thread.map(|t| t.ts.clone()),
                    marker: key,
                };
                let posted = slack.post(&msg, retry).await?;
                Ok(thread.is_none().then(|| Outcome::SlackThread {
                    channel: channel.clone(),
                    thread: SlackThread {
                        channel_id: posted.channel,
                        ts: posted.ts,
                    },
                }))
            }
            Effect::CreateDoc { title, body } => {
                let google = self
                    .google
                    .as_ref()
                    .ok_or_else(|| not_configured("google"))?;
                let doc = google.create_doc(title, body, &key).await?;
                Ok(Some(Outcome::Doc {
                    doc: Doc {
                        id: doc.id,
                        url: doc.url,
                    },
                }))
            }
            Effect::ShareDoc => {
                let google = self
                    .google
                    .as_ref()
                    .ok_or_else(|| not_configured("google"))?;
                let doc = self.doc(inc)?;
                // Sequential on purpose: Drive applies only the last of
                // concurrent permission changes to one file.
                if let Some(domain) = &self.share_domain {
                    google
                        .share(&doc.id, &Grantee::Domain(domain.clone()), "writer")
                        .await?;
                }
                if !inc.ticket.requester_email.is_empty() {
                    let customer = Grantee::User(inc.ticket.requester_email.clone());
                    google
                        .share(&doc.id, &customer, &self.customer_role)
                        .await?;
                }
                Ok(None)
            }
            Effect::DeprecateDoc { notice } => {
                let google = self
                    .google
                    .as_ref()
                    .ok_or_else(|| not_configured("google"))?;
                let doc = self.doc(inc)?;
                google
                    .deprecate(&doc.id, DEPRECATED_PREFIX, notice)
                    .await
                    .map(|()| None)
            }
            Effect::Email { subject, body } => {
                let mailer = self
                    .mailer
                    .as_ref()
                    .ok_or_else(|| not_configured("email"))?;
                mailer
                    .send(&self.level2, subject, body, &key)
                    .await
                    .map(|()| None)
            }
        }
    }
}

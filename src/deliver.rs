//! The registry: which vendor delivers each lane of effects. Built from
//! the config at start and again by each reload; the dispatcher hands it
//! every due effect, and it hands
//! the effect to the vendor of its lane ([`crate::vendors::Vendor`]). Each
//! vendor's folder knows how to deliver its effects; nothing here does.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::Config;
use crate::dispatcher::Deliver;
use crate::engine::{Lane, Outcome};
use crate::shared::Shared;
use crate::store::Pending;
use crate::vendors::email::Mailer;
use crate::vendors::email::deliver::Fallback;
use crate::vendors::gitlab::GitLab;
use crate::vendors::google::calendar::Calendar;
use crate::vendors::google::deliver::Docs;
use crate::vendors::google::{Google, ServiceAccountKey};
use crate::vendors::pagerduty::PagerDuty;
use crate::vendors::slack::Slack;
use crate::vendors::zendesk::Zendesk;
use crate::vendors::{DeliveryError, REQUEST_TIMEOUT, Vendor, http_client};

pub use crate::vendors::google::deliver::DEPRECATED_PREFIX;

/// A vendor's client could not be built from the config.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SetupError {
    /// The config key at fault.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Every configured vendor, by the lane it delivers.
pub struct Registry {
    by_lane: HashMap<Lane, Arc<dyn Vendor>>,
}

impl Registry {
    /// The vendors `config` configures.
    pub fn from_config(config: &Config) -> Result<Registry, SetupError> {
        let http = http_client(REQUEST_TIMEOUT);
        let mut by_lane: HashMap<Lane, Arc<dyn Vendor>> = HashMap::new();
        let pd = &config.pagerduty;
        by_lane.insert(
            Lane::Pager,
            Arc::new(PagerDuty::from_config(pd, true, http.clone())),
        );
        by_lane.insert(
            Lane::Tickets,
            Arc::new(Zendesk::from_config(&config.zendesk, http.clone())),
        );
        if let Some(s) = &config.slack {
            let slack = Slack::new(s.api_url.clone(), s.bot_token.clone(), http.clone());
            by_lane.insert(Lane::Chat, Arc::new(slack));
        }
        if let Some(g) = &config.google {
            let key =
                ServiceAccountKey::from_file(&g.service_account_file).map_err(|e| SetupError {
                    key: "google.service_account_file",
                    message: e.to_string(),
                })?;
            if let Some(calendar) = Calendar::from_config(g, key.clone(), http.clone()) {
                by_lane.insert(Lane::Calendar, Arc::new(calendar));
            }
            let docs = Docs {
                google: Google::from_config(g, key, http.clone()),
                share_domain: g.share_domain.clone(),
                customer_role: g.customer_role.clone(),
            };
            by_lane.insert(Lane::Docs, Arc::new(docs));
        }
        if let Some(gl) = &config.gitlab {
            by_lane.insert(
                Lane::Tracker,
                Arc::new(GitLab::from_config(gl, http.clone())),
            );
        }
        if let Some(e) = &config.email {
            let mailer = Mailer::new(&e.smtp_url, &e.from, e.password.clone(), e.username.clone())
                .map_err(|err| SetupError {
                    key: "email.smtp_url",
                    message: err.to_string(),
                })?;
            let fallback = Fallback {
                mailer,
                level2: e.level2.clone(),
            };
            by_lane.insert(Lane::Mail, Arc::new(fallback));
        }
        Ok(Registry { by_lane })
    }
}

#[async_trait]
impl Deliver for Registry {
    async fn deliver(&self, p: &Pending) -> Result<Option<Outcome>, DeliveryError> {
        let lane = p.effect.lane();
        match self.by_lane.get(&lane) {
            Some(vendor) => vendor.deliver(p).await,
            None => Err(DeliveryError::permanent(format!(
                "[{}] is not configured, but an effect for it was queued; add the section",
                lane.as_str()
            ))),
        }
    }
}

/// The registry a reload swaps (`SIGHUP`): each delivery goes through the
/// registry current when it starts; deliveries in flight finish with the
/// one they started with.
#[async_trait]
impl Deliver for Shared<Registry> {
    async fn deliver(&self, p: &Pending) -> Result<Option<Outcome>, DeliveryError> {
        let registry = self.load();
        registry.deliver(p).await
    }
}

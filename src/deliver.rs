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
            let slack = Slack::from_config(s, http.clone());
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
                "{} is not configured, but an effect for it was queued; add it",
                setting_of(lane)
            ))),
        }
    }
}

/// What configures the vendor of `lane`, for the error of an effect no
/// vendor takes.
fn setting_of(lane: Lane) -> &'static str {
    match lane {
        Lane::Pager => "[pagerduty]",
        Lane::Tickets => "[zendesk]",
        Lane::Chat => "[slack]",
        Lane::Docs => "[google]",
        Lane::Mail => "[email]",
        Lane::Calendar => "google.calendar_id (the hand-off calendar)",
        Lane::Tracker => "[gitlab]",
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

// The tests run against the stand-ins (the `demo` feature).
#[cfg(all(test, feature = "demo"))]
mod tests {
    use super::*;
    use crate::engine::{Doc, Effect};
    use crate::fakes::stand_ins::{CALENDAR_USER, Extra, Options, StandIns};
    use crate::vendors::test_pending;

    /// The stand-ins' generated config routes every after-crisis effect to
    /// its vendor: the hand-off to Calendar, the follow-up to GitLab, the
    /// timeline to Docs.
    #[tokio::test]
    async fn the_stand_ins_config_routes_the_after_crisis_lanes() {
        let vendors = StandIns::start(Options {
            google: true,
            ..Options::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = vendors
            .write_config(
                dir.path(),
                "127.0.0.1:0",
                &dir.path().join("pagerd.db"),
                &Extra::default(),
            )
            .unwrap();
        let config = Config::load(&path).unwrap();
        let registry = Registry::from_config(&config).unwrap();

        let created = registry
            .deliver(&test_pending(
                5,
                1,
                Effect::CreateDoc {
                    title: "Incident 5".into(),
                    body: "Summary".into(),
                },
                false,
            ))
            .await
            .unwrap();
        let Some(Outcome::Doc { doc }) = created else {
            panic!("{created:?}")
        };
        let mut timeline = test_pending(
            5,
            2,
            Effect::AppendTimeline {
                text: "14:00 paged".into(),
            },
            false,
        );
        if let Some(c) = timeline.incident.crisis.as_mut() {
            c.doc = Some(Doc {
                id: doc.id.clone(),
                url: doc.url.clone(),
            });
        }
        assert_eq!(registry.deliver(&timeline).await.unwrap(), None);
        let google = vendors.google.as_ref().unwrap();
        assert!(google.docs()[0].text.ends_with("\n14:00 paged"));

        let handoff = test_pending(
            5,
            3,
            Effect::BookHandoff {
                title: "Hand-off".into(),
                description: "d".into(),
                start: 1_893_492_000_000,
                minutes: 30,
                attendees: vec!["ana@acme.example".into()],
            },
            false,
        );
        assert!(matches!(
            registry.deliver(&handoff).await.unwrap(),
            Some(Outcome::Handoff { .. })
        ));
        assert_eq!(google.events()[0].organizer, CALENDAR_USER);

        let follow_up = test_pending(
            5,
            4,
            Effect::OpenFollowUp {
                title: "Follow-up".into(),
                description: "- [ ] docs".into(),
            },
            false,
        );
        assert!(matches!(
            registry.deliver(&follow_up).await.unwrap(),
            Some(Outcome::FollowUp { .. })
        ));
        assert_eq!(vendors.gitlab.issues().len(), 1);

        // Without [gitlab], the follow-up is refused for good, saying why.
        let mut bare = config.clone();
        bare.gitlab = None;
        if let Some(g) = bare.google.as_mut() {
            g.calendar_id = None;
        }
        let registry = Registry::from_config(&bare).unwrap();
        let e = registry.deliver(&follow_up).await.unwrap_err();
        assert!(
            !e.is_retryable() && e.to_string().contains("[gitlab]"),
            "{e}"
        );
        let e = registry.deliver(&handoff).await.unwrap_err();
        assert!(e.to_string().contains("google.calendar_id"), "{e}");
    }
}

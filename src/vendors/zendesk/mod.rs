//! Zendesk: comments on tickets, and the search that backs up the webhook.
//!
//! A comment is posted with `PUT /api/v2/tickets/{id}.json`, and the same
//! request adds a tag carrying the effect's idempotency marker. A retry
//! first reads the ticket's tags: if the marker is there, the comment
//! already landed and is not posted twice.

pub mod webhook;

pub mod comments;
pub mod config;
pub mod deliver;
pub mod poll;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{DeliveryError, ProbeError, json_response, probe_response};
use crate::engine::Ticket;
use crate::secret::Secret;

const SERVICE: &str = "Zendesk";

/// The user an API token authenticates as (`GET /api/v2/users/me.json`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Me {
    /// The user id; `None` for the anonymous user Zendesk describes when a
    /// request carries no credentials it accepts.
    #[serde(default)]
    pub id: Option<u64>,
    /// The user's e-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// `end-user`, `agent` or `admin`.
    #[serde(default)]
    pub role: Option<String>,
    /// The user's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A Zendesk client.
pub struct Zendesk {
    url: String,
    auth: Secret,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct TicketJson {
    id: u64,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// ISO 8601 (HackerOne reports start their clock at it).
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    requester_id: Option<u64>,
    /// Set by integrations (HackerOne's: the report id).
    #[serde(default)]
    external_id: Option<String>,
}

impl Zendesk {
    /// A client for `url` (`https://acme.zendesk.com`) with API-token auth.
    pub fn new(url: String, email: &str, api_token: &Secret, http: reqwest::Client) -> Zendesk {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{email}/token:{}", api_token.expose()));
        Zendesk {
            url,
            auth: Secret::new(format!("Basic {basic}")),
            http,
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v2{path}", self.url))
            .header("Authorization", self.auth.expose())
            .header("Accept", "application/json")
    }

    /// The agent link of a ticket.
    pub fn ticket_url(&self, id: &str) -> String {
        format!("{}/agent/tickets/{id}", self.url)
    }

    /// Posts a comment tagged with `marker`; when `maybe_sent_before`, first
    /// checks whether the tag (hence the comment) is already there.
    pub async fn comment(
        &self,
        ticket_id: &str,
        body: &str,
        public: bool,
        marker: &str,
        maybe_sent_before: bool,
    ) -> Result<(), DeliveryError> {
        let tag = marker.to_lowercase();
        if maybe_sent_before {
            #[derive(Deserialize)]
            struct Show {
                ticket: TicketJson,
            }
            let show: Show = json_response(
                SERVICE,
                self.req(reqwest::Method::GET, &format!("/tickets/{ticket_id}.json"))
                    .send()
                    .await,
            )
            .await?;
            if show.ticket.tags.contains(&tag) {
                return Ok(());
            }
        }
        let payload = json!({ "ticket": { "comment": { "body": body, "public": public }, "additional_tags": [tag] } });
        let req = self
            .req(reqwest::Method::PUT, &format!("/tickets/{ticket_id}.json"))
            .json(&payload);
        let _: Value = json_response(SERVICE, req.send().await).await?;
        Ok(())
    }

    /// Who the credentials authenticate as: `GET /api/v2/users/me.json`
    /// (read-only; `pagerd doctor`). A refused token is
    /// [`ProbeError::Rejected`].
    pub async fn me(&self) -> Result<Me, ProbeError> {
        #[derive(Deserialize)]
        struct Answer {
            user: Me,
        }
        let req = self.req(reqwest::Method::GET, "/users/me.json");
        let (answer, _): (Answer, _) = probe_response(SERVICE, req.send().await).await?;
        Ok(answer.user)
    }

    /// Tickets matching a search query (first page, newest first).
    pub async fn search(&self, query: &str) -> Result<Vec<Ticket>, DeliveryError> {
        let found = self.search_found(query).await?;
        Ok(found.into_iter().map(|f| f.ticket).collect())
    }

    /// The current state of the given tickets.
    pub async fn show_many(&self, ids: &[String]) -> Result<Vec<Ticket>, DeliveryError> {
        #[derive(Deserialize)]
        struct Many {
            tickets: Vec<TicketJson>,
        }
        let req = self
            .req(reqwest::Method::GET, "/tickets/show_many.json")
            .query(&[("ids", ids.join(","))]);
        let r: Many = json_response(SERVICE, req.send().await).await?;
        Ok(r.tickets.into_iter().map(|t| self.to_ticket(t)).collect())
    }

    fn to_ticket(&self, t: TicketJson) -> Ticket {
        let id = t.id.to_string();
        Ticket {
            url: self.ticket_url(&id),
            id,
            title: t.subject.unwrap_or_default(),
            priority: t.priority.unwrap_or_default().to_lowercase(),
            status: t.status.unwrap_or_default().to_lowercase(),
            tags: t.tags.into_iter().map(|s| s.to_lowercase()).collect(),
            requester_name: String::new(),
            requester_email: String::new(),
            organization: String::new(),
        }
    }
}

// The tests run against the stand-ins (the `demo` feature).
#[cfg(all(test, feature = "demo"))]
mod tests {
    use super::*;
    use crate::fakes::Timeline;
    use crate::fakes::zendesk::{AGENT_ID, FakeZendesk, ZendeskOptions};
    use crate::vendors::{REQUEST_TIMEOUT, http_client};

    #[tokio::test]
    async fn me_names_the_token_user_or_says_it_is_rejected() {
        let fake = FakeZendesk::start(ZendeskOptions {
            email: "agent@acme.example".into(),
            api_token: "zd-token".into(),
            webhook_secret: "zd-hook".into(),
            timeline: Timeline::default(),
        })
        .await
        .unwrap();
        let zd = Zendesk::new(
            fake.url(),
            "agent@acme.example",
            &Secret::new("zd-token"),
            http_client(REQUEST_TIMEOUT),
        );
        let me = zd.me().await.unwrap();
        assert_eq!(me.id, Some(AGENT_ID));
        assert_eq!(me.email.as_deref(), Some("agent@acme.example"));
        assert_eq!(me.role.as_deref(), Some("agent"));
        let wrong = Zendesk::new(
            fake.url(),
            "agent@acme.example",
            &Secret::new("nope"),
            http_client(REQUEST_TIMEOUT),
        );
        match wrong.me().await {
            Err(ProbeError::Rejected { reason }) => assert!(reason.contains("401"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            fake.requests.all(),
            ["GET /api/v2/users/me.json", "GET /api/v2/users/me.json"]
        );
    }
}

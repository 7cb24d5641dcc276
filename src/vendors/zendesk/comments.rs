//! What HackerOne reports ask Zendesk (`crate::reports`): a ticket's
//! facts (its requester, when it was created) and its comments, to find
//! the first public reply by an agent. Read-only.

use serde::Deserialize;

use super::{SERVICE, TicketJson, Zendesk};
use crate::engine::Ticket;
use crate::vendors::{DeliveryError, json_response};

/// Comments asked for per page (Zendesk's most).
const PER_PAGE: usize = 100;
/// Most pages read: a ticket holds at most 5 000 comments (50 pages).
const MAX_PAGES: usize = 60;

/// A ticket as the API shows it, with what the engine's [`Ticket`] leaves
/// out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The ticket (no requester name or e-mail: the API gives ids).
    pub ticket: Ticket,
    /// `created_at`, ISO 8601, as Zendesk sent it.
    pub created_at: Option<String>,
    /// The requester's user id.
    pub requester_id: Option<u64>,
    /// `external_id` (HackerOne reports: the HackerOne report id).
    pub external_id: Option<String>,
}

/// One comment of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommentInfo {
    /// The comment's id.
    pub id: u64,
    /// Who wrote it (a user id).
    #[serde(default)]
    pub author_id: Option<u64>,
    /// A public reply (true) or an internal note (false).
    #[serde(default)]
    pub public: bool,
    /// When it was written, ISO 8601.
    #[serde(default)]
    pub created_at: Option<String>,
}

impl Zendesk {
    fn found(&self, t: TicketJson) -> Found {
        let created_at = t.created_at.clone();
        let requester_id = t.requester_id;
        let external_id = t.external_id.clone();
        Found {
            ticket: self.to_ticket(t),
            created_at,
            requester_id,
            external_id,
        }
    }

    /// One ticket: `GET /api/v2/tickets/{id}.json`; `None` when Zendesk
    /// does not know it (404).
    pub async fn show(&self, id: &str) -> Result<Option<Found>, DeliveryError> {
        #[derive(Deserialize)]
        struct Show {
            ticket: TicketJson,
        }
        let resp = self
            .req(reqwest::Method::GET, &format!("/tickets/{id}.json"))
            .send()
            .await;
        if let Ok(r) = &resp
            && r.status() == reqwest::StatusCode::NOT_FOUND
        {
            return Ok(None);
        }
        let show: Show = json_response(SERVICE, resp).await?;
        Ok(Some(self.found(show.ticket)))
    }

    /// Tickets matching a search query (first page, newest first), with
    /// their creation time and requester.
    pub async fn search_found(&self, query: &str) -> Result<Vec<Found>, DeliveryError> {
        #[derive(Deserialize)]
        struct Results {
            results: Vec<serde_json::Value>,
        }
        let req = self.req(reqwest::Method::GET, "/search.json").query(&[
            ("query", query),
            ("sort_by", "created_at"),
            ("sort_order", "desc"),
        ]);
        let r: Results = json_response(SERVICE, req.send().await).await?;
        Ok(r.results
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .map(|t| self.found(t))
            .collect())
    }

    /// Every comment of a ticket, oldest first: `GET
    /// /api/v2/tickets/{id}/comments.json`, page by page (offset paging,
    /// 100 a page, until `next_page` is null). Page URLs are built here,
    /// not followed from the answer, so the credentials only ever go to
    /// `zendesk.url`.
    pub async fn comments(&self, id: &str) -> Result<Vec<CommentInfo>, DeliveryError> {
        #[derive(Deserialize)]
        struct Page {
            comments: Vec<CommentInfo>,
            #[serde(default)]
            next_page: Option<String>,
        }
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let req = self
                .req(
                    reqwest::Method::GET,
                    &format!("/tickets/{id}/comments.json"),
                )
                .query(&[
                    ("page", page.to_string()),
                    ("per_page", PER_PAGE.to_string()),
                    ("sort_order", "asc".to_string()),
                ]);
            let p: Page = json_response(SERVICE, req.send().await).await?;
            let last = p.next_page.is_none() || p.comments.is_empty();
            all.extend(p.comments);
            if last {
                return Ok(all);
            }
        }
        Err(DeliveryError::retry(format!(
            "{SERVICE}: ticket {id} has more than {MAX_PAGES} pages of comments"
        )))
    }
}

// The tests run against the stand-in (the `demo` feature).
#[cfg(all(test, feature = "demo"))]
mod tests {
    use super::*;
    use crate::fakes::Timeline;
    use crate::fakes::zendesk::{FakeZendesk, HUMAN_AGENT_ID, TicketSpec, ZendeskOptions};
    use crate::secret::Secret;
    use crate::vendors::{REQUEST_TIMEOUT, http_client};

    #[tokio::test]
    async fn every_page_of_comments_is_read_and_the_ticket_says_who_asked_when() {
        let fake = FakeZendesk::start(ZendeskOptions {
            email: "agent@acme.example".into(),
            api_token: "zd-token".into(),
            webhook_secret: "zd-hook".into(),
            timeline: Timeline::default(),
        })
        .await
        .unwrap();
        fake.upsert_ticket(TicketSpec {
            id: 7,
            subject: "IDOR in /api/users".into(),
            priority: "normal".into(),
            status: "new".into(),
            tags: vec!["hackerone".into()],
            requester_name: "Researcher".into(),
            requester_email: "r@h1.example".into(),
            organization: String::new(),
        });
        fake.set_created_at(7, "2027-03-26T14:00:00Z");
        for i in 0..249 {
            fake.add_comment(7, HUMAN_AGENT_ID, &format!("note {i}"), false);
        }
        let zd = Zendesk::new(
            fake.url(),
            "agent@acme.example",
            &Secret::new("zd-token"),
            http_client(REQUEST_TIMEOUT),
        );
        let comments = zd.comments("7").await.unwrap();
        assert_eq!(comments.len(), 250, "the description and 249 notes");
        assert_eq!(comments[0].author_id, fake.requester_id(7));
        assert!(comments[0].public && !comments[1].public);
        assert_eq!(
            fake.requests
                .all()
                .iter()
                .filter(|r| *r == "GET /api/v2/tickets/7/comments.json")
                .count(),
            3,
            "100 a page"
        );
        let found = zd.show("7").await.unwrap().unwrap();
        assert_eq!(found.requester_id, fake.requester_id(7));
        assert_eq!(found.created_at.as_deref(), Some("2027-03-26T14:00:00Z"));
        assert_eq!(found.ticket.tags, ["hackerone"]);
        assert_eq!(zd.show("8").await.unwrap(), None);
        let wrong = Zendesk::new(
            fake.url(),
            "agent@acme.example",
            &Secret::new("nope"),
            http_client(REQUEST_TIMEOUT),
        );
        assert!(!wrong.comments("7").await.unwrap_err().is_retryable());
    }
}

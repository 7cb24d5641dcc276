//! What pagerd does when it sees a HackerOne report's ticket (a webhook or
//! a poll): start its clock once, from the ticket's creation, and look for
//! the first public reply by an agent in the ticket's comments.
//!
//! The reply check reads `GET /api/v2/tickets/{id}.json` (the requester)
//! and `GET /api/v2/tickets/{id}/comments.json`; pagerd's own API user
//! (`GET /api/v2/users/me.json`) is cached for as long as `zendesk.url`
//! and `zendesk.email` stay the same. A reply is a public comment, other
//! than the ticket's first (the report itself), whose author is neither
//! the requester nor pagerd. Checks run off the request path, one at a
//! time per ticket; a webhook that arrives during a check makes it run
//! once more, so a reply written meanwhile is not missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::h1::{H1Applied, H1Change, H1Event, H1Report};
use super::{Report, ReportChange, ReportState};
use crate::business_time::parse_timestamp;
use crate::clock::{Clock, Millis};
use crate::config::Config;
use crate::engine::Ticket;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::store::{Store, StoreError};
use crate::vendors::DeliveryError;
use crate::vendors::zendesk::Zendesk;
use crate::vendors::zendesk::comments::CommentInfo;

/// Most reports read at once (listing, counting, the timer's round).
pub const MAX_REPORTS: usize = 10_000;

/// Why a report could not be recorded or checked.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store failed; the sender of the webhook retries.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Zendesk did not answer what pagerd asked.
    #[error("zendesk: {0}")]
    Zendesk(#[from] DeliveryError),
}

/// The HackerOne reports of one daemon: its store, config and clock, and
/// what its loops share.
pub struct Reports {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: Shared<Config>,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    /// Wakes the timer ([`super::timer`]): a report was seen or changed on
    /// this instance.
    pub(crate) wake: Notify,
    /// pagerd's own Zendesk user: `("url|email", id)`.
    me: Mutex<Option<(String, u64)>>,
    /// Tickets whose reply check runs, each with whether it must run once
    /// more when done.
    checking: Mutex<HashMap<String, bool>>,
}

impl std::fmt::Debug for Reports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reports").finish_non_exhaustive()
    }
}

/// The first public reply by an agent among `comments` (oldest first): its
/// time, or `now` when Zendesk gave none. The first comment is the report
/// itself (the ticket's description), never a reply, whoever wrote it.
pub fn first_agent_reply(
    comments: &[CommentInfo],
    requester: Option<u64>,
    me: u64,
    now: Millis,
) -> Option<Millis> {
    comments
        .iter()
        .skip(1)
        .filter(|c| c.public)
        .filter(|c| c.author_id.is_some_and(|a| a != me && Some(a) != requester))
        .map(|c| {
            c.created_at
                .as_deref()
                .and_then(|t| parse_timestamp(t).ok())
                .map_or(now, |t| t.as_millisecond())
        })
        .min()
}

/// The newest public reply by an agent among `comments` (oldest first):
/// `(comment id, written at, author)`, by the rule of
/// [`first_agent_reply`].
pub fn latest_agent_reply(
    comments: &[CommentInfo],
    requester: Option<u64>,
    me: u64,
    now: Millis,
) -> Option<(u64, Millis, u64)> {
    comments
        .iter()
        .skip(1)
        .filter(|c| c.public)
        .filter_map(|c| {
            let author = c.author_id.filter(|a| *a != me && Some(*a) != requester)?;
            let at = c
                .created_at
                .as_deref()
                .and_then(|t| parse_timestamp(t).ok())
                .map_or(now, |t| t.as_millisecond());
            Some((c.id, at, author))
        })
        .max_by_key(|(id, _, _)| *id)
}

impl Reports {
    /// The reports of a daemon: `config` is read at each use (a reload's
    /// `[hackerone]` applies to the next report and the next notice).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: Shared<Config>,
        metrics: Arc<Metrics>,
    ) -> Reports {
        Reports {
            store,
            clock,
            config,
            metrics,
            http: crate::vendors::http_client(crate::vendors::REQUEST_TIMEOUT),
            wake: Notify::new(),
            me: Mutex::new(None),
            checking: Mutex::new(HashMap::new()),
        }
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.load()
    }

    /// Where reports are kept.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The time source.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Whether `ticket` is a HackerOne report under the config in force.
    pub fn is_report(&self, ticket: &Ticket) -> bool {
        self.config
            .load()
            .hackerone
            .as_ref()
            .is_some_and(|h| h.is_report(ticket))
    }

    /// A report's ticket was seen (webhook or poll), created at
    /// `created_at` (`None`: ask Zendesk), naming HackerOne report
    /// `h1_report` ([`super::h1::report_id_of`]). Starts its clock unless
    /// it runs already, and records the link to the HackerOne report;
    /// returns the report as stored, `None` when `[hackerone]` is off or
    /// the ticket, not watched yet, is solved or closed already.
    pub async fn seen(
        &self,
        ticket: &Ticket,
        created_at: Option<Millis>,
        h1_report: Option<String>,
    ) -> Result<Option<Report>, ReportError> {
        let config = self.config.load();
        let Some(h1) = &config.hackerone else {
            return Ok(None);
        };
        if let Some(known) = self.store.report(&ticket.id).await? {
            if let Some(id) = h1_report
                && known.h1_report.as_deref() != Some(id.as_str())
            {
                tracing::info!(ticket = %known.ticket, h1_report = %id, "hackerone: the ticket names its HackerOne report");
                let linked = self.change(&ticket.id, ReportChange::Linked(id)).await?;
                return Ok(linked.or(Some(known)));
            }
            return Ok(Some(known));
        }
        if ticket.is_done() {
            // Solved before pagerd saw it (an old ticket updated, the
            // feature just turned on): nobody is waiting for a reply.
            return Ok(None);
        }
        let now = self.clock.now();
        let created_at = match created_at {
            Some(at) => at,
            None => self.created_at(&config, &ticket.id).await?.unwrap_or_else(|| {
                tracing::warn!(
                    ticket = %ticket.id,
                    "hackerone: the ticket's creation time is unknown (no created_at in the webhook body \
                     nor from Zendesk); its clock starts now"
                );
                now
            }),
        };
        let mut report = Report::new(ticket, created_at, h1.deadlines(created_at), now);
        report.h1_report = h1_report;
        let (stored, new) = self.store.watch_report(report).await?;
        if new {
            tracing::info!(
                ticket = %stored.ticket,
                respond_by = %crate::clock::rfc3339(stored.respond_by),
                "hackerone: watching a new report; first public reply due"
            );
            self.wake.notify_one();
            self.recount().await;
        }
        Ok(Some(stored))
    }

    /// When Zendesk says the ticket was created.
    async fn created_at(
        &self,
        config: &Config,
        ticket: &str,
    ) -> Result<Option<Millis>, ReportError> {
        let zd = Zendesk::from_config(&config.zendesk, self.http.clone());
        let found = zd.show(ticket).await?;
        Ok(found
            .and_then(|f| f.created_at)
            .and_then(|t| parse_timestamp(&t).ok())
            .map(|t| t.as_millisecond()))
    }

    /// pagerd's own Zendesk user id (cached per `zendesk.url` and
    /// `zendesk.email`).
    async fn me(&self, config: &Config, zd: &Zendesk) -> Result<u64, ReportError> {
        let key = format!("{}|{}", config.zendesk.url, config.zendesk.email);
        if let Some((k, id)) = &*self.me.lock().unwrap_or_else(|e| e.into_inner())
            && *k == key
        {
            return Ok(*id);
        }
        let me = zd.me().await.map_err(DeliveryError::from)?;
        let id = me.id.ok_or_else(|| {
            DeliveryError::permanent(
                "Zendesk users/me.json names no user: the API token of zendesk.api_token_file is not accepted",
            )
        })?;
        *self.me.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, id));
        Ok(id)
    }

    /// Reads the ticket's comments now and, when an agent replied
    /// publicly, stops the report's clock. Returns the report afterwards
    /// (`None`: not watched, or `[hackerone]` is off).
    pub async fn check_reply(&self, ticket: &str) -> Result<Option<Report>, ReportError> {
        let config = self.config.load();
        if config.hackerone.is_none() {
            return Ok(None);
        }
        let Some(report) = self.store.report(ticket).await? else {
            return Ok(None);
        };
        if !report.is_open() {
            return Ok(Some(report));
        }
        let zd = Zendesk::from_config(&config.zendesk, self.http.clone());
        let me = self.me(&config, &zd).await?;
        let Some(found) = zd.show(ticket).await? else {
            return Ok(Some(report));
        };
        let comments = zd.comments(ticket).await?;
        let now = self.clock.now();
        match first_agent_reply(&comments, found.requester_id, me, now) {
            Some(at) => {
                let after = self.change(ticket, ReportChange::Answered(at)).await?;
                if after.as_ref().is_some_and(|r| r.answered_at == Some(at)) {
                    tracing::info!(
                        ticket,
                        "hackerone: an agent replied publicly; the clock stopped"
                    );
                }
                Ok(after)
            }
            None => Ok(Some(report)),
        }
    }

    /// Runs [`Reports::check_reply`] off the caller's path (a webhook is
    /// answered first). One check per ticket at a time; asked again while
    /// one runs, it runs once more afterwards.
    pub fn check_soon(self: &Arc<Self>, ticket: String) {
        {
            let mut running = self.checking.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(again) = running.get_mut(&ticket) {
                *again = true;
                return;
            }
            running.insert(ticket.clone(), false);
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.check_reply(&ticket).await {
                    tracing::warn!(ticket = %ticket, cause = %e, "hackerone: cannot check the ticket's comments; checked again at the next webhook, poll or notice");
                }
                let mut running = me.checking.lock().unwrap_or_else(|e| e.into_inner());
                match running.get_mut(&ticket) {
                    Some(again) if *again => *again = false,
                    _ => {
                        running.remove(&ticket);
                        return;
                    }
                }
            }
        });
    }

    /// What HackerOne's webhook said about report `id` (delivery
    /// `delivery`), recorded; wakes the timer when it changed something.
    pub async fn h1_event(
        &self,
        id: &str,
        event: H1Event,
        delivery: Option<String>,
    ) -> Result<H1Applied, StoreError> {
        let now = self.clock.now();
        let applied = self
            .store
            .change_h1(id, H1Change::Event(event, now), delivery, now)
            .await?;
        if applied.changed {
            self.wake.notify_one();
        }
        Ok(applied)
    }

    /// Applies `change` to HackerOne report `id` now (the timer's
    /// bookkeeping of its notices).
    pub(crate) async fn change_h1(
        &self,
        id: &str,
        change: H1Change,
    ) -> Result<H1Report, StoreError> {
        let now = self.clock.now();
        Ok(self.store.change_h1(id, change, None, now).await?.report)
    }

    /// The newest public reply by an agent on `ticket` (neither the
    /// requester nor pagerd's API user; not the description): its
    /// comment id, when it was written (`now` when Zendesk gave no time)
    /// and its author. For emergencies: a reply is progress
    /// (`policy.ack_lease`). `None` when there is none, or Zendesk does
    /// not know the ticket.
    pub async fn latest_agent_reply(
        &self,
        ticket: &str,
    ) -> Result<Option<(u64, Millis, u64)>, ReportError> {
        let config = self.config.load();
        let zd = Zendesk::from_config(&config.zendesk, self.http.clone());
        let me = self.me(&config, &zd).await?;
        let Some(found) = zd.show(ticket).await? else {
            return Ok(None);
        };
        let comments = zd.comments(ticket).await?;
        let now = self.clock.now();
        Ok(latest_agent_reply(&comments, found.requester_id, me, now))
    }

    /// Zendesk's word on `ticket` right now (`None`: it does not know it).
    pub(crate) async fn ticket_now(&self, ticket: &str) -> Result<Option<Ticket>, ReportError> {
        let config = self.config.load();
        let zd = Zendesk::from_config(&config.zendesk, self.http.clone());
        Ok(zd.show(ticket).await?.map(|f| f.ticket))
    }

    /// Applies `change` now, wakes the timer and recounts on a change.
    pub(crate) async fn change(
        &self,
        ticket: &str,
        change: ReportChange,
    ) -> Result<Option<Report>, StoreError> {
        let now = self.clock.now();
        let after = self.store.change_report(ticket, change, now).await?;
        // The store stamps a row it changed with `now`.
        if after.as_ref().is_some_and(|r| r.updated_at == now) {
            self.wake.notify_one();
            self.recount().await;
        }
        Ok(after)
    }

    /// Sets the metrics' gauge of reports by state from the store (on a
    /// failure it keeps its values; the next count corrects them).
    pub async fn recount(&self) {
        match self.store.reports(MAX_REPORTS).await {
            Ok(all) => self.count(&all),
            Err(e) => tracing::debug!(cause = %e, "hackerone: cannot count the reports"),
        }
    }

    /// Sets the gauge from `all` the reports.
    pub(crate) fn count(&self, all: &[Report]) {
        let counts = ReportState::ALL.map(|s| (s, all.iter().filter(|r| r.state == s).count()));
        self.metrics.set_reports(&counts);
    }
}

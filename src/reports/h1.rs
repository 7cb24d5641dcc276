//! What HackerOne itself says about a report (its program webhook,
//! `POST /webhooks/hackerone`), kept per HackerOne report id, and the two
//! notices it leads to:
//!
//! - **Closed in HackerOne** while its Zendesk ticket is still open: one
//!   reminder to close the ticket too (Zendesk's status is read right
//!   before posting; a solved or closed ticket gets none).
//! - **Disclosure requested**: the report is released
//!   `disclosure_after` (30 days) after the request; `disclosure_remind_before`
//!   (5 days) before that, one reminder with the pre-publication checklist.
//!   The report becoming public stops the countdown.
//!
//! Events are news, not orders: the first of each kind wins (a replayed or
//! repeated delivery changes nothing), and a row exists whether or not
//! pagerd has seen the report's Zendesk ticket yet. The link between the
//! two is the ticket's ([`Report::h1_report`](super::Report::h1_report),
//! by [`report_id_of`]), so it holds whichever arrives first.
//!
//! Plain data and pure functions, like [`super::Report`]: the store applies
//! each [`H1Change`] atomically with [`H1Report::apply`]; the leader's
//! timer ([`super::timer`]) asks [`H1Report::step`] what is due.

use serde::{Deserialize, Serialize};

use super::config::HackerOneConfig;
use crate::clock::{Millis, millis};
pub use crate::vendors::hackerone::webhook::Closure;

/// A notice pagerd posts about a HackerOne report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum H1Notice {
    /// Closed in HackerOne: close the Zendesk ticket too.
    Closed,
    /// The disclosure countdown's reminder, with the checklist.
    Disclosure,
}

impl H1Notice {
    /// The name stored while the post may be in flight.
    pub fn as_str(self) -> &'static str {
        match self {
            H1Notice::Closed => "closed",
            H1Notice::Disclosure => "disclosure",
        }
    }

    /// The notice named `s`.
    pub fn parse(s: &str) -> Option<H1Notice> {
        [H1Notice::Closed, H1Notice::Disclosure]
            .into_iter()
            .find(|n| n.as_str() == s)
    }

    /// The Slack idempotency marker of this notice about HackerOne report
    /// `id` (`pagerd-h1-548-closed`).
    pub fn marker(self, id: &str) -> String {
        format!("pagerd-h1-{id}-{}", self.as_str())
    }
}

/// How a closure reminder was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseNotice {
    /// The reminder is in Slack.
    Posted,
    /// None was needed: the ticket was solved or closed (or deleted) when
    /// pagerd looked.
    TicketDone,
}

impl CloseNotice {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseNotice::Posted => "posted",
            CloseNotice::TicketDone => "ticket_done",
        }
    }

    /// The value named `s`.
    pub fn parse(s: &str) -> Option<CloseNotice> {
        [CloseNotice::Posted, CloseNotice::TicketDone]
            .into_iter()
            .find(|n| n.as_str() == s)
    }
}

/// The name stored for a closure.
pub fn closure_str(c: Closure) -> &'static str {
    match c {
        Closure::Resolved => "resolved",
        Closure::Duplicate => "duplicate",
        Closure::Informative => "informative",
        Closure::Spam => "spam",
        Closure::NotApplicable => "not_applicable",
    }
}

/// A closure in words, for the reminder.
pub fn closure_words(c: Closure) -> &'static str {
    match c {
        Closure::Resolved => "resolved",
        Closure::Duplicate => "closed as a duplicate",
        Closure::Informative => "closed as informative",
        Closure::Spam => "closed as spam",
        Closure::NotApplicable => "closed as not applicable",
    }
}

/// The closure named `s`.
pub fn parse_closure(s: &str) -> Option<Closure> {
    [
        Closure::Resolved,
        Closure::Duplicate,
        Closure::Informative,
        Closure::Spam,
        Closure::NotApplicable,
    ]
    .into_iter()
    .find(|c| closure_str(*c) == s)
}

/// One HackerOne report as its webhook told pagerd about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H1Report {
    /// HackerOne's report id (digits).
    pub id: String,
    /// When HackerOne said it was closed (the first such event).
    pub closed_at: Option<Millis>,
    /// How.
    pub closure: Option<Closure>,
    /// When a disclosure was requested (the first request wins).
    pub disclosure_requested_at: Option<Millis>,
    /// When HackerOne said it became public.
    pub disclosed_at: Option<Millis>,
    /// A notice whose post was started and not yet recorded as done.
    pub posting: Option<H1Notice>,
    /// How the closure reminder was settled, once it was.
    pub close_notice: Option<CloseNotice>,
    /// When the disclosure reminder was posted.
    pub disclosure_reminded_at: Option<Millis>,
    /// When pagerd first heard of the report.
    pub seen_at: Millis,
    /// When the row last changed.
    pub updated_at: Millis,
}

/// What an event says, as a change of the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H1Event {
    /// Closed, this way.
    Closed(Closure),
    /// Disclosure requested (`report_agreed_on_going_public`).
    DisclosureRequested,
    /// Public now (`report_became_public`, `report_manually_disclosed`).
    Disclosed,
}

/// A step in a HackerOne report's life, applied by the store atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H1Change {
    /// HackerOne's webhook said this, at this time (pagerd's clock).
    Event(H1Event, Millis),
    /// pagerd is about to post this notice.
    Posting(H1Notice),
    /// The notice is in Slack.
    Posted(H1Notice, Millis),
    /// The closure reminder is not needed: the ticket is done.
    TicketDone,
}

impl H1Report {
    /// A report first heard of at `now`.
    pub fn new(id: &str, now: Millis) -> H1Report {
        H1Report {
            id: id.to_string(),
            closed_at: None,
            closure: None,
            disclosure_requested_at: None,
            disclosed_at: None,
            posting: None,
            close_notice: None,
            disclosure_reminded_at: None,
            seen_at: now,
            updated_at: now,
        }
    }

    /// The row after `change` at `now`; `None` when it changes nothing
    /// (each event's first occurrence wins; a settled notice stays
    /// settled).
    pub fn apply(&self, change: &H1Change, now: Millis) -> Option<H1Report> {
        let mut next = self.clone();
        match *change {
            H1Change::Event(H1Event::Closed(how), at) => {
                if next.closed_at.is_none() {
                    next.closed_at = Some(at);
                    next.closure = Some(how);
                }
            }
            H1Change::Event(H1Event::DisclosureRequested, at) => {
                next.disclosure_requested_at.get_or_insert(at);
            }
            H1Change::Event(H1Event::Disclosed, at) => {
                next.disclosed_at.get_or_insert(at);
            }
            H1Change::Posting(notice) => {
                let settled = match notice {
                    H1Notice::Closed => self.close_notice.is_some(),
                    H1Notice::Disclosure => self.disclosure_reminded_at.is_some(),
                };
                if !settled {
                    next.posting = Some(notice);
                }
            }
            H1Change::Posted(notice, at) => {
                if next.posting == Some(notice) {
                    next.posting = None;
                }
                match notice {
                    H1Notice::Closed => {
                        next.close_notice.get_or_insert(CloseNotice::Posted);
                    }
                    H1Notice::Disclosure => {
                        next.disclosure_reminded_at.get_or_insert(at);
                    }
                }
            }
            H1Change::TicketDone => {
                if next.posting == Some(H1Notice::Closed) {
                    next.posting = None;
                }
                next.close_notice.get_or_insert(CloseNotice::TicketDone);
            }
        }
        if next == *self {
            return None;
        }
        next.updated_at = now;
        Some(next)
    }

    /// When the report is released: `disclosure_after` after the request
    /// (`None` without a request).
    pub fn release_at(&self, cfg: &HackerOneConfig) -> Option<Millis> {
        self.disclosure_requested_at
            .map(|at| at.saturating_add(millis(cfg.disclosure_after)))
    }

    /// When the disclosure reminder is due: `disclosure_remind_before` the
    /// release.
    pub fn disclosure_remind_at(&self, cfg: &HackerOneConfig) -> Option<Millis> {
        self.release_at(cfg)
            .map(|at| at.saturating_sub(millis(cfg.disclosure_remind_before)))
    }

    /// Whether the closure reminder is still to be settled: closed in
    /// HackerOne, not yet posted nor found unnecessary.
    fn close_pending(&self) -> bool {
        self.closed_at.is_some() && self.close_notice.is_none()
    }

    /// Whether the disclosure reminder is still to be posted: requested,
    /// not public yet, not posted.
    fn disclosure_pending(&self) -> bool {
        self.disclosure_requested_at.is_some()
            && self.disclosed_at.is_none()
            && self.disclosure_reminded_at.is_none()
    }

    /// What is due at `now`. `linked` says whether pagerd knows the
    /// report's Zendesk ticket: the closure reminder names the ticket, so
    /// it waits for the link; the disclosure reminder does not need it.
    pub fn step(&self, now: Millis, linked: bool, cfg: &HackerOneConfig) -> Option<H1Notice> {
        if linked && self.close_pending() {
            return Some(H1Notice::Closed);
        }
        if self.disclosure_pending() && self.disclosure_remind_at(cfg).is_some_and(|at| now >= at) {
            return Some(H1Notice::Disclosure);
        }
        None
    }

    /// When the timer must look at this report next (`None`: nothing left,
    /// or waiting for the ticket's link, which wakes the timer).
    pub fn next_due(&self, linked: bool, cfg: &HackerOneConfig) -> Option<Millis> {
        let close = (linked && self.close_pending())
            .then_some(self.closed_at)
            .flatten();
        let disclosure = if self.disclosure_pending() {
            self.disclosure_remind_at(cfg)
        } else {
            None
        };
        match (close, disclosure) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The HackerOne report a Zendesk ticket is about, by one rule: the
/// ticket's `external_id` when it is a report id (digits, a leading `#`
/// allowed: the HackerOne integration sets it), else the first `Report
/// #<digits>` (any case, spaces allowed before `#`) in the subject.
/// `None` when neither says.
pub fn report_id_of(external_id: Option<&str>, subject: &str) -> Option<String> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(ext) = external_id {
        let ext = ext.trim();
        let ext = ext.strip_prefix('#').unwrap_or(ext);
        if digits(ext) {
            return Some(ext.to_string());
        }
    }
    let lower = subject.to_lowercase();
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("report") {
        let after = rest[at + "report".len()..].trim_start();
        if let Some(num) = after.strip_prefix('#') {
            let end = num.find(|c: char| !c.is_ascii_digit()).unwrap_or(num.len());
            if digits(&num[..end]) {
                return Some(num[..end].to_string());
            }
        }
        rest = &rest[at + "report".len()..];
    }
    None
}

/// A HackerOne report id as the webhook gave it: digits only (at most
/// 20), so it is safe in a link, a path and a marker.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// The report's page on HackerOne.
pub fn report_url(id: &str) -> String {
    format!("https://hackerone.com/reports/{id}")
}

/// What the store did with an [`H1Change`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H1Applied {
    /// The row afterwards (as it was, when nothing changed).
    pub report: H1Report,
    /// Whether the row changed (or was created).
    pub changed: bool,
    /// Whether the delivery id was recorded before: nothing was applied.
    pub replayed: bool,
}

#[cfg(test)]
mod tests;

//! HackerOne reports: security reports that reach Zendesk as tickets
//! tagged `hackerone` (`[hackerone] tags`). A report is not an emergency:
//! it pages nobody. It has a clock instead: its first public reply by an
//! agent is due `respond_within` of business time after the ticket was
//! created ([`config::HackerOneConfig::deadlines`], counted by
//! [`crate::business_time`]). `remind_before` that deadline pagerd posts a
//! reminder in `[hackerone] channel`; at the deadline without a reply, an
//! overdue notice in the reminder's thread (and, with `page_on_breach`, a
//! page). The clock stops at the first public comment whose author is
//! neither the requester nor pagerd's own API user.
//!
//! This module owns the report's life as plain data ([`Report`], and the
//! [`ReportChange`]s that move it on, pure); [`config`] the `[hackerone]`
//! section; [`watch`] what pagerd does when it sees a report's ticket (start
//! the clock, read the comments); [`timer`] the leader's loop that posts the
//! notices on time; [`text`] the words of the notices and of the CLI;
//! [`h1`] what HackerOne's own webhook says (closed, disclosure requested,
//! public) and the notices that follow. Rows
//! live in the store (`reports` table, both stores), which applies each
//! change atomically with [`Report::apply`].
//!
//! What this module does not own: the emergency path (`engine`, `intake`),
//! which a report reaches only through `page_on_breach`.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

pub mod config;
pub mod h1;
mod h1_notices;
pub mod text;
pub mod timer;
pub mod watch;

#[cfg(test)]
pub(crate) mod tests;

pub use watch::Reports;

/// Where a report stands. The state moves forward only: `waiting` →
/// `reminded` → `overdue`, and any of them → `answered`, which is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportState {
    /// The clock runs; no reminder yet.
    Waiting,
    /// The reminder is posted in the channel.
    Reminded,
    /// The deadline passed without a reply; the overdue notice is posted.
    Overdue,
    /// An agent replied publicly: the clock stopped.
    Answered,
}

impl ReportState {
    /// Every state, in order (the metrics' labels).
    pub const ALL: [ReportState; 4] = [
        ReportState::Waiting,
        ReportState::Reminded,
        ReportState::Overdue,
        ReportState::Answered,
    ];

    /// The name stored and shown (`waiting`, `reminded`, `overdue`, `answered`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReportState::Waiting => "waiting",
            ReportState::Reminded => "reminded",
            ReportState::Overdue => "overdue",
            ReportState::Answered => "answered",
        }
    }

    /// The state named `s`, as [`ReportState::as_str`] spells it.
    pub fn parse(s: &str) -> Option<ReportState> {
        ReportState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A Slack message pagerd posts about a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// `remind_before` the deadline, in the channel.
    Reminder,
    /// At the deadline, in the reminder's thread.
    Overdue,
}

impl Notice {
    /// The name stored while the post may be in flight.
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::Reminder => "reminder",
            Notice::Overdue => "overdue",
        }
    }

    /// The notice named `s`.
    pub fn parse(s: &str) -> Option<Notice> {
        [Notice::Reminder, Notice::Overdue]
            .into_iter()
            .find(|n| n.as_str() == s)
    }

    /// The idempotency marker of this notice about `ticket`
    /// (`metadata.event_payload.pagerd_key` in Slack): a post that may have
    /// reached Slack before a crash is looked for by it, not posted again.
    pub fn marker(self, ticket: &str) -> String {
        format!("pagerd-report-{ticket}-{}", self.as_str())
    }
}

/// The reminder's place in Slack: the overdue notice replies in its thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    /// The channel ID Slack answered (`C…`).
    pub channel: String,
    /// The reminder's `ts`.
    pub ts: String,
}

/// One watched HackerOne report, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The Zendesk ticket number.
    pub ticket: String,
    /// The ticket's subject (the researcher's text: rendered, never
    /// interpreted).
    pub title: String,
    /// The agent link of the ticket, built from `zendesk.url`.
    pub url: String,
    /// When the ticket was created: the clock's start.
    pub created_at: Millis,
    /// When the first public reply by an agent is due.
    pub respond_by: Millis,
    /// When the reminder is due (`respond_by - remind_before`).
    pub remind_at: Millis,
    /// Where it stands.
    pub state: ReportState,
    /// A notice whose post was started and not yet recorded as done: after
    /// a crash, the next attempt looks for it in Slack before posting.
    pub posting: Option<Notice>,
    /// Where the reminder was posted.
    pub reminder: Option<Thread>,
    /// When the first public reply by an agent was written.
    pub answered_at: Option<Millis>,
    /// When pagerd submitted the report as an emergency (`page_on_breach`).
    pub paged_at: Option<Millis>,
    /// When pagerd first saw the report.
    pub seen_at: Millis,
    /// When the row last changed.
    pub updated_at: Millis,
    /// The HackerOne report id of the ticket ([`h1::report_id_of`]): the
    /// link to what HackerOne's webhook says ([`h1::H1Report`]).
    pub h1_report: Option<String>,
}

/// A step in a report's life, applied by the store atomically
/// ([`Report::apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportChange {
    /// pagerd is about to post `notice` (recorded before the post).
    Posting(Notice),
    /// The reminder is in Slack, there.
    Reminded(Thread),
    /// The overdue notice is in the reminder's thread.
    Overdue,
    /// The report was submitted as an emergency (`page_on_breach`).
    Paged,
    /// The first public reply by an agent, written at this time.
    Answered(Millis),
    /// The ticket names this HackerOne report (the latest word wins: an
    /// agent may correct the ticket's `external_id`).
    Linked(String),
}

impl Report {
    /// A report first seen at `now`, due at `respond_by`, reminded at
    /// `remind_at`.
    pub fn new(
        ticket: &crate::engine::Ticket,
        created_at: Millis,
        (respond_by, remind_at): (Millis, Millis),
        now: Millis,
    ) -> Report {
        Report {
            ticket: ticket.id.clone(),
            title: ticket.title.clone(),
            url: ticket.url.clone(),
            created_at,
            respond_by,
            remind_at,
            state: ReportState::Waiting,
            posting: None,
            reminder: None,
            answered_at: None,
            paged_at: None,
            seen_at: now,
            updated_at: now,
            h1_report: None,
        }
    }

    /// Whether the clock still runs.
    pub fn is_open(&self) -> bool {
        self.state != ReportState::Answered
    }

    /// The report after `change` at `now`; `None` when it changes nothing
    /// (an answered report stays answered, a state never moves back, a
    /// notice already recorded is not recorded again).
    pub fn apply(&self, change: &ReportChange, now: Millis) -> Option<Report> {
        let mut next = self.clone();
        match change {
            ReportChange::Answered(at) => {
                if self.state == ReportState::Answered {
                    return None;
                }
                next.state = ReportState::Answered;
                next.answered_at = Some(*at);
                next.posting = None;
            }
            ReportChange::Posting(notice) => {
                if self.state == ReportState::Answered {
                    return None;
                }
                next.posting = Some(*notice);
            }
            ReportChange::Reminded(thread) => {
                // Kept even when answered meanwhile: the message exists, and
                // its thread is where a late notice would go.
                next.reminder = Some(thread.clone());
                if next.posting == Some(Notice::Reminder) {
                    next.posting = None;
                }
                if self.state == ReportState::Waiting {
                    next.state = ReportState::Reminded;
                }
            }
            ReportChange::Overdue => {
                if next.posting == Some(Notice::Overdue) {
                    next.posting = None;
                }
                if matches!(self.state, ReportState::Waiting | ReportState::Reminded) {
                    next.state = ReportState::Overdue;
                }
            }
            ReportChange::Paged => {
                next.paged_at.get_or_insert(now);
            }
            ReportChange::Linked(id) => {
                next.h1_report = Some(id.clone());
            }
        }
        if next == *self {
            return None;
        }
        next.updated_at = now;
        Some(next)
    }

    /// When the timer must look at this report next; `None` once nothing
    /// is left to do (answered, or the overdue notice posted and, with
    /// `page_on_breach`, the page submitted).
    pub fn next_due(&self, page_on_breach: bool) -> Option<Millis> {
        let page = (page_on_breach && self.paged_at.is_none()).then_some(self.respond_by);
        let notice = match (self.state, self.posting) {
            (ReportState::Answered, _) => return None,
            (_, Some(Notice::Reminder)) | (ReportState::Waiting, None) => Some(self.remind_at),
            (_, Some(Notice::Overdue)) | (ReportState::Reminded, None) => Some(self.respond_by),
            (ReportState::Overdue, None) => None,
        };
        match (notice, page) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What the timer does about this report at `now`, most urgent first:
    /// the page (a breach with `page_on_breach`), the reminder (also the
    /// parent of the overdue notice, so it comes first even when late),
    /// then the overdue notice.
    pub fn step(&self, now: Millis, page_on_breach: bool) -> Option<Step> {
        if !self.is_open() {
            return None;
        }
        if page_on_breach && self.paged_at.is_none() && now >= self.respond_by {
            return Some(Step::Page);
        }
        let reminded = self.reminder.is_some() && self.posting != Some(Notice::Reminder);
        if !reminded && now >= self.remind_at {
            return Some(Step::Post(Notice::Reminder));
        }
        let overdue_done = self.state == ReportState::Overdue && self.posting.is_none();
        if reminded && !overdue_done && now >= self.respond_by {
            return Some(Step::Post(Notice::Overdue));
        }
        None
    }
}

/// One thing the timer does about a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Submit the report as an emergency (`page_on_breach`).
    Page,
    /// Post this notice.
    Post(Notice),
}

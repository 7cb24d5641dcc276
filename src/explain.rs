//! Why an incident is where it is and what fires next, in words: what
//! `pagerd incidents explain` prints, and the journal of `pagerd incidents
//! show`.
//!
//! Pure: a [`Story`] is parsed from the admin API's answer for one incident
//! (`GET /api/v1/incidents/{id}`: the incident, its journal and its outbox
//! rows), and read with a [`Local`] (the operator's time zone and "now").
//! No I/O and no clock, so tests drive it with made-up incidents.
//!
//! - [`Story::next`]: what fires next, when and why, from the incident's
//!   state and armed deadlines (the engine's rules in `engine/rules.rs` are
//!   the authority; this only reads what they left armed).
//! - [`Story::timeline`]: the journal in words, each event with who acted
//!   through which channel and what it queued (a journal row's `effects`
//!   are the next outbox rows, in order, written in the same transaction).
//! - [`Story::deliveries`]: every outbox row with its attempts, last error
//!   and next attempt.
//!
//! The text renderers pass every line through [`render::terminal`]: ticket
//! titles, names and errors are customer or vendor text.

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use crate::clock::{Clock as _, Millis, SystemClock, rfc3339};
use crate::engine::{EffectKind, Event, Incident, Outcome, Source, Status, Who};
use crate::render::terminal;

/// Why an answer cannot be explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// The answer holds no incident this pagerd can read (a different
    /// version of the daemon, or not pagerd).
    #[error("the daemon's answer holds no incident this pagerd can read: {0}")]
    NotAnIncident(String),
}

/// Time as the operator reads it: their time zone and the current time.
#[derive(Debug, Clone)]
pub struct Local {
    tz: TimeZone,
    now: Millis,
}

impl Local {
    /// `now` in `tz`.
    pub fn new(tz: TimeZone, now: Millis) -> Local {
        Local { tz, now }
    }

    /// The system's time zone (`TZ`, `/etc/localtime`) and clock.
    pub fn system() -> Local {
        Local::new(TimeZone::system(), SystemClock.now())
    }

    /// The current time.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// The time zone's name (`Europe/Berlin`), or its current offset.
    pub fn zone(&self) -> String {
        match self.tz.iana_name() {
            Some(name) => name.to_string(),
            None => match Timestamp::from_millisecond(self.now) {
                Ok(t) => format!("UTC{}", self.tz.to_offset(t)),
                Err(_) => "local".into(),
            },
        }
    }

    /// `14:05:00`, with the date when it is not today: `2027-01-04 14:05:00`.
    pub fn time(&self, at: Millis) -> String {
        let (Ok(t), Ok(today)) = (
            Timestamp::from_millisecond(at),
            Timestamp::from_millisecond(self.now),
        ) else {
            return rfc3339(at);
        };
        let dt = self.tz.to_datetime(t);
        let clock = format!("{:02}:{:02}:{:02}", dt.hour(), dt.minute(), dt.second());
        if dt.date() == self.tz.to_datetime(today).date() {
            clock
        } else {
            format!("{} {clock}", dt.date())
        }
    }

    /// `14:05:00 (in 3m12s)`, `14:05:00 (2m ago)`, `14:05:00 (now)`.
    pub fn when(&self, at: Millis) -> String {
        let d = at - self.now;
        let rel = if d.abs() < 1_000 {
            "now".to_string()
        } else if d > 0 {
            format!("in {}", span(d))
        } else {
            format!("{} ago", span(-d))
        };
        format!("{} ({rel})", self.time(at))
    }
}

/// A duration for humans, to the second, two units at most: `3m12s`,
/// `58m`, `1h5m`, `2d3h`, `0s`.
pub fn span(ms: Millis) -> String {
    let s = ms.max(0) / 1_000;
    let (d, h, m, s) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    let two = |a: i64, ua: &str, b: i64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua}{b}{ub}")
        }
    };
    if d > 0 {
        two(d, "d", h, "h")
    } else if h > 0 {
        two(h, "h", m, "m")
    } else if m > 0 {
        two(m, "m", s, "s")
    } else {
        format!("{s}s")
    }
}

/// A timestamp as RFC 3339 in UTC, to the millisecond when it has any.
pub fn rfc3339_exact(at: Millis) -> String {
    match Timestamp::from_millisecond(at) {
        Ok(t) => t.to_string(),
        Err(_) => rfc3339(at),
    }
}

/// Something that will happen (or, without `at`, what stands in the way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    /// What happens.
    pub what: String,
    /// When: an armed deadline or a retry; `None` for a state that needs
    /// something else first (an operator, PagerDuty).
    pub at: Option<Millis>,
    /// Why, in words.
    pub why: String,
}

/// One line of the story: an event of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When it was applied.
    pub at: Millis,
    /// What happened.
    pub what: String,
    /// Who acted ("Ana Engineer <ana@acme.example>"), when a person did.
    pub who: Option<String>,
    /// Through which channel: `pagerduty`, `zendesk`, `slack`, `cli`,
    /// `timer`, or a delivery lane (`google`, `email`).
    pub via: Option<String>,
    /// What it queued for the outside world, in words.
    pub queued: Vec<String>,
}

/// An outbox row: one effect and its delivery attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Row id.
    pub id: i64,
    /// The effect's kind (`pagerduty_trigger`, …).
    pub kind: String,
    /// The effect in words ("page to PagerDuty (level 1)").
    pub what: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: Millis,
    /// When it was delivered or given up.
    pub done_at: Option<Millis>,
    /// When it is tried (again), while pending.
    pub next_attempt_at: Option<Millis>,
}

impl Delivery {
    /// An outbox row of the API, leniently: what is missing reads as unknown.
    fn from_api(v: &Value) -> Delivery {
        let kind = v["effect"]["type"].as_str().unwrap_or("?").to_string();
        Delivery {
            id: v["id"].as_i64().unwrap_or(0),
            what: effect_words(&v["effect"]),
            kind,
            state: v["state"].as_str().unwrap_or("?").to_string(),
            attempts: v["attempts"]
                .as_u64()
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0),
            last_error: v["last_error"].as_str().map(str::to_string),
            created_at: v["created_at"].as_i64().unwrap_or(0),
            done_at: v["done_at"].as_i64(),
            next_attempt_at: v["next_attempt_at"].as_i64(),
        }
    }

    fn pending(&self) -> bool {
        self.state == "pending"
    }
}

/// One journal row: the event (or its raw JSON when this pagerd cannot read
/// it) and how many outbox rows it queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    /// When it was applied.
    pub at: Millis,
    /// The event, or its JSON.
    pub event: Result<Event, String>,
    /// How many effects it queued.
    pub effects: usize,
}

/// An incident with its journal and deliveries: what `explain` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Story {
    /// The incident as it is now.
    pub incident: Incident,
    /// Its journal, oldest first.
    pub journal: Vec<JournalRow>,
    /// Its outbox rows, oldest first.
    pub deliveries: Vec<Delivery>,
}

impl Story {
    /// The story in the admin API's answer for one incident
    /// (`{"incident", "journal", "outbox"}`).
    pub fn from_api(body: &Value) -> Result<Story, ExplainError> {
        let incident = serde_json::from_value::<Incident>(body["incident"].clone())
            .map_err(|e| ExplainError::NotAnIncident(e.to_string()))?;
        let journal = body["journal"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| JournalRow {
                at: row["at"].as_i64().unwrap_or(0),
                event: serde_json::from_value(row["event"].clone())
                    .map_err(|_| row["event"].to_string()),
                effects: row["effects"]
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0),
            })
            .collect();
        let deliveries = body["outbox"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Delivery::from_api)
            .collect();
        Ok(Story {
            incident,
            journal,
            deliveries,
        })
    }

    /// What fires next, when and why: first what stands in the way (no
    /// time), then the armed deadlines and retries, earliest first. Never
    /// empty: "nothing fires" says why.
    pub fn next(&self, local: &Local) -> Vec<Next> {
        let i = &self.incident;
        let d = &i.deadlines;
        let mut blocked = Vec::new();
        let mut timed = Vec::new();
        if i.is_undeliverable() {
            let fallback = if i.fallback_sent {
                "; the e-mail fallback to level 2 was queued"
            } else {
                ""
            };
            blocked.push(Next {
                what: if d.next().is_some() {
                    "no page fires".into()
                } else {
                    "nothing fires".into()
                },
                at: None,
                why: format!(
                    "PagerDuty refused the page ({}); fix the cause and run \
                     `pagerd incidents repage {} --as EMAIL`{fallback}",
                    i.undeliverable.as_deref().unwrap_or("?"),
                    i.id
                ),
            });
        } else if i.status == Status::Triggered && i.paged_at.is_none() {
            let mut why = "PagerDuty has not accepted the page yet".to_string();
            if let Some(row) = self.pending_page(EffectKind::Page) {
                why.push_str(&self.attempt_words(row, local));
            }
            blocked.push(Next {
                what: "the ack clock starts when PagerDuty accepts the page".into(),
                at: None,
                why,
            });
        }
        if let Some(at) = d.ack
            && i.status == Status::Triggered
        {
            let why = match i.paged_at {
                Some(paged) => format!(
                    "nobody has acknowledged the page PagerDuty accepted at {} (ack timeout {})",
                    local.time(paged),
                    span(at - paged)
                ),
                None => "nobody has acknowledged the page".into(),
            };
            timed.push(Next {
                what: "escalates to level 2 unless acknowledged".into(),
                at: Some(at),
                why,
            });
        }
        if let Some(at) = d.fallback
            && i.page_pending
            && !i.fallback_sent
            && i.is_open()
        {
            let (page, kind) = if i.paged_at.is_some() && i.level >= 2 {
                ("the escalation", EffectKind::PageEscalate)
            } else {
                ("the page", EffectKind::Page)
            };
            let mut why = format!("the e-mail fallback: PagerDuty has not accepted {page} yet");
            if let Some(row) = self.pending_page(kind) {
                why.push_str(&self.attempt_words(row, local));
            }
            timed.push(Next {
                what: format!("e-mail to level 2 if PagerDuty still has not accepted {page}"),
                at: Some(at),
                why,
            });
        }
        if let Some(at) = d.crisis
            && i.is_open()
            && i.crisis.is_none()
        {
            timed.push(Next {
                what: "crisis declared (crisis doc, Slack announcements) unless resolved".into(),
                at: Some(at),
                why: format!(
                    "an emergency still open {} after it came in is a crisis (policy.crisis_after)",
                    span(at - i.opened_at)
                ),
            });
        }
        if let Some(at) = d.lease
            && i.status == Status::Acknowledged
        {
            let who = i.acked.as_ref().map_or("someone", |(by, _)| by.as_str());
            timed.push(Next {
                what: format!("re-pages level {} unless there is progress", i.level),
                at: Some(at),
                why: format!(
                    "acknowledged by {who}; an acknowledgement without progress (a note, an action) \
                     lasts policy.ack_lease"
                ),
            });
        }
        if let Some(at) = d.deprecate {
            let why = match &i.resolved {
                Some((_, resolved)) => format!(
                    "resolved at {}; the after-crisis follow-up lasts {} (policy.doc_deprecate_after)",
                    local.time(*resolved),
                    span(at - resolved)
                ),
                None => "the after-crisis follow-up ends".into(),
            };
            timed.push(Next {
                what: "the crisis doc is marked deprecated".into(),
                at: Some(at),
                why,
            });
        }
        for row in self.deliveries.iter().filter(|r| r.pending()) {
            let (Some(at), true) = (row.next_attempt_at, row.attempts > 0) else {
                continue;
            };
            timed.push(Next {
                what: format!("{} is tried again (attempt {})", row.what, row.attempts + 1),
                at: Some(at),
                why: format!(
                    "{} failed attempt{} so far; last error: {}",
                    row.attempts,
                    if row.attempts == 1 { "" } else { "s" },
                    row.last_error.as_deref().unwrap_or("unknown")
                ),
            });
        }
        timed.sort_by_key(|n| n.at);
        blocked.extend(timed);
        if blocked.is_empty() {
            blocked.push(Next {
                what: "nothing fires".into(),
                at: None,
                why: self.why_quiet(local),
            });
        }
        blocked
    }

    /// Why nothing is armed.
    fn why_quiet(&self, local: &Local) -> String {
        let i = &self.incident;
        match (&i.status, &i.resolved, &i.acked) {
            (Status::Resolved, Some((by, at)), _) => {
                let doc = match &i.crisis {
                    Some(c) if c.deprecated => "; its crisis doc is marked deprecated",
                    _ => "",
                };
                format!("resolved by {by} at {}{doc}", local.time(*at))
            }
            (Status::Resolved, None, _) => "the incident is resolved".into(),
            (Status::Acknowledged, _, Some((by, _))) => format!(
                "acknowledged by {by}; no deadline is armed: resolve it when it is over \
                 (`pagerd incidents resolve {} --as EMAIL`)",
                i.id
            ),
            _ => "no deadline is armed".into(),
        }
    }

    /// The pending outbox row of a page or an escalation, if any.
    fn pending_page(&self, kind: EffectKind) -> Option<&Delivery> {
        let name = serde_json::to_value(kind).ok()?;
        self.deliveries
            .iter()
            .rev()
            .find(|r| r.pending() && name.as_str() == Some(r.kind.as_str()))
    }

    /// "; 2 failed attempts, last error: …; next attempt 14:06:00 (in 20s)".
    fn attempt_words(&self, row: &Delivery, local: &Local) -> String {
        let mut out = String::new();
        if row.attempts > 0 {
            let _ = write!(
                out,
                "; {} failed attempt{}, last error: {}",
                row.attempts,
                if row.attempts == 1 { "" } else { "s" },
                row.last_error.as_deref().unwrap_or("unknown")
            );
        }
        if let Some(at) = row.next_attempt_at {
            let _ = write!(out, "; next attempt {}", local.when(at));
        }
        out
    }

    /// The journal in words, oldest first.
    pub fn timeline(&self) -> Vec<Line> {
        let mut rows = self.deliveries.iter();
        let mut first_ticket = true;
        self.journal
            .iter()
            .map(|row| {
                // The effects a row queued are the next outbox rows, written
                // in the same transaction (so at the same time).
                let queued: Vec<&Delivery> = rows.by_ref().take(row.effects).collect();
                let queued: Vec<&Delivery> = if queued.iter().all(|d| d.created_at == row.at) {
                    queued
                } else {
                    Vec::new()
                };
                let mut line = match &row.event {
                    Ok(event) => self.line(row.at, event, &queued, &mut first_ticket),
                    Err(raw) => Line {
                        at: row.at,
                        what: format!("an event this pagerd cannot read: {raw}"),
                        who: None,
                        via: None,
                        queued: Vec::new(),
                    },
                };
                line.queued = queued.iter().map(|d| d.what.clone()).collect();
                line
            })
            .collect()
    }

    fn line(&self, at: Millis, event: &Event, queued: &[&Delivery], first: &mut bool) -> Line {
        let acted = |what: &str, by: &Who, via: &Source| Line {
            at,
            what: what.to_string(),
            who: Some(person(by)),
            via: Some(source(*via).to_string()),
            queued: Vec::new(),
        };
        let by_pagerd = |what: String, via: &str| Line {
            at,
            what,
            who: None,
            via: Some(via.to_string()),
            queued: Vec::new(),
        };
        match event {
            Event::Ticket { ticket, polled } => {
                let how = if *polled {
                    " (found by the poller)"
                } else {
                    ""
                };
                let what = if ticket.is_done() {
                    format!("ticket #{} {} in Zendesk{how}", ticket.id, ticket.status)
                } else if std::mem::take(first) {
                    let priority = if ticket.priority.is_empty() {
                        String::new()
                    } else {
                        format!(", {}", ticket.priority)
                    };
                    format!(
                        "emergency ticket #{} came in{how}: \"{}\" ({}{priority})",
                        ticket.id,
                        ticket.title,
                        ticket.customer()
                    )
                } else {
                    format!("ticket #{} came in again{how}", ticket.id)
                };
                by_pagerd(what, "zendesk")
            }
            Event::Acknowledge { by, via } => acted("acknowledged", by, via),
            Event::Escalate {
                by,
                reason,
                via: Source::Timer,
            } => by_pagerd(
                format!("{} escalated to level 2: {reason}", by.name),
                "timer",
            ),
            Event::Escalate { by, reason, via } => {
                acted(&format!("escalated to level 2 (\"{reason}\")"), by, via)
            }
            Event::DeclareCrisis { by, via } => acted("declared a crisis", by, via),
            Event::Join { by, via } => acted("joined the response", by, via),
            Event::Resolve { by, via } => acted("resolved", by, via),
            Event::Repage { by, via } => acted("re-sent the page to PagerDuty", by, via),
            Event::Progress { by, what, via } if what.is_empty() => acted("added a note", by, via),
            Event::Progress { by, what, via } => {
                acted(&format!("noted progress: \"{what}\""), by, via)
            }
            Event::Tick => by_pagerd(self.tick_words(at, queued), "timer"),
            Event::Delivered { effect, outcome } => {
                let what = match (effect, outcome) {
                    (_, Some(Outcome::Doc { doc })) => format!("crisis doc created: {}", doc.url),
                    (_, Some(Outcome::ChatThread { channel, .. })) => {
                        format!("crisis announced in Slack {channel}")
                    }
                    (_, Some(Outcome::Handoff { handoff })) => {
                        format!("hand-off call booked: {}", handoff.meet_url)
                    }
                    (_, Some(Outcome::FollowUp { url })) => {
                        format!("follow-up issue opened: {url}")
                    }
                    (_, Some(Outcome::PagerIncident { id })) => {
                        format!("PagerDuty accepted the escalation (its incident {id})")
                    }
                    (EffectKind::Page, None) => "PagerDuty accepted the page".into(),
                    (EffectKind::PageEscalate, None) => {
                        "PagerDuty accepted the escalation to level 2".into()
                    }
                    (kind, None) => format!("delivered: {}", kind_words(*kind)),
                };
                by_pagerd(what, effect.lane().as_str())
            }
            Event::DeliveryFailed { effect, error } => {
                let page = if effect.is_page() {
                    ": nobody was paged through PagerDuty"
                } else {
                    ""
                };
                by_pagerd(
                    format!("{} failed for good ({error}){page}", kind_words(*effect)),
                    effect.lane().as_str(),
                )
            }
        }
    }

    /// Which deadline a `tick` fired, from what it queued and what it left.
    fn tick_words(&self, at: Millis, queued: &[&Delivery]) -> String {
        let mut fired = Vec::new();
        let has = |kind: &str| queued.iter().any(|d| d.kind == kind);
        let acked_before = self
            .incident
            .acked
            .as_ref()
            .is_some_and(|(_, acked)| *acked <= at);
        if has("pagerduty_escalate") && acked_before {
            fired.push(
                "the acknowledgement's lease ran out without progress: paged again".to_string(),
            );
        } else if has("pagerduty_escalate") {
            fired.push("the ack deadline passed unacknowledged: escalated to level 2".to_string());
        }
        if has("email") {
            fired.push(
                "the fallback deadline passed without PagerDuty accepting the page: e-mailed level 2"
                    .to_string(),
            );
        }
        if let Some(c) = &self.incident.crisis
            && c.declared_at == at
        {
            fired.push(format!(
                "the crisis deadline passed: crisis declared ({})",
                c.reason
            ));
        }
        if has("deprecate_doc") {
            fired.push("the follow-up ended: the crisis doc is marked deprecated".to_string());
        }
        if fired.is_empty() {
            "a deadline passed (nothing left to do for it)".into()
        } else {
            fired.join("; ")
        }
    }
}

/// "Ana Engineer <ana@acme.example>", or the name alone.
pub fn person(w: &Who) -> String {
    match &w.email {
        Some(e) if *e != w.name => format!("{} <{e}>", w.name),
        _ => w.name.clone(),
    }
}

/// The channel's name in JSON.
fn source(s: Source) -> &'static str {
    match s {
        Source::Pagerduty => "pagerduty",
        Source::Zendesk => "zendesk",
        Source::Slack => "slack",
        Source::Cli => "cli",
        Source::Timer => "timer",
    }
}

/// A channel (or lane) for humans.
fn via_words(via: &str) -> &str {
    match via {
        "pagerduty" => "PagerDuty",
        "zendesk" => "Zendesk",
        "slack" => "Slack",
        "cli" => "the CLI",
        "timer" => "pagerd's timer",
        "google" => "Google",
        "email" => "e-mail",
        other => other,
    }
}

/// An effect kind in words.
fn kind_words(kind: EffectKind) -> &'static str {
    match kind {
        EffectKind::Page => "the page to PagerDuty",
        EffectKind::PageAcknowledge => "the acknowledgement to PagerDuty",
        EffectKind::PageResolve => "the resolution to PagerDuty",
        EffectKind::PageEscalate => "the escalation to level 2 in PagerDuty",
        EffectKind::PageNote => "a note on the PagerDuty incident",
        EffectKind::TicketComment => "a Zendesk comment",
        EffectKind::ChatPost => "a Slack message",
        EffectKind::CreateDoc => "the crisis doc",
        EffectKind::ShareDoc => "sharing the crisis doc",
        EffectKind::DeprecateDoc => "the crisis doc's deprecation notice",
        EffectKind::BookHandoff => "the hand-off call in Google Calendar",
        EffectKind::OpenFollowUp => "the follow-up issue in GitLab",
        EffectKind::AppendTimeline => "the timeline in the crisis doc",
        EffectKind::Mail => "the fallback e-mail to level 2",
    }
}

/// An outbox row's effect in words, from its JSON (read leniently).
fn effect_words(effect: &Value) -> String {
    match effect["type"].as_str().unwrap_or("?") {
        "pagerduty_trigger" => "page to PagerDuty (level 1)".into(),
        "pagerduty_acknowledge" => "acknowledgement to PagerDuty".into(),
        "pagerduty_resolve" => "resolution to PagerDuty".into(),
        "pagerduty_escalate" => format!(
            "escalation to level {} in PagerDuty",
            effect["level"].as_u64().unwrap_or(2)
        ),
        "pagerduty_note" => "note on the PagerDuty incident".into(),
        "zendesk_comment" if effect["public"].as_bool() == Some(true) => {
            "reply to the customer in Zendesk".into()
        }
        "zendesk_comment" => "internal note in Zendesk".into(),
        "slack_post" => match effect["channel"].as_str() {
            Some(c) => format!("Slack message in {c}"),
            None => "Slack message".into(),
        },
        "create_doc" => "crisis doc in Google Docs".into(),
        "share_doc" => "sharing of the crisis doc".into(),
        "deprecate_doc" => "deprecation notice on the crisis doc".into(),
        "email" => "fallback e-mail to level 2".into(),
        "book_handoff" => "hand-off call in Google Calendar".into(),
        "open_follow_up" => "follow-up issue in GitLab".into(),
        "append_timeline" => "timeline in the crisis doc".into(),
        other => other.to_string(),
    }
}

/// The timeline for the terminal: `  14:00:03  acknowledged by Ana via the
/// CLI; queued: …`, one line per event.
pub fn timeline_text(lines: &[Line], local: &Local) -> String {
    let mut out = String::new();
    for l in lines {
        let mut s = format!("{}  {}", local.time(l.at), l.what);
        if let Some(who) = &l.who {
            let _ = write!(s, " by {who}");
        }
        if let Some(via) = &l.via {
            let _ = write!(s, " via {}", via_words(via));
        }
        if !l.queued.is_empty() {
            let _ = write!(s, "; queued: {}", l.queued.join(", "));
        }
        let _ = writeln!(out, "  {}", terminal(&s));
    }
    out
}

/// One outbox row for the terminal.
pub fn delivery_text(d: &Delivery, local: &Local) -> String {
    let tries = |n: u32| format!("{n} attempt{}", if n == 1 { "" } else { "s" });
    let state = match (d.state.as_str(), d.done_at) {
        ("delivered", Some(at)) => {
            format!("delivered {} after {}", local.time(at), tries(d.attempts))
        }
        ("failed", Some(at)) => format!(
            "FAILED for good {} after {}: {}",
            local.time(at),
            tries(d.attempts),
            d.last_error.as_deref().unwrap_or("unknown error")
        ),
        ("pending", _) => {
            let mut s = "pending".to_string();
            if d.attempts > 0 {
                let _ = write!(
                    s,
                    ", {} failed, last error: {}",
                    tries(d.attempts),
                    d.last_error.as_deref().unwrap_or("unknown")
                );
            }
            if let Some(at) = d.next_attempt_at {
                let _ = write!(s, "; next attempt {}", local.when(at));
            }
            s
        }
        (other, _) => format!("{other} after {}", tries(d.attempts)),
    };
    terminal(&format!(
        "#{:<5} {:<38} queued {}, {state}",
        d.id,
        d.what,
        local.time(d.created_at)
    ))
}

/// `pagerd incidents explain` for the terminal.
pub fn explain_text(story: &Story, local: &Local) -> String {
    let i = &story.incident;
    let mut out = String::new();
    let status = if i.is_undeliverable() {
        "NOT PAGED"
    } else {
        i.status.as_str()
    };
    let _ = writeln!(
        out,
        "{}",
        terminal(&format!(
            "incident {}: ticket #{} \"{}\" ({}), {status}, level {}",
            i.id,
            i.ticket.id,
            i.ticket.title,
            i.ticket.customer(),
            i.level
        ))
    );
    let _ = writeln!(
        out,
        "times in {}; now {}\n",
        terminal(&local.zone()),
        local.time(local.now())
    );
    let _ = writeln!(out, "What fires next:");
    for n in story.next(local) {
        let when = n.at.map(|at| local.when(at)).unwrap_or_default();
        let head = if when.is_empty() {
            n.what.clone()
        } else {
            format!("{when}  {}", n.what)
        };
        let _ = writeln!(out, "  {}", terminal(&head));
        let _ = writeln!(out, "      why: {}", terminal(&n.why));
    }
    let _ = writeln!(out, "\nWhat happened:");
    out.push_str(&timeline_text(&story.timeline(), local));
    let _ = writeln!(out, "\nDeliveries:");
    if story.deliveries.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for d in &story.deliveries {
        let _ = writeln!(out, "  {}", delivery_text(d, local));
    }
    out
}

/// `pagerd incidents explain --json`: `{"next": [{"what", "at", "why"}],
/// "timeline": [{"at", "what", "who"?, "via"?, "queued"?}], "deliveries":
/// […]}`, times in RFC 3339 (UTC).
pub fn explain_json(story: &Story, local: &Local) -> Value {
    let next: Vec<Value> = story
        .next(local)
        .into_iter()
        .map(|n| json!({ "what": n.what, "at": n.at.map(rfc3339_exact), "why": n.why }))
        .collect();
    let timeline: Vec<Value> = story
        .timeline()
        .into_iter()
        .map(|l| {
            let mut v = json!({ "at": rfc3339_exact(l.at), "what": l.what });
            if let Some(who) = l.who {
                v["who"] = json!(who);
            }
            if let Some(via) = l.via {
                v["via"] = json!(via);
            }
            if !l.queued.is_empty() {
                v["queued"] = json!(l.queued);
            }
            v
        })
        .collect();
    let deliveries: Vec<Value> = story
        .deliveries
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "what": d.what,
                "state": d.state,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "created_at": rfc3339_exact(d.created_at),
                "done_at": d.done_at.map(rfc3339_exact),
                "next_attempt_at": d.next_attempt_at.map(rfc3339_exact),
            })
        })
        .collect();
    json!({
        "incident": story.incident.id,
        "next": next,
        "timeline": timeline,
        "deliveries": deliveries,
    })
}

#[cfg(test)]
mod tests;

//! The incident: its state, the events that change it and the effects it asks
//! of the outside world. Plain data, serialised as JSON in the store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

/// A Zendesk ticket as pagerd needs it, parsed from a webhook or a poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The ticket number, e.g. `4711`.
    pub id: String,
    /// The subject line.
    pub title: String,
    /// `urgent`, `high`, `normal`, `low` (lower-cased), or empty.
    pub priority: String,
    /// `new`, `open`, `pending`, `hold`, `solved`, `closed` (lower-cased).
    pub status: String,
    /// Tags, lower-cased.
    pub tags: Vec<String>,
    /// Link to the ticket for the agent (`https://acme.zendesk.com/agent/tickets/4711`).
    pub url: String,
    /// The requester's name.
    pub requester_name: String,
    /// The requester's e-mail: the customer contact for the crisis doc.
    pub requester_email: String,
    /// The customer's organisation.
    pub organization: String,
}

impl Ticket {
    /// Solved and closed tickets need nobody woken up.
    pub fn is_done(&self) -> bool {
        matches!(self.status.as_str(), "solved" | "closed")
    }

    /// Who the customer is, for summaries.
    pub fn customer(&self) -> &str {
        if !self.organization.is_empty() {
            &self.organization
        } else if !self.requester_name.is_empty() {
            &self.requester_name
        } else {
            &self.requester_email
        }
    }
}

/// Where an acknowledgement, escalation or resolution came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// PagerDuty (webhook or poll): the phone app.
    Pagerduty,
    /// Zendesk (ticket solved).
    Zendesk,
    /// A Slack button or slash command.
    Slack,
    /// The CLI or the admin API.
    Cli,
    /// pagerd's own timers.
    Timer,
}

/// A person acting on an incident: their name for humans, and their e-mail
/// (lower-case) when known, which identifies them across channels — the
/// same e-mail from PagerDuty, Slack and the CLI is one responder.
///
/// Stored as a plain string when only a name is known (what pagerd 0.1.0
/// stored), as `{"name", "email"}` otherwise; both forms load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WhoRepr", into = "WhoRepr")]
pub struct Who {
    /// The real name (or the best that is known: a handle, an e-mail).
    pub name: String,
    /// The e-mail, lower-cased, when known.
    pub email: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum WhoRepr {
    Name(String),
    Full { name: String, email: Option<String> },
}

impl From<WhoRepr> for Who {
    fn from(r: WhoRepr) -> Who {
        match r {
            WhoRepr::Name(name) => Who { name, email: None },
            WhoRepr::Full { name, email } => Who::new(name, email),
        }
    }
}

impl From<Who> for WhoRepr {
    fn from(w: Who) -> WhoRepr {
        match w.email {
            None => WhoRepr::Name(w.name),
            email => WhoRepr::Full {
                name: w.name,
                email,
            },
        }
    }
}

impl From<&str> for Who {
    fn from(name: &str) -> Who {
        Who::named(name)
    }
}

impl From<String> for Who {
    fn from(name: String) -> Who {
        Who { name, email: None }
    }
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Who {
    /// A person known by name and, maybe, e-mail (lower-cased here; a blank
    /// one counts as unknown; a blank name falls back to the e-mail).
    pub fn new(name: impl Into<String>, email: Option<String>) -> Who {
        let email = email
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty());
        let mut name: String = name.into();
        if name.trim().is_empty()
            && let Some(e) = &email
        {
            name = e.clone();
        }
        Who { name, email }
    }

    /// A person known only by name.
    pub fn named(name: &str) -> Who {
        Who::new(name, None)
    }

    /// Whether `self` and `other` are the same person: the same e-mail, or,
    /// when either e-mail is unknown, the same name (case aside).
    pub fn same(&self, other: &Who) -> bool {
        match (&self.email, &other.email) {
            (Some(a), Some(b)) => a == b,
            _ => self.name.trim().eq_ignore_ascii_case(other.name.trim()),
        }
    }
}

/// Where the incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Paged, nobody has acknowledged yet.
    Triggered,
    /// Somebody has the case.
    Acknowledged,
    /// Over.
    Resolved,
}

impl Status {
    /// The name used in the API, the CLI and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Triggered => "triggered",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }
}

/// The timers of one incident. Each is a wall-clock instant, or `None` when
/// disarmed; the scheduler wakes the engine at the earliest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadlines {
    /// Escalate to level 2 if nobody acknowledged by then.
    pub ack: Option<Millis>,
    /// Declare a crisis if still unresolved by then.
    pub crisis: Option<Millis>,
    /// E-mail level 2 if PagerDuty still has not taken the page by then.
    pub fallback: Option<Millis>,
    /// Mark the crisis doc deprecated.
    pub deprecate: Option<Millis>,
    /// Re-page an acknowledged incident that showed no progress
    /// (`policy.ack_lease`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Millis>,
}

impl Deadlines {
    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Millis> {
        [
            self.ack,
            self.crisis,
            self.fallback,
            self.deprecate,
            self.lease,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The shared crisis document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Doc {
    /// Google Drive file id.
    pub id: String,
    /// Link for humans.
    pub url: String,
}

/// A crisis: declared once, then documented and announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crisis {
    /// When it was declared.
    pub declared_at: Millis,
    /// Why, in words ("unresolved after 1h", "2 responders", "declared by ana").
    pub reason: String,
    /// The crisis document, once created.
    pub doc: Option<Doc>,
    /// The announcement per Slack channel (as configured) → message ts; later
    /// updates are threaded under it.
    pub threads: BTreeMap<String, SlackThread>,
    /// Whether the doc has been marked deprecated.
    pub deprecated: bool,
    /// The hand-off call, once booked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Handoff>,
    /// The follow-up issue's link, once opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<String>,
}

/// The after-crisis hand-off call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// The video link (Google Meet).
    pub meet_url: String,
    /// The calendar event, for humans.
    pub event_url: String,
}

/// Where an announcement landed in Slack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackThread {
    /// The channel ID Slack answered with.
    pub channel_id: String,
    /// The message ts, the thread's parent.
    pub ts: String,
}

/// An emergency, from the first page to the end of its follow-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// pagerd's id (assigned by the store; 0 before the first commit).
    pub id: i64,
    /// The PagerDuty `dedup_key`: `zendesk-<ticket id>` for a ticket's first
    /// episode, `zendesk-<ticket id>-<episode>` for later ones.
    pub dedup_key: String,
    /// Which emergency of its ticket this is: 1 at first; a ticket that
    /// comes back as an emergency after its incident was resolved opens
    /// episode 2, and so on. Each episode is paged on its own.
    #[serde(default = "first_episode")]
    pub episode: u32,
    /// The ticket as last seen.
    pub ticket: Ticket,
    /// Where it stands.
    pub status: Status,
    /// When pagerd opened it.
    pub opened_at: Millis,
    /// The PagerDuty escalation level pagerd last asked for (1 or 2).
    pub level: u8,
    /// Who acknowledged (their name), and when.
    pub acked: Option<(String, Millis)>,
    /// Who resolved (their name), and when.
    pub resolved: Option<(String, Millis)>,
    /// Distinct people involved (acks, escalations, joins), in order; one
    /// person acting from several channels is one responder.
    pub responders: Vec<Who>,
    /// The timers.
    pub deadlines: Deadlines,
    /// A page or escalation is waiting for PagerDuty to accept it.
    pub page_pending: bool,
    /// The fallback e-mail to level 2 has been queued (sent once at most).
    pub fallback_sent: bool,
    /// PagerDuty's incident id, once learned (webhook or lookup).
    pub pagerduty_id: Option<String>,
    /// The crisis, once declared.
    pub crisis: Option<Crisis>,
    /// The last delivery problem, for `pagerd incidents show`.
    pub last_error: Option<String>,
    /// When PagerDuty accepted the page (level 1): the acknowledgement clock
    /// starts then. `None` while it has not.
    #[serde(default)]
    pub paged_at: Option<Millis>,
    /// When PagerDuty accepted the escalation to level 2.
    #[serde(default)]
    pub escalated_at: Option<Millis>,
    /// Why the page or the escalation failed for good and has not been
    /// re-sent (`pagerd incidents repage`): nobody was paged through
    /// PagerDuty.
    #[serde(default)]
    pub undeliverable: Option<String>,
}

fn first_episode() -> u32 {
    1
}

impl Incident {
    /// The `dedup_key` of a ticket's page in `episode` (the first keeps the
    /// key pagerd 0.1.0 used, so stored incidents stay valid).
    pub fn dedup_key_for(ticket_id: &str, episode: u32) -> String {
        if episode <= 1 {
            format!("zendesk-{ticket_id}")
        } else {
            format!("zendesk-{ticket_id}-{episode}")
        }
    }

    /// Whether PagerDuty accepted the page.
    pub fn paged(&self) -> bool {
        self.paged_at.is_some()
    }

    /// Open, and its page or escalation failed for good without a re-send:
    /// nobody was paged through PagerDuty (counted by
    /// `pagerd_pages_undeliverable`).
    pub fn is_undeliverable(&self) -> bool {
        self.is_open() && self.undeliverable.is_some()
    }

    /// Whether the incident still needs attention.
    pub fn is_open(&self) -> bool {
        self.status != Status::Resolved
    }
}

/// Something that happened, for one incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A ticket seen by the webhook or the poller.
    Ticket {
        /// The ticket as seen.
        ticket: Ticket,
        /// Seen by the poller (a search), not by a webhook (an update).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        polled: bool,
    },
    /// Somebody has the case.
    Acknowledge {
        /// Who.
        by: Who,
        /// From where.
        via: Source,
    },
    /// Escalate to level 2 now (a crisis: the instance is critical).
    Escalate {
        /// Who asked.
        by: Who,
        /// Why, in their words.
        reason: String,
        /// From where.
        via: Source,
    },
    /// Declare a crisis now.
    DeclareCrisis {
        /// Who asked.
        by: Who,
        /// From where.
        via: Source,
    },
    /// Another person joins the response.
    Join {
        /// Who.
        by: Who,
        /// From where.
        via: Source,
    },
    /// It is over.
    Resolve {
        /// Who.
        by: Who,
        /// From where.
        via: Source,
    },
    /// Send the page (and the escalation waiting on it) again after it
    /// failed for good and the operator fixed the cause.
    Repage {
        /// Who asked.
        by: Who,
        /// From where.
        via: Source,
    },
    /// A responder reports progress (a note from the CLI or Slack, a note
    /// added in PagerDuty): renews the acknowledgement's lease.
    Progress {
        /// Who.
        by: Who,
        /// What, in their words.
        what: String,
        /// From where.
        via: Source,
    },
    /// A deadline may have passed: fire what is due.
    Tick,
    /// An effect was delivered; some deliveries report back what they made.
    Delivered {
        /// Which effect.
        effect: EffectKind,
        /// What the remote side made, if anything.
        outcome: Option<Outcome>,
    },
    /// An effect could not be delivered and will not be retried.
    DeliveryFailed {
        /// Which effect.
        effect: EffectKind,
        /// Why.
        error: String,
    },
}

impl Event {
    /// The event for an operator's action verb (`ack`, `escalate`, `crisis`,
    /// `join`, `resolve`, `repage`, `note`), shared by the CLI/API and Slack.
    pub fn action(verb: &str, by: Who, reason: &str, via: Source) -> Option<Event> {
        Some(match verb {
            "ack" | "acknowledge" => Event::Acknowledge { by, via },
            "escalate" => {
                let reason = reason.trim();
                let reason = if reason.is_empty() {
                    "escalated by hand"
                } else {
                    reason
                };
                Event::Escalate {
                    by,
                    reason: reason.to_string(),
                    via,
                }
            }
            "crisis" => Event::DeclareCrisis { by, via },
            "join" => Event::Join { by, via },
            "resolve" => Event::Resolve { by, via },
            "repage" => Event::Repage { by, via },
            "note" => Event::Progress {
                by,
                what: reason.trim().to_string(),
                via,
            },
            _ => return None,
        })
    }
}

/// What a delivery made on the remote side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// The crisis doc.
    Doc {
        /// Its id and link.
        doc: Doc,
    },
    /// PagerDuty's id of the incident, learned while escalating.
    #[serde(rename = "pagerduty_incident")]
    PagerIncident {
        /// The id.
        id: String,
    },
    /// The hand-off call, booked.
    Handoff {
        /// Its links.
        handoff: Handoff,
    },
    /// The follow-up issue, opened.
    FollowUp {
        /// Its link.
        url: String,
    },
    /// An announcement in a chat channel (Slack).
    #[serde(rename = "slack_thread")]
    ChatThread {
        /// The channel as configured (the key of `Crisis::threads`).
        channel: String,
        /// Where it landed.
        thread: SlackThread,
    },
}

/// The role an effect goes through. Effects of one incident in one lane are
/// delivered in order; lanes do not wait for each other, so a chat outage
/// never delays a page.
///
/// The engine names roles (pager, tickets, chat, docs, mail); the vendor
/// that fills each role is the registry's business ([`crate::deliver`]).
/// The serialized names are those of 0.1.0, when lanes were named after
/// vendors: stored outbox rows and the store's views use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// The pager (PagerDuty Events and REST).
    #[serde(rename = "pagerduty")]
    Pager,
    /// The ticket system (Zendesk REST).
    #[serde(rename = "zendesk")]
    Tickets,
    /// Chat (the Slack Web API).
    #[serde(rename = "slack")]
    Chat,
    /// The crisis documents (Google Drive and Docs).
    #[serde(rename = "google")]
    Docs,
    /// Mail (SMTP).
    #[serde(rename = "email")]
    Mail,
    /// Meetings (Google Calendar with Meet).
    Calendar,
    /// The issue tracker (GitLab).
    Tracker,
}

impl Lane {
    /// The name used in the store and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Pager => "pagerduty",
            Lane::Tickets => "zendesk",
            Lane::Chat => "slack",
            Lane::Docs => "google",
            Lane::Mail => "email",
            Lane::Calendar => "calendar",
            Lane::Tracker => "tracker",
        }
    }
}

/// Something the outside world must be told. Effects are stored in the
/// outbox in the same transaction as the state that asked for them.
///
/// Variants name the role (a page, a ticket comment, a chat post); their
/// serialized `type`s keep the vendor names of 0.1.0 (`pagerduty_trigger`,
/// `slack_post`, …), which stored outbox rows, journals and the store's
/// views (`open_undeliverable`) use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    /// Events API `trigger`: page level 1.
    #[serde(rename = "pagerduty_trigger")]
    Page {
        /// One line, shown on the phone.
        summary: String,
    },
    /// Events API `acknowledge` (the ack came from elsewhere: stop the paging).
    #[serde(rename = "pagerduty_acknowledge")]
    PageAcknowledge,
    /// Events API `resolve`.
    #[serde(rename = "pagerduty_resolve")]
    PageResolve,
    /// REST: escalate to `level`, with a note saying why.
    #[serde(rename = "pagerduty_escalate")]
    PageEscalate {
        /// The escalation level.
        level: u8,
        /// The note added to the incident.
        note: String,
        /// The acknowledgement deadline whose passing made it (an escalation
        /// by the timer; `None` for one asked for by a person or a lease).
        /// The SQLite store sends such an escalation while its commit syncs,
        /// and a delivery of one due before its dispatcher started first
        /// looks for an escalation since then: see
        /// `store::sqlite::writer` and `dispatcher::Dispatcher::spawn`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due: Option<Millis>,
    },
    /// REST: a note on the incident.
    #[serde(rename = "pagerduty_note")]
    PageNote {
        /// The note.
        text: String,
    },
    /// A comment on the Zendesk ticket.
    #[serde(rename = "zendesk_comment")]
    TicketComment {
        /// The text.
        body: String,
        /// Visible to the customer.
        public: bool,
    },
    /// A Slack message: top-level when no announcement exists in `channel`
    /// yet (and the reply is recorded as its thread), else in the thread.
    #[serde(rename = "slack_post")]
    ChatPost {
        /// The channel, as configured.
        channel: String,
        /// The text (mrkdwn).
        text: String,
        /// Attach the Acknowledge / Escalate / Resolve buttons.
        buttons: bool,
    },
    /// Create the crisis document.
    CreateDoc {
        /// Its title.
        title: String,
        /// Its opening content.
        body: String,
    },
    /// Share the crisis doc with the company and the customer.
    ShareDoc,
    /// Mark the crisis doc deprecated.
    DeprecateDoc {
        /// The notice put at its top.
        notice: String,
    },
    /// Book the after-crisis hand-off call (a calendar event with a video
    /// link) for everyone involved.
    BookHandoff {
        /// The event's title.
        title: String,
        /// The event's description.
        description: String,
        /// When it starts.
        start: Millis,
        /// How long it lasts, in minutes.
        minutes: u32,
        /// The attendees' e-mail addresses.
        attendees: Vec<String>,
    },
    /// Open the follow-up issue in the issue tracker.
    OpenFollowUp {
        /// Its title.
        title: String,
        /// Its description (Markdown, with the after-crisis checklist).
        description: String,
    },
    /// Append the incident's timeline to the crisis doc.
    AppendTimeline {
        /// The text appended.
        text: String,
    },
    /// The fallback page: an e-mail to level 2.
    #[serde(rename = "email")]
    Mail {
        /// Subject line.
        subject: String,
        /// Plain-text body.
        body: String,
    },
}

/// An effect's kind without its data, for feedback events and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectKind {
    /// See [`Effect::Page`].
    #[serde(rename = "pagerduty_trigger")]
    Page,
    /// See [`Effect::PageAcknowledge`].
    #[serde(rename = "pagerduty_acknowledge")]
    PageAcknowledge,
    /// See [`Effect::PageResolve`].
    #[serde(rename = "pagerduty_resolve")]
    PageResolve,
    /// See [`Effect::PageEscalate`].
    #[serde(rename = "pagerduty_escalate")]
    PageEscalate,
    /// See [`Effect::PageNote`].
    #[serde(rename = "pagerduty_note")]
    PageNote,
    /// See [`Effect::TicketComment`].
    #[serde(rename = "zendesk_comment")]
    TicketComment,
    /// See [`Effect::ChatPost`].
    #[serde(rename = "slack_post")]
    ChatPost,
    /// See [`Effect::CreateDoc`].
    CreateDoc,
    /// See [`Effect::ShareDoc`].
    ShareDoc,
    /// See [`Effect::DeprecateDoc`].
    DeprecateDoc,
    /// See [`Effect::BookHandoff`].
    BookHandoff,
    /// See [`Effect::OpenFollowUp`].
    OpenFollowUp,
    /// See [`Effect::AppendTimeline`].
    AppendTimeline,
    /// See [`Effect::Mail`].
    #[serde(rename = "email")]
    Mail,
}

impl Effect {
    /// The effect's kind.
    pub fn kind(&self) -> EffectKind {
        match self {
            Effect::Page { .. } => EffectKind::Page,
            Effect::PageAcknowledge => EffectKind::PageAcknowledge,
            Effect::PageResolve => EffectKind::PageResolve,
            Effect::PageEscalate { .. } => EffectKind::PageEscalate,
            Effect::PageNote { .. } => EffectKind::PageNote,
            Effect::TicketComment { .. } => EffectKind::TicketComment,
            Effect::ChatPost { .. } => EffectKind::ChatPost,
            Effect::CreateDoc { .. } => EffectKind::CreateDoc,
            Effect::ShareDoc => EffectKind::ShareDoc,
            Effect::DeprecateDoc { .. } => EffectKind::DeprecateDoc,
            Effect::BookHandoff { .. } => EffectKind::BookHandoff,
            Effect::OpenFollowUp { .. } => EffectKind::OpenFollowUp,
            Effect::AppendTimeline { .. } => EffectKind::AppendTimeline,
            Effect::Mail { .. } => EffectKind::Mail,
        }
    }

    /// The lane it is delivered in.
    pub fn lane(&self) -> Lane {
        self.kind().lane()
    }
}

impl EffectKind {
    /// The lane effects of this kind are delivered in.
    pub fn lane(self) -> Lane {
        match self {
            EffectKind::Page
            | EffectKind::PageAcknowledge
            | EffectKind::PageResolve
            | EffectKind::PageEscalate
            | EffectKind::PageNote => Lane::Pager,
            EffectKind::TicketComment => Lane::Tickets,
            EffectKind::ChatPost => Lane::Chat,
            EffectKind::CreateDoc
            | EffectKind::ShareDoc
            | EffectKind::DeprecateDoc
            | EffectKind::AppendTimeline => Lane::Docs,
            EffectKind::BookHandoff => Lane::Calendar,
            EffectKind::OpenFollowUp => Lane::Tracker,
            EffectKind::Mail => Lane::Mail,
        }
    }

    /// Whether this effect is what wakes a human (a page or an escalation):
    /// if it cannot be delivered, the e-mail fallback takes over.
    pub fn is_page(self) -> bool {
        matches!(self, EffectKind::Page | EffectKind::PageEscalate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores written by 0.1.0 hold these names, and the stores' SQL views
    /// match on them: renaming a variant must not change them.
    #[test]
    fn stored_names_are_those_of_0_1_0() {
        let cases = [
            (
                Effect::Page {
                    summary: "s".into(),
                },
                "pagerduty_trigger",
                "pagerduty",
            ),
            (
                Effect::PageAcknowledge,
                "pagerduty_acknowledge",
                "pagerduty",
            ),
            (Effect::PageResolve, "pagerduty_resolve", "pagerduty"),
            (
                Effect::PageEscalate {
                    level: 2,
                    note: "n".into(),
                    due: None,
                },
                "pagerduty_escalate",
                "pagerduty",
            ),
            (
                Effect::PageNote { text: "t".into() },
                "pagerduty_note",
                "pagerduty",
            ),
            (
                Effect::TicketComment {
                    body: "b".into(),
                    public: true,
                },
                "zendesk_comment",
                "zendesk",
            ),
            (
                Effect::ChatPost {
                    channel: "#c".into(),
                    text: "t".into(),
                    buttons: false,
                },
                "slack_post",
                "slack",
            ),
            (Effect::ShareDoc, "share_doc", "google"),
            (
                Effect::Mail {
                    subject: "s".into(),
                    body: "b".into(),
                },
                "email",
                "email",
            ),
        ];
        for (effect, name, lane) in cases {
            let v = serde_json::to_value(&effect).expect("serializes");
            assert_eq!(v["type"], name);
            assert_eq!(serde_json::to_value(effect.kind()).expect("kind"), name);
            assert_eq!(serde_json::to_value(effect.lane()).expect("lane"), lane);
            assert_eq!(effect.lane().as_str(), lane);
            let back: Effect = serde_json::from_value(v).expect("loads");
            assert_eq!(back, effect);
        }
        let o = Outcome::PagerIncident { id: "P1".into() };
        assert_eq!(
            serde_json::to_value(&o).expect("outcome")["type"],
            "pagerduty_incident"
        );
    }
}

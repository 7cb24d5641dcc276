//! The engine: every rule of the mission, as a pure function.
//!
//! `apply(policy, incident, event, now) -> Decision`. No I/O, no clock, no
//! async: the store calls it inside the transaction that persists its
//! result, so a decision and the effects it asks for commit together or not
//! at all. Tests drive it with made-up times.

#[cfg(test)]
mod escape_proptests;
mod incident;
#[cfg(test)]
mod proptests;
mod rules;

pub use crate::render::truncate;
pub use incident::{
    Crisis, Deadlines, Doc, Effect, EffectKind, Event, Handoff, Incident, Lane, Outcome,
    SlackThread, Source, Status, Ticket, Who,
};
pub use rules::{Decision, apply};

use crate::clock::Millis;

/// The knobs of the rules, from `[policy]` and the integrations' config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Escalate to level 2 when nobody acknowledged within this.
    pub ack_timeout: Millis,
    /// Declare a crisis when still unresolved this long after opening.
    pub crisis_after: Millis,
    /// Declare a crisis when this many distinct people are involved.
    pub crisis_responders: usize,
    /// Mark the crisis doc deprecated this long after resolution.
    pub doc_deprecate_after: Millis,
    /// E-mail level 2 when PagerDuty has not taken a page within this;
    /// `None` when no `[email]` is configured.
    pub fallback_after: Option<Millis>,
    /// How the customer may reach the engineer (Phone, Skype, …).
    pub contact_channels: Vec<String>,
    /// The acknowledgement comment, with `{engineer}`, `{channels}`,
    /// `{requester}` and `{ticket}` placeholders.
    pub ack_comment: String,
    /// Ticket priorities that are emergencies (lower-case).
    pub emergency_priorities: Vec<String>,
    /// Ticket tags that make an emergency (lower-case).
    pub emergency_tags: Vec<String>,
    /// Slack channels to announce a crisis in; empty when Slack is off.
    pub slack_channels: Vec<String>,
    /// Whether crisis docs are created (Google is configured).
    pub crisis_docs: bool,
    /// Book the after-crisis hand-off call this long after the resolution;
    /// `None` when no calendar is configured (`google.calendar_id`).
    pub handoff_after: Option<Millis>,
    /// Open a follow-up issue for each resolved crisis (`[gitlab]`).
    pub follow_up: bool,
    /// Re-page an acknowledged emergency that showed no progress for this
    /// long (`policy.ack_lease`); `None`: an acknowledgement lasts.
    pub ack_lease: Option<Millis>,
    /// The IANA time zone of the times pagerd writes into the crisis doc
    /// and the follow-up issue (`policy.timezone`).
    pub timezone: String,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            ack_timeout: 5 * 60_000,
            crisis_after: 60 * 60_000,
            crisis_responders: 2,
            doc_deprecate_after: 7 * 24 * 3_600_000,
            fallback_after: None,
            contact_channels: ["Phone", "Skype", "WebEx", "Hangouts"]
                .map(String::from)
                .to_vec(),
            ack_comment: DEFAULT_ACK_COMMENT.to_string(),
            emergency_priorities: vec!["urgent".into()],
            emergency_tags: vec!["emergency".into()],
            slack_channels: Vec::new(),
            crisis_docs: false,
            handoff_after: None,
            follow_up: false,
            ack_lease: None,
            timezone: "UTC".into(),
        }
    }
}

/// The default acknowledgement comment posted on the customer's ticket.
pub const DEFAULT_ACK_COMMENT: &str = "Hello {requester},\n\n\
{engineer} from our engineering team has your case and is working on it right now.\n\n\
What is the best way to reach you: {channels}? Please reply with your choice and the number, \
handle or meeting link, and we will join you there.";

impl Policy {
    /// Whether a ticket is an emergency: an emergency priority or tag.
    pub fn is_emergency(&self, ticket: &Ticket) -> bool {
        self.emergency_priorities.contains(&ticket.priority)
            || ticket.tags.iter().any(|t| self.emergency_tags.contains(t))
    }
}

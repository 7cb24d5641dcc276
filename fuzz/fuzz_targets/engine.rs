//! The engine's rules under any sequence of events at any (advancing) times.
//!
//! An `arbitrary`-driven policy (within what `Config::parse` accepts) and
//! sequence of events, applied with `pagerd::engine::apply` to the incident
//! an emergency ticket opens, must keep the promises of DESIGN.md (the same
//! ones as `src/engine/proptests.rs`, over a wider space):
//!
//! - exactly one `PagerdutyTrigger` over the whole sequence (one page per ticket);
//! - a `PagerdutyEscalate` caused by `Event::Tick` only when the incident was
//!   `Status::Triggered` before (a timer escalates only what nobody acked);
//! - after a `Tick` at `now`, no deadline `<= now` is still armed;
//! - a resolved incident has no ack, crisis or fallback deadline, and one
//!   that is no longer triggered has no ack deadline;
//! - at most one `Email`, one `CreateDoc`, one `ShareDoc`, one `DeprecateDoc`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pagerd::clock::Millis;
use pagerd::engine::{
    Decision, Doc, Effect, EffectKind, Event, Incident, Outcome, Policy, SlackThread, Source,
    Status, Ticket, apply,
};

const SEC: Millis = 1_000;
const MIN: Millis = 60 * SEC;
const HOUR: Millis = 60 * MIN;
const DAY: Millis = 24 * HOUR;
/// What `clock::millis` saturates a huge configured duration (`"1000000y"`) to.
const NEVER: Millis = i64::MAX / 4;

/// A policy duration as `[policy]`/`[email]` can configure it.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Span {
    Zero,
    Millis(u16),
    Seconds(u16),
    Minutes(u8),
    Hours(u8),
    Days(u8),
    Never,
}

impl Span {
    fn millis(self) -> Millis {
        match self {
            Span::Zero => 0,
            Span::Millis(n) => Millis::from(n),
            Span::Seconds(n) => Millis::from(n) * SEC,
            Span::Minutes(n) => Millis::from(n) * MIN,
            Span::Hours(n) => Millis::from(n) * HOUR,
            Span::Days(n) => Millis::from(n) * DAY,
            Span::Never => NEVER,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct FuzzPolicy {
    /// `Config::parse` refuses 0.
    ack_timeout: Span,
    crisis_after: Span,
    /// `Config::parse` refuses 0.
    crisis_responders: u8,
    doc_deprecate_after: Span,
    /// `None` without `[email]`.
    fallback_after: Option<Span>,
    /// Slack channels: 0 (no `[slack]`) to 3.
    slack_channels: u8,
    /// `[google]` configured.
    crisis_docs: bool,
}

impl FuzzPolicy {
    fn policy(&self) -> Policy {
        let ack_timeout = match self.ack_timeout.millis() {
            0 => 1,
            ms => ms,
        };
        Policy {
            ack_timeout,
            crisis_after: self.crisis_after.millis(),
            crisis_responders: usize::from(self.crisis_responders % 5).max(1),
            doc_deprecate_after: self.doc_deprecate_after.millis(),
            // `Zero` included: `[email] fallback_after = "0s"` is accepted.
            fallback_after: self.fallback_after.map(Span::millis),
            slack_channels: ["#infrastructure", "#development", "#general"]
                [..usize::from(self.slack_channels % 4)]
                .iter()
                .map(|c| c.to_string())
                .collect(),
            crisis_docs: self.crisis_docs,
            ..Policy::default()
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Who {
    Ana,
    Bo,
    Cy,
    Dee,
    /// An empty name (a Slack user without a name nor id cannot produce it,
    /// but the API takes any string).
    Nobody,
}

impl Who {
    fn name(self) -> String {
        match self {
            Who::Ana => "ana",
            Who::Bo => "bo",
            Who::Cy => "cy",
            Who::Dee => "@dee",
            Who::Nobody => "",
        }
        .to_string()
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Via {
    Pagerduty,
    Zendesk,
    Slack,
    Cli,
    Timer,
}

impl Via {
    fn source(self) -> Source {
        match self {
            Via::Pagerduty => Source::Pagerduty,
            Via::Zendesk => Source::Zendesk,
            Via::Slack => Source::Slack,
            Via::Cli => Source::Cli,
            Via::Timer => Source::Timer,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum TicketStatus {
    New,
    Open,
    Pending,
    Hold,
    Solved,
    Closed,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    PagerdutyTrigger,
    PagerdutyAcknowledge,
    PagerdutyResolve,
    PagerdutyEscalate,
    PagerdutyNote,
    ZendeskComment,
    SlackPost,
    CreateDoc,
    ShareDoc,
    DeprecateDoc,
    Email,
}

impl Kind {
    fn kind(self) -> EffectKind {
        match self {
            Kind::PagerdutyTrigger => EffectKind::PagerdutyTrigger,
            Kind::PagerdutyAcknowledge => EffectKind::PagerdutyAcknowledge,
            Kind::PagerdutyResolve => EffectKind::PagerdutyResolve,
            Kind::PagerdutyEscalate => EffectKind::PagerdutyEscalate,
            Kind::PagerdutyNote => EffectKind::PagerdutyNote,
            Kind::ZendeskComment => EffectKind::ZendeskComment,
            Kind::SlackPost => EffectKind::SlackPost,
            Kind::CreateDoc => EffectKind::CreateDoc,
            Kind::ShareDoc => EffectKind::ShareDoc,
            Kind::DeprecateDoc => EffectKind::DeprecateDoc,
            Kind::Email => EffectKind::Email,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FuzzOutcome {
    Doc(u8),
    PagerdutyIncident(u8),
    SlackThread { channel: u8, ts: u8 },
}

impl FuzzOutcome {
    fn outcome(self) -> Outcome {
        match self {
            FuzzOutcome::Doc(n) => Outcome::Doc {
                doc: Doc {
                    id: format!("doc{n}"),
                    url: format!("https://docs.example/doc{n}"),
                },
            },
            FuzzOutcome::PagerdutyIncident(n) => Outcome::PagerdutyIncident {
                id: format!("P{n}"),
            },
            FuzzOutcome::SlackThread { channel, ts } => Outcome::SlackThread {
                channel: ["#infrastructure", "#development", "#general", "#elsewhere"]
                    [usize::from(channel % 4)]
                .to_string(),
                thread: SlackThread {
                    channel_id: format!("C{channel}"),
                    ts: format!("1700000000.{ts:06}"),
                },
            },
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum FuzzEvent {
    Tick,
    /// The same ticket seen again (webhook retry, poller), in some status.
    Ticket(TicketStatus),
    Acknowledge(Who, Via),
    Escalate(Who, Via),
    DeclareCrisis(Who, Via),
    Join(Who, Via),
    Resolve(Who, Via),
    Delivered(Kind, Option<FuzzOutcome>),
    DeliveryFailed(Kind),
}

impl FuzzEvent {
    fn event(&self) -> Event {
        match self.clone() {
            FuzzEvent::Tick => Event::Tick,
            FuzzEvent::Ticket(s) => Event::Ticket {
                ticket: ticket(match s {
                    TicketStatus::New => "new",
                    TicketStatus::Open => "open",
                    TicketStatus::Pending => "pending",
                    TicketStatus::Hold => "hold",
                    TicketStatus::Solved => "solved",
                    TicketStatus::Closed => "closed",
                }),
            },
            FuzzEvent::Acknowledge(w, v) => Event::Acknowledge {
                by: w.name(),
                via: v.source(),
            },
            FuzzEvent::Escalate(w, v) => Event::Escalate {
                by: w.name(),
                reason: "the instance is down".into(),
                via: v.source(),
            },
            FuzzEvent::DeclareCrisis(w, v) => Event::DeclareCrisis {
                by: w.name(),
                via: v.source(),
            },
            FuzzEvent::Join(w, v) => Event::Join {
                by: w.name(),
                via: v.source(),
            },
            FuzzEvent::Resolve(w, v) => Event::Resolve {
                by: w.name(),
                via: v.source(),
            },
            FuzzEvent::Delivered(k, o) => Event::Delivered {
                effect: k.kind(),
                outcome: o.map(FuzzOutcome::outcome),
            },
            FuzzEvent::DeliveryFailed(k) => Event::DeliveryFailed {
                effect: k.kind(),
                error: "HTTP 500".into(),
            },
        }
    }
}

/// How much time passes before an event.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Gap {
    None,
    Millis(u16),
    Seconds(u8),
    Minutes(u8),
    Hours(u8),
    Days(u8),
}

impl Gap {
    fn millis(self) -> Millis {
        match self {
            Gap::None => 0,
            Gap::Millis(n) => Millis::from(n),
            Gap::Seconds(n) => Millis::from(n) * SEC,
            Gap::Minutes(n) => Millis::from(n) * MIN,
            Gap::Hours(n) => Millis::from(n) * HOUR,
            Gap::Days(n) => Millis::from(n) * DAY,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Scenario {
    policy: FuzzPolicy,
    /// Added to 2023-11-14T22:13:20Z.
    start: u32,
    steps: Vec<(Gap, FuzzEvent)>,
}

fn ticket(status: &str) -> Ticket {
    Ticket {
        id: "4711".into(),
        title: "Production is down".into(),
        priority: "urgent".into(),
        status: status.into(),
        tags: vec!["emergency".into()],
        url: "https://acme.zendesk.com/agent/tickets/4711".into(),
        requester_name: "Dana".into(),
        requester_email: "dana@customer.test".into(),
        organization: "Customer Corp".into(),
    }
}

fn check_state(inc: &Incident, now: Millis, event: &Event) {
    if *event == Event::Tick {
        assert!(
            inc.deadlines.next().is_none_or(|d| d > now),
            "after a Tick at {now} a due deadline is still armed: {:?}",
            inc.deadlines
        );
    }
    if inc.status == Status::Resolved {
        assert_eq!(inc.deadlines.ack, None, "resolved with an ack deadline");
        assert_eq!(
            inc.deadlines.crisis, None,
            "resolved with a crisis deadline"
        );
        assert_eq!(
            inc.deadlines.fallback, None,
            "resolved with a fallback deadline"
        );
    }
    if inc.status != Status::Triggered {
        assert_eq!(
            inc.deadlines.ack, None,
            "{:?} with an ack deadline",
            inc.status
        );
    }
}

fn check_counts(all: &[EffectKind]) {
    let count = |k: EffectKind| all.iter().filter(|e| **e == k).count();
    assert!(
        count(EffectKind::PagerdutyTrigger) <= 1,
        "a second page: {all:?}"
    );
    assert!(
        count(EffectKind::Email) <= 1,
        "a second fallback e-mail: {all:?}"
    );
    assert!(
        count(EffectKind::CreateDoc) <= 1,
        "a second crisis doc: {all:?}"
    );
    assert!(count(EffectKind::ShareDoc) <= 1, "a second share: {all:?}");
    assert!(
        count(EffectKind::DeprecateDoc) <= 1,
        "a second deprecation: {all:?}"
    );
}

fuzz_target!(|s: Scenario| {
    let policy = s.policy.policy();
    let mut now: Millis = 1_700_000_000_000 + Millis::from(s.start);
    let open = Event::Ticket {
        ticket: ticket("new"),
    };
    let Decision::Apply { incident, effects } = apply(&policy, None, &open, now) else {
        panic!("an emergency ticket must open an incident");
    };
    let mut inc = incident;
    let mut all: Vec<EffectKind> = effects.iter().map(Effect::kind).collect();
    check_state(&inc, now, &open);
    check_counts(&all);

    for (gap, fuzz_event) in &s.steps {
        now += gap.millis();
        let event = fuzz_event.event();
        let before = inc.status;
        if let Decision::Apply { incident, effects } = apply(&policy, Some(&inc), &event, now) {
            for e in &effects {
                if e.kind() == EffectKind::PagerdutyEscalate && event == Event::Tick {
                    assert_eq!(
                        before,
                        Status::Triggered,
                        "a timer escalated an incident that was {before:?}"
                    );
                }
            }
            all.extend(effects.iter().map(Effect::kind));
            inc = incident;
        }
        check_state(&inc, now, &event);
        check_counts(&all);
    }
    assert_eq!(
        all.iter()
            .filter(|e| **e == EffectKind::PagerdutyTrigger)
            .count(),
        1,
        "one page per ticket"
    );
});

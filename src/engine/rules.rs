//! The lifecycle rules (DESIGN.md, "Incident lifecycle").

use std::time::Duration;

use super::*;
use crate::clock::rfc3339;

/// What the engine decided.
#[expect(
    clippy::large_enum_variant,
    reason = "returned once per event and consumed at once; boxing would only add an allocation"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do; the reason is logged and returned to the caller.
    Ignore(String),
    /// Persist `incident` and queue `effects`, atomically.
    Apply {
        /// The incident's new state.
        incident: Incident,
        /// What the outside world must be told.
        effects: Vec<Effect>,
    },
}

/// Applies one event to an incident (or to no incident, for a new ticket).
pub fn apply(policy: &Policy, current: Option<&Incident>, event: &Event, now: Millis) -> Decision {
    let Some(current) = current else {
        return match event {
            Event::Ticket { ticket } => open(policy, ticket, now),
            _ => Decision::Ignore("no such incident".into()),
        };
    };
    let mut step = Step {
        policy,
        inc: current.clone(),
        fx: Vec::new(),
        now,
    };
    match step.event(event) {
        Err(reason) => Decision::Ignore(reason),
        Ok(()) if step.inc == *current && step.fx.is_empty() => {
            Decision::Ignore("no change".into())
        }
        Ok(()) => Decision::Apply {
            incident: step.inc,
            effects: step.fx,
        },
    }
}

fn human(ms: Millis) -> String {
    humantime::format_duration(Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0)))
        .to_string()
}

/// At most `max` characters of `s`, with `…` when cut (PagerDuty limits a
/// summary to 1024 characters; timelines want one short line).
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn open(policy: &Policy, ticket: &Ticket, now: Millis) -> Decision {
    if !policy.is_emergency(ticket) {
        return Decision::Ignore(format!(
            "ticket {} is not an emergency (priority {:?}, tags {:?})",
            ticket.id, ticket.priority, ticket.tags
        ));
    }
    if ticket.is_done() {
        return Decision::Ignore(format!("ticket {} is already {}", ticket.id, ticket.status));
    }
    let summary = truncate(
        &format!(
            "Emergency ticket #{}: {} ({})",
            ticket.id,
            ticket.title,
            ticket.customer()
        ),
        1024,
    );
    let incident = Incident {
        id: 0,
        dedup_key: Incident::dedup_key_for(&ticket.id),
        ticket: ticket.clone(),
        status: Status::Triggered,
        opened_at: now,
        level: 1,
        acked: None,
        resolved: None,
        responders: Vec::new(),
        deadlines: Deadlines {
            ack: Some(now + policy.ack_timeout),
            crisis: Some(now + policy.crisis_after),
            fallback: policy.fallback_after.map(|f| now + f),
            deprecate: None,
        },
        page_pending: true,
        fallback_sent: false,
        pagerduty_id: None,
        crisis: None,
        last_error: None,
    };
    Decision::Apply {
        incident,
        effects: vec![Effect::PagerdutyTrigger { summary }],
    }
}

/// One event being applied: the incident as it becomes, and the effects.
struct Step<'a> {
    policy: &'a Policy,
    inc: Incident,
    fx: Vec<Effect>,
    now: Millis,
}

impl Step<'_> {
    fn event(&mut self, event: &Event) -> Result<(), String> {
        match event {
            Event::Ticket { ticket } => self.ticket(ticket),
            Event::Acknowledge { by, via } => self.acknowledge(by, *via),
            Event::Escalate { by, reason, via } => self.escalate(by, reason, *via),
            Event::DeclareCrisis { by, .. } => {
                self.require_open()?;
                if self.inc.crisis.is_some() {
                    return Err("a crisis is already declared".into());
                }
                // Declare before counting the declarer as a responder, or the
                // count could declare a second crisis (found by proptest).
                self.declare(format!("declared by {by}"));
                self.add_responder(by);
                Ok(())
            }
            Event::Join { by, .. } => {
                self.require_open()?;
                if self.inc.responders.contains(by) {
                    return Err(format!("{by} is already involved"));
                }
                self.thread_update(&format!("{by} joined the response."));
                self.add_responder(by);
                Ok(())
            }
            Event::Resolve { by, via } => self.resolve(by, *via),
            Event::Tick => self.tick(),
            Event::Delivered { effect, outcome } => {
                self.delivered(*effect, outcome.as_ref());
                Ok(())
            }
            Event::DeliveryFailed { effect, error } => {
                self.inc.last_error = Some(format!("{effect:?} failed: {error}"));
                if effect.is_page() {
                    self.fallback_email(&format!("PagerDuty refused the page: {error}"));
                }
                Ok(())
            }
        }
    }

    fn require_open(&self) -> Result<(), String> {
        if self.inc.is_open() {
            Ok(())
        } else {
            Err("the incident is resolved".into())
        }
    }

    fn ticket(&mut self, ticket: &Ticket) -> Result<(), String> {
        if ticket.is_done() && self.inc.is_open() {
            self.inc.ticket.status = ticket.status.clone();
            return self.resolve("Zendesk (ticket solved)", Source::Zendesk);
        }
        // Seen again (a retried webhook, the poller): nothing new. The stored
        // ticket is kept as first seen, since a poll result carries less
        // (no requester) than the webhook did.
        Err(format!(
            "ticket {} already has incident {}",
            ticket.id, self.inc.id
        ))
    }

    fn acknowledge(&mut self, by: &str, via: Source) -> Result<(), String> {
        self.require_open()?;
        if self.inc.status == Status::Acknowledged {
            if self.inc.responders.iter().any(|r| r == by) {
                return Err(format!("already acknowledged by {by}"));
            }
            // A second person acknowledging is a second responder.
            self.thread_update(&format!("{by} is on it too."));
            self.add_responder(by);
            return Ok(());
        }
        self.inc.status = Status::Acknowledged;
        self.inc.acked = Some((by.to_string(), self.now));
        self.inc.deadlines.ack = None;
        self.inc.deadlines.fallback = None;
        self.inc.page_pending = false;
        let channels = join_or(&self.policy.contact_channels);
        let requester = if self.inc.ticket.requester_name.is_empty() {
            "there"
        } else {
            &self.inc.ticket.requester_name
        };
        let body = self
            .policy
            .ack_comment
            .replace("{engineer}", by)
            .replace("{channels}", &channels)
            .replace("{requester}", requester)
            .replace("{ticket}", &self.inc.ticket.id);
        self.fx.push(Effect::ZendeskComment { body, public: true });
        if via != Source::Pagerduty {
            self.fx.push(Effect::PagerdutyAcknowledge);
        }
        self.thread_update(&format!("Acknowledged by {by}."));
        self.add_responder(by);
        Ok(())
    }

    fn escalate(&mut self, by: &str, reason: &str, via: Source) -> Result<(), String> {
        self.require_open()?;
        let note = if via == Source::Timer {
            reason.to_string()
        } else {
            format!("Escalated to level 2 by {by}: {reason}")
        };
        self.inc.level = 2;
        self.inc.deadlines.ack = None;
        self.fx.push(Effect::PagerdutyEscalate {
            level: 2,
            note: note.clone(),
        });
        self.page_sent();
        self.thread_update(&note);
        if via != Source::Timer {
            self.add_responder(by);
        }
        Ok(())
    }

    fn resolve(&mut self, by: &str, via: Source) -> Result<(), String> {
        self.require_open()?;
        self.inc.status = Status::Resolved;
        self.inc.resolved = Some((by.to_string(), self.now));
        self.inc.deadlines = Deadlines::default();
        self.inc.page_pending = false;
        if via != Source::Pagerduty {
            self.fx.push(Effect::PagerdutyResolve);
        }
        if let Some(crisis) = &self.inc.crisis {
            if crisis.doc.is_some() && !crisis.deprecated {
                self.inc.deadlines.deprecate = Some(self.now + self.policy.doc_deprecate_after);
            }
            let people = if self.inc.responders.is_empty() {
                "everyone involved".to_string()
            } else {
                self.inc.responders.join(", ")
            };
            let text = format!(
                ":white_check_mark: Resolved by {by}. After-crisis checklist:\n\
                 1. Move the pertinent know-how from the crisis doc into documentation, handbooks or issue trackers.\n\
                 2. Deprecate the crisis doc as soon as possible (pagerd marks it deprecated in {}).\n\
                 3. Schedule a hand-off call for everyone involved: {people}.",
                human(self.policy.doc_deprecate_after)
            );
            self.thread_update(&text);
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), String> {
        let now = self.now;
        let due = |d: Option<Millis>| d.is_some_and(|t| t <= now);
        let d = self.inc.deadlines.clone();
        if !(due(d.ack) || due(d.crisis) || due(d.fallback) || due(d.deprecate)) {
            return Err("nothing is due yet".into());
        }
        if due(d.ack) {
            self.inc.deadlines.ack = None;
            if self.inc.status == Status::Triggered {
                let note = format!(
                    "No acknowledgement within {}: pagerd escalated to level 2.",
                    human(self.policy.ack_timeout)
                );
                self.escalate("pagerd", &note, Source::Timer)?;
            }
        }
        if due(d.fallback) {
            self.inc.deadlines.fallback = None;
            if self.inc.page_pending {
                let waited = human(self.policy.fallback_after.unwrap_or_default());
                self.fallback_email(&format!("PagerDuty has not accepted the page for {waited}"));
            }
        }
        if due(d.crisis) {
            self.inc.deadlines.crisis = None;
            if self.inc.is_open() && self.inc.crisis.is_none() {
                self.declare(format!(
                    "unresolved after {}",
                    human(self.policy.crisis_after)
                ));
            }
        }
        if due(d.deprecate) {
            self.inc.deadlines.deprecate = None;
            self.deprecate();
        }
        Ok(())
    }

    fn delivered(&mut self, effect: EffectKind, outcome: Option<&Outcome>) {
        if effect.is_page() {
            self.inc.page_pending = false;
            self.inc.deadlines.fallback = None;
            self.inc.last_error = None;
        }
        match outcome {
            Some(Outcome::Doc { doc }) => {
                let Some(crisis) = self.inc.crisis.as_mut() else {
                    return;
                };
                if crisis.doc.is_some() {
                    return;
                }
                crisis.doc = Some(doc.clone());
                self.fx.push(Effect::ShareDoc);
                self.announce();
                let link = &doc.url;
                self.fx.push(Effect::ZendeskComment {
                    body: format!(
                        "We have opened a shared crisis document for this emergency, where our engineers \
                         record what they find and do. You are welcome to follow and contribute: {link}"
                    ),
                    public: true,
                });
                self.fx.push(Effect::PagerdutyNote {
                    text: format!("Crisis document: {link}"),
                });
            }
            Some(Outcome::PagerdutyIncident { id }) => self.inc.pagerduty_id = Some(id.clone()),
            Some(Outcome::SlackThread { channel, thread }) => {
                if let Some(crisis) = self.inc.crisis.as_mut() {
                    crisis.threads.insert(channel.clone(), thread.clone());
                }
            }
            None => {}
        }
    }

    /// Queues the e-mail to level 2, once per incident, when e-mail is set up.
    fn fallback_email(&mut self, why: &str) {
        if self.policy.fallback_after.is_none() || self.inc.fallback_sent || !self.inc.is_open() {
            return;
        }
        self.inc.fallback_sent = true;
        let t = &self.inc.ticket;
        self.fx.push(Effect::Email {
            subject: truncate(&format!("[pagerd] EMERGENCY ticket #{}: {} ({})", t.id, t.title, t.customer()), 200),
            body: format!(
                "pagerd could not page through PagerDuty: {why}.\n\n\
                 You are level 2 for this emergency. Please take it now.\n\n\
                 Ticket:    #{} {}\nLink:      {}\nCustomer:  {} <{}>\nOpened:    {}\nIncident:  pagerd {}\n\n\
                 Acknowledge with: pagerd incidents ack {}\n",
                t.id,
                t.title,
                t.url,
                t.customer(),
                t.requester_email,
                rfc3339(self.inc.opened_at),
                self.inc.id,
                self.inc.id,
            ),
        });
    }

    /// A page or escalation was queued: arm the fallback timer for it.
    fn page_sent(&mut self) {
        self.inc.page_pending = true;
        if let Some(after) = self.policy.fallback_after
            && !self.inc.fallback_sent
        {
            self.inc.deadlines.fallback = Some(self.now + after);
        }
    }

    fn add_responder(&mut self, who: &str) {
        if who.is_empty() || self.inc.responders.iter().any(|r| r == who) {
            return;
        }
        self.inc.responders.push(who.to_string());
        let n = self.inc.responders.len();
        if n >= self.policy.crisis_responders && self.inc.crisis.is_none() && self.inc.is_open() {
            self.declare(format!("{n} people are involved"));
        }
    }

    fn declare(&mut self, reason: String) {
        self.inc.deadlines.crisis = None;
        self.inc.crisis = Some(Crisis {
            declared_at: self.now,
            reason: reason.clone(),
            doc: None,
            threads: Default::default(),
            deprecated: false,
        });
        if self.policy.crisis_docs {
            let t = &self.inc.ticket;
            self.fx.push(Effect::CreateDoc {
                title: truncate(
                    &format!("Crisis: #{} {} ({})", t.id, t.title, t.customer()),
                    200,
                ),
                body: self.doc_body(),
            });
        } else {
            // No doc to wait for: announce right away.
            self.announce();
            self.fx.push(Effect::PagerdutyNote {
                text: format!("Crisis declared: {reason}"),
            });
        }
    }

    fn announce(&mut self) {
        let t = &self.inc.ticket;
        let Some(crisis) = &self.inc.crisis else {
            return;
        };
        let doc = crisis
            .doc
            .as_ref()
            .map(|d| format!("\n*Crisis doc:* {}", d.url))
            .unwrap_or_default();
        let on_it = if self.inc.responders.is_empty() {
            "nobody has acknowledged yet".to_string()
        } else {
            self.inc.responders.join(", ")
        };
        let text = format!(
            ":rotating_light: *Crisis* for {}: {} (ticket <{}|#{}>)\n*Why:* {}\n*On it:* {}{}",
            t.customer(),
            t.title,
            t.url,
            t.id,
            crisis.reason,
            on_it,
            doc
        );
        for channel in &self.policy.slack_channels {
            self.fx.push(Effect::SlackPost {
                channel: channel.clone(),
                text: text.clone(),
                buttons: true,
            });
        }
    }

    /// A line in each crisis thread, when a crisis has been announced.
    fn thread_update(&mut self, text: &str) {
        if self.inc.crisis.is_none() {
            return;
        }
        for channel in &self.policy.slack_channels {
            self.fx.push(Effect::SlackPost {
                channel: channel.clone(),
                text: text.to_string(),
                buttons: false,
            });
        }
    }

    fn deprecate(&mut self) {
        let Some(crisis) = self.inc.crisis.as_mut() else {
            return;
        };
        if crisis.doc.is_none() || crisis.deprecated {
            return;
        }
        crisis.deprecated = true;
        self.fx.push(Effect::DeprecateDoc {
            notice: format!(
                "DEPRECATED: this crisis document is kept for the record only. The incident was resolved on {}; \
                 its know-how now lives in our documentation, handbooks and issue trackers.",
                self.inc.resolved.as_ref().map(|(_, at)| rfc3339(*at)).unwrap_or_default()
            ),
        });
        self.thread_update(":card_file_box: The crisis doc is now marked deprecated.");
    }

    fn doc_body(&self) -> String {
        let t = &self.inc.ticket;
        let acked = match &self.inc.acked {
            Some((by, at)) => format!("{} acknowledged by {by}", rfc3339(*at)),
            None => "not acknowledged yet".to_string(),
        };
        let people = if self.inc.responders.is_empty() {
            "(nobody yet)".into()
        } else {
            self.inc.responders.join(", ")
        };
        format!(
            "Crisis: emergency ticket #{id} — {title}\n\n\
             Customer: {customer} ({name} <{email}>)\nTicket: {url}\nPagerDuty key: {key}\n\n\
             Timeline so far\n{opened} opened, paged level 1\n{acked}\nEscalation level: {level}\n{declared} crisis declared: {reason}\n\n\
             Who is on it\n{people}\n\n\
             Status and impact\n(what is down, for whom, since when)\n\n\
             Findings and actions\n(newest first: time, who, what)\n\n\
             Hand-off\n(after resolution: move the know-how into docs, deprecate this doc, hold a hand-off call)\n",
            id = t.id,
            title = t.title,
            customer = t.customer(),
            name = t.requester_name,
            email = t.requester_email,
            url = t.url,
            key = self.inc.dedup_key,
            opened = rfc3339(self.inc.opened_at),
            level = self.inc.level,
            declared = rfc3339(self.now),
            reason = self
                .inc
                .crisis
                .as_ref()
                .map(|c| c.reason.as_str())
                .unwrap_or_default(),
        )
    }
}

/// "Phone, Skype, WebEx or Hangouts".
fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;
    const T0: Millis = 1_800_000_000_000;

    fn ticket(id: &str) -> Ticket {
        Ticket {
            id: id.into(),
            title: "Production instance down".into(),
            priority: "urgent".into(),
            status: "new".into(),
            tags: vec!["premium".into()],
            url: "https://acme.zendesk.com/agent/tickets/4711".into(),
            requester_name: "Dana".into(),
            requester_email: "dana@customer.test".into(),
            organization: "Customer Corp".into(),
        }
    }

    fn crisis_policy() -> Policy {
        Policy {
            fallback_after: Some(2 * MIN),
            slack_channels: vec!["#infrastructure".into(), "#general".into()],
            crisis_docs: true,
            ..Policy::default()
        }
    }

    fn applied(d: Decision) -> (Incident, Vec<Effect>) {
        match d {
            Decision::Apply { incident, effects } => (incident, effects),
            Decision::Ignore(why) => panic!("expected Apply, got Ignore({why})"),
        }
    }

    fn opened(p: &Policy) -> Incident {
        let (mut inc, _) = applied(apply(
            p,
            None,
            &Event::Ticket {
                ticket: ticket("4711"),
            },
            T0,
        ));
        inc.id = 1;
        inc
    }

    fn step(p: &Policy, inc: &Incident, ev: Event, now: Millis) -> (Incident, Vec<Effect>) {
        applied(apply(p, Some(inc), &ev, now))
    }

    fn kinds(fx: &[Effect]) -> Vec<EffectKind> {
        fx.iter().map(Effect::kind).collect()
    }

    fn ack(by: &str, via: Source) -> Event {
        Event::Acknowledge { by: by.into(), via }
    }

    #[test]
    fn emergency_ticket_pages_and_arms_ack_and_crisis_deadlines() {
        let p = Policy::default();
        let (inc, fx) = applied(apply(
            &p,
            None,
            &Event::Ticket {
                ticket: ticket("4711"),
            },
            T0,
        ));
        assert_eq!(inc.dedup_key, "zendesk-4711");
        assert_eq!(inc.deadlines.ack, Some(T0 + 5 * MIN));
        assert_eq!(inc.deadlines.crisis, Some(T0 + 60 * MIN));
        assert_eq!(inc.deadlines.fallback, None, "no e-mail configured");
        assert_eq!(
            fx,
            vec![Effect::PagerdutyTrigger {
                summary: "Emergency ticket #4711: Production instance down (Customer Corp)".into()
            }]
        );
    }

    #[test]
    fn emergency_by_tag_and_not_by_priority_alone() {
        let p = Policy::default();
        let mut t = ticket("1");
        t.priority = "normal".into();
        assert!(matches!(
            apply(&p, None, &Event::Ticket { ticket: t.clone() }, T0),
            Decision::Ignore(_)
        ));
        t.tags.push("emergency".into());
        assert!(matches!(
            apply(&p, None, &Event::Ticket { ticket: t }, T0),
            Decision::Apply { .. }
        ));
    }

    #[test]
    fn solved_ticket_opens_nothing() {
        let mut t = ticket("1");
        t.status = "solved".into();
        assert!(matches!(
            apply(&Policy::default(), None, &Event::Ticket { ticket: t }, T0),
            Decision::Ignore(_)
        ));
    }

    #[test]
    fn same_ticket_again_pages_nobody() {
        let p = Policy::default();
        let inc = opened(&p);
        let d = apply(
            &p,
            Some(&inc),
            &Event::Ticket {
                ticket: ticket("4711"),
            },
            T0 + 1000,
        );
        assert!(matches!(d, Decision::Ignore(_)));
    }

    #[test]
    fn no_ack_by_deadline_escalates_to_level_two_once() {
        let p = Policy::default();
        let inc = opened(&p);
        assert!(matches!(
            apply(&p, Some(&inc), &Event::Tick, T0 + 5 * MIN - 1),
            Decision::Ignore(_)
        ));
        let (inc, fx) = step(&p, &inc, Event::Tick, T0 + 5 * MIN);
        assert_eq!(inc.level, 2);
        assert_eq!(inc.deadlines.ack, None);
        assert!(
            matches!(&fx[..], [Effect::PagerdutyEscalate { level: 2, note }] if note.contains("5m"))
        );
        // The crisis deadline is still armed; a tick in between does nothing.
        assert!(matches!(
            apply(&p, Some(&inc), &Event::Tick, T0 + 6 * MIN),
            Decision::Ignore(_)
        ));
    }

    #[test]
    fn ack_disarms_escalation_and_asks_the_customer_how_to_reach_them() {
        let p = Policy::default();
        let inc = opened(&p);
        let (inc, fx) = step(&p, &inc, ack("Ana", Source::Pagerduty), T0 + MIN);
        assert_eq!(inc.status, Status::Acknowledged);
        assert_eq!(inc.deadlines.ack, None);
        let Effect::ZendeskComment { body, public } = &fx[0] else {
            panic!("{fx:?}")
        };
        assert!(public);
        assert!(
            body.contains("Ana from our engineering team has your case"),
            "{body}"
        );
        assert!(body.contains("Phone, Skype, WebEx or Hangouts"), "{body}");
        assert!(body.starts_with("Hello Dana"), "{body}");
        assert_eq!(
            fx.len(),
            1,
            "an ack from PagerDuty is not echoed back to it"
        );
        // Past the old ack deadline nothing escalates.
        assert!(matches!(
            apply(&p, Some(&inc), &Event::Tick, T0 + 5 * MIN),
            Decision::Ignore(_)
        ));
    }

    #[test]
    fn ack_from_cli_also_acknowledges_in_pagerduty() {
        let p = Policy::default();
        let (_, fx) = step(&p, &opened(&p), ack("ana", Source::Cli), T0 + MIN);
        assert_eq!(
            kinds(&fx),
            vec![EffectKind::ZendeskComment, EffectKind::PagerdutyAcknowledge]
        );
    }

    #[test]
    fn resolve_disarms_every_timer() {
        let p = crisis_policy();
        let inc = opened(&p);
        let (inc, fx) = step(
            &p,
            &inc,
            Event::Resolve {
                by: "ana".into(),
                via: Source::Cli,
            },
            T0 + MIN,
        );
        assert_eq!(inc.deadlines, Deadlines::default());
        assert_eq!(kinds(&fx), vec![EffectKind::PagerdutyResolve]);
        assert!(matches!(
            apply(&p, Some(&inc), &Event::Tick, T0 + 100 * MIN),
            Decision::Ignore(_)
        ));
        assert!(matches!(
            apply(&p, Some(&inc), &ack("x", Source::Cli), T0 + 2 * MIN),
            Decision::Ignore(_)
        ));
    }

    #[test]
    fn zendesk_solved_resolves() {
        let p = Policy::default();
        let mut t = ticket("4711");
        t.status = "solved".into();
        let (inc, fx) = step(&p, &opened(&p), Event::Ticket { ticket: t }, T0 + MIN);
        assert_eq!(inc.status, Status::Resolved);
        assert_eq!(kinds(&fx), vec![EffectKind::PagerdutyResolve]);
    }

    #[test]
    fn manual_escalation_records_who_and_why() {
        let p = Policy::default();
        let ev = Event::Escalate {
            by: "ana".into(),
            reason: "cluster is read-only".into(),
            via: Source::Cli,
        };
        let (inc, fx) = step(&p, &opened(&p), ev, T0 + MIN);
        assert_eq!(inc.level, 2);
        assert_eq!(inc.responders, vec!["ana".to_string()]);
        assert!(
            matches!(&fx[..], [Effect::PagerdutyEscalate { level: 2, note }] if note == "Escalated to level 2 by ana: cluster is read-only")
        );
    }

    #[test]
    fn crisis_after_an_hour_creates_the_doc_then_shares_and_announces() {
        let p = crisis_policy();
        let inc = opened(&p);
        let (inc, _) = step(&p, &inc, ack("Ana", Source::Pagerduty), T0 + MIN);
        let (inc, fx) = step(&p, &inc, Event::Tick, T0 + 60 * MIN);
        assert_eq!(
            inc.crisis.as_ref().map(|c| c.reason.as_str()),
            Some("unresolved after 1h")
        );
        assert_eq!(kinds(&fx), vec![EffectKind::CreateDoc]);
        let doc = Doc {
            id: "d1".into(),
            url: "https://docs.example/d1".into(),
        };
        let ev = Event::Delivered {
            effect: EffectKind::CreateDoc,
            outcome: Some(Outcome::Doc { doc }),
        };
        let (inc, fx) = step(&p, &inc, ev.clone(), T0 + 61 * MIN);
        assert_eq!(
            kinds(&fx),
            vec![
                EffectKind::ShareDoc,
                EffectKind::SlackPost,
                EffectKind::SlackPost,
                EffectKind::ZendeskComment,
                EffectKind::PagerdutyNote
            ]
        );
        let Effect::SlackPost { text, buttons, .. } = &fx[1] else {
            panic!()
        };
        assert!(
            *buttons && text.contains("https://docs.example/d1") && text.contains("Ana"),
            "{text}"
        );
        // The same delivery reported twice creates nothing new.
        assert!(matches!(
            apply(&p, Some(&inc), &ev, T0 + 62 * MIN),
            Decision::Ignore(_)
        ));
    }

    #[test]
    fn second_responder_declares_a_crisis() {
        let p = crisis_policy();
        let (inc, _) = step(&p, &opened(&p), ack("Ana", Source::Pagerduty), T0 + MIN);
        assert!(inc.crisis.is_none());
        let (inc, fx) = step(
            &p,
            &inc,
            Event::Join {
                by: "Bo".into(),
                via: Source::Slack,
            },
            T0 + 2 * MIN,
        );
        assert_eq!(
            inc.crisis.as_ref().map(|c| c.reason.as_str()),
            Some("2 people are involved")
        );
        assert_eq!(kinds(&fx), vec![EffectKind::CreateDoc]);
        // The crisis deadline is spent: the hour passing declares nothing twice.
        assert_eq!(inc.deadlines.crisis, None);
    }

    #[test]
    fn declaring_a_crisis_as_the_second_responder_creates_one_doc() {
        let p = crisis_policy();
        let (inc, _) = step(&p, &opened(&p), ack("bo", Source::Pagerduty), T0);
        let ev = Event::DeclareCrisis { by: "ana".into(), via: Source::Cli };
        let (inc, fx) = step(&p, &inc, ev, T0 + 1);
        assert_eq!(kinds(&fx), vec![EffectKind::CreateDoc]);
        assert_eq!(inc.crisis.map(|c| c.reason), Some("declared by ana".to_string()));
    }

    #[test]
    fn crisis_without_google_announces_at_once() {
        let p = Policy {
            crisis_docs: false,
            ..crisis_policy()
        };
        let ev = Event::DeclareCrisis {
            by: "ana".into(),
            via: Source::Cli,
        };
        let (_, fx) = step(&p, &opened(&p), ev, T0 + MIN);
        assert_eq!(
            kinds(&fx),
            vec![
                EffectKind::SlackPost,
                EffectKind::SlackPost,
                EffectKind::PagerdutyNote
            ]
        );
    }

    #[test]
    fn resolution_posts_the_checklist_and_later_deprecates_the_doc() {
        let p = crisis_policy();
        let (inc, _) = step(
            &p,
            &opened(&p),
            Event::DeclareCrisis {
                by: "ana".into(),
                via: Source::Cli,
            },
            T0,
        );
        let doc = Doc {
            id: "d1".into(),
            url: "u".into(),
        };
        let (inc, _) = step(
            &p,
            &inc,
            Event::Delivered {
                effect: EffectKind::CreateDoc,
                outcome: Some(Outcome::Doc { doc }),
            },
            T0,
        );
        let thread = SlackThread {
            channel_id: "C1".into(),
            ts: "1.2".into(),
        };
        let (inc, _) = step(
            &p,
            &inc,
            Event::Delivered {
                effect: EffectKind::SlackPost,
                outcome: Some(Outcome::SlackThread {
                    channel: "#general".into(),
                    thread,
                }),
            },
            T0,
        );
        assert_eq!(inc.crisis.as_ref().map(|c| c.threads.len()), Some(1));
        let (inc, fx) = step(
            &p,
            &inc,
            Event::Resolve {
                by: "ana".into(),
                via: Source::Pagerduty,
            },
            T0 + 10 * MIN,
        );
        let texts: Vec<&str> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::SlackPost { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts.len(), 2);
        assert!(
            texts[0].contains("know-how")
                && texts[0].contains("hand-off call")
                && texts[0].contains("7days")
        );
        assert_eq!(
            inc.deadlines.deprecate,
            Some(T0 + 10 * MIN + 7 * 24 * 60 * MIN)
        );
        let (inc, fx) = step(&p, &inc, Event::Tick, T0 + 10 * MIN + 7 * 24 * 60 * MIN);
        assert!(inc.crisis.as_ref().is_some_and(|c| c.deprecated));
        assert_eq!(
            kinds(&fx),
            vec![
                EffectKind::DeprecateDoc,
                EffectKind::SlackPost,
                EffectKind::SlackPost
            ]
        );
    }

    #[test]
    fn fallback_email_when_pagerduty_has_not_taken_the_page() {
        let p = crisis_policy();
        let inc = opened(&p);
        assert_eq!(inc.deadlines.fallback, Some(T0 + 2 * MIN));
        let (inc, fx) = step(&p, &inc, Event::Tick, T0 + 2 * MIN);
        assert_eq!(kinds(&fx), vec![EffectKind::Email]);
        assert!(inc.fallback_sent);
        // Once only, even when a later escalation also stalls.
        let (inc, fx) = step(&p, &inc, Event::Tick, T0 + 5 * MIN);
        assert_eq!(kinds(&fx), vec![EffectKind::PagerdutyEscalate]);
        assert_eq!(inc.deadlines.fallback, None);
    }

    #[test]
    fn delivered_page_disarms_the_fallback() {
        let p = crisis_policy();
        let ev = Event::Delivered {
            effect: EffectKind::PagerdutyTrigger,
            outcome: None,
        };
        let (inc, _) = step(&p, &opened(&p), ev, T0 + 100);
        assert!(!inc.page_pending);
        assert_eq!(inc.deadlines.fallback, None);
    }

    #[test]
    fn permanent_page_failure_sends_the_fallback_at_once() {
        let p = crisis_policy();
        let ev = Event::DeliveryFailed {
            effect: EffectKind::PagerdutyTrigger,
            error: "400 invalid routing key".into(),
        };
        let (inc, fx) = step(&p, &opened(&p), ev, T0 + 100);
        assert_eq!(kinds(&fx), vec![EffectKind::Email]);
        assert!(
            inc.last_error
                .as_deref()
                .is_some_and(|e| e.contains("invalid routing key"))
        );
    }

    #[test]
    fn action_verbs_map_to_events() {
        let e = Event::action("escalate", "ana".into(), " db down ", Source::Slack);
        assert!(matches!(e, Some(Event::Escalate { reason, .. }) if reason == "db down"));
        let e = Event::action("escalate", "ana".into(), "", Source::Cli);
        assert!(matches!(e, Some(Event::Escalate { reason, .. }) if reason == "escalated by hand"));
        assert!(matches!(
            Event::action("ack", "a".into(), "", Source::Cli),
            Some(Event::Acknowledge { .. })
        ));
        assert!(Event::action("dance", "a".into(), "", Source::Cli).is_none());
    }

    #[test]
    fn join_or_reads_naturally() {
        assert_eq!(join_or(&["A".into()]), "A");
        assert_eq!(join_or(&["A".into(), "B".into(), "C".into()]), "A, B or C");
    }
}

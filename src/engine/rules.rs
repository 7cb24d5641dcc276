//! The lifecycle rules (DESIGN.md, "Incident lifecycle").

use std::time::Duration;

use super::*;
use crate::clock::rfc3339;
use crate::render;

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
            Event::Ticket { ticket, .. } => open(policy, ticket, now, 1),
            _ => Decision::Ignore("no such incident".into()),
        };
    };
    if let Event::Ticket { ticket, polled } = event
        && reopens(policy, current, ticket, *polled)
    {
        return open(policy, ticket, now, current.episode.saturating_add(1));
    }
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

/// Whether `ticket`, seen again after `current` was resolved, is a new
/// emergency: it is an unsolved emergency, and it was reopened (its incident
/// saw it solved) or updated since (a webhook; the poller alone does not
/// page again a ticket whose incident someone resolved in PagerDuty, Slack
/// or the CLI, or it would page on every round).
fn reopens(policy: &Policy, current: &Incident, ticket: &Ticket, polled: bool) -> bool {
    !current.is_open()
        && policy.is_emergency(ticket)
        && !ticket.is_done()
        && (current.ticket.is_done() || !polled)
}

/// The page's one line, shown on the phone.
fn summary(ticket: &Ticket) -> String {
    render::pagerduty_summary(&format!(
        "Emergency ticket #{}: {} ({})",
        ticket.id,
        ticket.title,
        ticket.customer()
    ))
}

/// Opens `episode` of the ticket's emergencies: the page goes out now; the
/// acknowledgement clock starts when PagerDuty accepts it.
fn open(policy: &Policy, ticket: &Ticket, now: Millis, episode: u32) -> Decision {
    if !policy.is_emergency(ticket) {
        return Decision::Ignore(format!(
            "ticket {} is not an emergency (priority {:?}, tags {:?})",
            ticket.id, ticket.priority, ticket.tags
        ));
    }
    if ticket.is_done() {
        return Decision::Ignore(format!("ticket {} is already {}", ticket.id, ticket.status));
    }
    let incident = Incident {
        id: 0,
        dedup_key: Incident::dedup_key_for(&ticket.id, episode),
        episode,
        ticket: ticket.clone(),
        status: Status::Triggered,
        opened_at: now,
        level: 1,
        acked: None,
        resolved: None,
        responders: Vec::new(),
        deadlines: Deadlines {
            ack: None,
            crisis: Some(now + policy.crisis_after),
            fallback: policy.fallback_after.map(|f| now + f),
            deprecate: None,
            lease: None,
        },
        page_pending: true,
        fallback_sent: false,
        pagerduty_id: None,
        crisis: None,
        last_error: None,
        paged_at: None,
        escalated_at: None,
        undeliverable: None,
    };
    Decision::Apply {
        effects: vec![Effect::Page {
            summary: summary(ticket),
        }],
        incident,
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
            Event::Ticket { ticket, .. } => self.ticket(ticket),
            Event::Acknowledge { by, via } => self.acknowledge(by, *via),
            Event::Escalate { by, reason, via } => self.escalate(by, reason, *via, None),
            Event::DeclareCrisis { by, .. } => {
                self.require_open()?;
                if self.inc.crisis.is_some() {
                    return Err("a crisis is already declared".into());
                }
                // Declare before counting the declarer as a responder, or the
                // count could declare a second crisis (found by proptest).
                self.declare(format!("declared by {}", by.name));
                self.add_responder(by);
                self.renew_lease();
                Ok(())
            }
            Event::Join { by, .. } => {
                self.require_open()?;
                if self.inc.responders.iter().any(|r| r.same(by)) {
                    return Err(format!("{by} is already involved"));
                }
                self.thread_update(&format!("{by} joined the response."));
                self.add_responder(by);
                self.renew_lease();
                Ok(())
            }
            Event::Progress { by, what, via } => self.progress(by, what, *via),
            Event::Resolve { by, via } => self.resolve(&by.name, *via),
            Event::Repage { by, .. } => self.repage(by),
            Event::Tick => self.tick(),
            Event::Delivered { effect, outcome } => {
                self.delivered(*effect, outcome.as_ref());
                Ok(())
            }
            Event::DeliveryFailed { effect, error } => {
                self.inc.last_error = Some(format!("{effect:?} failed: {error}"));
                if *effect == EffectKind::BookHandoff {
                    self.handoff_failed(error);
                }
                if effect.is_page() {
                    // Nobody was paged: shown as NOT PAGED and counted until
                    // the operator re-sends it (`pagerd incidents repage`).
                    if self.inc.undeliverable.is_none() {
                        self.inc.undeliverable = Some(format!("{effect:?} failed: {error}"));
                    }
                    self.inc.page_pending = false;
                    self.inc.deadlines.fallback = None;
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
        if ticket.is_done() && !self.inc.ticket.is_done() {
            // Resolved elsewhere first, solved now: remembered, so that a
            // reopening pages again even when only the poller sees it.
            self.inc.ticket.status = ticket.status.clone();
            return Ok(());
        }
        if !self.inc.is_open() {
            return Err(format!(
                "ticket {}: incident {} is resolved; the ticket pages again when it is reopened or updated as an emergency",
                ticket.id, self.inc.id
            ));
        }
        // Seen again (a retried webhook, the poller): nothing new. The stored
        // ticket is kept as first seen, since a poll result carries less
        // (no requester) than the webhook did.
        Err(format!(
            "ticket {} already has incident {}",
            ticket.id, self.inc.id
        ))
    }

    fn acknowledge(&mut self, by: &Who, via: Source) -> Result<(), String> {
        self.require_open()?;
        if self.inc.status == Status::Acknowledged {
            if self.inc.responders.iter().any(|r| r.same(by)) {
                if self.policy.ack_lease.is_some() {
                    // Acknowledging again (after a re-page) renews the lease.
                    self.renew_lease();
                    return Ok(());
                }
                return Err(format!("already acknowledged by {by}"));
            }
            // A second person acknowledging is a second responder.
            self.thread_update(&format!("{by} is on it too."));
            self.add_responder(by);
            self.renew_lease();
            return Ok(());
        }
        self.inc.status = Status::Acknowledged;
        self.inc.acked = Some((by.name.clone(), self.now));
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
            .replace("{engineer}", &render::zendesk(&by.name))
            .replace("{channels}", &channels)
            .replace("{requester}", &render::zendesk(requester))
            .replace("{ticket}", &self.inc.ticket.id);
        self.fx.push(Effect::TicketComment { body, public: true });
        if via != Source::Pagerduty {
            self.fx.push(Effect::PageAcknowledge);
        }
        self.thread_update(&format!("Acknowledged by {by}."));
        self.add_responder(by);
        self.renew_lease();
        Ok(())
    }

    /// A responder's progress note: renews the lease, and is passed on to
    /// PagerDuty (unless it came from there) and the crisis threads.
    fn progress(&mut self, by: &Who, what: &str, via: Source) -> Result<(), String> {
        self.require_open()?;
        let what = what.trim();
        if what.is_empty() && via != Source::Pagerduty {
            return Err("say what the progress is: the note is empty".into());
        }
        let line = if what.is_empty() {
            format!("{by} added a note in PagerDuty.")
        } else {
            format!("Progress from {by}: {what}")
        };
        if via != Source::Pagerduty {
            self.fx.push(Effect::PageNote {
                text: render::pagerduty_note(&line),
            });
        }
        self.thread_update(&line);
        self.renew_lease();
        Ok(())
    }

    /// Escalates to level 2; `due` is the acknowledgement deadline when the
    /// timer does it.
    fn escalate(
        &mut self,
        by: &Who,
        reason: &str,
        via: Source,
        due: Option<Millis>,
    ) -> Result<(), String> {
        self.require_open()?;
        let note = if via == Source::Timer {
            reason.to_string()
        } else {
            format!("Escalated to level 2 by {by}: {reason}")
        };
        self.inc.level = 2;
        self.inc.deadlines.ack = None;
        self.fx.push(Effect::PageEscalate {
            level: 2,
            note: render::pagerduty_note(&note),
            due,
        });
        self.page_sent();
        self.thread_update(&note);
        if via != Source::Timer {
            self.add_responder(by);
            self.renew_lease();
        }
        Ok(())
    }

    /// Re-sends what PagerDuty refused for good (the page, and the
    /// escalation waiting on it) once the operator has fixed the cause.
    fn repage(&mut self, by: &Who) -> Result<(), String> {
        self.require_open()?;
        let Some(why) = self.inc.undeliverable.take() else {
            return Err("nothing to re-send: PagerDuty has not refused the page".into());
        };
        if self.inc.paged_at.is_none() {
            self.fx.push(Effect::Page {
                summary: summary(&self.inc.ticket),
            });
        }
        if self.inc.level >= 2 && self.inc.escalated_at.is_none() {
            self.fx.push(Effect::PageEscalate {
                level: 2,
                note: render::pagerduty_note(&format!(
                    "Escalated to level 2; re-sent by {} after PagerDuty refused it ({why}).",
                    by.name
                )),
                due: None,
            });
        }
        self.inc.last_error = None;
        self.page_sent();
        self.thread_update(&format!("{by} re-sent the page to PagerDuty."));
        Ok(())
    }

    fn resolve(&mut self, by: &str, via: Source) -> Result<(), String> {
        self.require_open()?;
        self.inc.status = Status::Resolved;
        self.inc.resolved = Some((by.to_string(), self.now));
        self.inc.deadlines = Deadlines::default();
        self.inc.page_pending = false;
        if via != Source::Pagerduty {
            self.fx.push(Effect::PageResolve);
        }
        if let Some(crisis) = &self.inc.crisis {
            if crisis.doc.is_some() && !crisis.deprecated {
                self.inc.deadlines.deprecate = Some(self.now + self.policy.doc_deprecate_after);
            }
            // Plain text: thread_update escapes it for Slack.
            let people = if self.inc.responders.is_empty() {
                "everyone involved".to_string()
            } else {
                names(&self.inc.responders).join(", ")
            };
            let text = format!(
                ":white_check_mark: Resolved by {by}. After-crisis checklist:\n\
                 1. Move the pertinent know-how from the crisis doc into documentation, handbooks or issue trackers.\n\
                 2. Deprecate the crisis doc as soon as possible (pagerd marks it deprecated in {}).\n\
                 3. {call} for everyone involved: {people}.",
                human(self.policy.doc_deprecate_after),
                call = if self.policy.handoff_after.is_some() {
                    "pagerd is booking the hand-off call"
                } else {
                    "Schedule a hand-off call"
                },
            );
            self.thread_update(&text);
            self.after_crisis();
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), String> {
        let now = self.now;
        let due = |d: Option<Millis>| d.is_some_and(|t| t <= now);
        if self.inc.deadlines.next().is_none_or(|t| t > now) {
            return Err("nothing is due yet".into());
        }
        // Each check reads the deadlines as the previous steps left them: an
        // escalation arms the fallback, which may be due at once
        // (`fallback_after = "0s"`; found by cargo fuzz).
        if due(self.inc.deadlines.ack) {
            let deadline = self.inc.deadlines.ack.take();
            if self.inc.status == Status::Triggered {
                let note = format!(
                    "No acknowledgement within {}: pagerd escalated to level 2.",
                    human(self.policy.ack_timeout)
                );
                self.escalate(&Who::named("pagerd"), &note, Source::Timer, deadline)?;
            }
        }
        if due(self.inc.deadlines.fallback) {
            self.inc.deadlines.fallback = None;
            if self.inc.page_pending {
                let waited = human(self.policy.fallback_after.unwrap_or_default());
                self.fallback_email(&format!("PagerDuty has not accepted the page for {waited}"));
            }
        }
        if due(self.inc.deadlines.crisis) {
            self.inc.deadlines.crisis = None;
            if self.inc.is_open() && self.inc.crisis.is_none() {
                self.declare(format!(
                    "unresolved after {}",
                    human(self.policy.crisis_after)
                ));
            }
        }
        if due(self.inc.deadlines.deprecate) {
            self.inc.deadlines.deprecate = None;
            self.deprecate();
        }
        if due(self.inc.deadlines.lease) {
            self.inc.deadlines.lease = None;
            self.lease_expired();
        }
        Ok(())
    }

    fn delivered(&mut self, effect: EffectKind, outcome: Option<&Outcome>) {
        if effect.is_page() {
            self.inc.page_pending = false;
            self.inc.deadlines.fallback = None;
            self.inc.last_error = None;
            self.inc.undeliverable = None;
        }
        match effect {
            EffectKind::Page => {
                if self.inc.paged_at.is_none() {
                    self.inc.paged_at = Some(self.now);
                }
                // The acknowledgement clock runs from the moment the phone
                // can ring, not from the ticket's arrival: after a PagerDuty
                // outage, level 1 still gets the whole `ack_timeout`.
                if self.inc.status == Status::Triggered
                    && self.inc.level < 2
                    && self.inc.deadlines.ack.is_none()
                {
                    self.inc.deadlines.ack = Some(self.now + self.policy.ack_timeout);
                }
            }
            EffectKind::PageEscalate if self.inc.escalated_at.is_none() => {
                self.inc.escalated_at = Some(self.now);
            }
            _ => {}
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
                self.fx.push(Effect::TicketComment {
                    body: format!(
                        "We have opened a shared crisis document for this emergency, where our engineers \
                         record what they find and do. You are welcome to follow and contribute: {link}"
                    ),
                    public: true,
                });
                self.fx.push(Effect::PageNote {
                    text: format!("Crisis document: {link}"),
                });
            }
            Some(Outcome::PagerIncident { id }) => self.inc.pagerduty_id = Some(id.clone()),
            Some(Outcome::ChatThread { channel, thread }) => {
                if let Some(crisis) = self.inc.crisis.as_mut() {
                    crisis.threads.insert(channel.clone(), thread.clone());
                }
            }
            Some(Outcome::Handoff { handoff }) => self.handoff_booked(handoff),
            Some(Outcome::FollowUp { url }) => self.follow_up_opened(url),
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
        let line = render::email_line;
        self.fx.push(Effect::Mail {
            subject: render::email_subject(&format!(
                "[pagerd] EMERGENCY ticket #{}: {} ({})",
                t.id,
                t.title,
                t.customer()
            )),
            body: render::email_body(&format!(
                "pagerd could not page through PagerDuty: {why}.\n\n\
                 You are level 2 for this emergency. Please take it now.\n\n\
                 Ticket:    #{} {}\nLink:      {}\nCustomer:  {} <{}>\nOpened:    {}\nIncident:  pagerd {}\n\n\
                 Acknowledge with: pagerd incidents ack {}\n",
                t.id,
                line(&t.title),
                line(&t.url),
                line(t.customer()),
                line(&t.requester_email),
                rfc3339(self.inc.opened_at),
                self.inc.id,
                self.inc.id,
            )),
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

    /// Counts `who` among the responders, once per person: the same e-mail
    /// from another channel is the same responder (its e-mail is learned if
    /// it was known by name only).
    fn add_responder(&mut self, who: &Who) {
        if who.name.trim().is_empty() {
            return;
        }
        let people = &mut self.inc.responders;
        if let Some(first) = people.iter().position(|r| r.same(who)) {
            if people[first].email.is_none() && who.email.is_some() {
                people[first].email = who.email.clone();
                // The e-mail just learned may show two entries to be one
                // person (known by name here, by e-mail there): keep one.
                let merged = people[first].clone();
                let mut i = 0;
                people.retain(|r| {
                    let keep = i == first || !r.same(&merged);
                    i += 1;
                    keep
                });
            }
            return;
        }
        self.inc.responders.push(who.clone());
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
            handoff: None,
            follow_up: None,
        });
        if self.policy.crisis_docs {
            let t = &self.inc.ticket;
            self.fx.push(Effect::CreateDoc {
                title: render::drive_name(&format!(
                    "Crisis: #{} {} ({})",
                    t.id,
                    t.title,
                    t.customer()
                )),
                body: self.doc_body(),
            });
        } else {
            // No doc to wait for: announce right away.
            self.announce();
            self.fx.push(Effect::PageNote {
                text: render::pagerduty_note(&format!("Crisis declared: {reason}")),
            });
        }
    }

    fn announce(&mut self) {
        let t = &self.inc.ticket;
        let Some(crisis) = &self.inc.crisis else {
            return;
        };
        // Every piece of customer (or responder) text is escaped and capped
        // on its own, so the whole fits a section block (render.rs).
        let doc = crisis
            .doc
            .as_ref()
            .map(|d| {
                format!(
                    "\n*Crisis doc:* {}",
                    render::slack_field(&d.url, SLACK_URL_MAX)
                )
            })
            .unwrap_or_default();
        let on_it = if self.inc.responders.is_empty() {
            "nobody has acknowledged yet".to_string()
        } else {
            render::slack_names(&names(&self.inc.responders), SLACK_PEOPLE_MAX)
        };
        let text = format!(
            ":rotating_light: *Crisis* for {}: {} (ticket {})\n*Why:* {}\n*On it:* {}{}",
            render::slack_field(t.customer(), render::SLACK_NAME_MAX),
            render::slack_field(&t.title, render::SLACK_TITLE_MAX),
            render::slack_link(&t.url, &format!("#{}", t.id)),
            render::slack_field(&crisis.reason, SLACK_REASON_MAX),
            on_it,
            doc
        );
        for channel in &self.policy.slack_channels {
            self.fx.push(Effect::ChatPost {
                channel: channel.clone(),
                text: text.clone(),
                buttons: true,
            });
        }
    }

    /// A line in each crisis thread, when a crisis has been announced.
    /// `text` is plain text (it holds responder names and reasons), escaped
    /// here as a whole for Slack: thread updates carry no markup but
    /// emoji codes and `*bold*`.
    fn thread_update(&mut self, text: &str) {
        if self.inc.crisis.is_none() {
            return;
        }
        let text = render::slack_cut(&render::slack(text), render::SLACK_TEXT_MAX);
        for channel in &self.policy.slack_channels {
            self.fx.push(Effect::ChatPost {
                channel: channel.clone(),
                text: text.clone(),
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
        let line = render::doc_line;
        let acked = match &self.inc.acked {
            Some((by, at)) => format!("{} acknowledged by {}", rfc3339(*at), line(by)),
            None => "not acknowledged yet".to_string(),
        };
        let people = if self.inc.responders.is_empty() {
            "(nobody yet)".into()
        } else {
            line(&names(&self.inc.responders).join(", "))
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
            title = line(&t.title),
            customer = line(t.customer()),
            name = line(&t.requester_name),
            email = line(&t.requester_email),
            url = line(&t.url),
            key = self.inc.dedup_key,
            opened = rfc3339(self.inc.opened_at),
            level = self.inc.level,
            declared = rfc3339(self.now),
            reason = line(
                self.inc
                    .crisis
                    .as_ref()
                    .map(|c| c.reason.as_str())
                    .unwrap_or_default()
            ),
        )
    }
}

/// Caps on the pieces of a crisis announcement (after escaping).
const SLACK_URL_MAX: usize = 500;
const SLACK_PEOPLE_MAX: usize = 600;
const SLACK_REASON_MAX: usize = 400;

/// The responders' names, in order.
fn names(people: &[Who]) -> Vec<String> {
    people.iter().map(|w| w.name.clone()).collect()
}

/// "Phone, Skype, WebEx or Hangouts".
fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

mod after;
#[cfg(test)]
mod tests;

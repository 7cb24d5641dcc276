//! What follows a crisis and an acknowledgement, by the handbook.
//!
//! - At the resolution of a crisis: the incident's timeline is appended to
//!   the crisis doc, the hand-off call is booked for everyone involved
//!   (`policy.handoff_after` later, when a calendar is configured), and the
//!   follow-up issue is opened (after the call is booked, so that it links
//!   it). Each link is posted in every crisis thread once made.
//! - The acknowledgement's lease (`policy.ack_lease`): an acknowledged
//!   emergency with no sign of progress for that long is re-paged at its
//!   current level; any responder action renews the lease.

use super::*;

/// How long the hand-off call lasts.
pub(super) const HANDOFF_MINUTES: u32 = 30;

impl Step<'_> {
    /// The crisis's after-care, queued at its resolution.
    pub(super) fn after_crisis(&mut self) {
        let Some(crisis) = &self.inc.crisis else {
            return;
        };
        if crisis.doc.is_some() {
            let text = self.timeline();
            self.fx.push(Effect::AppendTimeline { text });
        }
        match self.policy.handoff_after {
            Some(after) => {
                let t = &self.inc.ticket;
                let mut attendees: Vec<String> = Vec::new();
                for email in self.inc.responders.iter().filter_map(|r| r.email.clone()) {
                    if !attendees.contains(&email) {
                        attendees.push(email);
                    }
                }
                let doc = crisis.doc.as_ref().map(|d| d.url.as_str()).unwrap_or("");
                self.fx.push(Effect::BookHandoff {
                    title: render::drive_name(&format!(
                        "Hand-off: crisis #{} {} ({})",
                        t.id,
                        t.title,
                        t.customer()
                    )),
                    description: format!(
                        "Hand-off call after the crisis of ticket #{id} ({customer}), booked by pagerd.\n\n\
                         Ticket: {url}\nCrisis doc: {doc}\n\n\
                         Agenda: what happened, what was learned, which know-how moves from the crisis doc \
                         into documentation, handbooks or issue trackers, and who does it.",
                        id = t.id,
                        customer = render::doc_line(t.customer()),
                        url = render::doc_line(&t.url),
                        doc = if doc.is_empty() { "(none)" } else { doc },
                    ),
                    start: self.now + after,
                    minutes: HANDOFF_MINUTES,
                    attendees,
                });
            }
            None => self.open_follow_up(),
        }
    }

    /// The hand-off call is booked: its link in every crisis thread and on
    /// the PagerDuty incident, then the follow-up issue, which links it.
    pub(super) fn handoff_booked(&mut self, handoff: &Handoff) {
        let Some(crisis) = self.inc.crisis.as_mut() else {
            return;
        };
        if crisis.handoff.is_some() {
            return;
        }
        crisis.handoff = Some(handoff.clone());
        let at = self
            .policy
            .handoff_after
            .map(|after| self.local(self.now + after))
            .unwrap_or_default();
        self.thread_update(&format!(
            ":telephone_receiver: Hand-off call for everyone involved, {at}: {}",
            handoff.meet_url
        ));
        self.fx.push(Effect::PageNote {
            text: render::pagerduty_note(&format!(
                "Hand-off call {at}: {} (calendar: {})",
                handoff.meet_url, handoff.event_url
            )),
        });
        self.open_follow_up();
    }

    /// The hand-off call could not be booked: said in the threads, and the
    /// follow-up issue is opened without it.
    pub(super) fn handoff_failed(&mut self, error: &str) {
        self.thread_update(&format!(
            ":warning: pagerd could not book the hand-off call ({error}): please book it by hand."
        ));
        self.open_follow_up();
    }

    /// The follow-up issue is open: its link in every crisis thread.
    pub(super) fn follow_up_opened(&mut self, url: &str) {
        let Some(crisis) = self.inc.crisis.as_mut() else {
            return;
        };
        if crisis.follow_up.is_some() {
            return;
        }
        crisis.follow_up = Some(url.to_string());
        self.thread_update(&format!(":clipboard: Follow-up issue: {url}"));
    }

    fn open_follow_up(&mut self) {
        let Some(crisis) = &self.inc.crisis else {
            return;
        };
        if !self.policy.follow_up || crisis.follow_up.is_some() {
            return;
        }
        let t = &self.inc.ticket;
        let md = render::gitlab;
        let doc = crisis
            .doc
            .as_ref()
            .map(|d| md(&d.url))
            .unwrap_or_else(|| "(no crisis doc)".into());
        let call = match &crisis.handoff {
            Some(h) => format!("hold the hand-off call: {}", md(&h.meet_url)),
            None => "hold a hand-off call with everyone involved".into(),
        };
        let timeline: String = self
            .events()
            .into_iter()
            .map(|(at, what)| format!("- {}: {}\n", self.local(at), md(&what)))
            .collect();
        let description = format!(
            "Crisis of ticket #{id} ({customer}): {title}\n\n\
             - Ticket: {url}\n- Crisis doc: {doc}\n- People involved: {people}\n\n\
             ## Timeline\n\n{timeline}\n\
             ## After the crisis\n\n\
             - [ ] Move the pertinent know-how from the crisis doc into documentation, handbooks or issue trackers\n\
             - [ ] Deprecate the crisis doc (pagerd marks it deprecated {deprecate} after the resolution)\n\
             - [ ] {call}\n",
            id = t.id,
            customer = md(t.customer()),
            title = md(&t.title),
            url = md(&t.url),
            people = md(&self.people()),
            deprecate = human(self.policy.doc_deprecate_after),
        );
        self.fx.push(Effect::OpenFollowUp {
            title: render::gitlab_title(&format!(
                "Crisis follow-up: #{} {} ({})",
                t.id,
                t.title,
                t.customer()
            )),
            description,
        });
    }

    /// The timeline appended to the crisis doc: one line per fact, in
    /// `policy.timezone`, and who was involved.
    fn timeline(&self) -> String {
        // The vendor heads it with its marker line ("Timeline of incident
        // N (pagerd, …)"), by which a redelivery finds it.
        let mut out = format!("Times in {}.\n", self.policy.timezone);
        for (at, what) in self.events() {
            out.push_str(&format!(
                "{}  {}\n",
                self.local(at),
                render::doc_line(&what)
            ));
        }
        out.push_str(&format!(
            "People involved: {}\n",
            render::doc_line(&self.people())
        ));
        out
    }

    /// What happened, from the incident's state, in order.
    fn events(&self) -> Vec<(Millis, String)> {
        let inc = &self.inc;
        let t = &inc.ticket;
        let mut ev = vec![(
            inc.opened_at,
            format!(
                "emergency ticket #{} from {}: {}; pagerd paged level 1",
                t.id,
                t.customer(),
                t.title
            ),
        )];
        if let Some(at) = inc.paged_at {
            ev.push((at, "PagerDuty accepted the page".into()));
        }
        if let Some(at) = inc.escalated_at {
            ev.push((at, "escalated to level 2 in PagerDuty".into()));
        }
        if let Some((by, at)) = &inc.acked {
            ev.push((*at, format!("acknowledged by {by}")));
        }
        if let Some(c) = &inc.crisis {
            ev.push((c.declared_at, format!("crisis declared: {}", c.reason)));
        }
        if let Some((by, at)) = &inc.resolved {
            ev.push((*at, format!("resolved by {by}")));
        }
        ev.sort_by_key(|(at, _)| *at);
        ev
    }

    fn people(&self) -> String {
        if self.inc.responders.is_empty() {
            return "(nobody recorded)".into();
        }
        self.inc
            .responders
            .iter()
            .map(|r| match &r.email {
                Some(e) if *e != r.name => format!("{} <{e}>", r.name),
                _ => r.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `at` as a wall-clock time in `policy.timezone` (UTC if the zone is
    /// unknown, which the config check refuses).
    fn local(&self, at: Millis) -> String {
        let tz = jiff::tz::TimeZone::get(&self.policy.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
        match jiff::Timestamp::from_millisecond(at) {
            Ok(ts) => ts
                .to_zoned_datetime(tz)
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string(),
            Err(_) => crate::clock::rfc3339(at),
        }
    }

    // ---- the acknowledgement's lease ----------------------------------------

    /// Arms (or renews) the lease of an acknowledged, open incident.
    pub(super) fn renew_lease(&mut self) {
        if let Some(lease) = self.policy.ack_lease
            && self.inc.status == Status::Acknowledged
        {
            self.inc.deadlines.lease = Some(self.now + lease);
        }
    }

    /// The lease ran out: re-page whoever is on call at the current level,
    /// say why, and give the responders another lease.
    pub(super) fn lease_expired(&mut self) {
        let Some(lease) = self.policy.ack_lease else {
            return;
        };
        if self.inc.status != Status::Acknowledged {
            return;
        }
        let by = self
            .inc
            .acked
            .as_ref()
            .map(|(by, _)| by.clone())
            .unwrap_or_else(|| "someone".into());
        let note = format!(
            "Acknowledged by {by}, but no progress for {}: pagerd re-paged level {}.",
            human(lease),
            self.inc.level
        );
        self.fx.push(Effect::PageEscalate {
            level: self.inc.level,
            note: render::pagerduty_note(&note),
            due: None,
        });
        self.page_sent();
        self.thread_update(&format!(":alarm_clock: {note}"));
        self.inc.deadlines.lease = Some(self.now + lease);
    }
}

//! Tests of the explanation, with made-up incidents driven through the
//! engine's own rules.
use serde_json::{Value, json};

use super::*;
use crate::engine::{Decision, Effect, Policy, Ticket, apply};

const SEC: Millis = 1_000;
const MIN: Millis = 60_000;
/// 2027-01-15T08:00:00Z, a Friday.
const T0: Millis = 1_800_000_000_000;

fn utc(now: Millis) -> Local {
    Local::new(TimeZone::UTC, now)
}

fn ticket() -> Ticket {
    Ticket {
        id: "4711".into(),
        title: "Production instance down".into(),
        priority: "urgent".into(),
        status: "new".into(),
        tags: vec![],
        url: "https://acme.zendesk.com/agent/tickets/4711".into(),
        requester_name: "Dana".into(),
        requester_email: "dana@customer.test".into(),
        organization: "Customer Corp".into(),
    }
}

fn ana() -> Who {
    Who::new("Ana Engineer", Some("ana@acme.example".into()))
}

/// A story: the incident after `events` (each at its time, the first one
/// opening it), with the journal and outbox rows the store would write.
struct Built {
    inc: Incident,
    journal: Vec<Value>,
    outbox: Vec<Value>,
}

impl Built {
    fn open(p: &Policy) -> Built {
        let mut b = Built {
            inc: placeholder(),
            journal: Vec::new(),
            outbox: Vec::new(),
        };
        let event = Event::Ticket {
            ticket: ticket(),
            polled: false,
        };
        let Decision::Apply {
            mut incident,
            effects,
        } = apply(p, None, &event, T0)
        else {
            panic!("not opened");
        };
        incident.id = 1;
        b.record(T0, &event, incident, &effects);
        b
    }

    fn step(mut self, p: &Policy, event: Event, now: Millis) -> Built {
        match apply(p, Some(&self.inc), &event, now) {
            Decision::Apply { incident, effects } => self.record(now, &event, incident, &effects),
            Decision::Ignore(why) => panic!("ignored {event:?}: {why}"),
        }
        self
    }

    fn record(&mut self, now: Millis, event: &Event, inc: Incident, effects: &[Effect]) {
        self.inc = inc;
        self.journal
            .push(json!({ "at": now, "event": event, "effects": effects.len() }));
        for e in effects {
            let id = self.outbox.len() as i64 + 1;
            self.outbox.push(json!({
                "id": id, "effect": e, "state": "pending", "attempts": 0,
                "last_error": null, "created_at": now, "done_at": null,
                "next_attempt_at": now,
            }));
        }
    }

    /// Marks outbox row `id` delivered at `at`.
    fn delivered(mut self, id: usize, at: Millis) -> Built {
        let row = &mut self.outbox[id - 1];
        row["state"] = json!("delivered");
        row["attempts"] = json!(1);
        row["done_at"] = json!(at);
        row["next_attempt_at"] = Value::Null;
        self
    }

    fn story(&self) -> Story {
        Story::from_api(&json!({
            "incident": self.inc, "journal": self.journal, "outbox": self.outbox,
        }))
        .expect("story")
    }
}

fn placeholder() -> Incident {
    let Decision::Apply { incident, .. } = apply(
        &Policy::default(),
        None,
        &Event::Ticket {
            ticket: ticket(),
            polled: false,
        },
        0,
    ) else {
        panic!("placeholder");
    };
    incident
}

fn accepted() -> Event {
    Event::Delivered {
        effect: EffectKind::Page,
        outcome: None,
    }
}

#[test]
fn the_next_escalation_is_at_the_armed_ack_deadline() {
    let p = Policy::default();
    let b = Built::open(&p)
        .delivered(1, T0 + 2 * SEC)
        .step(&p, accepted(), T0 + 2 * SEC);
    let ack = b.inc.deadlines.ack.expect("ack armed");
    assert_eq!(ack, T0 + 2 * SEC + 5 * MIN);
    let local = utc(T0 + MIN);
    let next = b.story().next(&local);
    assert_eq!(next[0].at, Some(ack), "{next:?}");
    assert!(
        next[0]
            .what
            .contains("escalates to level 2 unless acknowledged")
    );
    assert!(next[0].why.contains("ack timeout 5m"), "{}", next[0].why);
    assert!(next[0].why.contains("08:00:02"), "{}", next[0].why);
    // Then the crisis, at the armed crisis deadline.
    assert_eq!(next[1].at, b.inc.deadlines.crisis, "{next:?}");
    assert!(next[1].what.contains("crisis"), "{next:?}");
    assert_eq!(next.len(), 2, "{next:?}");

    let text = explain_text(&b.story(), &local);
    assert!(
        text.contains("08:05:02 (in 4m2s)  escalates to level 2 unless acknowledged"),
        "{text}"
    );
    assert!(text.contains("09:00:00 (in 59m)"), "{text}");
    let v = explain_json(&b.story(), &local);
    assert_eq!(v["next"][0]["at"], json!("2027-01-15T08:05:02Z"), "{v:#}");
    assert_eq!(millis_of(&v["next"][0]["at"]), Some(ack), "{v:#}");
}

/// An RFC 3339 time of the JSON, in ms.
fn millis_of(v: &Value) -> Option<Millis> {
    v.as_str()?
        .parse::<Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

#[test]
fn an_undeliverable_page_says_nothing_pages_and_how_to_repage() {
    let p = Policy::default();
    let b = Built::open(&p).step(
        &p,
        Event::DeliveryFailed {
            effect: EffectKind::Page,
            error: "400 invalid routing key".into(),
        },
        T0 + SEC,
    );
    assert!(b.inc.is_undeliverable());
    let next = b.story().next(&utc(T0 + MIN));
    assert_eq!(next[0].at, None);
    assert_eq!(next[0].what, "no page fires", "{next:?}");
    assert!(
        next[0].why.contains("PagerDuty refused the page")
            && next[0].why.contains("invalid routing key")
            && next[0]
                .why
                .contains("`pagerd incidents repage 1 --as EMAIL`"),
        "{}",
        next[0].why
    );
    assert!(
        !next.iter().any(|n| n.what.contains("escalates")),
        "{next:?}"
    );
    // Only the crisis deadline is still armed.
    assert_eq!(next.len(), 2, "{next:?}");
    assert_eq!(next[1].at, b.inc.deadlines.crisis);

    // With nothing armed at all, nothing fires.
    let mut quiet = b.story();
    quiet.incident.deadlines = Default::default();
    let next = quiet.next(&utc(T0 + MIN));
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].what, "nothing fires");
    assert!(next[0].why.contains("repage 1"), "{next:?}");
}

#[test]
fn a_page_not_yet_accepted_says_the_ack_clock_waits_and_when_it_is_retried() {
    let p = Policy {
        fallback_after: Some(2 * MIN),
        ..Policy::default()
    };
    let mut b = Built::open(&p);
    b.outbox[0]["attempts"] = json!(2);
    b.outbox[0]["last_error"] = json!("PagerDuty answered 503");
    b.outbox[0]["next_attempt_at"] = json!(T0 + 40 * SEC);
    let story = b.story();
    let next = story.next(&utc(T0 + 30 * SEC));
    assert_eq!(
        next[0].what, "the ack clock starts when PagerDuty accepts the page",
        "{next:?}"
    );
    assert_eq!(next[0].at, None);
    assert!(
        next[0].why.contains("2 failed attempts")
            && next[0].why.contains("503")
            && next[0].why.contains("next attempt 08:00:40 (in 10s)"),
        "{}",
        next[0].why
    );
    // The retry, then the e-mail fallback, then the crisis: in time order.
    let timed: Vec<_> = next.iter().filter_map(|n| n.at).collect();
    assert_eq!(timed, vec![T0 + 40 * SEC, T0 + 2 * MIN, T0 + 60 * MIN]);
    assert!(next[1].what.contains("tried again (attempt 3)"), "{next:?}");
    assert!(
        next[2]
            .what
            .contains("e-mail to level 2 if PagerDuty still has not accepted the page"),
        "{next:?}"
    );
    assert_eq!(Some(T0 + 2 * MIN), b.inc.deadlines.fallback);
    assert!(!next.iter().any(|n| n.what.contains("escalates")));
}

#[test]
fn a_resolved_crisis_says_when_its_doc_is_deprecated() {
    let p = Policy {
        crisis_docs: true,
        slack_channels: vec!["#infrastructure".into()],
        ..Policy::default()
    };
    let resolved_at = T0 + 90 * MIN;
    let b = Built::open(&p)
        .step(&p, accepted(), T0 + SEC)
        .step(
            &p,
            Event::DeclareCrisis {
                by: ana(),
                via: Source::Slack,
            },
            T0 + 10 * MIN,
        )
        .step(
            &p,
            Event::Delivered {
                effect: EffectKind::CreateDoc,
                outcome: Some(Outcome::Doc {
                    doc: crate::engine::Doc {
                        id: "doc1".into(),
                        url: "https://docs.example/doc1".into(),
                    },
                }),
            },
            T0 + 11 * MIN,
        )
        .step(
            &p,
            Event::Resolve {
                by: ana(),
                via: Source::Cli,
            },
            resolved_at,
        );
    let deprecate = b.inc.deadlines.deprecate.expect("deprecation armed");
    assert_eq!(deprecate, resolved_at + 7 * 24 * 60 * MIN);
    let local = utc(resolved_at + MIN);
    let next = b.story().next(&local);
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].at, Some(deprecate));
    assert_eq!(next[0].what, "the crisis doc is marked deprecated");
    assert!(
        next[0].why.contains("resolved at 09:30:00") && next[0].why.contains("lasts 7d"),
        "{}",
        next[0].why
    );
    // Another day: the date is shown.
    let text = explain_text(&b.story(), &local);
    assert!(
        text.contains("2027-01-22 09:30:00 (in 6d23h)  the crisis doc is marked deprecated"),
        "{text}"
    );
    // Once done, nothing fires.
    let mut done = b.story();
    done.incident.deadlines.deprecate = None;
    let next = done.next(&local);
    assert_eq!(next[0].what, "nothing fires");
    assert!(next[0].why.contains("resolved by Ana Engineer"), "{next:?}");
}

#[test]
fn the_timeline_says_who_did_what_from_which_channel() {
    let p = Policy::default();
    let paged = T0 + 2 * SEC;
    let b = Built::open(&p)
        .delivered(1, paged)
        .step(&p, accepted(), paged)
        .step(&p, Event::Tick, paged + 5 * MIN)
        .step(
            &p,
            Event::Acknowledge {
                by: ana(),
                via: Source::Slack,
            },
            paged + 6 * MIN,
        );
    let lines = b.story().timeline();
    let whats: Vec<&str> = lines.iter().map(|l| l.what.as_str()).collect();
    assert_eq!(lines.len(), 4, "{whats:?}");
    assert_eq!(
        lines[0].what,
        "emergency ticket #4711 came in: \"Production instance down\" (Customer Corp, urgent)"
    );
    assert_eq!(lines[0].via.as_deref(), Some("zendesk"));
    assert_eq!(lines[0].queued, vec!["page to PagerDuty (level 1)"]);
    assert_eq!(lines[1].what, "PagerDuty accepted the page");
    assert_eq!(lines[1].via.as_deref(), Some("pagerduty"));
    assert!(
        lines[2].what.contains("the ack deadline passed") && lines[2].what.contains("level 2"),
        "{whats:?}"
    );
    assert_eq!(lines[2].via.as_deref(), Some("timer"));
    assert_eq!(lines[2].queued, vec!["escalation to level 2 in PagerDuty"]);
    assert_eq!(lines[3].what, "acknowledged");
    assert_eq!(
        lines[3].who.as_deref(),
        Some("Ana Engineer <ana@acme.example>")
    );
    assert_eq!(lines[3].via.as_deref(), Some("slack"));
    assert!(
        lines[3]
            .queued
            .contains(&"reply to the customer in Zendesk".to_string()),
        "{:?}",
        lines[3].queued
    );

    let text = timeline_text(&lines, &utc(T0));
    assert!(!text.contains("{\"type\""), "{text}");
    assert!(
        text.contains("08:06:02  acknowledged by Ana Engineer <ana@acme.example> via Slack"),
        "{text}"
    );
    let v = explain_json(&b.story(), &utc(T0));
    assert_eq!(
        v["timeline"][3]["who"],
        json!("Ana Engineer <ana@acme.example>")
    );
    assert_eq!(v["timeline"][3]["via"], json!("slack"));
    assert_eq!(v["timeline"][0]["at"], json!("2027-01-15T08:00:00Z"));
    assert!(v["timeline"][1].get("who").is_none(), "{v:#}");
    // Acknowledged and no crisis yet: the crisis deadline is what is left.
    let next = b.story().next(&utc(paged + 7 * MIN));
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].at, b.inc.deadlines.crisis);
}

#[test]
fn times_are_local_with_the_date_when_not_today() {
    let berlin = TimeZone::get("Europe/Berlin").expect("tz");
    let local = Local::new(berlin, T0);
    // 08:00Z is 09:00 in Berlin in January.
    assert_eq!(local.time(T0), "09:00:00");
    assert_eq!(local.zone(), "Europe/Berlin");
    assert_eq!(local.time(T0 + 15 * 60 * MIN), "2027-01-16 00:00:00");
    assert_eq!(local.when(T0 + 3 * MIN + 12 * SEC), "09:03:12 (in 3m12s)");
    assert_eq!(local.when(T0 - 2 * MIN), "08:58:00 (2m ago)");
    assert_eq!(local.when(T0 + 300), "09:00:00 (now)");
}

#[test]
fn spans_read_like_a_human_wrote_them() {
    assert_eq!(span(0), "0s");
    assert_eq!(span(12 * SEC + 999), "12s");
    assert_eq!(span(3 * MIN + 12 * SEC), "3m12s");
    assert_eq!(span(58 * MIN), "58m");
    assert_eq!(span(65 * MIN + 30 * SEC), "1h5m");
    assert_eq!(span(51 * 60 * MIN), "2d3h");
    assert_eq!(span(-5), "0s");
}

#[test]
fn unreadable_rows_and_customer_text_stay_harmless() {
    let p = Policy::default();
    let mut b = Built::open(&p);
    b.inc.ticket.title = "DB \u{1b}[31mdown\u{202e}".into();
    b.journal
        .push(json!({ "at": T0 + SEC, "event": { "type": "from_the_future" }, "effects": 0 }));
    let story = b.story();
    let lines = story.timeline();
    assert!(
        lines[1].what.contains("cannot read") && lines[1].what.contains("from_the_future"),
        "{lines:?}"
    );
    let text = explain_text(&story, &utc(T0));
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text}"
    );
    // Not an incident at all: a typed error, not a panic.
    assert!(matches!(
        Story::from_api(&json!({ "error": "x" })),
        Err(ExplainError::NotAnIncident(_))
    ));
}

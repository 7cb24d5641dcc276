//! Tests of rules.
use super::*;

mod after;

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

/// A new incident whose page PagerDuty has not accepted yet.
fn fresh(p: &Policy) -> Incident {
    let (mut inc, _) = applied(apply(
        p,
        None,
        &Event::Ticket {
            ticket: ticket("4711"),
            polled: false,
        },
        T0,
    ));
    inc.id = 1;
    inc
}

/// A new incident whose page PagerDuty accepted at once (at T0).
fn opened(p: &Policy) -> Incident {
    let (mut inc, _) = applied(apply(
        p,
        None,
        &Event::Ticket {
            ticket: ticket("4711"),
            polled: false,
        },
        T0,
    ));
    inc.id = 1;
    let accepted = Event::Delivered {
        effect: EffectKind::Page,
        outcome: None,
    };
    applied(apply(p, Some(&inc), &accepted, T0)).0
}

fn step(p: &Policy, inc: &Incident, ev: Event, now: Millis) -> (Incident, Vec<Effect>) {
    applied(apply(p, Some(inc), &ev, now))
}

fn step_ignored(p: &Policy, inc: &Incident, ev: Event, now: Millis) -> bool {
    matches!(apply(p, Some(inc), &ev, now), Decision::Ignore(_))
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
            polled: false,
        },
        T0,
    ));
    assert_eq!(inc.dedup_key, "zendesk-4711");
    assert_eq!(inc.episode, 1);
    assert_eq!(
        inc.deadlines.ack, None,
        "the ack clock starts when PagerDuty accepts the page"
    );
    assert_eq!(inc.deadlines.crisis, Some(T0 + 60 * MIN));
    assert_eq!(inc.deadlines.fallback, None, "no e-mail configured");
    assert_eq!(
        fx,
        vec![Effect::Page {
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
        apply(
            &p,
            None,
            &Event::Ticket {
                ticket: t.clone(),
                polled: false
            },
            T0
        ),
        Decision::Ignore(_)
    ));
    t.tags.push("emergency".into());
    assert!(matches!(
        apply(
            &p,
            None,
            &Event::Ticket {
                ticket: t,
                polled: false
            },
            T0
        ),
        Decision::Apply { .. }
    ));
}

#[test]
fn solved_ticket_opens_nothing() {
    let mut t = ticket("1");
    t.status = "solved".into();
    assert!(matches!(
        apply(
            &Policy::default(),
            None,
            &Event::Ticket {
                ticket: t,
                polled: false
            },
            T0
        ),
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
            polled: false,
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
    // It carries the deadline, by which a redelivery looks for it.
    assert!(matches!(
        &fx[..],
        [Effect::PageEscalate { level: 2, note, due: Some(due) }]
            if note.contains("5m") && *due == T0 + 5 * MIN
    ));
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
    let Effect::TicketComment { body, public } = &fx[0] else {
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
        vec![EffectKind::TicketComment, EffectKind::PageAcknowledge]
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
    assert_eq!(kinds(&fx), vec![EffectKind::PageResolve]);
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
    let (inc, fx) = step(
        &p,
        &opened(&p),
        Event::Ticket {
            ticket: t,
            polled: false,
        },
        T0 + MIN,
    );
    assert_eq!(inc.status, Status::Resolved);
    assert_eq!(kinds(&fx), vec![EffectKind::PageResolve]);
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
    assert_eq!(inc.responders, vec![Who::named("ana")]);
    assert!(
        matches!(&fx[..], [Effect::PageEscalate { level: 2, note, due: None }] if note == "Escalated to level 2 by ana: cluster is read-only")
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
            EffectKind::ChatPost,
            EffectKind::ChatPost,
            EffectKind::TicketComment,
            EffectKind::PageNote
        ]
    );
    let Effect::ChatPost { text, buttons, .. } = &fx[1] else {
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
    let ev = Event::DeclareCrisis {
        by: "ana".into(),
        via: Source::Cli,
    };
    let (inc, fx) = step(&p, &inc, ev, T0 + 1);
    assert_eq!(kinds(&fx), vec![EffectKind::CreateDoc]);
    assert_eq!(
        inc.crisis.map(|c| c.reason),
        Some("declared by ana".to_string())
    );
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
            EffectKind::ChatPost,
            EffectKind::ChatPost,
            EffectKind::PageNote
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
            effect: EffectKind::ChatPost,
            outcome: Some(Outcome::ChatThread {
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
            Effect::ChatPost { text, .. } => Some(text.as_str()),
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
            EffectKind::ChatPost,
            EffectKind::ChatPost
        ]
    );
}

#[test]
fn fallback_email_when_pagerduty_has_not_taken_the_page() {
    let p = crisis_policy();
    let inc = fresh(&p);
    assert_eq!(inc.deadlines.fallback, Some(T0 + 2 * MIN));
    let (inc, fx) = step(&p, &inc, Event::Tick, T0 + 2 * MIN);
    assert_eq!(kinds(&fx), vec![EffectKind::Mail]);
    assert!(inc.fallback_sent);
    // PagerDuty comes back at T0 + 3m: level 1 gets its whole five minutes
    // from then, not from the ticket's arrival.
    let accepted = Event::Delivered {
        effect: EffectKind::Page,
        outcome: None,
    };
    let (inc, _) = step(&p, &inc, accepted, T0 + 3 * MIN);
    assert_eq!(inc.paged_at, Some(T0 + 3 * MIN));
    assert_eq!(inc.deadlines.ack, Some(T0 + 8 * MIN));
    assert!(step_ignored(&p, &inc, Event::Tick, T0 + 5 * MIN));
    // The e-mail goes once only, even when the escalation also stalls.
    let (inc, fx) = step(&p, &inc, Event::Tick, T0 + 8 * MIN);
    assert_eq!(kinds(&fx), vec![EffectKind::PageEscalate]);
    assert_eq!(inc.deadlines.fallback, None);
}

#[test]
fn a_zero_fallback_sends_the_email_in_the_same_tick_as_the_escalation() {
    let p = Policy {
        fallback_after: Some(0),
        ..crisis_policy()
    };
    let ev = Event::Delivered {
        effect: EffectKind::Page,
        outcome: None,
    };
    let (inc, _) = step(&p, &fresh(&p), ev, T0 + 100);
    let (inc, fx) = step(&p, &inc, Event::Tick, T0 + 100 + 5 * MIN);
    assert_eq!(kinds(&fx), vec![EffectKind::PageEscalate, EffectKind::Mail]);
    assert_eq!(inc.deadlines.fallback, None);
}

#[test]
fn delivered_page_disarms_the_fallback() {
    let p = crisis_policy();
    let ev = Event::Delivered {
        effect: EffectKind::Page,
        outcome: None,
    };
    let (inc, _) = step(&p, &fresh(&p), ev, T0 + 100);
    assert!(!inc.page_pending);
    assert_eq!(inc.deadlines.fallback, None);
}

#[test]
fn permanent_page_failure_sends_the_fallback_at_once() {
    let p = crisis_policy();
    let ev = Event::DeliveryFailed {
        effect: EffectKind::Page,
        error: "400 invalid routing key".into(),
    };
    let (inc, fx) = step(&p, &fresh(&p), ev, T0 + 100);
    assert_eq!(kinds(&fx), vec![EffectKind::Mail]);
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

fn seen(status: &str, polled: bool) -> Event {
    let mut t = ticket("4711");
    t.status = status.into();
    Event::Ticket { ticket: t, polled }
}

fn resolved_by(p: &Policy, inc: &Incident, via: Source) -> Incident {
    let ev = match via {
        Source::Zendesk => seen("solved", false),
        _ => Event::Resolve {
            by: Who::named("ana"),
            via,
        },
    };
    step(p, inc, ev, T0 + MIN).0
}

#[test]
fn a_reopened_ticket_opens_the_next_episode_with_its_own_key_and_clock() {
    let p = Policy::default();
    let done = resolved_by(&p, &opened(&p), Source::Zendesk);
    // Solved again, or still solved: quiet.
    assert!(step_ignored(&p, &done, seen("solved", false), T0 + 2 * MIN));
    // Reopened (webhook or poller): episode 2.
    for polled in [false, true] {
        let (next, fx) = step(&p, &done, seen("open", polled), T0 + 3 * MIN);
        assert_eq!(next.id, 0, "a new incident");
        assert_eq!(next.episode, 2);
        assert_eq!(next.dedup_key, "zendesk-4711-2");
        assert_eq!(kinds(&fx), vec![EffectKind::Page]);
        assert_eq!(next.deadlines.ack, None, "armed when PagerDuty accepts");
        assert_eq!(next.deadlines.crisis, Some(T0 + 3 * MIN + 60 * MIN));
        assert!(next.responders.is_empty() && next.paged_at.is_none());
    }
}

#[test]
fn resolved_elsewhere_pages_again_on_an_update_but_not_on_a_poll() {
    let p = Policy::default();
    let done = resolved_by(&p, &opened(&p), Source::Pagerduty);
    assert!(step_ignored(&p, &done, seen("open", true), T0 + 2 * MIN));
    let (next, _) = step(&p, &done, seen("open", false), T0 + 2 * MIN);
    assert_eq!(next.episode, 2);
    // Solved later while resolved: remembered, so the poller pages a reopen.
    let (solved, fx) = step(&p, &done, seen("solved", true), T0 + 2 * MIN);
    assert!(fx.is_empty() && solved.ticket.status == "solved");
    let (next, _) = step(&p, &solved, seen("open", true), T0 + 3 * MIN);
    assert_eq!(next.episode, 2);
    // A ticket that is no emergency any more stays quiet.
    let mut calm = ticket("4711");
    calm.priority = "normal".into();
    calm.status = "open".into();
    let ev = Event::Ticket {
        ticket: calm,
        polled: false,
    };
    assert!(step_ignored(&p, &done, ev, T0 + 4 * MIN));
}

#[test]
fn a_refused_page_is_undeliverable_until_repaged_and_then_sent_again() {
    let p = crisis_policy();
    let failed = Event::DeliveryFailed {
        effect: EffectKind::Page,
        error: "400 invalid routing key".into(),
    };
    let (inc, _) = step(&p, &fresh(&p), failed, T0 + 100);
    assert!(inc.is_undeliverable() && !inc.paged());
    assert_eq!(inc.deadlines.ack, None, "no clock for a page nobody got");
    // An escalation asked for meanwhile waits with it.
    let esc = Event::Escalate {
        by: Who::named("ana"),
        reason: "db down".into(),
        via: Source::Cli,
    };
    let (inc, _) = step(&p, &inc, esc, T0 + MIN);
    let repage = Event::Repage {
        by: Who::new("Ana", Some("ana@acme.example".into())),
        via: Source::Cli,
    };
    let (inc, fx) = step(&p, &inc, repage.clone(), T0 + 2 * MIN);
    assert_eq!(kinds(&fx), vec![EffectKind::Page, EffectKind::PageEscalate]);
    assert!(!inc.is_undeliverable() && inc.page_pending);
    // Nothing more to re-send until PagerDuty refuses again.
    assert!(step_ignored(&p, &inc, repage, T0 + 3 * MIN));
}

#[test]
fn the_same_email_from_two_channels_is_one_responder() {
    let p = Policy::default();
    let ana_app = Who::new("Ana Engineer", Some("ana@acme.example".into()));
    let ana_cli = Who::new("", Some("Ana@Acme.example".into()));
    let (inc, _) = step(
        &p,
        &opened(&p),
        Event::Acknowledge {
            by: ana_app,
            via: Source::Pagerduty,
        },
        T0 + MIN,
    );
    let join = Event::Join {
        by: ana_cli,
        via: Source::Cli,
    };
    assert!(step_ignored(&p, &inc, join, T0 + 2 * MIN));
    assert!(inc.crisis.is_none());
    let (inc, _) = step(
        &p,
        &inc,
        Event::Join {
            by: Who::new("Bo", Some("bo@acme.example".into())),
            via: Source::Slack,
        },
        T0 + 3 * MIN,
    );
    assert_eq!(inc.responders.len(), 2);
    assert!(inc.crisis.is_some(), "two people: a crisis");
}

#[test]
fn who_loads_from_0_1_0_strings_and_round_trips() {
    let old: Vec<Who> = serde_json::from_str(r#"["ana", {"name": "Bo", "email": "BO@x.example"}]"#)
        .expect("both forms load");
    assert_eq!(old[0], Who::named("ana"));
    assert_eq!(old[1].email.as_deref(), Some("bo@x.example"));
    let json = serde_json::to_string(&old).expect("serialises");
    assert_eq!(json, r#"["ana",{"name":"Bo","email":"bo@x.example"}]"#);
}

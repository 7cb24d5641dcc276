//! Tests of what follows a crisis (hand-off call, follow-up issue, the
//! timeline in the doc) and of the acknowledgement's lease.
use super::*;

fn who(name: &str, email: &str) -> Who {
    Who {
        name: name.into(),
        email: Some(email.into()),
    }
}

fn after_policy() -> Policy {
    Policy {
        handoff_after: Some(60 * MIN),
        follow_up: true,
        timezone: "Europe/Amsterdam".into(),
        ..crisis_policy()
    }
}

/// A crisis with a doc and two responders (ana acknowledged, bo joined).
fn crisis_with_doc(p: &Policy) -> Incident {
    let (inc, _) = step(
        p,
        &opened(p),
        Event::Acknowledge {
            by: who("Ana", "ana@acme.example"),
            via: Source::Cli,
        },
        T0 + MIN,
    );
    let (inc, _) = step(
        p,
        &inc,
        Event::Join {
            by: who("Bo", "bo@acme.example"),
            via: Source::Slack,
        },
        T0 + 2 * MIN,
    );
    assert!(inc.crisis.is_some(), "two responders declare a crisis");
    let doc = Doc {
        id: "d1".into(),
        url: "https://docs.example/d1".into(),
    };
    step(
        p,
        &inc,
        Event::Delivered {
            effect: EffectKind::CreateDoc,
            outcome: Some(Outcome::Doc { doc }),
        },
        T0 + 2 * MIN,
    )
    .0
}

fn resolve(p: &Policy, inc: &Incident, at: Millis) -> (Incident, Vec<Effect>) {
    step(
        p,
        inc,
        Event::Resolve {
            by: who("Ana", "ana@acme.example"),
            via: Source::Cli,
        },
        at,
    )
}

#[test]
fn resolving_a_crisis_appends_the_timeline_and_books_the_handoff_for_everyone() {
    let p = after_policy();
    let inc = crisis_with_doc(&p);
    let (inc, fx) = resolve(&p, &inc, T0 + 30 * MIN);
    let timeline = fx.iter().find_map(|e| match e {
        Effect::AppendTimeline { text } => Some(text.clone()),
        _ => None,
    });
    let timeline = timeline.expect("the timeline goes into the doc");
    // T0 is 2027-01-15T08:00:00Z: 09:00 in Amsterdam (CET).
    assert!(
        timeline.starts_with("Times in Europe/Amsterdam."),
        "{timeline}"
    );
    assert!(
        timeline.contains("2027-01-15 09:01 CET  acknowledged by Ana"),
        "{timeline}"
    );
    assert!(timeline.contains("resolved by Ana"), "{timeline}");
    assert!(
        timeline.contains("Ana <ana@acme.example>, Bo <bo@acme.example>"),
        "{timeline}"
    );
    let booking = fx.iter().find_map(|e| match e {
        Effect::BookHandoff {
            start,
            minutes,
            attendees,
            ..
        } => Some((*start, *minutes, attendees.clone())),
        _ => None,
    });
    assert_eq!(
        booking,
        Some((
            T0 + 90 * MIN,
            30,
            vec![
                "ana@acme.example".to_string(),
                "bo@acme.example".to_string()
            ]
        ))
    );
    // The follow-up issue waits for the call, so that it can link it.
    assert!(!kinds(&fx).contains(&EffectKind::OpenFollowUp));
    assert!(inc.crisis.as_ref().is_some_and(|c| c.handoff.is_none()));
}

#[test]
fn the_booked_call_is_linked_then_the_follow_up_issue_opens_once() {
    let p = after_policy();
    let (inc, _) = resolve(&p, &crisis_with_doc(&p), T0 + 30 * MIN);
    let handoff = Handoff {
        meet_url: "https://meet.google.com/abc-defg-hij".into(),
        event_url: "https://calendar.google.com/event?eid=1".into(),
    };
    let booked = Event::Delivered {
        effect: EffectKind::BookHandoff,
        outcome: Some(Outcome::Handoff {
            handoff: handoff.clone(),
        }),
    };
    let (inc, fx) = step(&p, &inc, booked.clone(), T0 + 31 * MIN);
    assert_eq!(
        inc.crisis.as_ref().and_then(|c| c.handoff.clone()),
        Some(handoff)
    );
    let issue = fx.iter().find_map(|e| match e {
        Effect::OpenFollowUp { title, description } => Some((title.clone(), description.clone())),
        _ => None,
    });
    let (title, description) = issue.expect("the follow-up issue");
    assert!(title.starts_with("Crisis follow-up: #4711"), "{title}");
    assert!(
        description.contains("meet.google.com/abc-defg-hij"),
        "{description}"
    );
    assert!(
        description.contains("- [ ] Move the pertinent know-how"),
        "{description}"
    );
    assert!(
        description.contains("https://docs.example/d1"),
        "{description}"
    );
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::PageNote { text } if text.contains("meet.google.com"))),
        "the call on the PagerDuty incident"
    );
    assert!(
        fx.iter().any(
            |e| matches!(e, Effect::ChatPost { text, .. } if text.contains("meet.google.com"))
        ),
        "the call in the crisis threads"
    );
    // A second delivery report changes nothing.
    assert!(step_ignored(&p, &inc, booked, T0 + 32 * MIN));
    let opened = Event::Delivered {
        effect: EffectKind::OpenFollowUp,
        outcome: Some(Outcome::FollowUp {
            url: "https://gitlab.example/support/crises/-/issues/7".into(),
        }),
    };
    let (inc, fx) = step(&p, &inc, opened.clone(), T0 + 33 * MIN);
    assert_eq!(
        inc.crisis.as_ref().and_then(|c| c.follow_up.as_deref()),
        Some("https://gitlab.example/support/crises/-/issues/7")
    );
    assert!(fx.iter().all(|e| e.kind() == EffectKind::ChatPost) && !fx.is_empty());
    assert!(step_ignored(&p, &inc, opened, T0 + 34 * MIN));
}

#[test]
fn without_a_calendar_the_issue_opens_at_resolution_and_a_failed_booking_still_opens_it() {
    let p = Policy {
        handoff_after: None,
        ..after_policy()
    };
    let (_, fx) = resolve(&p, &crisis_with_doc(&p), T0 + 30 * MIN);
    assert!(kinds(&fx).contains(&EffectKind::OpenFollowUp));
    assert!(!kinds(&fx).contains(&EffectKind::BookHandoff));

    let p = after_policy();
    let (inc, _) = resolve(&p, &crisis_with_doc(&p), T0 + 30 * MIN);
    let (_, fx) = step(
        &p,
        &inc,
        Event::DeliveryFailed {
            effect: EffectKind::BookHandoff,
            error: "Google Calendar answered 403".into(),
        },
        T0 + 31 * MIN,
    );
    assert!(kinds(&fx).contains(&EffectKind::OpenFollowUp));
    assert!(
        fx.iter().any(
            |e| matches!(e, Effect::ChatPost { text, .. } if text.contains("book it by hand"))
        )
    );
}

#[test]
fn no_crisis_no_after_care_and_nothing_without_the_features() {
    let p = after_policy();
    let (inc, _) = step(&p, &opened(&p), ack("ana", Source::Cli), T0 + MIN);
    let (_, fx) = resolve(&p, &inc, T0 + 2 * MIN);
    assert_eq!(kinds(&fx), vec![EffectKind::PageResolve]);

    let p = crisis_policy();
    let (_, fx) = resolve(&p, &crisis_with_doc(&p), T0 + 30 * MIN);
    assert!(kinds(&fx).contains(&EffectKind::AppendTimeline));
    assert!(!kinds(&fx).contains(&EffectKind::BookHandoff));
    assert!(!kinds(&fx).contains(&EffectKind::OpenFollowUp));
}

#[test]
fn customer_text_in_the_follow_up_issue_mentions_nobody() {
    let p = Policy {
        handoff_after: None,
        ..after_policy()
    };
    let mut inc = crisis_with_doc(&p);
    inc.ticket.title = "@all [click](https://evil.example) <b>".into();
    let (_, fx) = resolve(&p, &inc, T0 + 30 * MIN);
    let description = fx
        .iter()
        .find_map(|e| match e {
            Effect::OpenFollowUp { description, .. } => Some(description.clone()),
            _ => None,
        })
        .expect("issue");
    assert!(!description.contains("@all"), "{description}");
    assert!(!description.contains("[click]("), "{description}");
    assert!(!description.contains("<b>"), "{description}");
}

fn lease_policy() -> Policy {
    Policy {
        ack_lease: Some(30 * MIN),
        ..Policy::default()
    }
}

#[test]
fn an_ack_without_progress_is_re_paged_once_per_lease() {
    let p = lease_policy();
    let (inc, _) = step(&p, &opened(&p), ack("ana", Source::Pagerduty), T0 + MIN);
    assert_eq!(inc.deadlines.lease, Some(T0 + 31 * MIN));
    assert!(step_ignored(&p, &inc, Event::Tick, T0 + 30 * MIN));
    let (inc, fx) = step(&p, &inc, Event::Tick, T0 + 31 * MIN);
    let note = fx.iter().find_map(|e| match e {
        Effect::PageEscalate { level, note, .. } => Some((*level, note.clone())),
        _ => None,
    });
    let (level, note) = note.expect("re-paged");
    assert_eq!(level, 1, "at the current level");
    assert!(note.contains("no progress for 30m"), "{note}");
    assert_eq!(inc.status, Status::Acknowledged);
    assert_eq!(
        inc.deadlines.lease,
        Some(T0 + 61 * MIN),
        "one re-page per lease"
    );
    // The same person acknowledging again renews the lease.
    let (inc, fx) = step(&p, &inc, ack("ana", Source::Pagerduty), T0 + 35 * MIN);
    assert!(fx.is_empty());
    assert_eq!(inc.deadlines.lease, Some(T0 + 65 * MIN));
}

#[test]
fn progress_renews_the_lease_and_reaches_pagerduty() {
    let p = lease_policy();
    let (inc, _) = step(&p, &opened(&p), ack("ana", Source::Cli), T0 + MIN);
    let (inc, fx) = step(
        &p,
        &inc,
        Event::Progress {
            by: "ana".into(),
            what: "failing over the database".into(),
            via: Source::Cli,
        },
        T0 + 20 * MIN,
    );
    assert_eq!(inc.deadlines.lease, Some(T0 + 50 * MIN));
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::PageNote { text } if text.contains("failing over")))
    );
    let (inc, _) = step(
        &p,
        &inc,
        Event::Join {
            by: "bo".into(),
            via: Source::Slack,
        },
        T0 + 40 * MIN,
    );
    assert_eq!(inc.deadlines.lease, Some(T0 + 70 * MIN));
    assert!(step_ignored(
        &p,
        &inc,
        Event::Progress {
            by: "ana".into(),
            what: "  ".into(),
            via: Source::Cli,
        },
        T0 + 41 * MIN
    ));
    let (inc, _) = resolve(&p, &inc, T0 + 45 * MIN);
    assert_eq!(inc.deadlines.lease, None, "resolution ends the lease");
}

#[test]
fn a_note_added_in_pagerduty_renews_the_lease_without_an_echo() {
    let p = lease_policy();
    let (inc, _) = step(&p, &opened(&p), ack("ana", Source::Pagerduty), T0 + MIN);
    let (inc, fx) = step(
        &p,
        &inc,
        Event::Progress {
            by: "bo".into(),
            what: "failing over the DB".into(),
            via: Source::Pagerduty,
        },
        T0 + 25 * MIN,
    );
    assert_eq!(inc.deadlines.lease, Some(T0 + 55 * MIN));
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::PageNote { .. })),
        "not written back to PagerDuty, where it came from: {fx:?}"
    );
    // The old expiry passes: no re-page.
    assert!(step_ignored(&p, &inc, Event::Tick, T0 + 31 * MIN));
    // A note with no text (trimmed by PagerDuty) still counts.
    let (inc, _) = step(
        &p,
        &inc,
        Event::Progress {
            by: "bo".into(),
            what: String::new(),
            via: Source::Pagerduty,
        },
        T0 + 40 * MIN,
    );
    assert_eq!(inc.deadlines.lease, Some(T0 + 70 * MIN));
}

#[test]
fn a_public_reply_on_the_ticket_renews_the_lease_and_tells_pagerduty() {
    let p = lease_policy();
    let (inc, _) = step(&p, &opened(&p), ack("ana", Source::Pagerduty), T0 + MIN);
    let (inc, fx) = step(
        &p,
        &inc,
        Event::Progress {
            by: "Zendesk agent 42".into(),
            what: "replied publicly on ticket #4711".into(),
            via: Source::Zendesk,
        },
        T0 + 29 * MIN,
    );
    assert_eq!(inc.deadlines.lease, Some(T0 + 59 * MIN));
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::PageNote { text } if text.contains("replied publicly"))),
        "{fx:?}"
    );
    // Before the acknowledgement there is no lease to renew.
    let (fresh, _) = step(
        &p,
        &opened(&p),
        Event::Progress {
            by: "Zendesk agent 42".into(),
            what: "replied publicly on ticket #4711".into(),
            via: Source::Zendesk,
        },
        T0 + MIN,
    );
    assert_eq!(fresh.deadlines.lease, None);
}

#[test]
fn without_a_lease_an_ack_lasts() {
    let p = Policy::default();
    let (inc, _) = step(&p, &opened(&p), ack("ana", Source::Cli), T0 + MIN);
    assert_eq!(inc.deadlines.lease, None);
    assert!(step_ignored(
        &p,
        &inc,
        ack("ana", Source::Pagerduty),
        T0 + 2 * MIN
    ));
}

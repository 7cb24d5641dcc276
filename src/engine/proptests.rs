//! Property tests of the rules: random sequences of events at random times
//! must keep the promises, whatever their order.

use proptest::prelude::*;

use super::*;

const MIN: Millis = 60_000;

fn ticket(status: &str) -> Ticket {
    Ticket {
        id: "1".into(),
        title: "down".into(),
        priority: "urgent".into(),
        status: status.into(),
        tags: vec![],
        url: "u".into(),
        requester_name: "D".into(),
        requester_email: "d@c.test".into(),
        organization: "C".into(),
    }
}

fn arb_source() -> impl Strategy<Value = Source> {
    prop_oneof![
        Just(Source::Pagerduty),
        Just(Source::Slack),
        Just(Source::Cli),
        Just(Source::Zendesk)
    ]
}

fn arb_kind() -> impl Strategy<Value = EffectKind> {
    prop_oneof![
        Just(EffectKind::Page),
        Just(EffectKind::PageEscalate),
        Just(EffectKind::CreateDoc),
        Just(EffectKind::ChatPost),
        Just(EffectKind::Mail),
    ]
}

fn arb_event() -> impl Strategy<Value = Event> {
    // Ana from three channels (PagerDuty with her name and e-mail, the CLI
    // with her e-mail only, Slack by handle), Bo by name: two people.
    let who = prop_oneof![
        Just(Who::new("Ana Engineer", Some("ana@acme.example".into()))),
        Just(Who::new("", Some("ANA@acme.example".into()))),
        Just(Who::named("Ana Engineer")),
        Just(Who::named("bo")),
    ];
    prop_oneof![
        3 => Just(Event::Tick),
        1 => Just(Event::Ticket { ticket: ticket("open"), polled: false }),
        1 => Just(Event::Ticket { ticket: ticket("solved"), polled: false }),
        2 => (who.clone(), arb_source()).prop_map(|(by, via)| Event::Acknowledge { by, via }),
        1 => (who.clone(), arb_source()).prop_map(|(by, via)| Event::Escalate { by, reason: "r".into(), via }),
        1 => (who.clone(), arb_source()).prop_map(|(by, via)| Event::DeclareCrisis { by, via }),
        1 => (who.clone(), arb_source()).prop_map(|(by, via)| Event::Join { by, via }),
        1 => (who.clone(), arb_source()).prop_map(|(by, via)| Event::Resolve { by, via }),
        1 => (who, arb_source()).prop_map(|(by, via)| Event::Repage { by, via }),
        1 => Just(Event::Ticket { ticket: ticket("open"), polled: true }),
        2 => arb_kind().prop_map(|effect| Event::Delivered { effect, outcome: None }),
        1 => Just(Event::Delivered {
            effect: EffectKind::CreateDoc,
            outcome: Some(Outcome::Doc { doc: Doc { id: "d".into(), url: "u".into() } })
        }),
        1 => arb_kind().prop_map(|effect| Event::DeliveryFailed { effect, error: "e".into() }),
    ]
}

fn policy() -> Policy {
    Policy {
        fallback_after: Some(2 * MIN),
        slack_channels: vec!["#a".into(), "#b".into()],
        crisis_docs: true,
        ..Policy::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_sequence_keeps_the_promises(steps in prop::collection::vec((arb_event(), 0..(90 * MIN)), 1..60)) {
        let p = policy();
        let mut now: Millis = 1_000_000;
        let Decision::Apply { incident, effects } = apply(&p, None, &Event::Ticket { ticket: ticket("new"), polled: false }, now) else {
            panic!("an emergency opens an incident");
        };
        let mut inc = Incident { id: 1, ..incident };
        // Effects and re-sends per episode.
        let mut episodes: std::collections::BTreeMap<u32, (Vec<EffectKind>, usize)> = Default::default();
        episodes.insert(1, (effects.iter().map(Effect::kind).collect(), 0));
        for (event, gap) in steps {
            now += gap % (10 * MIN);
            let before = inc.clone();
            let Decision::Apply { mut incident, effects } = apply(&p, Some(&inc), &event, now) else { continue };
            if incident.episode != before.episode {
                // A new episode only for a resolved ticket that comes back as
                // an unsolved emergency: reopened, or updated (not polled).
                prop_assert_eq!(before.status, Status::Resolved);
                prop_assert_eq!(incident.episode, before.episode + 1);
                prop_assert_eq!(incident.id, 0, "a new incident for the store to insert");
                let Event::Ticket { polled, .. } = &event else { panic!("only a ticket opens an episode") };
                prop_assert!(!*polled || before.ticket.is_done(), "the poller alone re-paged a ticket resolved elsewhere");
                prop_assert_eq!(&incident.dedup_key, &format!("zendesk-1-{}", incident.episode));
                incident.id = before.id + 1;
            }
            let entry = episodes.entry(incident.episode).or_default();
            if matches!(event, Event::Repage { .. }) {
                entry.1 += 1;
            }
            if incident.deadlines.ack.is_some() {
                // The ack clock runs only once PagerDuty took the page.
                prop_assert!(incident.paged_at.is_some(), "ack armed before the page was accepted");
            }
            for (i, r) in incident.responders.iter().enumerate() {
                prop_assert!(
                    !incident.responders[..i].iter().any(|o| o.same(r)),
                    "one person counted twice: {:?}", incident.responders
                );
            }
            for e in &effects {
                if e.kind() == EffectKind::PageEscalate && event == Event::Tick {
                    // A timer escalates only what nobody acknowledged.
                    prop_assert_eq!(before.status, Status::Triggered);
                }
            }
            entry.0.extend(effects.iter().map(Effect::kind));
            inc = incident;
            if event == Event::Tick {
                // Everything due has fired.
                prop_assert!(inc.deadlines.next().is_none_or(|d| d > now), "{:?} at {}", inc.deadlines, now);
            }
            if inc.status == Status::Resolved {
                prop_assert_eq!(inc.deadlines.ack, None);
                prop_assert_eq!(inc.deadlines.crisis, None);
                prop_assert_eq!(inc.deadlines.fallback, None);
            }
            if inc.status != Status::Triggered {
                prop_assert_eq!(inc.deadlines.ack, None);
            }
        }
        for (episode, (all, repages)) in &episodes {
            let count = |k| all.iter().filter(|e| **e == k).count();
            let pages = count(EffectKind::Page);
            prop_assert!(
                pages >= 1 && pages <= 1 + repages,
                "episode {}: {} pages for {} re-sends", episode, pages, repages
            );
            prop_assert!(count(EffectKind::Mail) <= 1, "one fallback e-mail at most");
            prop_assert!(count(EffectKind::CreateDoc) <= 1, "one crisis doc at most");
            prop_assert!(count(EffectKind::ShareDoc) <= 1);
            prop_assert!(count(EffectKind::DeprecateDoc) <= 1);
        }
    }
}

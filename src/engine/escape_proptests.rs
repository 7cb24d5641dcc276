//! Property tests of customer text in every sink: whatever a ticket (or a
//! responder's name) says, the effects the engine queues stay within each
//! vendor's limits and carry the text as data, and the CLI prints no
//! control character.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::render;

const URL: &str = "https://acme.zendesk.com/agent/tickets/1";
const MAX_TEXT: usize = 256 * 1024;

/// Pieces hostile to one sink or another, and arbitrary Unicode.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<!channel>".to_string()),
        Just("<!everyone>".to_string()),
        Just("<!here>".to_string()),
        Just("<@U012AB3CD>".to_string()),
        Just("<#C0GENERAL1>".to_string()),
        Just("<https://evil.example/ack|Click here to acknowledge>".to_string()),
        Just("&amp;&lt;&".to_string()),
        Just("*bold* _it_ `code` [x](https://e) {requester}".to_string()),
        Just("\u{1b}[2J\u{1b}]0;owned\u{7}".to_string()),
        Just("\r\nBcc: everyone@corp.test\r\n".to_string()),
        Just("\u{9b}31m\u{85}\u{202e}\u{2066}\u{2028}\u{0}\u{7f}".to_string()),
        Just("é漢🚨".to_string()),
        any::<String>(),
        "[\\x00-\\x7f]{0,20}",
    ]
}

/// A text of hostile pieces, repeated up to 256 KiB.
fn text() -> impl Strategy<Value = String> {
    (prop::collection::vec(piece(), 0..12), 0u32..14).prop_map(|(pieces, scale)| {
        let base = pieces.concat();
        let mut s = base.repeat(1usize << scale);
        if s.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        s
    })
}

fn policy(docs: bool) -> Policy {
    Policy {
        slack_channels: vec!["ops".into(), "dev".into()],
        crisis_docs: docs,
        fallback_after: Some(60_000),
        ..Policy::default()
    }
}

/// Opens an incident for a hostile ticket and walks it through every
/// effect that carries customer or responder text.
fn run(title: &str, who: &str, org: &str, docs: bool) -> (Incident, Vec<Effect>) {
    let ticket = Ticket {
        id: "1".into(),
        title: title.into(),
        priority: "urgent".into(),
        status: "new".into(),
        tags: vec![who.into()],
        url: URL.into(),
        requester_name: who.into(),
        requester_email: format!("{who}@c.test"),
        organization: org.into(),
    };
    let p = policy(docs);
    let mut all = Vec::new();
    let Decision::Apply {
        incident: mut inc,
        effects,
    } = apply(
        &p,
        None,
        &Event::Ticket {
            ticket,
            polled: false,
        },
        0,
    )
    else {
        panic!("an urgent ticket opens an incident");
    };
    all.extend(effects);
    let doc = Doc {
        id: "d1".into(),
        url: "https://docs.google.com/document/d/d1/edit".into(),
    };
    let events = [
        Event::DeliveryFailed {
            effect: EffectKind::Page,
            error: "refused".into(),
        },
        Event::Acknowledge {
            by: who.into(),
            via: Source::Slack,
        },
        Event::Acknowledge {
            by: format!("{who}2").into(),
            via: Source::Cli,
        },
        Event::Escalate {
            by: who.into(),
            reason: title.into(),
            via: Source::Cli,
        },
        Event::DeclareCrisis {
            by: format!("{org}3").into(),
            via: Source::Slack,
        },
        Event::Delivered {
            effect: EffectKind::CreateDoc,
            outcome: Some(Outcome::Doc { doc }),
        },
        Event::Join {
            by: format!("{title}4").into(),
            via: Source::Slack,
        },
        Event::Resolve {
            by: who.into(),
            via: Source::Cli,
        },
    ];
    for (n, e) in events.iter().enumerate() {
        let now = 1_000 * (i64::try_from(n).unwrap_or(0) + 1);
        if let Decision::Apply { incident, effects } = apply(&p, Some(&inc), e, now) {
            inc = incident;
            all.extend(effects);
        }
    }
    (inc, all)
}

/// No special sequence, and nothing half-escaped: every `<` is pagerd's
/// ticket link, every `&` starts one of Slack's three escapes.
fn assert_slack_safe(text: &str) -> Result<(), TestCaseError> {
    prop_assert!(text.chars().count() <= render::SLACK_TEXT_MAX);
    let own = format!("<{URL}|#1>");
    let rest = text.replace(&own, "");
    prop_assert!(!rest.contains('<') && !rest.contains('>'), "{}", rest);
    for (i, _) in rest.match_indices('&') {
        let tail = &rest[i..];
        prop_assert!(
            tail.starts_with("&amp;") || tail.starts_with("&lt;") || tail.starts_with("&gt;"),
            "half an escape at {i}"
        );
    }
    Ok(())
}

fn assert_terminal_safe(out: &str) -> Result<(), TestCaseError> {
    for c in out.chars() {
        prop_assert!(
            c == '\n'
                || !(c.is_control()
                    || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')),
            "{:?} in CLI output",
            c
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_ticket_text_renders_safely_in_every_sink(
        title in text(),
        who in piece(),
        org in piece(),
        docs in any::<bool>(),
    ) {
        let (inc, effects) = run(&title, &who, &org, docs);
        let mut announced = false;
        for e in &effects {
            match e {
                Effect::ChatPost { text, buttons, .. } => {
                    assert_slack_safe(text)?;
                    if *buttons {
                        announced = true;
                        // An announcement fits a section block whole.
                        prop_assert!(text.chars().count() <= render::SLACK_SECTION_MAX);
                        prop_assert!(text.contains(&format!("<{URL}|#1>")), "the ticket link works");
                    }
                }
                Effect::Mail { subject, body } => {
                    prop_assert!(!subject.contains(['\r', '\n']));
                    prop_assert!(subject.chars().count() <= render::EMAIL_SUBJECT_MAX);
                    prop_assert!(body.chars().all(|c| c == '\n' || c == '\t' || !c.is_control()));
                    // The customer cannot add lines (say, a fake instruction).
                    prop_assert_eq!(body.lines().count(), 11);
                }
                Effect::Page { summary } => {
                    prop_assert!(summary.chars().count() <= render::PAGERDUTY_SUMMARY_MAX);
                    prop_assert!(!summary.chars().any(char::is_control));
                }
                Effect::PageEscalate { note, .. } | Effect::PageNote { text: note } => {
                    prop_assert!(note.chars().count() <= render::PAGERDUTY_NOTE_MAX);
                }
                Effect::CreateDoc { title, body } => {
                    prop_assert!(title.chars().count() <= render::DRIVE_NAME_MAX);
                    prop_assert!(!title.chars().any(char::is_control));
                    prop_assert!(body.chars().all(|c| c == '\n' || c == '\t' || !c.is_control()));
                }
                Effect::TicketComment { body, .. } => {
                    for (i, c) in body.char_indices() {
                        if matches!(c, '<' | '[' | '{' | '`') {
                            prop_assert!(body[..i].ends_with('\\'), "live {c} in {body}");
                        }
                    }
                }
                _ => {}
            }
        }
        prop_assert!(announced, "the crisis was announced");

        let v = serde_json::to_value(&inc).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let list = crate::client::format_list(&json!({ "incidents": [v.clone()] }));
        prop_assert!(list.contains("#1"));
        assert_terminal_safe(&list)?;
        let show = crate::client::format_show(&json!({
            "incident": v,
            "journal": [{ "at": 0, "event": { "by": who }, "effects": 1 }],
            "outbox": [{ "id": 1, "effect": { "type": "slack_post" }, "state": "done", "attempts": 1, "last_error": title }],
        }));
        assert_terminal_safe(&show)?;
        assert_terminal_safe(&render::terminal_json(&json!({ "title": title })))?;
    }
}

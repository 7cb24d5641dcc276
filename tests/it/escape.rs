//! Customer text is data, never markup: a hostile ticket reaches Slack as
//! text that shows it (no mention, no disguised link), within Slack's
//! limits, and the CLI prints it without terminal escapes.

use pagerd::fakes::stand_ins::{Extra, Options};
use pagerd::fakes::zendesk::TicketSpec;
use serde_json::{Value, json};

use crate::util::{Harness, eventually};

const CHANNELS: [&str; 3] = ["infrastructure", "development", "general"];
const HOSTILE_TITLE: &str =
    "<!channel> DB down <https://evil.example/ack|Click here to acknowledge>";
const HOSTILE_REQUESTER: &str = "<!everyone>";

fn ticket(id: u64, subject: String, requester: &str, organization: &str) -> TicketSpec {
    TicketSpec {
        id,
        subject,
        priority: "urgent".into(),
        status: "new".into(),
        tags: vec![],
        requester_name: requester.into(),
        requester_email: "dana@customer.test".into(),
        organization: organization.into(),
    }
}

async fn crisis_harness() -> Harness {
    let mut h = Harness::new(
        Options {
            slack: true,
            google: true,
            email: true,
            ..Options::default()
        },
        Extra {
            policy: "crisis_after = \"300ms\"\nack_timeout = \"1h\"".into(),
            // Responders' names are untrusted too: these come from [people].
            people: "\"boss@acme.example\" = \"<!here> <@U0BOSS> &\"\n\
                     \"ana@acme.example\" = \"ana\\u001b[8m\"\n"
                .into(),
            ..Extra::default()
        },
    )
    .await;
    h.start().await;
    h
}

async fn send(h: &Harness, spec: TicketSpec) {
    let id = spec.id;
    h.vendors.zendesk.upsert_ticket(spec);
    let status = h
        .vendors
        .zendesk
        .send_webhook(&h.url("/webhooks/zendesk"), id)
        .await
        .expect("webhook sent");
    assert_eq!(status, 200);
}

/// Every mrkdwn text of a message: `text` and the section blocks.
fn texts(text: &str, blocks: Option<&Value>) -> Vec<String> {
    let mut all = vec![text.to_string()];
    for b in blocks.and_then(Value::as_array).into_iter().flatten() {
        if let Some(t) = b.pointer("/text/text").and_then(Value::as_str) {
            all.push(t.to_string());
        }
    }
    all
}

/// No special sequence Slack would run: everything between `<` and `>` is
/// pagerd's own link to the ticket.
fn assert_no_live_sequence(text: &str, ticket_link: &str) {
    let rest = text.replace(ticket_link, "");
    for live in ["<!channel>", "<!everyone>", "<!here>", "<@", "<#", "<http"] {
        assert!(!rest.contains(live), "live {live} in {text}");
    }
    assert!(!rest.contains('<'), "{text}");
}

#[tokio::test]
async fn a_hostile_ticket_is_shown_in_slack_never_run() {
    let mut h = crisis_harness().await;
    send(
        &h,
        ticket(4711, HOSTILE_TITLE.into(), HOSTILE_REQUESTER, ""),
    )
    .await;
    let slack = h.vendors.slack.as_ref().unwrap();
    eventually("announced in every channel", || async {
        CHANNELS.iter().all(|c| !slack.top_level_in(c).is_empty())
    })
    .await;
    // A responder whose name is a mention: the thread shows it as text.
    let (status, body) = h
        .admin(
            reqwest::Method::POST,
            "/incidents/1/ack",
            Some(json!({ "by": "boss@acme.example" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    eventually("the ack in every thread", || async {
        CHANNELS.iter().all(|c| !slack.replies_in(c).is_empty())
    })
    .await;

    let link = format!("<{}/agent/tickets/4711|#4711>", h.vendors.zendesk.url());
    for c in CHANNELS {
        let top = slack.top_level_in(c);
        assert_eq!(top.len(), 1, "one announcement in #{c}");
        let m = &top[0];
        assert!(
            m.text.contains(&link),
            "the ticket link still works: {}",
            m.text
        );
        for t in texts(&m.text, m.blocks.as_ref()) {
            assert_no_live_sequence(&t, &link);
            // The customer's words are there, as text.
            assert!(
                t.contains("&lt;!channel&gt; DB down &lt;https://evil.example/ack|Click here to acknowledge&gt;"),
                "{t}"
            );
            assert!(t.contains("&lt;!everyone&gt;"), "{t}");
        }
        let buttons = m.blocks.as_ref().map(Value::to_string).unwrap_or_default();
        assert!(buttons.contains("pagerd_ack"), "{buttons}");
        for r in slack.replies_in(c) {
            assert_no_live_sequence(&r.text, &link);
            assert!(
                r.text.contains("&lt;!here&gt; &lt;@U0BOSS&gt; &amp;"),
                "{}",
                r.text
            );
        }
    }
    // The same text reaches the doc and the ticket as plain text / Markdown.
    let google = h.vendors.google.as_ref().unwrap();
    eventually("a crisis doc", || async { !google.docs().is_empty() }).await;
    let doc = &google.docs()[0];
    assert!(doc.text.contains(HOSTILE_TITLE), "{}", doc.text);
    h.stop().await;
}

#[tokio::test]
async fn a_200_kb_title_still_announces_the_crisis_everywhere() {
    let mut h = crisis_harness().await;
    let title = format!("{} & more ", "DB down <!channel> ".repeat(200 * 1024 / 19));
    assert!(title.len() > 200_000);
    send(&h, ticket(4711, title, "Dana", "Customer Corp")).await;
    let slack = h.vendors.slack.as_ref().unwrap();
    eventually("announced in every channel", || async {
        CHANNELS.iter().all(|c| !slack.top_level_in(c).is_empty())
    })
    .await;
    let link = format!("<{}/agent/tickets/4711|#4711>", h.vendors.zendesk.url());
    for c in CHANNELS {
        let m = &slack.top_level_in(c)[0];
        assert!(m.text.chars().count() <= 40_000, "{}", m.text.len());
        assert!(m.text.contains(&link) && m.text.contains("Customer Corp"));
        let blocks = m.blocks.as_ref().expect("blocks");
        let section = blocks[0]["text"]["text"].as_str().expect("section");
        assert!(section.chars().count() <= 3_000);
        assert!(section.contains("DB down &lt;!channel&gt;"));
        for t in texts(&m.text, Some(blocks)) {
            assert_no_live_sequence(&t, &link);
        }
    }
    // Nothing was refused for its size.
    let body = h.incident(1).await;
    for e in body["outbox"].as_array().into_iter().flatten() {
        assert_ne!(e["state"], "failed", "{e}");
    }
    h.stop().await;
}

/// What a terminal would act on: C0/C1 controls (but newline), DEL, bidi
/// overrides and line separators.
fn terminal_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_no_control_byte_of_a_ticket() {
    let extra = Extra {
        policy: "ack_timeout = \"1h\"".into(),
        people: "\"ana@acme.example\" = \"ana\\u001b[8m\"\n".into(),
        ..Extra::default()
    };
    let Some(mut h) =
        Harness::new_on(crate::util::Backend::Sqlite, Default::default(), extra).await
    else {
        return;
    };
    h.start().await;
    let title = "\u{1b}[2J\u{1b}]0;pwned\u{7}DB down\r\u{9b}31m\u{202e}nwod\u{7f}\u{0}";
    send(
        &h,
        ticket(4711, title.into(), "\u{1b}[31mDana", "Corp\u{1b}[0m"),
    )
    .await;
    let (status, body) = h
        .admin(
            reqwest::Method::POST,
            "/incidents/1/ack",
            Some(json!({ "by": "ana@acme.example" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cfg = h.config_path.clone();
    let outs = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_pagerd"))
                .arg("--config")
                .arg(&cfg)
                .args(args)
                .output()
                .expect("run pagerd")
        };
        [
            run(&["incidents", "list"]),
            run(&["incidents", "show", "1"]),
            run(&["incidents", "list", "--json"]),
            run(&["incidents", "show", "1", "--json"]),
        ]
    })
    .await
    .expect("cli");
    for o in &outs {
        assert!(o.status.success(), "{o:?}");
        let out = String::from_utf8(o.stdout.clone()).expect("UTF-8");
        assert!(out.contains("DB down"), "{out}");
        assert!(!o.stdout.contains(&0x1b), "ESC in {out:?}");
        let bad: Vec<char> = out.chars().filter(|&c| terminal_unsafe(c)).collect();
        assert!(bad.is_empty(), "{bad:?} in {out:?}");
    }
    let list = String::from_utf8_lossy(&outs[0].stdout).to_string();
    assert!(list.contains("\u{fffd}[2J"), "shown, not run: {list}");
    let json: Value = serde_json::from_slice(&outs[3].stdout).expect("still JSON");
    assert_eq!(json["incident"]["ticket"]["title"], title);
}

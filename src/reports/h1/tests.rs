//! The HackerOne report's life as the webhook tells it: the countdown of a
//! disclosure, the closure reminder waiting for its ticket, first-wins
//! events, the ticket ↔ report rule, the config keys and the words.

use super::*;
use crate::reports::tests::config;
use crate::reports::{Report, ReportState, Thread, text};

const DAY: Millis = 86_400_000;

fn h1(lines: &str) -> HackerOneConfig {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("h1-secret"), "h1-webhook-secret\n").unwrap();
    config(
        dir.path(),
        &format!("timezone = \"Europe/Amsterdam\"\n{lines}"),
    )
    .unwrap()
    .hackerone
    .expect("[hackerone] is on")
}

fn requested(at: Millis) -> H1Report {
    H1Report::new("548", at)
        .apply(&H1Change::Event(H1Event::DisclosureRequested, at), at)
        .unwrap()
}

#[test]
fn a_disclosure_request_counts_down_thirty_days_and_reminds_on_day_25_once() {
    let cfg = h1("");
    assert_eq!(cfg.disclosure_after.as_secs(), 30 * 86_400);
    assert_eq!(cfg.disclosure_remind_before.as_secs(), 5 * 86_400);
    let r0 = 1_800_000_000_000;
    let h = requested(r0);
    assert_eq!(h.release_at(&cfg), Some(r0 + 30 * DAY));
    assert_eq!(h.disclosure_remind_at(&cfg), Some(r0 + 25 * DAY));
    assert_eq!(h.next_due(false, &cfg), Some(r0 + 25 * DAY));
    assert_eq!(h.step(r0 + 25 * DAY - 1, false, &cfg), None, "day 24");
    assert_eq!(
        h.step(r0 + 25 * DAY, false, &cfg),
        Some(H1Notice::Disclosure),
        "day 25, with or without the ticket"
    );
    // Posting, then posted: nothing more, ever.
    let posting = h
        .apply(&H1Change::Posting(H1Notice::Disclosure), r0 + 25 * DAY)
        .unwrap();
    assert_eq!(
        posting.step(r0 + 25 * DAY, true, &cfg),
        Some(H1Notice::Disclosure),
        "a crash before the outcome: tried again"
    );
    let posted = posting
        .apply(
            &H1Change::Posted(H1Notice::Disclosure, r0 + 25 * DAY + 5),
            r0 + 25 * DAY + 5,
        )
        .unwrap();
    assert_eq!(posted.posting, None);
    assert_eq!(posted.disclosure_reminded_at, Some(r0 + 25 * DAY + 5));
    assert_eq!(posted.step(r0 + 29 * DAY, true, &cfg), None);
    assert_eq!(posted.next_due(true, &cfg), None);
    assert_eq!(
        posted.apply(&H1Change::Posting(H1Notice::Disclosure), r0 + 26 * DAY),
        None,
        "settled: no second post"
    );
    // A second request later does not restart the countdown.
    assert_eq!(
        h.apply(
            &H1Change::Event(H1Event::DisclosureRequested, r0 + DAY),
            r0 + DAY
        ),
        None
    );
}

#[test]
fn becoming_public_stops_the_countdown() {
    let cfg = h1("");
    let h = requested(0);
    let public = h
        .apply(&H1Change::Event(H1Event::Disclosed, 10 * DAY), 10 * DAY)
        .unwrap();
    assert_eq!(public.disclosed_at, Some(10 * DAY));
    assert_eq!(public.step(25 * DAY, true, &cfg), None);
    assert_eq!(public.next_due(true, &cfg), None);
    // Public before any request: no countdown at all.
    let early = H1Report::new("1", 0)
        .apply(&H1Change::Event(H1Event::Disclosed, 5), 5)
        .unwrap();
    let late_request = early
        .apply(&H1Change::Event(H1Event::DisclosureRequested, 6), 6)
        .unwrap();
    assert_eq!(late_request.step(40 * DAY, true, &cfg), None);
}

#[test]
fn a_short_clock_is_configurable_and_must_leave_room_for_the_reminder() {
    let cfg = h1("disclosure_after = \"6s\"\ndisclosure_remind_before = \"4s\"");
    let h = requested(1_000);
    assert_eq!(h.disclosure_remind_at(&cfg), Some(3_000));
    assert_eq!(h.release_at(&cfg), Some(7_000));
    let dir = tempfile::tempdir().unwrap();
    let e = config(
        dir.path(),
        "timezone = \"UTC\"\ndisclosure_after = \"5d\"\ndisclosure_remind_before = \"5d\"",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("hackerone.disclosure_remind_before"), "{e}");
}

#[test]
fn the_closure_reminder_waits_for_the_ticket_and_settles_once() {
    let cfg = h1("");
    let closed = H1Report::new("548", 0)
        .apply(
            &H1Change::Event(H1Event::Closed(Closure::Resolved), 100),
            100,
        )
        .unwrap();
    // No ticket known yet: nothing due, and the timer need not wake for it
    // (the link wakes it).
    assert_eq!(closed.step(1_000, false, &cfg), None);
    assert_eq!(closed.next_due(false, &cfg), None);
    // Linked: due at once.
    assert_eq!(closed.step(1_000, true, &cfg), Some(H1Notice::Closed));
    assert_eq!(closed.next_due(true, &cfg), Some(100));
    // The ticket is solved: settled without a post.
    let done = closed.apply(&H1Change::TicketDone, 1_000).unwrap();
    assert_eq!(done.close_notice, Some(CloseNotice::TicketDone));
    assert_eq!(done.step(2_000, true, &cfg), None);
    assert_eq!(
        done.apply(&H1Change::Posting(H1Notice::Closed), 2_000),
        None
    );
    // Or posted: settled too; a later closure event changes nothing.
    let posted = closed
        .apply(&H1Change::Posted(H1Notice::Closed, 1_000), 1_000)
        .unwrap();
    assert_eq!(posted.close_notice, Some(CloseNotice::Posted));
    assert_eq!(
        posted.apply(
            &H1Change::Event(H1Event::Closed(Closure::Spam), 3_000),
            3_000
        ),
        None,
        "the first closure wins"
    );
    assert_eq!(posted.step(5_000, true, &cfg), None);
}

#[test]
fn a_ticket_names_its_report_by_external_id_else_by_subject() {
    assert_eq!(
        report_id_of(Some("548"), "anything").as_deref(),
        Some("548")
    );
    assert_eq!(report_id_of(Some(" #548 "), "").as_deref(), Some("548"));
    // Not a report id: the subject decides.
    assert_eq!(
        report_id_of(Some("crm-77"), "Report #1234: XSS in login").as_deref(),
        Some("1234")
    );
    assert_eq!(
        report_id_of(None, "[HackerOne] New report #99 (SSRF)").as_deref(),
        Some("99")
    );
    assert_eq!(report_id_of(Some(""), "REPORT #7").as_deref(), Some("7"));
    for nothing in ["XSS in #42", "report 42", "Report #", "reports #x1", ""] {
        assert_eq!(report_id_of(None, nothing), None, "{nothing}");
    }
    assert!(valid_id("548") && !valid_id("5a8") && !valid_id("") && !valid_id(&"9".repeat(21)));
}

#[test]
fn the_webhook_secret_is_optional_read_from_its_file_and_never_empty() {
    assert!(h1("").webhook_secret.is_none(), "off by default");
    let on = h1("webhook_secret_file = \"h1-secret\"");
    assert_eq!(
        on.webhook_secret.as_ref().map(|s| s.expose().trim()),
        Some("h1-webhook-secret")
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let e = config(
        dir.path(),
        "timezone = \"UTC\"\nwebhook_secret_file = \"empty\"",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("hackerone.webhook_secret_file"), "{e}");
}

fn watched(reminder: bool) -> Report {
    let mut r = Report::new(
        &crate::engine::Ticket {
            id: "4711".into(),
            title: "XSS in <!channel> login".into(),
            url: "https://acme.zendesk.com/agent/tickets/4711".into(),
            priority: "normal".into(),
            status: "new".into(),
            tags: vec!["hackerone".into()],
            requester_name: String::new(),
            requester_email: String::new(),
            organization: String::new(),
        },
        0,
        (10, 5),
        0,
    );
    r.h1_report = Some("548".into());
    if reminder {
        r.state = ReportState::Reminded;
        r.reminder = Some(Thread {
            channel: "C0SECURIT1".into(),
            ts: "1.000100".into(),
        });
    }
    r
}

#[test]
fn the_notices_say_what_to_do_and_show_researcher_text_as_text() {
    let cfg = h1("");
    let r0 = "2027-03-01T09:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let h = requested(r0);
    let t = text::disclosure(&h, &cfg, Some(&watched(true)), r0 + 25 * DAY);
    assert!(
        t.contains("<https://hackerone.com/reports/548|HackerOne report #548>"),
        "{t}"
    );
    assert!(
        t.contains("*Wed 2027-03-31 11:00 CEST*"),
        "the release date: {t}"
    );
    assert!(t.contains("in 5d"), "{t}");
    for item in text::DISCLOSURE_CHECKLIST {
        assert!(t.contains(item), "{t}");
    }
    assert!(t.contains("no sensitive information") && t.contains("merge request"));
    assert!(
        t.contains("&lt;!channel&gt;") && !t.contains("<!channel>"),
        "{t}"
    );
    let closed = H1Report::new("548", 0)
        .apply(&H1Change::Event(H1Event::Closed(Closure::Duplicate), 1), 1)
        .unwrap();
    let c = text::closed(&closed, &watched(false), "open");
    assert!(
        c.contains("<https://acme.zendesk.com/agent/tickets/4711|#4711>"),
        "{c}"
    );
    assert!(
        c.contains("closed as a duplicate") && c.contains("Close ticket #4711"),
        "{c}"
    );
    assert!(!c.contains("<!channel>"), "{c}");
}

//! Tests of the report's life, its deadlines from `[hackerone]`, and its
//! words. The deadline examples of the issue go through the config file,
//! as the daemon reads it.

use std::path::Path;

use jiff::Timestamp;

use super::config::HackerOneConfig;
use super::*;
use crate::config::Config;
use crate::vendors::zendesk::comments::CommentInfo;

/// A valid config with `[slack]` and these `[hackerone]` lines.
pub(crate) fn config(dir: &Path, hackerone: &str) -> Result<Config, crate::config::ConfigError> {
    Config::parse(&dir.join("pagerd.toml"), &text(dir, hackerone))
}

/// The text of [`config`] (its secret files written in `dir`).
fn text(dir: &Path, hackerone: &str) -> String {
    for f in ["zd-token", "zd-secret", "pd-key", "pd-token", "slack-token"] {
        std::fs::write(dir.join(f), "s3cr3t-value\n").unwrap();
    }
    format!(
        r#"
[zendesk]
url = "https://acme.zendesk.com"
email = "pagerd@acme.example"
api_token_file = "zd-token"
webhook_secret_file = "zd-secret"

[pagerduty]
routing_key_file = "pd-key"
api_token_file = "pd-token"
from = "oncall@acme.example"

[slack]
bot_token_file = "slack-token"

[hackerone]
{hackerone}
"#
    )
}

fn h1(lines: &str) -> HackerOneConfig {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), lines)
        .unwrap()
        .hackerone
        .expect("[hackerone] is on")
}

fn ms(text: &str) -> Millis {
    text.parse::<Timestamp>().unwrap().as_millisecond()
}

const AMSTERDAM: &str = r#"
timezone = "Europe/Amsterdam"
business_hours = "09:00-17:00"
business_days = ["mon", "tue", "wed", "thu", "fri"]
holidays = ["2027-03-29", "2026-12-25"]
"#;

#[test]
fn the_deadline_examples_of_the_issue() {
    let h = h1(AMSTERDAM);
    assert_eq!(
        h.respond_within,
        std::time::Duration::from_secs(8 * 3600),
        "one business day by default"
    );
    for (created, due, why) in [
        (
            "2027-03-26T15:00:00+01:00",
            "2027-03-30T13:00:00Z",
            "Fri 15:00 CET: 2h on Friday, Monday is a holiday, 6h on Tuesday (CEST): 15:00 CEST",
        ),
        (
            "2026-12-05T10:00:00+01:00",
            "2026-12-07T16:00:00Z",
            "Sat 10:00 CET: the whole of Monday, 17:00 CET",
        ),
        (
            "2026-10-23T15:30:00+02:00",
            "2026-10-26T14:30:00Z",
            "Fri 15:30 CEST: 1h30 on Friday, 6h30 on Monday (CET): 15:30 CET",
        ),
    ] {
        let (respond_by, remind_at) = h.deadlines(ms(created));
        assert_eq!(respond_by, ms(due), "{why}");
        assert_eq!(
            remind_at,
            ms(due) - 2 * 3_600_000,
            "remind_before 2h: {why}"
        );
    }
    assert_eq!(
        h.wall_clock(ms("2027-03-30T13:00:00Z")),
        "Tue 2027-03-30 15:00 CEST"
    );
    assert_eq!(
        h.wall_clock(ms("2026-10-26T14:30:00Z")),
        "Mon 2026-10-26 15:30 CET"
    );
}

#[test]
fn all_day_hours_count_real_time_and_the_defaults_hold() {
    let h = h1(r#"timezone = "UTC"
business_hours = "00:00-24:00"
business_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
respond_within = "2s"
remind_before = "1s""#);
    let t = ms("2027-03-27T23:59:59Z");
    assert_eq!(h.deadlines(t), (t + 2_000, t + 1_000));
    assert_eq!(h.tags, ["hackerone"]);
    assert_eq!(h.channel, "#security");
    assert!(!h.page_on_breach);

    let day = h1(r#"timezone = "UTC"
business_hours = "00:00-24:00""#);
    assert_eq!(day.respond_within.as_secs(), 24 * 3600);
    assert_eq!(day.remind_before.as_secs(), 2 * 3600);
    assert_eq!(day.business_days, ["mon", "tue", "wed", "thu", "fri"]);
}

#[test]
fn a_bad_hackerone_section_is_named_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let problems = |lines: &str| -> Vec<String> {
        match config(dir.path(), lines) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect(),
        }
    };
    let p = problems("");
    assert!(
        p.iter()
            .any(|p| p.starts_with("hackerone.timezone: is required")),
        "{p:?}"
    );
    for (lines, key) in [
        (r#"timezone = "Mars/Olympus""#, "hackerone.timezone"),
        (
            "timezone = \"UTC\"\nbusiness_hours = \"17:00-09:00\"",
            "hackerone.business_hours",
        ),
        (
            "timezone = \"UTC\"\nbusiness_days = [\"mon\", \"funday\"]",
            "hackerone.business_days",
        ),
        (
            "timezone = \"UTC\"\nholidays = [\"25.12.2026\"]",
            "hackerone.holidays",
        ),
        (
            "timezone = \"UTC\"\nrespond_within = \"0s\"",
            "hackerone.respond_within",
        ),
        (
            "timezone = \"UTC\"\nremind_before = \"soon\"",
            "hackerone.remind_before",
        ),
        ("timezone = \"UTC\"\ntags = []", "hackerone.tags"),
        ("timezone = \"UTC\"\nchannel = \" \"", "hackerone.channel"),
        ("timezone = \"UTC\"\nsurprise = 1", "hackerone.surprise"),
    ] {
        let p = problems(lines);
        assert!(p.iter().any(|p| p.starts_with(key)), "{lines}: {p:?}");
    }
    // Without [slack] nothing could be posted.
    let without = text(dir.path(), "timezone = \"UTC\"")
        .replace("[slack]\nbot_token_file = \"slack-token\"\n", "");
    let e = Config::parse(&dir.path().join("pagerd.toml"), &without).unwrap_err();
    assert!(
        e.problems
            .iter()
            .any(|p| p.key == "hackerone" && p.message.contains("[slack]")),
        "{e}"
    );
}

#[test]
fn the_example_config_documents_a_valid_hackerone_section() {
    let example = include_str!("../../config/pagerd.example.toml");
    let start = example
        .find("# [hackerone]")
        .expect("the example shows [hackerone]");
    let section: String = example[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| !l.starts_with("[hackerone]") && !l.starts_with(' '))
        // A path of the production layout, which the test cannot read.
        .filter(|l| !l.starts_with("webhook_secret_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(example[start..].contains("# webhook_secret_file = "));
    for key in [
        "tags",
        "timezone",
        "business_hours",
        "business_days",
        "holidays",
        "respond_within",
        "remind_before",
        "channel",
        "page_on_breach",
        "disclosure_after",
        "disclosure_remind_before",
    ] {
        assert!(section.contains(&format!("{key} = ")), "{key}: {section}");
    }
    let h = h1(&section);
    assert_eq!(h.timezone, "Europe/Amsterdam");
    assert_eq!(h.respond_within.as_secs(), 8 * 3600);
}

fn report(respond_by: Millis, remind_at: Millis) -> Report {
    Report {
        ticket: "4711".into(),
        title: "XSS in <!channel> login".into(),
        url: "https://acme.zendesk.com/agent/tickets/4711".into(),
        created_at: 0,
        respond_by,
        remind_at,
        state: ReportState::Waiting,
        posting: None,
        reminder: None,
        answered_at: None,
        paged_at: None,
        seen_at: 0,
        updated_at: 0,
        h1_report: None,
    }
}

fn thread() -> Thread {
    Thread {
        channel: "C0SECURITY".into(),
        ts: "1.000100".into(),
    }
}

#[test]
fn a_report_moves_forward_only_and_answered_is_final() {
    let r = report(1_000, 500);
    assert_eq!(r.next_due(false), Some(500));
    assert_eq!(r.step(499, false), None);
    assert_eq!(r.step(500, false), Some(Step::Post(Notice::Reminder)));

    let posting = r
        .apply(&ReportChange::Posting(Notice::Reminder), 500)
        .unwrap();
    assert_eq!(posting.posting, Some(Notice::Reminder));
    assert_eq!(posting.updated_at, 500);
    assert_eq!(
        posting.apply(&ReportChange::Posting(Notice::Reminder), 501),
        None,
        "an intent is recorded once"
    );
    assert_eq!(posting.step(600, false), Some(Step::Post(Notice::Reminder)));

    let reminded = posting
        .apply(&ReportChange::Reminded(thread()), 510)
        .unwrap();
    assert_eq!(reminded.state, ReportState::Reminded);
    assert_eq!(reminded.posting, None);
    assert_eq!(reminded.next_due(false), Some(1_000));
    assert_eq!(reminded.step(999, false), None);
    assert_eq!(
        reminded.step(1_000, false),
        Some(Step::Post(Notice::Overdue))
    );

    let overdue = reminded.apply(&ReportChange::Overdue, 1_000).unwrap();
    assert_eq!(overdue.state, ReportState::Overdue);
    assert_eq!(overdue.next_due(false), None);
    assert_eq!(overdue.step(5_000, false), None);
    assert_eq!(
        overdue.apply(&ReportChange::Reminded(thread()), 1_001),
        None,
        "never back to reminded"
    );

    let answered = overdue
        .apply(&ReportChange::Answered(1_200), 1_300)
        .unwrap();
    assert_eq!(answered.state, ReportState::Answered);
    assert_eq!(answered.answered_at, Some(1_200));
    assert_eq!(answered.next_due(true), None);
    assert_eq!(answered.step(9_999, true), None);
    for change in [
        ReportChange::Answered(1_400),
        ReportChange::Posting(Notice::Overdue),
        ReportChange::Overdue,
    ] {
        assert_eq!(answered.apply(&change, 1_500), None, "{change:?}");
    }
    // A reminder that lands after the reply keeps the report answered.
    let late = r
        .apply(&ReportChange::Answered(700), 700)
        .unwrap()
        .apply(&ReportChange::Reminded(thread()), 800)
        .unwrap();
    assert_eq!(late.state, ReportState::Answered);
    assert_eq!(late.reminder, Some(thread()));
}

#[test]
fn a_late_report_is_reminded_first_then_told_overdue_in_the_thread() {
    // Seen after its deadline (pagerd was down): the reminder is the
    // overdue notice's parent, so it comes first.
    let r = report(1_000, 500);
    assert_eq!(r.step(2_000, false), Some(Step::Post(Notice::Reminder)));
    let reminded = r.apply(&ReportChange::Reminded(thread()), 2_000).unwrap();
    assert_eq!(
        reminded.step(2_000, false),
        Some(Step::Post(Notice::Overdue))
    );
    let intent = reminded
        .apply(&ReportChange::Posting(Notice::Overdue), 2_000)
        .unwrap();
    assert_eq!(intent.next_due(false), Some(1_000), "due at once");
    assert_eq!(intent.step(2_001, false), Some(Step::Post(Notice::Overdue)));
}

#[test]
fn page_on_breach_pages_at_the_deadline_even_before_any_notice() {
    let r = report(1_000, 500);
    assert_eq!(r.next_due(true), Some(500));
    assert_eq!(r.step(1_000, true), Some(Step::Page));
    let paged = r.apply(&ReportChange::Paged, 1_000).unwrap();
    assert_eq!(paged.paged_at, Some(1_000));
    assert_eq!(paged.apply(&ReportChange::Paged, 1_100), None, "once");
    assert_eq!(paged.step(1_000, true), Some(Step::Post(Notice::Reminder)));
    let done = paged
        .apply(&ReportChange::Reminded(thread()), 1_000)
        .unwrap()
        .apply(&ReportChange::Overdue, 1_000)
        .unwrap();
    assert_eq!(done.next_due(true), None);
    // Without page_on_breach there is nothing to page.
    let overdue = r
        .apply(&ReportChange::Reminded(thread()), 600)
        .unwrap()
        .apply(&ReportChange::Overdue, 1_000)
        .unwrap();
    assert_eq!(overdue.step(2_000, false), None);
    assert_eq!(
        overdue.next_due(true),
        Some(1_000),
        "with it, the page is due"
    );
}

#[test]
fn markers_name_the_ticket_and_the_notice() {
    assert_eq!(
        Notice::Reminder.marker("4711"),
        "pagerd-report-4711-reminder"
    );
    assert_eq!(Notice::Overdue.marker("4711"), "pagerd-report-4711-overdue");
    for s in ReportState::ALL {
        assert_eq!(ReportState::parse(s.as_str()), Some(s));
    }
    assert_eq!(Notice::parse("overdue"), Some(Notice::Overdue));
    assert_eq!(ReportState::parse("late"), None);
}

fn comment(id: u64, author: u64, public: bool, at: &str) -> CommentInfo {
    CommentInfo {
        id,
        author_id: Some(author),
        public,
        created_at: Some(at.into()),
    }
}

#[test]
fn only_a_public_reply_by_an_agent_stops_the_clock() {
    const REQUESTER: u64 = 10;
    const ME: u64 = 20;
    const AGENT: u64 = 30;
    let first = |cs: &[CommentInfo]| watch::first_agent_reply(cs, Some(REQUESTER), ME, 99);
    // The report itself (even when an agent filed it for the researcher),
    // the researcher's follow-up, pagerd's own comment, an internal note.
    let mut comments = vec![
        comment(1, AGENT, true, "2027-03-26T14:00:00Z"),
        comment(2, REQUESTER, true, "2027-03-26T15:00:00Z"),
        comment(3, ME, true, "2027-03-26T16:00:00Z"),
        comment(4, AGENT, false, "2027-03-26T17:00:00Z"),
    ];
    assert_eq!(first(&comments), None);
    comments.push(comment(5, AGENT, true, "2027-03-29T09:30:00+02:00"));
    comments.push(comment(6, AGENT, true, "2027-03-29T10:00:00+02:00"));
    assert_eq!(first(&comments), Some(ms("2027-03-29T07:30:00Z")));
    // Without a time, the time it was found.
    let undated = CommentInfo {
        created_at: None,
        ..comment(7, AGENT, true, "")
    };
    assert_eq!(first(&[comments[0].clone(), undated]), Some(99));
    // The newest reply (an emergency's progress): the last by id.
    let latest = |cs: &[CommentInfo]| watch::latest_agent_reply(cs, Some(REQUESTER), ME, 99);
    assert_eq!(
        latest(&comments),
        Some((6, ms("2027-03-29T08:00:00Z"), AGENT))
    );
    assert_eq!(latest(&comments[..4]), None, "no reply by an agent yet");
}

#[test]
fn the_notices_link_the_ticket_say_the_time_left_and_the_e_mail_note() {
    let h = h1(AMSTERDAM);
    let due = ms("2027-03-30T13:00:00Z");
    let r = report(due, due - 2 * 3_600_000);
    let now = ms("2027-03-30T11:00:00Z");
    let text = text::reminder(&r, &h, now);
    assert!(
        text.contains("<https://acme.zendesk.com/agent/tickets/4711|#4711>"),
        "{text}"
    );
    assert!(text.contains("Tue 2027-03-30 15:00 CEST"), "{text}");
    assert!(text.contains("in 2h, 2h of business time left"), "{text}");
    assert!(text.contains(text::EMAIL_NOTE), "{text}");
    assert!(
        text.contains("&lt;!channel&gt;"),
        "customer text is data: {text}"
    );
    assert!(!text.contains("<!channel>"), "{text}");
    // Monday was a holiday: 2h of wall clock can hold less business time.
    let sunday = text::reminder(&r, &h, ms("2027-03-28T20:00:00Z"));
    assert!(
        sunday.contains("in 1d17h, 6h of business time left"),
        "{sunday}"
    );

    let late = text::overdue(&r, &h, due + 180_000);
    assert!(late.contains("overdue by 3m"), "{late}");
    assert!(late.contains(text::EMAIL_NOTE), "{late}");
    assert!(!late.contains("paged"), "{late}");
    let paged = Report {
        paged_at: Some(due),
        ..r.clone()
    };
    assert!(text::overdue(&paged, &h, due).contains("on-call engineer is paged"));

    let v = text::json(&r, Some(&h), now);
    assert_eq!(v["respond_by"], "2027-03-30T13:00:00Z");
    assert_eq!(v["state"], "waiting");
    assert_eq!(v["business_seconds_left"], 7200);
    assert_eq!(v["answered_at"], serde_json::Value::Null);
}

/// The README's `pagerd reports list` is what the CLI prints.
#[test]
fn the_readme_shows_what_reports_list_prints() {
    let body = serde_json::json!({"reports": [
        {"ticket": "9003", "title": "Stored XSS in profile page", "state": "waiting",
         "respond_by": "2026-11-30T16:00:00Z", "answered_at": null, "business_seconds_left": 28800},
        {"ticket": "9004", "title": "SSRF in the webhook tester", "state": "answered",
         "respond_by": "2026-11-30T15:40:00Z", "answered_at": "2026-11-29T08:02:11Z",
         "business_seconds_left": null, "hackerone_report": "2741302",
         "hackerone": {"disclosure_at": "2026-12-24T09:00:00Z", "disclosed_at": null}},
    ]});
    let zone = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
    let local = crate::explain::Local::new(zone, ms("2026-11-29T10:00:00Z"));
    let out = text::format_list(&body, &local);
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(&format!("$ pagerd reports list\n{out}```")),
        "the README should show:\n{out}"
    );
}

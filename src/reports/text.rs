//! The words about a report: the Slack reminder and overdue notice (the
//! researcher's title rendered with [`render::slack_field`], never
//! interpreted; the link built from `zendesk.url`), the admin API's JSON,
//! and what `pagerd reports list|show` print (local times, through
//! [`render::terminal`]).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::config::HackerOneConfig;
use super::h1::{self, H1Report};
use super::{Report, ReportState};
use crate::clock::{Millis, millis, rfc3339};
use crate::explain::{Local, span};
use crate::render::{self, terminal};

/// What every reminder says the reply must contain.
pub const EMAIL_NOTE: &str =
    "say in the reply that the researcher can e-mail us at any time for an update";

/// `#4711` linked to the ticket, and its title quoted, for Slack.
fn ticket_ref(report: &Report) -> String {
    let link = render::slack_link(&report.url, &format!("#{}", report.ticket));
    if report.title.trim().is_empty() {
        link
    } else {
        format!(
            "{link} \"{}\"",
            render::slack_field(&report.title, render::SLACK_TITLE_MAX)
        )
    }
}

/// How long until `due` from `now`, or how long ago it was, in words.
fn left(report: &Report, cfg: &HackerOneConfig, now: Millis) -> String {
    let wall = report.respond_by - now;
    if wall > 0 {
        let business = millis(cfg.business_left(now, report.respond_by));
        format!(
            "in {}, {} of business time left",
            span(wall),
            span(business)
        )
    } else {
        format!("overdue by {}", span(-wall))
    }
}

/// The reminder, posted in the channel `remind_before` the deadline.
pub fn reminder(report: &Report, cfg: &HackerOneConfig, now: Millis) -> String {
    format!(
        ":hourglass_flowing_sand: HackerOne report {} needs its first public reply by \
         *{}* ({}).\nReply on the ticket, and {EMAIL_NOTE}.",
        ticket_ref(report),
        cfg.wall_clock(report.respond_by),
        left(report, cfg, now),
    )
}

/// The overdue notice, posted in the reminder's thread at the deadline.
pub fn overdue(report: &Report, cfg: &HackerOneConfig, now: Millis) -> String {
    let mut text = format!(
        ":rotating_light: Overdue: HackerOne report {} had no public reply from an agent by \
         *{}* ({}). Reply on the ticket now, and {EMAIL_NOTE}.",
        ticket_ref(report),
        cfg.wall_clock(report.respond_by),
        left(report, cfg, now),
    );
    if report.paged_at.is_some() {
        text.push_str("\nThe on-call engineer is paged (hackerone.page_on_breach).");
    }
    text
}

/// The pre-publication checklist of a disclosure (the handbook's words).
pub const DISCLOSURE_CHECKLIST: [&str; 2] = [
    "the report contains no sensitive information (credentials, customer data, internal hosts)",
    "the report links the merge request that fixed it",
];

/// `HackerOne report #548`, linked to its page (the id is digits only:
/// checked when the webhook was accepted).
fn h1_ref(id: &str) -> String {
    render::slack_link(&h1::report_url(id), &format!("HackerOne report #{id}"))
}

/// The reminder to close the Zendesk ticket of a report HackerOne closed.
/// `ticket` is the report's ticket as pagerd watches it, `status` its
/// status in Zendesk right now.
pub fn closed(h: &H1Report, ticket: &Report, status: &str) -> String {
    let how = h.closure.map_or("closed", h1::closure_words);
    format!(
        ":white_check_mark: {} was closed in HackerOne ({how}), but its Zendesk ticket {} \
         is still {}. Close ticket #{} too.",
        h1_ref(&h.id),
        ticket_ref(ticket),
        render::slack_field(status, 40),
        render::slack_field(&ticket.ticket, 40),
    )
}

/// The disclosure countdown's reminder, with the checklist and the
/// release date.
pub fn disclosure(
    h: &H1Report,
    cfg: &HackerOneConfig,
    ticket: Option<&Report>,
    now: Millis,
) -> String {
    let release = h.release_at(cfg).unwrap_or(now);
    let requested = h.disclosure_requested_at.unwrap_or(now);
    let when = if release > now {
        format!("in {}", span(release - now))
    } else {
        "now".into()
    };
    let mut text = format!(
        ":calendar: {} will be disclosed on *{}* ({when}): disclosure was requested on {}, \
         and the report is released {} after the request unless HackerOne publishes it sooner.",
        h1_ref(&h.id),
        cfg.wall_clock(release),
        cfg.wall_clock(requested),
        span(millis(cfg.disclosure_after)),
    );
    if let Some(t) = ticket {
        text.push_str(&format!(" Zendesk ticket: {}.", ticket_ref(t)));
    }
    text.push_str("\nBefore it is published, check that:");
    for item in DISCLOSURE_CHECKLIST {
        text.push_str(&format!("\n• {item}"));
    }
    text
}

/// What HackerOne's webhook said about a report, for the admin API
/// (`hackerone` of a report; times in RFC 3339).
pub fn h1_json(h: &H1Report, cfg: Option<&HackerOneConfig>) -> Value {
    let at = |t: Option<Millis>| t.map(rfc3339);
    json!({
        "report": h.id,
        "url": h1::report_url(&h.id),
        "closed_at": at(h.closed_at),
        "closure": h.closure.map(h1::closure_str),
        "disclosure_requested_at": at(h.disclosure_requested_at),
        "disclosure_at": at(cfg.and_then(|c| h.release_at(c)).filter(|_| h.disclosed_at.is_none())),
        "disclosed_at": at(h.disclosed_at),
        "close_notice": h.close_notice.map(h1::CloseNotice::as_str),
        "disclosure_reminded_at": at(h.disclosure_reminded_at),
    })
}

/// A report as the admin API shows it: times in RFC 3339 (UTC), and the
/// business time left until its deadline (`null` once answered, or when
/// `[hackerone]` is off).
pub fn json(report: &Report, cfg: Option<&HackerOneConfig>, now: Millis) -> Value {
    let at = |t: Option<Millis>| t.map(rfc3339);
    let business_left = cfg
        .filter(|_| report.is_open())
        .map(|c| c.business_left(now, report.respond_by).as_secs());
    json!({
        "ticket": report.ticket,
        "title": report.title,
        "url": report.url,
        "created_at": rfc3339(report.created_at),
        "respond_by": rfc3339(report.respond_by),
        "remind_at": rfc3339(report.remind_at),
        "state": report.state.as_str(),
        "posting": report.posting.map(super::Notice::as_str),
        "reminder": report.reminder.as_ref().map(|t| json!({ "channel": t.channel, "ts": t.ts })),
        "answered_at": at(report.answered_at),
        "paged_at": at(report.paged_at),
        "seen_at": rfc3339(report.seen_at),
        "business_seconds_left": business_left,
        "hackerone_report": report.h1_report,
    })
}

/// A time of the API's answer (RFC 3339) in ms.
fn ms(v: &Value) -> Option<Millis> {
    let t: jiff::Timestamp = v.as_str()?.parse().ok()?;
    Some(t.as_millisecond())
}

/// `in 1h59m` / `overdue by 3m` / `answered 14:03:00`, from the API's JSON.
fn status_words(r: &Value, local: &Local) -> String {
    if let Some(at) = ms(&r["answered_at"]) {
        return format!("answered {}", local.time(at));
    }
    let Some(due) = ms(&r["respond_by"]) else {
        return "?".into();
    };
    let wall = due - local.now();
    let business = r["business_seconds_left"]
        .as_i64()
        .map(|s| format!(", {} of business time", span(s * 1000)))
        .unwrap_or_default();
    if wall > 0 {
        format!("{} left{business}", span(wall))
    } else {
        format!("overdue by {}", span(-wall))
    }
}

/// `#548`, `#548 discloses 2027-04-25` or `#548 public 2027-04-20`: the
/// HackerOne report and its disclosure date when known (`-`: no link).
fn h1_words(r: &Value, local: &Local) -> String {
    let Some(id) = r["hackerone_report"].as_str() else {
        return "-".into();
    };
    let h = &r["hackerone"];
    // `Local::time` leaves the date out for today.
    let day = |k: &str| {
        ms(&h[k]).map(|t| {
            let s = local.time(t);
            if s.len() > 8 {
                s.chars().take(10).collect::<String>()
            } else {
                "today".into()
            }
        })
    };
    let id = terminal(&render::truncate(id, 20));
    match (day("disclosed_at"), day("disclosure_at")) {
        (Some(d), _) => format!("#{id} public {d}"),
        (None, Some(d)) => format!("#{id} discloses {d}"),
        (None, None) => format!("#{id}"),
    }
}

/// `pagerd reports list`: one line per report, local times.
pub fn format_list(body: &Value, local: &Local) -> String {
    let reports = body["reports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if reports.is_empty() {
        return "no HackerOne reports watched\n".into();
    }
    let mut out = format!(
        "{:<10} {:<9} {:<20} {:<32} {:<30} {}\n",
        "TICKET", "STATE", "RESPOND BY", "TIME LEFT", "HACKERONE", "TITLE"
    );
    for r in reports {
        let due = ms(&r["respond_by"]).map_or_else(|| "?".into(), |t| local.time(t));
        let _ = writeln!(
            out,
            "{:<10} {:<9} {:<20} {:<32} {:<30} {}",
            format!("#{}", terminal(r["ticket"].as_str().unwrap_or("?"))),
            terminal(r["state"].as_str().unwrap_or("?")),
            due,
            status_words(r, local),
            h1_words(r, local),
            terminal(&render::truncate(r["title"].as_str().unwrap_or(""), 80)),
        );
    }
    let _ = writeln!(out, "times in {}", terminal(&local.zone()));
    out
}

/// `pagerd reports show TICKET`: one report in detail, local times.
pub fn format_show(body: &Value, local: &Local) -> String {
    let r = &body["report"];
    let text = |k: &str| terminal(r[k].as_str().unwrap_or(""));
    let time = |k: &str| ms(&r[k]).map(|t| local.time(t));
    let mut out = String::new();
    let _ = writeln!(out, "report    #{} \"{}\"", text("ticket"), text("title"));
    let _ = writeln!(out, "link      {}", text("url"));
    let _ = writeln!(out, "state     {}", text("state"));
    if let Some(t) = time("created_at") {
        let _ = writeln!(out, "created   {t}");
    }
    if let Some(t) = time("respond_by") {
        let _ = writeln!(out, "due       {t} ({})", status_words(r, local));
    }
    match (&r["reminder"], time("remind_at")) {
        (Value::Object(m), _) => {
            let _ = writeln!(
                out,
                "reminder  posted in {} (thread {})",
                terminal(m.get("channel").and_then(Value::as_str).unwrap_or("?")),
                terminal(m.get("ts").and_then(Value::as_str).unwrap_or("?")),
            );
        }
        (_, Some(t)) if r["state"] != ReportState::Answered.as_str() => {
            let _ = writeln!(out, "reminder  at {t}");
        }
        _ => {}
    }
    if let Some(t) = time("answered_at") {
        let _ = writeln!(out, "answered  {t} (first public reply by an agent)");
    }
    if let Some(t) = time("paged_at") {
        let _ = writeln!(out, "paged     {t} (hackerone.page_on_breach)");
    }
    if let Some(id) = r["hackerone_report"].as_str() {
        let h = &r["hackerone"];
        let htime = |k: &str| ms(&h[k]).map(|t| local.time(t));
        let _ = writeln!(
            out,
            "hackerone report #{} ({})",
            terminal(id),
            terminal(h["url"].as_str().unwrap_or("no event from HackerOne yet"))
        );
        if let Some(t) = htime("closed_at") {
            let how = terminal(h["closure"].as_str().unwrap_or("closed"));
            let _ = writeln!(out, "          closed in HackerOne {t} ({how})");
        }
        if let Some(t) = htime("disclosure_requested_at") {
            let _ = writeln!(out, "          disclosure requested {t}");
        }
        if let Some(t) = htime("disclosure_at") {
            let _ = writeln!(out, "          disclosure due {t}");
        }
        if let Some(t) = htime("disclosed_at") {
            let _ = writeln!(out, "          public since {t}");
        }
    }
    if let Some(p) = r["posting"].as_str() {
        let _ = writeln!(
            out,
            "posting   the {} is being posted (retried until Slack takes it)",
            terminal(p)
        );
    }
    let _ = writeln!(
        out,
        "times in {}; now {}",
        terminal(&local.zone()),
        local.time(local.now())
    );
    out
}

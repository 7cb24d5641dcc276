//! The words about a report: the Slack reminder and overdue notice (the
//! researcher's title rendered with [`render::slack_field`], never
//! interpreted; the link built from `zendesk.url`), the admin API's JSON,
//! and what `pagerd reports list|show` print (local times, through
//! [`render::terminal`]).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::config::HackerOneConfig;
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
        "{:<10} {:<9} {:<20} {:<32} {}\n",
        "TICKET", "STATE", "RESPOND BY", "TIME LEFT", "TITLE"
    );
    for r in reports {
        let due = ms(&r["respond_by"]).map_or_else(|| "?".into(), |t| local.time(t));
        let _ = writeln!(
            out,
            "{:<10} {:<9} {:<20} {:<32} {}",
            format!("#{}", terminal(r["ticket"].as_str().unwrap_or("?"))),
            terminal(r["state"].as_str().unwrap_or("?")),
            due,
            status_words(r, local),
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

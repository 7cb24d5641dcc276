//! `[hackerone]` of the config file: its keys, their defaults and checks,
//! and the deadlines they give a report. One section for the whole
//! feature: the Zendesk side (tags, business calendar, channel) and
//! HackerOne's own webhook (its secret, the disclosure countdown).

use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;

use crate::business_time::{BusinessCalendar, CalendarError};
use crate::clock::{Millis, millis};
use crate::engine::Ticket;
use crate::secret::Secret;
use crate::validate::{Check, lower};

/// `[hackerone]`: its presence turns the feature on.
#[derive(Debug, Clone)]
pub struct HackerOneConfig {
    /// Zendesk tags that mark a HackerOne report (lower-cased).
    pub tags: Vec<String>,
    /// The IANA zone of the business hours, as configured.
    pub timezone: String,
    /// `HH:MM-HH:MM`, as configured.
    pub business_hours: String,
    /// Weekday names, as configured.
    pub business_days: Vec<String>,
    /// `YYYY-MM-DD` dates in the zone, as configured.
    pub holidays: Vec<String>,
    /// The calendar the four keys above make.
    pub calendar: BusinessCalendar,
    /// Business time from the ticket's creation to its first response.
    pub respond_within: Duration,
    /// Wall-clock time before the deadline at which the reminder is posted.
    pub remind_before: Duration,
    /// The Slack channel of the reminders and overdue notices.
    pub channel: String,
    /// Whether a breached deadline pages like an emergency.
    pub page_on_breach: bool,
    /// The secret of the program's webhook (HackerOne → Program settings →
    /// Webhooks): the HMAC key of `X-H1-Signature`. `None`: `POST
    /// /webhooks/hackerone` is not served (404, like any unknown route).
    pub webhook_secret: Option<Secret>,
    /// How long after a disclosure request the report is released (30
    /// days: HackerOne's default).
    pub disclosure_after: Duration,
    /// How long before the release the pre-publication reminder is posted
    /// (5 days: day 25 of 30).
    pub disclosure_remind_before: Duration,
}

/// The section as written in the file (unknown keys refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHackerOne {
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) timezone: Option<String>,
    pub(crate) business_hours: Option<String>,
    pub(crate) business_days: Option<Vec<String>>,
    pub(crate) holidays: Option<Vec<String>>,
    pub(crate) respond_within: Option<String>,
    pub(crate) remind_before: Option<String>,
    pub(crate) channel: Option<String>,
    pub(crate) page_on_breach: Option<bool>,
    pub(crate) webhook_secret_file: Option<std::path::PathBuf>,
    pub(crate) webhook_secret_env: Option<String>,
    pub(crate) disclosure_after: Option<String>,
    pub(crate) disclosure_remind_before: Option<String>,
}

/// Business hours when `business_hours` is not set.
pub const DEFAULT_HOURS: &str = "09:00-17:00";
/// Business days when `business_days` is not set.
pub const DEFAULT_DAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

/// Checks `[hackerone]` (optional: `None` when absent), recording every
/// problem in `c`. `slack` says whether `[slack]` is configured: the
/// reminders need it.
pub(crate) fn check(
    c: &mut Check,
    raw: Option<RawHackerOne>,
    slack: bool,
) -> Option<HackerOneConfig> {
    let h = raw?;
    if !slack {
        c.problem(
            "hackerone",
            "needs [slack]: the reminders and overdue notices are posted in hackerone.channel",
        );
    }
    let tags = lower(h.tags.unwrap_or_else(|| vec!["hackerone".into()]));
    if tags.is_empty() {
        c.problem(
            "hackerone.tags",
            "name at least one Zendesk tag that marks a HackerOne report (default [\"hackerone\"])",
        );
    }
    let timezone = h.timezone.unwrap_or_default().trim().to_string();
    if timezone.is_empty() {
        c.problem(
            "hackerone.timezone",
            "is required: the IANA time zone of the business hours, e.g. \"Europe/Amsterdam\"",
        );
    }
    let business_hours = h.business_hours.unwrap_or_else(|| DEFAULT_HOURS.into());
    let business_days = h
        .business_days
        .unwrap_or_else(|| DEFAULT_DAYS.map(String::from).to_vec());
    let holidays = h.holidays.unwrap_or_default();
    let zone = if timezone.is_empty() {
        // Reported above; check the other keys against UTC.
        "UTC"
    } else {
        timezone.as_str()
    };
    let calendar = match BusinessCalendar::new(zone, &business_hours, &business_days, &holidays) {
        Ok(cal) => cal,
        Err(e) => {
            let key = match &e {
                CalendarError::UnknownTimeZone { .. } => "hackerone.timezone",
                CalendarError::InvalidHours { .. } => "hackerone.business_hours",
                CalendarError::UnknownDay { .. }
                | CalendarError::DuplicateDay { .. }
                | CalendarError::NoBusinessDays => "hackerone.business_days",
                CalendarError::InvalidHoliday { .. } => "hackerone.holidays",
            };
            c.problem(key, e.to_string());
            // A placeholder: the config is refused anyway.
            BusinessCalendar::new("UTC", DEFAULT_HOURS, DEFAULT_DAYS, Vec::<String>::new()).ok()?
        }
    };
    let respond_within = match h.respond_within.as_deref() {
        None => calendar.day_length(),
        Some(text) => c.duration("hackerone.respond_within", Some(text), "8h"),
    };
    if respond_within.is_zero() {
        c.problem(
            "hackerone.respond_within",
            "must be longer than 0s (default: one business day, the length of business_hours)",
        );
    }
    let remind_before = c.duration("hackerone.remind_before", h.remind_before.as_deref(), "2h");
    let channel = h.channel.unwrap_or_else(|| "#security".into());
    if channel.trim().is_empty() {
        c.problem(
            "hackerone.channel",
            "name the Slack channel of the reminders (default \"#security\")",
        );
    }
    // Optional: without it, HackerOne's own events are not followed.
    // HackerOne signs with an empty key when a webhook has no secret, so a
    // webhook is only served with one (an empty file is refused).
    let webhook_secret = c.secret(
        "hackerone",
        "webhook_secret",
        h.webhook_secret_file,
        h.webhook_secret_env,
    );
    let disclosure_after = c.duration(
        "hackerone.disclosure_after",
        h.disclosure_after.as_deref(),
        "30d",
    );
    let disclosure_remind_before = c.duration(
        "hackerone.disclosure_remind_before",
        h.disclosure_remind_before.as_deref(),
        "5d",
    );
    if disclosure_remind_before >= disclosure_after {
        c.problem(
            "hackerone.disclosure_remind_before",
            "must be shorter than hackerone.disclosure_after (defaults \"5d\" and \"30d\": \
             the reminder on day 25)",
        );
    }
    Some(HackerOneConfig {
        tags,
        timezone,
        business_hours,
        business_days,
        holidays,
        calendar,
        respond_within,
        remind_before,
        channel: channel.trim().to_string(),
        page_on_breach: h.page_on_breach.unwrap_or(false),
        webhook_secret,
        disclosure_after,
        disclosure_remind_before,
    })
}

/// Milliseconds since the epoch as an instant (clamped to jiff's range).
pub fn instant(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

impl HackerOneConfig {
    /// Whether `ticket` is a HackerOne report: one of its tags is one of
    /// `tags`.
    pub fn is_report(&self, ticket: &Ticket) -> bool {
        ticket.tags.iter().any(|t| self.tags.contains(t))
    }

    /// The deadlines of a report created at `created_at`: when its first
    /// response is due (`respond_within` of business time later) and when
    /// its reminder is (`remind_before` of wall-clock time before that).
    pub fn deadlines(&self, created_at: Millis) -> (Millis, Millis) {
        let due = self
            .calendar
            .add(instant(created_at), self.respond_within)
            .as_millisecond();
        (due, due.saturating_sub(millis(self.remind_before)))
    }

    /// Business time from `now` until `due` (zero once it passed).
    pub fn business_left(&self, now: Millis, due: Millis) -> Duration {
        self.calendar.remaining(instant(now), instant(due))
    }

    /// `at` on the wall clock of the business hours' zone:
    /// `Tue 2027-03-30 15:00 CEST`.
    pub fn wall_clock(&self, at: Millis) -> String {
        let zoned = instant(at).to_zoned_datetime(self.calendar.time_zone().clone());
        zoned.strftime("%a %Y-%m-%d %H:%M %Z").to_string()
    }
}

//! Business time: deadlines such as "first response within one business day"
//! counted only inside business hours, on business days that are not
//! holidays, by the wall clock of one IANA time zone.
//!
//! This module owns the [`BusinessCalendar`] (zone, hours, days, holidays,
//! validated from configuration strings), the arithmetic on it
//! ([`BusinessCalendar::add`], [`BusinessCalendar::remaining`]) and the
//! parsing of the ISO 8601 timestamps that vendors send ([`parse_timestamp`]).
//! It is pure: no I/O and no clock; "now" is always an argument. Zone and DST
//! rules come from `jiff` (the system's tzdb, or the copy bundled into the
//! binary when the system has none).
//!
//! # What counts as business time
//! An instant is business time when its wall-clock date in the zone is a
//! business day that is not a holiday and its wall-clock time of day is within
//! `[start, end)` of the business hours. Business time between two instants is
//! the *elapsed real time* spent in such instants. So across a DST change:
//! - business hours that do not contain the change are unaffected: 09:00–17:00
//!   is 8 hours on a 23- or 25-hour day too;
//! - business hours that contain a spring-forward gap are shorter by the gap
//!   and those that contain a fall-back fold are longer by the fold (the
//!   repeated wall-clock hour counts twice, because it is lived twice). In
//!   particular `00:00-24:00` counts 23 hours on a 23-hour day and 25 on a
//!   25-hour day: with every day open, business time *is* real time, and
//!   adding 24 hours is adding 24 real hours, not "the same wall time
//!   tomorrow".
//!
//! [`BusinessCalendar::day_length`] is the nominal length of the business
//! hours (`end - start`), which is what "one business day" means here.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::civil::{Date, Weekday};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

#[cfg(test)]
mod tests;

/// Minutes in a day; `24:00` as a closing time.
const MINUTES_PER_DAY: u16 = 24 * 60;

/// What is wrong with a business calendar's configuration.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The time zone is not a name in the IANA time zone database.
    #[error(
        "unknown time zone {name:?}: expected an IANA name such as \"Europe/Amsterdam\" ({source})"
    )]
    UnknownTimeZone {
        /// The name as configured.
        name: String,
        /// Why the zone database refused it.
        #[source]
        source: jiff::Error,
    },
    /// `business_hours` is not `HH:MM-HH:MM` with start before end.
    #[error(
        "business_hours {value:?}: {reason} (expected e.g. \"09:00-17:00\" or \"00:00-24:00\")"
    )]
    InvalidHours {
        /// The value as configured.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A business day is not a weekday name.
    #[error("business day {value:?} is not one of mon, tue, wed, thu, fri, sat, sun")]
    UnknownDay {
        /// The value as configured.
        value: String,
    },
    /// The same weekday is listed twice.
    #[error("business day {value:?} is listed twice")]
    DuplicateDay {
        /// The second spelling of the day, as configured.
        value: String,
    },
    /// No business day at all: no deadline could ever fall due.
    #[error("no business days: list at least one of mon, tue, wed, thu, fri, sat, sun")]
    NoBusinessDays,
    /// A holiday is not a valid `YYYY-MM-DD` date.
    #[error("holiday {value:?} is not a date like \"2026-12-25\": {reason}")]
    InvalidHoliday {
        /// The value as configured.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A timestamp that is not ISO 8601 with `Z` or a UTC offset.
#[derive(Debug, thiserror::Error)]
#[error(
    "{value:?} is not an ISO 8601 timestamp with Z or an offset, such as \"2027-03-26T15:00:00+01:00\" ({source})"
)]
pub struct TimestampError {
    /// The text as received.
    pub value: String,
    /// Why it was refused.
    #[source]
    pub source: jiff::Error,
}

/// Parses an ISO 8601 / RFC 3339 timestamp with `Z` or a UTC offset, such as
/// Zendesk's `{{ticket.created_at_with_timestamp}}`
/// (`"2027-03-26T15:00:00+01:00"`, `"2027-03-26T14:00:00Z"`). Surrounding
/// whitespace is ignored; a timestamp without an offset is refused, since it
/// would not name an instant.
pub fn parse_timestamp(text: &str) -> Result<Timestamp, TimestampError> {
    text.trim()
        .parse::<Timestamp>()
        .map_err(|source| TimestampError {
            value: text.to_string(),
            source,
        })
}

/// Business hours, business days and holidays in one time zone.
///
/// Build it with [`BusinessCalendar::new`], which validates every field.
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    tz: TimeZone,
    /// Opening time, minutes after midnight (`0..1440`).
    open: u16,
    /// Closing time, minutes after midnight (`open < close <= 1440`).
    close: u16,
    /// Business weekdays, indexed by days from Monday.
    days: [bool; 7],
    /// Civil dates in the zone that are not business days.
    holidays: BTreeSet<Date>,
}

impl BusinessCalendar {
    /// Builds a calendar from configuration strings:
    /// - `time_zone`: an IANA name, e.g. `"Europe/Amsterdam"`;
    /// - `business_hours`: `"HH:MM-HH:MM"`, e.g. `"09:00-17:00"` or
    ///   `"08:30-17:15"`; `"00:00-24:00"` is all day; start must be before end
    ///   (hours past midnight are not supported);
    /// - `days`: weekday names (`"mon"` … `"sun"` or `"monday"` …, any case),
    ///   at least one, none twice;
    /// - `holidays`: `"YYYY-MM-DD"` dates in that zone (listing one twice is
    ///   harmless).
    pub fn new<D, H>(
        time_zone: &str,
        business_hours: &str,
        days: D,
        holidays: H,
    ) -> Result<Self, CalendarError>
    where
        D: IntoIterator,
        D::Item: AsRef<str>,
        H: IntoIterator,
        H::Item: AsRef<str>,
    {
        let tz = TimeZone::get(time_zone).map_err(|source| CalendarError::UnknownTimeZone {
            name: time_zone.to_string(),
            source,
        })?;
        let (open, close) = parse_hours(business_hours)?;
        let mut business_days = [false; 7];
        for day in days {
            let day = day.as_ref();
            let index = usize::from(parse_weekday(day)?.to_monday_zero_offset().unsigned_abs());
            if std::mem::replace(&mut business_days[index], true) {
                return Err(CalendarError::DuplicateDay {
                    value: day.to_string(),
                });
            }
        }
        if !business_days.contains(&true) {
            return Err(CalendarError::NoBusinessDays);
        }
        let holidays = holidays
            .into_iter()
            .map(|h| parse_holiday(h.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            tz,
            open,
            close,
            days: business_days,
            holidays,
        })
    }

    /// The time zone whose wall clock the hours, days and holidays follow.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The nominal length of the business hours (`end - start`): one business
    /// day, the default for "respond within". See the module documentation
    /// for days on which a DST change falls inside the hours.
    pub fn day_length(&self) -> Duration {
        Duration::from_secs(u64::from(self.close - self.open) * 60)
    }

    /// `start` plus `within` of business time: the instant at which `within`
    /// of business time has elapsed since `start`.
    ///
    /// A `start` outside business time begins counting at the next opening.
    /// The result of a positive `within` may be a closing time exactly (the
    /// last business instant before it is the one that completes `within`);
    /// a `within` of zero returns the first business instant at or after
    /// `start`.
    ///
    /// Always terminates: the search walks forward one civil day (or one
    /// zone transition) at a time and stops at the last date `jiff` can
    /// represent (9999-12-31). A deadline that would fall later than that,
    /// or a `within` beyond it, gives [`Timestamp::MAX`] ("never"). With at
    /// least one business weekday and finitely many holidays, any realistic
    /// `within` finds a business day within a week after the last holiday.
    pub fn add(&self, start: Timestamp, within: Duration) -> Timestamp {
        // Business time never exceeds real time: no need to walk for a
        // `within` that could not fit before the end of time anyway.
        let Ok(mut left) = SignedDuration::try_from(within) else {
            return Timestamp::MAX;
        };
        if left > Timestamp::MAX.duration_since(start) {
            return Timestamp::MAX;
        }
        for (from, to) in self.windows(start) {
            let available = to.duration_since(from);
            if left <= available {
                // Fits: `from + left <= to`, which is representable.
                return from.checked_add(left).unwrap_or(to);
            }
            left -= available;
        }
        Timestamp::MAX
    }

    /// Business time from `now` until `due`: zero when `due` is not after
    /// `now`. For any `start` and `within` whose deadline is representable,
    /// `remaining(start, add(start, within)) == within`.
    pub fn remaining(&self, now: Timestamp, due: Timestamp) -> Duration {
        if due <= now {
            return Duration::ZERO;
        }
        let mut total = SignedDuration::ZERO;
        for (from, to) in self.windows(now) {
            if from >= due {
                break;
            }
            total = total.saturating_add(to.min(due).duration_since(from));
        }
        total.unsigned_abs()
    }

    /// Whether `date` (a civil date in the zone) is a business day.
    fn is_business_day(&self, date: Date) -> bool {
        let index = usize::from(date.weekday().to_monday_zero_offset().unsigned_abs());
        self.days[index] && !self.holidays.contains(&date)
    }

    /// The business time at or after `from`, as disjoint `[start, end)`
    /// intervals in increasing order, none empty.
    fn windows(&self, from: Timestamp) -> Windows<'_> {
        Windows::new(self, from)
    }
}

/// Walks the business-time intervals of a calendar forward from an instant.
///
/// The timeline is cut at the zone's transitions into segments with one UTC
/// offset each. Within a segment the wall clock is `instant + offset`, so the
/// business time there is each business date's `[open, close)` at that offset,
/// clipped to the segment; those come in civil (hence time) order. This is
/// exact for gaps, folds, and transitions that move the wall clock across
/// midnight.
struct Windows<'a> {
    cal: &'a BusinessCalendar,
    /// Nothing before this instant is yielded (the segment's start, or `from`).
    cursor: Timestamp,
    /// The offset in force from `cursor` until `segment_end`.
    offset: Offset,
    /// The next transition, or `None` when the offset never changes again.
    segment_end: Option<Timestamp>,
    /// The next civil date to look at; `None` once the walk is over.
    date: Option<Date>,
}

impl<'a> Windows<'a> {
    fn new(cal: &'a BusinessCalendar, from: Timestamp) -> Self {
        let mut windows = Self {
            cal,
            cursor: from,
            offset: Offset::UTC,
            segment_end: None,
            date: None,
        };
        windows.enter_segment(from);
        windows
    }

    /// Starts the segment that begins at (or contains) `at`.
    fn enter_segment(&mut self, at: Timestamp) {
        self.cursor = at;
        self.offset = self.cal.tz.to_offset(at);
        self.segment_end = self.cal.tz.following(at).next().map(|t| t.timestamp());
        self.date = Some(self.offset.to_datetime(at).date());
    }

    /// The instant at which the wall clock of this segment shows `minute`
    /// (minutes after midnight, up to 1440) on `date`.
    fn instant(&self, date: Date, minute: u16) -> Option<Timestamp> {
        let civil = if minute >= MINUTES_PER_DAY {
            date.tomorrow().ok()?.at(0, 0, 0, 0)
        } else {
            let hour = i8::try_from(minute / 60).ok()?;
            let minute = i8::try_from(minute % 60).ok()?;
            date.at(hour, minute, 0, 0)
        };
        self.offset.to_timestamp(civil).ok()
    }

    /// `date`'s business hours at this segment's offset, clipped to the
    /// segment and to the cursor; `None` when that leaves nothing.
    fn window(&self, date: Date) -> Option<(Timestamp, Timestamp)> {
        if !self.cal.is_business_day(date) {
            return None;
        }
        let open = self.instant(date, self.cal.open)?.max(self.cursor);
        let close = self.instant(date, self.cal.close).unwrap_or(Timestamp::MAX);
        let close = self.segment_end.map_or(close, |end| close.min(end));
        (open < close).then_some((open, close))
    }
}

impl Iterator for Windows<'_> {
    type Item = (Timestamp, Timestamp);

    fn next(&mut self) -> Option<Self::Item> {
        // Terminates: each turn moves `date` one day forward within a
        // segment, or moves to the next transition (strictly later), and
        // both run out at the end of jiff's range.
        loop {
            let date = self.date?;
            let window = self.window(date);
            let next_midnight = date.tomorrow().ok().map(|d| (d, self.instant(d, 0)));
            match (next_midnight, self.segment_end) {
                // The next date starts inside this segment.
                (Some((next, Some(midnight))), end) if end.is_none_or(|e| midnight < e) => {
                    self.date = Some(next);
                }
                // The segment ends first: continue with the next one.
                (_, Some(end)) => self.enter_segment(end),
                // No next date in range and no next segment.
                (_, None) => self.date = None,
            }
            if window.is_some() {
                return window;
            }
        }
    }
}

/// Parses `"HH:MM-HH:MM"` into minutes after midnight, `open < close`.
fn parse_hours(value: &str) -> Result<(u16, u16), CalendarError> {
    let invalid = |reason| CalendarError::InvalidHours {
        value: value.to_string(),
        reason,
    };
    let (start, end) = value
        .split_once('-')
        .ok_or_else(|| invalid("expected start and end separated by '-'"))?;
    let open = parse_clock(start.trim()).ok_or_else(|| invalid("the start is not a time HH:MM"))?;
    let close = parse_clock(end.trim()).ok_or_else(|| invalid("the end is not a time HH:MM"))?;
    if open >= MINUTES_PER_DAY {
        return Err(invalid("24:00 can only be an end"));
    }
    if open >= close {
        return Err(invalid(
            "the start must be before the end (hours past midnight are not supported)",
        ));
    }
    Ok((open, close))
}

/// Parses `"H:MM"` or `"HH:MM"` (00:00 to 24:00) into minutes after midnight.
fn parse_clock(text: &str) -> Option<u16> {
    let (hour, minute) = text.split_once(':')?;
    let digits = |s: &str, lengths: &[usize]| {
        (lengths.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u16>().ok())
            .flatten()
    };
    let hour = digits(hour, &[1, 2])?;
    let minute = digits(minute, &[2])?;
    match (hour, minute) {
        (0..=23, 0..=59) => Some(hour * 60 + minute),
        (24, 0) => Some(MINUTES_PER_DAY),
        _ => None,
    }
}

fn parse_weekday(value: &str) -> Result<Weekday, CalendarError> {
    let day = match value.trim().to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => {
            return Err(CalendarError::UnknownDay {
                value: value.to_string(),
            });
        }
    };
    Ok(day)
}

/// Parses a strict `YYYY-MM-DD` date.
fn parse_holiday(value: &str) -> Result<Date, CalendarError> {
    let invalid = |reason: String| CalendarError::InvalidHoliday {
        value: value.to_string(),
        reason,
    };
    let text = value.trim();
    let shape_ok = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(invalid("expected YYYY-MM-DD".to_string()));
    }
    text.parse::<Date>().map_err(|e| invalid(e.to_string()))
}

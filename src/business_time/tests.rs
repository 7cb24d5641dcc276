use super::*;
use proptest::prelude::*;

const WEEKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];
const EVERY_DAY: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const NO_HOLIDAYS: [&str; 0] = [];

fn ts(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("bad test timestamp {text}: {e}"))
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn calendar(zone: &str, hours: &str, days: &[&str], holidays: &[&str]) -> BusinessCalendar {
    BusinessCalendar::new(zone, hours, days, holidays)
        .unwrap_or_else(|e| panic!("bad test calendar: {e}"))
}

/// The calendar of the required examples.
fn amsterdam() -> BusinessCalendar {
    calendar(
        "Europe/Amsterdam",
        "09:00-17:00",
        &WEEKDAYS,
        &["2027-03-29"],
    )
}

/// Asserts `add(start, within) == due` and the inverse `remaining`.
#[track_caller]
fn assert_add(cal: &BusinessCalendar, start: &str, within: Duration, due: &str) {
    let (start, due) = (ts(start), ts(due));
    let got = cal.add(start, within);
    assert_eq!(
        got,
        due,
        "add({start}, {within:?}) gave {} instead of {}",
        got.to_zoned_datetime(cal.time_zone().clone()),
        due.to_zoned_datetime(cal.time_zone().clone()),
    );
    assert_eq!(
        cal.remaining(start, due),
        within,
        "remaining({start}, {due})"
    );
}

// --- The required examples -------------------------------------------------

#[test]
fn friday_before_dst_weekend_and_holiday_monday_is_due_tuesday() {
    let cal = amsterdam();
    assert_eq!(cal.day_length(), hours(8));
    let created = parse_timestamp("2027-03-26T15:00:00+01:00").expect("parses");
    let due = cal.add(created, cal.day_length());
    assert_eq!(due, ts("2027-03-30T15:00:00+02:00"));
    assert_eq!(due, ts("2027-03-30T13:00:00Z"));
}

#[test]
fn saturday_is_due_monday_at_closing() {
    assert_add(
        &amsterdam(),
        "2026-12-05T10:00:00+01:00",
        hours(8),
        "2026-12-07T16:00:00Z",
    );
    assert_add(
        &amsterdam(),
        "2026-12-05T10:00:00+01:00",
        hours(8),
        "2026-12-07T17:00:00+01:00",
    );
}

#[test]
fn friday_before_dst_end_is_due_monday_same_wall_time() {
    assert_add(
        &amsterdam(),
        "2026-10-23T15:30:00+02:00",
        hours(8),
        "2026-10-26T14:30:00Z",
    );
    assert_add(
        &amsterdam(),
        "2026-10-23T15:30:00+02:00",
        hours(8),
        "2026-10-26T15:30:00+01:00",
    );
}

// --- Ordinary days, closing, holidays --------------------------------------

#[test]
fn start_inside_hours_runs_over_several_days() {
    // Mon 10:00: 7 h Monday, 8 h Tuesday, 5 h Wednesday.
    assert_add(
        &amsterdam(),
        "2026-12-07T10:00:00+01:00",
        hours(20),
        "2026-12-09T14:00:00+01:00",
    );
    // Exactly two and a half days from an opening, ending at a closing.
    assert_add(
        &amsterdam(),
        "2026-12-07T09:00:00+01:00",
        hours(16),
        "2026-12-08T17:00:00+01:00",
    );
    // Over a weekend and into the next week: 3 business days = 24 h.
    assert_add(
        &amsterdam(),
        "2026-12-10T12:00:00+01:00",
        hours(24),
        "2026-12-15T12:00:00+01:00",
    );
}

#[test]
fn start_at_closing_and_at_opening() {
    let cal = amsterdam();
    // Friday 17:00 is closed: an hour of business time is Monday 10:00.
    assert_add(
        &cal,
        "2026-12-04T17:00:00+01:00",
        hours(1),
        "2026-12-07T10:00:00+01:00",
    );
    // Zero from a closing time is the next opening, not the closing time.
    assert_eq!(
        cal.add(ts("2026-12-04T17:00:00+01:00"), Duration::ZERO),
        ts("2026-12-07T09:00:00+01:00")
    );
    // Zero from inside the hours or at an opening is the start itself.
    for inside in [
        "2026-12-07T09:00:00+01:00",
        "2026-12-04T16:59:59.999999999+01:00",
    ] {
        assert_eq!(cal.add(ts(inside), Duration::ZERO), ts(inside));
    }
    // The last nanosecond of a day ends exactly at its closing time.
    assert_add(
        &cal,
        "2026-12-04T16:59:59.999999999+01:00",
        Duration::from_nanos(1),
        "2026-12-04T17:00:00+01:00",
    );
    // Before opening on a business day: counts from the opening.
    assert_add(
        &cal,
        "2026-12-07T06:00:00+01:00",
        minutes(30),
        "2026-12-07T09:30:00+01:00",
    );
}

#[test]
fn holidays_in_a_row_are_skipped() {
    // Thu 24, Fri 25 and Mon 28 December are holidays; the weekend between.
    let cal = calendar(
        "Europe/Amsterdam",
        "09:00-17:00",
        &WEEKDAYS,
        &["2026-12-24", "2026-12-25", "2026-12-26", "2026-12-28"],
    );
    // Wed 23 16:00: one hour on Wednesday, then seven on Tuesday 29.
    assert_add(
        &cal,
        "2026-12-23T16:00:00+01:00",
        hours(8),
        "2026-12-29T16:00:00+01:00",
    );
    // Created on a holiday: counts from the first business opening.
    assert_add(
        &cal,
        "2026-12-24T11:00:00+01:00",
        hours(8),
        "2026-12-29T17:00:00+01:00",
    );
    assert_eq!(
        cal.add(ts("2026-12-24T11:00:00+01:00"), Duration::ZERO),
        ts("2026-12-29T09:00:00+01:00")
    );
}

#[test]
fn minutes_in_business_hours() {
    let cal = calendar("Europe/Amsterdam", "08:30-17:15", &WEEKDAYS, &NO_HOLIDAYS);
    assert_eq!(cal.day_length(), hours(8) + minutes(45));
    assert_add(
        &cal,
        "2026-12-04T17:00:00+01:00",
        cal.day_length(),
        "2026-12-07T17:00:00+01:00",
    );
}

// --- DST --------------------------------------------------------------------

#[test]
fn europe_dst_changes_2026_and_2027_keep_wall_clock_hours() {
    let cal = calendar("Europe/Amsterdam", "09:00-17:00", &WEEKDAYS, &NO_HOLIDAYS);
    // 2026-03-29: spring forward; 71 real hours between the two instants.
    assert_add(
        &cal,
        "2026-03-27T16:00:00+01:00",
        hours(8),
        "2026-03-30T16:00:00+02:00",
    );
    // 2026-10-25: fall back; 73 real hours.
    assert_add(
        &cal,
        "2026-10-23T16:00:00+02:00",
        hours(8),
        "2026-10-26T16:00:00+01:00",
    );
    // 2027-03-28 (without the example's holiday) and 2027-10-31.
    assert_add(
        &cal,
        "2027-03-26T16:00:00+01:00",
        hours(8),
        "2027-03-29T16:00:00+02:00",
    );
    assert_add(
        &cal,
        "2027-10-29T16:00:00+02:00",
        hours(8),
        "2027-11-01T16:00:00+01:00",
    );
    // A whole business week across the change still counts 40 hours.
    assert_eq!(
        cal.remaining(
            ts("2027-03-26T09:00:00+01:00"),
            ts("2027-04-02T09:00:00+02:00")
        ),
        hours(40)
    );
}

#[test]
fn hours_containing_a_change_count_real_time() {
    // Sundays 01:00-05:00: the change happens inside the hours.
    let cal = calendar("Europe/Amsterdam", "01:00-05:00", &["sun"], &NO_HOLIDAYS);
    let sunday = |day: &str, next: &str| cal.remaining(ts(day), ts(next));
    // An ordinary Sunday has 4 hours.
    assert_eq!(
        sunday("2026-03-22T00:00:00+01:00", "2026-03-23T00:00:00+01:00"),
        hours(4)
    );
    // 02:00-03:00 does not exist on 2026-03-29: 3 hours.
    assert_eq!(
        sunday("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
        hours(3)
    );
    // 02:00-03:00 happens twice on 2026-10-25: 5 hours.
    assert_eq!(
        sunday("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
        hours(5)
    );
    // Across the gap: 01:00 CET + 1 h is the jump, + 30 min more is 03:30 CEST.
    assert_add(
        &cal,
        "2026-03-29T01:00:00+01:00",
        minutes(90),
        "2026-03-29T03:30:00+02:00",
    );
    // Across the fold: both 02:00-03:00 hours count.
    assert_add(
        &cal,
        "2026-10-25T01:00:00+02:00",
        minutes(150),
        "2026-10-25T02:30:00+01:00",
    );
    // Starting inside the gap's wall hour is impossible; starting at the jump
    // (03:00 CEST) leaves 2 hours.
    assert_add(
        &cal,
        "2026-03-29T03:00:00+02:00",
        hours(2),
        "2026-03-29T05:00:00+02:00",
    );
}

#[test]
fn all_day_every_day_is_real_time_even_on_23_and_25_hour_days() {
    let cal = calendar("Europe/Amsterdam", "00:00-24:00", &EVERY_DAY, &NO_HOLIDAYS);
    assert_eq!(cal.day_length(), hours(24));
    for start in [
        "2027-03-27T12:00:00+01:00",
        "2027-03-28T01:59:59+01:00",
        "2027-10-30T23:30:00+02:00",
        "2026-12-31T23:59:59.5Z",
    ] {
        for within in [Duration::ZERO, minutes(1), hours(24), hours(24 * 9 + 5)] {
            let expected = ts(start)
                .checked_add(SignedDuration::try_from(within).expect("small"))
                .expect("in range");
            assert_eq!(cal.add(ts(start), within), expected, "{start} + {within:?}");
            assert_eq!(cal.remaining(ts(start), expected), within);
        }
    }
    // So one "business day" from Saturday noon is Sunday 13:00 by the wall
    // clock on the day that lost an hour, and 11:00 on the day that gained one.
    assert_add(
        &cal,
        "2027-03-27T12:00:00+01:00",
        hours(24),
        "2027-03-28T13:00:00+02:00",
    );
    assert_add(
        &cal,
        "2027-10-30T12:00:00+02:00",
        hours(24),
        "2027-10-31T11:00:00+01:00",
    );
    // The 23- and 25-hour days themselves.
    assert_eq!(
        cal.remaining(
            ts("2027-03-28T00:00:00+01:00"),
            ts("2027-03-29T00:00:00+02:00")
        ),
        hours(23)
    );
    assert_eq!(
        cal.remaining(
            ts("2027-10-31T00:00:00+02:00"),
            ts("2027-11-01T00:00:00+01:00")
        ),
        hours(25)
    );
}

#[test]
fn new_york_dst_changes() {
    let cal = calendar("America/New_York", "09:00-17:00", &WEEKDAYS, &NO_HOLIDAYS);
    // 2026-03-08 spring forward, 2026-11-01 fall back.
    assert_add(
        &cal,
        "2026-03-06T15:00:00-05:00",
        hours(8),
        "2026-03-09T19:00:00Z",
    );
    assert_add(
        &cal,
        "2026-03-06T15:00:00-05:00",
        hours(8),
        "2026-03-09T15:00:00-04:00",
    );
    assert_add(
        &cal,
        "2026-10-30T15:00:00-04:00",
        hours(8),
        "2026-11-02T15:00:00-05:00",
    );
    assert_add(
        &cal,
        "2026-10-30T15:00:00-04:00",
        hours(8),
        "2026-11-02T20:00:00Z",
    );
    // 01:00-02:00 is lived twice on 2026-11-01: two hours of business time.
    let fold = calendar("America/New_York", "01:00-02:00", &["sun"], &NO_HOLIDAYS);
    assert_eq!(
        fold.remaining(
            ts("2026-11-01T00:00:00-04:00"),
            ts("2026-11-02T00:00:00-05:00")
        ),
        hours(2)
    );
    assert_add(
        &fold,
        "2026-11-01T01:30:00-04:00",
        hours(1),
        "2026-11-01T01:30:00-05:00",
    );
    // ... and 02:00-03:00 not at all on 2026-03-08.
    let gap = calendar("America/New_York", "02:00-03:00", &["sun"], &NO_HOLIDAYS);
    assert_eq!(
        gap.remaining(
            ts("2026-03-08T00:00:00-05:00"),
            ts("2026-03-09T00:00:00-04:00")
        ),
        Duration::ZERO
    );
    assert_add(
        &gap,
        "2026-03-07T12:00:00-05:00",
        minutes(1),
        "2026-03-15T02:01:00-04:00",
    );
}

#[test]
fn a_change_at_midnight_moves_the_wall_date_back() {
    // Beirut falls back at Sunday 00:00 to Saturday 23:00 (2026-10-25), so
    // Saturday 2026-10-24 lasts 25 hours and Sunday 2026-03-29 starts at 01:00.
    let saturday = calendar("Asia/Beirut", "00:00-24:00", &["sat"], &NO_HOLIDAYS);
    assert_eq!(
        saturday.remaining(ts("2026-10-23T00:00:00Z"), ts("2026-10-26T00:00:00Z")),
        hours(25)
    );
    assert_add(
        &saturday,
        "2026-10-24T12:00:00+03:00",
        hours(12) + minutes(30),
        "2026-10-24T23:30:00+02:00",
    );
    let sunday = calendar("Asia/Beirut", "00:00-24:00", &["sun"], &NO_HOLIDAYS);
    assert_eq!(
        sunday.remaining(ts("2026-03-27T00:00:00Z"), ts("2026-03-31T00:00:00Z")),
        hours(23)
    );
    assert_eq!(
        sunday.add(ts("2026-03-28T12:00:00+02:00"), Duration::ZERO),
        ts("2026-03-29T01:00:00+03:00")
    );
}

// --- remaining --------------------------------------------------------------

#[test]
fn remaining_counts_only_business_time_and_is_zero_when_past() {
    let cal = amsterdam();
    let created = ts("2027-03-26T15:00:00+01:00");
    let due = ts("2027-03-30T15:00:00+02:00");
    assert_eq!(cal.remaining(created, due), hours(8));
    // Over the weekend and the holiday nothing passes.
    assert_eq!(
        cal.remaining(ts("2027-03-26T17:00:00+01:00"), due),
        hours(6)
    );
    assert_eq!(
        cal.remaining(ts("2027-03-29T16:00:00+02:00"), due),
        hours(6)
    );
    assert_eq!(
        cal.remaining(ts("2027-03-30T14:15:00+02:00"), due),
        minutes(45)
    );
    assert_eq!(cal.remaining(due, due), Duration::ZERO);
    assert_eq!(
        cal.remaining(ts("2027-03-31T10:00:00+02:00"), due),
        Duration::ZERO
    );
    // Between two non-business instants with no business time between.
    assert_eq!(
        cal.remaining(
            ts("2026-12-05T10:00:00+01:00"),
            ts("2026-12-06T10:00:00+01:00")
        ),
        Duration::ZERO
    );
    assert_eq!(
        cal.remaining(
            ts("2026-12-05T10:00:00+01:00"),
            ts("2026-12-07T10:00:00+01:00")
        ),
        hours(1)
    );
}

// --- Termination and range --------------------------------------------------

#[test]
fn deadlines_beyond_the_end_of_time_are_max() {
    let cal = amsterdam();
    assert_eq!(
        cal.add(ts("2026-12-05T10:00:00Z"), Duration::MAX),
        Timestamp::MAX
    );
    assert_eq!(
        cal.add(ts("9999-12-01T10:00:00Z"), hours(8 * 300)),
        Timestamp::MAX
    );
    // A year of business time ends, but only after a year of days.
    let due = cal.add(ts("2026-12-05T10:00:00Z"), hours(8 * 261));
    assert!(due > ts("2027-12-01T00:00:00Z") && due < ts("2028-01-01T00:00:00Z"));
    // Three weeks of holidays are waited out.
    let holidays: Vec<String> = (0..21)
        .map(|i| {
            let date = Date::new(2027, 1, 1).expect("date") + jiff::Span::new().days(i);
            date.to_string()
        })
        .collect();
    let cal = BusinessCalendar::new("UTC", "09:00-17:00", ["fri"], &holidays).expect("valid");
    assert_eq!(
        cal.add(ts("2026-12-31T12:00:00Z"), Duration::ZERO),
        ts("2027-01-22T09:00:00Z")
    );
}

// --- Validation --------------------------------------------------------------

#[test]
fn unknown_time_zone_is_named() {
    let err = BusinessCalendar::new("Europe/Amsterdm", "09:00-17:00", WEEKDAYS, NO_HOLIDAYS)
        .expect_err("unknown zone");
    assert!(
        matches!(&err, CalendarError::UnknownTimeZone { name, .. } if name == "Europe/Amsterdm")
    );
    assert!(err.to_string().contains("\"Europe/Amsterdm\""), "{err}");
}

#[test]
fn business_hours_are_validated() {
    for (value, reason) in [
        ("9-17", "start is not a time"),
        ("09:00", "separated by '-'"),
        ("17:00-09:00", "before the end"),
        ("09:00-09:00", "before the end"),
        ("24:00-24:00", "24:00 can only be an end"),
        ("09:60-17:00", "start is not a time"),
        ("25:00-26:00", "start is not a time"),
        ("00:00-24:01", "end is not a time"),
        ("09:00-17:0", "end is not a time"),
        ("+9:00-17:00", "start is not a time"),
        ("", "separated by '-'"),
    ] {
        let err = BusinessCalendar::new("UTC", value, WEEKDAYS, NO_HOLIDAYS).expect_err(value);
        match &err {
            CalendarError::InvalidHours {
                value: v,
                reason: r,
            } => {
                assert_eq!(v, value);
                assert!(r.contains(reason), "{value}: {r}");
            }
            other => panic!("{value}: {other}"),
        }
        assert!(err.to_string().contains(&format!("{value:?}")), "{err}");
    }
    for (value, length) in [
        ("00:00-24:00", hours(24)),
        ("9:00-17:00", hours(8)),
        ("08:30 - 17:15", hours(8) + minutes(45)),
        ("23:59-24:00", minutes(1)),
    ] {
        let cal = BusinessCalendar::new("UTC", value, WEEKDAYS, NO_HOLIDAYS).expect(value);
        assert_eq!(cal.day_length(), length, "{value}");
    }
}

#[test]
fn business_days_are_validated() {
    let err = BusinessCalendar::new("UTC", "09:00-17:00", ["mon", "Funday"], NO_HOLIDAYS)
        .expect_err("unknown day");
    assert!(
        matches!(&err, CalendarError::UnknownDay { value } if value == "Funday"),
        "{err}"
    );
    let err = BusinessCalendar::new("UTC", "09:00-17:00", ["mon", "tue", "MON"], NO_HOLIDAYS)
        .expect_err("duplicate");
    assert!(
        matches!(&err, CalendarError::DuplicateDay { value } if value == "MON"),
        "{err}"
    );
    let err = BusinessCalendar::new("UTC", "09:00-17:00", ["monday", "Mon"], NO_HOLIDAYS)
        .expect_err("duplicate");
    assert!(matches!(&err, CalendarError::DuplicateDay { .. }), "{err}");
    let err =
        BusinessCalendar::new("UTC", "09:00-17:00", NO_HOLIDAYS, NO_HOLIDAYS).expect_err("no days");
    assert!(matches!(err, CalendarError::NoBusinessDays), "{err}");
    // Case-insensitive, short or long names.
    let cal = BusinessCalendar::new("UTC", "09:00-17:00", ["Sat", "SUNDAY"], NO_HOLIDAYS)
        .expect("weekend calendar");
    assert_eq!(
        cal.add(ts("2026-12-04T12:00:00Z"), hours(1)),
        ts("2026-12-05T10:00:00Z")
    );
}

#[test]
fn holidays_are_validated() {
    for value in [
        "2026-13-01",
        "2026-12-5",
        "25-12-2026",
        "2026-02-30",
        "2026-12-25T00:00",
        "christmas",
    ] {
        let err = BusinessCalendar::new("UTC", "09:00-17:00", WEEKDAYS, [value]).expect_err(value);
        assert!(
            matches!(&err, CalendarError::InvalidHoliday { value: v, .. } if v == value),
            "{value}: {err}"
        );
        assert!(err.to_string().contains(&format!("{value:?}")), "{err}");
    }
    // A duplicate is harmless.
    BusinessCalendar::new("UTC", "09:00-17:00", WEEKDAYS, ["2026-12-25", "2026-12-25"])
        .expect("duplicate holiday");
}

#[test]
fn timestamps_parse_with_z_or_offset_only() {
    let with_offset = parse_timestamp("2027-03-26T15:00:00+01:00").expect("offset");
    assert_eq!(
        with_offset,
        parse_timestamp("2027-03-26T14:00:00Z").expect("Z")
    );
    assert_eq!(
        parse_timestamp(" 2027-03-26T14:00:00.250Z\n").expect("trimmed"),
        with_offset
            .checked_add(SignedDuration::from_millis(250))
            .expect("in range")
    );
    for bad in ["2027-03-26T15:00:00", "2027-03-26", "yesterday", ""] {
        let err = parse_timestamp(bad).expect_err(bad);
        assert_eq!(err.value, bad);
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}

// --- Properties ---------------------------------------------------------------

/// What a property-test calendar is made of, kept to check the results
/// against the wall clock without the module's own walk.
#[derive(Debug, Clone)]
struct Spec {
    zone: &'static str,
    open: u16,
    close: u16,
    days: u8,
    holidays: Vec<Date>,
}

impl Spec {
    fn calendar(&self) -> BusinessCalendar {
        let clock = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        let days: Vec<&str> = EVERY_DAY
            .iter()
            .enumerate()
            .filter(|(i, _)| self.days & (1 << i) != 0)
            .map(|(_, d)| *d)
            .collect();
        let holidays: Vec<String> = self.holidays.iter().map(Date::to_string).collect();
        calendar(
            self.zone,
            &format!("{}-{}", clock(self.open), clock(self.close)),
            &days,
            &holidays.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    }

    /// The definition, by the wall clock: a business date and a time of day
    /// in `[open, close)`.
    fn is_business(&self, tz: &TimeZone, t: Timestamp) -> bool {
        let wall = tz.to_datetime(t);
        let weekday = wall.date().weekday().to_monday_zero_offset();
        let second = i32::from(wall.hour()) * 3600
            + i32::from(wall.minute()) * 60
            + i32::from(wall.second());
        self.days & (1 << weekday) != 0
            && !self.holidays.contains(&wall.date())
            && i32::from(self.open) * 60 <= second
            && second < i32::from(self.close) * 60
    }
}

/// Zones with ordinary DST, a midnight change, a 30-minute change, none.
const ZONES: [&str; 5] = [
    "Europe/Amsterdam",
    "America/New_York",
    "Asia/Beirut",
    "Australia/Lord_Howe",
    "UTC",
];

fn spec() -> impl Strategy<Value = Spec> {
    // Quarter hours, so that the hours often start or end inside a DST change.
    (0..ZONES.len(), 0u16..96)
        .prop_flat_map(|(zone, open)| {
            (
                Just(ZONES[zone]),
                Just(open * 15),
                (open + 1..=96).prop_map(|c| c * 15),
                1u8..128,
                proptest::collection::vec(0i64..760, 0..30),
            )
        })
        .prop_map(|(zone, open, close, days, offsets)| Spec {
            zone,
            open,
            close,
            days,
            holidays: offsets
                .into_iter()
                .filter_map(|d| {
                    Date::new(2026, 1, 1)
                        .ok()?
                        .checked_add(jiff::Span::new().days(d))
                        .ok()
                })
                .collect(),
        })
}

/// An instant in 2026–2027, to the nanosecond.
fn instant() -> impl Strategy<Value = Timestamp> {
    (0i64..2 * 365 * 86_400, 0i32..1_000_000_000)
        .prop_map(|(s, ns)| Timestamp::new(1_767_225_600 + s, ns).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Up to 30 days, to the nanosecond, sometimes zero.
fn within() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::ZERO),
        9 => (0u64..30 * 86_400, 0u32..1_000_000_000).prop_map(|(s, ns)| Duration::new(s, ns)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn add_is_monotonic_in_within(spec in spec(), start in instant(), a in within(), b in within()) {
        let cal = spec.calendar();
        let (small, large) = (a.min(b), a.max(b));
        prop_assert!(cal.add(start, small) <= cal.add(start, large));
        prop_assert!(cal.add(start, small) >= start);
    }

    #[test]
    fn add_lands_in_business_time(spec in spec(), start in instant(), d in within()) {
        let cal = spec.calendar();
        let tz = cal.time_zone();
        let due = cal.add(start, d);
        if d.is_zero() {
            // The first business instant at or after start.
            prop_assert!(spec.is_business(tz, due), "{due} is not business time");
            prop_assert_eq!(cal.remaining(start, due), Duration::ZERO);
        } else {
            // Business time up to the result, which may be a closing time.
            let before = due.checked_sub(SignedDuration::from_nanos(1)).unwrap_or(due);
            prop_assert!(spec.is_business(tz, before), "{before} is not business time");
        }
    }

    #[test]
    fn remaining_inverts_add(spec in spec(), start in instant(), d in within()) {
        let cal = spec.calendar();
        let due = cal.add(start, d);
        prop_assert_eq!(cal.remaining(start, due), d);
        let opened = cal.add(start, Duration::ZERO);
        prop_assert_eq!(cal.add(opened, d), due);
        prop_assert_eq!(cal.remaining(opened, due), d);
    }

    /// `remaining` agrees with counting the business minutes one by one by
    /// the wall clock (all boundaries here fall on whole minutes).
    #[test]
    fn remaining_counts_business_minutes(spec in spec(), start in instant(), span in 0i64..3 * 1440) {
        let cal = spec.calendar();
        let tz = cal.time_zone();
        let minute = |t: Timestamp, m: i64| t.checked_add(SignedDuration::from_mins(m)).unwrap_or(t);
        let from = Timestamp::from_second(start.as_second() / 60 * 60).unwrap_or(start);
        let counted = (0..span).filter(|&m| spec.is_business(tz, minute(from, m))).count();
        let expected = minutes(u64::try_from(counted).unwrap_or(u64::MAX));
        prop_assert_eq!(cal.remaining(from, minute(from, span)), expected);
    }
}

//! HackerOne reports (`[hackerone]`): the business calendar their deadlines
//! are counted in. The config loader already refused anything invalid, so
//! this says what the calendar is, in words, and flags a holiday list with
//! nothing left in it. The channel is checked with Slack's
//! (`doctor/slack.rs`).

use super::Check;
use crate::clock::Millis;
use crate::config::Config;
use crate::reports::config::instant;

const NAME: &str = "HackerOne calendar";

pub(super) fn checks(config: &Config, now: Millis) -> Vec<Check> {
    let Some(h1) = &config.hackerone else {
        return Vec::new();
    };
    let today = instant(now)
        .to_zoned_datetime(h1.calendar.time_zone().clone())
        .date()
        .to_string();
    // `YYYY-MM-DD` compares as text.
    let ahead = h1
        .holidays
        .iter()
        .map(|d| d.trim())
        .filter(|d| *d >= today.as_str())
        .count();
    let listed = match h1.holidays.len() {
        0 => "no holidays".to_string(),
        1 => "1 holiday".to_string(),
        n => format!("{n} holidays"),
    };
    let holidays = match (h1.holidays.len(), ahead) {
        (0, _) => listed,
        (_, 0) => format!("{listed}, none from today on"),
        (_, a) => format!("{listed}, {a} from today on"),
    };
    let (example, _) = h1.deadlines(now);
    let detail = format!(
        "valid: {} {} on {}, {holidays}; first public reply within {} of business time \
         (a report created now is due {}), reminder {} before, in {}; tags {}; {}",
        h1.timezone,
        h1.business_hours,
        h1.business_days.join(", "),
        humantime::format_duration(h1.respond_within),
        h1.wall_clock(example),
        humantime::format_duration(h1.remind_before),
        h1.channel,
        h1.tags.join(", "),
        if h1.page_on_breach {
            "a missed deadline pages"
        } else {
            "a missed deadline pages nobody"
        },
    );
    if !h1.holidays.is_empty() && ahead == 0 {
        return vec![Check::fail(
            NAME,
            detail,
            "every date in hackerone.holidays is past: add the coming holidays, or deadlines \
             will fall on them",
        )];
    }
    vec![Check::pass(NAME, detail)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar(holidays: &str) -> Check {
        let dir = tempfile::tempdir().unwrap();
        let lines = format!("timezone = \"Europe/Amsterdam\"\nholidays = {holidays}");
        let config = crate::reports::tests::config(dir.path(), &lines).unwrap();
        let now = "2026-11-28T12:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        checks(&config, now).remove(0)
    }

    #[test]
    fn a_holiday_list_with_only_past_dates_fails_with_the_key() {
        let ok = calendar("[\"2026-12-25\", \"2025-12-25\"]");
        assert!(ok.ok, "{ok:?}");
        assert!(ok.detail.contains("2 holidays, 1 from today on"), "{ok:?}");
        assert!(
            ok.detail.contains("due Mon 2026-11-30 17:00 CET"),
            "a Saturday report is due Monday evening: {ok:?}"
        );
        let past = calendar("[\"2025-12-25\"]");
        assert!(!past.ok, "{past:?}");
        assert!(past.fix.unwrap().contains("hackerone.holidays"));
        assert!(calendar("[]").ok);
    }
}

//! Time, injected.
//!
//! The engine never reads a clock: it is handed `now`. The daemon's clock is
//! wall-clock milliseconds since the Unix epoch (deadlines survive restarts
//! that way), and the scheduler asks the clock how long to really sleep until
//! a deadline. `pagerd demo` uses a [`ScaledClock`] so five minutes of policy
//! pass in one second of the demo.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Converts a policy duration to milliseconds (saturating: a `100y` timeout
/// is simply "never" in practice).
pub fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Formats a timestamp as RFC 3339 for humans and APIs.
pub fn rfc3339(t: Millis) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(t.max(0)).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A source of "now", and the mapping from policy time to real sleeping time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Millis;
    /// How long to really wait for `ms` of clock time to pass.
    fn real(&self, ms: Millis) -> Duration;
    /// How much clock time passes in `d` of real time.
    fn clock_time(&self, d: Duration) -> Millis;
    /// How long to really wait until the clock reads `at`. The default
    /// counts from [`Clock::now`], whole milliseconds; the real clocks count
    /// from the microsecond, so a deadline is not slept past by up to a
    /// millisecond of truncation.
    fn until(&self, at: Millis) -> Duration {
        self.real(at - self.now())
    }
}

/// Microseconds since the Unix epoch.
fn system_micros() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX / 4)
}

/// A wait of `us` microseconds (none if negative).
fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us.max(0)).unwrap_or(0))
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

fn system_now() -> Millis {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    millis(since)
}

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        system_now()
    }
    fn real(&self, ms: Millis) -> Duration {
        Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0))
    }
    fn clock_time(&self, d: Duration) -> Millis {
        millis(d)
    }
    fn until(&self, at: Millis) -> Duration {
        micros(at.saturating_mul(1000) - system_micros())
    }
}

/// A clock that runs `factor` times faster than the wall clock, starting
/// from the real time of its creation (used by `pagerd demo`).
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    start_real: Millis,
    factor: u32,
}

impl ScaledClock {
    /// A clock running `factor` times faster than real time.
    pub fn new(factor: u32) -> ScaledClock {
        ScaledClock {
            start_real: system_now(),
            factor: factor.max(1),
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Millis {
        let real = system_now();
        self.start_real + (real - self.start_real) * i64::from(self.factor)
    }
    fn real(&self, ms: Millis) -> Duration {
        let ms = u64::try_from(ms.max(0)).unwrap_or(0);
        Duration::from_micros(ms.saturating_mul(1000) / u64::from(self.factor))
    }
    fn clock_time(&self, d: Duration) -> Millis {
        millis(d).saturating_mul(i64::from(self.factor))
    }
    fn until(&self, at: Millis) -> Duration {
        // The real instant at which this clock reads `at`.
        let real = self.start_real.saturating_mul(1000)
            + (at - self.start_real).saturating_mul(1000) / i64::from(self.factor);
        micros(real - system_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_compresses_waits() {
        let c = ScaledClock::new(300);
        assert_eq!(c.real(300_000), Duration::from_secs(1));
        assert!(c.now() >= c.start_real);
    }

    #[test]
    fn waits_until_a_deadline_count_from_the_microsecond() {
        // Late in a millisecond, where counting from `now()` (truncated to
        // the millisecond) would overshoot the most: by 0.5-0.9 ms.
        let t = loop {
            let t = system_micros();
            if (500..900).contains(&(t % 1000)) {
                break t;
            }
        };
        let c = SystemClock;
        let at = t / 1000 + 50;
        let wait = c.until(at);
        assert!(wait <= micros(at * 1000 - t), "{wait:?}");
        assert!(wait > Duration::from_millis(48), "{wait:?}");
        assert_eq!(c.until(at - 100), Duration::ZERO);
        // The demo's clock: 300 times faster.
        let s = ScaledClock::new(300);
        let wait = s.until(s.now() + 300_000);
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::from_millis(990),
            "{wait:?}"
        );
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}

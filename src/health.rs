//! Whether the daemon is making progress, not only whether it is up: the
//! leader's dispatcher and scheduler loops beat on every turn (at least
//! every [`BEAT_EVERY`]), and a loop silent for [`STALL_AFTER`] is stalled.
//! `/readyz` and systemd's watchdog use this. A vendor that is down does
//! not stall a loop (it keeps turning, retrying), so it never makes the
//! daemon unready: vendor lag is reported as lag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often each loop turns at the least, even with nothing to do.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// How long a loop may stay silent before it counts as stalled: well over
/// a store's busy timeout (5 s), so a busy database does not flap it.
pub const STALL_AFTER: Duration = Duration::from_secs(30);

/// A loop that beats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    /// The outbox loop.
    Dispatcher,
    /// The deadline loop.
    Scheduler,
}

/// The loops' last beats, in ms since the process started (0: none).
#[derive(Debug)]
pub struct Heartbeats {
    start: Instant,
    dispatcher: AtomicU64,
    scheduler: AtomicU64,
}

impl Default for Heartbeats {
    fn default() -> Heartbeats {
        Heartbeats {
            start: Instant::now(),
            dispatcher: AtomicU64::new(0),
            scheduler: AtomicU64::new(0),
        }
    }
}

impl Heartbeats {
    fn slot(&self, l: Loop) -> &AtomicU64 {
        match l {
            Loop::Dispatcher => &self.dispatcher,
            Loop::Scheduler => &self.scheduler,
        }
    }

    fn now(&self) -> u64 {
        // At least 1, so that a beat is never mistaken for "none".
        (self.start.elapsed().as_millis() as u64).max(1)
    }

    /// `l` turned just now.
    pub fn beat(&self, l: Loop) {
        self.slot(l).store(self.now(), Ordering::Relaxed);
    }

    /// Both loops (re)start now: the leader's tasks were just spawned.
    pub fn started(&self) {
        self.beat(Loop::Dispatcher);
        self.beat(Loop::Scheduler);
    }

    /// The loops silent for longer than `after`, with how long, e.g.
    /// `["dispatcher silent for 31s"]`. Only meaningful on the leader.
    pub fn stalled(&self, after: Duration) -> Vec<String> {
        let now = self.now();
        [
            (Loop::Dispatcher, "dispatcher"),
            (Loop::Scheduler, "scheduler"),
        ]
        .into_iter()
        .filter_map(|(l, name)| {
            let last = self.slot(l).load(Ordering::Relaxed);
            let silent = Duration::from_millis(now.saturating_sub(last));
            (last != 0 && silent > after)
                .then(|| format!("{name} loop silent for {}s", silent.as_secs()))
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_stops_beating_is_stalled_and_one_that_beats_is_not() {
        let h = Heartbeats::default();
        assert!(
            h.stalled(Duration::ZERO).is_empty(),
            "no beat yet: not judged"
        );
        h.started();
        std::thread::sleep(Duration::from_millis(20));
        h.beat(Loop::Scheduler);
        let stalled = h.stalled(Duration::from_millis(10));
        assert_eq!(stalled.len(), 1, "{stalled:?}");
        assert!(
            stalled[0].starts_with("dispatcher loop silent for"),
            "{stalled:?}"
        );
        assert!(h.stalled(Duration::from_secs(5)).is_empty());
    }
}

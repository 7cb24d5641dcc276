//! Leadership: which instance fires timers and delivers effects.
//!
//! With SQLite there is one instance and it always leads. With PostgreSQL
//! every instance takes webhooks and CLI calls, but only the holder of the
//! lease in the database fires deadlines and dispatches the outbox. The
//! lease is renewed every `store.lease_renew` and lasts `store.lease_ttl`;
//! this instance counts its lease as lapsed `ttl` after it *sent* the last
//! successful renewal (a conservative bound: the database's expiry is later),
//! so a process paused past its TTL (SIGSTOP, a long GC-like stall, a
//! partition) knows on waking that it must not deliver anything, before it
//! even asks the database. The store fences claims and settlements with the
//! lease's token as a second line of defence.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// This instance's view of its lease.
pub struct Leadership {
    /// This instance's name in the lease (`host-pid-random`).
    pub holder: String,
    valid_until: Mutex<Option<Instant>>,
}

impl Leadership {
    /// A leadership for `holder`, not leading yet.
    pub fn new(holder: String) -> Leadership {
        Leadership {
            holder,
            valid_until: Mutex::new(None),
        }
    }

    /// A unique name for this process: host, pid and a random suffix.
    pub fn default_holder() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_else(|_| "pagerd".into());
        format!(
            "{}-{}-{:04x}",
            host.trim(),
            std::process::id(),
            rand::random::<u16>()
        )
    }

    /// Records a successful renewal sent at `sent`, valid for `ttl`.
    pub fn renewed(&self, sent: Instant, ttl: Duration) {
        *self.valid_until.lock().expect("lease lock") = Some(sent + ttl);
    }

    /// Records that the lease is lost (or was never held).
    pub fn lost(&self) {
        *self.valid_until.lock().expect("lease lock") = None;
    }

    /// Whether this instance may fire timers and deliver right now.
    pub fn is_leader(&self) -> bool {
        self.valid_until
            .lock()
            .expect("lease lock")
            .is_some_and(|t| Instant::now() < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_lapses_locally_after_its_ttl() {
        let l = Leadership::new("a".into());
        assert!(!l.is_leader());
        l.renewed(Instant::now(), Duration::from_secs(10));
        assert!(l.is_leader());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(
            !l.is_leader(),
            "a paused process wakes up knowing its lease lapsed"
        );
        l.renewed(Instant::now(), Duration::from_secs(10));
        l.lost();
        assert!(!l.is_leader());
    }
}

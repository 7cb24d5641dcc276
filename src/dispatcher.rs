//! Delivers the outbox: every effect, at least once, in order per incident
//! and lane, with backoff.
//!
//! The loop asks the store for due rows (the oldest pending row of each
//! incident's lane whose retry time has come), delivers each in its own task
//! (bounded by `concurrency`), and reports back: delivered (with what the
//! remote made, fed to the engine), retry later (exponential backoff with
//! jitter, never sooner than the server's `Retry-After`), or failed for good
//! (a permanent error: logged at error, counted, shown by `incidents show`,
//! and for a page, the engine switches to the e-mail fallback).
//!
//! A crash between "remote accepted" and "row marked done" redelivers the
//! effect after restart; each effect carries a stable key
//! ([`Pending::key`]) that the integrations use so the redelivery is a
//! no-op on the remote side.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::RngExt as _;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::{Event, Outcome};
use crate::intake::Core;
use crate::store::{Pending, StoreError};
use crate::vendors::DeliveryError;

/// First retry delay; doubled per attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest delay between two attempts: a page must not sleep for long.
const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Something that can deliver an effect: the real integrations, or a test
/// double.
#[async_trait]
pub trait Deliver: Send + Sync + 'static {
    /// Performs the effect. `Ok(outcome)` only once the remote accepted it.
    async fn deliver(&self, pending: &Pending) -> Result<Option<Outcome>, DeliveryError>;
}

/// The delay before attempt `attempts + 1`: capped exponential, with "equal
/// jitter" (half fixed, half random) so a fleet of retries spreads out
/// without ever retrying immediately.
pub fn backoff(attempts: u32) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(attempts.min(16)))
        .min(BACKOFF_CAP);
    let half = exp / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter)
}

/// The outbox loop.
pub struct Dispatcher {
    core: Arc<Core>,
    deliver: Arc<dyn Deliver>,
    concurrency: usize,
    poll: Duration,
    in_flight: Arc<Mutex<HashSet<i64>>>,
    /// Rows whose delivery was attempted but whose outcome could not be
    /// stored (store busy, disk full, connection lost): the remote side may
    /// have them, so the next attempt checks first.
    unrecorded: Arc<Mutex<HashSet<i64>>>,
    /// Rows queued before this instant may have been sent by a previous
    /// process (or leader) that died before recording it.
    started: crate::clock::Millis,
}

impl Dispatcher {
    /// A dispatcher delivering through `deliver`, at most `concurrency` at
    /// once, looking at the outbox at least every `poll` (other instances'
    /// intake queues effects without waking this one). Create it before
    /// anything queues effects for it: rows older than its creation count as
    /// possibly sent.
    pub fn new(
        core: Arc<Core>,
        deliver: Arc<dyn Deliver>,
        concurrency: usize,
        poll: Duration,
    ) -> Dispatcher {
        Dispatcher {
            deliver,
            concurrency: concurrency.max(1),
            poll,
            in_flight: Default::default(),
            unrecorded: Default::default(),
            started: core.clock.now(),
            core,
        }
    }

    /// Runs until `shutdown`, then waits for the deliveries in flight (the
    /// caller bounds that wait); what is not delivered stays in the outbox.
    pub async fn run(self, wake: Arc<Notify>, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        let started = self.started;
        loop {
            self.core.health.beat(crate::health::Loop::Dispatcher);
            while tasks.try_join_next().is_some() {}
            let free = self.concurrency.saturating_sub(tasks.len());
            let mut next_wake = self.poll.min(crate::health::BEAT_EVERY);
            if free > 0 && self.core.leadership.is_leader() {
                let now = self.core.clock.now();
                let skip: Vec<i64> = self
                    .in_flight
                    .lock()
                    .expect("in-flight lock")
                    .iter()
                    .copied()
                    .collect();
                match self.core.store.due(now, free, skip).await {
                    Ok((due, next)) => {
                        if let Some(n) = next {
                            next_wake = self.core.clock.real(n - now).min(next_wake);
                        }
                        for mut pending in due {
                            pending.maybe_sent |= pending.attempts > 0
                                || pending.created_at < started
                                || self
                                    .unrecorded
                                    .lock()
                                    .expect("unrecorded lock")
                                    .contains(&pending.id);
                            self.in_flight
                                .lock()
                                .expect("in-flight lock")
                                .insert(pending.id);
                            tasks.spawn(deliver_one(
                                self.core.clone(),
                                self.deliver.clone(),
                                Tracking {
                                    in_flight: self.in_flight.clone(),
                                    unrecorded: self.unrecorded.clone(),
                                },
                                pending,
                            ));
                        }
                    }
                    Err(StoreError::NotLeader) => {
                        tracing::info!("dispatcher: not the leader; not delivering");
                    }
                    Err(e) => {
                        tracing::error!(cause = %e, "dispatcher: cannot read the outbox; retrying in 1s");
                        next_wake = Duration::from_secs(1);
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(next_wake) => {}
            }
        }
        if !tasks.is_empty() {
            tracing::info!(
                in_flight = tasks.len(),
                "dispatcher: finishing deliveries in flight"
            );
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// The dispatcher's memory of rows in flight and of rows whose outcome was
/// not stored.
struct Tracking {
    in_flight: Arc<Mutex<HashSet<i64>>>,
    unrecorded: Arc<Mutex<HashSet<i64>>>,
}

async fn deliver_one(core: Arc<Core>, deliver: Arc<dyn Deliver>, track: Tracking, p: Pending) {
    let in_flight = &track.in_flight;
    let kind = p.effect.kind();
    let span = tracing::info_span!("deliver", incident = p.incident.id, ticket = %p.incident.ticket.id, effect = ?kind, row = p.id);
    // The lease may have lapsed while this task waited to run: a paused
    // old leader must not deliver anything after losing it.
    if !core.leadership.is_leader() {
        in_flight.lock().expect("in-flight lock").remove(&p.id);
        return;
    }
    let started = std::time::Instant::now();
    let result = deliver.deliver(&p).await;
    core.metrics
        .observe_delivery(kind.lane(), &result, started.elapsed());
    let now = core.clock.now();
    let stored = match result {
        Ok(outcome) => {
            tracing::info!(parent: &span, attempts = p.attempts + 1, "delivered");
            let event = Event::Delivered {
                effect: kind,
                outcome,
            };
            core.store
                .complete(p.id, event, now)
                .await
                .map(|a| a.inspect(|a| core.settled(p.created_at, false, a, now)))
        }
        Err(DeliveryError::Retryable {
            reason,
            retry_after,
        }) => {
            let delay = backoff(p.attempts).max(retry_after.unwrap_or_default());
            tracing::warn!(parent: &span, attempts = p.attempts + 1, retry_in = ?delay, cause = %reason, "delivery failed; will retry");
            let at = now + core.clock.clock_time(delay);
            core.store
                .retry_later(p.id, at, reason)
                .await
                .map(|()| None)
        }
        Err(DeliveryError::Permanent { reason }) => {
            tracing::error!(parent: &span, cause = %reason, "delivery failed permanently; fix the configuration (see `pagerd incidents show`)");
            core.store
                .fail(p.id, reason, now)
                .await
                .map(|a| a.inspect(|a| core.settled(p.created_at, true, a, now)))
        }
    };
    let mut unrecorded = track.unrecorded.lock().expect("unrecorded lock");
    match stored {
        Ok(_) => {
            unrecorded.remove(&p.id);
        }
        Err(e) => {
            // The row stays pending with its attempt count unchanged. The
            // remote side may have it already: the next attempt, whenever it
            // comes, is made as "maybe sent" and checks the idempotency
            // marker first, so the customer never gets a second comment.
            unrecorded.insert(p.id);
            tracing::error!(parent: &span, cause = %e, "cannot record the outcome of a delivery; it will be checked, then retried");
        }
    }
    drop(unrecorded);
    in_flight.lock().expect("in-flight lock").remove(&p.id);
    core.dispatch.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_never_zero() {
        for attempt in 0..40 {
            let d = backoff(attempt);
            let exp = BACKOFF_BASE
                .saturating_mul(2u32.saturating_pow(attempt.min(16)))
                .min(BACKOFF_CAP);
            assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d:?}");
        }
    }
}

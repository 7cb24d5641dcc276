//! What `GET /metrics` exposes, with [`prometheus_client`] and its
//! Prometheus text encoder (format 0.0.4).
//!
//! Every series whose labels are known up front (webhooks by source and
//! result, events by result, deliveries by lane and result) is registered at
//! zero from the start, so `rate()` and `absent()` work from the first
//! scrape. Times are in seconds, counters end in `_total`.
//!
//! Where the values come from:
//!
//! - counters and histograms are moved where things happen, each by one call
//!   (`core.metrics.observe_…`): the HTTP edge counts webhooks, each commit
//!   ([`Metrics::observe_commit`]) counts events and, when the commit is the
//!   one that recorded PagerDuty's acceptance of the page (`paged_at`) or the
//!   acknowledgement (`acked`), observes page latency and time to ack; the
//!   dispatcher times each delivery; the scheduler reports how late it fired;
//! - gauges are set at scrape time from memory ([`Scrape`]: the counts of
//!   [`crate::live::Live`], the leadership, the armed deadlines): a scrape
//!   never touches the store;
//! - process metrics are read from `/proc` at scrape time ([`process`]).
//!
//! Scrapes that arrive while a render runs share the next one
//! ([`Metrics::scrape`]): each still sees everything done before it was
//! asked, and a flood of scrapes (a scraper in a loop, a dashboard opened
//! by many) costs one render at a time instead of one each, so it cannot
//! take the CPU that paging needs.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::clock::Millis;
use crate::engine::{Lane, Status};
use crate::reports::ReportState;
use crate::store::{Applied, Change, Stats};
use crate::vendors::DeliveryError;

pub mod process;
#[cfg(test)]
mod tests;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Webhook sources, and the results the HTTP edge counts.
pub const WEBHOOK_SOURCES: [&str; 3] = ["zendesk", "pagerduty", "slack"];
/// See [`WEBHOOK_SOURCES`].
pub const WEBHOOK_RESULTS: [&str; 5] = [
    "accepted",
    "ignored",
    "bad_request",
    "unauthorized",
    "stale",
];
/// What a commit did to an incident.
pub const EVENT_RESULTS: [&str; 4] = ["created", "updated", "ignored", "replayed"];

/// Results of a config reload.
pub const RELOAD_RESULTS: [&str; 2] = ["applied", "refused"];

/// Every delivery lane.
pub const LANES: [Lane; 7] = [
    Lane::Pager,
    Lane::Tickets,
    Lane::Chat,
    Lane::Docs,
    Lane::Mail,
    Lane::Calendar,
    Lane::Tracker,
];
/// How one delivery attempt ended.
pub const DELIVERY_RESULTS: [&str; 3] = ["delivered", "retried", "failed"];
/// The states of an open incident.
pub const OPEN_STATES: [Status; 2] = [Status::Triggered, Status::Acknowledged];

/// Webhook received → PagerDuty accepted the page: normally well under a
/// second, minutes during a PagerDuty outage.
const PAGE_BUCKETS: [f64; 13] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
/// Page → acknowledgement: humans, minutes (the default ack timeout is 5).
const ACK_BUCKETS: [f64; 12] = [
    10.0, 30.0, 60.0, 120.0, 180.0, 240.0, 300.0, 450.0, 600.0, 900.0, 1800.0, 3600.0,
];
/// One call to a vendor's API.
const DELIVERY_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// How late a deadline fired: milliseconds when healthy.
const LATENESS_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How many recent page and ack observations are remembered, so that a
/// second commit on the same incident within the same millisecond is not
/// observed twice.
const RECENT: usize = 1024;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    source: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    lane: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// A histogram constructor usable in a [`Family`].
type NewHistogram = fn() -> Histogram;

/// The gauges set at each scrape.
#[derive(Default)]
struct Gauges {
    leader: Gauge,
    incidents: Gauge,
    open: Family<StateLabel, Gauge>,
    outbox_pending: Gauge,
    outbox_failed: Gauge,
    outbox_oldest: Gauge<f64, AtomicU64>,
    undeliverable: Gauge,
    armed: Gauge,
    reports: Family<StateLabel, Gauge>,
}

/// Which latency an observation was.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Observed {
    Page,
    Ack,
}

/// What a scrape reports besides the counters: read from memory by the
/// HTTP handler.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// The counts kept by [`crate::live::Live`].
    pub stats: Stats,
    /// Whether this instance fires timers and delivers.
    pub leader: bool,
    /// Deadlines armed in the scheduler.
    pub armed: usize,
}

/// The daemon's metrics.
pub struct Metrics {
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    events: Family<ResultLabel, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    delivery_seconds: Family<DeliveryLabels, Histogram, NewHistogram>,
    page_latency: Histogram,
    time_to_ack: Histogram,
    timer_lateness: Histogram,
    timers_fired: Counter,
    reloads: Family<ResultLabel, Counter>,
    gauges: Gauges,
    /// The last page and ack observations: `(what, incident, at)`.
    recent: Mutex<VecDeque<(Observed, i64, Millis)>>,
    /// The last rendered text and when its render began ([`Metrics::scrape`]).
    last: tokio::sync::Mutex<Option<(Instant, Bytes)>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Seconds between two clock readings in ms, never negative.
fn seconds(from: Millis, to: Millis) -> f64 {
    (to.saturating_sub(from)).max(0) as f64 / 1000.0
}

impl Metrics {
    /// Every metric registered, the labelled counters at zero.
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            webhooks: Family::default(),
            events: Family::default(),
            deliveries: Family::default(),
            delivery_seconds: Family::new_with_constructor(|| {
                Histogram::new(DELIVERY_BUCKETS.iter().copied())
            }),
            page_latency: Histogram::new(PAGE_BUCKETS.iter().copied()),
            time_to_ack: Histogram::new(ACK_BUCKETS.iter().copied()),
            timer_lateness: Histogram::new(LATENESS_BUCKETS.iter().copied()),
            timers_fired: Counter::default(),
            reloads: Family::default(),
            gauges: Gauges::default(),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            last: tokio::sync::Mutex::new(None),
        };
        for source in WEBHOOK_SOURCES {
            for result in WEBHOOK_RESULTS {
                m.webhooks.get_or_create_owned(&WebhookLabels {
                    source: source.into(),
                    result: result.into(),
                });
            }
        }
        for result in EVENT_RESULTS {
            m.events.get_or_create_owned(&ResultLabel { result });
        }
        for result in RELOAD_RESULTS {
            m.reloads.get_or_create_owned(&ResultLabel { result });
        }
        for lane in LANES {
            for result in DELIVERY_RESULTS {
                let labels = DeliveryLabels {
                    lane: lane.as_str(),
                    result,
                };
                m.deliveries.get_or_create_owned(&labels);
                m.delivery_seconds.get_or_create_owned(&labels);
            }
        }
        for state in OPEN_STATES {
            m.gauges.open.get_or_create_owned(&StateLabel {
                state: state.as_str(),
            });
        }
        for state in ReportState::ALL {
            m.gauges.reports.get_or_create_owned(&StateLabel {
                state: state.as_str(),
            });
        }
        m.register()
    }

    /// Puts every metric in the registry (clones share their values).
    fn register(mut self) -> Metrics {
        let r = &mut self.registry;
        let g = &self.gauges;
        r.register(
            "pagerd_build",
            "The running version (value 1).",
            Info::new(VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        r.register(
            "pagerd_webhooks",
            "Webhook requests by source and result.",
            self.webhooks.clone(),
        );
        r.register(
            "pagerd_events",
            "Events applied to incidents by result (created, updated, ignored, replayed).",
            self.events.clone(),
        );
        r.register(
            "pagerd_deliveries",
            "Delivery attempts by lane and result: delivered, retried (failed, will be retried), failed (given up after a permanent error).",
            self.deliveries.clone(),
        );
        r.register(
            "pagerd_delivery_duration_seconds",
            "Time of one delivery call to a vendor, by lane and result.",
            self.delivery_seconds.clone(),
        );
        r.register(
            "pagerd_page_latency_seconds",
            "From the webhook that opened an incident to PagerDuty accepting its page.",
            self.page_latency.clone(),
        );
        r.register(
            "pagerd_time_to_ack_seconds",
            "From PagerDuty accepting the page to the first acknowledgement.",
            self.time_to_ack.clone(),
        );
        r.register(
            "pagerd_timer_lateness_seconds",
            "How long after its due time the scheduler fired a deadline.",
            self.timer_lateness.clone(),
        );
        r.register(
            "pagerd_timer_fired",
            "Deadline checks fired by the scheduler.",
            self.timers_fired.clone(),
        );
        r.register(
            "pagerd_config_reloads",
            "Config reloads (SIGHUP) by result: applied, or refused (the file is not valid; the daemon runs on the previous config).",
            self.reloads.clone(),
        );
        r.register(
            "pagerd_leader",
            "1 when this instance fires timers and dispatches effects.",
            g.leader.clone(),
        );
        r.register(
            "pagerd_incidents",
            "Incidents in the store.",
            g.incidents.clone(),
        );
        r.register(
            "pagerd_incidents_open",
            "Incidents not resolved, by state (triggered, acknowledged).",
            g.open.clone(),
        );
        r.register(
            "pagerd_outbox_pending",
            "Effects waiting for delivery.",
            g.outbox_pending.clone(),
        );
        r.register(
            "pagerd_outbox_failed",
            "Effects given up on after a permanent error.",
            g.outbox_failed.clone(),
        );
        r.register(
            "pagerd_outbox_oldest_pending_age_seconds",
            "Age of the oldest effect waiting for delivery (0 when none).",
            g.outbox_oldest.clone(),
        );
        r.register(
            "pagerd_pages_undeliverable",
            "Open incidents whose page or escalation PagerDuty refused for good and that were not re-sent (pagerd incidents repage).",
            g.undeliverable.clone(),
        );
        r.register(
            "pagerd_deadlines_armed",
            "Deadlines armed in this instance's scheduler.",
            g.armed.clone(),
        );
        r.register(
            "pagerd_hackerone_reports",
            "Watched HackerOne reports by state (waiting, reminded, overdue, answered).",
            g.reports.clone(),
        );
        r.register_collector(Box::new(process::LogDropped));
        r.register_collector(Box::new(process::Process::default()));
        self
    }

    /// Counts a webhook request from `source` answered with `result`.
    pub fn observe_webhook(&self, source: &str, result: &str) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                source: source.into(),
                result: result.into(),
            })
            .inc();
    }

    /// What a commit made at `now` tells: the event's result, and the page
    /// latency or time to ack when this commit recorded them (the engine
    /// stamps `paged_at` and `acked` with the commit's `now`; later commits
    /// carry an older stamp).
    pub fn observe_commit(&self, applied: &Applied, now: Millis) {
        let result = match &applied.result {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Ignored(_) => "ignored",
            Change::Replayed => "replayed",
        };
        self.events.get_or_create(&ResultLabel { result }).inc();
        let (Change::Created | Change::Updated, Some(inc)) = (&applied.result, &applied.incident)
        else {
            return;
        };
        if inc.paged_at == Some(now) && self.first(Observed::Page, inc.id, now) {
            self.page_latency.observe(seconds(inc.opened_at, now));
        }
        if let (Some((_, acked)), Some(paged)) = (&inc.acked, inc.paged_at)
            && *acked == now
            && self.first(Observed::Ack, inc.id, now)
        {
            self.time_to_ack.observe(seconds(paged, now));
        }
    }

    /// Whether `(what, incident, at)` is seen for the first time (and
    /// remembers it).
    fn first(&self, what: Observed, incident: i64, at: Millis) -> bool {
        // Plain values: a poisoned lock is still usable.
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.contains(&(what, incident, at)) {
            return false;
        }
        if recent.len() >= RECENT {
            recent.pop_front();
        }
        recent.push_back((what, incident, at));
        true
    }

    /// One delivery call on `lane` that took `took` and ended in `result`.
    pub fn observe_delivery<T>(
        &self,
        lane: Lane,
        result: &Result<T, DeliveryError>,
        took: Duration,
    ) {
        let labels = DeliveryLabels {
            lane: lane.as_str(),
            result: match result {
                Ok(_) => "delivered",
                Err(DeliveryError::Retryable { .. }) => "retried",
                Err(DeliveryError::Permanent { .. }) => "failed",
            },
        };
        self.deliveries.get_or_create(&labels).inc();
        self.delivery_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Counts a config reload: applied, or refused when the file was not
    /// valid.
    pub fn observe_reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "refused" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
    }

    /// Sets the gauge of HackerOne reports by state (the reports count
    /// themselves from the store after each change and every few seconds;
    /// a scrape reads memory only).
    pub fn set_reports(&self, counts: &[(ReportState, usize)]) {
        for (state, n) in counts {
            self.gauges
                .reports
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// The scheduler fires a deadline due at `due` at `now`.
    pub fn observe_timer(&self, due: Millis, now: Millis) {
        self.timers_fired.inc();
        self.timer_lateness.observe(seconds(due, now));
    }

    /// The exposition text for a scrape asked for at `asked`: that of a
    /// render begun at or after `asked` (so it shows everything done before
    /// the request), with the gauges `scrape` reads when it begins. Scrapes
    /// that wait while a render runs share the next one: one render at a
    /// time however many scrapers loop.
    pub async fn scrape(
        &self,
        asked: Instant,
        scrape: impl FnOnce() -> Scrape,
    ) -> Result<Bytes, std::fmt::Error> {
        // Fair (first in, first out): a waiting scrape is served by the
        // render that follows the one running when it came.
        let mut last = self.last.lock().await;
        if let Some((began, text)) = last.as_ref()
            && *began >= asked
        {
            return Ok(text.clone());
        }
        let began = Instant::now();
        let text = Bytes::from(self.render(&scrape())?);
        *last = Some((began, text.clone()));
        Ok(text)
    }

    /// The exposition text, with the gauges of `scrape`.
    pub fn render(&self, scrape: &Scrape) -> Result<String, std::fmt::Error> {
        let g = &self.gauges;
        let s = &scrape.stats;
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        g.leader.set(i64::from(scrape.leader));
        g.incidents.set(int(s.incidents));
        let acked = s.acknowledged_incidents.min(s.open_incidents);
        for (state, n) in [
            (Status::Triggered, s.open_incidents - acked),
            (Status::Acknowledged, acked),
        ] {
            g.open
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(int(n));
        }
        g.outbox_pending.set(int(s.pending_effects));
        g.outbox_failed.set(int(s.failed_effects));
        g.outbox_oldest.set(seconds(0, s.oldest_pending_ms));
        g.undeliverable.set(int(s.undeliverable));
        g.armed.set(i64::try_from(scrape.armed).unwrap_or(i64::MAX));
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

//! Counters for `GET /metrics`, in the Prometheus text format.
//!
//! A handful of labelled counters behind one mutex: pagerd handles at most
//! thousands of events a second, so a map lookup per event is noise, and it
//! saves a dependency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::store::Stats;

/// The daemon's counters.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
}

/// Help text of each counter, in output order.
const HELP: &[(&str, &str)] = &[
    (
        "pagerd_webhooks_total",
        "Webhook requests by source and result.",
    ),
    (
        "pagerd_events_total",
        "Events applied to incidents by result (created, updated, ignored, replayed).",
    ),
    (
        "pagerd_effects_delivered_total",
        "Effects delivered, by lane.",
    ),
    (
        "pagerd_effects_retried_total",
        "Failed delivery attempts that will be retried, by lane.",
    ),
    (
        "pagerd_effects_failed_total",
        "Effects given up on after a permanent error, by lane.",
    ),
    (
        "pagerd_timer_fired_total",
        "Deadline checks fired by the scheduler.",
    ),
];

impl Metrics {
    /// Adds one to counter `name` with `labels` (already formatted, like
    /// `source="zendesk",result="accepted"`).
    pub fn inc(&self, name: &'static str, labels: String) {
        let mut c = self.counters.lock().expect("metrics lock");
        *c.entry((name, labels)).or_insert(0) += 1;
    }

    /// The value of a counter (tests and the demo read it).
    pub fn get(&self, name: &'static str, labels: &str) -> u64 {
        let c = self.counters.lock().expect("metrics lock");
        c.get(&(name, labels.to_string())).copied().unwrap_or(0)
    }

    /// The exposition text, with the store's gauges.
    pub fn render(&self, stats: Option<Stats>, leader: bool) -> String {
        let mut out = String::new();
        let c = self.counters.lock().expect("metrics lock");
        for (name, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((n, labels), v) in c.iter() {
                if n == name {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
        drop(c);
        let mut gauge = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "pagerd_leader",
            "1 when this instance fires timers and dispatches effects.",
            u64::from(leader),
        );
        if let Some(s) = stats {
            gauge("pagerd_incidents", "Incidents in the store.", s.incidents);
            gauge(
                "pagerd_incidents_open",
                "Incidents not resolved.",
                s.open_incidents,
            );
            gauge(
                "pagerd_outbox_pending",
                "Effects waiting for delivery.",
                s.pending_effects,
            );
            gauge(
                "pagerd_outbox_failed",
                "Effects given up on.",
                s.failed_effects,
            );
            gauge(
                "pagerd_outbox_oldest_pending_ms",
                "Age of the oldest pending effect.",
                s.oldest_pending_ms as u64,
            );
            gauge(
                "pagerd_pages_undeliverable",
                "Open incidents whose page or escalation PagerDuty refused for good and that were not re-sent (pagerd incidents repage).",
                s.undeliverable,
            );
        }
        let _ = writeln!(
            out,
            "# HELP pagerd_log_lines_dropped_total Log lines dropped because the log output failed or was full.\n\
             # TYPE pagerd_log_lines_dropped_total counter\npagerd_log_lines_dropped_total {}",
            crate::logging::dropped()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.inc(
            "pagerd_webhooks_total",
            r#"source="zendesk",result="accepted""#.into(),
        );
        m.inc(
            "pagerd_webhooks_total",
            r#"source="zendesk",result="accepted""#.into(),
        );
        let text = m.render(None, true);
        assert!(
            text.contains("pagerd_webhooks_total{source=\"zendesk\",result=\"accepted\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE pagerd_leader gauge\npagerd_leader 1\n"),
            "{text}"
        );
    }
}

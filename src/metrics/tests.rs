//! Unit tests of the exposition (read back with a real parser), and of the
//! Grafana dashboard and the alert rules against it.

use std::collections::BTreeSet;

use prometheus_parse::{Scrape as Parsed, Value};

use super::*;
use crate::engine::{Incident, Ticket};

fn incident(opened_at: Millis) -> Incident {
    Incident {
        id: 7,
        dedup_key: "zendesk-1".into(),
        ticket: Ticket {
            id: "1".into(),
            title: String::new(),
            priority: "urgent".into(),
            status: "new".into(),
            tags: vec![],
            url: String::new(),
            requester_name: String::new(),
            requester_email: String::new(),
            organization: String::new(),
        },
        status: Status::Triggered,
        opened_at,
        level: 1,
        acked: None,
        resolved: None,
        responders: vec![],
        deadlines: Default::default(),
        page_pending: true,
        fallback_sent: false,
        pagerduty_id: None,
        crisis: None,
        last_error: None,
        episode: 1,
        paged_at: None,
        escalated_at: None,
        undeliverable: None,
    }
}

fn updated(inc: &Incident) -> Applied {
    Applied {
        result: Change::Updated,
        incident: Some(inc.clone()),
        effects: 0,
        undeliverable_delta: 0,
        version: 0,
    }
}

fn parse(text: &str) -> Parsed {
    Parsed::parse(text.lines().map(|l| Ok(l.to_string()))).expect("exposition parses")
}

/// The value of the sample `name` whose labels include `labels`.
fn value(p: &Parsed, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    p.samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// Every sample name in an exposition (`_bucket`, `_sum`, `_count` lines
/// included).
fn names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The metric names (`pagerd_…`, `process_…`) a text mentions.
fn referenced(text: &str) -> BTreeSet<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    text.split(|c: char| !ident(c))
        .filter(|w| w.starts_with("pagerd_") || w.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

/// A histogram's `_count` or `_sum`, as exposed.
fn stat(m: &Metrics, histogram: &str, which: &str) -> f64 {
    value(&parse(&render(m)), &format!("{histogram}_{which}"), &[]).unwrap_or(f64::NAN)
}

fn render(m: &Metrics) -> String {
    m.render(&Scrape::default()).expect("renders")
}

#[test]
fn a_fresh_exposition_has_every_series_at_zero_and_the_build() {
    let text = render(&Metrics::new());
    let p = parse(&text);
    assert_eq!(
        value(
            &p,
            "pagerd_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "{text}"
    );
    for source in WEBHOOK_SOURCES {
        for result in WEBHOOK_RESULTS {
            let l = [("source", source), ("result", result)];
            assert_eq!(value(&p, "pagerd_webhooks_total", &l), Some(0.0), "{l:?}");
        }
    }
    for result in EVENT_RESULTS {
        assert_eq!(
            value(&p, "pagerd_events_total", &[("result", result)]),
            Some(0.0)
        );
    }
    for result in RELOAD_RESULTS {
        assert_eq!(
            value(&p, "pagerd_config_reloads_total", &[("result", result)]),
            Some(0.0)
        );
    }
    for lane in LANES {
        for result in DELIVERY_RESULTS {
            let l = [("lane", lane.as_str()), ("result", result)];
            assert_eq!(value(&p, "pagerd_deliveries_total", &l), Some(0.0));
            assert_eq!(
                value(&p, "pagerd_delivery_duration_seconds_count", &l),
                Some(0.0)
            );
        }
    }
    for h in [
        "pagerd_page_latency_seconds",
        "pagerd_time_to_ack_seconds",
        "pagerd_timer_lateness_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {h} histogram\n")), "{text}");
        assert_eq!(value(&p, &format!("{h}_count"), &[]), Some(0.0), "{h}");
    }
    for (state, _) in [("triggered", 0), ("acknowledged", 0)] {
        assert_eq!(
            value(&p, "pagerd_incidents_open", &[("state", state)]),
            Some(0.0)
        );
    }
    for g in [
        "pagerd_leader",
        "pagerd_pages_undeliverable",
        "pagerd_outbox_pending",
        "pagerd_outbox_oldest_pending_age_seconds",
        "pagerd_deadlines_armed",
        "pagerd_log_lines_dropped_total",
    ] {
        assert!(value(&p, g, &[]).is_some(), "{g} missing:\n{text}");
    }
    assert!(!text.contains("_ms"), "base units only:\n{text}");
    assert!(!text.contains("_total_total"), "{text}");
}

#[test]
fn the_scrape_sets_the_gauges_in_base_units() {
    let m = Metrics::new();
    let scrape = Scrape {
        stats: Stats {
            open_incidents: 3,
            acknowledged_incidents: 1,
            incidents: 10,
            pending_effects: 4,
            failed_effects: 2,
            undeliverable: 1,
            oldest_pending_ms: 1500,
        },
        leader: true,
        armed: 5,
    };
    let text = m.render(&scrape).expect("renders");
    let p = parse(&text);
    let one = |n: &str, l: &[(&str, &str)]| value(&p, n, l);
    assert_eq!(one("pagerd_leader", &[]), Some(1.0));
    assert_eq!(
        one("pagerd_incidents_open", &[("state", "triggered")]),
        Some(2.0)
    );
    assert_eq!(
        one("pagerd_incidents_open", &[("state", "acknowledged")]),
        Some(1.0)
    );
    assert_eq!(one("pagerd_outbox_pending", &[]), Some(4.0));
    assert_eq!(one("pagerd_outbox_failed", &[]), Some(2.0));
    assert_eq!(
        one("pagerd_outbox_oldest_pending_age_seconds", &[]),
        Some(1.5)
    );
    assert_eq!(one("pagerd_pages_undeliverable", &[]), Some(1.0));
    assert_eq!(one("pagerd_deadlines_armed", &[]), Some(5.0));
    assert_eq!(one("pagerd_incidents", &[]), Some(10.0));
}

#[test]
fn page_and_ack_latencies_are_observed_once_by_the_commit_that_set_them() {
    let m = Metrics::new();
    let mut inc = incident(1_000);
    m.observe_commit(
        &Applied {
            result: Change::Created,
            ..updated(&inc)
        },
        1_000,
    );
    // PagerDuty accepted the page at 3.5 s.
    inc.paged_at = Some(3_500);
    m.observe_commit(&updated(&inc), 3_500);
    // Another commit in the same millisecond, then a later one: no new
    // observation.
    m.observe_commit(&updated(&inc), 3_500);
    m.observe_commit(&updated(&inc), 9_000);
    assert_eq!(stat(&m, "pagerd_page_latency_seconds", "count"), 1.0);
    assert_eq!(stat(&m, "pagerd_page_latency_seconds", "sum"), 2.5);
    assert_eq!(stat(&m, "pagerd_time_to_ack_seconds", "count"), 0.0);
    // Acknowledged 2 minutes after the page.
    inc.status = Status::Acknowledged;
    inc.acked = Some(("Ana".into(), 123_500));
    m.observe_commit(&updated(&inc), 123_500);
    m.observe_commit(&updated(&inc), 200_000);
    assert_eq!(
        (
            stat(&m, "pagerd_time_to_ack_seconds", "count"),
            stat(&m, "pagerd_time_to_ack_seconds", "sum")
        ),
        (1.0, 120.0)
    );
    // A replayed or ignored event observes nothing.
    m.observe_commit(
        &Applied {
            result: Change::Replayed,
            ..updated(&inc)
        },
        123_500,
    );
    assert_eq!(stat(&m, "pagerd_time_to_ack_seconds", "count"), 1.0);
    let p = parse(&render(&m));
    assert_eq!(
        value(&p, "pagerd_events_total", &[("result", "updated")]),
        Some(5.0)
    );
    assert_eq!(
        value(&p, "pagerd_events_total", &[("result", "replayed")]),
        Some(1.0)
    );
    assert_eq!(
        value(&p, "pagerd_page_latency_seconds_count", &[]),
        Some(1.0)
    );
}

#[test]
fn an_ack_before_the_page_was_accepted_has_no_time_to_ack() {
    let m = Metrics::new();
    let mut inc = incident(0);
    inc.status = Status::Acknowledged;
    inc.acked = Some(("Ana".into(), 5_000));
    m.observe_commit(&updated(&inc), 5_000);
    assert_eq!(stat(&m, "pagerd_time_to_ack_seconds", "count"), 0.0);
}

#[test]
fn deliveries_and_timers_are_counted_by_lane_and_result() {
    let m = Metrics::new();
    let ok: Result<(), DeliveryError> = Ok(());
    let retry: Result<(), DeliveryError> = Err(DeliveryError::Retryable {
        reason: "503".into(),
        retry_after: None,
    });
    let fail: Result<(), DeliveryError> = Err(DeliveryError::Permanent {
        reason: "invalid routing key".into(),
    });
    m.observe_delivery(Lane::Pager, &ok, Duration::from_millis(120));
    m.observe_delivery(Lane::Pager, &retry, Duration::from_millis(30));
    m.observe_delivery(Lane::Pager, &retry, Duration::from_millis(30));
    m.observe_delivery(Lane::Chat, &fail, Duration::from_millis(10));
    m.observe_timer(10_000, 10_250);
    m.observe_timer(10_000, 9_000);
    m.observe_webhook("zendesk", "accepted");
    let text = render(&m);
    let p = parse(&text);
    let d = |lane, result| {
        value(
            &p,
            "pagerd_deliveries_total",
            &[("lane", lane), ("result", result)],
        )
    };
    assert_eq!(d("pagerduty", "delivered"), Some(1.0));
    assert_eq!(d("pagerduty", "retried"), Some(2.0));
    assert_eq!(d("slack", "failed"), Some(1.0));
    assert_eq!(d("email", "failed"), Some(0.0));
    assert!(
        text.contains(
            "pagerd_delivery_duration_seconds_bucket{lane=\"pagerduty\",result=\"delivered\",le=\"0.25\"} 1\n"
        ),
        "{text}"
    );
    assert_eq!(
        value(
            &p,
            "pagerd_webhooks_total",
            &[("source", "zendesk"), ("result", "accepted")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&p, "pagerd_timer_fired_total", &[]), Some(2.0));
    // Early counts as on time.
    assert_eq!(stat(&m, "pagerd_timer_lateness_seconds", "sum"), 0.25);
}

#[test]
fn the_dashboard_is_json_and_queries_only_exposed_metrics() {
    let text = include_str!("../../config/grafana/pagerd.json");
    let dash: serde_json::Value = serde_json::from_str(text).expect("dashboard is JSON");
    assert_eq!(dash["uid"], "pagerd");
    let panels = dash["panels"].as_array().expect("panels");
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let queried: BTreeSet<String> = exprs.iter().flat_map(|e| referenced(e)).collect();
    let exposed = names(&render(&Metrics::new()));
    let missing: Vec<&String> = queried.difference(&exposed).collect();
    assert!(missing.is_empty(), "not exposed: {missing:?}");
    for wanted in [
        "pagerd_page_latency_seconds_bucket",
        "pagerd_time_to_ack_seconds_bucket",
        "pagerd_outbox_pending",
        "pagerd_outbox_oldest_pending_age_seconds",
        "pagerd_pages_undeliverable",
        "pagerd_deliveries_total",
        "pagerd_timer_lateness_seconds_bucket",
        "pagerd_leader",
        "process_resident_memory_bytes",
    ] {
        assert!(queried.contains(wanted), "the dashboard lacks {wanted}");
    }
    // Panels do not overlap on Grafana's 24-column grid.
    let mut cells = BTreeSet::new();
    for p in panels {
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64(),
            g["y"].as_u64(),
            g["w"].as_u64(),
            g["h"].as_u64(),
        );
        let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else {
            panic!("gridPos of {}", p["title"]);
        };
        assert!(x + w <= 24, "{}", p["title"]);
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "{} overlaps", p["title"]);
        }
    }
}

#[test]
fn the_alert_rules_use_only_exposed_metrics() {
    let rules = include_str!("../../config/prometheus/pagerd.rules.yml");
    let exposed = names(&render(&Metrics::new()));
    let used = referenced(rules);
    assert!(used.contains("pagerd_leader"), "{used:?}");
    let missing: Vec<&String> = used.difference(&exposed).collect();
    assert!(missing.is_empty(), "not exposed: {missing:?}");
}

#[test]
fn reloads_are_counted_by_result() {
    let m = Metrics::new();
    m.observe_reload(true);
    m.observe_reload(false);
    m.observe_reload(false);
    let p = parse(&m.render(&Scrape::default()).unwrap());
    let reloads = |result| value(&p, "pagerd_config_reloads_total", &[("result", result)]);
    assert_eq!(reloads("applied"), Some(1.0));
    assert_eq!(reloads("refused"), Some(2.0));
}

#[tokio::test]
async fn a_scrape_shares_a_render_begun_after_it_was_asked_and_no_older_one() {
    let m = Metrics::new();
    let fired = |text: &[u8]| {
        let text = std::str::from_utf8(text).expect("utf-8");
        value(&parse(text), "pagerd_timer_fired_total", &[])
    };
    let asked = Instant::now();
    let first = m.scrape(asked, Scrape::default).await.expect("renders");
    assert_eq!(fired(&first), Some(0.0));
    // Asked before that render began (it waited while it ran): served by it.
    let shared = m.scrape(asked, Scrape::default).await.expect("renders");
    assert_eq!(shared.as_ptr(), first.as_ptr(), "the same render");
    // Asked after something happened: a new render, which shows it.
    m.observe_timer(0, 5);
    let gauges = Scrape {
        armed: 3,
        ..Scrape::default()
    };
    let later = m.scrape(Instant::now(), || gauges).await.expect("renders");
    assert_ne!(later.as_ptr(), first.as_ptr(), "a new render");
    assert_eq!(fired(&later), Some(1.0));
    let text = std::str::from_utf8(&later).expect("utf-8");
    assert_eq!(
        value(&parse(text), "pagerd_deadlines_armed", &[]),
        Some(3.0)
    );
}

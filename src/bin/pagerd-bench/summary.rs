//! From the JSON results to the printed table and notes: which number goes
//! in which row, against which of the targets.

use serde_json::Value;

use crate::report::{Goal, Table, Unit};

/// One row: label, pagerd's JSON pointer, the peer's (if measured), unit,
/// target.
type Spec<'a> = (&'a str, &'a str, Option<&'a str>, Unit, Option<Goal>);

const MS: Unit = Unit::Ms;

fn num(r: &Value, pointer: &str) -> Option<f64> {
    r.pointer(pointer).and_then(Value::as_f64)
}

fn rows(t: &mut Table, r: &Value, phase: &str, specs: &[Spec<'_>]) {
    for (label, pd, peer, unit, goal) in specs {
        t.row(
            phase,
            label,
            num(r, pd),
            *unit,
            *goal,
            peer.and_then(|p| num(r, p)),
        );
    }
}

/// The table, from the JSON results. Kept as a table (rustfmt would put
/// every cell on a line of its own).
#[rustfmt::skip]
pub fn table(r: &Value, peer: Option<String>) -> Table {
    use Goal::{AtLeast, AtMost};
    let mut t = Table::new(peer);
    if r.get("latency").is_some() {
        let (e, p) = ("/latency/pagerd/e2e_ms", "/latency/peer/e2e_ms");
        let (a, q) = ("/latency/pagerd/webhook_answer_ms", "/latency/peer/webhook_answer_ms");
        let (h, k) = ("/latency/pagerd/health_get_ms", "/latency/peer/health_get_ms");
        let specs: &[Spec<'_>] = &[
            ("webhook → page p50", &format!("{e}/p50"), Some(&format!("{p}/p50")), MS, Some(AtMost(0.5))),
            ("webhook → page p90", &format!("{e}/p90"), Some(&format!("{p}/p90")), MS, None),
            ("webhook → page p99", &format!("{e}/p99"), Some(&format!("{p}/p99")), MS, Some(AtMost(2.0))),
            ("webhook → page max", &format!("{e}/max"), Some(&format!("{p}/max")), MS, None),
            ("webhook answered p50", &format!("{a}/p50"), Some(&format!("{q}/p50")), MS, None),
            ("webhook answered p99", &format!("{a}/p99"), Some(&format!("{q}/p99")), MS, None),
            ("HTTP floor: GET health p50", &format!("{h}/p50"), Some(&format!("{k}/p50")), MS, None),
        ];
        rows(&mut t, r, "latency", specs);
        let (e, p) = ("/latency/pagerd/idle_e2e_ms", "/latency/peer/idle_e2e_ms");
        if r.pointer(e).is_some() {
            let specs: &[Spec<'_>] = &[
                ("idle daemon: webhook → page p50", &format!("{e}/p50"), Some(&format!("{p}/p50")), MS, None),
                ("idle daemon: webhook → page p90", &format!("{e}/p90"), Some(&format!("{p}/p90")), MS, None),
                ("idle daemon: webhook → page max", &format!("{e}/max"), Some(&format!("{p}/max")), MS, None),
            ];
            rows(&mut t, r, "latency", specs);
        }
    }
    if let Some(b) = r.get("burst") {
        let n = b["tickets"].as_u64().unwrap_or(0);
        let accepted = format!("{n} tickets accepted");
        let specs: &[Spec<'_>] = &[
            (&accepted, "/burst/pagerd/accepted_per_s", Some("/burst/peer/accepted_per_s"), Unit::PerSec, Some(AtLeast(5000.0))),
            ("time to all pages", "/burst/pagerd/all_pages_ms", Some("/burst/peer/all_pages_ms"), MS, None),
            ("pages delivered", "/burst/pagerd/pages_per_s", Some("/burst/peer/pages_per_s"), Unit::PerSec, None),
            ("daemon CPU per ticket", "/burst/pagerd/cpu_ms_per_ticket", Some("/burst/peer/cpu_ms_per_ticket"), MS, None),
            ("lost", "/burst/pagerd/lost", Some("/burst/peer/lost"), Unit::Count, Some(AtMost(0.0))),
            ("duplicated", "/burst/pagerd/duplicated", Some("/burst/peer/duplicated"), Unit::Count, Some(AtMost(0.0))),
        ];
        rows(&mut t, r, "burst", specs);
        let (m, pm) = ("/burst/memory", "/burst/peer_memory");
        let specs: &[Spec<'_>] = &[
            ("RSS idle", &format!("{m}/idle/rss_mb"), Some(&format!("{pm}/idle/rss_mb")), Unit::Mb, Some(AtMost(10.0))),
            ("RSS after burst", &format!("{m}/after_burst/rss_mb"), Some(&format!("{pm}/after_burst/rss_mb")), Unit::Mb, Some(AtMost(40.0))),
            ("peak RSS (HWM) after burst", &format!("{m}/after_burst/hwm_mb"), Some(&format!("{pm}/after_burst/hwm_mb")), Unit::Mb, Some(AtMost(40.0))),
        ];
        rows(&mut t, r, "memory", specs);
    }
    if let Some(m) = r.get("memory") {
        let n = m["seeded"]["incidents"].as_u64().unwrap_or(0);
        let (loaded, burst) = (format!("RSS with {n} stored"), format!("RSS with {n} stored + burst"));
        let specs: &[Spec<'_>] = &[
            (&loaded, "/memory/loaded/rss_mb", None, Unit::Mb, Some(AtMost(100.0))),
            (&burst, "/memory/after_burst/rss_mb", None, Unit::Mb, Some(AtMost(100.0))),
            ("peak RSS (HWM) with store", "/memory/after_burst/hwm_mb", None, Unit::Mb, Some(AtMost(100.0))),
        ];
        rows(&mut t, r, "memory", specs);
    }
    if let Some(tm) = r.get("timers") {
        let n = tm["incidents"].as_u64().unwrap_or(0);
        let armed = format!("armed before first due (of {n})");
        let specs: &[Spec<'_>] = &[
            (&armed, "/timers/armed_before_first_due", None, Unit::Count, Some(AtLeast(n as f64))),
            ("escalation lateness p50", "/timers/lateness_ms/p50", None, MS, None),
            ("escalation lateness p99", "/timers/lateness_ms/p99", None, MS, Some(AtMost(5.0))),
            ("escalation lateness max", "/timers/lateness_ms/max", None, MS, None),
            ("deadline → lookup p50", "/timers/deadline_to_lookup_ms/p50", None, MS, None),
            ("deadline → lookup p99", "/timers/deadline_to_lookup_ms/p99", None, MS, None),
            ("missing escalations", "/timers/missing", None, Unit::Count, Some(AtMost(0.0))),
        ];
        rows(&mut t, r, "timers", specs);
    }
    if let Some(rc) = r.get("recovery") {
        let n = rc["overdue"].as_u64().unwrap_or(0);
        let last = format!("restart → last of {n} overdue");
        let specs: &[Spec<'_>] = &[
            ("restart → ready", "/recovery/ready_ms", None, MS, None),
            ("restart → first overdue escalation", "/recovery/first_escalation_ms", None, MS, None),
            (&last, "/recovery/last_escalation_ms", None, MS, Some(AtMost(1000.0))),
        ];
        rows(&mut t, r, "recovery", specs);
    }
    if let Some(f) = r.get("flood") {
        flood_rows(&mut t, r, f);
    }
    if let Some(pg) = r.get("postgres").filter(|v| v.get("skipped").is_none()) {
        postgres_rows(&mut t, r, pg);
    }
    t
}

/// The flood phase's rows: one block per store state (retention off; on,
/// before, during and after its pass). Targets are the issues': start to
/// ready 2 s, RSS 40 MB, webhook p99 within 20 % of a fresh store's,
/// `/readyz` and `/metrics` 5 ms.
#[rustfmt::skip]
fn flood_rows(t: &mut Table, r: &Value, f: &Value) {
    use Goal::AtMost;
    let c = f["clients"].as_u64().unwrap_or(0);
    let latency = |t: &mut Table, phase: &str, base: &str| {
        let flooded = format!("webhook → page p99, {c} clients flooding");
        let specs: &[Spec<'_>] = &[
            ("webhook → page p50", &format!("{base}/store/quiet/e2e_ms/p50"), None, MS, None),
            ("webhook → page p99", &format!("{base}/store/quiet/e2e_ms/p99"), None, MS, None),
            ("  same, fresh store", &format!("{base}/empty_store/quiet/e2e_ms/p99"), None, MS, None),
            ("  p99 vs fresh store", &format!("{base}/vs_empty/quiet_p99"), None, Unit::Ratio, Some(AtMost(1.2))),
            (&flooded, &format!("{base}/store/flooded/e2e_ms/p99"), None, MS, None),
            ("  same, fresh store", &format!("{base}/empty_store/flooded/e2e_ms/p99"), None, MS, None),
            ("  p99 vs fresh store", &format!("{base}/vs_empty/flooded_p99"), None, Unit::Ratio, Some(AtMost(1.2))),
            ("/readyz p99, one client", &format!("{base}/store/endpoints_one_client/readyz_ms/p99"), None, MS, None),
            ("/metrics p99, one client", &format!("{base}/store/endpoints_one_client/metrics_ms/p99"), None, MS, None),
            ("/readyz p50 (flooded)", &format!("{base}/store/flooded/readyz_ms/p50"), None, MS, None),
            ("/readyz p99 (flooded)", &format!("{base}/store/flooded/readyz_ms/p99"), None, MS, Some(AtMost(5.0))),
            ("/metrics p50 (flooded)", &format!("{base}/store/flooded/metrics_ms/p50"), None, MS, None),
            ("/metrics p99 (flooded)", &format!("{base}/store/flooded/metrics_ms/p99"), None, MS, Some(AtMost(5.0))),
            ("flood requests", &format!("{base}/store/flooded/requests_per_s"), None, Unit::PerSec, None),
            ("RSS after the rounds", &format!("{base}/memory_after/rss_mb"), None, Unit::Mb, Some(AtMost(40.0))),
        ];
        rows(t, r, phase, specs);
    };
    let off = "flood: ret. off".to_string();
    let specs: &[Spec<'_>] = &[
        ("start → /readyz (warm cache)", "/flood/retention_off/ready_warm_ms", None, MS, Some(AtMost(2000.0))),
        ("start → /readyz (cold cache)", "/flood/retention_off/ready_cold_ms", None, MS, Some(AtMost(2000.0))),
        ("RSS idle", "/flood/retention_off/memory_idle/rss_mb", None, Unit::Mb, Some(AtMost(40.0))),
    ];
    rows(t, r, &off, specs);
    latency(t, &off, "/flood/retention_off/figures");
    let specs: &[Spec<'_>] = &[
        ("peak RSS (HWM)", "/flood/retention_off/figures/memory_after/hwm_mb", None, Unit::Mb, Some(AtMost(40.0))),
        ("store on disk, running (db + WAL)", "/flood/retention_off/size_running/mb", None, Unit::Mb, None),
        ("store after a TRUNCATE checkpoint", "/flood/retention_off/size/mb", None, Unit::Mb, None),
    ];
    rows(t, r, &off, specs);
    let on = "flood: ret. 90d".to_string();
    let specs: &[Spec<'_>] = &[
        ("start → /readyz", "/flood/retention_on/ready_ms", None, MS, Some(AtMost(2000.0))),
        ("RSS idle", "/flood/retention_on/memory_idle/rss_mb", None, Unit::Mb, Some(AtMost(40.0))),
    ];
    rows(t, r, &on, specs);
    latency(t, "90d, before pass", "/flood/retention_on/before_pass");
    if f["retention_on"]["pass"].get("skipped").is_none() {
        let pass = "90d, the pass";
        let specs: &[Spec<'_>] = &[
            ("incidents deleted", "/flood/retention_on/pass/incidents_deleted", None, Unit::Count, None),
            ("pass took (approx.)", "/flood/retention_on/pass/took_ms_approx", None, MS, None),
            ("webhook → page p50 during it", "/flood/retention_on/pass/during_pass/e2e_ms/p50", None, MS, None),
            ("webhook → page p99 during it", "/flood/retention_on/pass/during_pass/e2e_ms/p99", None, MS, None),
            ("webhook → page max during it", "/flood/retention_on/pass/during_pass/e2e_ms/max", None, MS, None),
        ];
        rows(t, r, pass, specs);
        latency(t, "90d, after pass", "/flood/retention_on/after_pass");
    }
    let specs: &[Spec<'_>] = &[
        ("peak RSS (HWM)", "/flood/retention_on/memory_end/hwm_mb", None, Unit::Mb, Some(AtMost(40.0))),
        ("store on disk, running (db + WAL)", "/flood/retention_on/size_running/mb", None, Unit::Mb, None),
        ("  of which WAL", "/flood/retention_on/size_running/wal_mb", None, Unit::Mb, None),
        ("store after a TRUNCATE checkpoint", "/flood/retention_on/size/mb", None, Unit::Mb, None),
    ];
    rows(t, r, "90d, at the end", specs);
}

/// The postgres phase's rows, PostgreSQL beside SQLite, and failover.
#[rustfmt::skip]
fn postgres_rows(t: &mut Table, r: &Value, pg: &Value) {
    use Goal::{AtLeast, AtMost};
    let (p, l) = ("/postgres/latency/postgres", "/postgres/latency/sqlite");
    let n = pg["burst"]["tickets"].as_u64().unwrap_or(0);
    let (pb, lb) = (format!("PostgreSQL: {n} tickets accepted"), format!("SQLite: {n} tickets accepted"));
    let specs: &[Spec<'_>] = &[
        ("PostgreSQL: webhook → page p50", &format!("{p}/e2e_ms/p50"), None, MS, Some(AtMost(0.5))),
        ("PostgreSQL: webhook → page p99", &format!("{p}/e2e_ms/p99"), None, MS, Some(AtMost(2.0))),
        ("PostgreSQL: webhook answered p50", &format!("{p}/webhook_answer_ms/p50"), None, MS, None),
        ("SQLite: webhook → page p50", &format!("{l}/e2e_ms/p50"), None, MS, Some(AtMost(0.5))),
        ("SQLite: webhook → page p99", &format!("{l}/e2e_ms/p99"), None, MS, Some(AtMost(2.0))),
        ("SQLite: webhook answered p50", &format!("{l}/webhook_answer_ms/p50"), None, MS, None),
        (&pb, "/postgres/burst/postgres/accepted_per_s", None, Unit::PerSec, Some(AtLeast(5000.0))),
        ("PostgreSQL: time to all pages", "/postgres/burst/postgres/all_pages_ms", None, MS, None),
        ("PostgreSQL: daemon CPU per ticket", "/postgres/burst/postgres/cpu_ms_per_ticket", None, MS, None),
        (&lb, "/postgres/burst/sqlite/accepted_per_s", None, Unit::PerSec, Some(AtLeast(5000.0))),
        ("SQLite: time to all pages", "/postgres/burst/sqlite/all_pages_ms", None, MS, None),
        ("PostgreSQL: lost", "/postgres/burst/postgres/lost", None, Unit::Count, Some(AtMost(0.0))),
        ("PostgreSQL: duplicated", "/postgres/burst/postgres/duplicated", None, Unit::Count, Some(AtMost(0.0))),
        ("PostgreSQL: RSS after burst", "/postgres/memory/after_burst/rss_mb", None, Unit::Mb, Some(AtMost(40.0))),
    ];
    rows(t, r, "postgres", specs);
    // No target in the issues; the README promises a takeover within
    // lease_ttl plus one renewal period.
    let bound = pg["failover"]["lease_ttl_ms"].as_f64().unwrap_or(0.0)
        + pg["failover"]["lease_renew_ms"].as_f64().unwrap_or(0.0);
    let specs: &[Spec<'_>] = &[
        ("kill -9 leader → other is leader p50", "/postgres/failover/kill_to_leader_ms/p50", None, MS, None),
        ("kill -9 leader → other is leader max", "/postgres/failover/kill_to_leader_ms/max", None, MS, Some(AtMost(bound))),
        ("kill -9 leader → new ticket paged p50", "/postgres/failover/kill_to_page_ms/p50", None, MS, None),
        ("kill -9 leader → new ticket paged max", "/postgres/failover/kill_to_page_ms/max", None, MS, None),
        ("pages missing after failover", "/postgres/failover/missing", None, Unit::Count, Some(AtMost(0.0))),
    ];
    rows(t, r, "failover", specs);
}

/// The lines under the table: how each phase was run, and warnings.
pub fn print_notes(r: &Value, t: &Table) {
    let mut notes = Vec::new();
    if let Some(l) = r.get("latency") {
        let turns = if r["peer"].is_null() {
            ""
        } else {
            ", taking turns with the peer"
        };
        notes.push(format!(
            "latency: {} sequential tickets in {} round(s), {} ms pause after each page; \
             idle daemon: {} tickets, {} ms pause after each{turns}",
            l["tickets"], l["rounds"], l["gap_ms"], l["idle_tickets"], l["idle_gap_ms"]
        ));
    }
    if let Some(b) = r.get("burst") {
        notes.push(format!(
            "burst: median of {} round(s) of {} tickets at concurrency {}; retries {}",
            b["pagerd"]["rounds"].as_array().map_or(0, Vec::len),
            b["tickets"],
            b["pagerd"]["rounds"][0]["concurrency"],
            b["pagerd"]["retries"]
        ));
    }
    if let Some(tm) = r.get("timers") {
        notes.push(format!(
            "timers: tickets paced over {} ms ({:.0} due/s; sent in {:.0} ms), ack_timeout {} ms; \
             lateness vs the stored deadline, ms resolution",
            tm["window_ms"],
            tm["due_per_s"].as_f64().unwrap_or(0.0),
            tm["send_spread_ms"].as_f64().unwrap_or(0.0),
            tm["ack_timeout_ms"]
        ));
    }
    if let Some(rc) = r.get("recovery") {
        notes.push(format!(
            "recovery: SIGKILL with {} deadlines armed and the outbox empty; {} escalated before the restart",
            rc["overdue"], rc["escalated_before_restart"]
        ));
    }
    if let Some(m) = r.get("memory") {
        notes.push(format!(
            "memory: {} incidents ({} resolved) seeded through pagerd::store before start in {:.1} s; \
             store {:.1} MB; {} deadlines armed",
            m["seeded"]["incidents"],
            m["seeded"]["resolved"],
            m["seeded"]["took_ms"].as_f64().unwrap_or(0.0) / 1e3,
            m["db_mb"].as_f64().unwrap_or(0.0),
            m["armed_deadlines"]
        ));
    }
    if let Some(f) = r.get("flood") {
        let s = &f["seeded"];
        notes.push(format!(
            "flood: {} incidents ({} resolved {:.0} days ago, {} open with deadlines armed) seeded \
             in {:.1} s ({} through pagerd::store in {:.1} s, copied in SQL in {:.1} s; {:.1} MB); \
             {} clients loop on /readyz and /metrics; \
             {} sequential tickets per daemon and condition in {} rounds alternating with a fresh store",
            s["incidents"],
            s["resolved"],
            s["age_days"].as_f64().unwrap_or(0.0),
            s["open"],
            s["took_ms"].as_f64().unwrap_or(0.0) / 1e3,
            s["template"],
            s["template_ms"].as_f64().unwrap_or(0.0) / 1e3,
            s["copy_ms"].as_f64().unwrap_or(0.0) / 1e3,
            f["seeded_size"]["mb"].as_f64().unwrap_or(0.0),
            f["clients"],
            f["tickets"],
            f["rounds"]
        ));
        let on = &f["retention_on"];
        if on["pass"].get("skipped").is_some() {
            notes.push(
                "flood: the retention pass was not awaited (--no-retention-pass or --smoke)".into(),
            );
        } else {
            notes.push(format!(
                "flood: retention pass ended {:.0} s after ready ({} incidents, {} journal and {} outbox rows deleted); \
                 store {:.1} MB → {:.1} MB; {} incidents left",
                on["pass"]["ended_s_after_ready"].as_f64().unwrap_or(0.0),
                on["pass"]["incidents_deleted"],
                on["pass"]["journal_deleted"],
                on["pass"]["outbox_deleted"],
                f["retention_off"]["size"]["mb"].as_f64().unwrap_or(0.0),
                on["size"]["mb"].as_f64().unwrap_or(0.0),
                on["counts_after_pass"]["incidents"]
            ));
        }
    }
    if let Some(pg) = r.get("postgres") {
        if let Some(why) = pg.get("skipped") {
            notes.push(format!("postgres: skipped ({why})"));
        } else {
            notes.push(format!(
                "postgres: {} sequential tickets and {} burst round(s) alternating with SQLite; \
                 failover: {} kill(s), lease_ttl {} ms, lease_renew {} ms",
                pg["latency"]["tickets"],
                pg["burst"]["postgres"]["rounds"]
                    .as_array()
                    .map_or(0, Vec::len),
                pg["failover"]["rounds"].as_array().map_or(0, Vec::len),
                pg["failover"]["lease_ttl_ms"],
                pg["failover"]["lease_renew_ms"]
            ));
        }
    }
    let unexpected = r["unexpected_requests"].as_u64().unwrap_or(0);
    if unexpected > 0 {
        notes.push(format!(
            "warning: pagerd made {unexpected} requests the recorder did not expect"
        ));
    }
    if !t.missed.is_empty() {
        notes.push(format!("targets missed: {}", t.missed.join(", ")));
    }
    notes.push(format!(
        "took {:.1} s; machine load (1-min average) {} before, {} after",
        r["took_s"].as_f64().unwrap_or(0.0),
        r["loadavg_before"],
        r["loadavg_after"]
    ));
    for n in notes {
        println!("{n}");
    }
}

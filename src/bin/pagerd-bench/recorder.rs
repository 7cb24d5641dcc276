//! The bench's side of the wire: a lean PagerDuty that notes when each
//! request arrives, and the webhook receiver Alertmanager notifies.
//!
//! Why not `pagerd::fakes::pagerduty::FakePagerDuty`: it validates every
//! event like PagerDuty does and keeps its incidents in a `Vec` that every
//! enqueue, lookup and update scans (`Db::open_index`, `Db::find`, the
//! `GET /incidents` filter) under one lock. That is right for tests and
//! O(n²) for a 50 000-ticket burst, so the measurement would be of the fake.
//! Here every request is a hash-map lookup; the arrival instant is taken as
//! soon as the handler has the body, before any parsing.
//!
//! It speaks just enough of the protocols for pagerd's client to succeed:
//! `POST /v2/enqueue`, `GET /incidents?incident_key=…` (answers with an id
//! once the trigger arrived, like PagerDuty), `PUT /incidents/{id}`,
//! `GET`/`POST /incidents/{id}/notes`, `GET /incidents/{id}/log_entries`.
//! Anything else is counted as unexpected and answered 404.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::serve::ListenerExt as _;
use serde::Deserialize;
use tokio::sync::Notify;

/// What kind of request a record is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PagerDuty Events API `trigger` (a page), keyed by `dedup_key`.
    Trigger,
    /// PagerDuty REST `PUT /incidents/{id}` with an escalation level, keyed
    /// by the incident id, which is the `dedup_key` here.
    Escalation,
    /// PagerDuty REST `GET /incidents?incident_key=…`: the first request of
    /// an escalation (pagerd looks the incident id up), keyed by the key.
    Lookup,
    /// One alert in an Alertmanager webhook notification, keyed by its
    /// `ticket` label.
    Alert,
}

/// When a request arrived.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Monotonic, comparable with the bench's own `Instant`s.
    pub at: Instant,
    /// Wall clock in milliseconds since the epoch (fractional), comparable
    /// with pagerd's stored deadlines.
    pub wall_ms: f64,
}

impl Arrival {
    fn now() -> Arrival {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Arrival {
            at: Instant::now(),
            wall_ms: wall.as_secs_f64() * 1000.0,
        }
    }
}

/// First arrival and count per key.
#[derive(Default)]
struct Book {
    first: HashMap<String, (Arrival, u32)>,
}

impl Book {
    fn record(&mut self, key: &str, a: Arrival) {
        match self.first.get_mut(key) {
            Some((_, n)) => *n += 1,
            None => {
                self.first.insert(key.to_string(), (a, 1));
            }
        }
    }
}

#[derive(Default)]
struct Books {
    triggers: Book,
    escalations: Book,
    lookups: Book,
    alerts: Book,
}

impl Books {
    fn book(&self, kind: Kind) -> &Book {
        match kind {
            Kind::Trigger => &self.triggers,
            Kind::Escalation => &self.escalations,
            Kind::Lookup => &self.lookups,
            Kind::Alert => &self.alerts,
        }
    }
}

/// What arrived for a set of keys.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Keys that arrived at least once.
    pub distinct: usize,
    /// Arrivals beyond the first, summed over the keys.
    pub duplicates: u64,
    /// The latest first arrival among the keys.
    pub last: Option<Arrival>,
    /// The earliest first arrival among the keys.
    pub first: Option<Arrival>,
}

/// The recorder; shared by its HTTP handlers and the bench.
#[derive(Default)]
pub struct Recorder {
    books: Mutex<Books>,
    notify: Notify,
    /// Events API calls other than trigger (acknowledge, resolve).
    other_events: AtomicU64,
    /// Requests the bench does not expect pagerd to make.
    unexpected: AtomicU64,
}

impl Recorder {
    /// Starts the recorder on `127.0.0.1:0`; returns it and its address.
    pub async fn start() -> anyhow::Result<(Arc<Recorder>, SocketAddr)> {
        let rec = Arc::new(Recorder::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = router(rec.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("pagerd-bench: recorder stopped: {e}");
            }
        });
        Ok((rec, addr))
    }

    fn lock(&self) -> MutexGuard<'_, Books> {
        // A poisoned lock only means a handler panicked mid-insert; the
        // counts are still usable for a report.
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, kind: Kind, key: &str, a: Arrival) {
        {
            let mut b = self.lock();
            match kind {
                Kind::Trigger => b.triggers.record(key, a),
                Kind::Escalation => b.escalations.record(key, a),
                Kind::Lookup => b.lookups.record(key, a),
                Kind::Alert => b.alerts.record(key, a),
            }
        }
        self.notify.notify_waiters();
    }

    /// The first arrival for `key`, if any.
    pub fn first(&self, kind: Kind, key: &str) -> Option<Arrival> {
        self.lock().book(kind).first.get(key).map(|(a, _)| *a)
    }

    /// Waits up to `timeout` for the first arrival for `key`.
    pub async fn wait_for(&self, kind: Kind, key: &str, timeout: Duration) -> Option<Arrival> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(a) = self.first(kind, key) {
                return Some(a);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.first(kind, key);
            }
        }
    }

    /// What arrived for `keys`.
    pub fn tally<'a>(&self, kind: Kind, keys: impl IntoIterator<Item = &'a str>) -> Tally {
        let b = self.lock();
        let book = b.book(kind);
        let mut t = Tally::default();
        for key in keys {
            if let Some((a, n)) = book.first.get(key) {
                t.distinct += 1;
                t.duplicates += u64::from(n - 1);
                if t.last.is_none_or(|l| a.at > l.at) {
                    t.last = Some(*a);
                }
                if t.first.is_none_or(|f| a.at < f.at) {
                    t.first = Some(*a);
                }
            }
        }
        t
    }

    /// The first arrival of each of `keys` that arrived, with its key.
    pub fn arrivals<'a>(
        &self,
        kind: Kind,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(String, Arrival)> {
        let b = self.lock();
        let book = b.book(kind);
        keys.into_iter()
            .filter_map(|k| book.first.get(k).map(|(a, _)| (k.to_string(), *a)))
            .collect()
    }

    /// Polls until all of `keys` arrived or `timeout` passed; returns the
    /// tally either way.
    ///
    /// An arrival is never forgotten, so each poll resumes at the first key
    /// still missing. (A whole tally every 5 ms, over 100 000 keys, held the
    /// lock the stand-in's handlers take for most of each 5 ms, and for
    /// longer the more keys had arrived: the timer phase measured the
    /// bench's own waiting, growing through the run.)
    pub async fn wait_all(&self, kind: Kind, keys: &[String], timeout: Duration) -> Tally {
        let deadline = Instant::now() + timeout;
        let mut arrived = 0;
        loop {
            arrived += self.leading_arrived(kind, &keys[arrived..]);
            if arrived >= keys.len() || Instant::now() >= deadline {
                return self.tally(kind, keys.iter().map(String::as_str));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// How many of `keys`, from the first, arrived (up to the first that
    /// did not).
    fn leading_arrived(&self, kind: Kind, keys: &[String]) -> usize {
        let b = self.lock();
        let book = b.book(kind);
        keys.iter()
            .take_while(|k| book.first.contains_key(k.as_str()))
            .count()
    }

    /// Arrivals beyond the first per key, over every key of `kind` seen in
    /// the run.
    pub fn duplicates_total(&self, kind: Kind) -> u64 {
        let b = self.lock();
        b.book(kind)
            .first
            .values()
            .map(|(_, n)| u64::from(n - 1))
            .sum()
    }

    /// Events API calls that were not triggers.
    pub fn other_events(&self) -> u64 {
        self.other_events.load(Ordering::Relaxed)
    }

    /// Requests pagerd made that the bench did not expect.
    pub fn unexpected(&self) -> u64 {
        self.unexpected.load(Ordering::Relaxed)
    }
}

fn router(rec: Arc<Recorder>) -> Router {
    Router::new()
        .route("/v2/enqueue", post(enqueue))
        .route("/incidents", get(find_incident))
        .route("/incidents/{id}", put(update_incident))
        .route("/incidents/{id}/notes", get(list_notes).post(create_note))
        .route("/incidents/{id}/log_entries", get(list_log_entries))
        .route("/hook", post(alertmanager_hook))
        .fallback(unexpected)
        .with_state(rec)
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON string literal.
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

async fn unexpected(State(rec): State<Arc<Recorder>>) -> Response {
    rec.unexpected.fetch_add(1, Ordering::Relaxed);
    json(
        StatusCode::NOT_FOUND,
        r#"{"error":{"message":"Not Found","code":2100}}"#.into(),
    )
}

#[derive(Deserialize)]
struct Enqueue<'a> {
    #[serde(borrow)]
    event_action: &'a str,
    #[serde(borrow, default)]
    dedup_key: Option<&'a str>,
}

async fn enqueue(State(rec): State<Arc<Recorder>>, body: Bytes) -> Response {
    let at = Arrival::now();
    let Ok(ev) = serde_json::from_slice::<Enqueue<'_>>(&body) else {
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"status":"invalid event","message":"Event object is invalid"}"#.into(),
        );
    };
    let key = ev.dedup_key.unwrap_or_default();
    if ev.event_action == "trigger" {
        rec.record(Kind::Trigger, key, at);
    } else {
        rec.other_events.fetch_add(1, Ordering::Relaxed);
    }
    json(
        StatusCode::ACCEPTED,
        format!(
            r#"{{"status":"success","message":"Event processed","dedup_key":{}}}"#,
            quoted(key)
        ),
    )
}

/// `GET /incidents?incident_key=K`: the incident once its trigger arrived.
/// Its id is the key itself (path-safe: `zendesk-<digits>`).
async fn find_incident(State(rec): State<Arc<Recorder>>, RawQuery(q): RawQuery) -> Response {
    let at = Arrival::now();
    let key = q
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("incident_key="))
        .unwrap_or_default()
        .to_string();
    rec.record(Kind::Lookup, &key, at);
    let known = rec.first(Kind::Trigger, &key).is_some();
    let body = if known {
        format!(
            r#"{{"incidents":[{{"id":{k},"status":"triggered","acknowledgements":[]}}],"more":false}}"#,
            k = quoted(&key)
        )
    } else {
        r#"{"incidents":[],"more":false}"#.to_string()
    };
    json(StatusCode::OK, body)
}

#[derive(Deserialize)]
struct Update {
    incident: UpdateFields,
}

#[derive(Deserialize)]
struct UpdateFields {
    #[serde(default)]
    escalation_level: Option<u32>,
}

async fn update_incident(
    State(rec): State<Arc<Recorder>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let at = Arrival::now();
    match serde_json::from_slice::<Update>(&body) {
        Ok(u) if u.incident.escalation_level.is_some() => rec.record(Kind::Escalation, &id, at),
        _ => {
            rec.unexpected.fetch_add(1, Ordering::Relaxed);
        }
    }
    json(
        StatusCode::OK,
        format!(
            r#"{{"incident":{{"id":{},"type":"incident"}}}}"#,
            quoted(&id)
        ),
    )
}

async fn list_log_entries() -> Response {
    // A redelivered escalation reads the log before escalating again; the
    // bench records escalations itself, so the log is always empty here.
    json(
        StatusCode::OK,
        r#"{"log_entries":[],"limit":100,"offset":0,"more":false}"#.into(),
    )
}

async fn list_notes() -> Response {
    json(StatusCode::OK, r#"{"notes":[]}"#.into())
}

async fn create_note() -> Response {
    json(
        StatusCode::CREATED,
        r#"{"note":{"id":"PNOTE","content":""}}"#.into(),
    )
}

#[derive(Deserialize)]
struct Notification {
    alerts: Vec<NotifiedAlert>,
}

#[derive(Deserialize)]
struct NotifiedAlert {
    labels: HashMap<String, String>,
}

async fn alertmanager_hook(State(rec): State<Arc<Recorder>>, body: Bytes) -> Response {
    let at = Arrival::now();
    match serde_json::from_slice::<Notification>(&body) {
        Ok(n) => {
            for a in n.alerts {
                match a.labels.get("ticket") {
                    Some(t) => rec.record(Kind::Alert, t, at),
                    None => {
                        rec.unexpected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        Err(_) => {
            rec.unexpected.fetch_add(1, Ordering::Relaxed);
        }
    }
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("zendesk-{i}")).collect()
    }

    #[tokio::test]
    async fn wait_all_sees_keys_that_arrive_out_of_order() {
        let rec = Arc::new(Recorder::default());
        let keys = keys(3);
        // The last key first, then the others while the wait polls.
        rec.record(Kind::Escalation, &keys[2], Arrival::now());
        let late = rec.clone();
        let (k0, k1) = (keys[0].clone(), keys[1].clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            late.record(Kind::Escalation, &k1, Arrival::now());
            tokio::time::sleep(Duration::from_millis(20)).await;
            late.record(Kind::Escalation, &k0, Arrival::now());
            late.record(Kind::Escalation, &k0, Arrival::now());
        });
        let t = rec
            .wait_all(Kind::Escalation, &keys, Duration::from_secs(10))
            .await;
        assert_eq!((t.distinct, t.duplicates), (3, 1));
    }

    #[tokio::test]
    async fn wait_all_gives_up_with_what_arrived() {
        let rec = Recorder::default();
        let keys = keys(3);
        rec.record(Kind::Trigger, &keys[0], Arrival::now());
        rec.record(Kind::Trigger, &keys[2], Arrival::now());
        // Another kind's arrival does not count.
        rec.record(Kind::Escalation, &keys[1], Arrival::now());
        let t = rec
            .wait_all(Kind::Trigger, &keys, Duration::from_millis(30))
            .await;
        assert_eq!(t.distinct, 2);
    }
}

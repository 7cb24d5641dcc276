//! Persistence: incidents, their deadlines, the journal and the outbox.
//!
//! One call to [`Store::apply`] is one transaction: it loads the incident,
//! runs the engine, and writes the new state, the journal row and the
//! effects (as outbox rows) together. Callers answer their webhook only
//! after it returns, so an accepted event is never lost. The dispatcher then
//! drains the outbox, reporting each delivery back with [`Store::complete`]
//! in a transaction of its own.
//!
//! A store may also hand the rows a commit makes deliverable straight to the
//! dispatcher ([`Store::hand_off`], SQLite): the page then leaves without a
//! second trip through the store, while its row stays in the outbox for a
//! redelivery after a crash.

use async_trait::async_trait;
use serde::Serialize;

use crate::clock::Millis;
use crate::engine::{Effect, Event, Incident};
use crate::reports::h1::{H1Applied, H1Change, H1Report};
use crate::reports::{Report, ReportChange};

#[cfg(test)]
mod contract;
pub mod postgres;
pub mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Which incident an event is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// By Zendesk ticket id (creates the incident if the engine says so).
    Ticket(String),
    /// By pagerd id.
    Incident(i64),
    /// By PagerDuty `dedup_key` / `incident_key`.
    DedupKey(String),
}

/// An event to apply.
#[derive(Debug, Clone)]
pub struct Intake {
    /// The incident it is for.
    pub target: Target,
    /// What happened.
    pub event: Event,
    /// For at-least-once webhooks: `(source, delivery id)`. A delivery id
    /// already applied is acknowledged again without applying twice.
    pub delivery: Option<(String, String)>,
}

impl Intake {
    /// An event for incident `id`.
    pub fn incident(id: i64, event: Event) -> Intake {
        Intake {
            target: Target::Incident(id),
            event,
            delivery: None,
        }
    }

    /// A ticket seen (webhook or poll): creates the incident if it is an
    /// emergency.
    pub fn ticket(ticket: crate::engine::Ticket) -> Intake {
        Intake {
            target: Target::Ticket(ticket.id.clone()),
            event: Event::Ticket {
                ticket,
                polled: false,
            },
            delivery: None,
        }
    }

    /// A ticket found by the poller's search (not an update): it does not
    /// page again a ticket whose incident was resolved unless it was reopened.
    pub fn polled_ticket(ticket: crate::engine::Ticket) -> Intake {
        Intake {
            target: Target::Ticket(ticket.id.clone()),
            event: Event::Ticket {
                ticket,
                polled: true,
            },
            delivery: None,
        }
    }
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum Change {
    /// A new incident was opened.
    Created,
    /// An existing incident changed.
    Updated,
    /// Nothing changed, and why.
    Ignored(String),
    /// This webhook delivery was applied before.
    Replayed,
}

/// The answer of [`Store::apply`].
#[derive(Debug, Clone)]
pub struct Applied {
    /// What happened.
    pub result: Change,
    /// The incident after the event, when there is one.
    pub incident: Option<Incident>,
    /// How many effects were queued.
    pub effects: usize,
    /// How this commit changed the count of undeliverable incidents
    /// (`Incident::is_undeliverable`): -1, 0 or +1.
    pub undeliverable_delta: i64,
    /// The incident's version: the id of the last journal entry applied to
    /// it (later commits of an incident have larger ones; 0 without one).
    /// What follows two commits may run in either order (a page settled
    /// before the intake that queued it hears back); the scheduler keeps
    /// the deadline of the newest version, never an older one.
    pub version: i64,
}

impl Applied {
    /// Why a crisis was declared, when this commit declared it: the store
    /// stamps the event at or after `since` (taken just before submitting),
    /// so an earlier crisis does not count.
    pub fn crisis_declared_since(&self, since: Millis) -> Option<&str> {
        self.incident
            .as_ref()
            .and_then(|i| i.crisis.as_ref())
            .filter(|c| c.declared_at >= since)
            .map(|c| c.reason.as_str())
    }

    /// The incident's next deadline, for the scheduler.
    pub fn next_due(&self) -> Option<(i64, Option<Millis>)> {
        let inc = self.incident.as_ref()?;
        Some((inc.id, inc.deadlines.next()))
    }
}

/// An outbox row ready for delivery, with the incident as it is now (so the
/// dispatcher can fill in what earlier effects produced: the PagerDuty id, the
/// doc id, the Slack thread).
#[derive(Debug, Clone)]
pub struct Pending {
    /// Row id: also the base of the effect's idempotency key.
    pub id: i64,
    /// The effect.
    pub effect: Effect,
    /// Earlier failed attempts.
    pub attempts: u32,
    /// Whether an earlier attempt may have reached the remote side: it
    /// failed, or it was queued before this dispatcher started (a crash may
    /// have cut it off after sending). Deliveries then look for their marker
    /// before sending again.
    pub maybe_sent: bool,
    /// When it was queued.
    pub created_at: Millis,
    /// The incident.
    pub incident: Incident,
}

impl Pending {
    /// A key that is the same for every attempt of this effect and different
    /// for every other: sent to vendors as an idempotency marker.
    pub fn key(&self) -> String {
        format!("pagerd-{}-{}", self.incident.id, self.id)
    }
}

/// An outbox row as `pagerd incidents show` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// Effect kind and lane.
    pub effect: Effect,
    /// `pending`, `delivered` or `failed`.
    pub state: &'static str,
    /// Attempts so far.
    pub attempts: u32,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: Millis,
    /// When it was delivered or given up.
    pub done_at: Option<Millis>,
    /// When the dispatcher tries it (again), while it is pending: its
    /// queueing time at first, then the backoff after each failed attempt.
    pub next_attempt_at: Option<Millis>,
}

impl OutboxRow {
    /// The state name of a row from its `done` and `failed` flags.
    pub fn state_of(done: bool, failed: bool) -> &'static str {
        match (done, failed) {
            (false, _) => "pending",
            (true, false) => "delivered",
            (true, true) => "failed",
        }
    }
}

/// The engine step every store runs inside its transaction: the new state,
/// its effects and whether it creates the incident; or, when nothing
/// changes, the answer to return as it is.
#[expect(
    clippy::result_large_err,
    reason = "returned once per event and consumed at once, like engine::Decision"
)]
pub(crate) fn decide(
    policy: &crate::engine::Policy,
    current: Option<Incident>,
    event: &Event,
    now: Millis,
) -> Result<(Incident, Vec<Effect>, bool, i64), Applied> {
    match crate::engine::apply(policy, current.as_ref(), event, now) {
        // The caller fills in the version of `current`.
        crate::engine::Decision::Ignore(reason) => Err(Applied {
            result: Change::Ignored(reason),
            incident: current,
            effects: 0,
            undeliverable_delta: 0,
            version: 0,
        }),
        // A new incident, or a new episode of a resolved ticket's: id 0.
        crate::engine::Decision::Apply { incident, effects } => {
            let created = incident.id == 0;
            let was = !created && current.as_ref().is_some_and(Incident::is_undeliverable);
            let delta = i64::from(incident.is_undeliverable()) - i64::from(was);
            Ok((incident, effects, created, delta))
        }
    }
}

/// One journal row: an event that changed an incident.
#[derive(Debug, Clone, Serialize)]
pub struct JournalEntry {
    /// When.
    pub at: Millis,
    /// What.
    pub event: Event,
    /// How many effects it queued.
    pub effects: usize,
}

/// Counts for `/metrics` and `/readyz`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stats {
    /// Incidents not resolved.
    pub open_incidents: u64,
    /// Of those, the acknowledged ones (the others are triggered).
    pub acknowledged_incidents: u64,
    /// All incidents.
    pub incidents: u64,
    /// Effects waiting for delivery.
    pub pending_effects: u64,
    /// Effects given up on (permanent errors).
    pub failed_effects: u64,
    /// Open incidents whose page or escalation PagerDuty refused for good
    /// and that were not re-sent: nobody was paged through PagerDuty.
    pub undeliverable: u64,
    /// The oldest pending effect's age in ms (0 when none).
    pub oldest_pending_ms: i64,
}

/// How long webhook delivery ids are kept for de-duplication. Vendors
/// redeliver a webhook for hours (PagerDuty) or a few days (Zendesk retries,
/// a replayed dead-letter queue), never for weeks: a week covers every
/// redelivery with room to spare, and a delivery id older than that is
/// applied afresh (the engine still ignores what changes nothing).
pub const DELIVERY_IDS_KEPT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Where a retention pass has got to: the `(updated_at, id)` of the last
/// resolved incident it examined. Passes walk resolved incidents in that
/// order, so incidents that must be kept are examined once per pass, not
/// once per batch.
pub type PruneCursor = (Millis, i64);

/// What one [`Store::prune`] batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Resolved incidents examined (at most the batch size).
    pub examined: u64,
    /// Incidents deleted.
    pub incidents: u64,
    /// Their journal rows deleted.
    pub journal: u64,
    /// Their outbox rows deleted (all delivered or given up).
    pub outbox: u64,
    /// Webhook delivery ids deleted.
    pub deliveries: u64,
    /// Where the next batch of this pass starts.
    pub next: Option<PruneCursor>,
    /// Whether the pass is over: fewer incidents were left to examine and
    /// fewer delivery ids to delete than the batch size.
    pub finished: bool,
}

impl Pruned {
    /// Adds another batch's counts to these (the cursor and `finished` are
    /// the later batch's).
    pub fn add(&mut self, later: &Pruned) {
        self.examined += later.examined;
        self.incidents += later.incidents;
        self.journal += later.journal;
        self.outbox += later.outbox;
        self.deliveries += later.deliveries;
        self.next = later.next;
        self.finished = later.finished;
    }
}

/// A store failure. The daemon answers 503 and the sender retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed: what pagerd was doing, and the
    /// database's own error, kept whole.
    #[error("store: {context}: {cause}")]
    Db {
        /// What pagerd was doing (and on which file or server).
        context: String,
        /// What the database (or the system under it) said.
        cause: DbError,
    },
    /// The store cannot be used as configured or as found (a missing
    /// directory, another daemon on the file, a schema newer than this
    /// build, a `store.url` that does not parse): a human must act.
    #[error("store: {0}")]
    Unusable(String),
    /// The database did not answer in time, or another instance kept
    /// winning a race: nothing was written; try again.
    #[error("store: {0}")]
    Unavailable(String),
    /// The database is locked by someone else for longer than the busy
    /// timeout; nothing was written.
    #[error("store busy: {0}")]
    Busy(String),
    /// A stored row does not parse (a bug or a downgrade).
    #[error("store: corrupt row: {0}")]
    Corrupt(String),
    /// The store is shutting down or its thread died.
    #[error("store is closed")]
    Closed,
    /// This instance does not hold the leader lease (PostgreSQL): it must
    /// not claim or settle outbox rows.
    #[error("store: this instance is not the leader")]
    NotLeader,
}

/// The error of the database (or of the system under it), kept whole
/// (shared, so that one failed commit can be answered to every caller of
/// its group).
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// SQLite.
    #[error(transparent)]
    Sqlite(std::sync::Arc<rusqlite::Error>),
    /// PostgreSQL; shown with its causes (a server's message, an I/O
    /// error under a TLS failure).
    #[error("{}", crate::store::postgres::with_causes(.0.as_ref()))]
    Postgres(std::sync::Arc<tokio_postgres::Error>),
    /// The PostgreSQL connection pool.
    #[error("{}", crate::store::postgres::with_causes(.0.as_ref()))]
    Pool(std::sync::Arc<deadpool_postgres::PoolError>),
    /// The file system or a thread.
    #[error(transparent)]
    Io(std::sync::Arc<std::io::Error>),
}

impl StoreError {
    /// A failure of SQLite while doing `context`.
    pub fn sqlite(context: impl Into<String>, e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Busy(format!("{}: {e}", context.into()))
            }
            _ => StoreError::Db {
                context: context.into(),
                cause: DbError::Sqlite(std::sync::Arc::new(e)),
            },
        }
    }

    /// A failure of PostgreSQL while doing `context`.
    pub fn postgres(context: impl Into<String>, e: tokio_postgres::Error) -> StoreError {
        StoreError::Db {
            context: context.into(),
            cause: DbError::Postgres(std::sync::Arc::new(e)),
        }
    }

    /// A failure of the file system or of a thread while doing `context`.
    pub fn io(context: impl Into<String>, e: std::io::Error) -> StoreError {
        StoreError::Db {
            context: context.into(),
            cause: DbError::Io(std::sync::Arc::new(e)),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::sqlite("sqlite", e)
    }
}

/// Told about the outbox rows each commit made deliverable: the rows it
/// queued that are the oldest pending of their incident's lane, and the row
/// a settlement promoted to the head of its lane. Called once the commit is
/// durable (a page: once its transaction has run, before the commit is
/// written; a timer's escalation: once it is written), in commit order,
/// before the store answers anything it committed later, and whether or
/// not the caller still waits for the answer (a timed-out request's commit
/// is still reported). It must not block: the store's writer calls it.
pub trait Ready: Send + Sync + 'static {
    /// `rows` are pending in the outbox, with the incident as committed (a
    /// page's commit may still fail: see `store::sqlite::writer`).
    fn ready(&self, rows: Vec<Pending>);
}

/// Where incidents live. SQLite by default; PostgreSQL for several instances.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// From now on, tells `to` about the rows each commit makes deliverable
    /// (see [`Ready`]). Returns whether this store does: SQLite does (one
    /// process, one writer, so every commit is seen); PostgreSQL does not
    /// (other instances commit too; its dispatcher reads the outbox).
    /// Whoever is told must still leave room for [`Store::due`]: the rows
    /// stay pending until settled.
    fn hand_off(&self, to: std::sync::Arc<dyn Ready>) -> bool {
        let _ = to;
        false
    }

    /// Applies one event through the engine, atomically (see module docs).
    async fn apply(&self, intake: Intake, now: Millis) -> Result<Applied, StoreError>;

    /// One incident.
    async fn get(&self, id: i64) -> Result<Option<Incident>, StoreError>;

    /// The latest episode of a Zendesk ticket's incidents.
    async fn by_ticket(&self, ticket: &str) -> Result<Option<Incident>, StoreError>;

    /// Incidents, newest first; only unresolved ones when `open_only`.
    async fn list(&self, open_only: bool, limit: usize) -> Result<Vec<Incident>, StoreError>;

    /// An incident's journal, oldest first.
    async fn journal(&self, id: i64) -> Result<Vec<JournalEntry>, StoreError>;

    /// An incident's outbox rows, oldest first.
    async fn outbox(&self, id: i64) -> Result<Vec<OutboxRow>, StoreError>;

    /// Every armed deadline: `(incident id, earliest deadline)`.
    async fn deadlines(&self) -> Result<Vec<(i64, Millis)>, StoreError>;

    /// Up to `limit` effects that may be delivered now: the oldest pending
    /// effect of each (incident, lane), whose retry time has come, except
    /// rows in `skip` (in flight). Also returns the earliest future retry.
    async fn due(
        &self,
        now: Millis,
        limit: usize,
        skip: Vec<i64>,
    ) -> Result<(Vec<Pending>, Option<Millis>), StoreError>;

    /// Marks a row delivered and applies the feedback event, atomically.
    /// Returns `None` when the row was already done (a duplicate report).
    async fn complete(
        &self,
        row: i64,
        feedback: Event,
        now: Millis,
    ) -> Result<Option<Applied>, StoreError>;

    /// Records a failed attempt; the row is due again at `at`.
    async fn retry_later(&self, row: i64, at: Millis, error: String) -> Result<(), StoreError>;

    /// Gives up on a row (a permanent error) and applies the failure event.
    async fn fail(
        &self,
        row: i64,
        error: String,
        now: Millis,
    ) -> Result<Option<Applied>, StoreError>;

    /// Counts for metrics.
    async fn stats(&self, now: Millis) -> Result<Stats, StoreError>;

    /// Takes or renews the leader lease for `holder` for `ttl`. Returns the
    /// fencing token while this instance holds the lease, `None` while
    /// another does. Only the leader fires timers and dispatches; the store
    /// refuses outbox claims and settlements (`due`, `complete`,
    /// `retry_later`, `fail`) from an instance whose lease has lapsed, so a
    /// paused old leader that wakes up cannot settle anything. A single-node
    /// store is always the leader.
    async fn lease(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>, StoreError>;

    /// Who holds the lease and for how much longer (ms), if anyone; `None`
    /// for a single-node store.
    async fn lease_holder(&self) -> Result<Option<(String, i64)>, StoreError>;

    /// One batch of retention: examines up to `batch` resolved incidents
    /// last changed before `before`, in `(updated_at, id)` order after
    /// `after` (`None`: from the oldest), and deletes, with their journal
    /// and outbox rows, those that nothing needs any more:
    /// - resolved, and unchanged since `before` (`updated_at` is the
    ///   resolution time or later);
    /// - no armed deadline (`next_due IS NULL`: e.g. the crisis doc's
    ///   deprecation, due days after resolution) and no pending outbox row;
    /// - and its ticket is known solved or closed, or a later episode of the
    ///   ticket exists. Otherwise the incident is the only record that its
    ///   still-open ticket was already dealt with: without it, the Zendesk
    ///   poller would find the ticket again and page for it. Such an
    ///   incident is kept until its ticket is solved (or comes back).
    ///
    /// Also deletes up to `batch` webhook delivery ids recorded before
    /// `deliveries_before`. Open incidents are never touched. Each call is
    /// one short transaction (on SQLite, one job of the writer thread): call
    /// it again with [`Pruned::next`] until [`Pruned::finished`].
    async fn prune(
        &self,
        before: Millis,
        deliveries_before: Millis,
        batch: usize,
        after: Option<PruneCursor>,
    ) -> Result<Pruned, StoreError>;

    // ---- HackerOne reports (`crate::reports`) -------------------------------
    // Not fenced by the lease: any instance records what it learns (a report
    // seen, a reply found); each change is applied under the row's lock
    // with [`Report::apply`], so two instances cannot undo each other's.

    /// Starts watching `report` unless its ticket is watched already.
    /// Returns the report as stored (an existing one unchanged: its clock
    /// started when it was first seen) and whether it is new.
    async fn watch_report(&self, report: Report) -> Result<(Report, bool), StoreError>;

    /// The watched report of a ticket.
    async fn report(&self, ticket: &str) -> Result<Option<Report>, StoreError>;

    /// Watched reports, oldest deadline first, at most `limit`.
    async fn reports(&self, limit: usize) -> Result<Vec<Report>, StoreError>;

    /// Applies `change` at `now` to the report of `ticket`, atomically
    /// (load, [`Report::apply`], save). Returns the report afterwards
    /// (unchanged when the change does not apply), `None` when the ticket
    /// is not watched.
    async fn change_report(
        &self,
        ticket: &str,
        change: ReportChange,
        now: Millis,
    ) -> Result<Option<Report>, StoreError>;

    // ---- HackerOne's own webhook (`crate::reports::h1`) ---------------------

    /// Applies `change` at `now` to HackerOne report `id`, atomically,
    /// creating its row when pagerd first hears of it. With a `delivery`
    /// id (`X-H1-Delivery`), a delivery recorded before applies nothing
    /// ([`H1Applied::replayed`]); it is recorded in the same transaction.
    async fn change_h1(
        &self,
        id: &str,
        change: H1Change,
        delivery: Option<String>,
        now: Millis,
    ) -> Result<H1Applied, StoreError>;

    /// HackerOne report `id`, when pagerd heard of it.
    async fn h1_report(&self, id: &str) -> Result<Option<H1Report>, StoreError>;

    /// HackerOne reports, most recently changed first, at most `limit`.
    async fn h1_reports(&self, limit: usize) -> Result<Vec<H1Report>, StoreError>;
}

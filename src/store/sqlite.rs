//! The embedded SQLite store (the default: nothing to install).
//!
//! One thread owns the connection; async callers send it jobs and await the
//! answer, so no SQLite call ever blocks the reactor. The thread
//! ([`writer`]) commits in groups: it takes every job already queued, runs
//! them all in one transaction and commits once; a second thread syncs the
//! WAL, once for every group written since its last sync, and only then
//! answers each caller, in order. Under a burst this turns a thousand
//! fsyncs into a few, and the writer never waits for the disk, while every
//! caller still hears back only after its own data is durable.
//!
//! With a [`Ready`] hook ([`Store::hand_off`]), the store also reports,
//! after each commit and before answering, the outbox rows the commit made
//! deliverable (a new lane head, or the row a settlement promoted), so the
//! dispatcher sends a page without reading the outbox back; pages go before
//! the commit is written, timer escalations while the WAL syncs, the other
//! rows once it is synced ([`writer`]).

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::engine::Policy;
use crate::shared::Shared;
use writer::{Job, Work};

/// How long a caller waits for a lock another connection holds (a sqlite3
/// shell, a backup), counted from when it asked, before it hears that the
/// store is busy ([`writer::Job::deadline`]).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Prepared statements the writer keeps (it uses about 30).
const STATEMENTS_CACHED: usize = 64;

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    owner: Arc<Owner>,
    /// Read at each decision: a reload's policy applies from the next one.
    policy: Shared<Policy>,
    /// Told about the rows each commit makes deliverable, once set.
    ready: Arc<OnceLock<Arc<dyn Ready>>>,
    /// The highest outbox id handed off from a commit that then failed
    /// (0: none); set by the writer thread, read by its jobs.
    voided: Arc<AtomicI64>,
}

/// Where a job puts the outbox rows it made deliverable, when a [`Ready`]
/// hook wants them.
type Deliverable<'a> = Option<&'a mut Vec<Pending>>;

/// The writer thread's queue and handle. Dropping the last store handle
/// closes the queue and waits for the thread (and its sync thread), which
/// releases the database lock: a daemon restarted in the same process can
/// open it at once.
struct Owner {
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    checkpointer: Option<(Arc<Checkpoints>, std::thread::JoinHandle<()>)>,
    /// The write-ahead log's path (its size is looked at after a retention
    /// pass).
    wal: std::path::PathBuf,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some((asks, t)) = self.checkpointer.take() {
            asks.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            t.thread().unpark();
            let _ = t.join();
        }
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            // Quick: with the queue closed, the thread ends after the group
            // it is committing.
            let _ = t.join();
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its
    /// thread. Refuses to run "half durable": if the file cannot be created,
    /// written and synced, this fails with the path in the message.
    /// Each decision reads the current value of `policy` (a [`Shared`] that
    /// a reload swaps; a plain `Arc<Policy>` never changes).
    pub fn open(path: &Path, policy: impl Into<Shared<Policy>>) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, policy.into(), None)
    }

    /// [`SqliteStore::open`], syncing the WAL with `sync` instead of
    /// `fdatasync` (tests watch or fail it).
    fn open_with(
        path: &Path,
        policy: Shared<Policy>,
        sync: Option<writer::Sync>,
    ) -> Result<SqliteStore, StoreError> {
        let ctx = |e: rusqlite::Error| StoreError::sqlite(path.display().to_string(), e);
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            return Err(StoreError::Unusable(format!(
                "{}: directory {} does not exist (systemd's StateDirectory= creates it)",
                path.display(),
                dir.display()
            )));
        }
        // One daemon per database file: a second one would fire the same
        // timers and deliver the same effects. The lock is released when the
        // store thread ends (or the process dies).
        let lock_path = path.with_extension("lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| {
            StoreError::io(
                format!("{}: cannot create {}", path.display(), lock_path.display()),
                e,
            )
        })?;
        if let Err(e) = lock.try_lock() {
            return Err(StoreError::Unusable(format!(
                "{}: another pagerd is using this database ({}: {e}); run one instance per SQLite file, \
                 or PostgreSQL for several",
                path.display(),
                lock_path.display()
            )));
        }
        let conn = Connection::open(path).map_err(ctx)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(ctx)?;
        // Space freed by retention goes back to the file system: a new
        // database is made with incremental auto-vacuum (possible only
        // before its first table), and `prune` releases freed pages a batch
        // at a time. See [`space`] for existing files.
        let tables: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(ctx)?;
        if tables == 0 {
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
                .map_err(ctx)?;
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(ctx)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unusable(format!(
                "{}: cannot enable WAL (got {mode})",
                path.display()
            )));
        }
        // Statement journals and sorts stay in memory, never a temporary
        // file written on the commit path.
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;",
        )
        .map_err(ctx)?;
        schema::migrate(&conn, &path.display().to_string())?;
        space::space(&conn, path)?;
        // Checkpoints copy the WAL into the database file. SQLite runs them
        // inside whichever commit crosses the threshold, stalling it for
        // milliseconds; a thread of its own does them instead, without
        // blocking the writer (PASSIVE).
        conn.execute_batch("PRAGMA wal_autocheckpoint=0;")
            .map_err(ctx)?;
        // No `journal_size_limit`: cutting the WAL back at each restart
        // made the writer grow the file again, and with 1 000 deadlines due
        // a second the escalations' p99 went from 17 ms to 410-460 ms
        // (docs/benchmark.md). After a retention pass on a big store the
        // WAL keeps its size until a TRUNCATE checkpoint.

        // Every statement is prepared once and kept. Two things defeated
        // that: the cache held 16 statements, fewer than the writer uses;
        // and SQLite marks a statement whose plan might depend on a bound
        // value (a `LIMIT ?`, a parameter compared while weighing the
        // partial indexes) to be compiled again at every new binding, and
        // rusqlite clears the bindings of each statement it caches, so most
        // statements were compiled again at each use (a sixth of the
        // writer's time). The query planner stability guarantee (QPSG)
        // plans once: the plans here do not depend on values (the partial
        // indexes match literal terms).
        conn.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(ctx)?;
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(4096);
        let checkpoint_conn = Connection::open(path).map_err(ctx)?;
        let asks = Arc::new(Checkpoints::default());
        let checkpointer = {
            let asks = asks.clone();
            let jobs = tx.downgrade();
            std::thread::Builder::new()
                .name("pagerd-checkpoint".into())
                .spawn(move || checkpoints(checkpoint_conn, &asks, &jobs))
                .map_err(|e| StoreError::io("cannot start the checkpoint thread", e))?
        };
        // From here on the sync thread syncs the WAL after the commits, once
        // the writer has handed off the pages (see [`writer`]); what was done
        // above (migrations) SQLite synced at each commit.
        conn.execute_batch("PRAGMA synchronous=NORMAL;")
            .map_err(ctx)?;
        let wal = wal_path(path);
        let sync = sync.unwrap_or_else(|| writer::sync_wal(wal.clone()));
        let (to_sync, synced) = std::sync::mpsc::channel();
        let syncer = std::thread::Builder::new()
            .name("pagerd-sync".into())
            .spawn(move || writer::syncer(synced, sync))
            .map_err(|e| StoreError::io("cannot start the sync thread", e))?;
        let restart = asks.clone();
        let voided = Arc::new(AtomicI64::new(0));
        let writer_voided = voided.clone();
        let thread = std::thread::Builder::new()
            .name("pagerd-store".into())
            .spawn(move || {
                writer::writer(conn, rx, to_sync, &restart, &writer_voided);
                // Every caller is answered before the store is closed.
                if syncer.join().is_err() {
                    tracing::error!("store: the sync thread panicked");
                }
                drop(lock);
            })
            .map_err(|e| StoreError::io("cannot start the store thread", e))?;
        let owner = Owner {
            jobs: Some(tx),
            thread: Some(thread),
            checkpointer: Some((asks, checkpointer)),
            wal,
        };
        Ok(SqliteStore {
            owner: Arc::new(owner),
            policy,
            ready: Arc::default(),
            voided,
        })
    }

    /// Runs `f` on the writer thread inside the group transaction; answers
    /// after commit. An `Err` from `f` undoes only `f`'s own writes. `f` may
    /// run twice (see [`Job`]).
    async fn call<T: Send + 'static>(
        &self,
        mut f: impl FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call_ready(move |conn, _| f(conn)).await
    }

    /// [`SqliteStore::call`] for a job that may make outbox rows
    /// deliverable: it collects them, and they go to the [`Ready`] hook
    /// before the answer (and even when nobody waits for it any more):
    /// pages before the commit is written, timer escalations once it is,
    /// the other rows once it is durable.
    async fn call_ready<T: Send + 'static>(
        &self,
        f: impl FnMut(&Connection, Deliverable<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(Work::new(f, self.ready.get().cloned(), tx));
        let jobs = self.owner.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// What the checkpoint thread is asked to do beside its rounds.
#[derive(Default)]
struct Checkpoints {
    /// End (after one more round).
    stop: std::sync::atomic::AtomicBool,
    /// Give the WAL's disk space back at the next round.
    truncate: std::sync::atomic::AtomicBool,
    /// Asks the writer to copy the WAL into the database between two
    /// groups, so that its next commit writes the WAL from the start (set
    /// by the checkpoint thread, taken by the writer).
    restart: std::sync::atomic::AtomicBool,
    /// Commits that changed a row, counted by the writer: a round with
    /// none since the last one that copied everything has nothing to do.
    written: std::sync::atomic::AtomicU64,
}

/// A WAL larger than this after a retention pass is cut back to nothing.
/// With pauses between writes it stays a few MiB (a checkpoint every
/// quarter second); a first retention pass over a big store leaves it at
/// hundreds of MiB.
const WAL_KEPT: u64 = if cfg!(test) { 1 << 20 } else { 64 << 20 };

/// A WAL that grows past this under writes that never pause is started
/// again from its beginning (1 000 tickets a second for 100 s grew it to
/// 8 GiB before). Each restart holds the writer up for a sync of the WAL
/// and one of the database file (on a disk that syncs in 5 ms, a restart at every 64 MiB
/// took the p99 lateness of 10 000 timers from 16 to 26 ms), so the bound is
/// high: a flood of a thousand tickets a second restarts it every 13 s.
const WAL_RESTART: u64 = if cfg!(test) { 1 << 20 } else { 1 << 30 };

/// The checkpoint thread: every quarter second with new commits, copy what
/// the WAL holds into the database file, until told to stop (then once
/// more). Once everything is copied it has the writer start the WAL again
/// from its beginning: at once if no commit came during the round
/// ([`writer::RestartWal`]), or between two groups past [`WAL_RESTART`]
/// under writes that never pause.
/// Asked to, it also truncates the WAL: once, not at every start or commit
/// (cutting it back at each restart made the writer grow the file again and
/// delayed commits, see `journal_size_limit` in docs/benchmark.md).
fn checkpoints(conn: Connection, asks: &Checkpoints, jobs: &mpsc::WeakSender<Box<dyn Job>>) {
    use std::sync::atomic::Ordering::SeqCst;
    let checkpoint = |mode: &str| {
        // (busy, frames in the WAL, frames copied into the database).
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
    };
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap_or(4096);
    // The writer's count of commits when a round last copied them all.
    let mut copied_to = None;
    loop {
        std::thread::park_timeout(std::time::Duration::from_millis(250));
        let written = asks.written.load(SeqCst);
        let truncate = asks.truncate.load(SeqCst);
        // Nothing new: copying the restart's own frame would only make the
        // next commit restart the WAL again, inside its own commit.
        let round = (copied_to != Some(written) || truncate).then(|| checkpoint("PASSIVE"));
        match round {
            // Everything copied: a TRUNCATE now only waits for the writer
            // to be between two commits, and holds it up for one sync.
            Some(Ok((0, frames, copied))) if frames == copied && truncate => {
                match checkpoint("TRUNCATE") {
                    Ok((0, _, _)) => {
                        asks.truncate.store(false, SeqCst);
                        tracing::info!("store: the WAL was cut back after the retention pass");
                    }
                    Ok(_) => {} // busy: next round
                    Err(e) => {
                        tracing::warn!(cause = %e, "store: cannot truncate the WAL; will retry")
                    }
                }
            }
            // Under steady writes the log never starts again from its
            // beginning by itself: SQLite restarts it only when a write
            // begins with everything copied, and some commit always comes
            // between a checkpoint's end and the next write. So past
            // WAL_RESTART the writer is asked to copy the few frames written
            // since, itself, between two groups ([`writer::writer`]): its
            // next commit then writes from the start of the file, which
            // stays that size, reused, instead of growing by every commit.
            // (A RESTART checkpoint from this thread did the same but held
            // the writer up longer: it waited in SQLite's busy handler,
            // which sleeps 1, 2, 5 ms… between tries.)
            Some(Ok((0, frames, copied)))
                if frames == copied && frames * page > WAL_RESTART as i64 =>
            {
                copied_to = Some(written);
                asks.restart.store(true, SeqCst);
            }
            // Everything copied and no commit since the round began: the
            // next write starts the log again, and syncs its new header
            // before its own frames. The restart is made now instead, in a
            // commit of its own, so the next page does not wait for that
            // sync. It moves the sync, it adds none: after a commit during
            // the round (which may have restarted the log itself, or left
            // frames to copy) it is not sent. A full queue means the writer
            // is busy: its next commit restarts.
            Some(Ok((0, frames, copied))) if frames == copied => {
                copied_to = Some(written);
                if asks.written.load(SeqCst) == written
                    && let Some(jobs) = jobs.upgrade()
                {
                    let _ = jobs.try_send(Box::new(writer::RestartWal));
                }
            }
            Some(Ok(_)) | None => {}
            Some(Err(e)) => tracing::warn!(cause = %e, "store: checkpoint failed; will retry"),
        }
        if asks.stop.load(SeqCst) {
            return;
        }
    }
}

/// The WAL beside the database at `path`.
fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn load(conn: &Connection, target: &Target) -> Result<Option<Incident>, StoreError> {
    let (sql, key): (&str, rusqlite::types::Value) = match target {
        Target::Ticket(t) => (
            // The ticket's latest episode.
            "SELECT state FROM incidents WHERE ticket_id = ?1 ORDER BY episode DESC LIMIT 1",
            t.clone().into(),
        ),
        Target::Incident(id) => ("SELECT state FROM incidents WHERE id = ?1", (*id).into()),
        Target::DedupKey(k) => (
            "SELECT state FROM incidents WHERE dedup_key = ?1",
            k.clone().into(),
        ),
    };
    let state: Option<String> = conn
        .prepare_cached(sql)?
        .query_row([key], |r| r.get(0))
        .optional()?;
    state.map(|s| from_json(&s)).transpose()
}

/// The engine step inside a transaction: load, decide, persist. With
/// `ready`, the effects queued at the head of their lane are added to it.
fn apply_in(
    conn: &Connection,
    policy: &Policy,
    intake: &Intake,
    now: Millis,
    voided: i64,
    mut ready: Deliverable<'_>,
) -> Result<Applied, StoreError> {
    if let Some((source, id)) = &intake.delivery {
        let seen: Option<i64> = conn
            .prepare_cached("SELECT 1 FROM deliveries WHERE source = ?1 AND id = ?2")?
            .query_row(params![source, id], |r| r.get(0))
            .optional()?;
        if seen.is_some() {
            let incident = load(conn, &intake.target)?;
            return Ok(Applied {
                result: Change::Replayed,
                version: version(conn, incident.as_ref())?,
                incident,
                effects: 0,
                undeliverable_delta: 0,
            });
        }
    }
    let current = load(conn, &intake.target)?;
    let (mut incident, effects, created, undeliverable_delta) =
        match decide(policy, current, &intake.event, now) {
            Ok(decided) => decided,
            Err(mut unchanged) => {
                unchanged.version = version(conn, unchanged.incident.as_ref())?;
                return Ok(unchanged);
            }
        };
    // No statement here has a RETURNING clause: SQLite runs one as a
    // trigger, and a statement with a trigger copies every page it changes
    // into a statement journal first (a tenth of the daemon's CPU in a
    // burst). A failed statement needs no undoing of its own either: its
    // job fails and its whole transaction is rolled back ([`writer`]).
    if created {
        // The id SQLite would give the row (no AUTOINCREMENT: the largest
        // plus one), so the row is written once, with its state.
        incident.id = conn
            .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM incidents")?
            .query_row([], |r| r.get(0))?;
        conn.prepare_cached(
            "INSERT INTO incidents(id, ticket_id, episode, dedup_key, status, next_due, opened_at, updated_at, state, undeliverable)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
        )?
        .execute(params![
            incident.id,
            incident.ticket.id,
            incident.episode,
            incident.dedup_key,
            incident.status.as_str(),
            incident.deadlines.next(),
            now,
            to_json(&incident)?,
            incident.is_undeliverable()
        ])?;
    } else {
        conn.prepare_cached("UPDATE incidents SET status = ?2, next_due = ?3, updated_at = ?4, state = ?5, undeliverable = ?6 WHERE id = ?1")?
            .execute(params![incident.id, incident.status.as_str(), incident.deadlines.next(), now, to_json(&incident)?, incident.is_undeliverable()])?;
    }
    conn.prepare_cached(
        "INSERT INTO journal(incident_id, at, event, effects) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        incident.id,
        now,
        to_json(&intake.event)?,
        effects.len() as i64
    ])?;
    let version = conn.last_insert_rowid();
    let mut pending = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE incident_id = ?1 AND lane = ?2 AND done = 0)",
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox(id, incident_id, lane, effect, created_at, next_attempt_at, head)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
    )?;
    for effect in &effects {
        let lane = effect.lane().as_str();
        let head = !pending.query_row(params![incident.id, lane], |r| r.get::<_, bool>(0))?;
        // NULL: SQLite's own id, the largest plus one. After a commit that
        // failed once its page had left ([`writer`]), that could be the
        // page's id again, and the page's settlement, when it comes, would
        // be taken for the new row's: ids go above it instead.
        let id = match voided {
            0 => None,
            voided => Some(
                conn.prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM outbox")?
                    .query_row([], |r| r.get::<_, i64>(0))?
                    .max(voided + 1),
            ),
        };
        insert.execute(params![id, incident.id, lane, to_json(effect)?, now, head])?;
        let id = conn.last_insert_rowid();
        if head && let Some(ready) = ready.as_deref_mut() {
            ready.push(Pending {
                id,
                effect: effect.clone(),
                attempts: 0,
                maybe_sent: false,
                created_at: now,
                incident: incident.clone(),
            });
        }
    }
    if let Some((source, id)) = &intake.delivery {
        conn.prepare_cached("INSERT INTO deliveries(source, id, at) VALUES (?1, ?2, ?3)")?
            .execute(params![source, id, now])?;
    }
    let result = if created {
        Change::Created
    } else {
        Change::Updated
    };
    Ok(Applied {
        result,
        incident: Some(incident),
        effects: effects.len(),
        undeliverable_delta,
        version,
    })
}

/// The version of `incident` as stored (see [`Applied::version`]).
fn version(conn: &Connection, incident: Option<&Incident>) -> Result<i64, StoreError> {
    let Some(incident) = incident else {
        return Ok(0);
    };
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM journal WHERE incident_id = ?1")?
        .query_row([incident.id], |r| r.get(0))?)
}

/// How a delivery ended, as [`finish`] stores it.
enum Settled<'a> {
    /// Delivered: the event for its incident.
    Delivered(&'a Event),
    /// Failed for good: why.
    Failed(&'a str),
}

/// Marks row `row` done; applies the `outcome`'s event to its incident when
/// it was still pending. `None` when it was done already. With `ready`, the row
/// promoted to the head of the lane and the effects the feedback queued at
/// the head of theirs are added to it.
fn finish(
    conn: &Connection,
    policy: &Policy,
    row: i64,
    outcome: Settled<'_>,
    now: Millis,
    voided: i64,
    mut ready: Deliverable<'_>,
) -> Result<Option<Applied>, StoreError> {
    let found: Option<(i64, String, String)> = conn
        .prepare_cached("SELECT incident_id, lane, effect FROM outbox WHERE id = ?1 AND done = 0")?
        .query_row([row], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((incident_id, lane, effect)) = found else {
        return Ok(None);
    };
    let effect: Effect = from_json(&effect)?;
    let (failed, feedback) = match outcome {
        Settled::Delivered(event) => (None, event.clone()),
        Settled::Failed(error) => (
            Some(error),
            Event::DeliveryFailed {
                effect: effect.kind(),
                error: error.to_string(),
            },
        ),
    };
    conn.prepare_cached(
        "UPDATE outbox SET done = 1, head = 0, failed = ?2, done_at = ?3, last_error = ?4,
         attempts = attempts + 1 WHERE id = ?1",
    )?
    .execute(params![row, failed.is_some(), now, failed])?;
    // The next row of the lane, if any, may go now.
    // (No RETURNING: see [`apply_in`].)
    let promoted: Option<(i64, String, u32, Millis, Millis)> = conn
        .prepare_cached(
            "SELECT id, effect, attempts, created_at, next_attempt_at FROM outbox
             WHERE incident_id = ?1 AND lane = ?2 AND done = 0 ORDER BY id LIMIT 1",
        )?
        .query_row(params![incident_id, lane], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    if let Some((id, ..)) = &promoted {
        conn.prepare_cached("UPDATE outbox SET head = 1 WHERE id = ?1")?
            .execute([id])?;
    }
    let intake = Intake {
        target: Target::Incident(incident_id),
        event: feedback,
        delivery: None,
    };
    let applied = apply_in(conn, policy, &intake, now, voided, ready.as_deref_mut())?;
    if let Some(ready) = ready
        && let Some((id, effect, attempts, created_at, next_attempt_at)) = promoted
        && next_attempt_at <= now
    {
        let incident = match &applied.incident {
            Some(incident) => incident.clone(),
            None => load(conn, &Target::Incident(incident_id))?
                .ok_or_else(|| StoreError::Corrupt(format!("outbox row {id} has no incident")))?,
        };
        // Before what the feedback queued: it is older.
        ready.insert(
            0,
            Pending {
                id,
                effect: from_json(&effect)?,
                attempts,
                maybe_sent: false,
                created_at,
                incident,
            },
        );
    }
    Ok(Some(applied))
}

#[async_trait]
impl Store for SqliteStore {
    fn hand_off(&self, to: Arc<dyn Ready>) -> bool {
        // Set once; a second hook would be a wiring bug, and the first
        // keeps being told.
        if self.ready.set(to).is_err() {
            tracing::error!("store: a second hand-off hook was refused");
        }
        true
    }

    async fn apply(&self, intake: Intake, now: Millis) -> Result<Applied, StoreError> {
        let (policy, voided) = (self.policy.clone(), self.voided.clone());
        // Loaded on the store thread, when the decision is made.
        self.call_ready(move |conn, ready| {
            let voided = voided.load(Ordering::SeqCst);
            apply_in(conn, &policy.load(), &intake, now, voided, ready)
        })
        .await
    }

    async fn get(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        self.call(move |conn| load(conn, &Target::Incident(id)))
            .await
    }

    async fn by_ticket(&self, ticket: &str) -> Result<Option<Incident>, StoreError> {
        let target = Target::Ticket(ticket.to_string());
        self.call(move |conn| load(conn, &target)).await
    }

    async fn list(&self, open_only: bool, limit: usize) -> Result<Vec<Incident>, StoreError> {
        self.call(move |conn| {
            let sql = if open_only {
                "SELECT state FROM incidents WHERE status != 'resolved' ORDER BY id DESC LIMIT ?1"
            } else {
                "SELECT state FROM incidents ORDER BY id DESC LIMIT ?1"
            };
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map([limit as i64], |r| r.get::<_, String>(0))?;
            rows.map(|r| from_json(&r?)).collect()
        })
        .await
    }

    async fn journal(&self, id: i64) -> Result<Vec<JournalEntry>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT at, event, effects FROM journal WHERE incident_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            rows.map(|r| {
                let (at, event, effects) = r?;
                Ok(JournalEntry {
                    at,
                    event: from_json(&event)?,
                    effects: effects as usize,
                })
            })
            .collect()
        })
        .await
    }

    async fn outbox(&self, id: i64) -> Result<Vec<OutboxRow>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, effect, done, failed, attempts, last_error, created_at, done_at,
                        next_attempt_at
                 FROM outbox WHERE incident_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                    r.get::<_, i64>(8)?,
                ))
            })?;
            rows.map(|r| {
                let (id, effect, done, failed, attempts, last_error, created_at, done_at, next) =
                    r?;
                let state = OutboxRow::state_of(done, failed);
                Ok(OutboxRow {
                    id,
                    effect: from_json(&effect)?,
                    state,
                    attempts,
                    last_error,
                    created_at,
                    done_at,
                    next_attempt_at: (!done).then_some(next),
                })
            })
            .collect()
        })
        .await
    }

    async fn deadlines(&self) -> Result<Vec<(i64, Millis)>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, next_due FROM incidents WHERE next_due IS NOT NULL")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)
        })
        .await
    }

    async fn due(
        &self,
        now: Millis,
        limit: usize,
        skip: Vec<i64>,
    ) -> Result<(Vec<Pending>, Option<Millis>), StoreError> {
        self.call(move |conn| {
            // Heads only, in retry order: an index range of at most
            // `limit + skip` rows.
            let mut stmt = conn.prepare_cached(DUE_SELECT)?;
            let page = limit + skip.len();
            let mut rows = stmt.query(params![now, page as i64])?;
            let mut due = Vec::new();
            let mut next: Option<Millis> = None;
            let mut seen = 0;
            while let Some(r) = rows.next()? {
                seen += 1;
                let id: i64 = r.get(0)?;
                if skip.contains(&id) {
                    continue;
                }
                if due.len() >= limit {
                    next = Some(now); // more are due: come back at once
                    break;
                }
                due.push(Pending {
                    id,
                    effect: from_json(&r.get::<_, String>(1)?)?,
                    attempts: r.get(2)?,
                    maybe_sent: false,
                    created_at: r.get(3)?,
                    incident: from_json(&r.get::<_, String>(4)?)?,
                });
            }
            drop(rows);
            if seen == page {
                next = Some(now); // a full page: there may be more due
            }
            if next.is_none() {
                next = conn
                    .prepare_cached(
                        "SELECT MIN(next_attempt_at) FROM outbox WHERE done = 0 AND head = 1 AND next_attempt_at > ?1",
                    )?
                    .query_row([now], |r| r.get(0))?;
            }
            Ok((due, next))
        })
        .await
    }

    async fn complete(
        &self,
        row: i64,
        feedback: Event,
        now: Millis,
    ) -> Result<Option<Applied>, StoreError> {
        let (policy, voided) = (self.policy.clone(), self.voided.clone());
        self.call_ready(move |conn, ready| {
            let outcome = Settled::Delivered(&feedback);
            let voided = voided.load(Ordering::SeqCst);
            finish(conn, &policy.load(), row, outcome, now, voided, ready)
        })
        .await
    }

    async fn retry_later(&self, row: i64, at: Millis, error: String) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1 AND done = 0",
            )?
            .execute(params![row, at, error])?;
            Ok(())
        })
        .await
    }

    async fn fail(
        &self,
        row: i64,
        error: String,
        now: Millis,
    ) -> Result<Option<Applied>, StoreError> {
        let (policy, voided) = (self.policy.clone(), self.voided.clone());
        self.call_ready(move |conn, ready| {
            let outcome = Settled::Failed(&error);
            let voided = voided.load(Ordering::SeqCst);
            finish(conn, &policy.load(), row, outcome, now, voided, ready)
        })
        .await
    }

    async fn lease(
        &self,
        _holder: &str,
        _ttl: std::time::Duration,
    ) -> Result<Option<i64>, StoreError> {
        // One process owns the file: it is always the leader.
        Ok(Some(0))
    }

    async fn lease_holder(&self) -> Result<Option<(String, i64)>, StoreError> {
        Ok(None)
    }

    async fn stats(&self, now: Millis) -> Result<Stats, StoreError> {
        self.call(move |conn| read_stats(conn, now)).await
    }

    async fn prune(
        &self,
        before: Millis,
        deliveries_before: Millis,
        batch: usize,
        after: Option<PruneCursor>,
    ) -> Result<Pruned, StoreError> {
        let pruned = self
            .call(move |conn| space::prune_in(conn, before, deliveries_before, batch, after))
            .await?;
        // A job of its own, so intake queued meanwhile commits between the
        // deletes and the vacuum. Run after every batch: what one batch
        // leaves beyond its bound is handed back by the next ones.
        self.call(space::reclaim).await?;
        // The pass is over: a WAL it grew gives its space back.
        if pruned.finished
            && std::fs::metadata(&self.owner.wal).is_ok_and(|m| m.len() > WAL_KEPT)
            && let Some((asks, thread)) = &self.owner.checkpointer
        {
            asks.truncate
                .store(true, std::sync::atomic::Ordering::SeqCst);
            thread.thread().unpark();
        }
        Ok(pruned)
    }

    async fn watch_report(&self, report: Report) -> Result<(Report, bool), StoreError> {
        self.call(move |conn| reports::watch(conn, &report)).await
    }

    async fn report(&self, ticket: &str) -> Result<Option<Report>, StoreError> {
        let ticket = ticket.to_string();
        self.call(move |conn| reports::get(conn, &ticket)).await
    }

    async fn reports(&self, limit: usize) -> Result<Vec<Report>, StoreError> {
        self.call(move |conn| reports::list(conn, limit)).await
    }

    async fn change_report(
        &self,
        ticket: &str,
        change: ReportChange,
        now: Millis,
    ) -> Result<Option<Report>, StoreError> {
        let ticket = ticket.to_string();
        self.call(move |conn| reports::change(conn, &ticket, &change, now))
            .await
    }

    async fn change_h1(
        &self,
        id: &str,
        change: H1Change,
        delivery: Option<String>,
        now: Millis,
    ) -> Result<H1Applied, StoreError> {
        let id = id.to_string();
        self.call(move |conn| reports::h1_change(conn, &id, &change, delivery.as_deref(), now))
            .await
    }

    async fn h1_report(&self, id: &str) -> Result<Option<H1Report>, StoreError> {
        let id = id.to_string();
        self.call(move |conn| reports::h1_get(conn, &id)).await
    }

    async fn h1_reports(&self, limit: usize) -> Result<Vec<H1Report>, StoreError> {
        self.call(move |conn| reports::h1_list(conn, limit)).await
    }
}

/// The due lane heads, oldest retry first: an index range of the
/// `outbox_heads` partial index.
const DUE_SELECT: &str = "SELECT o.id, o.effect, o.attempts, o.created_at, i.state
    FROM outbox o JOIN incidents i ON i.id = o.incident_id
    WHERE o.done = 0 AND o.head = 1 AND o.next_attempt_at <= ?1
    ORDER BY o.next_attempt_at, o.id LIMIT ?2";

pub mod backup;
pub mod probe;
mod read;
#[cfg(test)]
use read::STATS;
pub use read::{open_reader, read_pending_times, read_stats};
mod reports;
mod schema;
mod space;
#[cfg(test)]
mod tests;
mod writer;

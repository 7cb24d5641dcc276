//! The writer thread: every write to the SQLite file, in groups.
//!
//! The thread takes every job already queued, runs them all in one
//! transaction and commits once. When a job of a group fails (rare: a full
//! disk, a corrupt row), the group is rolled back and each job runs again in
//! a transaction of its own, so one job's failure never undoes another's
//! work. (Savepoints per job did that too, at the price of copying every
//! page a job touched into a statement journal: an eighth of the daemon's
//! CPU in a burst.)
//!
//! **The page leaves before its commit is written, the timer's escalation
//! during the fsync.** Once every job of a group has run, the pages they
//! made deliverable go to the dispatcher; then the commit writes its WAL
//! frames without syncing them (`synchronous=NORMAL`), and the timer
//! escalations go; then the sync thread syncs the WAL (`fdatasync`), and
//! only then are the other rows handed off and the callers answered. So no
//! caller hears "done", and no customer comment or Slack post leaves,
//! before the data is on disk, exactly as with `synchronous=FULL`; but the
//! PagerDuty trigger is on its way while the commit is written (0.05 ms,
//! a tenth of the webhook → page p50) and synced (0.3 ms), and an
//! escalation while the disk syncs (up to 8 ms of its lateness when the
//! disk is slow: docs/benchmark.md). Those two are safe to send early,
//! because a crash, a power cut or a failed commit in that window loses the
//! commit but makes the same request come again, and the second one changes
//! nothing:
//!
//! - a page's `dedup_key` is the ticket's (`zendesk-<id>`): the ticket, not
//!   yet acknowledged to Zendesk, comes again (redelivery or the poller)
//!   and triggers the same key, which PagerDuty merges into the incident
//!   already open. A page whose commit failed has a row id SQLite would
//!   give again; no later row takes it (`voided`, in [`transaction`]), so
//!   the page's settlement, when it comes, finds no row and changes
//!   nothing;
//! - a timer's escalation is made again when the restarted daemon finds
//!   its deadline passed; the dispatcher marks one due before it started as
//!   maybe sent, and its delivery looks in PagerDuty's log for an
//!   escalation since the deadline before escalating
//!   (`dispatcher::due_before`). The note that goes with the escalation
//!   may then be written a second time; level 2 is not paged twice. An
//!   escalation waits for its commit to be written: one whose commit failed
//!   would be made again by the same daemon, without that look.
//!
//! A process crash after the commit is written loses nothing: the frames
//! are in the kernel's page cache.
//!
//! **The WAL starts again between tickets, not inside one.** Once a
//! checkpoint round has copied everything with no commit during it, the
//! checkpoint thread queues [`RestartWal`], whose commit takes the sync of
//! the log's new header that the next ticket's commit would otherwise wait
//! for.
//!
//! **The writer does not wait for the disk.** It hands each ended
//! transaction to the sync thread ([`syncer`]) and begins the next group at
//! once; one `fdatasync` then covers every commit written before it began.
//! So a burst commits while the last group syncs, instead of taking turns
//! with the disk. The answers keep the writer's order, reads included (a
//! read may see a commit not yet synced; it is answered after that sync).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::Deliverable;
use crate::engine::Effect;
use crate::store::{Pending, Ready, StoreError};

/// Most jobs committed together.
const MAX_GROUP: usize = 512;

/// A unit of work for the writer thread. It only touches the database, so
/// it can run more than once: [`Job::run`] again after a rollback must give
/// the answer the job's own transaction would have.
pub(super) trait Job: Send {
    /// Runs the work inside the current transaction; `false` if it failed
    /// (its writes must then be rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Hands off the rows of one [`Early`] kind the job made deliverable
    /// (see the module's doc); the highest row id handed off.
    fn send_early(&mut self, which: Early) -> Option<i64>;
    /// Answers the caller once the fate of the transaction is known (and
    /// hands off the job's other rows if it is durable).
    fn answer(self: Box<Self>, commit: Result<(), StoreError>);
    /// Until when its caller waits for a lock another connection holds:
    /// [`BUSY_TIMEOUT`](super::BUSY_TIMEOUT) from when it was asked,
    /// however many jobs were queued ahead of it. `None` for housekeeping
    /// that nobody waits for: alone in a group, it does not wait at all.
    fn deadline(&self) -> Option<Instant>;
}

/// A [`Job`] made of a closure, the caller's answer channel and, when the
/// store hands rows off, the rows the last run made deliverable.
pub(super) struct Work<F, T> {
    f: F,
    result: Option<Result<T, StoreError>>,
    rows: Option<Vec<Pending>>,
    hook: Option<Arc<dyn Ready>>,
    tx: oneshot::Sender<Result<T, StoreError>>,
    /// See [`Job::deadline`].
    deadline: Instant,
}

impl<F, T> Work<F, T> {
    /// A job running `f`, answering on `tx`, handing rows to `hook`.
    pub(super) fn new(
        f: F,
        hook: Option<Arc<dyn Ready>>,
        tx: oneshot::Sender<Result<T, StoreError>>,
    ) -> Work<F, T> {
        Work {
            f,
            result: None,
            rows: None,
            hook,
            tx,
            deadline: Instant::now() + super::BUSY_TIMEOUT,
        }
    }
}

impl<F, T> Job for Work<F, T>
where
    F: FnMut(&Connection, Deliverable<'_>) -> Result<T, StoreError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        // What an earlier run collected was rolled back with it.
        self.rows = self.hook.as_ref().map(|_| Vec::new());
        let result = (self.f)(conn, self.rows.as_mut());
        let keep = result.is_ok();
        self.result = Some(result);
        keep
    }

    fn send_early(&mut self, which: Early) -> Option<i64> {
        let (Some(hook), Some(rows), Some(Ok(_))) = (&self.hook, &mut self.rows, &self.result)
        else {
            return None;
        };
        let early: Vec<Pending> = rows.extract_if(.., |p| which.takes(&p.effect)).collect();
        let last = early.iter().map(|p| p.id).max();
        if !early.is_empty() {
            hook.ready(early);
        }
        last
    }

    fn answer(self: Box<Self>, commit: Result<(), StoreError>) {
        let Work {
            result,
            rows,
            hook,
            tx,
            ..
        } = *self;
        // Never run: no transaction could be begun (`commit` says why).
        let result = result.unwrap_or(Err(StoreError::Closed));
        if commit.is_ok()
            && result.is_ok()
            && let (Some(hook), Some(rows)) = (hook, rows)
            && !rows.is_empty()
        {
            hook.ready(rows);
        }
        let _ = tx.send(commit.and(result));
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.deadline)
    }
}

/// The rows that may leave before their commit is synced (see the
/// module's doc).
#[derive(Debug, Clone, Copy)]
pub(super) enum Early {
    /// Pages, before the commit is written.
    Pages,
    /// Escalations by the timer, once the commit is written.
    Escalations,
}

impl Early {
    fn takes(self, effect: &Effect) -> bool {
        match self {
            Early::Pages => matches!(effect, Effect::Page { .. }),
            Early::Escalations => matches!(effect, Effect::PageEscalate { due: Some(_), .. }),
        }
    }
}

/// Makes written commits durable: `fdatasync` of the WAL.
pub(super) type Sync = Box<dyn FnMut() -> std::io::Result<()> + Send>;

/// The usual [`Sync`]: the WAL beside the database, opened once SQLite made
/// it, again if it was replaced (it is not while the store is open; a check
/// costs one `stat`), and synced.
pub(super) fn sync_wal(wal: PathBuf) -> Sync {
    use std::os::unix::fs::MetadataExt as _;
    let mut open: Option<(std::fs::File, u64)> = None;
    Box::new(move || {
        let ino = std::fs::metadata(&wal)?.ino();
        let file = match open.take() {
            Some((file, was)) if was == ino => file,
            _ => std::fs::OpenOptions::new().write(true).open(&wal)?,
        };
        let synced = file.sync_data();
        open = Some((file, ino));
        synced
    })
}

/// A transaction the writer ended: its jobs wait in the sync thread for
/// their answers.
pub(super) struct Ended {
    jobs: Vec<Box<dyn Job>>,
    /// Whether the transaction changed a row (else there is nothing of its
    /// own to sync, but its answer may rest on earlier commits, so it is
    /// answered in turn, after them).
    wrote: bool,
}

/// The writer thread: group commit loop. Ends when every sender is gone;
/// then `synced` is dropped and the sync thread answers what is left.
pub(super) fn writer(
    conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    synced: std::sync::mpsc::Sender<Ended>,
    asks: &super::Checkpoints,
    voided: &AtomicI64,
) {
    let sync = |jobs: Vec<Box<dyn Job>>, wrote: bool| {
        if wrote {
            asks.written
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        // The sync thread outlives this one (it ends when `synced` is
        // dropped), so the send cannot fail while the writer runs.
        if let Err(std::sync::mpsc::SendError(ended)) = synced.send(Ended { jobs, wrote }) {
            for job in ended.jobs {
                job.answer(Err(StoreError::Closed));
            }
        }
    };
    // Jobs whose group gave up on a lock before their own wait was over.
    let mut carried: Vec<Box<dyn Job>> = Vec::new();
    loop {
        let mut group = std::mem::take(&mut carried);
        if group.is_empty() {
            match rx.blocking_recv() {
                Some(first) => group.push(first),
                None => break,
            }
        }
        if asks
            .restart
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            restart_wal(&conn);
        }
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        match transaction(&conn, &mut group, voided) {
            End::Committed { wrote } => sync(group, wrote),
            // Each caller hears why (its sender retries: a webhook gets
            // 503), once its own wait for the lock is over.
            End::Failed(e) => carried = give_up(group, &e),
            // The job's own error is its answer.
            End::JobFailed if group.len() == 1 => sync(group, false),
            // The others were undone with it: each again, alone.
            End::JobFailed => {
                for mut job in group {
                    match transaction(&conn, std::slice::from_mut(&mut job), voided) {
                        End::Failed(e) => job.answer(Err(e)),
                        End::Committed { wrote } => sync(vec![job], wrote),
                        End::JobFailed => sync(vec![job], false),
                    }
                }
            }
        }
    }
}

/// Answers `e` to the jobs of a group that could not commit, except, when
/// the group waited for a lock until its first deadline, those whose own
/// deadline is still ahead: returned, they wait on in the next group. So
/// a ticket queued behind a readiness probe waits for a lock another
/// connection holds its own [`BUSY_TIMEOUT`](super::BUSY_TIMEOUT), not the
/// probe's and then its own (up to 10 s, the HTTP layer's timeout). A
/// lock that SQLite reports busy before the wait is over (it can, without
/// waiting) is an answer for all. Each round answers at least the job whose
/// deadline ended the wait.
fn give_up(group: Vec<Box<dyn Job>>, e: &StoreError) -> Vec<Box<dyn Job>> {
    let now = Instant::now() + LATE;
    let waited_out =
        matches!(e, StoreError::Busy(_)) && first_deadline(&group).is_some_and(|d| d <= now);
    let mut carried = Vec::new();
    for job in group {
        match job.deadline() {
            Some(d) if waited_out && d > now => carried.push(job),
            _ => job.answer(Err(e.clone())),
        }
    }
    carried
}

/// How early SQLite's busy handler may give up before the timeout it was
/// set (it sleeps whole milliseconds), so a job is not waited for again.
const LATE: Duration = Duration::from_millis(10);

/// The least a job waits for a lock another connection holds, even when
/// its time went by in the queue: this store's own checkpoint thread holds
/// the lock for a sync when it cuts the WAL back.
const LEAST_WAIT: Duration = Duration::from_millis(100);

/// The first deadline of `jobs` (`None`: housekeeping alone).
fn first_deadline(jobs: &[Box<dyn Job>]) -> Option<Instant> {
    jobs.iter().filter_map(|job| job.deadline()).min()
}

/// The sync thread: makes what the writer committed durable and answers
/// its callers, in the order the writer ended their transactions. One
/// `fdatasync` covers every commit written before it began, so while it
/// runs the writer goes on with the next groups, and the next sync covers
/// them all. A caller is answered only after a sync that began after its
/// commit was written; one that could not be synced is an error for every
/// caller waiting on it.
pub(super) fn syncer(rx: std::sync::mpsc::Receiver<Ended>, mut sync: Sync) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let jobs: usize = batch.iter().map(|e| e.jobs.len()).sum();
        let end = if batch.iter().any(|e| e.wrote) {
            sync().map_err(|e| {
                let e = StoreError::io("cannot sync the write-ahead log to disk", e);
                tracing::error!(cause = %e, jobs, "store: a commit is written but not durable; every caller gets an error and retries");
                e
            })
        } else {
            Ok(())
        };
        for ended in batch {
            for job in ended.jobs {
                job.answer(end.clone());
            }
        }
    }
}

/// How a transaction ended.
enum End {
    /// Every job ran and the commit is written (`wrote`: a row changed).
    Committed { wrote: bool },
    /// A job failed: everything was rolled back.
    JobFailed,
    /// No transaction could be begun or its commit failed: nothing is
    /// promised.
    Failed(StoreError),
}

/// Runs `jobs` in one transaction, commits it if every one succeeds and
/// hands off what may leave early; the sync is the sync thread's. When the
/// commit fails after pages left, the highest of their ids goes into
/// `voided`.
fn transaction(conn: &Connection, jobs: &mut [Box<dyn Job>], voided: &AtomicI64) -> End {
    // A lock held elsewhere is waited for until the first caller's
    // deadline ([`give_up`]). Housekeeping alone (the WAL's restart) does
    // not wait, and is skipped when it fails: no caller waits for it, and
    // the next commit does its work.
    let first = first_deadline(jobs);
    let housekeeping = first.is_none();
    let wait = first.map_or(Duration::ZERO, |d| {
        d.saturating_duration_since(Instant::now()).max(LEAST_WAIT)
    });
    let _ = conn.busy_timeout(wait);
    if let Err(e) = begin(conn) {
        if housekeeping {
            tracing::debug!(cause = %e, "store: housekeeping skipped (the next commit does its work)");
        } else {
            tracing::error!(cause = %e, jobs = jobs.len(), "store: cannot begin a transaction");
        }
        return End::Failed(e);
    }
    let changes = conn.total_changes();
    for job in jobs.iter_mut() {
        if !job.run(conn) {
            // Some errors (a full disk) have rolled back already.
            let undone = run(conn, "ROLLBACK");
            if let (Err(e), false) = (undone, conn.is_autocommit()) {
                let e = StoreError::sqlite("rollback failed", e);
                tracing::error!(cause = %e, "store: cannot roll back a failed job");
                return End::Failed(e);
            }
            return End::JobFailed;
        }
    }
    // A read, or space given back (no row changed), has nothing to sync
    // (the next commit's sync or a checkpoint covers it), and no page.
    let wrote = conn.total_changes() != changes;
    let paged = if wrote {
        jobs.iter_mut()
            .filter_map(|job| job.send_early(Early::Pages))
            .max()
    } else {
        None
    };
    if let Err(e) = run(conn, "COMMIT") {
        if let Some(last) = paged {
            // The pages are on their way; their rows are not. No later row
            // takes their ids, so their settlements change nothing.
            voided.fetch_max(last, Ordering::SeqCst);
            tracing::warn!(
                last_row = last,
                "store: pages left before a commit that then failed; their tickets come again and PagerDuty merges them by dedup_key"
            );
        }
        if housekeeping {
            tracing::warn!(cause = %e, "store: housekeeping could not commit; skipped (the next commit does its work)");
        } else {
            tracing::error!(cause = %e, jobs = jobs.len(), "store: commit failed; every caller gets an error and retries");
        }
        let _ = conn.execute_batch("ROLLBACK");
        return End::Failed(StoreError::sqlite("commit failed", e));
    }
    if wrote {
        for job in jobs.iter_mut() {
            job.send_early(Early::Escalations);
        }
    }
    End::Committed { wrote }
}

/// Copies what the WAL holds into the database, between two groups: with
/// no commit in between, the next one writes the WAL from its start (see
/// [`super::WAL_RESTART`]). Little is left to copy (the checkpoint thread
/// has just copied the rest), so this holds the writer up for about two
/// syncs: the WAL's and the database file's. A reader still on the old log,
/// or an error, only puts the restart off to a later round.
fn restart_wal(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(cause = %e, "store: cannot copy the WAL before restarting it; will retry");
    }
}

/// Starts the WAL again from its beginning, in a commit of its own, while
/// the writer is idle (sent by the checkpoint thread once a round has
/// copied everything with no commit during it). SQLite restarts the log
/// in the first commit that begins with everything copied, and syncs the
/// log's new header inside that commit, before writing its frames (else a
/// power cut could replay old frames over newer pages). On an idle daemon
/// that first commit was the next ticket's, whose page then waited for an
/// `fsync` before it could leave (docs/benchmark.md). This job takes that
/// sync instead; its commit writes a header field that nothing reads
/// (`user_version`, set to what it was), changes no row, and so is not
/// synced again nor counted as a write.
pub(super) struct RestartWal;

impl Job for RestartWal {
    fn run(&mut self, conn: &Connection) -> bool {
        let same = conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .and_then(|v| conn.pragma_update(None, "user_version", v));
        if let Err(e) = &same {
            tracing::warn!(cause = %e, "store: cannot restart the WAL; the next commit will");
        }
        same.is_ok()
    }

    fn send_early(&mut self, _: Early) -> Option<i64> {
        None
    }

    fn answer(self: Box<Self>, _: Result<(), StoreError>) {}

    /// With the database locked elsewhere, the next commit restarts the
    /// WAL instead (tried once, not for the busy timeout).
    fn deadline(&self) -> Option<Instant> {
        None
    }
}

/// `BEGIN IMMEDIATE`, with the reason it could not be taken.
fn begin(conn: &Connection) -> Result<(), StoreError> {
    run(conn, "BEGIN IMMEDIATE").map_err(|e| {
        let busy = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        if busy {
            StoreError::Busy(format!(
                "the database is locked by another connection (a sqlite3 shell, a backup?) \
                 for longer than the busy timeout: {e}"
            ))
        } else {
            StoreError::sqlite("cannot begin a transaction", e)
        }
    })
}

/// Runs one statement without parameters, prepared once (transaction
/// control, on every group and job).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.raw_execute().map(|_| ())
}

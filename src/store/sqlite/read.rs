//! The store's counts and reads that may run on any connection: the
//! daemon runs them on a read-only one ([`open_reader`]), off the writer
//! thread, so `/metrics` and the start never queue behind commits.

use std::path::Path;

use rusqlite::Connection;

use crate::clock::Millis;
use crate::store::{Stats, StoreError};

/// The counts of [`read_stats`]: every incident; the open and the
/// acknowledged ones; the pending outbox rows and the oldest; the rows given
/// up; the incidents with an undeliverable page. Each reads an index, not
/// the table (test `the_start_counts_read_indexes_not_tables`): on a store
/// of a million incidents the tables are most of the file, and start waits
/// for these counts.
pub(crate) const STATS: [&str; 5] = [
    "SELECT COUNT(*) FROM incidents",
    "SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'acknowledged')
     FROM incidents WHERE status != 'resolved'",
    "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE done = 0",
    "SELECT COUNT(*) FROM outbox WHERE failed = 1",
    "SELECT COUNT(*) FROM incidents WHERE undeliverable = 1",
];

/// The counts of [`Store::stats`](crate::store::Store::stats), on any connection (the daemon also runs
/// them on a read-only one, off the writer thread: see [`open_reader`]).
pub fn read_stats(conn: &Connection, now: Millis) -> Result<Stats, StoreError> {
    let [all, open, pending, failed, undeliverable] = STATS;
    let incidents: i64 = conn.query_row(all, [], |r| r.get(0))?;
    let (open, acknowledged): (i64, i64) =
        conn.query_row(open, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (pending, oldest): (i64, Option<i64>) =
        conn.query_row(pending, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let failed: i64 = conn.query_row(failed, [], |r| r.get(0))?;
    let undeliverable: i64 = conn.query_row(undeliverable, [], |r| r.get(0))?;
    Ok(Stats {
        open_incidents: open as u64,
        acknowledged_incidents: acknowledged as u64,
        incidents: incidents as u64,
        pending_effects: pending as u64,
        failed_effects: failed as u64,
        undeliverable: undeliverable as u64,
        oldest_pending_ms: oldest.map_or(0, |o| (now - o).max(0)),
    })
}

/// When the pending outbox rows were queued: `created_at → count`, oldest
/// first, at most `limit` distinct instants.
pub fn read_pending_times(
    conn: &Connection,
    limit: usize,
) -> Result<std::collections::BTreeMap<Millis, u64>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT created_at, COUNT(*) FROM outbox WHERE done = 0
         GROUP BY created_at ORDER BY created_at LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    rows.collect::<Result<_, _>>().map_err(StoreError::from)
}

/// A read-only connection to the database at `path`, for readers that must
/// not queue behind the writer thread (WAL lets them read while it writes).
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let ctx = |e: rusqlite::Error| StoreError::sqlite(path.display().to_string(), e);
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(ctx)?;
    conn.busy_timeout(std::time::Duration::from_secs(1))
        .map_err(ctx)?;
    Ok(conn)
}

//! How the SQLite store gives space back: incremental auto-vacuum (and the
//! one-time conversion of an old file at start), and retention's batches
//! on the writer thread (what may go, deleted with what belongs to it).

use std::path::Path;

use rusqlite::{Connection, params};

use super::*;

/// Largest database that is converted to incremental auto-vacuum at start
/// (a one-time `VACUUM`, which rewrites the whole file: about a second for
/// this size). Larger files keep their size and reuse freed pages.
pub(super) const VACUUM_AT_START_MAX: i64 = 64 << 20;

/// Most free pages handed back to the file system per prune batch (4 MiB
/// of 4 KiB pages, about 5 batches' worth): bounds the time the batch's
/// vacuum holds the writer (a few ms per 200 pages).
pub(super) const RECLAIM_PAGES: i64 = 1024;

/// How a file made before incremental auto-vacuum (pagerd 0.1 and 0.2)
/// reclaims space. SQLite can switch `auto_vacuum` on an existing file only
/// with a `VACUUM`, which rewrites the file and blocks every write while it
/// runs: done once at start when the file is small; a larger file is left
/// as it is, where the pages retention frees are reused by new rows (the
/// file stops growing but does not shrink) until an operator runs the
/// offline conversion the README gives.
pub(super) fn space(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let ctx = |e: rusqlite::Error| StoreError::sqlite(path.display().to_string(), e);
    let mode: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .map_err(ctx)?;
    if mode != 0 {
        return Ok(());
    }
    let size: i64 = conn
        .query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get(0),
        )
        .map_err(ctx)?;
    if size > VACUUM_AT_START_MAX {
        tracing::info!(
            path = %path.display(),
            mb = size >> 20,
            "store: this database file predates incremental auto-vacuum: space freed by retention \
             is reused by new rows but the file does not shrink (see the README, Retention)"
        );
        return Ok(());
    }
    let t0 = std::time::Instant::now();
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
        .map_err(ctx)?;
    tracing::info!(
        path = %path.display(),
        mb = size >> 20,
        ms = t0.elapsed().as_millis() as u64,
        "store: converted the database file to incremental auto-vacuum (one-time VACUUM)"
    );
    Ok(())
}

/// The resolved incidents a retention batch examines, each with whether it
/// may go: walks the `incidents_resolved` index from the cursor; every
/// condition of [`Store::prune`] is an index lookup (the ticket's status is
/// read from the row it already holds).
pub(super) const PRUNE_SELECT: &str = "SELECT i.id, i.updated_at,
        i.next_due IS NULL
        AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.incident_id = i.id AND o.done = 0)
        AND (json_extract(i.state, '$.ticket.status') IN ('solved', 'closed')
             OR EXISTS (SELECT 1 FROM incidents l
                        WHERE l.ticket_id = i.ticket_id AND l.episode > i.episode))
    FROM incidents i
    WHERE i.status = 'resolved' AND i.updated_at < ?1 AND (i.updated_at, i.id) > (?2, ?3)
    ORDER BY i.updated_at, i.id LIMIT ?4";

/// One retention batch on the writer thread (see [`Store::prune`]).
pub(super) fn prune_in(
    conn: &Connection,
    before: Millis,
    deliveries_before: Millis,
    batch: usize,
    after: Option<PruneCursor>,
) -> Result<Pruned, StoreError> {
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let (after_at, after_id) = after.unwrap_or((Millis::MIN, i64::MIN));
    // Walks the `incidents_resolved` index; the conditions of the doc
    // comment, each an index lookup.
    let mut stmt = conn.prepare_cached(PRUNE_SELECT)?;
    let rows = stmt.query_map(params![before, after_at, after_id, limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, bool>(2)?,
        ))
    })?;
    let mut out = Pruned {
        next: after,
        ..Pruned::default()
    };
    let mut doomed = Vec::new();
    for row in rows {
        let (id, updated_at, prunable) = row?;
        out.examined += 1;
        out.next = Some((updated_at, id));
        if prunable {
            doomed.push(id);
        }
    }
    drop(stmt);
    let mut journal = conn.prepare_cached("DELETE FROM journal WHERE incident_id = ?1")?;
    let mut outbox = conn.prepare_cached("DELETE FROM outbox WHERE incident_id = ?1")?;
    let mut incident = conn.prepare_cached("DELETE FROM incidents WHERE id = ?1")?;
    for id in doomed {
        out.journal += journal.execute([id])? as u64;
        out.outbox += outbox.execute([id])? as u64;
        out.incidents += incident.execute([id])? as u64;
    }
    out.deliveries = conn
        .prepare_cached(
            "DELETE FROM deliveries WHERE rowid IN
             (SELECT rowid FROM deliveries WHERE at < ?1 LIMIT ?2)",
        )?
        .execute(params![deliveries_before, limit])? as u64;
    out.finished = out.examined < batch as u64 && out.deliveries < batch as u64;
    Ok(out)
}

/// Hands up to [`RECLAIM_PAGES`] free pages back to the file system when
/// the file uses incremental auto-vacuum; returns how many were free.
pub(super) fn reclaim(conn: &Connection) -> Result<i64, StoreError> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode != 2 {
        return Ok(0);
    }
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    if free > 0 {
        // Stepped to the end: each step hands back one page (a single
        // step, as `execute_batch` does, would free just one).
        let mut stmt = conn.prepare(&format!(
            "PRAGMA incremental_vacuum({})",
            free.min(RECLAIM_PAGES)
        ))?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
    }
    Ok(free)
}

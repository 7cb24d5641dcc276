//! The SQLite schema, and the migrations from what older pagerd versions
//! left on disk. A store is opened by: reading `meta.schema_version`,
//! migrating step by step from it, then creating whatever is missing.

use rusqlite::{Connection, OptionalExtension};

use crate::store::StoreError;

/// Newest schema this build knows.
pub(super) const SCHEMA_VERSION: i64 = 5;

/// The whole schema at [`SCHEMA_VERSION`] (every statement idempotent).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL,
    -- 1 for a ticket's first emergency, 2 after it came back, ...
    episode INTEGER NOT NULL DEFAULT 1,
    dedup_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    next_due INTEGER,
    opened_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- 1 while the incident is open and its page or escalation failed for good.
    undeliverable INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    UNIQUE (ticket_id, episode)
);
CREATE INDEX IF NOT EXISTS incidents_next_due ON incidents(next_due) WHERE next_due IS NOT NULL;
CREATE INDEX IF NOT EXISTS incidents_open ON incidents(id) WHERE status != 'resolved';
CREATE INDEX IF NOT EXISTS incidents_undeliverable ON incidents(id) WHERE undeliverable = 1;
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    effects INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_incident ON journal(incident_id, id);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    lane TEXT NOT NULL,
    effect TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    done_at INTEGER,
    -- 1 on the oldest pending row of its (incident, lane): the only one that
    -- may be delivered now. Kept up to date on insert and on completion, so
    -- finding due rows costs what it returns, not the size of the backlog.
    head INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(incident_id, lane, id) WHERE done = 0;
CREATE INDEX IF NOT EXISTS outbox_heads ON outbox(next_attempt_at, id) WHERE done = 0 AND head = 1;
CREATE INDEX IF NOT EXISTS outbox_incident ON outbox(incident_id, id);
-- Counted at every start (`read_stats`): an index, so the count does not
-- read the table. Built on any older file by its first open; no version.
CREATE INDEX IF NOT EXISTS outbox_failed ON outbox(id) WHERE failed = 1;
CREATE TABLE IF NOT EXISTS deliveries (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (source, id)
);
-- Schema 3: retention walks resolved incidents oldest first and deletes
-- old delivery ids.
CREATE INDEX IF NOT EXISTS incidents_resolved ON incidents(updated_at, id) WHERE status = 'resolved';
CREATE INDEX IF NOT EXISTS deliveries_at ON deliveries(at);
-- Schema 4: HackerOne reports (crate::reports), one row per ticket.
CREATE TABLE IF NOT EXISTS reports (
    ticket_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    url TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    respond_by INTEGER NOT NULL,
    remind_at INTEGER NOT NULL,
    -- waiting, reminded, overdue, answered
    state TEXT NOT NULL,
    -- reminder or overdue while its Slack post may be in flight
    posting TEXT,
    reminder_channel TEXT,
    reminder_ts TEXT,
    answered_at INTEGER,
    paged_at INTEGER,
    seen_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- Schema 5: the HackerOne report id the ticket names (crate::reports::h1).
    h1_report TEXT
);
-- Schema 5: what HackerOne's own webhook said, one row per HackerOne report.
CREATE TABLE IF NOT EXISTS h1_reports (
    report_id TEXT PRIMARY KEY,
    closed_at INTEGER,
    closure TEXT,
    disclosure_requested_at INTEGER,
    disclosed_at INTEGER,
    -- closed or disclosure while its Slack post may be in flight
    posting TEXT,
    -- posted or ticket_done, once the closure reminder is settled
    close_notice TEXT,
    disclosure_reminded_at INTEGER,
    seen_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
";

/// Schema 1 (pagerd 0.1.0) to 2: a ticket may have several incidents (one
/// per episode), so `ticket_id` is no longer unique; each incident records
/// what PagerDuty accepted (`paged_at`, `escalated_at`) and what it refused
/// for good (`undeliverable`), filled in from the outbox for old incidents.
/// SQLite cannot drop a UNIQUE constraint: the table is rebuilt, with
/// foreign keys off (the caller's job) and inside one transaction.
const V1_TO_V2: &str = "
CREATE TABLE incidents_v2 (
    id INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL,
    episode INTEGER NOT NULL DEFAULT 1,
    dedup_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    next_due INTEGER,
    opened_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    undeliverable INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    UNIQUE (ticket_id, episode)
);
INSERT INTO incidents_v2(id, ticket_id, episode, dedup_key, status, next_due, opened_at, updated_at, state)
    SELECT id, ticket_id, 1, dedup_key, status, next_due, opened_at, updated_at, state FROM incidents;
DROP TABLE incidents;
ALTER TABLE incidents_v2 RENAME TO incidents;
UPDATE incidents SET state = json_set(state, '$.paged_at', (
    SELECT MIN(o.done_at) FROM outbox o WHERE o.incident_id = incidents.id AND o.done = 1
        AND o.failed = 0 AND json_extract(o.effect, '$.type') = 'pagerduty_trigger'))
WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.incident_id = incidents.id AND o.done = 1
        AND o.failed = 0 AND json_extract(o.effect, '$.type') = 'pagerduty_trigger');
UPDATE incidents SET state = json_set(state, '$.escalated_at', (
    SELECT MIN(o.done_at) FROM outbox o WHERE o.incident_id = incidents.id AND o.done = 1
        AND o.failed = 0 AND json_extract(o.effect, '$.type') = 'pagerduty_escalate'))
WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.incident_id = incidents.id AND o.done = 1
        AND o.failed = 0 AND json_extract(o.effect, '$.type') = 'pagerduty_escalate');
UPDATE incidents SET undeliverable = 1, state = json_set(state, '$.undeliverable', (
    SELECT json_extract(o.effect, '$.type') || ' failed: ' || COALESCE(o.last_error, '')
    FROM outbox o WHERE o.incident_id = incidents.id AND o.failed = 1
        AND json_extract(o.effect, '$.type') IN ('pagerduty_trigger', 'pagerduty_escalate')
    ORDER BY o.id LIMIT 1))
WHERE status != 'resolved' AND EXISTS (SELECT 1 FROM outbox o WHERE o.incident_id = incidents.id
        AND o.failed = 1 AND json_extract(o.effect, '$.type') IN ('pagerduty_trigger', 'pagerduty_escalate'));
";

// Schema 2 to 3 (retention) only adds the two indexes at the end of
// [`SCHEMA`], which creating "whatever is missing" builds on an old file:
// no statement of its own. Building them reads the incidents table once.
// Schema 3 to 4 (HackerOne reports) likewise only adds the `reports` table.
// Schema 4 to 5 (HackerOne's webhook) adds the `h1_reports` table, and the
// `h1_report` column to a `reports` table schema 4 made (below: SQLite has
// no `ADD COLUMN IF NOT EXISTS`).

/// Brings the database to [`SCHEMA_VERSION`]; refuses a newer one. The
/// closing write of the version also proves at start that the disk takes
/// writes, not at the first emergency.
pub(super) fn migrate(conn: &Connection, path: &str) -> Result<(), StoreError> {
    let ctx = |e: rusqlite::Error| StoreError::sqlite(path, e);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )
    .map_err(ctx)?;
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key='schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(ctx)?;
    let version = version.and_then(|v| v.parse::<i64>().ok());
    if let Some(v) = version
        && v > SCHEMA_VERSION
    {
        return Err(StoreError::Unusable(format!(
            "{path}: schema version {v} is newer than this pagerd knows ({SCHEMA_VERSION}); upgrade pagerd"
        )));
    }
    if version == Some(1) {
        // Foreign keys cannot be switched inside a transaction.
        conn.execute_batch("PRAGMA foreign_keys=OFF").map_err(ctx)?;
        let done = conn
            .execute_batch(&format!("BEGIN IMMEDIATE; {V1_TO_V2} COMMIT;"))
            .map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                StoreError::sqlite(format!("{path}: cannot migrate schema 1 to 2"), e)
            });
        conn.execute_batch("PRAGMA foreign_keys=ON").map_err(ctx)?;
        done?;
        tracing::info!(path, "store: migrated the SQLite schema from 1 to 2");
    }
    if version == Some(2) {
        tracing::info!(
            path,
            "store: migrating the SQLite schema from 2 to 3 (retention indexes; this reads every incident once)"
        );
    }
    if version.is_some_and(|v| v < 4) {
        tracing::info!(
            path,
            "store: migrating the SQLite schema to 4 (the reports table of HackerOne reports)"
        );
    }
    if version.is_some_and(|v| v < 5) {
        tracing::info!(
            path,
            "store: migrating the SQLite schema to 5 (HackerOne's webhook: the h1_reports table)"
        );
    }
    add_h1_column(conn).map_err(ctx)?;
    conn.execute_batch(SCHEMA).map_err(ctx)?;
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [SCHEMA_VERSION.to_string()],
    )
    .map_err(ctx)?;
    Ok(())
}

/// Adds `reports.h1_report` to a `reports` table without it (made by
/// schema 4). Looked up rather than keyed on the version, so a migration
/// cut off after this step runs again cleanly.
fn add_h1_column(conn: &Connection) -> Result<(), rusqlite::Error> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('reports')")?;
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if !columns.is_empty() && !columns.iter().any(|c| c == "h1_report") {
        conn.execute_batch("ALTER TABLE reports ADD COLUMN h1_report TEXT")?;
    }
    Ok(())
}

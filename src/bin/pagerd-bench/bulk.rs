//! A store of a million incidents in a minute, for the flood phase: a
//! template seeded through the library, then copied in SQL.
//!
//! Seeding a million incidents one ticket at a time through
//! `Store::apply` (four transactions per incident: opened, paged, solved,
//! resolve delivered) takes the store's writer thread about 0.4 ms of CPU
//! per incident: 7 minutes on an idle core, far more on this shared
//! machine. So [`seed`] applies only a template through the library,
//! [`TEMPLATE`] old resolved incidents and [`TEMPLATE`] open ones (a
//! quarter of each in a store smaller than four templates)
//! ([`crate::seed::seed_aged`]: the daemon's own transactions at the
//! history's times), and then copies those rows as many times as needed in
//! one SQL transaction on the closed store (rollback journal,
//! `synchronous=OFF`: only this scratch file is at stake; WAL is switched
//! back on at the end). Each copy gets its own incident, journal and
//! outbox ids and its own ticket number, written into every column and JSON
//! field that holds them (`ticket_id`, `dedup_key`, the state's `id`,
//! `dedup_key` and ticket, the journal's ticket events, the page's
//! summary), and copies of old incidents are moved one minute apart in
//! time (every time column and JSON time field). The rows are otherwise
//! byte for byte what the daemon wrote for the template's tickets, in the
//! daemon's own schema (created by `SqliteStore::open`, incremental
//! auto-vacuum included), so the result is what that many real tickets
//! leave. The store is then opened through the library and its counts and
//! armed deadlines checked.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pagerd::clock::{Clock, SystemClock};
use pagerd::engine::Policy;
use pagerd::store::{SqliteStore, Store};
use rusqlite::named_params;

use crate::seed::{self, Aged};

/// Old and open incidents in the template (one seeding batch each).
pub const TEMPLATE: usize = 2000;

/// Time between two copies of the old incidents.
const COPY_SHIFT_MS: i64 = 60_000;

/// The copy numbers: which template rows each copies (old or open), and
/// the offsets of its ticket numbers, times and incident, journal and
/// outbox ids. The template's old incidents were applied before its open
/// ones, so each kind's rows have ids in a range of their own: copies of
/// old rows follow each other, then copies of open rows, ids dense.
const COPIES: &str = "
CREATE TEMP TABLE copies AS
WITH RECURSIVE s(c) AS (SELECT 0 UNION ALL SELECT c + 1 FROM s WHERE c + 1 < :copies)
SELECT c,
       c < :kn_old AS old,
       CASE WHEN c < :kn_old THEN c * :t_old ELSE (c - :kn_old) * :t_open END AS dt,
       CASE WHEN c < :kn_old THEN c * :shift ELSE 0 END AS sh,
       CASE WHEN c < :kn_old THEN c * :old_i
            ELSE :kn_old * :old_i + (c - :kn_old) * :span_i - :below_i END AS di,
       CASE WHEN c < :kn_old THEN c * :old_j
            ELSE :kn_old * :old_j + (c - :kn_old) * :span_j - :below_j END AS dj,
       CASE WHEN c < :kn_old THEN c * :old_b
            ELSE :kn_old * :old_b + (c - :kn_old) * :span_b - :below_b END AS db
FROM s;
";

/// Every incident to write: copy, template incident, new id and ticket.
const MAP: &str = "
CREATE TEMP TABLE map AS
SELECT c.c AS c, i.id AS iid, i.id + c.di AS nid, i.ticket_id AS tid,
       CAST(CAST(i.ticket_id AS INTEGER) + c.dt AS TEXT) AS ntid, c.sh AS sh
FROM copies c CROSS JOIN t.incidents i
WHERE (i.status = 'resolved') = c.old
  AND CAST(i.ticket_id AS INTEGER) + c.dt < CASE WHEN c.old THEN :end_old ELSE :end_all END
ORDER BY c.c, i.id;
CREATE INDEX temp.map_copy ON map(c, iid);
";

const INCIDENTS: &str = "
INSERT INTO main.incidents(id, ticket_id, episode, dedup_key, status, next_due, opened_at,
                           updated_at, undeliverable, state)
SELECT m.nid, m.ntid, i.episode, 'zendesk-' || m.ntid, i.status, i.next_due, i.opened_at + m.sh,
       i.updated_at + m.sh, i.undeliverable,
       json_set(i.state,
         '$.id', m.nid,
         '$.dedup_key', 'zendesk-' || m.ntid,
         '$.ticket.id', m.ntid,
         '$.ticket.title', replace(json_extract(i.state, '$.ticket.title'), '#' || m.tid || ')', '#' || m.ntid || ')'),
         '$.ticket.url', replace(json_extract(i.state, '$.ticket.url'), '/' || m.tid, '/' || m.ntid),
         '$.opened_at', json_extract(i.state, '$.opened_at') + m.sh,
         '$.paged_at', json_extract(i.state, '$.paged_at') + m.sh,
         '$.resolved', CASE WHEN json_extract(i.state, '$.resolved') IS NULL THEN NULL
                       ELSE json_array(json_extract(i.state, '$.resolved[0]'),
                                       json_extract(i.state, '$.resolved[1]') + m.sh) END)
FROM temp.map m CROSS JOIN t.incidents i ON i.id = m.iid;
";

/// Journal rows in the order of their new ids (copy, then template id), so
/// the table is appended to as the daemon appends to it.
const JOURNAL: &str = "
INSERT INTO main.journal(id, incident_id, at, event, effects)
SELECT j.id + c.dj, m.nid, j.at + m.sh,
       CASE WHEN json_extract(j.event, '$.ticket.id') IS NULL THEN j.event
       ELSE json_set(j.event,
         '$.ticket.id', m.ntid,
         '$.ticket.title', replace(json_extract(j.event, '$.ticket.title'), '#' || m.tid || ')', '#' || m.ntid || ')'),
         '$.ticket.url', replace(json_extract(j.event, '$.ticket.url'), '/' || m.tid, '/' || m.ntid)) END,
       j.effects
FROM temp.copies c CROSS JOIN t.journal j CROSS JOIN temp.map m
WHERE m.c = c.c AND m.iid = j.incident_id;
";

const OUTBOX: &str = "
INSERT INTO main.outbox(id, incident_id, lane, effect, created_at, next_attempt_at, attempts,
                        last_error, done, failed, done_at, head)
SELECT o.id + c.db, m.nid, o.lane,
       replace(replace(o.effect, '#' || m.tid || ':', '#' || m.ntid || ':'), '#' || m.tid || ')', '#' || m.ntid || ')'),
       o.created_at + m.sh, o.next_attempt_at + m.sh, o.attempts, o.last_error, o.done, o.failed,
       o.done_at + m.sh, o.head
FROM temp.copies c CROSS JOIN t.outbox o CROSS JOIN temp.map m
WHERE m.c = c.c AND m.iid = o.incident_id;
";

/// `(largest id of the old incidents' rows, smallest and largest id of the
/// open incidents' rows)` in a template table; `incident` names the column
/// holding the incident id.
fn ranges(
    conn: &rusqlite::Connection,
    table: &str,
    incident: &str,
) -> anyhow::Result<(i64, i64, i64)> {
    let sql = format!(
        "SELECT COALESCE(MAX(CASE WHEN i.status = 'resolved' THEN x.id END), 0),
                COALESCE(MIN(CASE WHEN i.status != 'resolved' THEN x.id END), 1),
                COALESCE(MAX(CASE WHEN i.status != 'resolved' THEN x.id END), 0)
         FROM t.{table} x JOIN t.incidents i ON i.id = x.{incident}"
    );
    let r = conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    anyhow::ensure!(
        r.2 < r.1 || r.0 < r.1,
        "the template's {table} rows of old and open incidents overlap"
    );
    Ok(r)
}

/// Copies the template at `template` into the fresh store at `path`.
/// Ticket numbers are `first ..` (old) and `first + n_old ..` (open).
fn copy(
    path: &Path,
    template: &Path,
    first: u64,
    n_old: usize,
    n_open: usize,
    t_old: usize,
    t_open: usize,
) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("delete"), "journal mode {mode}");
    conn.execute_batch(
        "PRAGMA synchronous=OFF; PRAGMA cache_size=-262144; PRAGMA temp_store=MEMORY;",
    )?;
    conn.execute("ATTACH ?1 AS t", [template.display().to_string()])?;
    let count = |sql: &str| -> anyhow::Result<i64> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
    anyhow::ensure!(
        count("SELECT COUNT(*) FROM t.deliveries")? == 0,
        "the template has webhook delivery ids; the copy does not handle them"
    );
    let (oi, li, hi) = ranges(&conn, "incidents", "id")?;
    let (oj, lj, hj) = ranges(&conn, "journal", "incident_id")?;
    let (ob, lb, hb) = ranges(&conn, "outbox", "incident_id")?;
    let kn_old = n_old.div_ceil(t_old.max(1));
    let kn_open = n_open.div_ceil(t_open.max(1));
    let as_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    let first = i64::try_from(first)?;
    conn.execute_batch("BEGIN")?;
    conn.execute(
        COPIES,
        named_params! {
            ":copies": as_i64(kn_old + kn_open),
            ":kn_old": as_i64(kn_old),
            ":t_old": as_i64(t_old),
            ":t_open": as_i64(t_open),
            ":shift": COPY_SHIFT_MS,
            ":old_i": oi, ":span_i": hi - li + 1, ":below_i": li - 1,
            ":old_j": oj, ":span_j": hj - lj + 1, ":below_j": lj - 1,
            ":old_b": ob, ":span_b": hb - lb + 1, ":below_b": lb - 1,
        },
    )?;
    let map = MAP
        .replace(":end_old", &(first + as_i64(n_old)).to_string())
        .replace(":end_all", &(first + as_i64(n_old + n_open)).to_string());
    conn.execute_batch(&map)?;
    conn.execute(INCIDENTS, [])?;
    conn.execute(JOURNAL, [])?;
    conn.execute(OUTBOX, [])?;
    conn.execute_batch("DROP TABLE temp.map; DROP TABLE temp.copies; COMMIT; DETACH t;")?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "journal mode {mode}");
    Ok(())
}

/// Seeds `path` with `ids.len()` incidents: the last `open` opened now with
/// their ack deadline armed, the others opened and resolved about `age`
/// ago. `ids` must be consecutive.
pub async fn seed(
    path: &Path,
    ids: &[u64],
    open: usize,
    age: Duration,
    policy: Policy,
) -> anyhow::Result<Aged> {
    let t0 = Instant::now();
    let open = open.min(ids.len());
    let n_old = ids.len() - open;
    anyhow::ensure!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "bulk seeding needs consecutive ticket ids"
    );
    let first = ids.first().copied().unwrap_or(1);
    // At least four copies of each kind even in a small store, so the copy
    // runs whatever the size (the smoke test).
    let template = |n: usize| n.div_ceil(4).min(TEMPLATE);
    let (t_old, t_open) = (template(n_old), template(open));
    let template_db = path.with_file_name("template.db");
    let template_ids: Vec<u64> = ids[..t_old]
        .iter()
        .chain(&ids[n_old..n_old + t_open])
        .copied()
        .collect();
    seed::seed_aged(&template_db, &template_ids, t_open, age, policy.clone()).await?;
    let template_ms = t0.elapsed().as_secs_f64() * 1e3;
    // The daemon's schema, as the daemon makes it.
    drop(SqliteStore::open(path, Arc::new(policy.clone())).map_err(|e| anyhow::anyhow!("{e}"))?);
    let t1 = Instant::now();
    {
        let (path, template) = (path.to_path_buf(), template_db.clone());
        tokio::task::spawn_blocking(move || {
            copy(&path, &template, first, n_old, open, t_old, t_open)
        })
        .await
        .context("the copy task panicked")?
        .context("cannot copy the template")?;
    }
    let copy_ms = t1.elapsed().as_secs_f64() * 1e3;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", template_db.display()));
    }
    let _ = std::fs::remove_file(template_db.with_extension("lock"));
    // Checked through the library, as the daemon will read it.
    let store = SqliteStore::open(path, Arc::new(policy)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let stats = store.stats(SystemClock.now()).await?;
    let armed = store.deadlines().await?.len();
    drop(store);
    anyhow::ensure!(
        stats.incidents as usize == ids.len()
            && stats.open_incidents as usize == open
            && stats.pending_effects == 0
            && armed == open,
        "the copied store has {} incidents ({} open, {armed} with deadlines) and {} pending \
         effects; expected {} ({open} open)",
        stats.incidents,
        stats.open_incidents,
        stats.pending_effects,
        ids.len()
    );
    Ok(Aged {
        incidents: ids.len(),
        resolved: n_old,
        open,
        age_days: age.as_secs_f64() / 86_400.0,
        took_ms: t0.elapsed().as_secs_f64() * 1e3,
        template: t_old + t_open,
        template_ms,
        copy_ms,
    })
}

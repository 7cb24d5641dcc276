//! The statements of each store operation, run inside the transaction the
//! caller opened. They mirror `sqlite.rs` step for step; the differences are
//! the ones several writers need (delivery first, row locks, the creation
//! race) and are commented where they happen.

use deadpool_postgres::Transaction;
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use super::Fail;
use crate::clock::Millis;
use crate::engine::{Effect, EffectKind, Event, Incident, Policy};
use crate::store::decide;
use crate::store::{
    Applied, Change, Intake, JournalEntry, OutboxRow, Pending, PruneCursor, Pruned, Stats,
    StoreError, Target,
};

fn to_json<T: Serialize>(v: &T) -> Result<String, Fail> {
    serde_json::to_string(v).map_err(|e| Fail::Store(StoreError::Corrupt(e.to_string())))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, Fail> {
    serde_json::from_str(s).map_err(|e| Fail::Store(StoreError::Corrupt(e.to_string())))
}

/// Column `i` of `row`; a type mismatch is a corrupt row.
pub(super) fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, Fail> {
    row.try_get(i)
        .map_err(|e| Fail::Store(StoreError::Corrupt(e.to_string())))
}

/// Runs a cached statement and returns its rows.
pub(super) async fn query(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Fail> {
    let stmt = tx.prepare_cached(sql).await.map_err(Fail::pg("prepare"))?;
    tx.query(&stmt, params).await.map_err(Fail::pg("query"))
}

/// Runs a cached statement and returns its one row, if any.
pub(super) async fn query_opt(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, Fail> {
    let stmt = tx.prepare_cached(sql).await.map_err(Fail::pg("prepare"))?;
    tx.query_opt(&stmt, params).await.map_err(Fail::pg("query"))
}

/// Runs a cached statement that always returns one row (an aggregate, an
/// `INSERT … RETURNING`); none is a corrupt store, named by `what`.
pub(super) async fn query_one(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    what: &str,
) -> Result<Row, Fail> {
    query_opt(tx, sql, params)
        .await?
        .ok_or_else(|| Fail::Store(StoreError::Corrupt(format!("{what} returned no row"))))
}

/// Runs a cached statement and returns how many rows it touched.
pub(super) async fn execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, Fail> {
    let stmt = tx.prepare_cached(sql).await.map_err(Fail::pg("prepare"))?;
    tx.execute(&stmt, params).await.map_err(Fail::pg("write"))
}

/// Loads an incident; with `lock`, also locks it until the transaction
/// ends, so concurrent events of one incident apply one after the other.
pub(super) async fn load(
    tx: &Transaction<'_>,
    target: &Target,
    lock: bool,
) -> Result<Option<Incident>, Fail> {
    let (sql, key): (&str, &(dyn ToSql + Sync)) = match (target, lock) {
        // The ticket's latest episode.
        (Target::Ticket(t), false) => (
            "SELECT state FROM incidents WHERE ticket_id = $1 ORDER BY episode DESC LIMIT 1",
            t,
        ),
        (Target::Ticket(t), true) => (
            "SELECT state FROM incidents WHERE ticket_id = $1 ORDER BY episode DESC LIMIT 1 FOR UPDATE",
            t,
        ),
        (Target::Incident(id), false) => ("SELECT state FROM incidents WHERE id = $1", id),
        (Target::Incident(id), true) => {
            ("SELECT state FROM incidents WHERE id = $1 FOR UPDATE", id)
        }
        (Target::DedupKey(k), false) => ("SELECT state FROM incidents WHERE dedup_key = $1", k),
        (Target::DedupKey(k), true) => (
            "SELECT state FROM incidents WHERE dedup_key = $1 FOR UPDATE",
            k,
        ),
    };
    match query_opt(tx, sql, &[key]).await? {
        Some(row) => from_json(col::<&str>(&row, 0)?).map(Some),
        None => Ok(None),
    }
}

/// The engine step inside a transaction: dedup, lock, decide, persist.
///
/// [`Fail::Race`] when another instance created the incident meanwhile: the
/// caller rolls back and runs it again, and then finds that incident.
pub(super) async fn apply_in(
    tx: &Transaction<'_>,
    policy: &Policy,
    intake: &Intake,
    now: Millis,
) -> Result<Applied, Fail> {
    if let Some((source, id)) = &intake.delivery {
        // First, so a twin delivery on another instance waits on this row's
        // unique index until we commit, then finds it.
        let fresh = execute(
            tx,
            "INSERT INTO deliveries(source, id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[source, id, &now],
        )
        .await?;
        if fresh == 0 {
            let incident = load(tx, &intake.target, false).await?;
            return Ok(Applied {
                result: Change::Replayed,
                version: version(tx, incident.as_ref()).await?,
                incident,
                effects: 0,
                undeliverable_delta: 0,
            });
        }
    }
    let current = load(tx, &intake.target, true).await?;
    let (mut incident, effects, created, undeliverable_delta) =
        match decide(policy, current, &intake.event, now) {
            Ok(decided) => decided,
            Err(mut unchanged) => {
                unchanged.version = version(tx, unchanged.incident.as_ref()).await?;
                return Ok(unchanged);
            }
        };
    if created {
        // No conflict target: a twin may collide on (ticket_id, episode) or
        // dedup_key.
        let episode = i32::try_from(incident.episode).unwrap_or(i32::MAX);
        let row = query_opt(
            tx,
            "INSERT INTO incidents(ticket_id, dedup_key, status, next_due, opened_at, updated_at, state, episode)
             VALUES ($1, $2, $3, $4, $5, $5, '{}', $6) ON CONFLICT DO NOTHING RETURNING id",
            &[
                &incident.ticket.id,
                &incident.dedup_key,
                &incident.status.as_str(),
                &incident.deadlines.next(),
                &now,
                &episode,
            ],
        )
        .await?;
        let Some(row) = row else {
            return Err(Fail::Race);
        };
        incident.id = col(&row, 0)?;
    }
    execute(
        tx,
        "UPDATE incidents SET status = $2, next_due = $3, updated_at = $4, state = $5, undeliverable = $6
         WHERE id = $1",
        &[
            &incident.id,
            &incident.status.as_str(),
            &incident.deadlines.next(),
            &now,
            &to_json(&incident)?,
            &incident.is_undeliverable(),
        ],
    )
    .await?;
    let count = i32::try_from(effects.len()).unwrap_or(i32::MAX);
    let row = query_one(
        tx,
        "INSERT INTO journal(incident_id, at, event, effects) VALUES ($1, $2, $3, $4) RETURNING id",
        &[&incident.id, &now, &to_json(&intake.event)?, &count],
        "a journal insert",
    )
    .await?;
    let version: i64 = col(&row, 0)?;
    for effect in &effects {
        execute(
            tx,
            "INSERT INTO outbox(incident_id, lane, effect, created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $4)",
            &[
                &incident.id,
                &effect.lane().as_str(),
                &to_json(effect)?,
                &now,
            ],
        )
        .await?;
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

/// Marks row `row` done; applies `feedback` to its incident when it was
/// still pending. `None` when it was done already.
pub(super) async fn finish(
    tx: &Transaction<'_>,
    policy: &Policy,
    row: i64,
    failed: Option<&str>,
    feedback: impl FnOnce(EffectKind) -> Event,
    now: Millis,
) -> Result<Option<Applied>, Fail> {
    // Locked, so two reports of one row cannot both apply their feedback.
    let Some(found) = query_opt(
        tx,
        "SELECT incident_id, effect FROM outbox WHERE id = $1 AND NOT done FOR UPDATE",
        &[&row],
    )
    .await?
    else {
        return Ok(None);
    };
    let incident_id: i64 = col(&found, 0)?;
    let effect: Effect = from_json(col::<&str>(&found, 1)?)?;
    execute(
        tx,
        "UPDATE outbox SET done = true, failed = $2, done_at = $3, last_error = $4,
         attempts = attempts + 1 WHERE id = $1",
        &[&row, &failed.is_some(), &now, &failed],
    )
    .await?;
    let intake = Intake {
        target: Target::Incident(incident_id),
        event: feedback(effect.kind()),
        delivery: None,
    };
    apply_in(tx, policy, &intake, now).await.map(Some)
}

/// Records a failed attempt; the row is due again at `at`.
pub(super) async fn retry_later(
    tx: &Transaction<'_>,
    row: i64,
    at: Millis,
    error: &str,
) -> Result<(), Fail> {
    execute(
        tx,
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3
         WHERE id = $1 AND NOT done",
        &[&row, &at, &error],
    )
    .await?;
    Ok(())
}

/// The head of every (incident, lane), not in flight, earliest retry first.
/// The heads come from the partial index `outbox_pending` alone; only the
/// rows returned are read from the tables.
const DUE: &str = "
WITH heads AS (
    SELECT DISTINCT ON (incident_id, lane) id, next_attempt_at
      FROM outbox
     WHERE NOT done
     ORDER BY incident_id, lane, id
), picked AS (
    SELECT id, next_attempt_at
      FROM heads
     WHERE id <> ALL($1::bigint[])
     ORDER BY next_attempt_at, id
     LIMIT $2
)
SELECT o.id, o.effect, o.attempts, o.created_at, i.state, o.next_attempt_at
  FROM picked p
  JOIN outbox o ON o.id = p.id
  JOIN incidents i ON i.id = o.incident_id
 ORDER BY p.next_attempt_at, p.id";

/// Up to `limit` deliverable effects and the earliest future retry (`now`
/// when more are due than `limit`), as `sqlite.rs` computes them.
pub(super) async fn due(
    tx: &Transaction<'_>,
    now: Millis,
    limit: usize,
    skip: &[i64],
) -> Result<(Vec<Pending>, Option<Millis>), Fail> {
    // One row past the limit tells "more are due" from "next retry at".
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    let rows = query(tx, DUE, &[&skip, &fetch]).await?;
    let mut due = Vec::new();
    let mut next: Option<Millis> = None;
    for r in &rows {
        let at: Millis = col(r, 5)?;
        if at > now {
            next = Some(at);
            break; // ordered by next_attempt_at: the rest are later still
        }
        if due.len() >= limit {
            next = Some(now);
            break;
        }
        due.push(Pending {
            id: col(r, 0)?,
            effect: from_json(col::<&str>(r, 1)?)?,
            attempts: u32::try_from(col::<i32>(r, 2)?).unwrap_or(0),
            maybe_sent: false,
            created_at: col(r, 3)?,
            incident: from_json(col::<&str>(r, 4)?)?,
        });
    }
    Ok((due, next))
}

/// Incidents, newest first.
pub(super) async fn list(
    tx: &Transaction<'_>,
    open_only: bool,
    limit: usize,
) -> Result<Vec<Incident>, Fail> {
    let sql = if open_only {
        "SELECT state FROM incidents WHERE status <> 'resolved' ORDER BY id DESC LIMIT $1"
    } else {
        "SELECT state FROM incidents ORDER BY id DESC LIMIT $1"
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    query(tx, sql, &[&limit])
        .await?
        .iter()
        .map(|r| from_json(col::<&str>(r, 0)?))
        .collect()
}

/// An incident's journal, oldest first.
pub(super) async fn journal(tx: &Transaction<'_>, id: i64) -> Result<Vec<JournalEntry>, Fail> {
    query(
        tx,
        "SELECT at, event, effects FROM journal WHERE incident_id = $1 ORDER BY id",
        &[&id],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(JournalEntry {
            at: col(r, 0)?,
            event: from_json(col::<&str>(r, 1)?)?,
            effects: usize::try_from(col::<i32>(r, 2)?).unwrap_or(0),
        })
    })
    .collect()
}

/// An incident's outbox rows, oldest first.
pub(super) async fn outbox(tx: &Transaction<'_>, id: i64) -> Result<Vec<OutboxRow>, Fail> {
    query(
        tx,
        "SELECT id, effect, done, failed, attempts, last_error, created_at, done_at,
                next_attempt_at
         FROM outbox WHERE incident_id = $1 ORDER BY id",
        &[&id],
    )
    .await?
    .iter()
    .map(|r| {
        let done = col::<bool>(r, 2)?;
        let state = OutboxRow::state_of(done, col::<bool>(r, 3)?);
        Ok(OutboxRow {
            id: col(r, 0)?,
            effect: from_json(col::<&str>(r, 1)?)?,
            state,
            attempts: u32::try_from(col::<i32>(r, 4)?).unwrap_or(0),
            last_error: col(r, 5)?,
            created_at: col(r, 6)?,
            done_at: col(r, 7)?,
            next_attempt_at: if done { None } else { Some(col(r, 8)?) },
        })
    })
    .collect()
}

/// Every armed deadline.
pub(super) async fn deadlines(tx: &Transaction<'_>) -> Result<Vec<(i64, Millis)>, Fail> {
    query(
        tx,
        "SELECT id, next_due FROM incidents WHERE next_due IS NOT NULL ORDER BY id",
        &[],
    )
    .await?
    .iter()
    .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
    .collect()
}

/// Counts for metrics.
pub(super) async fn stats(tx: &Transaction<'_>, now: Millis) -> Result<Stats, Fail> {
    let r = &query_one(
        tx,
        "SELECT (SELECT COUNT(*) FROM incidents),
                (SELECT COUNT(*) FROM incidents WHERE status <> 'resolved'),
                (SELECT COUNT(*) FROM outbox WHERE NOT done),
                (SELECT MIN(created_at) FROM outbox WHERE NOT done),
                (SELECT COUNT(*) FROM outbox WHERE failed),
                (SELECT COUNT(*) FROM incidents WHERE undeliverable),
                (SELECT COUNT(*) FROM incidents WHERE status = 'acknowledged')",
        &[],
        "stats",
    )
    .await?;
    let count = |i| col::<i64>(r, i).map(|n| u64::try_from(n).unwrap_or(0));
    let oldest: Option<i64> = col(r, 3)?;
    Ok(Stats {
        incidents: count(0)?,
        open_incidents: count(1)?,
        acknowledged_incidents: count(6)?,
        pending_effects: count(2)?,
        failed_effects: count(4)?,
        undeliverable: count(5)?,
        oldest_pending_ms: oldest.map_or(0, |o| (now - o).max(0)),
    })
}

/// One retention batch (see [`crate::store::Store::prune`]). The incidents
/// are locked `SKIP LOCKED`: one an instance is applying an event to right
/// now is left for the next pass, never waited for, and an event that comes
/// after waits on the lock, then finds no incident. An incident changed
/// after this statement's snapshot no longer passes `updated_at < before`
/// when it is locked (every change sets `updated_at`), so the conditions
/// hold for what is deleted.
pub(super) async fn prune(
    tx: &Transaction<'_>,
    before: Millis,
    deliveries_before: Millis,
    batch: usize,
    after: Option<PruneCursor>,
) -> Result<Pruned, Fail> {
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let (after_at, after_id) = after.unwrap_or((Millis::MIN, i64::MIN));
    let rows = query(
        tx,
        "SELECT i.id, i.updated_at,
                i.next_due IS NULL
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.incident_id = i.id AND NOT o.done)
                AND (i.state::jsonb -> 'ticket' ->> 'status' IN ('solved', 'closed')
                     OR EXISTS (SELECT 1 FROM incidents l
                                WHERE l.ticket_id = i.ticket_id AND l.episode > i.episode))
         FROM incidents i
         WHERE i.status = 'resolved' AND i.updated_at < $1
           AND (i.updated_at, i.id) > ($2::BIGINT, $3::BIGINT)
         ORDER BY i.updated_at, i.id LIMIT $4
         FOR UPDATE OF i SKIP LOCKED",
        &[&before, &after_at, &after_id, &limit],
    )
    .await?;
    let mut out = Pruned {
        next: after,
        ..Pruned::default()
    };
    let mut doomed: Vec<i64> = Vec::new();
    for row in &rows {
        let id: i64 = col(row, 0)?;
        out.examined += 1;
        out.next = Some((col(row, 1)?, id));
        if col::<bool>(row, 2)? {
            doomed.push(id);
        }
    }
    if !doomed.is_empty() {
        out.journal = execute(
            tx,
            "DELETE FROM journal WHERE incident_id = ANY($1)",
            &[&doomed],
        )
        .await?;
        out.outbox = execute(
            tx,
            "DELETE FROM outbox WHERE incident_id = ANY($1)",
            &[&doomed],
        )
        .await?;
        out.incidents = execute(tx, "DELETE FROM incidents WHERE id = ANY($1)", &[&doomed]).await?;
    }
    out.deliveries = execute(
        tx,
        "DELETE FROM deliveries WHERE (source, id) IN
         (SELECT source, id FROM deliveries WHERE at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        &[&deliveries_before, &limit],
    )
    .await?;
    out.finished = out.examined < batch as u64 && out.deliveries < batch as u64;
    Ok(out)
}

/// The version of `incident` as stored (see [`Applied::version`]).
async fn version(tx: &Transaction<'_>, incident: Option<&Incident>) -> Result<i64, Fail> {
    let Some(incident) = incident else {
        return Ok(0);
    };
    let row = query_one(
        tx,
        "SELECT COALESCE(MAX(id), 0) FROM journal WHERE incident_id = $1",
        &[&incident.id],
        "the journal's last id",
    )
    .await?;
    col(&row, 0)
}

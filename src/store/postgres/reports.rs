//! The `reports` table of the PostgreSQL store (HackerOne reports, schema
//! 4), mirroring `sqlite/reports.rs`. A change locks its row (`FOR
//! UPDATE`), so instances recording a reply and a reminder at once apply
//! them one after the other.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::Fail;
use super::ops::{col, execute, query, query_opt};
use crate::clock::Millis;
use crate::reports::{Notice, Report, ReportChange, ReportState, Thread};
use crate::store::StoreError;

/// The columns of a report, in [`from_row`]'s order.
const COLUMNS: &str = "ticket_id, title, url, created_at, respond_by, remind_at, state, posting, \
                       reminder_channel, reminder_ts, answered_at, paged_at, seen_at, updated_at";

fn from_row(r: &Row) -> Result<Report, Fail> {
    let corrupt =
        |what: &str, v: &str| Fail::Store(StoreError::Corrupt(format!("report {what} {v:?}")));
    let state: String = col(r, 6)?;
    let posting: Option<String> = col(r, 7)?;
    let channel: Option<String> = col(r, 8)?;
    let ts: Option<String> = col(r, 9)?;
    Ok(Report {
        ticket: col(r, 0)?,
        title: col(r, 1)?,
        url: col(r, 2)?,
        created_at: col(r, 3)?,
        respond_by: col(r, 4)?,
        remind_at: col(r, 5)?,
        state: ReportState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        posting: match posting {
            None => None,
            Some(p) => Some(Notice::parse(&p).ok_or_else(|| corrupt("posting", &p))?),
        },
        reminder: channel.zip(ts).map(|(channel, ts)| Thread { channel, ts }),
        answered_at: col(r, 10)?,
        paged_at: col(r, 11)?,
        seen_at: col(r, 12)?,
        updated_at: col(r, 13)?,
    })
}

/// The report of `ticket`; with `lock`, locked until the transaction ends.
pub(super) async fn get(
    tx: &Transaction<'_>,
    ticket: &str,
    lock: bool,
) -> Result<Option<Report>, Fail> {
    let sql = if lock {
        format!("SELECT {COLUMNS} FROM reports WHERE ticket_id = $1 FOR UPDATE")
    } else {
        format!("SELECT {COLUMNS} FROM reports WHERE ticket_id = $1")
    };
    match query_opt(tx, &sql, &[&ticket]).await? {
        Some(row) => from_row(&row).map(Some),
        None => Ok(None),
    }
}

/// Up to `limit` reports, oldest deadline first.
pub(super) async fn list(tx: &Transaction<'_>, limit: usize) -> Result<Vec<Report>, Fail> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = query(
        tx,
        &format!("SELECT {COLUMNS} FROM reports ORDER BY respond_by, ticket_id LIMIT $1"),
        &[&limit],
    )
    .await?;
    rows.iter().map(from_row).collect()
}

/// Inserts `report` unless its ticket has one (a twin on another instance
/// waits on the primary key, then does nothing); returns the stored one.
pub(super) async fn watch(tx: &Transaction<'_>, report: &Report) -> Result<(Report, bool), Fail> {
    let inserted = execute(
        tx,
        &format!(
            "INSERT INTO reports({COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (ticket_id) DO NOTHING"
        ),
        &[
            &report.ticket,
            &report.title,
            &report.url,
            &report.created_at,
            &report.respond_by,
            &report.remind_at,
            &report.state.as_str(),
            &report.posting.map(Notice::as_str),
            &report.reminder.as_ref().map(|t| t.channel.as_str()),
            &report.reminder.as_ref().map(|t| t.ts.as_str()),
            &report.answered_at,
            &report.paged_at,
            &report.seen_at,
            &report.updated_at,
        ],
    )
    .await?;
    let stored = get(tx, &report.ticket, false).await?.ok_or_else(|| {
        Fail::Store(StoreError::Corrupt(format!(
            "report {} vanished",
            report.ticket
        )))
    })?;
    Ok((stored, inserted == 1))
}

/// Applies `change` to the locked report of `ticket`.
pub(super) async fn change(
    tx: &Transaction<'_>,
    ticket: &str,
    change: &ReportChange,
    now: Millis,
) -> Result<Option<Report>, Fail> {
    let Some(current) = get(tx, ticket, true).await? else {
        return Ok(None);
    };
    let Some(next) = current.apply(change, now) else {
        return Ok(Some(current));
    };
    execute(
        tx,
        "UPDATE reports SET state = $2, posting = $3, reminder_channel = $4, reminder_ts = $5,
                answered_at = $6, paged_at = $7, updated_at = $8
         WHERE ticket_id = $1",
        &[
            &next.ticket,
            &next.state.as_str(),
            &next.posting.map(Notice::as_str),
            &next.reminder.as_ref().map(|t| t.channel.as_str()),
            &next.reminder.as_ref().map(|t| t.ts.as_str()),
            &next.answered_at,
            &next.paged_at,
            &next.updated_at,
        ],
    )
    .await?;
    Ok(Some(next))
}

//! The `reports` table of the SQLite store (HackerOne reports, schema 4):
//! the statements behind [`Store::watch_report`] and its siblings, run on
//! the writer thread like every other job.
//!
//! [`Store::watch_report`]: crate::store::Store::watch_report

use rusqlite::{Connection, Row, params};

use crate::clock::Millis;
use crate::reports::{Notice, Report, ReportChange, ReportState, Thread};
use crate::store::StoreError;

/// The columns of a report, in [`from_row`]'s order.
const COLUMNS: &str = "ticket_id, title, url, created_at, respond_by, remind_at, state, posting, \
                       reminder_channel, reminder_ts, answered_at, paged_at, seen_at, updated_at";

fn from_row(r: &Row<'_>) -> Result<Report, StoreError> {
    let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("report {what} {v:?}"));
    let state: String = r.get(6)?;
    let posting: Option<String> = r.get(7)?;
    let channel: Option<String> = r.get(8)?;
    let ts: Option<String> = r.get(9)?;
    Ok(Report {
        ticket: r.get(0)?,
        title: r.get(1)?,
        url: r.get(2)?,
        created_at: r.get(3)?,
        respond_by: r.get(4)?,
        remind_at: r.get(5)?,
        state: ReportState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        posting: match posting {
            None => None,
            Some(p) => Some(Notice::parse(&p).ok_or_else(|| corrupt("posting", &p))?),
        },
        reminder: channel.zip(ts).map(|(channel, ts)| Thread { channel, ts }),
        answered_at: r.get(10)?,
        paged_at: r.get(11)?,
        seen_at: r.get(12)?,
        updated_at: r.get(13)?,
    })
}

/// The report of `ticket`.
pub(super) fn get(conn: &Connection, ticket: &str) -> Result<Option<Report>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM reports WHERE ticket_id = ?1"
    ))?;
    let mut rows = stmt.query([ticket])?;
    match rows.next()? {
        Some(r) => from_row(r).map(Some),
        None => Ok(None),
    }
}

/// Up to `limit` reports, oldest deadline first.
pub(super) fn list(conn: &Connection, limit: usize) -> Result<Vec<Report>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM reports ORDER BY respond_by, ticket_id LIMIT ?1"
    ))?;
    let mut rows = stmt.query([i64::try_from(limit).unwrap_or(i64::MAX)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// Inserts `report` unless its ticket has one; returns the stored one.
pub(super) fn watch(conn: &Connection, report: &Report) -> Result<(Report, bool), StoreError> {
    let inserted = conn
        .prepare_cached(&format!(
            "INSERT INTO reports({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT(ticket_id) DO NOTHING"
        ))?
        .execute(params![
            report.ticket,
            report.title,
            report.url,
            report.created_at,
            report.respond_by,
            report.remind_at,
            report.state.as_str(),
            report.posting.map(Notice::as_str),
            report.reminder.as_ref().map(|t| &t.channel),
            report.reminder.as_ref().map(|t| &t.ts),
            report.answered_at,
            report.paged_at,
            report.seen_at,
            report.updated_at,
        ])?;
    let stored = get(conn, &report.ticket)?
        .ok_or_else(|| StoreError::Corrupt(format!("report {} vanished", report.ticket)))?;
    Ok((stored, inserted == 1))
}

/// Applies `change` to the report of `ticket` (the writer thread makes it
/// atomic: nothing else runs between the read and the write).
pub(super) fn change(
    conn: &Connection,
    ticket: &str,
    change: &ReportChange,
    now: Millis,
) -> Result<Option<Report>, StoreError> {
    let Some(current) = get(conn, ticket)? else {
        return Ok(None);
    };
    let Some(next) = current.apply(change, now) else {
        return Ok(Some(current));
    };
    conn.prepare_cached(
        "UPDATE reports SET state = ?2, posting = ?3, reminder_channel = ?4, reminder_ts = ?5,
                answered_at = ?6, paged_at = ?7, updated_at = ?8
         WHERE ticket_id = ?1",
    )?
    .execute(params![
        next.ticket,
        next.state.as_str(),
        next.posting.map(Notice::as_str),
        next.reminder.as_ref().map(|t| &t.channel),
        next.reminder.as_ref().map(|t| &t.ts),
        next.answered_at,
        next.paged_at,
        next.updated_at,
    ])?;
    Ok(Some(next))
}

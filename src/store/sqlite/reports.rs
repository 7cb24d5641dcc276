//! The `reports` table of the SQLite store (HackerOne reports, schema 4):
//! the statements behind [`Store::watch_report`] and its siblings, run on
//! the writer thread like every other job.
//!
//! [`Store::watch_report`]: crate::store::Store::watch_report

use rusqlite::{Connection, Row, params};

use crate::clock::Millis;
use crate::reports::h1::{
    CloseNotice, H1Applied, H1Change, H1Notice, H1Report, closure_str, parse_closure,
};
use crate::reports::{Notice, Report, ReportChange, ReportState, Thread};
use crate::store::StoreError;

/// The columns of a report, in [`from_row`]'s order.
const COLUMNS: &str = "ticket_id, title, url, created_at, respond_by, remind_at, state, posting, \
                       reminder_channel, reminder_ts, answered_at, paged_at, seen_at, updated_at, \
                       h1_report";

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
        h1_report: r.get(14)?,
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
            "INSERT INTO reports({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
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
            report.h1_report,
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
                answered_at = ?6, paged_at = ?7, updated_at = ?8, h1_report = ?9
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
        next.h1_report,
    ])?;
    Ok(Some(next))
}

// ---- HackerOne's own events (`h1_reports`, schema 5) -------------------

/// The columns of an [`H1Report`], in [`h1_from_row`]'s order.
const H1_COLUMNS: &str = "report_id, closed_at, closure, disclosure_requested_at, disclosed_at, \
                          posting, close_notice, disclosure_reminded_at, seen_at, updated_at";

fn h1_from_row(r: &Row<'_>) -> Result<H1Report, StoreError> {
    let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("h1 report {what} {v:?}"));
    let closure: Option<String> = r.get(2)?;
    let posting: Option<String> = r.get(5)?;
    let close_notice: Option<String> = r.get(6)?;
    Ok(H1Report {
        id: r.get(0)?,
        closed_at: r.get(1)?,
        closure: match closure {
            None => None,
            Some(c) => Some(parse_closure(&c).ok_or_else(|| corrupt("closure", &c))?),
        },
        disclosure_requested_at: r.get(3)?,
        disclosed_at: r.get(4)?,
        posting: match posting {
            None => None,
            Some(p) => Some(H1Notice::parse(&p).ok_or_else(|| corrupt("posting", &p))?),
        },
        close_notice: match close_notice {
            None => None,
            Some(n) => Some(CloseNotice::parse(&n).ok_or_else(|| corrupt("close_notice", &n))?),
        },
        disclosure_reminded_at: r.get(7)?,
        seen_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

/// The HackerOne report `id`.
pub(super) fn h1_get(conn: &Connection, id: &str) -> Result<Option<H1Report>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {H1_COLUMNS} FROM h1_reports WHERE report_id = ?1"
    ))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => h1_from_row(r).map(Some),
        None => Ok(None),
    }
}

/// Up to `limit` HackerOne reports, most recently changed first.
pub(super) fn h1_list(conn: &Connection, limit: usize) -> Result<Vec<H1Report>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {H1_COLUMNS} FROM h1_reports ORDER BY updated_at DESC, report_id LIMIT ?1"
    ))?;
    let mut rows = stmt.query([i64::try_from(limit).unwrap_or(i64::MAX)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(h1_from_row(r)?);
    }
    Ok(out)
}

/// Applies `change` to HackerOne report `id` (created when first heard
/// of), once per `delivery` id (`X-H1-Delivery`): the delivery is recorded
/// in the same transaction as the change.
pub(super) fn h1_change(
    conn: &Connection,
    id: &str,
    change: &H1Change,
    delivery: Option<&str>,
    now: Millis,
) -> Result<H1Applied, StoreError> {
    let current = h1_get(conn, id)?;
    if let Some(d) = delivery {
        let inserted = conn
            .prepare_cached(
                "INSERT INTO deliveries(source, id, at) VALUES ('hackerone', ?1, ?2)
                 ON CONFLICT(source, id) DO NOTHING",
            )?
            .execute(params![d, now])?;
        if inserted == 0 {
            return Ok(H1Applied {
                report: current.unwrap_or_else(|| H1Report::new(id, now)),
                changed: false,
                replayed: true,
            });
        }
    }
    let base = current.clone().unwrap_or_else(|| H1Report::new(id, now));
    let Some(next) = base.apply(change, now) else {
        return Ok(H1Applied {
            report: base,
            changed: false,
            replayed: false,
        });
    };
    conn.prepare_cached(&format!(
        "INSERT INTO h1_reports({H1_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(report_id) DO UPDATE SET closed_at = excluded.closed_at,
             closure = excluded.closure, disclosure_requested_at = excluded.disclosure_requested_at,
             disclosed_at = excluded.disclosed_at, posting = excluded.posting,
             close_notice = excluded.close_notice,
             disclosure_reminded_at = excluded.disclosure_reminded_at,
             updated_at = excluded.updated_at"
    ))?
    .execute(params![
        next.id,
        next.closed_at,
        next.closure.map(closure_str),
        next.disclosure_requested_at,
        next.disclosed_at,
        next.posting.map(H1Notice::as_str),
        next.close_notice.map(CloseNotice::as_str),
        next.disclosure_reminded_at,
        next.seen_at,
        next.updated_at,
    ])?;
    Ok(H1Applied {
        report: next,
        changed: true,
        replayed: false,
    })
}

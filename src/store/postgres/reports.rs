//! The `reports` table of the PostgreSQL store (HackerOne reports, schema
//! 4), mirroring `sqlite/reports.rs`. A change locks its row (`FOR
//! UPDATE`), so instances recording a reply and a reminder at once apply
//! them one after the other.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::End;
use super::Fail;
use super::ops::{col, execute, query, query_opt};
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
        h1_report: col(r, 14)?,
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
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
            &report.h1_report,
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
                answered_at = $6, paged_at = $7, updated_at = $8, h1_report = $9
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
            &next.h1_report,
        ],
    )
    .await?;
    Ok(Some(next))
}

// ---- HackerOne's own events (`h1_reports`, schema 5) -------------------

/// The columns of an [`H1Report`], in [`h1_from_row`]'s order.
const H1_COLUMNS: &str = "report_id, closed_at, closure, disclosure_requested_at, disclosed_at, \
                          posting, close_notice, disclosure_reminded_at, seen_at, updated_at";

fn h1_from_row(r: &Row) -> Result<H1Report, Fail> {
    let corrupt =
        |what: &str, v: &str| Fail::Store(StoreError::Corrupt(format!("h1 report {what} {v:?}")));
    let closure: Option<String> = col(r, 2)?;
    let posting: Option<String> = col(r, 5)?;
    let close_notice: Option<String> = col(r, 6)?;
    Ok(H1Report {
        id: col(r, 0)?,
        closed_at: col(r, 1)?,
        closure: match closure {
            None => None,
            Some(c) => Some(parse_closure(&c).ok_or_else(|| corrupt("closure", &c))?),
        },
        disclosure_requested_at: col(r, 3)?,
        disclosed_at: col(r, 4)?,
        posting: match posting {
            None => None,
            Some(p) => Some(H1Notice::parse(&p).ok_or_else(|| corrupt("posting", &p))?),
        },
        close_notice: match close_notice {
            None => None,
            Some(n) => Some(CloseNotice::parse(&n).ok_or_else(|| corrupt("close_notice", &n))?),
        },
        disclosure_reminded_at: col(r, 7)?,
        seen_at: col(r, 8)?,
        updated_at: col(r, 9)?,
    })
}

/// HackerOne report `id`; with `lock`, locked until the transaction ends.
pub(super) async fn h1_get(
    tx: &Transaction<'_>,
    id: &str,
    lock: bool,
) -> Result<Option<H1Report>, Fail> {
    let sql = if lock {
        format!("SELECT {H1_COLUMNS} FROM h1_reports WHERE report_id = $1 FOR UPDATE")
    } else {
        format!("SELECT {H1_COLUMNS} FROM h1_reports WHERE report_id = $1")
    };
    match query_opt(tx, &sql, &[&id]).await? {
        Some(row) => h1_from_row(&row).map(Some),
        None => Ok(None),
    }
}

/// Up to `limit` HackerOne reports, most recently changed first.
pub(super) async fn h1_list(tx: &Transaction<'_>, limit: usize) -> Result<Vec<H1Report>, Fail> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = query(
        tx,
        &format!(
            "SELECT {H1_COLUMNS} FROM h1_reports ORDER BY updated_at DESC, report_id LIMIT $1"
        ),
        &[&limit],
    )
    .await?;
    rows.iter().map(h1_from_row).collect()
}

/// Applies `change` to HackerOne report `id` (see the SQLite store's
/// `h1_change`): the delivery id first (a twin delivery on another
/// instance waits on its key, then finds it), then the row, created if
/// missing and locked, so instances apply changes one after the other.
pub(super) async fn h1_change(
    tx: &Transaction<'_>,
    id: &str,
    change: &H1Change,
    delivery: Option<&str>,
    now: Millis,
) -> Result<End<H1Applied>, Fail> {
    if let Some(d) = delivery {
        let inserted = execute(
            tx,
            "INSERT INTO deliveries(source, id, at) VALUES ('hackerone', $1, $2)
             ON CONFLICT (source, id) DO NOTHING",
            &[&d, &now],
        )
        .await?;
        if inserted == 0 {
            let report = h1_get(tx, id, false)
                .await?
                .unwrap_or_else(|| H1Report::new(id, now));
            return Ok(End::Rollback(H1Applied {
                report,
                changed: false,
                replayed: true,
            }));
        }
    }
    let fresh = H1Report::new(id, now);
    execute(
        tx,
        "INSERT INTO h1_reports(report_id, seen_at, updated_at) VALUES ($1, $2, $2)
         ON CONFLICT (report_id) DO NOTHING",
        &[&id, &now],
    )
    .await?;
    let current = h1_get(tx, id, true).await?.unwrap_or(fresh);
    let Some(next) = current.apply(change, now) else {
        // Nothing to keep: neither a row made just now nor the delivery id
        // (the event changed nothing, and means nothing the next time).
        return Ok(End::Rollback(H1Applied {
            report: current,
            changed: false,
            replayed: false,
        }));
    };
    execute(
        tx,
        "UPDATE h1_reports SET closed_at = $2, closure = $3, disclosure_requested_at = $4,
                disclosed_at = $5, posting = $6, close_notice = $7,
                disclosure_reminded_at = $8, updated_at = $9
         WHERE report_id = $1",
        &[
            &next.id,
            &next.closed_at,
            &next.closure.map(closure_str),
            &next.disclosure_requested_at,
            &next.disclosed_at,
            &next.posting.map(H1Notice::as_str),
            &next.close_notice.map(CloseNotice::as_str),
            &next.disclosure_reminded_at,
            &next.updated_at,
        ],
    )
    .await?;
    Ok(End::Commit(H1Applied {
        report: next,
        changed: true,
        replayed: false,
    }))
}

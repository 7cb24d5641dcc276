//! The leader's round over what HackerOne's webhook said
//! ([`super::h1`]): the reminder to close the Zendesk ticket of a report
//! closed in HackerOne, and the disclosure countdown's reminder. Part of
//! the report timer's loop ([`super::timer`]), with its retries and its
//! crash safety: the intent is recorded ([`H1Change::Posting`]), the
//! message is posted with its marker ([`H1Notice::marker`]) in Slack's
//! metadata, the outcome is recorded ([`H1Change::Posted`]); a retry
//! after a crash looks for the marker before posting again.
//!
//! Where: `[hackerone] channel`, in the thread of the report's reminder
//! when its ticket is linked and has one, else at the top of the channel.

use std::collections::HashMap;
use std::sync::Arc;

use super::config::HackerOneConfig;
use super::h1::{H1Change, H1Notice, H1Report};
use super::timer::{State, StepError, failed, post_marked};
use super::watch::MAX_REPORTS;
use super::{Report, Thread, text};
use crate::clock::Millis;
use crate::config::Config;
use crate::intake::Core;

/// The retry key of HackerOne report `id` in the timer's [`State`].
fn key(id: &str) -> String {
    format!("h1-{id}")
}

/// One look at every HackerOne report: posts what is due, returns when to
/// look next.
pub(super) async fn round(
    core: &Arc<Core>,
    config: &Config,
    h1: &HackerOneConfig,
    state: &mut State,
) -> Option<Millis> {
    let now = core.clock.now();
    let (all, tickets) = match load(core).await {
        Ok(both) => both,
        Err(e) => {
            tracing::warn!(cause = %e, "hackerone: cannot read HackerOne's reports; trying again in a second");
            return Some(now + 1_000);
        }
    };
    let mut next: Option<Millis> = None;
    for report in all {
        let ticket = tickets.get(&report.id);
        let k = key(&report.id);
        let not_before = state.retry.get(&k).map(|(_, at)| *at);
        let due = report.step(now, ticket.is_some(), h1).is_some();
        let after = if due && not_before.is_none_or(|t| t <= now) {
            match act(core, config, h1, state, report, ticket).await {
                Ok(after) => {
                    state.retry.remove(&k);
                    after
                }
                Err((e, after)) => {
                    failed(core, state, k.clone(), &e);
                    after
                }
            }
        } else {
            report
        };
        if let Some(due) = after.next_due(ticket.is_some(), h1) {
            let at = match state.retry.get(&k) {
                Some((_, not_before)) => due.max(*not_before),
                None => due.max(core.clock.now()),
            };
            next = Some(next.map_or(at, |n: Millis| n.min(at)));
        }
    }
    next
}

/// HackerOne's reports, and the watched ticket of each that has one.
async fn load(
    core: &Core,
) -> Result<(Vec<H1Report>, HashMap<String, Report>), crate::store::StoreError> {
    let all = core.store.h1_reports(MAX_REPORTS).await?;
    let tickets = core
        .store
        .reports(MAX_REPORTS)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.h1_report.clone()?, r)))
        .collect();
    Ok((all, tickets))
}

/// Everything due about one HackerOne report (two notices at most);
/// returns the row afterwards, also on a failure (with the error).
async fn act(
    core: &Arc<Core>,
    config: &Config,
    h1: &HackerOneConfig,
    state: &mut State,
    mut report: H1Report,
    ticket: Option<&Report>,
) -> Result<H1Report, (StepError, H1Report)> {
    for _ in 0..3 {
        let now = core.clock.now();
        let Some(notice) = report.step(now, ticket.is_some(), h1) else {
            break;
        };
        report = match notice {
            H1Notice::Closed => {
                let Some(t) = ticket else { break };
                close(core, config, h1, state, &report, t)
                    .await
                    .map_err(|e| (e, report.clone()))?
            }
            H1Notice::Disclosure => post(core, config, h1, state, &report, ticket, notice, None)
                .await
                .map_err(|e| (e, report.clone()))?,
        };
    }
    Ok(report)
}

/// The closure reminder: Zendesk is asked for the ticket's status first;
/// a solved or closed ticket (or one Zendesk no longer knows) needs none.
async fn close(
    core: &Arc<Core>,
    config: &Config,
    h1: &HackerOneConfig,
    state: &mut State,
    report: &H1Report,
    ticket: &Report,
) -> Result<H1Report, StepError> {
    let now_ticket = core.reports.ticket_now(&ticket.ticket).await?;
    let status = match now_ticket {
        Some(t) if !t.is_done() => t.status,
        other => {
            tracing::info!(
                report = %report.id,
                ticket = %ticket.ticket,
                status = other.as_ref().map_or("deleted", |t| t.status.as_str()),
                "hackerone: closed in HackerOne, and its ticket is done: no reminder"
            );
            return Ok(core
                .reports
                .change_h1(&report.id, H1Change::TicketDone)
                .await?);
        }
    };
    post(
        core,
        config,
        h1,
        state,
        report,
        Some(ticket),
        H1Notice::Closed,
        Some(&status),
    )
    .await
}

/// Posts `notice` (intent, post with marker, outcome); returns the row
/// afterwards.
#[expect(
    clippy::too_many_arguments,
    reason = "the round's context, passed along as the report timer's post() does"
)]
async fn post(
    core: &Arc<Core>,
    config: &Config,
    h1: &HackerOneConfig,
    state: &mut State,
    report: &H1Report,
    ticket: Option<&Report>,
    notice: H1Notice,
    status: Option<&str>,
) -> Result<H1Report, StepError> {
    let slack = state
        .slack(config)
        .ok_or(StepError::Config("[hackerone] needs [slack]"))?;
    let maybe_sent = report.posting == Some(notice);
    let report = if maybe_sent {
        report.clone()
    } else {
        let after = core
            .reports
            .change_h1(&report.id, H1Change::Posting(notice))
            .await?;
        if after.posting != Some(notice) {
            // Settled meanwhile (another instance, a redelivery).
            return Ok(after);
        }
        after
    };
    let now = core.clock.now();
    let body = match notice {
        H1Notice::Closed => match ticket {
            Some(t) => text::closed(&report, t, status.unwrap_or("open")),
            None => return Err(StepError::Config("a closure reminder needs its ticket")),
        },
        H1Notice::Disclosure => text::disclosure(&report, h1, ticket, now),
    };
    let (channel, thread_ts) = match ticket.and_then(|t| t.reminder.as_ref()) {
        Some(Thread { channel, ts }) => (channel.clone(), Some(ts.clone())),
        None => (h1.channel.clone(), None),
    };
    post_marked(
        &slack,
        channel,
        thread_ts,
        body,
        notice.marker(&report.id),
        maybe_sent,
    )
    .await?;
    Ok(core
        .reports
        .change_h1(&report.id, H1Change::Posted(notice, core.clock.now()))
        .await?)
}

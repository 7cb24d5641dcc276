//! Polling, the safety nets behind the webhooks.
//!
//! - PagerDuty: the status of each open incident, so an acknowledgement or
//!   resolution from the phone app is learned even when webhooks are not set
//!   up or were lost (`pagerduty.poll_interval`).
//! - Zendesk: a search for emergency tickets the webhook missed, and the
//!   status of open incidents' tickets, so a solved ticket resolves its
//!   incident (`zendesk.poll_interval`).
//!
//! Both feed ordinary events to intake; the engine de-duplicates. The loops
//! live here; what to ask each vendor and how to read its answer live in
//! the vendor's folder (`vendors::*::poll`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::{Event, Policy, Source};
use crate::intake::Core;
use crate::store::Intake;
use crate::vendors::pagerduty::PagerDuty;
use crate::vendors::pagerduty::webhook::Action;
use crate::vendors::zendesk::Zendesk;

/// Most open incidents checked per round (PagerDuty allows 960 requests a
/// minute per key; this leaves room for paging).
const MAX_CHECKED: usize = 200;

/// Most open incidents considered at all.
const MAX_OPEN: usize = 100_000;

/// The round of at most `MAX_CHECKED` incidents starting at `offset` (taken
/// modulo `len`, wrapping around), and where the next round starts.
fn window(len: usize, offset: usize) -> (std::ops::Range<usize>, usize) {
    if len == 0 {
        return (0..0, 0);
    }
    let start = offset % len;
    let n = len.min(MAX_CHECKED);
    (start..start + n, (start + n) % len)
}

async fn every(interval: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(interval) => true,
    }
}

/// Polls PagerDuty for the status of open incidents until `shutdown`.
pub async fn pagerduty(
    core: Arc<Core>,
    pd: Arc<PagerDuty>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    // Where the next round starts: with more open incidents than one round
    // checks, successive rounds walk through all of them.
    let mut offset = 0;
    while every(interval, &shutdown).await {
        let open = match core.store.list(true, MAX_OPEN).await {
            Ok(open) => open,
            Err(e) => {
                tracing::warn!(cause = %e, "pagerduty poll: cannot list open incidents");
                continue;
            }
        };
        let (round, next) = window(open.len(), offset);
        offset = next;
        for inc in open.into_iter().cycle().skip(round.start).take(round.len()) {
            let remote = match pd.find(&inc.dedup_key).await {
                Ok(Some(remote)) => remote,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(incident = inc.id, cause = %e, "pagerduty poll failed; next round");
                    break;
                }
            };
            let Some((action, first)) = crate::vendors::pagerduty::poll::news(&remote, inc.status)
            else {
                continue;
            };
            let by = core
                .people
                .load()
                .who_pagerduty(
                    first.and_then(|a| a.id.as_deref()),
                    first.map(|a| a.name.as_str()),
                )
                .await;
            let via = Source::Pagerduty;
            let event = match action {
                Action::Acknowledged => Event::Acknowledge { by, via },
                Action::Resolved => Event::Resolve { by, via },
                // A status never says so (only the webhook does).
                Action::Annotated { .. } => continue,
            };
            tracing::info!(incident = inc.id, status = %remote.status, "pagerduty poll: learned a status change");
            if let Err(e) = core.submit(Intake::incident(inc.id, event)).await {
                tracing::warn!(incident = inc.id, cause = %e, "pagerduty poll: cannot apply");
            }
        }
    }
}

/// Polls Zendesk until `shutdown`.
pub async fn zendesk(
    core: Arc<Core>,
    zd: Arc<Zendesk>,
    policy: Arc<Policy>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let queries = crate::vendors::zendesk::poll::queries(&policy);
    let mut offset = 0;
    while every(interval, &shutdown).await {
        for q in &queries {
            match zd.search(q).await {
                Ok(tickets) => {
                    // A HackerOne report is not an emergency, whatever its
                    // priority: it is watched below.
                    for ticket in tickets.into_iter().filter(|t| !core.reports.is_report(t)) {
                        if let Err(e) = core.submit(Intake::polled_ticket(ticket)).await {
                            tracing::warn!(cause = %e, "zendesk poll: cannot apply");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(query = %q, cause = %e, "zendesk poll: search failed; next round")
                }
            }
        }
        hackerone(&core, &zd).await;
        let open = match core.store.list(true, MAX_OPEN).await {
            Ok(open) => open,
            Err(e) => {
                tracing::warn!(cause = %e, "zendesk poll: cannot list open incidents");
                continue;
            }
        };
        let (round, next) = window(open.len(), offset);
        offset = next;
        let ids: Vec<String> = open
            .iter()
            .cycle()
            .skip(round.start)
            .take(round.len())
            .map(|i| i.ticket.id.clone())
            .collect();
        for ids in ids.chunks(100) {
            match zd.show_many(ids).await {
                Ok(tickets) => {
                    for ticket in tickets.into_iter().filter(|t| t.is_done()) {
                        if let Err(e) = core.submit(Intake::polled_ticket(ticket)).await {
                            tracing::warn!(cause = %e, "zendesk poll: cannot apply");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(cause = %e, "zendesk poll: ticket status failed; next round")
                }
            }
        }
    }
}

/// HackerOne reports (`[hackerone]`): starts the clock of reports the
/// webhook missed (a search per tag for unsolved tickets, each with its
/// creation time), and reads the comments of every open report, so a
/// public reply by an agent stops its clock even without a webhook.
async fn hackerone(core: &Core, zd: &Zendesk) {
    let config = core.reports.config();
    let Some(h1) = &config.hackerone else {
        return;
    };
    for tag in &h1.tags {
        let query = format!("type:ticket tags:{tag} status<solved");
        match zd.search_found(&query).await {
            Ok(found) => {
                for f in found {
                    let created = f
                        .created_at
                        .as_deref()
                        .and_then(|t| crate::business_time::parse_timestamp(t).ok())
                        .map(|t| t.as_millisecond());
                    let h1_report =
                        crate::reports::h1::report_id_of(f.external_id.as_deref(), &f.ticket.title);
                    if let Err(e) = core.reports.seen(&f.ticket, created, h1_report).await {
                        tracing::warn!(ticket = %f.ticket.id, cause = %e, "zendesk poll: cannot watch a HackerOne report");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%query, cause = %e, "zendesk poll: search failed; next round")
            }
        }
    }
    let open = match core.store.reports(crate::reports::watch::MAX_REPORTS).await {
        Ok(all) => all.into_iter().filter(|r| r.is_open()),
        Err(e) => {
            tracing::warn!(cause = %e, "zendesk poll: cannot list HackerOne reports");
            return;
        }
    };
    for r in open {
        if let Err(e) = core.reports.check_reply(&r.ticket).await {
            tracing::warn!(ticket = %r.ticket, cause = %e, "zendesk poll: cannot read a HackerOne report's comments; next round");
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_rounds_walk_through_every_open_incident() {
        assert_eq!(window(0, 7), (0..0, 0));
        assert_eq!(window(50, 0), (0..50, 0));
        assert_eq!(window(450, 0), (0..200, 200));
        assert_eq!(window(450, 200), (200..400, 400));
        // Wraps: 400..600 covers 400..450 then 0..150.
        assert_eq!(window(450, 400), (400..600, 150));
    }
}

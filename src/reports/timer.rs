//! The leader's loop of HackerOne reports: it sleeps until the next
//! reminder or deadline of any watched report (or until a report is seen
//! or changed on this instance), then posts what is due and records it.
//!
//! # Crash safety
//! Each notice is posted in three steps: the intent is recorded
//! ([`ReportChange::Posting`]), the message is posted with its marker in
//! Slack's message metadata ([`Notice::marker`]), and the outcome is
//! recorded ([`ReportChange::Reminded`], [`ReportChange::Overdue`]). A
//! crash (or a failed attempt, or a store error) anywhere in between
//! leaves the intent in the row; the next attempt, in this process or the
//! next leader, asks Slack first (`conversations.history` for a reminder,
//! `conversations.replies` of its thread for an overdue notice) and takes
//! the message it finds instead of posting again. So a reminder is never
//! lost (the intent is durable before anything is sent) and normally not
//! posted twice; it is posted twice only when Slack's history cannot be
//! read (the bot lacks `channels:history`: logged, and posted anyway).
//!
//! # Retries
//! A post that fails is tried again with the dispatcher's backoff (0.5 s
//! doubling to 60 s, jittered, never sooner than Slack's `Retry-After`) for
//! rate limits, 5xx and timeouts; a permanent error (unknown channel, bot
//! not invited) is logged at error and tried again every 5 minutes, until
//! someone fixes the config. Before posting, the ticket's comments are read
//! once (bounded to a few seconds): an agent who replied without a webhook
//! reaching pagerd gets no needless reminder.
//!
//! With `page_on_breach`, a deadline passed without a reply submits the
//! report to the emergency intake ([`page`]): it pages like an emergency,
//! whether or not Slack takes the notices.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::config::HackerOneConfig;
use super::watch::MAX_REPORTS;
use super::{Notice, Report, ReportChange, Step, Thread, text};
use crate::clock::Millis;
use crate::config::Config;
use crate::engine::Ticket;
use crate::intake::Core;
use crate::store::{Change, Intake};
use crate::vendors::DeliveryError;
use crate::vendors::slack::{Slack, SlackMessage};

/// Longest sleep without anything due: a safety net, not a poll.
const IDLE: Duration = Duration::from_secs(300);
/// How long the reply check before a notice may take.
const CHECK_WAIT: Duration = Duration::from_secs(3);
/// The wait before trying a post Slack refused for good again.
const PERMANENT_RETRY: Duration = Duration::from_secs(300);

/// Why a step failed: when to try again is the caller's.
#[derive(Debug, thiserror::Error)]
pub(super) enum StepError {
    #[error(transparent)]
    Slack(#[from] DeliveryError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Config(&'static str),
    #[error(transparent)]
    Zendesk(#[from] super::watch::ReportError),
}

/// The loop's memory: failed attempts per ticket, and the Slack client
/// (its channel cache) for the `[slack]` in force.
#[derive(Default)]
pub(super) struct State {
    /// `ticket → (failed attempts, not before)`; HackerOne reports' as
    /// `h1-<id>`.
    pub(super) retry: HashMap<String, (u32, Millis)>,
    slack: Option<(String, Arc<Slack>)>,
}

impl State {
    /// The Slack client of `config` (kept while its URL and token stay).
    pub(super) fn slack(&mut self, config: &Config) -> Option<Arc<Slack>> {
        let sc = config.slack.as_ref()?;
        let key = format!("{}\n{}", sc.api_url, sc.bot_token.expose());
        if let Some((k, client)) = &self.slack
            && *k == key
        {
            return Some(client.clone());
        }
        let client = Arc::new(Slack::new(
            sc.api_url.clone(),
            sc.bot_token.clone(),
            crate::vendors::http_client(crate::vendors::REQUEST_TIMEOUT),
        ));
        self.slack = Some((key, client.clone()));
        Some(client)
    }
}

/// Runs on the leader until `shutdown`. With `refresh`, the reports are
/// also read that often (several instances: another one's webhook does not
/// wake this one).
pub async fn run(core: Arc<Core>, refresh: Option<Duration>, shutdown: CancellationToken) {
    let reports = core.reports.clone();
    let mut state = State::default();
    loop {
        let config = reports.config();
        let next = match &config.hackerone {
            None => None,
            Some(h1) => {
                let a = round(&core, &config, h1, &mut state).await;
                let b = super::h1_notices::round(&core, &config, h1, &mut state).await;
                match (a, b) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        };
        let now = core.clock.now();
        let mut wait = next.map_or(IDLE, |at| core.clock.real(at - now)).min(IDLE);
        if let Some(every) = refresh {
            wait = wait.min(every);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = reports.wake.notified() => {}
        }
    }
}

/// One look at every report: does what is due, returns when to look next.
async fn round(
    core: &Arc<Core>,
    config: &Config,
    h1: &HackerOneConfig,
    state: &mut State,
) -> Option<Millis> {
    let now = core.clock.now();
    let all = match core.store.reports(MAX_REPORTS).await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(cause = %e, "hackerone: cannot read the reports; trying again in a second");
            return Some(now + 1_000);
        }
    };
    core.reports.count(&all);
    state
        .retry
        .retain(|t, _| t.starts_with("h1-") || all.iter().any(|r| r.ticket == *t && r.is_open()));
    let mut next: Option<Millis> = None;
    for report in all {
        let not_before = state.retry.get(&report.ticket).map(|(_, at)| *at);
        if report.step(now, h1.page_on_breach).is_some() && not_before.is_none_or(|t| t <= now) {
            let ticket = report.ticket.clone();
            match act(core, config, h1, state, report).await {
                Ok(()) => {
                    state.retry.remove(&ticket);
                }
                Err(e) => failed(core, state, ticket, &e),
            }
        }
    }
    // What is left to do, after what was just done.
    let now = core.clock.now();
    let Ok(all) = core.store.reports(MAX_REPORTS).await else {
        return Some(now + 1_000);
    };
    for r in &all {
        let Some(due) = r.next_due(h1.page_on_breach) else {
            continue;
        };
        let at = match state.retry.get(&r.ticket) {
            Some((_, not_before)) => due.max(*not_before),
            None => due.max(now),
        };
        next = Some(next.map_or(at, |n: Millis| n.min(at)));
    }
    next
}

/// Records a failed step about `key` (a ticket, or `h1-<id>`): when to
/// try again, with backoff, and the log line.
pub(super) fn failed(core: &Core, state: &mut State, key: String, e: &StepError) {
    let attempts = state.retry.get(&key).map_or(0, |(n, _)| *n);
    let backoff = crate::dispatcher::backoff(attempts);
    let (wait, permanent) = match e {
        StepError::Slack(DeliveryError::Retryable { retry_after, .. }) => {
            (retry_after.map_or(backoff, |r| r.max(backoff)), false)
        }
        // The store, the intake or Zendesk failed: soon again.
        StepError::Store(_) | StepError::Zendesk(_) => (backoff, false),
        StepError::Slack(DeliveryError::Permanent { .. }) | StepError::Config(_) => {
            (PERMANENT_RETRY, true)
        }
    };
    if permanent {
        tracing::error!(report = %key, cause = %e, "hackerone: a notice cannot be posted; fix the cause (retried every 5 minutes)");
    } else {
        tracing::warn!(report = %key, attempts = attempts + 1, cause = %e, "hackerone: a notice failed; retrying");
    }
    let at = core.clock.now() + core.clock.clock_time(wait);
    state.retry.insert(key, (attempts + 1, at));
}

/// Everything due about one report, in order, until nothing is.
async fn act(
    core: &Arc<Core>,
    config: &Config,
    h1: &HackerOneConfig,
    state: &mut State,
    mut report: Report,
) -> Result<(), StepError> {
    let mut checked = false;
    // Page, reminder, overdue notice: three steps at most.
    for _ in 0..4 {
        let now = core.clock.now();
        let Some(step) = report.step(now, h1.page_on_breach) else {
            return Ok(());
        };
        if !checked {
            checked = true;
            match tokio::time::timeout(CHECK_WAIT, core.reports.check_reply(&report.ticket)).await {
                Ok(Ok(Some(after))) => {
                    report = after;
                    continue;
                }
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => {
                    tracing::warn!(ticket = %report.ticket, cause = %e, "hackerone: cannot read the ticket's comments; notifying anyway")
                }
                Err(_) => {
                    tracing::warn!(ticket = %report.ticket, "hackerone: Zendesk is slow to list the comments; notifying anyway")
                }
            }
        }
        let after = match step {
            Step::Page => {
                page(core, config, &report).await?;
                core.reports
                    .change(&report.ticket, ReportChange::Paged)
                    .await?
            }
            Step::Post(notice) => post(core, config, h1, state, &report, notice).await?,
        };
        let Some(after) = after else {
            return Ok(());
        };
        report = after;
    }
    Ok(())
}

/// Posts a notice tagged with `marker` (looked for first when
/// `maybe_sent`: an earlier attempt may have reached Slack), in `thread_ts`
/// when given; shared by the report and the HackerOne notices.
pub(super) async fn post_marked(
    slack: &Slack,
    channel: String,
    thread_ts: Option<String>,
    text: String,
    marker: String,
    maybe_sent: bool,
) -> Result<crate::vendors::slack::Posted, StepError> {
    let msg = SlackMessage {
        channel,
        text,
        blocks: None,
        thread_ts,
        marker,
    };
    let posted = slack.post(&msg, maybe_sent).await?;
    tracing::info!(marker = %msg.marker, channel = %posted.channel, "hackerone: notice posted");
    Ok(posted)
}

/// Posts `notice` about `report` (see the module's crash safety) and
/// records it; returns the report afterwards.
async fn post(
    core: &Arc<Core>,
    config: &Config,
    h1: &HackerOneConfig,
    state: &mut State,
    report: &Report,
    notice: Notice,
) -> Result<Option<Report>, StepError> {
    let reports = &core.reports;
    let slack = state
        .slack(config)
        .ok_or(StepError::Config("[hackerone] needs [slack]"))?;
    // An earlier attempt (here, or in a process that died) may have reached
    // Slack: look before posting.
    let maybe_sent = report.posting == Some(notice);
    let report = if maybe_sent {
        report.clone()
    } else {
        match reports
            .change(&report.ticket, ReportChange::Posting(notice))
            .await?
        {
            Some(r) if r.is_open() => r,
            other => return Ok(other),
        }
    };
    let now = core.clock.now();
    let (channel, thread_ts, body) = match notice {
        Notice::Reminder => (h1.channel.clone(), None, text::reminder(&report, h1, now)),
        Notice::Overdue => {
            let Some(Thread { channel, ts }) = &report.reminder else {
                return Err(StepError::Config("an overdue notice needs its reminder"));
            };
            (
                channel.clone(),
                Some(ts.clone()),
                text::overdue(&report, h1, now),
            )
        }
    };
    let posted = post_marked(
        &slack,
        channel,
        thread_ts,
        body,
        notice.marker(&report.ticket),
        maybe_sent,
    )
    .await?;
    let change = match notice {
        Notice::Reminder => ReportChange::Reminded(Thread {
            channel: posted.channel,
            ts: posted.ts,
        }),
        Notice::Overdue => ReportChange::Overdue,
    };
    Ok(reports.change(&report.ticket, change).await?)
}

/// The report as an emergency ticket, so the ordinary intake pages for it
/// (`page_on_breach`): an emergency priority (or tag) of the policy, a
/// title that says why, and no requester e-mail, so a crisis doc is never
/// shared with the researcher.
pub fn as_emergency(report: &Report, config: &Config) -> Ticket {
    let policy = &config.policy;
    let mut tags: Vec<String> = config
        .hackerone
        .as_ref()
        .and_then(|h| h.tags.first().cloned())
        .into_iter()
        .collect();
    let priority = match policy.emergency_priorities.first() {
        Some(p) => p.clone(),
        None => {
            tags.extend(policy.emergency_tags.first().cloned());
            String::new()
        }
    };
    Ticket {
        id: report.ticket.clone(),
        title: format!(
            "HackerOne report without a first response past its deadline: {}",
            report.title
        ),
        priority,
        status: "open".into(),
        tags,
        url: report.url.clone(),
        requester_name: String::new(),
        requester_email: String::new(),
        organization: "HackerOne".into(),
    }
}

/// Submits the report to the emergency intake (`page_on_breach`). A
/// ticket whose incident is open already is not paged twice (the engine
/// ignores it), so a retry after a crash is harmless.
async fn page(core: &Arc<Core>, config: &Config, report: &Report) -> Result<(), StepError> {
    let applied = core
        .submit(Intake::ticket(as_emergency(report, config)))
        .await?;
    match &applied.result {
        Change::Created | Change::Updated => tracing::warn!(
            ticket = %report.ticket,
            incident = applied.incident.as_ref().map(|i| i.id),
            "hackerone: deadline passed without a reply; paging (hackerone.page_on_breach)"
        ),
        Change::Ignored(reason) => tracing::info!(
            ticket = %report.ticket,
            %reason,
            "hackerone: deadline passed without a reply; its ticket already has an open incident"
        ),
        Change::Replayed => {}
    }
    Ok(())
}

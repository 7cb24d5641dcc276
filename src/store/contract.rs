//! Behaviour every [`Store`] must have, written once and run against each
//! store by its own tests (SQLite always, PostgreSQL when a database is
//! given). Times are made up: the tests pass `now` to every call, which is
//! the clock the store sees.

use std::time::Duration;

use super::*;
use crate::engine::{Doc, EffectKind, Outcome, Policy, Source, Ticket};

/// One day in ms.
const DAY: Millis = 86_400_000;

/// The policy the retention contract needs: crisis docs on, so a resolved
/// incident can hold an armed deadline (the doc's deprecation).
pub(crate) fn policy() -> Policy {
    Policy {
        crisis_docs: true,
        ..Policy::default()
    }
}

fn ticket(id: &str, status: &str) -> Ticket {
    Ticket {
        id: id.into(),
        title: "down".into(),
        priority: "urgent".into(),
        status: status.into(),
        tags: vec![],
        url: "u".into(),
        requester_name: "D".into(),
        requester_email: "d@c.test".into(),
        organization: "C".into(),
    }
}

/// A webhook about ticket `id` in `status`.
fn seen(id: &str, status: &str) -> Intake {
    Intake {
        target: Target::Ticket(id.into()),
        event: Event::Ticket {
            ticket: ticket(id, status),
            polled: false,
        },
        delivery: None,
    }
}

fn on(id: i64, event: Event) -> Intake {
    Intake::incident(id, event)
}

fn ack(by: &str) -> Event {
    Event::Acknowledge {
        by: by.into(),
        via: Source::Pagerduty,
    }
}

fn resolve() -> Event {
    Event::Resolve {
        by: "ana".into(),
        via: Source::Cli,
    }
}

/// Applies `intake` at `now`, then delivers everything due, as the
/// dispatcher would (the crisis doc is reported created).
async fn step(s: &dyn Store, intake: Intake, now: Millis) -> Applied {
    let applied = s.apply(intake, now).await.expect("apply");
    drain(s, now).await;
    applied
}

async fn drain(s: &dyn Store, now: Millis) {
    for _ in 0..20 {
        let (due, _) = s.due(now, 100, vec![]).await.expect("due");
        if due.is_empty() {
            return;
        }
        for p in due {
            let outcome = (p.effect.kind() == EffectKind::CreateDoc).then(|| Outcome::Doc {
                doc: Doc {
                    id: "doc-1".into(),
                    url: "https://docs.example/doc-1".into(),
                },
            });
            let kind = p.effect.kind();
            s.complete(
                p.id,
                Event::Delivered {
                    effect: kind,
                    outcome,
                },
                now,
            )
            .await
            .expect("complete");
        }
    }
    panic!("the outbox does not drain");
}

fn id_of(a: &Applied) -> i64 {
    a.incident.as_ref().expect("an incident").id
}

/// Whether incident `id` is still stored, with its journal.
async fn kept(s: &dyn Store, id: i64) -> bool {
    let found = s.get(id).await.expect("get").is_some();
    let journal = s.journal(id).await.expect("journal").len();
    assert_eq!(
        found,
        journal > 0,
        "incident {id} and its journal go together"
    );
    found
}

/// Retention deletes old resolved incidents (journal and outbox with them)
/// and old delivery ids, keeps everything still needed, and respects the
/// batch size. `s` must be opened with [`policy`].
pub(crate) async fn retention(s: &dyn Store) {
    s.lease("contract", Duration::from_secs(600))
        .await
        .expect("lease")
        .expect("the leader");

    // Resolved long ago, ticket solved: deleted.
    let old = id_of(&step(s, seen("old", "new"), 0).await);
    let acked = s
        .apply(
            Intake {
                target: Target::Incident(old),
                event: ack("bo"),
                delivery: Some(("pagerduty".into(), "wh-old".into())),
            },
            60_000,
        )
        .await
        .expect("ack");
    assert_eq!(acked.result, Change::Updated);
    drain(s, 60_000).await;
    step(s, seen("old", "solved"), DAY).await;
    let rows = s.outbox(old).await.expect("outbox");
    assert!(
        rows.len() >= 2 && rows.iter().all(|r| r.state == "delivered"),
        "{rows:?}"
    );

    // Never resolved: kept however old.
    let open = id_of(&step(s, seen("open", "new"), 0).await);

    // Resolved recently: kept.
    let recent = id_of(&step(s, seen("recent", "new"), 0).await);
    step(s, seen("recent", "solved"), 100 * DAY).await;

    // Resolved long ago but the crisis doc's deprecation is still armed.
    let armed = id_of(&step(s, seen("armed", "new"), 0).await);
    step(
        s,
        on(
            armed,
            Event::DeclareCrisis {
                by: "ana".into(),
                via: Source::Cli,
            },
        ),
        1,
    )
    .await;
    let resolved = step(s, seen("armed", "solved"), DAY).await;
    let inc = resolved.incident.expect("the incident");
    assert!(inc.crisis.as_ref().is_some_and(|c| c.doc.is_some()));
    assert!(inc.deadlines.deprecate.is_some(), "{:?}", inc.deadlines);

    // Resolved long ago but PagerDuty was never told: a pending outbox row.
    let pending = id_of(&step(s, seen("pending", "new"), 0).await);
    s.apply(seen("pending", "solved"), DAY)
        .await
        .expect("solve");
    let (due, _) = s.due(DAY, 100, vec![]).await.expect("due");
    for p in due.iter().filter(|p| p.incident.id == pending) {
        s.retry_later(p.id, 1000 * DAY, "PagerDuty answered 503".into())
            .await
            .expect("retry later");
    }

    // Resolved long ago in the CLI while the ticket stays open: the only
    // record that the ticket was dealt with (the poller would page again).
    let unsolved = id_of(&step(s, seen("unsolved", "new"), 0).await);
    step(s, on(unsolved, resolve()), DAY).await;

    // A ticket's first episode, resolved long ago, then a second one (its
    // ticket still open): the first goes, the second stays.
    let first = id_of(&step(s, seen("twice", "new"), 0).await);
    step(s, on(first, resolve()), DAY).await;
    let second = step(s, seen("twice", "open"), 2 * DAY).await;
    assert_eq!(second.result, Change::Created);
    let second = id_of(&second);
    step(s, on(second, resolve()), 2 * DAY).await;

    // A recent delivery id (the open incident's acknowledgement).
    let now = 120 * DAY;
    let recent_ack = Intake {
        target: Target::Incident(open),
        event: ack("cy"),
        delivery: Some(("pagerduty".into(), "wh-recent".into())),
    };
    assert_eq!(
        step(s, recent_ack.clone(), now - DAY).await.result,
        Change::Updated
    );
    let incidents = s.stats(now).await.expect("stats").incidents;
    assert_eq!(incidents, 8);

    // Batches of 2: never more examined or deleted per call.
    let before = now - 90 * DAY;
    let deliveries_before = now - 7 * DAY;
    let mut total = Pruned::default();
    let mut cursor = None;
    let mut calls = 0;
    loop {
        let p = s
            .prune(before, deliveries_before, 2, cursor)
            .await
            .expect("prune");
        assert!(
            p.examined <= 2 && p.incidents <= 2 && p.deliveries <= 2,
            "{p:?}"
        );
        calls += 1;
        total.add(&p);
        cursor = p.next;
        if p.finished {
            break;
        }
        assert!(calls < 10, "the pass does not end: {p:?}");
    }
    assert!(
        calls >= 3,
        "six old resolved incidents take three batches of two"
    );
    assert_eq!(total.examined, 6, "{total:?}");
    assert_eq!(total.incidents, 2, "{total:?}");
    assert_eq!(total.deliveries, 1, "{total:?}");
    assert!(total.journal >= 4 && total.outbox >= 4, "{total:?}");

    assert!(!kept(s, old).await, "old and resolved: deleted");
    assert!(s.outbox(old).await.expect("outbox").is_empty());
    assert!(!kept(s, first).await, "an earlier episode: deleted");
    for (id, what) in [
        (open, "open"),
        (recent, "recently resolved"),
        (armed, "armed deadline"),
        (pending, "pending outbox row"),
        (unsolved, "ticket still open"),
        (second, "the ticket's latest episode, ticket open"),
    ] {
        assert!(kept(s, id).await, "{what}: kept");
    }
    assert_eq!(s.stats(now).await.expect("stats").incidents, 6);
    assert_eq!(s.outbox(pending).await.expect("outbox").len(), 2);

    // The recent delivery id is still recognised; the old one is not.
    assert_eq!(
        s.apply(recent_ack, now).await.expect("replay").result,
        Change::Replayed
    );
    let old_again = Intake {
        target: Target::Incident(open),
        event: ack("bo"),
        delivery: Some(("pagerduty".into(), "wh-old".into())),
    };
    assert_ne!(
        s.apply(old_again, now).await.expect("redelivery").result,
        Change::Replayed,
        "an 8-week-old delivery id is forgotten"
    );

    // A second pass finds nothing more to delete; once the pending row is
    // delivered and the deadline has fired, those go too, when old enough.
    let again = s
        .prune(before, deliveries_before, 100, None)
        .await
        .expect("prune");
    assert_eq!((again.incidents, again.deliveries), (0, 0), "{again:?}");
    assert!(again.finished);
    let end = 1000 * DAY;
    drain(s, end).await;
    let fired = step(s, on(armed, Event::Tick), end).await;
    assert!(fired.incident.is_some_and(|i| i.deadlines.next().is_none()));
    assert!(
        s.outbox(pending)
            .await
            .expect("outbox")
            .iter()
            .all(|r| r.state == "delivered")
    );
    let p = s
        .prune(end + 1, end - 7 * DAY, 100, None)
        .await
        .expect("prune");
    assert_eq!(p.incidents, 3, "pending, armed and recent: {p:?}");
    assert!(!kept(s, pending).await && !kept(s, armed).await && !kept(s, recent).await);
    assert!(kept(s, open).await && kept(s, unsolved).await && kept(s, second).await);
}

// ---- the outbox, deliveries and decisions -----------------------------------

fn kinds(due: &[Pending]) -> Vec<EffectKind> {
    due.iter().map(|p| p.effect.kind()).collect()
}

/// Takes the leader lease (PostgreSQL needs it to claim outbox rows; SQLite
/// always grants it).
async fn lead(s: &dyn Store) {
    s.lease("contract", Duration::from_secs(600))
        .await
        .expect("lease")
        .expect("the leader");
}

/// A ticket seen for the first time opens one incident and queues one page;
/// seen again, nothing. The crisis deadline is armed; the ack clock waits
/// for PagerDuty. `s` must be opened with `Policy::default()`.
pub(crate) async fn first_sight(s: &dyn Store) {
    lead(s).await;
    let a = s.apply(seen("1", "new"), 1000).await.expect("apply");
    assert_eq!(a.result, Change::Created);
    assert_eq!(a.effects, 1);
    let id = id_of(&a);
    let b = s.apply(seen("1", "new"), 2000).await.expect("apply");
    assert!(matches!(b.result, Change::Ignored(_)), "{b:?}");
    let (due, _) = s.due(2000, 10, vec![]).await.expect("due");
    assert_eq!(kinds(&due), vec![EffectKind::Page]);
    assert_eq!(
        s.deadlines().await.expect("deadlines"),
        vec![(id, 1000 + 3_600_000)],
        "the crisis deadline; the ack clock waits for PagerDuty"
    );
    assert_eq!(s.journal(id).await.expect("journal").len(), 1);
}

/// Effects of one incident in one lane go in order (a head that is in
/// flight or waiting to be retried blocks its lane); lanes do not wait for
/// each other; a second delivery report is a no-op. `s` must be opened with
/// `Policy::default()`.
pub(crate) async fn lanes(s: &dyn Store) {
    lead(s).await;
    let id = id_of(&s.apply(seen("1", "new"), 0).await.expect("apply"));
    let from_cli = Event::Acknowledge {
        by: "ana".into(),
        via: Source::Cli,
    };
    s.apply(on(id, from_cli), 1).await.expect("ack");
    // The page (pager lane) and the comment (tickets lane) are due; the
    // PagerDuty acknowledge waits behind the page.
    let (due, _) = s.due(10, 10, vec![]).await.expect("due");
    assert_eq!(
        kinds(&due),
        vec![EffectKind::Page, EffectKind::TicketComment]
    );
    let page = due[0].id;
    let (due, next) = s.due(10, 1, vec![]).await.expect("due");
    assert_eq!((due.len(), next), (1, Some(10)), "more due than the limit");
    let (due, _) = s.due(10, 10, vec![page]).await.expect("due");
    assert_eq!(
        kinds(&due),
        vec![EffectKind::TicketComment],
        "an in-flight head still blocks its lane"
    );
    s.retry_later(page, 100, "PagerDuty answered 503".into())
        .await
        .expect("retry later");
    let (due, next) = s.due(10, 10, vec![]).await.expect("due");
    assert_eq!(due.len(), 1, "the retrying page still blocks its lane");
    assert_eq!(next, Some(100));
    let done = Event::Delivered {
        effect: EffectKind::Page,
        outcome: None,
    };
    assert!(
        s.complete(page, done.clone(), 20)
            .await
            .expect("complete")
            .is_some()
    );
    assert!(
        s.complete(page, done, 21)
            .await
            .expect("complete")
            .is_none(),
        "a second report is a no-op"
    );
    let (due, _) = s.due(30, 10, vec![]).await.expect("due");
    assert_eq!(
        kinds(&due),
        vec![EffectKind::TicketComment, EffectKind::PageAcknowledge]
    );
    let rows = s.outbox(id).await.expect("outbox");
    assert_eq!(rows[0].state, "delivered");
    assert_eq!(rows[0].attempts, 2);
    let stats = s.stats(30).await.expect("stats");
    assert_eq!(
        (stats.incidents, stats.open_incidents, stats.pending_effects),
        (1, 1, 2)
    );
    assert_eq!(stats.oldest_pending_ms, 29);
    assert_eq!(s.get(id).await.expect("get").map(|i| i.id), Some(id));
}

/// A delivery given up is recorded as failed, once.
pub(crate) async fn given_up(s: &dyn Store) {
    lead(s).await;
    let id = id_of(&s.apply(seen("1", "new"), 0).await.expect("apply"));
    let (due, _) = s.due(10, 10, vec![]).await.expect("due");
    assert!(
        s.fail(due[0].id, "410 Gone".into(), 20)
            .await
            .expect("fail")
            .is_some()
    );
    assert!(
        s.fail(due[0].id, "again".into(), 21)
            .await
            .expect("fail")
            .is_none()
    );
    let rows = s.outbox(id).await.expect("outbox");
    assert_eq!(rows[0].state, "failed");
    assert_eq!(rows[0].last_error.as_deref(), Some("410 Gone"));
    assert_eq!(s.stats(30).await.expect("stats").failed_effects, 1);
}

/// A vendor's delivery id is applied once; a delivery for no incident is
/// not recorded (so it is not "seen" when the incident comes later).
pub(crate) async fn replayed_delivery(s: &dyn Store) {
    lead(s).await;
    let id = id_of(&s.apply(seen("1", "new"), 0).await.expect("apply"));
    let by_key = |key: &str, delivery: &str| Intake {
        target: Target::DedupKey(key.into()),
        event: ack("ana"),
        delivery: Some(("pagerduty".into(), delivery.into())),
    };
    let first = s
        .apply(by_key("zendesk-1", "wh-1"), 1)
        .await
        .expect("apply");
    assert_eq!(first.result, Change::Updated);
    let again = s
        .apply(by_key("zendesk-1", "wh-1"), 2)
        .await
        .expect("apply");
    assert_eq!(again.result, Change::Replayed);
    assert_eq!(s.journal(id).await.expect("journal").len(), 2);
    for now in [3, 4] {
        let r = s
            .apply(by_key("zendesk-404", "wh-9"), now)
            .await
            .expect("apply");
        assert!(matches!(r.result, Change::Ignored(_)), "{r:?}");
    }
}

/// Each decision reads the policy current when it is made (a reload);
/// deadlines armed before keep their time. `s` must read `policy`, which
/// starts with `ack_timeout = 2s` and `crisis_after = 10s`.
pub(crate) async fn policy_reload(s: &dyn Store, policy: &crate::shared::Shared<Policy>) {
    lead(s).await;
    let first = id_of(&s.apply(seen("1", "new"), 0).await.expect("apply"));
    let done = Event::Delivered {
        effect: EffectKind::Page,
        outcome: None,
    };
    let (due, _) = s.due(0, 10, vec![]).await.expect("due");
    s.complete(due[0].id, done.clone(), 100)
        .await
        .expect("complete");
    assert_eq!(
        s.get(first).await.expect("get").map(|i| i.deadlines.ack),
        Some(Some(2_100)),
        "the ack clock armed under the first policy"
    );
    policy.store(std::sync::Arc::new(Policy {
        ack_timeout: 3_600_000,
        crisis_after: 50_000,
        ..Policy::default()
    }));
    let second = id_of(&s.apply(seen("2", "new"), 1_000).await.expect("apply"));
    let (due, _) = s.due(1_000, 10, vec![]).await.expect("due");
    let page = due
        .iter()
        .find(|p| p.incident.id == second)
        .expect("the second page")
        .id;
    s.complete(page, done, 1_100).await.expect("complete");
    let a = s.get(first).await.expect("get").expect("first");
    let b = s.get(second).await.expect("get").expect("second");
    assert_eq!(
        (a.deadlines.ack, a.deadlines.crisis),
        (Some(2_100), Some(10_000)),
        "deadlines armed before the swap keep their time"
    );
    assert_eq!(
        (b.deadlines.ack, b.deadlines.crisis),
        (Some(1_100 + 3_600_000), Some(51_000)),
        "the new incident's deadlines follow the new policy"
    );
    assert_eq!(
        s.deadlines().await.expect("deadlines"),
        vec![(first, 2_100), (second, 51_000)]
    );
}

/// HackerOne reports: watched once per ticket (the first sighting's clock
/// stays), changed only forward, kept across a restart (`open` opens the
/// same database; the first handle is dropped before the second opens),
/// listed by deadline.
pub(crate) async fn reports(open: impl AsyncFn() -> Box<dyn Store>) {
    use crate::reports::{Notice, Report, ReportChange, ReportState, Thread};
    let s = open().await;
    let ticket = |id: &str, title: &str| Ticket {
        title: title.into(),
        tags: vec!["hackerone".into()],
        priority: "normal".into(),
        ..self::ticket(id, "new")
    };
    let first = Report::new(&ticket("4711", "XSS"), 1_000, (9_000, 7_000), 1_500);
    let (stored, new) = s.watch_report(first.clone()).await.expect("watch");
    assert!(new);
    assert_eq!(stored, first);
    // Seen again (a retried webhook, the poller): the clock is not reset.
    let again = Report::new(
        &ticket("4711", "XSS (edited)"),
        5_000,
        (99_000, 97_000),
        6_000,
    );
    let (stored, new) = s.watch_report(again).await.expect("watch again");
    assert!(!new);
    assert_eq!(stored, first);
    let earlier = Report::new(&ticket("4712", "SSRF"), 500, (8_000, 6_000), 600);
    s.watch_report(earlier).await.expect("watch 4712");
    let listed: Vec<String> = s
        .reports(10)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.ticket)
        .collect();
    assert_eq!(listed, ["4712", "4711"], "oldest deadline first");
    assert_eq!(s.reports(1).await.expect("list").len(), 1);

    let posting = s
        .change_report("4711", ReportChange::Posting(Notice::Reminder), 7_000)
        .await
        .expect("posting")
        .expect("watched");
    assert_eq!(posting.posting, Some(Notice::Reminder));
    assert_eq!(posting.updated_at, 7_000);
    let thread = Thread {
        channel: "C0SECURIT1".into(),
        ts: "1700000000.000100".into(),
    };
    let reminded = s
        .change_report("4711", ReportChange::Reminded(thread.clone()), 7_010)
        .await
        .expect("reminded")
        .expect("watched");
    assert_eq!(
        (reminded.state, reminded.posting, reminded.reminder.clone()),
        (ReportState::Reminded, None, Some(thread.clone()))
    );
    s.change_report("4711", ReportChange::Paged, 9_000)
        .await
        .expect("paged");
    s.change_report("4711", ReportChange::Posting(Notice::Overdue), 9_000)
        .await
        .expect("posting overdue");
    assert!(
        s.change_report("nope", ReportChange::Overdue, 9_000)
            .await
            .expect("unknown")
            .is_none()
    );

    // A new handle on the same database (a restart) finds it all.
    drop(s);
    let s2 = open().await;
    let back = s2.report("4711").await.expect("get").expect("kept");
    assert_eq!(back.reminder, Some(thread));
    assert_eq!(back.posting, Some(Notice::Overdue), "the intent survives");
    assert_eq!(back.paged_at, Some(9_000));
    assert_eq!(back.created_at, 1_000);
    assert_eq!(back.respond_by, 9_000);
    let answered = s2
        .change_report("4711", ReportChange::Answered(9_500), 9_600)
        .await
        .expect("answered")
        .expect("watched");
    assert_eq!(answered.state, ReportState::Answered);
    assert_eq!(answered.answered_at, Some(9_500));
    assert_eq!(answered.posting, None);
    // Answered is final: the change is refused, the row unchanged.
    let after = s2
        .change_report("4711", ReportChange::Overdue, 9_700)
        .await
        .expect("overdue")
        .expect("watched");
    assert_eq!(after, answered);
    assert!(s2.report("4713").await.expect("get").is_none());
}

/// HackerOne's webhook: a row per HackerOne report, made by its first
/// event whether or not the ticket is watched; each event's first
/// occurrence wins; a delivery id applies once; notices settle once; the
/// ticket's link to the report is kept; all of it across a restart.
pub(crate) async fn hackerone_events(open: impl AsyncFn() -> Box<dyn Store>) {
    use crate::reports::h1::{CloseNotice, Closure, H1Change, H1Event, H1Notice};
    use crate::reports::{Report, ReportChange};
    let s = open().await;
    // The event first: no ticket watched yet, the row is kept anyway.
    let closed = H1Change::Event(H1Event::Closed(Closure::Resolved), 1_000);
    let a = s
        .change_h1("548", closed, Some("d-1".into()), 1_000)
        .await
        .expect("closed");
    assert!(a.changed && !a.replayed);
    assert_eq!(a.report.closed_at, Some(1_000));
    assert_eq!(a.report.closure, Some(Closure::Resolved));
    assert_eq!(a.report.seen_at, 1_000);
    // The same delivery again: nothing applied, even a different change.
    let again = H1Change::Event(H1Event::DisclosureRequested, 2_000);
    let r = s
        .change_h1("548", again, Some("d-1".into()), 2_000)
        .await
        .expect("replay");
    assert!(r.replayed && !r.changed);
    assert_eq!(r.report, a.report);
    // Another delivery of a closure: the first one wins.
    let dup = H1Change::Event(H1Event::Closed(Closure::Duplicate), 3_000);
    let d = s
        .change_h1("548", dup, Some("d-2".into()), 3_000)
        .await
        .expect("second closure");
    assert!(!d.changed && !d.replayed);
    assert_eq!(d.report.closure, Some(Closure::Resolved));
    // Disclosure requested, twice: the first request wins.
    for (at, delivery) in [(4_000, "d-3"), (5_000, "d-4")] {
        s.change_h1(
            "548",
            H1Change::Event(H1Event::DisclosureRequested, at),
            Some(delivery.into()),
            at,
        )
        .await
        .expect("disclosure requested");
    }
    let posting = s
        .change_h1("548", H1Change::Posting(H1Notice::Closed), None, 6_000)
        .await
        .expect("posting");
    assert_eq!(posting.report.posting, Some(H1Notice::Closed));
    // Another report, heard of later.
    s.change_h1(
        "549",
        H1Change::Event(H1Event::Disclosed, 6_500),
        None,
        6_500,
    )
    .await
    .expect("549");
    // The ticket names report 548.
    let mut watched = Report::new(&ticket("4711", "new"), 500, (9_000, 7_000), 600);
    watched.h1_report = Some("548".into());
    s.watch_report(watched).await.expect("watch");
    let t = ticket("4712", "new");
    s.watch_report(Report::new(&t, 500, (9_000, 7_000), 600))
        .await
        .expect("watch 4712");
    s.change_report("4712", ReportChange::Linked("549".into()), 700)
        .await
        .expect("link");

    // A restart finds it all, the intent included.
    drop(s);
    let s2 = open().await;
    let back = s2.h1_report("548").await.expect("get").expect("kept");
    assert_eq!(back.disclosure_requested_at, Some(4_000));
    assert_eq!(back.closed_at, Some(1_000));
    assert_eq!(back.posting, Some(H1Notice::Closed), "the intent survives");
    assert_eq!(back.updated_at, 6_000);
    let listed: Vec<String> = s2
        .h1_reports(10)
        .await
        .expect("list")
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(listed, ["549", "548"], "most recently changed first");
    let links: Vec<Option<String>> = s2
        .reports(10)
        .await
        .expect("reports")
        .into_iter()
        .map(|r| r.h1_report)
        .collect();
    assert_eq!(links, [Some("548".to_string()), Some("549".to_string())]);
    // The notice settles once; a replayed delivery still changes nothing.
    let posted = s2
        .change_h1(
            "548",
            H1Change::Posted(H1Notice::Closed, 7_000),
            None,
            7_000,
        )
        .await
        .expect("posted");
    assert_eq!(posted.report.close_notice, Some(CloseNotice::Posted));
    assert_eq!(posted.report.posting, None);
    let twice = s2
        .change_h1("548", H1Change::TicketDone, None, 7_100)
        .await
        .expect("ticket done");
    assert!(!twice.changed);
    assert_eq!(twice.report.close_notice, Some(CloseNotice::Posted));
    let replay = s2
        .change_h1(
            "548",
            H1Change::Event(H1Event::Disclosed, 8_000),
            Some("d-1".into()),
            8_000,
        )
        .await
        .expect("replay after restart");
    assert!(replay.replayed);
    assert_eq!(replay.report.disclosed_at, None);
    assert!(s2.h1_report("550").await.expect("get").is_none());
}

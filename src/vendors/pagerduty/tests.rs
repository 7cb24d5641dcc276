//! Tests of the PagerDuty client: user lookups, and the redelivery checks of a
//! page and an escalation, against the fake.
use super::*;
use crate::fakes::pagerduty::{FakePagerDuty, PagerDutyOptions};
use crate::fakes::{Fault, Timeline};
use crate::vendors::{REQUEST_TIMEOUT, http_client};

const TOKEN: &str = "pd-api-token";

async fn setup() -> (FakePagerDuty, PagerDuty) {
    let fake = FakePagerDuty::start(PagerDutyOptions {
        routing_key: "R0UT1NGKEY0000000000000000000001".into(),
        api_token: TOKEN.into(),
        timeline: Timeline::default(),
    })
    .await
    .unwrap();
    let pd = client(&fake, TOKEN);
    (fake, pd)
}

fn client(fake: &FakePagerDuty, token: &str) -> PagerDuty {
    PagerDuty::new(
        fake.url(),
        fake.url(),
        Secret::new("R0UT1NGKEY0000000000000000000001"),
        Secret::new(token),
        "pagerd@acme.example".into(),
        0,
        http_client(REQUEST_TIMEOUT),
    )
}

fn ana() -> Person {
    Person {
        email: "ana@acme.example".into(),
        name: "Ana Engineer".into(),
    }
}

#[tokio::test]
async fn user_by_id() {
    let (fake, pd) = setup().await;
    fake.add_user("PANA001", "Ana Engineer", "Ana@Acme.example");
    assert_eq!(pd.user("PANA001").await.unwrap(), Some(ana()));
    assert_eq!(pd.user("PNOBODY").await.unwrap(), None);
    assert_eq!(fake.user_requests(), 2);
    // Not an id: no request at all, so nothing odd reaches the path.
    assert_eq!(pd.user("../incidents").await.unwrap(), None);
    assert_eq!(pd.user("").await.unwrap(), None);
    assert_eq!(fake.user_requests(), 2);
}

#[tokio::test]
async fn user_by_email_takes_only_the_exact_address() {
    let (fake, pd) = setup().await;
    // "diana@…" contains "ana@…": the query matches both.
    fake.add_user("PDIANA1", "Diana Prince", "diana@acme.example");
    fake.add_user("PANA001", "Ana Engineer", "Ana@acme.example");
    assert_eq!(
        pd.user_by_email(" ANA@Acme.EXAMPLE ").await.unwrap(),
        Some(ana())
    );
    assert_eq!(pd.user_by_email("na@acme.example").await.unwrap(), None);
    assert_eq!(pd.user_by_email("").await.unwrap(), None);
}

#[tokio::test]
async fn user_by_email_reads_further_pages() {
    let (fake, pd) = setup().await;
    for i in 0..120 {
        fake.add_user(
            &format!("PX{i:05}"),
            &format!("Lookalike {i}"),
            &format!("x{i}.ana@acme.example"),
        );
    }
    fake.add_user("PANA001", "Ana Engineer", "ana@acme.example");
    assert_eq!(
        pd.user_by_email("ana@acme.example").await.unwrap(),
        Some(ana())
    );
    assert_eq!(fake.user_requests(), 2);
}

#[tokio::test]
async fn user_lookup_errors_are_classified() {
    let (fake, pd) = setup().await;
    fake.add_user("PANA001", "Ana Engineer", "ana@acme.example");
    let bad = client(&fake, "wrong-token");
    let e = bad.user("PANA001").await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("401"), "{e}");
    assert!(!e.to_string().contains("wrong-token"), "{e}");
    let e = bad.user_by_email("ana@acme.example").await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");

    fake.rest_faults.push(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        2,
    );
    assert!(pd.user("PANA001").await.unwrap_err().is_retryable());
    assert!(
        pd.user_by_email("ana@acme.example")
            .await
            .unwrap_err()
            .is_retryable()
    );
    fake.rest_faults.push(Fault::MalformedJson, 1);
    assert!(pd.user("PANA001").await.unwrap_err().is_retryable());
    assert_eq!(pd.user("PANA001").await.unwrap(), Some(ana()));
}

#[test]
fn a_user_needs_an_e_mail_and_a_name_falls_back_to_the_summary() {
    let u: UserJson = serde_json::from_value(json!({"id": "P1", "summary": "Ana E."})).unwrap();
    let e = u.person().unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("P1"), "{e}");
    let u: UserJson =
        serde_json::from_value(json!({"id": "P1", "summary": "Ana E.", "email": "A@b.example"}))
            .unwrap();
    assert_eq!(u.person().unwrap(), Person::new("a@b.example", "Ana E."));
}

#[test]
fn routing_keys_are_checked_offline() {
    assert_eq!(
        check_routing_key("e93facc04764012d7bfb002500d5d1a6"),
        Ok(())
    );
    // The spec's own change-event example has a `u`: letters, not just hex.
    assert_eq!(
        check_routing_key("737ea619db564d41bd9824063e1f8au1"),
        Ok(())
    );
    let short = check_routing_key("abc").unwrap_err();
    assert!(short.contains("3 characters"), "{short}");
    let upper = check_routing_key("R0UT1NGKEY0000000000000000000001").unwrap_err();
    assert!(upper.contains("upper-case"), "{upper}");
    let dash = check_routing_key("e93facc0-4764-012d-7bfb-002500d5").unwrap_err();
    assert!(dash.contains("other than a-z and 0-9"), "{dash}");
    // The key is never shown.
    assert!(!dash.contains("e93facc0"), "{dash}");
}

#[tokio::test]
async fn find_user_tells_a_rejected_token_from_an_unknown_user() {
    let (fake, pd) = setup().await;
    fake.add_user("PANA", "Ana Engineer", "ana@acme.example");
    assert_eq!(pd.find_user("ANA@acme.example").await, Ok(Some(ana())));
    assert_eq!(pd.find_user("nobody@acme.example").await, Ok(None));
    let wrong = client(&fake, "not-the-token");
    match wrong.find_user("ana@acme.example").await {
        Err(ProbeError::Rejected { reason }) => {
            assert!(reason.contains("401"), "{reason}");
            assert!(!reason.contains("not-the-token"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // As a delivery error it stays permanent, as before.
    assert!(
        !wrong
            .user_by_email("ana@acme.example")
            .await
            .unwrap_err()
            .is_retryable()
    );
    fake.rest_faults.push(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
    );
    assert!(matches!(
        pd.find_user("ana@acme.example").await,
        Err(ProbeError::Failed(e)) if e.is_retryable()
    ));
}

#[tokio::test]
async fn a_page_sent_before_is_found_not_triggered_again() {
    use crate::engine::{Effect, Outcome};
    use crate::vendors::{Vendor, test_pending};
    let (fake, pd) = setup().await;
    let page = || Effect::Page {
        summary: "Emergency ticket #4711".into(),
    };
    // First attempt: triggered.
    assert_eq!(
        pd.deliver(&test_pending(1, 1, page(), false))
            .await
            .unwrap(),
        None
    );
    let triggers = |fake: &FakePagerDuty| {
        fake.events()
            .iter()
            .filter(|e| e.action == "trigger" && e.dedup_key == "zendesk-4711")
            .count()
    };
    assert_eq!(triggers(&fake), 1);
    let remote = fake.incident_by_key("zendesk-4711").unwrap();
    // Its outcome was not recorded, and the engineer resolved it meanwhile:
    // the redelivery finds the incident and learns its id; no new trigger
    // (which would open a second incident and page again).
    fake.resolve("zendesk-4711", "ana@acme.example")
        .await
        .unwrap();
    let again = pd.deliver(&test_pending(1, 1, page(), true)).await.unwrap();
    assert_eq!(again, Some(Outcome::PagerIncident { id: remote.id }));
    assert_eq!(triggers(&fake), 1);
    assert_eq!(fake.opened_for("zendesk-4711"), 1);
    // A redelivery of a page PagerDuty never saw triggers it.
    let mut other = test_pending(2, 2, page(), true);
    other.incident.dedup_key = "zendesk-4711-2".into();
    assert_eq!(pd.deliver(&other).await.unwrap(), None);
    assert_eq!(fake.opened_for("zendesk-4711-2"), 1);
}

#[tokio::test]
async fn a_timers_escalation_that_a_lost_commit_sent_is_found_back_to_its_deadline() {
    use crate::clock::{Clock as _, SystemClock};
    use crate::engine::Effect;
    use crate::vendors::{Vendor, test_pending};
    let (fake, pd) = setup().await;
    let page = Effect::Page {
        summary: "Emergency ticket #4711".into(),
    };
    pd.deliver(&test_pending(1, 1, page, false)).await.unwrap();
    let now = SystemClock.now();
    let escalate = |due| Effect::PageEscalate {
        level: 2,
        note: "No acknowledgement within 5m: pagerd escalated to level 2.".into(),
        due,
    };
    // The deadline passes and the escalation leaves while its commit syncs.
    pd.deliver(&test_pending(1, 2, escalate(Some(now - 1_000)), false))
        .await
        .unwrap();
    assert_eq!(fake.escalations().len(), 1);
    // A power cut lost that commit; the daemon came back ten minutes later,
    // found the deadline passed and made the escalation again, as a new row
    // (due before the dispatcher started, so maybe sent): PagerDuty's log
    // has it since the deadline, and level 2 is not paged twice.
    let mut again = test_pending(1, 3, escalate(Some(now - 1_000)), true);
    again.created_at = now + 600_000;
    pd.deliver(&again).await.unwrap();
    assert_eq!(fake.escalations().len(), 1, "escalated twice");
    // A re-page ten minutes later by someone (no deadline) is not mistaken
    // for it.
    let mut repage = test_pending(1, 4, escalate(None), true);
    repage.created_at = now + 600_000;
    pd.deliver(&repage).await.unwrap();
    assert_eq!(fake.escalations().len(), 2);
}

//! The after-crisis effects against the Google stand-in: the hand-off call
//! booked once in Calendar with a Meet link and its attendees (as the
//! impersonated user), and the timeline appended once to the crisis doc.

use super::calendar::{Calendar, CalendarSettings};
use super::deliver::Docs;
use super::*;
use crate::engine::{Effect, Handoff, Outcome};
use crate::fakes::Timeline;
use crate::fakes::google::{
    DEMO_PUBLIC_KEY_PEM, FakeGoogle, FakeGoogleOptions, demo_service_account_json,
};
use crate::store::Pending;
use crate::vendors::{REQUEST_TIMEOUT, Vendor, http_client, test_pending};

const EMAIL: &str = "pagerd@pagerd-demo.iam.gserviceaccount.com";
const USER: &str = "oncall-bot@acme.example";
const CALENDAR: &str = "handoffs@acme.example";
/// 2030-01-01T10:00:00Z.
const START: i64 = 1_893_492_000_000;

/// The stand-in with delegation for acme.example and one calendar that the
/// user and the service account may write to.
async fn fake() -> FakeGoogle {
    let fake = FakeGoogle::start(FakeGoogleOptions {
        client_email: EMAIL.into(),
        public_key_pem: DEMO_PUBLIC_KEY_PEM.into(),
        timeline: Timeline::default(),
    })
    .await
    .expect("fake Google");
    fake.allow_delegation("acme.example");
    fake.add_calendar(CALENDAR, "Crisis hand-offs", &[USER, EMAIL]);
    fake
}

fn key(fake: &FakeGoogle) -> ServiceAccountKey {
    ServiceAccountKey::from_json(&demo_service_account_json(EMAIL, &fake.token_url()))
        .expect("demo key")
}

fn calendar(fake: &FakeGoogle, impersonate: Option<&str>, calendar_id: &str) -> Calendar {
    let settings = CalendarSettings {
        token_url: fake.token_url(),
        calendar_url: fake.calendar_url(),
        calendar_id: calendar_id.into(),
        impersonate: impersonate.map(str::to_string),
    };
    Calendar::new(settings, key(fake), http_client(REQUEST_TIMEOUT))
}

fn booking(incident: i64, row: i64, maybe_sent: bool) -> Pending {
    let effect = Effect::BookHandoff {
        title: "Hand-off: incident 42 <db down>".into(),
        description: "What happened, and what is left.\n<b>not markup</b>".into(),
        start: START,
        minutes: 30,
        attendees: vec!["ana@acme.example".into(), "bo@acme.example".into()],
    };
    test_pending(incident, row, effect, maybe_sent)
}

#[tokio::test]
async fn books_one_event_with_a_meet_link_and_the_attendees() {
    let fake = fake().await;
    let cal = calendar(&fake, Some(USER), CALENDAR);
    let outcome = cal.deliver(&booking(42, 17, false)).await.unwrap();
    let events = fake.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    let meet = e.hangout_link.clone().expect("a Meet link");
    assert_eq!(
        outcome,
        Some(Outcome::Handoff {
            handoff: Handoff {
                meet_url: meet,
                event_url: format!("{}/calendar/event/{}", fake.url(), e.id),
            }
        })
    );
    assert_eq!(e.calendar_id, CALENDAR);
    assert_eq!(e.attendees, ["ana@acme.example", "bo@acme.example"]);
    assert_eq!(e.organizer, USER, "booked as the impersonated user");
    assert_eq!(e.send_updates.as_deref(), Some("all"), "invitations sent");
    assert_eq!(e.start, "2030-01-01T10:00:00Z");
    assert_eq!(e.end, "2030-01-01T10:30:00Z");
    assert_eq!(e.request_id.as_deref(), Some("pagerd-42-17"));
    assert_eq!(e.summary, "Hand-off: incident 42 <db down>");
    assert!(
        e.description.contains("&lt;b&gt;not markup&lt;/b&gt;"),
        "Calendar reads descriptions as HTML: {}",
        e.description
    );
    assert_eq!(
        e.private.get("pagerd_incident").map(String::as_str),
        Some("42")
    );
    assert_eq!(
        e.private.get("pagerd_key").map(String::as_str),
        Some("pagerd-42-17")
    );
    // The JWT asked to act as the user.
    assert_eq!(fake.token_subjects(), [Some(USER.to_string())]);

    // A redelivery (an earlier attempt may have reached Google) finds it.
    let again = cal.deliver(&booking(42, 17, true)).await.unwrap();
    assert_eq!(again, outcome);
    assert_eq!(fake.events().len(), 1);
    // Another effect is another event.
    cal.deliver(&booking(42, 18, false)).await.unwrap();
    assert_eq!(fake.events().len(), 2);
}

#[tokio::test]
async fn a_meet_link_still_being_created_is_read_on_the_next_attempt() {
    let fake = fake().await;
    fake.set_meet_pending(true);
    let cal = calendar(&fake, Some(USER), CALENDAR);
    let e = cal.deliver(&booking(7, 1, false)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let outcome = cal.deliver(&booking(7, 1, true)).await.unwrap();
    let events = fake.events();
    assert_eq!(events.len(), 1, "booked once");
    match outcome {
        Some(Outcome::Handoff { handoff }) => {
            assert_eq!(Some(handoff.meet_url), events[0].hangout_link)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn without_impersonation_the_event_names_the_attendees_instead() {
    let fake = fake().await;
    let cal = calendar(&fake, None, CALENDAR);
    cal.deliver(&booking(3, 1, false)).await.unwrap();
    let e = &fake.events()[0];
    assert!(e.attendees.is_empty(), "{e:?}");
    assert!(e.hangout_link.is_some());
    assert_eq!(e.organizer, EMAIL);
    assert!(
        e.description
            .contains("Please join: ana@acme.example, bo@acme.example"),
        "{}",
        e.description
    );
    assert_eq!(fake.token_subjects(), [None]);
}

#[tokio::test]
async fn delegation_refused_or_calendar_unseen_is_permanent_and_probed() {
    let fake = fake().await;
    // Not a delegated domain: the token endpoint refuses the sub.
    let outsider = calendar(&fake, Some("eve@elsewhere.example"), CALENDAR);
    let e = outsider.deliver(&booking(1, 1, false)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("unauthorized_client"), "{e}");
    assert!(matches!(
        outsider.check().await,
        Err(ProbeError::Rejected { .. })
    ));
    // A calendar the user cannot see: 404, permanent; the probe says so.
    let lost = calendar(&fake, Some(USER), "nope@acme.example");
    assert!(
        !lost
            .deliver(&booking(1, 1, false))
            .await
            .unwrap_err()
            .is_retryable()
    );
    assert!(matches!(
        lost.check().await,
        Err(ProbeError::NotFound { .. })
    ));
    let good = calendar(&fake, Some(USER), CALENDAR).check().await.unwrap();
    assert_eq!(good.summary, "Crisis hand-offs");
    assert!(fake.events().is_empty());
}

fn docs(fake: &FakeGoogle) -> Docs {
    let settings = GoogleSettings {
        token_url: fake.token_url(),
        drive_url: fake.drive_url(),
        docs_url: fake.docs_url(),
        template_id: None,
        folder_id: None,
    };
    Docs {
        google: Google::new(settings, key(fake), http_client(REQUEST_TIMEOUT)),
        share_domain: None,
        customer_role: "commenter".into(),
    }
}

fn timeline(incident: i64, row: i64, doc_id: &str, maybe_sent: bool) -> Pending {
    let effect = Effect::AppendTimeline {
        text: "14:00 paged\n14:03 acknowledged by Ana\n15:00 crisis\n".into(),
    };
    let mut p = test_pending(incident, row, effect, maybe_sent);
    if let Some(c) = p.incident.crisis.as_mut()
        && let Some(d) = c.doc.as_mut()
    {
        d.id = doc_id.to_string();
    }
    p
}

#[tokio::test]
async fn the_timeline_is_appended_once_even_when_delivered_twice() {
    let fake = fake().await;
    let docs = docs(&fake);
    let doc = docs
        .google
        .create_doc("Incident 42", "Summary: db down", "inc-42/doc")
        .await
        .unwrap();
    assert_eq!(
        docs.deliver(&timeline(42, 9, &doc.id, false))
            .await
            .unwrap(),
        None
    );
    // The dispatcher could not tell whether that reached Docs: again.
    docs.deliver(&timeline(42, 9, &doc.id, true)).await.unwrap();
    docs.deliver(&timeline(42, 9, &doc.id, true)).await.unwrap();
    let text = &fake.docs()[0].text;
    assert_eq!(
        text,
        "Summary: db down\nTimeline of incident 42 (pagerd, pagerd-42-9)\n\
         14:00 paged\n14:03 acknowledged by Ana\n15:00 crisis"
    );
    // A later timeline (another effect) is appended after it.
    docs.deliver(&timeline(42, 10, &doc.id, true))
        .await
        .unwrap();
    assert_eq!(
        fake.docs()[0]
            .text
            .matches("Timeline of incident 42")
            .count(),
        2
    );
}

#[tokio::test]
async fn customer_text_quoting_the_marker_does_not_stop_the_append() {
    let fake = fake().await;
    let docs = docs(&fake);
    let doc = docs
        .google
        .create_doc(
            "Incident 42",
            "Title: Timeline of incident 42 (pagerd, pagerd-42-9)",
            "inc-42/doc",
        )
        .await
        .unwrap();
    docs.deliver(&timeline(42, 9, &doc.id, true)).await.unwrap();
    assert!(
        fake.docs()[0]
            .text
            .contains("\nTimeline of incident 42 (pagerd, pagerd-42-9)\n14:00"),
        "{}",
        fake.docs()[0].text
    );
}

//! Tests of `users.info` against the fake Slack.
use super::*;
use crate::fakes::slack::{BOT_USER_ID, FakeSlack, FakeSlackOptions};
use crate::fakes::{Fault, Timeline};
use crate::vendors::{REQUEST_TIMEOUT, http_client};

const TOKEN: &str = "xoxb-test-token";

async fn setup(scopes: Option<Vec<String>>) -> (FakeSlack, Slack) {
    let fake = FakeSlack::start(FakeSlackOptions {
        bot_token: TOKEN.into(),
        channels: Vec::new(),
        timeline: Timeline::default(),
        scopes,
    })
    .await
    .unwrap();
    fake.add_user("U0ANA00001", "Ana Engineer", "Ana@Acme.example");
    let slack = Slack::new(fake.url(), Secret::new(TOKEN), http_client(REQUEST_TIMEOUT));
    (fake, slack)
}

#[tokio::test]
async fn user_info_gives_the_e_mail_and_real_name() {
    let (fake, slack) = setup(None).await;
    assert_eq!(
        slack.user_info("U0ANA00001").await.unwrap(),
        Some(Person::new("ana@acme.example", "Ana Engineer"))
    );
    assert_eq!(slack.user_info("U0NOBODY01").await.unwrap(), None);
    // Bots have no e-mail: nobody to count.
    assert_eq!(slack.user_info(BOT_USER_ID).await.unwrap(), None);
    assert_eq!(fake.user_lookups(), 3);
}

#[tokio::test]
async fn missing_scopes_are_permanent_and_say_which() {
    for granted in [vec!["chat:write"], vec!["chat:write", "users:read"]] {
        let scopes = granted.iter().map(|s| s.to_string()).collect();
        let (_fake, slack) = setup(Some(scopes)).await;
        let e = slack.user_info("U0ANA00001").await.unwrap_err();
        assert!(!e.is_retryable(), "{e}");
        let text = e.to_string();
        assert!(text.contains("missing_scope"), "{text}");
        assert!(
            text.contains("users:read and users:read.email scopes"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn user_info_errors_are_classified() {
    let (fake, slack) = setup(None).await;
    let bad = Slack::new(
        fake.url(),
        Secret::new("xoxb-wrong"),
        http_client(REQUEST_TIMEOUT),
    );
    let e = bad.user_info("U0ANA00001").await.unwrap_err();
    assert_eq!(
        e,
        DeliveryError::permanent("Slack users.info of U0ANA00001: invalid_auth")
    );
    fake.faults.push(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
    );
    assert!(
        slack
            .user_info("U0ANA00001")
            .await
            .unwrap_err()
            .is_retryable()
    );
    fake.faults.push(Fault::MalformedJson, 1);
    assert!(
        slack
            .user_info("U0ANA00001")
            .await
            .unwrap_err()
            .is_retryable()
    );
    assert!(slack.user_info("U0ANA00001").await.unwrap().is_some());
}

#[test]
fn names_fall_back_and_a_missing_e_mail_names_the_scope() {
    let person = |u: Value| person_of("users.info of U1", &u);
    let profile = json!({"email": "Ana@acme.example", "real_name": "Ana E."});
    let u = json!({"id": "U1", "real_name": " ", "name": "ana", "profile": profile});
    assert_eq!(
        person(u).unwrap(),
        Some(Person::new("ana@acme.example", "Ana E."))
    );
    let u = json!({"id": "U1", "name": "ana", "profile": {"email": "ana@acme.example"}});
    assert_eq!(person(u).unwrap().unwrap().name, "ana");
    let u = json!({"id": "U1", "profile": {"email": "ana@acme.example"}});
    assert_eq!(person(u).unwrap().unwrap().name, "ana@acme.example");
    let e = person(json!({"id": "U1", "real_name": "Ana", "profile": {}})).unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("users:read.email"), "{e}");
    assert_eq!(person(json!({"id": "USLACKBOT"})).unwrap(), None);
    assert_eq!(person(json!({"id": "B1", "is_bot": true})).unwrap(), None);
}

//! The Drive/Docs client against the Google stand-in: docs created once,
//! filled, shared, deprecated; keys, tokens and errors classified.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;
use crate::fakes::google::{
    DEMO_KEY_PEM, FakeGoogle, FakeGoogleOptions, demo_service_account_json,
};
use crate::fakes::{Fault, Timeline};
use crate::vendors::{REQUEST_TIMEOUT, http_client};

const EMAIL: &str = "pagerd@pagerd-demo.iam.gserviceaccount.com";

/// A client of `fake` with `key`, no template, no folder.
fn with_key(fake: &FakeGoogle, key: ServiceAccountKey) -> Google {
    let settings = GoogleSettings {
        token_url: fake.token_url(),
        drive_url: fake.drive_url(),
        docs_url: fake.docs_url(),
        template_id: None,
        folder_id: None,
    };
    Google::new(settings, key, http_client(REQUEST_TIMEOUT))
}

async fn setup(template: Option<&str>) -> (FakeGoogle, Google) {
    let fake = FakeGoogle::start(FakeGoogleOptions {
        client_email: EMAIL.into(),
        public_key_pem: crate::fakes::google::DEMO_PUBLIC_KEY_PEM.into(),
        timeline: Timeline::default(),
    })
    .await
    .unwrap();
    if let Some(t) = template {
        fake.add_template(
            t,
            "Postmortem template",
            "Incident report\n{{incident}}\nOwner: tbd",
        );
    }
    let key =
        ServiceAccountKey::from_json(&demo_service_account_json(EMAIL, &fake.token_url())).unwrap();
    let settings = GoogleSettings {
        token_url: fake.token_url(),
        drive_url: fake.drive_url(),
        docs_url: fake.docs_url(),
        template_id: template.map(str::to_string),
        folder_id: Some("folder-1".into()),
    };
    let google = Google::new(settings, key, http_client(REQUEST_TIMEOUT));
    (fake, google)
}

#[tokio::test]
async fn file_meta_reads_without_writing_and_says_what_is_missing() {
    let (fake, google) = setup(Some("tmpl-1")).await;
    fake.add_folder("folder-1", "Crisis docs");
    google.check_token().await.unwrap();
    let t = google.file_meta("tmpl-1").await.unwrap();
    assert_eq!(
        (t.id.as_str(), t.name.as_str(), t.mime_type.as_str()),
        ("tmpl-1", "Postmortem template", GOOGLE_DOC_MIME)
    );
    assert_eq!(
        google.file_meta("folder-1").await.unwrap().mime_type,
        FOLDER_MIME
    );
    assert!(matches!(
        google.file_meta("nope").await,
        Err(ProbeError::NotFound { .. })
    ));
    assert!(
        fake.requests().iter().all(|r| r.starts_with("GET ")),
        "{:?}",
        fake.requests()
    );
    assert!(fake.docs().is_empty());
}

#[tokio::test]
async fn a_refused_key_is_rejected() {
    let (fake, _) = setup(None).await;
    // A key the fake does not know: the grant is refused.
    let other = ServiceAccountKey::from_json(&demo_service_account_json(
        "someone-else@acme-demo.iam.gserviceaccount.com",
        &fake.token_url(),
    ))
    .unwrap();
    let google = with_key(&fake, other);
    assert!(
        matches!(google.check_token().await, Err(ProbeError::Rejected { .. })),
        "{:?}",
        google.check_token().await
    );
}

#[test]
fn key_files_are_validated_without_echoing_the_key() {
    let good = demo_service_account_json(EMAIL, DEFAULT_TOKEN_URL);
    let key = ServiceAccountKey::from_json(&good).unwrap();
    assert_eq!(key.client_email, EMAIL);
    assert!(key.private_key_id.is_some());
    assert_eq!(key.token_uri.as_deref(), Some(DEFAULT_TOKEN_URL));
    assert!(!format!("{key:?}").contains("PRIVATE KEY"));

    let mut v: Value = serde_json::from_str(&good).unwrap();
    v["private_key"] = json!(DEMO_KEY_PEM.replace("MII", "MIX"));
    let e = ServiceAccountKey::from_json(&v.to_string()).unwrap_err();
    assert!(e.contains("not a PEM-encoded RSA private key"), "{e}");
    assert!(!e.contains("BEGIN") && !e.contains("MIX"), "{e}");

    v["private_key"] = json!(crate::fakes::google::DEMO_PUBLIC_KEY_PEM);
    assert!(ServiceAccountKey::from_json(&v.to_string()).is_err());
    v["private_key"] = json!(DEMO_KEY_PEM);
    v["type"] = json!("authorized_user");
    assert!(
        ServiceAccountKey::from_json(&v.to_string())
            .unwrap_err()
            .contains("authorized_user")
    );
    assert!(
        ServiceAccountKey::from_json("{")
            .unwrap_err()
            .contains("not a JSON key file")
    );
    assert!(
        ServiceAccountKey::from_json("{}")
            .unwrap_err()
            .contains("client_email")
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.json");
    std::fs::write(&path, good).unwrap();
    assert_eq!(ServiceAccountKey::from_file(&path).unwrap(), key);
    assert!(
        ServiceAccountKey::from_file(&dir.path().join("nope.json"))
            .unwrap_err()
            .contains("cannot read")
    );
}

#[tokio::test]
async fn the_fake_tells_the_story() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let fake = FakeGoogle::start(FakeGoogleOptions {
        client_email: EMAIL.into(),
        public_key_pem: crate::fakes::google::DEMO_PUBLIC_KEY_PEM.into(),
        timeline: Timeline::new(tx),
    })
    .await
    .unwrap();
    fake.add_template("tmpl", "Postmortem template", "{{incident}}");
    let key =
        ServiceAccountKey::from_json(&demo_service_account_json(EMAIL, &fake.token_url())).unwrap();
    let settings = GoogleSettings {
        token_url: fake.token_url(),
        drive_url: fake.drive_url(),
        docs_url: fake.docs_url(),
        template_id: Some("tmpl".into()),
        folder_id: None,
    };
    let google = Google::new(settings, key, http_client(REQUEST_TIMEOUT));
    let doc = google
        .create_doc("Incident 3", "db down", "inc-3/doc")
        .await
        .unwrap();
    google
        .share(
            &doc.id,
            &Grantee::User("alice@example.com".into()),
            "writer",
        )
        .await
        .unwrap();
    google
        .deprecate(&doc.id, "[OLD] ", "Superseded.")
        .await
        .unwrap();
    drop(google);
    drop(fake);
    let mut lines = Vec::new();
    while let Some(l) = rx.recv().await {
        lines.push(l);
    }
    assert_eq!(
        lines,
        [
            format!("Google: issued an access token to {EMAIL}"),
            "Google Drive: search for a doc marked pagerd_key=inc-3/doc found 0".to_string(),
            "Google Drive: copied \"Postmortem template\" to new doc \"Incident 3\" marked pagerd_key=inc-3/doc"
                .to_string(),
            "Google Docs: edited \"Incident 3\": replaced 1 × {{incident}}".to_string(),
            "Google Drive: shared \"Incident 3\" with user alice@example.com as writer (notification e-mail sent)"
                .to_string(),
            "Google Drive: renamed \"Incident 3\" to \"[OLD] Incident 3\"".to_string(),
            "Google Docs: edited \"[OLD] Incident 3\": inserted 12 characters".to_string(),
        ]
    );
}

#[tokio::test]
async fn methods_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let (_fake, google) = setup(None).await;
    assert_send(&google.create_doc("t", "b", "m"));
    assert_send(&google.share("d", &Grantee::User("a@b".into()), "reader"));
    assert_send(&google.deprecate("d", "[X] ", "n"));
    assert!(!format!("{google:?}").contains("PRIVATE"));
}

#[tokio::test]
async fn creates_a_blank_doc_once_with_one_token() {
    let (fake, google) = setup(None).await;
    let doc = google
        .create_doc(
            "Incident 42: db down",
            "Summary: db down\nImpact: all",
            "inc-42/doc",
        )
        .await
        .unwrap();
    assert!(doc.url.contains(&doc.id));
    let again = google
        .create_doc(
            "Incident 42: db down",
            "Summary: db down\nImpact: all",
            "inc-42/doc",
        )
        .await
        .unwrap();
    assert_eq!(again, doc);
    assert_eq!(fake.tokens_issued(), 1);

    let docs = fake.docs();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].name, "Incident 42: db down");
    assert_eq!(docs[0].text, "Summary: db down\nImpact: all");
    assert_eq!(
        docs[0].app_properties.get("pagerd_key").map(String::as_str),
        Some("inc-42/doc")
    );

    google
        .create_doc("Incident 43", "other", "inc-43/doc")
        .await
        .unwrap();
    assert_eq!(fake.docs().len(), 2);
    assert_eq!(fake.tokens_issued(), 1);
}

#[tokio::test]
async fn a_doc_left_blank_by_a_crash_is_filled_on_retry() {
    let (fake, google) = setup(None).await;
    // As if the attempt stopped between files.create and the write.
    let doc = google
        .create_doc("Incident 7", "", "inc-7/doc")
        .await
        .unwrap();
    assert_eq!(fake.docs()[0].text, "");
    let again = google
        .create_doc("Incident 7", "the body", "inc-7/doc")
        .await
        .unwrap();
    assert_eq!(again.id, doc.id);
    assert_eq!(fake.docs()[0].text, "the body");
    // Filled docs are left alone.
    google
        .create_doc("Incident 7", "the body", "inc-7/doc")
        .await
        .unwrap();
    assert_eq!(fake.docs()[0].text, "the body");
}

#[tokio::test]
async fn creates_from_a_template() {
    let (fake, google) = setup(Some("tmpl-1")).await;
    let doc = google
        .create_doc("Incident 9", "Summary: cache cold", "inc-9/doc")
        .await
        .unwrap();
    let again = google
        .create_doc("Incident 9", "Summary: cache cold", "inc-9/doc")
        .await
        .unwrap();
    assert_eq!(again, doc);
    let docs = fake.docs();
    assert_eq!(docs.len(), 1, "the template is not listed, one copy made");
    assert_eq!(docs[0].id, doc.id);
    assert_eq!(
        docs[0].text,
        "Incident report\nSummary: cache cold\nOwner: tbd"
    );
}

#[tokio::test]
async fn missing_template_is_permanent() {
    let (_fake, google) = setup(None).await;
    let google = Google {
        settings: GoogleSettings {
            template_id: Some("nope".into()),
            ..google.settings.clone()
        },
        ..google
    };
    let e = google.create_doc("t", "b", "m").await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("404"), "{e}");
}

#[tokio::test]
async fn shares_once_per_grantee() {
    let (fake, google) = setup(None).await;
    let doc = google
        .create_doc("Incident 1", "b", "inc-1/doc")
        .await
        .unwrap();
    google
        .share(&doc.id, &Grantee::Domain("example.com".into()), "commenter")
        .await
        .unwrap();
    google
        .share(
            &doc.id,
            &Grantee::User("alice@example.com".into()),
            "writer",
        )
        .await
        .unwrap();
    google
        .share(&doc.id, &Grantee::Domain("example.com".into()), "commenter")
        .await
        .unwrap();
    google
        .share(
            &doc.id,
            &Grantee::User("Alice@example.com".into()),
            "reader",
        )
        .await
        .unwrap();
    let creates = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST") && r.ends_with("/permissions"))
        .count();
    assert_eq!(creates, 2);
    let perms = &fake.docs()[0].permissions;
    assert!(perms.iter().any(|p| p["type"] == "domain"
        && p["domain"] == "example.com"
        && p["role"] == "commenter"));
    assert!(perms.iter().any(|p| p["type"] == "user"
        && p["emailAddress"] == "alice@example.com"
        && p["role"] == "writer"));

    let e = google
        .share(&doc.id, &Grantee::User("bob@example.com".into()), "owner")
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    let e = google
        .share(
            "missing",
            &Grantee::User("bob@example.com".into()),
            "reader",
        )
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
}

#[tokio::test]
async fn deprecate_is_idempotent() {
    let (fake, google) = setup(None).await;
    let doc = google
        .create_doc("Incident 5", "Summary", "inc-5/doc")
        .await
        .unwrap();
    for _ in 0..2 {
        google
            .deprecate(
                &doc.id,
                "[SUPERSEDED] ",
                "This doc is superseded by incident 6.",
            )
            .await
            .unwrap();
    }
    let d = &fake.docs()[0];
    assert_eq!(d.name, "[SUPERSEDED] Incident 5");
    assert_eq!(d.text, "This doc is superseded by incident 6.\nSummary");
}

#[tokio::test]
async fn errors_and_token_expiry_are_classified() {
    let (fake, google) = setup(None).await;
    google.create_doc("a", "b", "k1").await.unwrap();

    // A revoked token: 401, retryable, and the next call gets a new one.
    fake.revoke_tokens();
    let e = google.create_doc("c", "d", "k2").await.unwrap_err();
    assert!(e.is_retryable() && e.to_string().contains("401"), "{e}");
    google.create_doc("c", "d", "k2").await.unwrap();
    assert_eq!(fake.tokens_issued(), 2);

    fake.faults.push(
        Fault::Status {
            status: 429,
            retry_after: Some(3),
        },
        1,
    );
    match google.create_doc("e", "f", "k3").await.unwrap_err() {
        DeliveryError::Retryable { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(3)))
        }
        other => panic!("{other:?}"),
    }
    fake.faults.push(
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        1,
    );
    assert!(
        google
            .create_doc("e", "f", "k3")
            .await
            .unwrap_err()
            .is_retryable()
    );
    let e = google.deprecate("nope", "[X] ", "n").await.unwrap_err();
    assert!(
        !e.is_retryable() && e.to_string().contains("NOT_FOUND"),
        "{e}"
    );

    let classified = api_error(
        "Google Drive files.list",
        StatusCode::FORBIDDEN,
        &reqwest::header::HeaderMap::new(),
        r#"{"error":{"code":403,"message":"User rate limit exceeded","errors":[{"reason":"userRateLimitExceeded"}]}}"#,
    );
    assert!(classified.is_retryable());
    let classified = api_error(
        "Google Drive files.list",
        StatusCode::FORBIDDEN,
        &reqwest::header::HeaderMap::new(),
        r#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}"#,
    );
    assert_eq!(
        classified,
        DeliveryError::permanent(
            "Google Drive files.list answered 403 Forbidden PERMISSION_DENIED: The caller does not have permission"
        )
    );
}

#[tokio::test]
async fn a_key_the_token_endpoint_refuses_is_permanent() {
    let (fake, _) = setup(None).await;
    let key = ServiceAccountKey::from_json(&demo_service_account_json(
        "someone-else@x.iam.gserviceaccount.com",
        &fake.token_url(),
    ))
    .unwrap();
    let google = with_key(&fake, key);
    let e = google.create_doc("t", "b", "m").await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("invalid_grant"), "{e}");
    assert!(!e.to_string().contains("eyJ"), "no JWT in errors: {e}");
    assert_eq!(fake.tokens_issued(), 0);
}

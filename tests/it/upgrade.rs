//! A store written by pagerd 0.1.0 (`tests/fixtures/store-0.1.0.*`) is
//! opened by this version on both stores: overdue deadlines fire once,
//! pending effects are delivered once, nothing delivered is sent again.

use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Backend, Harness, eventually, postgres_url};
use pagerd::fakes::stand_ins::{Extra, Options, secrets};

const FIXTURE_SQLITE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/store-0.1.0.sqlite"
);
const FIXTURE_ROWS: &str = include_str!("../fixtures/store-0.1.0.json");

/// Builds a 0.1.0 PostgreSQL store from the fixture's rows in a fresh
/// schema; returns its `[store]` lines.
async fn postgres_0_1_0() -> Option<String> {
    let base = postgres_url()?;
    let url = pagerd::store::postgres::test_schema_url(&base)
        .await
        .expect("test schema");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(pagerd::store::postgres::SCHEMA_V1)
        .await
        .expect("schema 1");
    client
        .batch_execute(
            "CREATE TABLE pagerd_schema (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
             INSERT INTO pagerd_schema(version) VALUES (1);",
        )
        .await
        .expect("version 1");
    let rows: Value = serde_json::from_str(FIXTURE_ROWS).expect("fixture rows");
    for (table, cols) in [
        (
            "incidents",
            "id,ticket_id,dedup_key,status,next_due,opened_at,updated_at,state",
        ),
        ("journal", "id,incident_id,at,event,effects"),
        (
            "outbox",
            "id,incident_id,lane,effect,created_at,next_attempt_at,attempts,last_error,done,failed,done_at",
        ),
        ("deliveries", "source,id,at"),
    ] {
        for row in rows[table].as_array().expect("rows") {
            // Let PostgreSQL convert the values: one JSON row at a time.
            let sql = format!(
                "INSERT INTO {table}({cols}) SELECT {cols} FROM json_populate_record(NULL::{table}, $1::text::json)"
            );
            let mut row = row.clone();
            for flag in ["done", "failed"] {
                if let Some(v) = row.get(flag).and_then(Value::as_i64) {
                    row[flag] = json!(v != 0);
                }
            }
            client
                .execute(&sql, &[&row.to_string()])
                .await
                .unwrap_or_else(|e| panic!("insert into {table}: {e}"));
        }
    }
    for table in ["incidents", "journal", "outbox"] {
        client
            .execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
                ),
                &[],
            )
            .await
            .expect("identity");
    }
    Some(format!(
        "url = {url:?}\nlease_renew = \"200ms\"\nlease_ttl = \"1s\""
    ))
}

async fn a_store_written_by_0_1_0_keeps_working(b: Backend) {
    let store = match b {
        Backend::Sqlite => String::new(),
        Backend::Postgres => match postgres_0_1_0().await {
            Some(lines) => lines,
            None => return,
        },
    };
    let extra = Extra {
        store,
        ..Extra::default()
    };
    let mut h = Harness::new(Options::default(), extra).await;
    if b == Backend::Sqlite {
        std::fs::copy(FIXTURE_SQLITE, h.dir.path().join("pagerd.db")).expect("copy fixture");
    }
    // PagerDuty holds the incident 0.1.0 paged for ticket 9001.
    let trigger = json!({
        "routing_key": secrets::ROUTING_KEY, "event_action": "trigger", "dedup_key": "zendesk-9001",
        "payload": {"summary": "Emergency ticket #9001", "source": "zendesk", "severity": "critical"},
    });
    let resp = reqwest::Client::new()
        .post(format!("{}/v2/enqueue", h.vendors.pagerduty.url()))
        .json(&trigger)
        .send()
        .await
        .expect("seed PagerDuty");
    assert_eq!(resp.status(), 202);
    h.start().await;

    // 9002's page was pending: delivered once. 9001's and 9002's ack
    // deadlines were overdue: each escalates once.
    eventually("the pending page", || async {
        h.triggers("zendesk-9002") == 1
    })
    .await;
    eventually("both overdue escalations", || async {
        h.vendors.pagerduty.escalations().len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        h.triggers("zendesk-9001"),
        1,
        "0.1.0's page, not sent again"
    );
    assert_eq!(h.triggers("zendesk-9002"), 1);
    assert_eq!(
        h.vendors.pagerduty.escalations().len(),
        2,
        "each escalates once"
    );
    // Delivered before the upgrade: never sent again.
    assert!(h.vendors.zendesk.comments(9003).is_empty());
    let acted: Vec<String> = h
        .vendors
        .pagerduty
        .events()
        .iter()
        .filter(|e| e.action != "trigger")
        .map(|e| format!("{} {}", e.action, e.dedup_key))
        .collect();
    assert!(acted.is_empty(), "re-sent: {acted:?}");

    // Every stored incident loads, with what 0.1.0 knew turned into the new
    // fields.
    assert_eq!(h.incident_count().await, 4);
    let one = &h.incident(1).await["incident"];
    assert_eq!(one["episode"], 1, "{one}");
    assert_eq!(one["dedup_key"], "zendesk-9001");
    assert_eq!(one["paged"], true, "its trigger was delivered: {one}");
    assert_eq!(one["level"], 2);
    let three = &h.incident(3).await["incident"];
    assert_eq!(three["responders"], json!(["ana"]), "{three}");
    assert_eq!(h.incident(4).await["incident"]["status"], "resolved");
    // And the store takes new tickets as before.
    h.ticket(9005, "urgent", &[]).await;
    eventually("a new page", || async { h.triggers("zendesk-9005") == 1 }).await;
}

#[tokio::test]
async fn sqlite_store_of_0_1_0() {
    a_store_written_by_0_1_0_keeps_working(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_store_of_0_1_0() {
    a_store_written_by_0_1_0_keeps_working(Backend::Postgres).await;
}

//! Tests of the directory, against the PagerDuty and Slack fakes.
use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::fakes::pagerduty::{FakePagerDuty, PagerDutyOptions};
use crate::fakes::slack::{FakeSlack, FakeSlackOptions};
use crate::fakes::{Fault, Timeline};
use crate::secret::Secret;
use crate::vendors::{REQUEST_TIMEOUT, http_client};

const PD_TOKEN: &str = "pd-api-token";
const SLACK_TOKEN: &str = "xoxb-test-token";
const MINUTE: i64 = 60_000;

/// A clock that only moves when told.
struct ManualClock(AtomicI64);

impl ManualClock {
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
    fn real(&self, ms: Millis) -> Duration {
        Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0))
    }
    fn clock_time(&self, d: Duration) -> Millis {
        millis(d)
    }
}

struct World {
    pd: FakePagerDuty,
    slack: FakeSlack,
    clock: Arc<ManualClock>,
    dir: Directory,
}

async fn world_with(table: &[(&str, &str)], slack_scopes: Option<Vec<String>>) -> World {
    let pd = FakePagerDuty::start(PagerDutyOptions {
        routing_key: "R0UT1NGKEY0000000000000000000001".into(),
        api_token: PD_TOKEN.into(),
        timeline: Timeline::default(),
    })
    .await
    .unwrap();
    pd.add_user("PANA001", "Ana E.", "ana@acme.example");
    pd.add_user("PBOB001", "Bob Builder", "Bob@Acme.example");
    let slack = FakeSlack::start(FakeSlackOptions {
        bot_token: SLACK_TOKEN.into(),
        channels: Vec::new(),
        timeline: Timeline::default(),
        scopes: slack_scopes,
    })
    .await
    .unwrap();
    slack.add_user("U0ANA00001", "Ana from Slack", "ANA@acme.example");
    slack.add_user("U0CARL0001", "Carl Coder", "carl@acme.example");
    let http = http_client(REQUEST_TIMEOUT);
    let pd_client = PagerDuty::new(
        pd.url(),
        pd.url(),
        Secret::new("R0UT1NGKEY0000000000000000000001"),
        Secret::new(PD_TOKEN),
        "pagerd@acme.example".into(),
        0,
        http.clone(),
    );
    let slack_client = Slack::new(slack.url(), Secret::new(SLACK_TOKEN), http);
    let clock = Arc::new(ManualClock(AtomicI64::new(1_700_000_000_000)));
    let table = table
        .iter()
        .map(|(e, n)| (e.to_string(), n.to_string()))
        .collect();
    let dir = Directory::new(table)
        .with_pagerduty(Arc::new(pd_client))
        .with_slack(Arc::new(slack_client))
        .with_clock(clock.clone());
    World {
        pd,
        slack,
        clock,
        dir,
    }
}

async fn world() -> World {
    world_with(&[("Ana@Acme.example", " Ana Engineer ")], None).await
}

fn person(email: &str, name: &str) -> Option<Person> {
    Some(Person::new(email, name))
}

#[test]
fn a_person_is_their_lower_cased_e_mail() {
    let p = Person::new(" Ana@ACME.example ", " Ana ");
    assert_eq!(p.email, "ana@acme.example");
    assert_eq!(p.name, "Ana");
    assert_eq!(Person::new("a@b.example", " ").name, "a@b.example");
}

#[tokio::test]
async fn the_table_comes_first_and_asks_nobody() {
    let w = world().await;
    assert_eq!(
        w.dir.by_email("ANA@acme.EXAMPLE").await.unwrap(),
        person("ana@acme.example", "Ana Engineer")
    );
    assert_eq!(w.pd.user_requests(), 0);
    assert_eq!(
        w.dir.configured("ana@acme.example"),
        person("ana@acme.example", "Ana Engineer")
    );
    assert_eq!(w.dir.configured("bob@acme.example"), None);
}

#[tokio::test]
async fn pagerduty_comes_second_and_answers_are_cached() {
    let w = world().await;
    let bob = person("bob@acme.example", "Bob Builder");
    assert_eq!(w.dir.by_email("bob@acme.example").await.unwrap(), bob);
    assert_eq!(w.dir.by_email(" BOB@acme.example").await.unwrap(), bob);
    assert_eq!(w.pd.user_requests(), 1);
    // A miss is cached too.
    assert_eq!(w.dir.by_email("zed@acme.example").await.unwrap(), None);
    assert_eq!(w.dir.by_email("zed@acme.example").await.unwrap(), None);
    assert_eq!(w.pd.user_requests(), 2);
    assert_eq!(w.dir.cached_len(), 2);
}

#[tokio::test]
async fn vendor_users_get_the_table_name() {
    let w = world().await;
    let ana = person("ana@acme.example", "Ana Engineer");
    // PagerDuty calls her "Ana E.", Slack "Ana from Slack": one person.
    assert_eq!(w.dir.pagerduty_user("PANA001").await.unwrap(), ana);
    assert_eq!(w.dir.slack_user("U0ANA00001").await.unwrap(), ana);
    assert_eq!(
        w.dir.pagerduty_user("PBOB001").await.unwrap(),
        person("bob@acme.example", "Bob Builder")
    );
    assert_eq!(
        w.dir.slack_user("U0CARL0001").await.unwrap(),
        person("carl@acme.example", "Carl Coder")
    );
    assert_eq!(w.dir.pagerduty_user("PNOPE01").await.unwrap(), None);
    assert_eq!(w.dir.slack_user("U0NOPE0001").await.unwrap(), None);
    // Every answer again, from the cache.
    assert_eq!(w.dir.pagerduty_user("PANA001").await.unwrap(), ana);
    assert_eq!(w.dir.slack_user("U0ANA00001").await.unwrap(), ana);
    assert_eq!(w.dir.pagerduty_user("PNOPE01").await.unwrap(), None);
    assert_eq!(w.dir.slack_user("U0NOPE0001").await.unwrap(), None);
    assert_eq!(w.pd.user_requests(), 3);
    assert_eq!(w.slack.user_lookups(), 3);
}

#[tokio::test]
async fn errors_are_not_cached() {
    let w = world().await;
    let fault = Fault::Status {
        status: 503,
        retry_after: None,
    };
    w.pd.rest_faults.push(fault.clone(), 2);
    let e = w.dir.pagerduty_user("PBOB001").await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        e.to_string()
            .contains("PagerDuty could not say who PBOB001 is"),
        "{e}"
    );
    assert!(w.dir.by_email("bob@acme.example").await.is_err());
    assert_eq!(w.dir.cached_len(), 0);
    assert!(w.dir.pagerduty_user("PBOB001").await.unwrap().is_some());
    assert!(w.dir.by_email("bob@acme.example").await.unwrap().is_some());
    assert_eq!(w.pd.user_requests(), 2);

    w.slack.faults.push(fault, 1);
    assert!(w.dir.slack_user("U0CARL0001").await.is_err());
    assert!(w.dir.slack_user("U0CARL0001").await.unwrap().is_some());
    assert_eq!(w.slack.user_lookups(), 1);
}

#[tokio::test]
async fn a_missing_scope_is_reported_every_time() {
    let scopes = Some(vec!["chat:write".to_string(), "users:read".to_string()]);
    let w = world_with(&[], scopes).await;
    for _ in 0..2 {
        let e = w.dir.slack_user("U0CARL0001").await.unwrap_err();
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("users:read.email"), "{e}");
    }
    assert_eq!(w.slack.user_lookups(), 2);
}

#[tokio::test]
async fn hits_and_misses_expire() {
    let w = world().await;
    w.dir.pagerduty_user("PBOB001").await.unwrap();
    w.dir.pagerduty_user("PNOPE01").await.unwrap();
    assert_eq!(w.pd.user_requests(), 2);
    w.clock.advance(4 * MINUTE);
    w.dir.pagerduty_user("PBOB001").await.unwrap();
    w.dir.pagerduty_user("PNOPE01").await.unwrap();
    assert_eq!(w.pd.user_requests(), 2);
    // Past five minutes the miss is asked again (a new user may exist)...
    w.clock.advance(2 * MINUTE);
    w.dir.pagerduty_user("PBOB001").await.unwrap();
    w.dir.pagerduty_user("PNOPE01").await.unwrap();
    assert_eq!(w.pd.user_requests(), 3);
    // ...and past an hour the hit too (a name may have changed).
    w.clock.advance(55 * MINUTE);
    w.dir.pagerduty_user("PBOB001").await.unwrap();
    assert_eq!(w.pd.user_requests(), 4);
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let mut w = world().await;
    w.dir = w.dir.with_cache(CacheSettings {
        capacity: 2,
        ..CacheSettings::default()
    });
    w.dir.pagerduty_user("PNOPE01").await.unwrap(); // expires first: a miss
    w.dir.pagerduty_user("PANA001").await.unwrap();
    w.dir.pagerduty_user("PBOB001").await.unwrap();
    assert_eq!(w.dir.cached_len(), 2);
    assert_eq!(w.pd.user_requests(), 3);
    // The miss was evicted; the hits are still there.
    w.dir.pagerduty_user("PANA001").await.unwrap();
    w.dir.pagerduty_user("PBOB001").await.unwrap();
    assert_eq!(w.pd.user_requests(), 3);
    w.dir.pagerduty_user("PNOPE01").await.unwrap();
    assert_eq!(w.pd.user_requests(), 4);
    assert_eq!(w.dir.cached_len(), 2);
}

#[tokio::test]
async fn callers_can_fall_back() {
    let w = world().await;
    assert_eq!(
        w.dir.name_or("bob@acme.example", "bob").await,
        "Bob Builder"
    );
    assert_eq!(w.dir.name_or("zed@acme.example", "zed").await, "zed");
    w.pd.rest_faults.push(Fault::MalformedJson, 1);
    assert_eq!(w.dir.name_or("dan@acme.example", "Dan?").await, "Dan?");

    let bare = Directory::new(HashMap::new());
    let e = bare.slack_user("U0CARL0001").await.unwrap_err();
    assert_eq!(e, LookupError::NotConfigured("Slack"));
    assert!(!e.is_retryable());
    assert!(bare.pagerduty_user("PANA001").await.is_err());
    assert_eq!(bare.by_email("bob@acme.example").await.unwrap(), None);
}

#[tokio::test]
async fn the_directory_can_be_shared_across_tasks() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_shareable<T: Send + Sync + 'static>() {}
    assert_shareable::<Directory>();
    let w = world().await;
    assert_send(&w.dir.by_email("bob@acme.example"));
    let dir = Arc::new(w.dir);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let dir = dir.clone();
            tokio::spawn(async move { dir.slack_user("U0CARL0001").await })
        })
        .collect();
    for t in tasks {
        assert_eq!(
            t.await.unwrap().unwrap(),
            person("carl@acme.example", "Carl Coder")
        );
    }
    assert!(!format!("{dir:?}").contains(SLACK_TOKEN));
}

#[tokio::test]
async fn from_config_uses_the_configured_vendors_and_table() {
    let w = world_with(&[], None).await;
    let dir = tempfile::tempdir().unwrap();
    for f in ["zd-token", "zd-secret", "pd-key", "slack-token"] {
        std::fs::write(dir.path().join(f), "x\n").unwrap();
    }
    std::fs::write(dir.path().join("pd-token"), PD_TOKEN).unwrap();
    std::fs::write(dir.path().join("slack-token"), SLACK_TOKEN).unwrap();
    let text = format!(
        r#"
[zendesk]
url = "https://acme.zendesk.com"
email = "pagerd@acme.example"
api_token_file = "zd-token"
webhook_secret_file = "zd-secret"
[pagerduty]
api_url = "{pd}"
routing_key_file = "pd-key"
api_token_file = "pd-token"
from = "oncall@acme.example"
[slack]
api_url = "{slack}"
bot_token_file = "slack-token"
[people]
"Carl@acme.example" = "Carl C. Coder"
"#,
        pd = w.pd.url(),
        slack = w.slack.url()
    );
    let config = Config::parse(&dir.path().join("p.toml"), &text).unwrap();
    let d = Directory::from_config(&config, http_client(REQUEST_TIMEOUT));
    assert_eq!(
        d.slack_user("U0CARL0001").await.unwrap(),
        person("carl@acme.example", "Carl C. Coder")
    );
    assert_eq!(
        d.pagerduty_user("PBOB001").await.unwrap(),
        person("bob@acme.example", "Bob Builder")
    );
}

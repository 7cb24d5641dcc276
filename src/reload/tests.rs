//! Tests of reload: what a valid file swaps in, what a broken one leaves.
use std::path::Path;

use super::*;
use crate::clock::SystemClock;

/// Writes the secret files and a config with `policy` and `server` lines;
/// returns its path.
fn write(dir: &Path, server: &str, policy: &str, zd_secret: &str) -> std::path::PathBuf {
    for (f, v) in [
        ("zd-token", "zd-token-value"),
        ("pd-key", "pd-key-value"),
        ("pd-token", "pd-token-value"),
        ("zd-secret", zd_secret),
    ] {
        std::fs::write(dir.join(f), format!("{v}\n")).unwrap();
    }
    let text = format!(
        r#"
[server]
{server}

[policy]
{policy}

[zendesk]
url = "https://acme.zendesk.com"
email = "pagerd@acme.example"
api_token_file = "zd-token"
webhook_secret_file = "zd-secret"

[pagerduty]
routing_key_file = "pd-key"
api_token_file = "pd-token"
from = "oncall@acme.example"
"#
    );
    let path = dir.join("pagerd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

struct World {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    reloader: Reloader,
    policy: Shared<Policy>,
    config: Shared<Config>,
    registry: Shared<Registry>,
    people: Shared<Directory>,
    pollers: watch::Receiver<Arc<Config>>,
    metrics: Arc<Metrics>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "listen = \"127.0.0.1:8780\"",
        "contact_channels = [\"Phone\"]",
        "old-secret",
    );
    let config = Arc::new(Config::load(&path).unwrap());
    let policy = Shared::new(config.policy.clone());
    let registry = Shared::new(Registry::from_config(&config).unwrap());
    let people = Shared::new(Directory::new(config.people.clone()));
    let shared_config = Shared::from(config.clone());
    let (tx, pollers) = watch::channel(config.clone());
    let metrics = Arc::new(Metrics::new());
    let reloader = Reloader::new(
        config,
        Cells {
            policy: policy.clone(),
            registry: registry.clone(),
            config: shared_config.clone(),
            people: people.clone(),
            pollers: tx,
            metrics: metrics.clone(),
            clock: Arc::new(SystemClock),
        },
    );
    World {
        _dir: dir,
        path,
        reloader,
        policy,
        config: shared_config,
        registry,
        people,
        pollers,
        metrics,
    }
}

fn reloads(m: &Metrics, result: &str) -> bool {
    let text = m.render(&Default::default()).unwrap();
    text.lines()
        .any(|l| l == format!("pagerd_config_reloads_total{{result=\"{result}\"}} 1"))
}

#[tokio::test]
async fn a_valid_file_swaps_the_policy_secrets_and_clients_but_not_the_listener() {
    let mut w = world();
    let registry_before = w.registry.load();
    let people_before = w.people.load();
    let dir = w.path.parent().unwrap().to_path_buf();
    write(
        &dir,
        "listen = \"127.0.0.1:9999\"",
        "contact_channels = [\"Phone\", \"Zoom\"]\nack_timeout = \"1h\"",
        "new-secret",
    );
    let applied = w.reloader.reload().await.unwrap();
    assert_eq!(applied.need_restart, vec!["server.listen"]);
    assert_eq!(
        applied.changed,
        vec![
            "policy.ack_timeout",
            "policy.contact_channels",
            "zendesk.webhook_secret"
        ]
    );
    let policy = w.policy.load();
    assert_eq!(policy.contact_channels, vec!["Phone", "Zoom"]);
    assert_eq!(policy.ack_timeout, 3_600_000);
    let config = w.config.load();
    assert_eq!(config.zendesk.webhook_secret.expose(), "new-secret");
    assert_eq!(
        config.server.listen.to_string(),
        "127.0.0.1:8780",
        "the listener keeps its address until a restart"
    );
    assert!(
        !Arc::ptr_eq(&registry_before, &w.registry.load()),
        "a [zendesk] change rebuilds the vendors' clients"
    );
    assert!(
        Arc::ptr_eq(&people_before, &w.people.load()),
        "people untouched: the directory and its cache are kept"
    );
    assert!(w.pollers.has_changed().unwrap(), "the pollers restart");
    assert!(reloads(&w.metrics, "applied"));

    // The same file again: nothing changes, nothing restarts, and the
    // listener change is still pending.
    w.pollers.mark_unchanged();
    let again = w.reloader.reload().await.unwrap();
    assert!(again.changed.is_empty(), "{again:?}");
    assert_eq!(again.need_restart, vec!["server.listen"]);
    assert!(!w.pollers.has_changed().unwrap());
}

#[tokio::test]
async fn a_broken_file_is_refused_naming_each_problem_and_nothing_changes() {
    let mut w = world();
    let dir = w.path.parent().unwrap().to_path_buf();
    write(
        &dir,
        "",
        "ack_timeout = \"soon\"\ncrisis_responders = 0",
        "new-secret",
    );
    let e = w.reloader.reload().await.unwrap_err();
    let keys: Vec<String> = e.problems().into_iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        vec!["policy.ack_timeout", "policy.crisis_responders"],
        "{e}"
    );
    assert_eq!(w.policy.load().contact_channels, vec!["Phone"]);
    assert_eq!(
        w.config.load().zendesk.webhook_secret.expose(),
        "old-secret",
        "a refused file changes no secret, even one that was valid"
    );
    assert!(!w.pollers.has_changed().unwrap());
    assert!(reloads(&w.metrics, "refused"));

    // An unreadable secret is refused too, by key.
    write(&dir, "", "", "x");
    std::fs::remove_file(dir.join("pd-token")).unwrap();
    let e = w.reloader.reload().await.unwrap_err();
    assert!(
        e.problems()
            .iter()
            .any(|p| p.key.starts_with("pagerduty.api_token")),
        "{e}"
    );
    assert_eq!(
        w.reloader.current().zendesk.webhook_secret.expose(),
        "old-secret"
    );
}

#[test]
fn fingerprints_never_hold_a_secret_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "", "", "very-secret-webhook");
    let config = Config::load(&path).unwrap();
    let prints = fingerprint(&config);
    for (key, value) in &prints {
        for secret in [
            "very-secret-webhook",
            "zd-token-value",
            "pd-key-value",
            "pd-token-value",
        ] {
            assert!(!value.contains(secret), "{key} holds a secret");
        }
    }
    for key in RESTART_KEYS {
        assert!(prints.contains_key(key), "{key} is fingerprinted");
    }
}

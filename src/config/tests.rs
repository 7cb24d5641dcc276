//! Tests of config.
use super::*;

fn write(dir: &Path, name: &str, v: &str) {
    std::fs::write(dir.join(name), v).unwrap();
}

fn minimal(dir: &Path) -> String {
    for f in ["zd-token", "zd-secret", "pd-key", "pd-token"] {
        write(dir, f, "s3cr3t-value\n");
    }
    r#"
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
    .to_string()
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let text = minimal(dir.path());
    let c = Config::parse(&dir.path().join("pagerd.toml"), &text).unwrap();
    assert_eq!(c.policy.ack_timeout, 300_000);
    assert_eq!(c.policy.crisis_after, 3_600_000);
    assert_eq!(c.policy.crisis_responders, 2);
    assert_eq!(c.policy.emergency_priorities, vec!["urgent"]);
    assert_eq!(c.pagerduty.events_url, "https://events.pagerduty.com");
    assert_eq!(c.pagerduty.poll_interval, Some(Duration::from_secs(30)));
    assert_eq!(c.pagerduty.routing_key.expose(), "s3cr3t-value");
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8780");
    assert!(c.slack.is_none() && c.google.is_none() && c.email.is_none());
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}\n[policy]\nack_timeot = \"5m\"\n", minimal(dir.path()));
    let e = Config::parse(&dir.path().join("p.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ack_timeot") && e.contains("line 14"), "{e}");
}

#[test]
fn a_value_of_the_wrong_type_is_named_by_its_key_line_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = minimal(dir.path());
    let file = dir.path().join("p.toml");
    for (edit, key, line) in [
        // An integer where a duration string is expected.
        (
            format!("{base}\n[policy]\nack_timeout = 5\n"),
            "policy.ack_timeout",
            14,
        ),
        // A string where a number is expected.
        (
            format!("{base}\n[server]\nmax_connections = \"many\"\n"),
            "server.max_connections",
            14,
        ),
        // Inside a vendor's section, before other keys of it.
        (
            base.replace(
                "routing_key_file = \"pd-key\"",
                "events_per_minute = \"fast\"\nrouting_key_file = \"pd-key\"",
            ),
            "pagerduty.events_per_minute",
            9,
        ),
        // An item of a list.
        (
            format!("{base}\n[policy]\ncontact_channels = [\"Phone\", 5]\n"),
            "policy.contact_channels[1]",
            14,
        ),
    ] {
        let e = Config::parse(&file, &edit).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].key, key, "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("line {line}: invalid type")) && text.contains("p.toml"),
            "{text}"
        );
        assert!(!text.contains("usize") && !text.contains("u32"), "{text}");
    }
}

#[test]
fn a_secret_file_others_can_read_is_a_warning_naming_key_file_and_fix() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let text = minimal(dir.path());
    let chmod = |name: &str, mode: u32| {
        std::fs::set_permissions(dir.path().join(name), std::fs::Permissions::from_mode(mode))
            .unwrap()
    };
    let file = dir.path().join("p.toml");
    // Owner only, and group-readable (the Debian package's 0640
    // root:pagerd): fine.
    for (name, mode) in [("zd-token", 0o600), ("zd-secret", 0o640), ("pd-key", 0o640)] {
        chmod(name, mode);
    }
    chmod("pd-token", 0o600);
    let c = Config::parse(&file, &text).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Any permission for others: a warning, and the config still loads.
    chmod("zd-secret", 0o644);
    chmod("pd-token", 0o602);
    let c = Config::parse(&file, &text).unwrap();
    let keys: Vec<&str> = c.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(
        keys,
        ["zendesk.webhook_secret_file", "pagerduty.api_token_file"]
    );
    let path = dir.path().join("zd-secret").display().to_string();
    let w = &c.warnings[0].message;
    assert!(
        w.contains(&path)
            && w.contains("0644")
            && w.contains(&format!("chmod 0640 {path}; chown root:pagerd {path}")),
        "{w}"
    );
    // Never the secret itself.
    assert!(!w.contains("s3cr3t"), "{w}");
}

#[test]
fn every_problem_is_listed_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[policy]
ack_timeout = "five minutes"
[zendesk]
url = "acme"
email = "pagerd@acme.example"
api_token_file = "missing-file"
webhook_secret_env = "PAGERD_TEST_SURELY_UNSET_VAR"
[pagerduty]
from = "oncall@acme.example"
"#;
    let e = Config::parse(&dir.path().join("p.toml"), text).unwrap_err();
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "policy.ack_timeout",
            "zendesk.url",
            "zendesk.api_token_file",
            "zendesk.webhook_secret_env",
            "pagerduty.routing_key_file",
            "pagerduty.api_token_file"
        ]
    );
    let text = e.to_string();
    assert!(
        text.contains("missing-file") && text.contains("p.toml"),
        "{text}"
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let c = Config::parse(&dir.path().join("p.toml"), &minimal(dir.path())).unwrap();
    assert!(!format!("{c:?}").contains("s3cr3t"));
}

#[test]
fn a_huge_lease_renewal_is_a_problem_not_a_panic() {
    // Found by cargo fuzz: `lease_renew * 2` overflowed.
    let text = include_str!("../../fuzz/regressions/config/lease-renew-times-two-overflow.toml");
    let _ = Config::parse(Path::new("/x/p.toml"), text);
    let text = "[store]\nurl = \"postgres://x@h/db\"\nlease_renew = \"500000000000y\"\n";
    let err = Config::parse(Path::new("/x/p.toml"), text).unwrap_err();
    assert!(
        err.problems.iter().any(|p| p.key == "store.lease_ttl"),
        "{err}"
    );
}

#[test]
fn people_and_cli_operator_are_read_and_lower_cased() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[people]\n\"Ana@Acme.example\" = \" Ana Engineer \"\n\"bob@acme.example\" = \"Bob Builder\"\n\n[cli]\noperator = \"Ana@ACME.example\"\n",
        minimal(dir.path())
    );
    let c = Config::parse(&dir.path().join("p.toml"), &text).unwrap();
    assert_eq!(c.people.len(), 2);
    assert_eq!(c.people["ana@acme.example"], "Ana Engineer");
    assert_eq!(c.people["bob@acme.example"], "Bob Builder");
    assert_eq!(c.cli.operator.as_deref(), Some("ana@acme.example"));

    let bare = Config::parse(&dir.path().join("p.toml"), &minimal(dir.path())).unwrap();
    assert!(bare.people.is_empty());
    assert_eq!(bare.cli, CliConfig::default());
}

#[test]
fn people_keys_must_be_e_mails_named_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[people]\n\"ana\" = \"Ana\"\n\"bob @acme.example\" = \"Bob\"\n\"carl@acme.example\" = \" \"\n\"dan@x@acme.example\" = \"Dan\"\n\"Eve@acme.example\" = \"Eve\"\n\"eve@acme.example\" = \"Eve E.\"\n\"fay@acme.example\" = \"Fay\"\n\n[cli]\noperator = \"root\"\n",
        minimal(dir.path())
    );
    let e = Config::parse(&dir.path().join("people.toml"), &text).unwrap_err();
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "people.\"ana\"",
            "people.\"bob @acme.example\"",
            "people.\"carl@acme.example\"",
            "people.\"dan@x@acme.example\"",
            "people.\"eve@acme.example\"",
            "cli.operator",
        ],
        "{e}"
    );
    let text = e.to_string();
    assert!(text.contains("people.toml"), "{text}");
    assert!(
        text.contains("people.\"ana\": \"ana\" is not an e-mail address"),
        "{text}"
    );
    assert!(text.contains("listed twice"), "{text}");
    assert!(text.contains("real name is empty"), "{text}");
    assert!(text.contains("\"root\" is not an e-mail address"), "{text}");
}

#[test]
fn unknown_cli_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[cli]\noperater = \"a@b.example\"\n",
        minimal(dir.path())
    );
    let e = Config::parse(&dir.path().join("p.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("operater"), "{e}");
}

#[test]
fn the_cli_reads_its_operator_without_the_vendor_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    // No secrets exist: only [cli] (and [server]) matter to the CLI.
    let text = "[zendesk]\napi_token_file = \"nope\"\n[cli]\noperator = \" Ops@Acme.example \"\n";
    std::fs::write(&path, text).unwrap();
    assert_eq!(
        load_cli_operator(&path).unwrap().as_deref(),
        Some("ops@acme.example")
    );
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1\"\n").unwrap();
    assert_eq!(load_cli_operator(&path).unwrap(), None);
    std::fs::write(&path, "[cli]\noperator = \"ops\"\n").unwrap();
    let e = load_cli_operator(&path).unwrap_err();
    assert_eq!(e.problems[0].key, "cli.operator");
    assert!(load_cli_operator(&dir.path().join("missing.toml")).is_err());
}

#[test]
fn the_example_config_documents_people_and_cli() {
    let text = include_str!("../../config/pagerd.example.toml");
    let raw: RawFile = toml::from_str(text).unwrap();
    let people = raw.people.unwrap();
    assert!(!people.is_empty());
    let mut c = Check::new(PathBuf::new());
    let people = super::people(&mut c, people);
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert!(people.keys().all(|k| k == &k.to_lowercase()));
    // [cli] operator is for one engineer's own config: the shared example
    // shows it commented out, so nobody acts under someone else's name.
    assert!(raw.cli.is_none());
    assert!(text.contains("# operator = \"ana@acme.example\""));
}

#[test]
fn backup_reads_only_the_store_section() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    // A vendor secret that cannot be read does not stop a backup.
    std::fs::write(
        &path,
        "[store]\npath = \"/var/lib/pagerd/pagerd.db\"\n\
         [zendesk]\napi_token_file = \"missing\"\n",
    )
    .unwrap();
    let store = load_store(&path).unwrap();
    assert_eq!(store.path, Path::new("/var/lib/pagerd/pagerd.db"));
    assert!(store.postgres.is_none());
    // The store section is checked as `run` checks it.
    std::fs::write(&path, "[store]\nlease_ttl = \"10s\"\n").unwrap();
    let e = load_store(&path).unwrap_err();
    assert_eq!(e.problems[0].key, "store.lease_ttl", "{e}");
    std::fs::write(
        &path,
        "[store]\nurl = \"postgres://pagerd@db.internal/pagerd\"\n",
    )
    .unwrap();
    assert!(load_store(&path).unwrap().postgres.is_some());
}

#[test]
fn store_retention_defaults_to_90_days_and_can_be_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pagerd.toml");
    let c = Config::parse(&path, &minimal(dir.path())).unwrap();
    assert_eq!(c.store.retention, Some(Duration::from_secs(90 * 86_400)));
    let text = format!("{}\n[store]\nretention = \"off\"\n", minimal(dir.path()));
    assert_eq!(Config::parse(&path, &text).unwrap().store.retention, None);
    let text = format!("{}\n[store]\nretention = \"30d\"\n", minimal(dir.path()));
    assert_eq!(
        Config::parse(&path, &text).unwrap().store.retention,
        Some(Duration::from_secs(30 * 86_400))
    );
}

#[test]
fn store_retention_under_a_day_or_not_a_duration_is_refused_with_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pagerd.toml");
    for (value, says) in [
        ("12h", "at least 1d"),
        ("0s", "at least 1d"),
        ("forever", "not a duration"),
    ] {
        let text = format!(
            "{}\n[store]\nretention = \"{value}\"\n",
            minimal(dir.path())
        );
        let e = Config::parse(&path, &text).unwrap_err().to_string();
        assert!(
            e.contains("store.retention") && e.contains(says) && e.contains("pagerd.toml"),
            "{value}: {e}"
        );
    }
}

/// The config with `[store]` lines; its problems or its PostgreSQL part.
fn store(dir: &Path, lines: &str) -> Result<PostgresConfig, ConfigError> {
    let text = format!("{}\n[store]\n{lines}\n", minimal(dir));
    Config::parse(&dir.join("pagerd.toml"), &text).map(|c| c.store.postgres.unwrap())
}

fn problem(err: &ConfigError, key: &str) -> String {
    err.problems
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.message.clone())
        .unwrap_or_else(|| panic!("no problem with {key}: {err}"))
}

#[test]
fn store_tls_defaults_to_verify_full_off_loopback_and_disable_on_it() {
    let dir = tempfile::tempdir().unwrap();
    for (url, want) in [
        (
            "postgres://pagerd@db.internal:5432/pagerd",
            StoreTls::VerifyFull,
        ),
        ("postgres://pagerd@10.1.2.3/pagerd", StoreTls::VerifyFull),
        (
            "postgres://pagerd@localhost,db.internal/pagerd",
            StoreTls::VerifyFull,
        ),
        ("postgres://pagerd@127.0.0.1:5432/pagerd", StoreTls::Disable),
        ("postgresql://pagerd@localhost/pagerd", StoreTls::Disable),
        ("postgres://pagerd@[::1]/pagerd", StoreTls::Disable),
        (
            "postgres://pagerd@%2Frun%2Fpostgresql/pagerd",
            StoreTls::Disable,
        ),
    ] {
        let pg = store(dir.path(), &format!("url = {url:?}")).unwrap();
        assert_eq!(pg.tls, want, "{url}");
        assert_eq!(pg.ca_file, None);
    }
}

#[test]
fn store_tls_and_a_relative_ca_file_are_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/store/postgres/testdata/other-ca.pem"
        ),
        dir.path().join("db-ca.pem"),
    )
    .unwrap();
    let pg = store(
        dir.path(),
        "url = \"postgres://pagerd@localhost/pagerd\"\ntls = \"verify-full\"\nca_file = \"db-ca.pem\"",
    )
    .unwrap();
    assert_eq!(pg.tls, StoreTls::VerifyFull);
    assert_eq!(pg.ca_file, Some(dir.path().join("db-ca.pem")));
    let pg = store(
        dir.path(),
        "url = \"postgres://pagerd@db.internal/pagerd\"\ntls = \"require\"",
    )
    .unwrap();
    assert_eq!(pg.tls, StoreTls::Require);
    let pg = store(
        dir.path(),
        "url = \"postgres://pagerd@db.internal/pagerd\"\ntls = \"disable\"",
    )
    .unwrap();
    assert_eq!(pg.tls, StoreTls::Disable);
}

#[test]
fn a_bad_store_tls_or_ca_file_is_named_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = "url = \"postgres://pagerd:hunter2@db.internal/pagerd\"";
    let err = store(dir.path(), &format!("{url}\ntls = \"prefer\"")).unwrap_err();
    assert!(
        problem(&err, "store.tls").contains("\"prefer\" is not one of"),
        "{err}"
    );

    let err = store(dir.path(), &format!("{url}\nca_file = \"nope.pem\"")).unwrap_err();
    let msg = problem(&err, "store.ca_file");
    assert!(
        msg.contains("cannot read") && msg.contains("nope.pem"),
        "{msg}"
    );
    assert!(err.to_string().contains("pagerd.toml"), "{err}");

    std::fs::write(
        dir.path().join("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = store(dir.path(), &format!("{url}\nca_file = \"key.pem\"")).unwrap_err();
    let msg = problem(&err, "store.ca_file");
    assert!(
        msg.contains("key.pem") && msg.contains("no PEM certificate"),
        "{msg}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn a_ca_file_without_verify_full_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "unused").unwrap();
    let err = store(
        dir.path(),
        "url = \"postgres://pagerd@127.0.0.1/pagerd\"\nca_file = \"ca.pem\"",
    )
    .unwrap_err();
    let msg = problem(&err, "store.ca_file");
    assert!(
        msg.contains("verify-full") && msg.contains("loopback"),
        "{msg}"
    );
    let err = store(
        dir.path(),
        "url = \"postgres://pagerd@db.internal/pagerd\"\ntls = \"require\"\nca_file = \"ca.pem\"",
    )
    .unwrap_err();
    assert!(
        problem(&err, "store.ca_file").contains("\"require\""),
        "{err}"
    );
}

#[test]
fn a_url_sslmode_counts_unless_it_conflicts_with_store_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pg = store(
        dir.path(),
        "url = \"postgres://pagerd@db.internal/pagerd?sslmode=require\"",
    )
    .unwrap();
    assert_eq!(pg.tls, StoreTls::Require);
    let pg = store(
        dir.path(),
        "url = \"postgres://pagerd@db.internal/pagerd?sslmode=verify-full\"\ntls = \"verify-full\"",
    )
    .unwrap();
    assert_eq!(pg.tls, StoreTls::VerifyFull);
    let err = store(
        dir.path(),
        "url = \"postgres://pagerd@db.internal/pagerd?sslmode=disable\"\ntls = \"verify-full\"",
    )
    .unwrap_err();
    let msg = problem(&err, "store.tls");
    assert!(msg.contains("conflicts with sslmode=disable"), "{msg}");
    let err = store(
        dir.path(),
        "url = \"postgres://pagerd@db.internal/pagerd?sslmode=prefer\"",
    )
    .unwrap_err();
    assert!(problem(&err, "store.url").contains("plaintext"), "{err}");
}

#[test]
fn store_tls_needs_a_tcp_url() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}\n[store]\ntls = \"require\"\n", minimal(dir.path()));
    let err = Config::parse(&dir.path().join("p.toml"), &text).unwrap_err();
    assert!(
        problem(&err, "store.tls").contains("only applies with store.url"),
        "{err}"
    );
    let err = store(
        dir.path(),
        "url = \"postgres://pagerd@%2Frun%2Fpostgresql/pagerd\"\ntls = \"require\"",
    )
    .unwrap_err();
    assert!(problem(&err, "store.tls").contains("Unix socket"), "{err}");
}

mod props {
    use proptest::prelude::*;

    proptest! {
    #[test]
    fn the_config_loader_never_panics(text in ".{0,400}") {
        let _ = crate::config::Config::parse(std::path::Path::new("/nonexistent/p.toml"), &text);
    }
    #[test]
    fn the_config_loader_names_a_bad_duration(value in "[a-z0-9 ]{1,12}") {
        prop_assume!(humantime::parse_duration(&value).is_err());
        let text = format!("[policy]\nack_timeout = {value:?}\n");
        let err = crate::config::Config::parse(std::path::Path::new("/x/p.toml"), &text).unwrap_err();
        prop_assert!(err.problems.iter().any(|p| p.key == "policy.ack_timeout"));
    }
    }
}

#[test]
fn ack_lease_and_timezone_are_read_off_by_default_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pagerd.toml");
    let c = Config::parse(&path, &minimal(dir.path())).unwrap();
    assert_eq!(
        c.policy.ack_lease, None,
        "an acknowledgement lasts by default"
    );
    assert_eq!(c.policy.timezone, "UTC");
    let text = format!(
        "{}\n[policy]\nack_lease = \"45m\"\ntimezone = \"Europe/Amsterdam\"\n",
        minimal(dir.path())
    );
    let c = Config::parse(&path, &text).unwrap();
    assert_eq!(c.policy.ack_lease, Some(45 * 60_000));
    assert_eq!(c.policy.timezone, "Europe/Amsterdam");
    let text = format!(
        "{}\n[policy]\nack_lease = \"0s\"\ntimezone = \"Mars/Olympus\"\n",
        minimal(dir.path())
    );
    let e = Config::parse(&path, &text).unwrap_err();
    assert!(
        problem(&e, "policy.ack_lease").contains("longer than 0s"),
        "{e}"
    );
    assert!(problem(&e, "policy.timezone").contains("IANA"), "{e}");
    assert!(e.to_string().contains("pagerd.toml"), "{e}");
}

// The demo service-account key comes with the stand-ins.
#[cfg(feature = "demo")]
#[test]
fn gitlab_and_the_hand_off_calendar_are_read_with_their_defaults() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "gl-token", "glpat-abc\n");
    write(
        dir.path(),
        "sa.json",
        &crate::fakes::google::demo_service_account_json(
            "pagerd@x.iam.gserviceaccount.com",
            "https://oauth2.googleapis.com/token",
        ),
    );
    let text = format!(
        "{}\n[gitlab]\nurl = \"https://gitlab.example.com/\"\nproject = \"support/crises\"\n\
         token_file = \"gl-token\"\n\n[google]\nservice_account_file = \"sa.json\"\n\
         calendar_id = \"handoffs@acme.example\"\nimpersonate = \"Oncall-Bot@acme.example\"\n",
        minimal(dir.path())
    );
    let c = Config::parse(&dir.path().join("pagerd.toml"), &text).unwrap();
    let gl = c.gitlab.as_ref().unwrap();
    assert_eq!(gl.url, "https://gitlab.example.com");
    assert_eq!(gl.project, "support/crises");
    assert_eq!(gl.token.expose(), "glpat-abc");
    assert_eq!(gl.labels, ["crisis", "follow-up"]);
    let g = c.google.as_ref().unwrap();
    assert_eq!(g.calendar_id.as_deref(), Some("handoffs@acme.example"));
    assert_eq!(g.calendar_url, "https://www.googleapis.com/calendar/v3");
    assert_eq!(g.impersonate.as_deref(), Some("oncall-bot@acme.example"));
    assert!(crate::vendors::google::config::warnings(g).is_empty());
    assert!(!format!("{c:?}").contains("glpat-abc"));
}

#[cfg(feature = "demo")]
#[test]
fn gitlab_and_calendar_mistakes_are_named_by_key() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sa.json",
        &crate::fakes::google::demo_service_account_json(
            "pagerd@x.iam.gserviceaccount.com",
            "https://oauth2.googleapis.com/token",
        ),
    );
    let text = format!(
        "{}\n[gitlab]\nurl = \"gitlab\"\nproject = \"/support/\"\nlabels = [\"a,b\"]\n\n\
         [google]\nservice_account_file = \"sa.json\"\nimpersonate = \"not-an-email\"\n",
        minimal(dir.path())
    );
    let e = Config::parse(&dir.path().join("pagerd.toml"), &text).unwrap_err();
    for key in [
        "gitlab.url",
        "gitlab.project",
        "gitlab.labels",
        "gitlab.token_file",
        "google.impersonate",
    ] {
        assert!(e.problems.iter().any(|p| p.key == key), "no {key} in {e}");
    }
    // A calendar without impersonation is valid, with a warning.
    let text = format!(
        "{}\n[google]\nservice_account_file = \"sa.json\"\ncalendar_id = \"c@acme.example\"\n",
        minimal(dir.path())
    );
    let c = Config::parse(&dir.path().join("pagerd.toml"), &text).unwrap();
    let w = crate::vendors::google::config::warnings(c.google.as_ref().unwrap());
    assert!(w[0].contains("google.impersonate"), "{w:?}");
}

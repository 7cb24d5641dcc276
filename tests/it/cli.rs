use std::process::Output;

use crate::util::{Harness, eventually};

fn pagerd(config: &std::path::Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pagerd"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run pagerd")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_drive_incidents_from_the_command_line() {
    let Some(h) = Harness::started_on(crate::util::Backend::Sqlite, "ack_timeout = \"1h\"").await
    else {
        return;
    };
    h.ticket(4711, "urgent", &[]).await;
    let cfg = h.config_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        let list = pagerd(&cfg, &["incidents", "list"]);
        let ack = pagerd(&cfg, &["incidents", "ack", "1", "--as", "ana@acme.example"]);
        let again = pagerd(&cfg, &["incidents", "ack", "1", "--as", "ana@acme.example"]);
        let esc = pagerd(
            &cfg,
            &[
                "incidents",
                "escalate",
                "1",
                "--as",
                "ana@acme.example",
                "--reason",
                "db read-only",
            ],
        );
        let show = pagerd(&cfg, &["incidents", "show", "1"]);
        let missing = pagerd(
            &cfg,
            &["incidents", "resolve", "99", "--as", "ana@acme.example"],
        );
        let status = pagerd(&cfg, &["status"]);
        // Nobody named: refused before anything reaches the customer.
        let anonymous = pagerd(&cfg, &["incidents", "ack", "2"]);
        let login = pagerd(&cfg, &["incidents", "ack", "2", "--as", "root"]);
        [
            list, ack, again, esc, show, missing, status, anonymous, login,
        ]
    })
    .await
    .unwrap();
    let [
        list,
        ack,
        again,
        esc,
        show,
        missing,
        status,
        anonymous,
        login,
    ] = out;
    assert_eq!(anonymous.status.code(), Some(2), "{}", text(&anonymous));
    assert!(
        text(&anonymous).contains("--as EMAIL"),
        "{}",
        text(&anonymous)
    );
    assert!(!login.status.success(), "{}", text(&login));
    assert!(text(&login).contains("e-mail"), "{}", text(&login));
    assert!(
        list.status.success() && text(&list).contains("#4711") && text(&list).contains("triggered"),
        "{}",
        text(&list)
    );
    assert!(
        ack.status.success() && text(&ack).contains("ack done"),
        "{}",
        text(&ack)
    );
    assert!(
        again.status.success() && text(&again).contains("nothing to do"),
        "{}",
        text(&again)
    );
    assert!(esc.status.success(), "{}", text(&esc));
    let show = text(&show);
    assert!(
        show.contains("acknowledged")
            && show.contains("acked")
            && show.contains("ana")
            && show.contains("journal:"),
        "{show}"
    );
    assert!(
        !missing.status.success() && text(&missing).contains("no incident 99"),
        "{}",
        text(&missing)
    );
    assert!(
        status.status.success() && text(&status).contains("role      leader"),
        "{}",
        text(&status)
    );
    eventually("escalated in PagerDuty", || async {
        !h.vendors.pagerduty.escalations().is_empty()
    })
    .await;
}

#[tokio::test]
async fn check_config_exits_zero_when_valid_and_two_naming_each_problem() {
    let Some(h) = Harness::started_on(crate::util::Backend::Sqlite, "").await else {
        return;
    };
    let ok = pagerd(&h.config_path, &["check-config"]);
    assert!(ok.status.success(), "{}", text(&ok));
    // No [email] here: valid, but nobody is reached if PagerDuty refuses.
    assert!(text(&ok).contains("warning: no [email]"), "{}", text(&ok));
    let bad = h.dir.path().join("bad.toml");
    let original = std::fs::read_to_string(&h.config_path).unwrap();
    let broken = original
        .replace("[policy]\n", "[policy]\nack_timeout = \"soon\"\n")
        .replace("pagerduty-routing-key", "missing-key");
    std::fs::write(&bad, broken).unwrap();
    let out = pagerd(&bad, &["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(
        t.contains("policy.ack_timeout")
            && t.contains("pagerduty.routing_key_file")
            && t.contains("missing-key"),
        "{t}"
    );
    assert!(t.contains("bad.toml"), "{t}");
    // `run` refuses the same file the same way, before touching anything.
    let run = pagerd(&bad, &["run"]);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
}

#[test]
fn demo_refuses_a_zero_speed_and_offers_only_its_own_options() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pagerd"))
            .args(args)
            .output()
            .expect("run pagerd")
    };
    let zero = run(&["demo", "--speed", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", text(&zero));
    assert!(text(&zero).contains("--speed"), "{}", text(&zero));
    let help = text(&run(&["demo", "--help"]));
    assert!(
        help.contains("--speed") && help.contains("--keep"),
        "{help}"
    );
    for ignored in ["--config", "--log-format"] {
        assert!(
            !help.contains(ignored),
            "demo --help offers {ignored}:\n{help}"
        );
    }
}

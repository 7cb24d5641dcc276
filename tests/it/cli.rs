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
    // The stand-ins are on 127.0.0.1: plain http is fine there.
    assert!(!text(&ok).contains("plain http"), "{}", text(&ok));
    // A remote http:// Zendesk URL with a path: valid, but two warnings.
    let as_written = std::fs::read_to_string(&h.config_path).unwrap();
    let zd = h.vendors.zendesk.url();
    let risky = h.dir.path().join("risky.toml");
    let risky_text = as_written.replace(
        &format!("url = {zd:?}"),
        "url = \"http://acme.zendesk.example/agent\"",
    );
    assert_ne!(risky_text, as_written, "the zendesk.url line was found");
    std::fs::write(&risky, risky_text).unwrap();
    let warned = pagerd(&risky, &["check-config"]);
    assert!(warned.status.success(), "{}", text(&warned));
    let t = text(&warned);
    assert!(
        t.contains("zendesk.url") && t.contains("plain http") && t.contains("has a path (/agent)"),
        "{t}"
    );
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
    // A value of the wrong type names its key, not only its line.
    let typed = h.dir.path().join("typed.toml");
    std::fs::write(
        &typed,
        original.replace("[policy]\n", "[policy]\nack_timeout = 5\n"),
    )
    .unwrap();
    let out = pagerd(&typed, &["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("typed.toml: policy.ack_timeout: line ") && t.contains("expected a string"),
        "{t}"
    );
    // `run` refuses the same file the same way, before touching anything.
    let run = pagerd(&bad, &["run"]);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    // A store the daemon could not open is refused by check-config too.
    let nowhere = h.dir.path().join("nowhere.toml");
    let missing_dir = h.dir.path().join("no-such-dir").join("pagerd.db");
    let text_with_store = original.replace(
        &format!(
            "path = {:?}",
            h.dir.path().join("pagerd.db").display().to_string()
        ),
        &format!("path = {:?}", missing_dir.display().to_string()),
    );
    assert_ne!(text_with_store, original, "the store path line was found");
    std::fs::write(&nowhere, text_with_store).unwrap();
    let out = pagerd(&nowhere, &["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("store.path") && text(&out).contains("no-such-dir"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn check_config_warns_about_secret_files_every_user_can_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let opts = pagerd::fakes::stand_ins::Options {
        google: true,
        ..Default::default()
    };
    let h = Harness::new(opts, Default::default()).await;
    let chmod = |name: &str, mode: u32| {
        let path = h.dir.path().join(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    };
    // The stand-ins write 0600; group-readable is what the package installs.
    chmod("pagerduty-api-token", 0o640);
    let quiet = pagerd(&h.config_path, &["check-config"]);
    assert!(quiet.status.success(), "{}", text(&quiet));
    assert!(!text(&quiet).contains("chmod"), "{}", text(&quiet));
    let admin = chmod("admin-token", 0o644);
    let google = chmod("google-service-account.json", 0o604);
    let out = pagerd(&h.config_path, &["check-config"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    for (key, file, mode) in [
        ("server.admin_token_file", &admin, "0644"),
        ("google.service_account_file", &google, "0604"),
    ] {
        assert!(
            t.lines()
                .any(|l| l.starts_with(&format!("warning: {key}: {file} "))
                    && l.contains(mode)
                    && l.contains(&format!("chmod 0640 {file}; chown root:pagerd {file}"))),
            "no warning for {key}:\n{t}"
        );
    }
    assert!(!t.contains("pagerduty.api_token_file"), "{t}");
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

/// Runs pagerd with `args` only (no `--config` added) and `env`.
fn pagerd_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pagerd"));
    for var in ["PAGERD_URL", "PAGERD_TOKEN_FILE", "PAGERD_CONFIG"] {
        cmd.env_remove(var);
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run pagerd")
}

/// The incident's armed ack deadline, once PagerDuty accepted the page.
async fn ack_deadline(h: &Harness) -> i64 {
    eventually("PagerDuty accepted the page", || async {
        h.incident(1).await["incident"]["deadlines"]["ack"].is_i64()
    })
    .await;
    h.incident(1).await["incident"]["deadlines"]["ack"]
        .as_i64()
        .expect("ack armed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_ask_an_incident_why_by_id_or_ticket() {
    let Some(h) = Harness::started_on(crate::util::Backend::Sqlite, "ack_timeout = \"10m\"").await
    else {
        return;
    };
    h.ticket(4711, "urgent", &[]).await;
    let ack = ack_deadline(&h).await;
    let cfg = h.config_path.clone();
    let [
        explain,
        json,
        show,
        by_ticket,
        by_ticket_too,
        explain_ticket,
        ack_ticket,
        unknown,
    ] = tokio::task::spawn_blocking(move || {
        [
            pagerd(&cfg, &["incidents", "explain", "1"]),
            pagerd(&cfg, &["incidents", "explain", "1", "--json"]),
            pagerd(&cfg, &["incidents", "show", "1"]),
            pagerd(&cfg, &["incidents", "show", "#4711"]),
            pagerd(&cfg, &["incidents", "show", "ticket:4711", "--json"]),
            pagerd(&cfg, &["incidents", "explain", "#4711"]),
            pagerd(
                &cfg,
                &["incidents", "ack", "#4711", "--as", "ana@acme.example"],
            ),
            pagerd(&cfg, &["incidents", "show", "#999"]),
        ]
    })
    .await
    .unwrap();

    let t = text(&explain);
    assert!(explain.status.success(), "{t}");
    for want in [
        "incident 1: ticket #4711 \"Production instance down\" (Customer Corp), triggered, level 1",
        "What fires next:",
        "escalates to level 2 unless acknowledged",
        "(in ",
        "ack timeout 10m",
        "crisis declared",
        "What happened:",
        "emergency ticket #4711 came in",
        "via Zendesk; queued: page to PagerDuty (level 1)",
        "PagerDuty accepted the page via PagerDuty",
        "Deliveries:",
        "page to PagerDuty (level 1)",
        "delivered",
    ] {
        assert!(t.contains(want), "no {want:?} in:\n{t}");
    }
    assert!(!t.contains("{\""), "{t}");

    assert!(json.status.success(), "{}", text(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let next = &v["next"][0];
    assert!(
        next["what"]
            .as_str()
            .unwrap()
            .contains("escalates to level 2"),
        "{v:#}"
    );
    let at: jiff::Timestamp = next["at"].as_str().expect("at").parse().expect("RFC 3339");
    assert_eq!(at.as_millisecond(), ack, "{v:#}");
    assert!(
        next["why"].as_str().unwrap().contains("acknowledged"),
        "{v:#}"
    );
    let timeline = v["timeline"].as_array().expect("timeline");
    assert!(timeline.len() >= 2, "{v:#}");
    assert_eq!(timeline[0]["via"], "zendesk", "{v:#}");
    assert_eq!(timeline[1]["what"], "PagerDuty accepted the page", "{v:#}");
    assert!(timeline[0]["at"].as_str().unwrap().ends_with('Z'), "{v:#}");

    let s = text(&show);
    assert!(show.status.success(), "{s}");
    assert!(
        s.contains("journal:  (times in") && s.contains("emergency ticket #4711 came in"),
        "{s}"
    );
    assert!(!s.contains("{\"type\""), "raw JSON in the journal:\n{s}");

    let s = text(&by_ticket);
    assert!(
        by_ticket.status.success() && s.contains("incident 1 ") && s.contains("#4711"),
        "{s}"
    );
    let v: serde_json::Value = serde_json::from_slice(&by_ticket_too.stdout).expect("JSON");
    assert_eq!(v["incident"]["id"], 1, "{}", text(&by_ticket_too));
    assert!(
        explain_ticket.status.success() && text(&explain_ticket).contains("incident 1:"),
        "{}",
        text(&explain_ticket)
    );
    assert!(
        ack_ticket.status.success() && text(&ack_ticket).contains("incident 1: ack done"),
        "{}",
        text(&ack_ticket)
    );
    assert!(!unknown.status.success(), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("no incident for ticket #999"),
        "{}",
        text(&unknown)
    );

    // Acknowledged: the escalation is off, the timeline names Ana and the CLI.
    let v: serde_json::Value = serde_json::from_slice(
        &tokio::task::spawn_blocking({
            let cfg = h.config_path.clone();
            move || pagerd(&cfg, &["incidents", "explain", "1", "--json"])
        })
        .await
        .unwrap()
        .stdout,
    )
    .expect("JSON");
    let whats: Vec<&str> = v["next"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["what"].as_str())
        .collect();
    assert!(!whats.iter().any(|w| w.contains("escalates")), "{v:#}");
    let acked = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["what"] == "acknowledged")
        .unwrap_or_else(|| panic!("no ack in {v:#}"));
    assert_eq!(acked["via"], "cli", "{v:#}");
    assert!(
        acked["who"].as_str().unwrap().contains("ana@acme.example"),
        "{v:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engineers_need_only_the_url_and_the_token_file() {
    let Some(h) = Harness::started_on(crate::util::Backend::Sqlite, "ack_timeout = \"1h\"").await
    else {
        return;
    };
    h.ticket(4711, "urgent", &[]).await;
    let url = h.url("");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(
        &token,
        format!("{}\n", pagerd::fakes::stand_ins::secrets::ADMIN),
    )
    .unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "SECRET-not-the-token-0123456789abcdef\n").unwrap();
    let nowhere = dir.path().join("no-such-dir/pagerd.toml");
    let down = format!("http://{}", crate::util::free_port());
    let down_given = down.clone();
    let out = tokio::task::spawn_blocking(move || {
        let (cfg, tok, wrong) = (
            nowhere.to_str().unwrap().to_string(),
            token.to_str().unwrap().to_string(),
            wrong.to_str().unwrap().to_string(),
        );
        let remote = |before: &[&str], after: &[&str]| {
            let mut args = vec!["--config", &cfg, "--url", &url, "--token-file", &tok];
            args.extend_from_slice(before);
            args.extend_from_slice(after);
            pagerd_env(&args, &[])
        };
        [
            remote(&["incidents", "list"], &[]),
            remote(&["status"], &[]),
            remote(&["incidents", "explain", "#4711"], &[]),
            // After the subcommand too.
            pagerd_env(
                &[
                    "--config",
                    &cfg,
                    "incidents",
                    "show",
                    "1",
                    "--url",
                    &url,
                    "--token-file",
                    &tok,
                ],
                &[],
            ),
            pagerd_env(
                &[
                    "--config",
                    &cfg,
                    "status",
                    "--url",
                    &url,
                    "--token-file",
                    &tok,
                ],
                &[],
            ),
            // From the environment.
            pagerd_env(
                &["--config", &cfg, "incidents", "list"],
                &[("PAGERD_URL", &url), ("PAGERD_TOKEN_FILE", &tok)],
            ),
            // No --as, and the config is not read for [cli] operator.
            remote(&["incidents", "ack", "1"], &[]),
            remote(&["incidents", "ack", "1", "--as", "ana@acme.example"], &[]),
            // The wrong token, the daemon down, the config missing.
            pagerd_env(
                &[
                    "--config",
                    &cfg,
                    "--url",
                    &url,
                    "--token-file",
                    &wrong,
                    "incidents",
                    "list",
                ],
                &[],
            ),
            pagerd_env(
                &[
                    "--config",
                    &cfg,
                    "--url",
                    &down,
                    "--token-file",
                    &tok,
                    "incidents",
                    "list",
                ],
                &[],
            ),
            pagerd_env(&["--config", &cfg, "--url", &url, "status"], &[]),
            pagerd_env(
                &[
                    "--config",
                    &cfg,
                    "--url",
                    "ftp://x",
                    "--token-file",
                    &tok,
                    "status",
                ],
                &[],
            ),
        ]
    })
    .await
    .unwrap();
    let [
        list,
        status,
        explain,
        show_after,
        status_after,
        from_env,
        anonymous,
        ack,
        wrong,
        down,
        no_token,
        bad_url,
    ] = out;
    for (name, o) in [
        ("list", &list),
        ("status", &status),
        ("explain", &explain),
        ("show --url after", &show_after),
        ("status --url after", &status_after),
        ("env", &from_env),
        ("ack", &ack),
    ] {
        assert!(o.status.success(), "{name}: {}", text(o));
    }
    assert!(text(&list).contains("#4711"), "{}", text(&list));
    assert!(text(&from_env).contains("#4711"), "{}", text(&from_env));
    assert!(
        text(&status).contains("role      leader"),
        "{}",
        text(&status)
    );
    assert!(
        text(&explain).contains("What fires next"),
        "{}",
        text(&explain)
    );
    assert!(
        text(&show_after).contains("incident 1 "),
        "{}",
        text(&show_after)
    );
    assert!(
        text(&ack).contains("incident 1: ack done"),
        "{}",
        text(&ack)
    );
    assert_eq!(anonymous.status.code(), Some(2), "{}", text(&anonymous));
    assert!(
        text(&anonymous).contains("--as EMAIL"),
        "{}",
        text(&anonymous)
    );

    let t = text(&wrong);
    assert!(!wrong.status.success(), "{t}");
    assert!(
        t.contains("refused the admin token") && t.contains("--token-file") && t.contains("401"),
        "{t}"
    );
    assert!(!t.contains("SECRET-"), "a token in the message: {t}");
    let t = text(&down);
    assert!(!down.status.success(), "{t}");
    assert!(
        t.contains(&format!("cannot reach pagerd at {down_given}:"))
            && t.to_lowercase().contains("connection refused")
            && t.contains("--url URL"),
        "{t}"
    );
    let t = text(&no_token);
    assert!(!no_token.status.success(), "{t}");
    assert!(
        t.contains("--token-file FILE") && t.contains("no-such-dir"),
        "{t}"
    );
    let t = text(&bad_url);
    assert!(!bad_url.status.success() && t.contains("ftp://x"), "{t}");
}

/// A server that answers every request with `status` and `body`, like a
/// daemon whose admin API is off, or something that is not pagerd.
fn stub(status: &'static str, body: &'static str) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn an_admin_api_that_is_off_or_missing_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "SECRET-some-token-0123456789abcdef\n").unwrap();
    let tok = token.to_str().unwrap();
    let off = stub(
        "403 Forbidden",
        r#"{"error":"the admin API is off: set server.admin_token_file (or _env)"}"#,
    );
    let o = pagerd_env(&["--url", &off, "--token-file", tok, "status"], &[]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("admin API of pagerd at")
            && t.contains("is off")
            && t.contains("server.admin_token_file"),
        "{t}"
    );
    let other = stub("404 Not Found", "<html>nope</html>");
    let o = pagerd_env(
        &["--url", &other, "--token-file", tok, "incidents", "list"],
        &[],
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("has no pagerd admin API")
            && t.contains("404")
            && t.contains("/api/v1/incidents"),
        "{t}"
    );
}

//! `pagerd backup FILE` drives the real binary: a copy taken while `pagerd
//! run` serves webhooks holds its incidents and restores as the README says;
//! an existing FILE is kept without `--force`; a PostgreSQL store gets the
//! pg_dump command instead.

use std::path::Path;
use std::process::Output;

use pagerd::fakes::stand_ins::{Extra, Options, StandIns, secrets};

use crate::util::{Proc, eventually, urgent};

fn pagerd(config: &Path, args: &[&str]) -> Output {
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

/// Posts ticket `id`'s signed webhook to the daemon; its HTTP status.
async fn ticket(vendors: &StandIns, proc: &Proc, id: u64) -> u16 {
    vendors
        .zendesk
        .upsert_ticket(urgent(id, "Production instance down"));
    vendors
        .zendesk
        .send_webhook(&format!("http://{}/webhooks/zendesk", proc.addr), id)
        .await
        .unwrap_or(0)
}

/// The tickets of the incidents in the SQLite file at `path`, after its
/// integrity check passed.
fn tickets_in(path: &Path) -> Vec<u64> {
    let conn = rusqlite::Connection::open(path).expect("the copy opens");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let mut stmt = conn
        .prepare("SELECT ticket_id FROM incidents ORDER BY id")
        .expect("incidents table");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|t| t.expect("row").parse().expect("ticket number"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_daemon_runs_holds_its_incidents_and_restores() {
    let vendors = StandIns::start(Options::default())
        .await
        .expect("stand-ins");
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = Extra {
        policy: "ack_timeout = \"1h\"".into(),
        ..Extra::default()
    };
    let mut proc = Proc::for_stand_ins(&vendors, dir.path(), &extra);
    proc.start().await;
    for id in 1..=5 {
        assert_eq!(ticket(&vendors, &proc, id).await, 200, "ticket {id}");
    }
    eventually("tickets 1 to 5 paged", || async {
        (1..=5).all(|id| vendors.pagerduty.opened_for(&format!("zendesk-{id}")) == 1)
    })
    .await;

    // The backup runs while more tickets come in.
    let file = dir.path().join("backups").join("pagerd-backup.db");
    std::fs::create_dir(dir.path().join("backups")).expect("mkdir");
    let (config, dest) = (proc.config.clone(), file.clone());
    let backup = tokio::task::spawn_blocking(move || {
        pagerd(&config, &["backup", &dest.display().to_string()])
    });
    for id in 6..=15 {
        assert_eq!(ticket(&vendors, &proc, id).await, 200, "ticket {id}");
    }
    let out = backup.await.expect("backup ran");
    assert!(out.status.success(), "{}", text(&out));
    let tickets = tickets_in(&file);
    assert!(
        tickets.len() >= 5 && tickets[..5] == [1, 2, 3, 4, 5],
        "{tickets:?}"
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains(&format!("wrote {}: ", file.display()))
            && said.contains(&format!("{} incidents", tickets.len()))
            && said.contains("integrity_check ok"),
        "{said}"
    );
    // Nothing but the backup beside it (no temporary file, no -wal).
    let names: Vec<_> = std::fs::read_dir(dir.path().join("backups"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["pagerd-backup.db"]);
    // The daemon never stopped serving, and its lock was not taken.
    assert_eq!(ticket(&vendors, &proc, 16).await, 200);
    eventually("ticket 16 paged", || async {
        vendors.pagerduty.opened_for("zendesk-16") == 1
    })
    .await;

    // Restore as the README says: stop, copy into place, remove the stale
    // -wal and -shm, start. The daemon then holds what the backup held.
    assert!(proc.terminate().await.is_some_and(|s| s.success()));
    let store = dir.path().join("pagerd.db");
    std::fs::copy(&file, &store).expect("copy into place");
    for stale in ["pagerd.db-wal", "pagerd.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(stale));
    }
    proc.start().await;
    let (status, body) = admin_list(&proc).await;
    assert_eq!(status, 200, "{body}");
    let mut restored: Vec<u64> = body["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .map(|i| {
            i["ticket"]["id"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("ticket id")
        })
        .collect();
    restored.sort_unstable();
    let mut backed_up = tickets.clone();
    backed_up.sort_unstable();
    assert_eq!(restored, backed_up);
    proc.terminate().await;
}

/// `GET /api/v1/incidents?all=true` of the daemon.
async fn admin_list(proc: &Proc) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .get(format!("http://{}/api/v1/incidents?all=true", proc.addr))
        .bearer_auth(secrets::ADMIN)
        .send()
        .await
        .expect("admin API");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn an_existing_backup_file_is_kept_without_force() {
    let vendors = StandIns::start(Options::default())
        .await
        .expect("stand-ins");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut proc = Proc::for_stand_ins(&vendors, dir.path(), &Extra::default());
    proc.start().await;
    assert_eq!(ticket(&vendors, &proc, 4711).await, 200);
    let file = dir.path().join("backup.db");
    std::fs::write(&file, "last night's backup").expect("write");
    let name = file.display().to_string();
    let refused = pagerd(&proc.config, &["backup", &name]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains(&format!("{name} exists; give --force")),
        "{}",
        text(&refused)
    );
    assert_eq!(std::fs::read(&file).expect("read"), b"last night's backup");
    let forced = pagerd(&proc.config, &["backup", "--force", &name]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert_eq!(tickets_in(&file), [4711]);
    proc.terminate().await;
}

#[test]
fn a_postgresql_store_gets_the_pg_dump_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("postgres-password");
    std::fs::write(&password, "hunter2-secret\n").expect("write");
    let config = dir.path().join("pagerd.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"postgres://pagerd@db.internal:5432/pagerd\"\n\
             password_file = {:?}\nca_file = \"/etc/ssl/certs/ca-certificates.crt\"\n",
            password.display().to_string()
        ),
    )
    .expect("write");
    let file = dir.path().join("pagerd.dump");
    let out = pagerd(&config, &["backup", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    let url = "postgres://pagerd@db.internal:5432/pagerd?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt";
    assert!(
        t.contains("PostgreSQL")
            && t.contains(&format!(
                "pg_dump --format=custom --file {} '{url}'",
                file.display()
            ))
            && t.contains("pg_restore"),
        "{t}"
    );
    assert!(!t.contains("hunter2"), "{t}");
    assert!(!file.exists());
}

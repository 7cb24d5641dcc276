//! Tests of sqlite.
use super::*;
use crate::engine::{EffectKind, Source, Ticket};

fn ticket(id: &str) -> Ticket {
    Ticket {
        id: id.into(),
        title: "down".into(),
        priority: "urgent".into(),
        status: "new".into(),
        tags: vec![],
        url: "u".into(),
        requester_name: "D".into(),
        requester_email: "d@c.test".into(),
        organization: "C".into(),
    }
}

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("p.db"), Arc::new(Policy::default())).unwrap();
    (dir, store)
}

fn seen(id: &str) -> Intake {
    Intake {
        target: Target::Ticket(id.into()),
        event: Event::Ticket {
            ticket: ticket(id),
            polled: false,
        },
        delivery: None,
    }
}

#[tokio::test]
async fn state_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    {
        let s = SqliteStore::open(&path, Arc::new(Policy::default())).unwrap();
        s.apply(seen("9"), 5).await.unwrap();
    }
    let s = SqliteStore::open(&path, Arc::new(Policy::default())).unwrap();
    assert_eq!(s.deadlines().await.unwrap(), vec![(1, 3_600_005)]);
    assert_eq!(
        s.get(1).await.unwrap().map(|i| i.ticket.id),
        Some("9".to_string())
    );
}

#[tokio::test]
async fn a_second_daemon_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let _first = SqliteStore::open(&path, Arc::new(Policy::default())).unwrap();
    let Err(e) = SqliteStore::open(&path, Arc::new(Policy::default())) else {
        panic!("opened twice")
    };
    assert!(
        e.to_string()
            .contains("another pagerd is using this database"),
        "{e}"
    );
}

#[tokio::test]
async fn an_unusable_path_is_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let Err(e) = SqliteStore::open(&file.join("p.db"), Arc::new(Policy::default())) else {
        panic!("opened")
    };
    assert!(e.to_string().contains("a-file/p.db"), "{e}");
}

#[tokio::test]
async fn a_missing_directory_is_refused_with_the_path() {
    let Err(e) = SqliteStore::open(
        Path::new("/nonexistent/dir/p.db"),
        Arc::new(Policy::default()),
    ) else {
        panic!("opened")
    };
    assert!(e.to_string().contains("/nonexistent/dir"), "{e}");
}

#[tokio::test]
async fn retention_keeps_what_is_needed_and_deletes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(
        &dir.path().join("p.db"),
        Arc::new(crate::store::contract::policy()),
    )
    .unwrap();
    crate::store::contract::retention(&s).await;
}

#[tokio::test]
async fn hackerone_reports_are_watched_once_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    crate::store::contract::reports(async || {
        Box::new(SqliteStore::open(&path, Arc::new(Policy::default())).unwrap()) as Box<dyn Store>
    })
    .await;
}

#[tokio::test]
async fn hackerone_events_are_kept_once_per_report_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    crate::store::contract::hackerone_events(async || {
        Box::new(SqliteStore::open(&path, Arc::new(Policy::default())).unwrap()) as Box<dyn Store>
    })
    .await;
}

/// `PRAGMA name` on a read-only connection to `path`.
fn pragma(path: &Path, name: &str) -> i64 {
    open_reader(path)
        .unwrap()
        .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

/// Opens ticket `id` with a `kb` KiB title and solves it at `at`, every
/// effect delivered.
async fn resolved_incident(s: &SqliteStore, id: &str, kb: usize, at: Millis) {
    let mut t = ticket(id);
    t.title = "x".repeat(kb << 10);
    s.apply(Intake::ticket(t.clone()), 0).await.unwrap();
    t.status = "solved".into();
    s.apply(Intake::ticket(t), at).await.unwrap();
    loop {
        let (due, _) = s.due(at, 100, vec![]).await.unwrap();
        if due.is_empty() {
            return;
        }
        for p in due {
            let ev = Event::Delivered {
                effect: p.effect.kind(),
                outcome: None,
            };
            s.complete(p.id, ev, at).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_new_file_gives_the_space_retention_frees_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let s = SqliteStore::open(&path, Arc::new(Policy::default())).unwrap();
    assert_eq!(pragma(&path, "auto_vacuum"), 2, "incremental");
    for i in 0..150 {
        resolved_incident(&s, &i.to_string(), 16, 1000).await;
    }
    let full = pragma(&path, "page_count");
    let mut cursor = None;
    loop {
        let p = s.prune(2000, 0, 40, cursor).await.unwrap();
        cursor = p.next;
        if p.finished {
            break;
        }
    }
    // The last batch's vacuum is bounded; the next pass hands back the rest.
    s.prune(2000, 0, 40, None).await.unwrap();
    assert_eq!(s.stats(2000).await.unwrap().incidents, 0);
    let left = pragma(&path, "page_count");
    assert!(left * 10 < full, "{full} pages before, {left} after");
    assert_eq!(
        pragma(&path, "freelist_count"),
        0,
        "{full} pages before, {left} after"
    );
}

#[tokio::test]
async fn a_schema_4_file_gets_the_hackerone_table_and_keeps_its_reports() {
    use crate::reports::Report;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    {
        let s = SqliteStore::open(&path, Arc::new(Policy::default())).unwrap();
        let t = crate::engine::Ticket {
            id: "4711".into(),
            title: "XSS".into(),
            priority: "normal".into(),
            status: "new".into(),
            tags: vec!["hackerone".into()],
            url: String::new(),
            requester_name: String::new(),
            requester_email: String::new(),
            organization: String::new(),
        };
        s.watch_report(Report::new(&t, 1, (3, 2), 1)).await.unwrap();
    }
    {
        // As schema 4 left it: no h1_reports, no reports.h1_report.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE h1_reports; ALTER TABLE reports DROP COLUMN h1_report;
             UPDATE meta SET value = '4' WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path, Arc::new(Policy::default())).unwrap();
    let kept = s.report("4711").await.unwrap().expect("kept");
    assert_eq!((kept.respond_by, kept.h1_report), (3, None));
    let linked = s
        .change_report(
            "4711",
            crate::reports::ReportChange::Linked("548".into()),
            5,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(linked.h1_report.as_deref(), Some("548"));
    assert!(s.h1_reports(10).await.unwrap().is_empty());
    drop(s);
    // Opened again (the migration already done): fine.
    let s = SqliteStore::open(&path, Arc::new(Policy::default())).unwrap();
    assert!(s.report("4711").await.unwrap().is_some());
}

#[tokio::test]
async fn a_small_schema_2_file_gets_the_indexes_and_incremental_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    {
        let s = SqliteStore::open(&path, Arc::new(Policy::default())).unwrap();
        resolved_incident(&s, "1", 1, 1000).await;
    }
    {
        // As pagerd 0.2 left it: schema 2, no auto-vacuum.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP INDEX incidents_resolved; DROP INDEX deliveries_at;
             UPDATE meta SET value = '2' WHERE key = 'schema_version';
             PRAGMA auto_vacuum = NONE; VACUUM;",
        )
        .unwrap();
        assert_eq!(pragma(&path, "auto_vacuum"), 0);
    }
    let s = SqliteStore::open(&path, Arc::new(Policy::default())).unwrap();
    assert_eq!(pragma(&path, "auto_vacuum"), 2, "converted at open");
    let reader = open_reader(&path).unwrap();
    let version: String = reader
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, super::schema::SCHEMA_VERSION.to_string());
    let indexes: i64 = reader
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index'
             AND name IN ('incidents_resolved', 'deliveries_at')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 2);
    assert!(s.get(1).await.unwrap().is_some(), "the data is intact");
    assert_eq!(s.prune(2000, 0, 10, None).await.unwrap().incidents, 1);
}

#[test]
fn the_prune_query_walks_the_resolved_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    drop(SqliteStore::open(&path, Arc::new(Policy::default())).unwrap());
    let conn = Connection::open(&path).unwrap();
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", space::PRUNE_SELECT))
        .unwrap()
        .query_map(params![0, 0, 0, 10], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("incidents_resolved"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
    assert!(!plan.contains("SCAN o"), "pending rows by index: {plan}");
}

#[test]
fn the_start_counts_read_indexes_not_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    drop(SqliteStore::open(&path, Arc::new(Policy::default())).unwrap());
    let conn = Connection::open(&path).unwrap();
    for query in STATS {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("INDEX"), "{query}: {plan}");
    }
}

#[tokio::test]
async fn a_failing_job_leaves_nothing_alone_or_in_a_group() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (_dir, s) = open();
    let runs = Arc::new(AtomicUsize::new(0));
    let put = |key: &'static str, fail: bool| {
        let (s, runs) = (s.clone(), runs.clone());
        async move {
            s.call(move |conn| {
                runs.fetch_add(1, Ordering::SeqCst);
                conn.execute("INSERT INTO meta(key, value) VALUES (?1, 'v')", [key])?;
                if fail {
                    return Err(StoreError::Corrupt(format!("{key} failed")));
                }
                Ok(())
            })
            .await
        }
    };
    // Alone: the whole transaction is rolled back, and the next one works.
    assert!(put("alone", true).await.is_err());
    put("after", false).await.unwrap();
    assert_eq!(runs.swap(0, Ordering::SeqCst), 2);
    // Queued together behind a slow job, so they form one group: b's
    // failure undoes the group (c never ran in it), each job runs again
    // alone, and only b's write is missing. A job run twice wrote once.
    let (started, running) = std::sync::mpsc::channel();
    let slow = {
        let s = s.clone();
        tokio::spawn(async move {
            s.call(move |_| {
                let _ = started.send(());
                std::thread::sleep(std::time::Duration::from_millis(200));
                Ok(())
            })
            .await
        })
    };
    tokio::task::spawn_blocking(move || running.recv())
        .await
        .unwrap()
        .unwrap();
    let (a, b, c) = tokio::join!(put("a", false), put("b", true), put("c", false));
    assert!(a.is_ok() && b.is_err() && c.is_ok());
    slow.await.unwrap().unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        5,
        "a and b in the group, then a, b, c alone"
    );
    let keys: Vec<String> = s
        .call(|conn| {
            let mut st = conn.prepare("SELECT key FROM meta WHERE value = 'v' ORDER BY key")?;
            let keys = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok(keys)
        })
        .await
        .unwrap();
    assert_eq!(keys, ["a", "after", "c"]);
}

#[tokio::test]
async fn the_end_of_a_retention_pass_gives_a_grown_wal_back() {
    let (dir, s) = open();
    let wal = dir.path().join("p.db-wal");
    let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    // One commit of 2 MiB grows the WAL past WAL_KEPT (1 MiB in tests);
    // SQLite reuses the file from its start but keeps its size.
    s.call(|conn| {
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('big', ?1)",
            ["x".repeat(2 << 20)],
        )?;
        Ok(())
    })
    .await
    .unwrap();
    s.call(|conn| {
        conn.execute("DELETE FROM meta WHERE key = 'big'", [])?;
        Ok(())
    })
    .await
    .unwrap();
    // Checkpoints alone do not shrink it.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(wal_len() > WAL_KEPT, "{}", wal_len());
    // The end of a pass (nothing to prune here: it ends at once) does.
    let pruned = s.prune(0, 0, 100, None).await.unwrap();
    assert!(pruned.finished);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wal_len() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(wal_len(), 0);
    // And the store goes on.
    s.apply(seen("after-truncate"), 1).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_writes_reuse_the_wal_instead_of_growing_it() {
    let (dir, s) = open();
    let path = dir.path().join("p.db");
    s.apply(seen("first"), 0).await.unwrap();
    let before = wal_restarts(&path);
    // Four writers back to back for three seconds: the writer is never
    // idle, so SQLite never starts the log again by itself (each commit of
    // a new ticket adds tens of KiB to it).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let writers = (0..4).map(|w| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while std::time::Instant::now() < until {
                s.apply(seen(&format!("{w}-{n}")), n).await.unwrap();
                n += 1;
            }
            n
        })
    });
    let mut commits = 0;
    for w in writers {
        commits += w.await.unwrap();
    }
    let restarts = wal_restarts(&path) - before;
    let len = std::fs::metadata(wal_path(&path)).unwrap().len();
    // Past WAL_RESTART (1 MiB in tests) the checkpoint thread asks the
    // writer to restart the log between two groups, in about every round
    // of the twelve: it holds a round's commits or so (tens of MiB in a
    // release build), not all of them (hundreds).
    assert!(commits > 400, "{commits} commits: too few to tell");
    assert!(
        restarts >= 3,
        "the WAL restarted {restarts} times in {commits} commits ({len} bytes)"
    );
}

/// How many times the WAL was started again from its beginning: the
/// checkpoint sequence number in its header.
fn wal_restarts(path: &Path) -> u32 {
    let header = std::fs::read(wal_path(path)).unwrap();
    u32::from_be_bytes(header[12..16].try_into().unwrap())
}

/// Waits up to 10 s for the WAL's restart count to reach `n`.
async fn wal_restarted(path: &Path, n: u32) {
    for _ in 0..200 {
        if wal_restarts(path) == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "the WAL was restarted {} times, not {n}",
        wal_restarts(path)
    );
}

#[tokio::test]
async fn the_wal_restarts_while_idle_not_inside_the_next_commit() {
    let (dir, s) = open();
    let path = dir.path().join("p.db");
    s.apply(seen("1"), 1).await.unwrap();
    let first = wal_restarts(&path);
    // Once the checkpoint thread has copied it, the log starts again with
    // no commit waiting for it...
    wal_restarted(&path, first + 1).await;
    // ...so the next ticket's commit appends, without syncing a new header.
    s.apply(seen("2"), 2).await.unwrap();
    assert_eq!(
        wal_restarts(&path),
        first + 1,
        "the ticket's commit restarted the WAL"
    );
    wal_restarted(&path, first + 2).await;
    // With nothing new, the rounds leave the log alone: no restart, no
    // sync, every quarter second of an idle daemon.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(wal_restarts(&path), first + 2, "restarted while idle");
}

#[tokio::test]
async fn the_wals_restart_does_not_make_the_next_commit_wait_twice_for_a_lock() {
    let (dir, s) = open();
    let path = dir.path().join("p.db");
    s.apply(seen("1"), 1).await.unwrap();
    let (release_tx, holder) = hold_write_lock(&path);
    let jobs = s.owner.jobs.clone().unwrap();
    jobs.send(Box::new(writer::RestartWal)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // The restart gives up at once; the ticket waits the busy timeout
    // (5 s) once, not after the restart's own.
    let t = std::time::Instant::now();
    let e = s.apply(seen("2"), 2).await.unwrap_err();
    let took = t.elapsed();
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert!(matches!(e, StoreError::Busy(_)), "{e}");
    assert!(
        took < BUSY_TIMEOUT + std::time::Duration::from_secs(2),
        "{took:?}"
    );
    s.apply(seen("2"), 3).await.unwrap();
}

/// Another connection (a sqlite3 shell) takes the write lock, and holds it
/// until told (or 30 s): the sender and the thread to join.
fn hold_write_lock(path: &Path) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn({
        let path = path.to_owned();
        move || {
            let conn = Connection::open(path).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(std::time::Duration::from_secs(30));
            conn.execute_batch("ROLLBACK").unwrap();
        }
    });
    locked_rx.recv().unwrap();
    (release_tx, holder)
}

/// Found by hand: with the store locked by another connection, a ticket
/// queued behind another caller's job (a readiness probe, a dispatcher
/// read) waited out that job's busy timeout and then its own, 7 to 10 s,
/// up to the HTTP layer's 10 s. Each caller now waits its own busy timeout
/// from when it asked, and no less: two callers queued together are
/// answered each at its own deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_waits_for_a_lock_its_own_busy_timeout_not_the_queue_aheads() {
    use std::time::{Duration, Instant};
    let (dir, s) = open();
    s.apply(seen("1"), 1).await.unwrap();
    let (release, holder) = hold_write_lock(&dir.path().join("p.db"));
    let ask = |id: &'static str| {
        let s = s.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let answer = s.apply(seen(id), 2).await;
            (answer, t.elapsed())
        })
    };
    // The first job holds the writer up for the whole busy timeout; `a`
    // and `b` queue behind it, 1 and 3 s later, and go in one group.
    let first = ask("2");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let a = ask("3");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = ask("4");
    let (first, first_took) = first.await.unwrap();
    assert!(matches!(first, Err(StoreError::Busy(_))), "{first:?}");
    let (a, a_took) = a.await.unwrap();
    assert!(matches!(a, Err(StoreError::Busy(_))), "{a:?}");
    // (Before: 9 s, waiting out the first job's timeout, then its own.)
    assert!(
        a_took < BUSY_TIMEOUT + Duration::from_millis(800),
        "waited {a_took:?} for the lock"
    );
    assert!(
        a_took >= BUSY_TIMEOUT - Duration::from_millis(50),
        "{a_took:?}"
    );
    assert!(
        first_took >= BUSY_TIMEOUT - Duration::from_millis(50),
        "{first_took:?}"
    );
    // `b` has 2 s of its own left, and gets the lock once it is free.
    release.send(()).unwrap();
    holder.join().unwrap();
    let (b, b_took) = b.await.unwrap();
    assert!(b.is_ok(), "{b:?} after {b_took:?}");
    assert!(s.by_ticket("4").await.unwrap().is_some());
    assert!(s.by_ticket("3").await.unwrap().is_none());
}

// ---- the store contract (src/store/contract.rs) ----------------------------

#[tokio::test]
async fn contract_first_sight() {
    let (_d, s) = open();
    crate::store::contract::first_sight(&s).await;
}

#[tokio::test]
async fn contract_lanes() {
    let (_d, s) = open();
    crate::store::contract::lanes(&s).await;
}

#[tokio::test]
async fn contract_given_up() {
    let (_d, s) = open();
    crate::store::contract::given_up(&s).await;
}

#[tokio::test]
async fn contract_replayed_delivery() {
    let (_d, s) = open();
    crate::store::contract::replayed_delivery(&s).await;
}

#[tokio::test]
async fn contract_policy_reload() {
    let dir = tempfile::tempdir().unwrap();
    let policy = crate::shared::Shared::new(Policy {
        ack_timeout: 2_000,
        crisis_after: 10_000,
        ..Policy::default()
    });
    let s = SqliteStore::open(&dir.path().join("p.db"), policy.clone()).unwrap();
    crate::store::contract::policy_reload(&s, &policy).await;
}

#[test]
fn the_writers_range_queries_keep_their_plans_under_the_planner_stability_guarantee() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    drop(SqliteStore::open(&path, Arc::new(Policy::default())).unwrap());
    let plan = |qpsg: bool, sql: &str, params: &[i64]| -> String {
        let conn = Connection::open(&path).unwrap();
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            qpsg,
        )
        .unwrap();
        let rows: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(params), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.join("\n")
    };
    for (sql, params) in [
        (DUE_SELECT, &[5, 10][..]),
        (space::PRUNE_SELECT, &[5, 0, 0, 10][..]),
    ] {
        let planned = plan(true, sql, params);
        assert_eq!(planned, plan(false, sql, params), "{sql}");
        assert!(!planned.contains("SCAN"), "{planned}");
    }
}

/// Collects what the store reports, as the dispatcher's hand-off would.
#[derive(Default)]
struct Collect(std::sync::Mutex<Vec<Pending>>);

impl Ready for Collect {
    fn ready(&self, rows: Vec<Pending>) {
        self.0.lock().unwrap().extend(rows);
    }
}

impl Collect {
    fn take(&self) -> Vec<(i64, EffectKind)> {
        let rows = std::mem::take(&mut *self.0.lock().unwrap());
        rows.iter().map(|p| (p.id, p.effect.kind())).collect()
    }
}

#[tokio::test]
async fn commits_report_the_rows_they_make_deliverable_and_only_those() {
    let (_d, s) = open();
    let seen_rows = Arc::new(Collect::default());
    assert!(s.hand_off(seen_rows.clone()));
    let a = s.apply(seen("1"), 0).await.unwrap();
    let reported = seen_rows.take();
    let (due, _) = s.due(0, 10, vec![]).await.unwrap();
    assert_eq!(reported, vec![(due[0].id, EffectKind::Page)]);
    let pending = s.due(0, 10, vec![]).await.unwrap().0;
    assert_eq!(
        pending[0].incident,
        *a.incident.as_ref().unwrap(),
        "the incident as committed, as the outbox scan reads it"
    );
    // Nothing changes: nothing reported.
    s.apply(seen("1"), 1).await.unwrap();
    assert!(seen_rows.take().is_empty());
    // The comment heads its lane; the acknowledge waits behind the page.
    let ack = Event::Acknowledge {
        by: "ana".into(),
        via: Source::Cli,
    };
    s.apply(Intake::incident(1, ack), 2).await.unwrap();
    let reported = seen_rows.take();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].1, EffectKind::TicketComment);
    // A retry makes nothing deliverable now.
    let page = due[0].id;
    s.retry_later(page, 100, "503".into()).await.unwrap();
    assert!(seen_rows.take().is_empty());
    // The page settled: the acknowledge behind it becomes deliverable.
    let done = Event::Delivered {
        effect: EffectKind::Page,
        outcome: None,
    };
    s.complete(page, done, 200).await.unwrap();
    let reported = seen_rows.take();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].1, EffectKind::PageAcknowledge);
    let (due, _) = s.due(200, 10, vec![]).await.unwrap();
    assert!(due.iter().any(|p| p.id == reported[0].0));
    // A settlement that fails for good promotes the next row too.
    let resolve = Event::Resolve {
        by: "ana".into(),
        via: Source::Cli,
    };
    s.apply(Intake::incident(1, resolve), 300).await.unwrap();
    assert!(seen_rows.take().is_empty(), "behind the acknowledge");
    s.fail(reported[0].0, "400".into(), 400).await.unwrap();
    assert_eq!(
        seen_rows.take().iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![EffectKind::PageResolve]
    );
}

/// What the writer did, in order: rows handed off (`page`, or the effect's
/// kind) and WAL syncs.
#[derive(Default)]
struct Steps(std::sync::Mutex<Vec<String>>);

impl Ready for Steps {
    fn ready(&self, rows: Vec<Pending>) {
        let mut steps = self.0.lock().unwrap();
        for p in rows {
            steps.push(match p.effect.kind() {
                EffectKind::Page => "page".into(),
                other => format!("{other:?}"),
            });
        }
    }
}

impl Steps {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A store whose WAL syncs are recorded in `steps`, and fail while `fail`.
fn open_watched() -> (
    tempfile::TempDir,
    SqliteStore,
    Arc<Steps>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let dir = tempfile::tempdir().unwrap();
    let steps = Arc::new(Steps::default());
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let real = writer::sync_wal(dir.path().join("p.db-wal"));
    let sync: writer::Sync = {
        let (steps, fail, mut real) = (steps.clone(), fail.clone(), real);
        Box::new(move || {
            steps.0.lock().unwrap().push("sync".into());
            if fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::Error::other("I/O error (test)"));
            }
            real()
        })
    };
    let policy: Shared<Policy> = Arc::new(Policy::default()).into();
    let s = SqliteStore::open_with(&dir.path().join("p.db"), policy, Some(sync)).unwrap();
    assert!(s.hand_off(steps.clone()));
    (dir, s, steps, fail)
}

#[tokio::test]
async fn a_page_leaves_while_the_wal_syncs_and_everything_else_after() {
    let (_d, s, steps, _) = open_watched();
    // A new emergency: its page is handed off before the sync, and the
    // caller hears back after it.
    s.apply(seen("1"), 0).await.unwrap();
    assert_eq!(steps.take(), ["page", "sync"]);
    // An acknowledgement: the customer's comment waits for the sync.
    let ack = Event::Acknowledge {
        by: "ana".into(),
        via: Source::Cli,
    };
    s.apply(Intake::incident(1, ack), 1).await.unwrap();
    assert_eq!(steps.take(), ["sync", "TicketComment"]);
    // Reads write nothing and sync nothing.
    s.get(1).await.unwrap();
    s.due(2, 10, vec![]).await.unwrap();
    assert!(steps.take().is_empty());
}

#[tokio::test]
async fn a_timers_escalation_leaves_while_the_wal_syncs_and_a_persons_after_it() {
    let (_d, s, steps, _) = open_watched();
    let ack_timeout = Policy::default().ack_timeout;
    for id in ["1", "2"] {
        s.apply(seen(id), 0).await.unwrap();
    }
    // PagerDuty took both pages: their acknowledgement deadlines run.
    let (due, _) = s.due(0, 10, vec![]).await.unwrap();
    for p in due.iter().filter(|p| p.effect.kind() == EffectKind::Page) {
        let done = Event::Delivered {
            effect: EffectKind::Page,
            outcome: None,
        };
        s.complete(p.id, done, 10).await.unwrap();
    }
    steps.take();
    // Incident 1's deadline passes: the timer's escalation leaves before
    // the sync, and carries the deadline.
    s.apply(Intake::incident(1, Event::Tick), 10 + ack_timeout)
        .await
        .unwrap();
    assert_eq!(steps.take()[..2], ["PageEscalate", "sync"]);
    let (due, _) = s.due(10 + ack_timeout, 10, vec![]).await.unwrap();
    assert!(due.iter().any(|p| p.incident.id == 1
        && matches!(p.effect, Effect::PageEscalate { due: Some(d), .. } if d == 10 + ack_timeout)));
    // Someone escalates incident 2 by hand: that waits for the sync.
    let escalate = Event::Escalate {
        by: "ana".into(),
        reason: "read-only".into(),
        via: Source::Cli,
    };
    s.apply(Intake::incident(2, escalate), 20).await.unwrap();
    assert_eq!(steps.take()[..2], ["sync", "PageEscalate"]);
}

/// What the hook was handed, and whether another connection could read
/// the row then (whether its commit was written).
struct Visible {
    reader: std::sync::Mutex<Connection>,
    seen: std::sync::Mutex<Vec<(EffectKind, bool)>>,
}

impl Ready for Visible {
    fn ready(&self, rows: Vec<Pending>) {
        let reader = self.reader.lock().unwrap();
        for p in rows {
            let written: bool = reader
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM outbox WHERE id = ?1)",
                    [p.id],
                    |r| r.get(0),
                )
                .unwrap();
            self.seen.lock().unwrap().push((p.effect.kind(), written));
        }
    }
}

#[tokio::test]
async fn a_page_leaves_before_its_commit_is_written_and_an_escalation_once_it_is() {
    let (dir, s) = open();
    let hook = Arc::new(Visible {
        reader: Connection::open(dir.path().join("p.db")).unwrap().into(),
        seen: Default::default(),
    });
    assert!(s.hand_off(hook.clone()));
    s.apply(seen("1"), 0).await.unwrap();
    assert_eq!(*hook.seen.lock().unwrap(), [(EffectKind::Page, false)]);
    let (due, _) = s.due(0, 10, vec![]).await.unwrap();
    let done = Event::Delivered {
        effect: EffectKind::Page,
        outcome: None,
    };
    s.complete(due[0].id, done, 10).await.unwrap();
    hook.seen.lock().unwrap().clear();
    let ack_timeout = Policy::default().ack_timeout;
    s.apply(Intake::incident(1, Event::Tick), 10 + ack_timeout)
        .await
        .unwrap();
    assert_eq!(
        hook.seen.lock().unwrap()[0],
        (EffectKind::PageEscalate, true)
    );
}

/// Holds the writer thread once it runs (it says so on `.0`) until told
/// (on `.1`), so that the jobs sent meanwhile go in one group.
struct Gate(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);

impl writer::Job for Gate {
    fn run(&mut self, _: &Connection) -> bool {
        let _ = self.0.send(());
        self.1
            .recv_timeout(std::time::Duration::from_secs(10))
            .is_ok()
    }
    fn send_early(&mut self, _: writer::Early) -> Option<i64> {
        None
    }
    fn answer(self: Box<Self>, _: Result<(), StoreError>) {}
    fn deadline(&self) -> Option<std::time::Instant> {
        None
    }
}

/// Runs fine and makes its group's commit fail: a foreign key checked at
/// the commit, broken.
struct BreakTheCommit;

impl writer::Job for BreakTheCommit {
    fn run(&mut self, conn: &Connection) -> bool {
        conn.execute_batch(
            "PRAGMA defer_foreign_keys = ON;
             INSERT INTO journal(incident_id, at, event, effects) VALUES (999999, 0, '{}', 0);",
        )
        .is_ok()
    }
    fn send_early(&mut self, _: writer::Early) -> Option<i64> {
        None
    }
    fn answer(self: Box<Self>, _: Result<(), StoreError>) {}
    fn deadline(&self) -> Option<std::time::Instant> {
        Some(std::time::Instant::now() + BUSY_TIMEOUT)
    }
}

/// A page leaves before its commit is written; when the commit then fails,
/// SQLite would give the page's row id to the next row, and the page's
/// settlement, arriving late, would settle that row instead: a ticket's
/// page marked sent that never left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_commit_failed_keeps_its_id_to_itself() {
    let (_d, s) = open();
    let hook = Arc::new(Collect::default());
    assert!(s.hand_off(hook.clone()));
    let jobs = s.owner.jobs.clone().unwrap();
    let (open_gate, gate) = std::sync::mpsc::channel();
    let (running, gate_runs) = std::sync::mpsc::channel();
    jobs.send(Box::new(Gate(running, gate))).await.unwrap();
    gate_runs.recv().unwrap();
    let ticket = tokio::spawn({
        let s = s.clone();
        async move { s.apply(seen("1"), 0).await }
    });
    while jobs.max_capacity() - jobs.capacity() < 1 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    jobs.send(Box::new(BreakTheCommit)).await.unwrap();
    open_gate.send(()).unwrap();
    let e = ticket.await.unwrap().unwrap_err();
    assert!(e.to_string().contains("commit failed"), "{e}");
    // The page went, and nothing of it is stored.
    let sent = hook.take();
    assert_eq!(sent.len(), 1);
    let (stale, kind) = sent[0];
    assert_eq!(kind, EffectKind::Page);
    assert!(s.by_ticket("1").await.unwrap().is_none());
    // The ticket comes again: a new page, under a new id.
    s.apply(seen("1"), 1).await.unwrap();
    let (due, _) = s.due(1, 10, vec![]).await.unwrap();
    assert_eq!(due.len(), 1);
    assert!(due[0].id > stale, "{} reused", due[0].id);
    // The first page's settlement comes late, and finds nothing.
    let done = Event::Delivered {
        effect: EffectKind::Page,
        outcome: None,
    };
    assert!(s.complete(stale, done, 2).await.unwrap().is_none());
    s.retry_later(stale, 100, "503".into()).await.unwrap();
    let (still, _) = s.due(1, 10, vec![]).await.unwrap();
    assert_eq!(still.len(), 1);
    assert_eq!((still[0].id, still[0].attempts), (due[0].id, 0));
}

/// Waits (at most 10 s) until `steps` holds `want`, leaving them there.
async fn steps_reach(steps: &Steps, want: &[&str]) {
    for _ in 0..1000 {
        if *steps.0.lock().unwrap() == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("steps {:?}, want {want:?}", steps.0.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_commits_the_next_group_while_the_last_one_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let steps = Arc::new(Steps::default());
    // Each sync waits for a go from the test.
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let sync: writer::Sync = {
        let steps = steps.clone();
        let mut real = writer::sync_wal(dir.path().join("p.db-wal"));
        Box::new(move || {
            steps.0.lock().unwrap().push("sync".into());
            gate.recv().map_err(std::io::Error::other)?;
            real()
        })
    };
    let policy: Shared<Policy> = Arc::new(Policy::default()).into();
    let s = SqliteStore::open_with(&dir.path().join("p.db"), policy, Some(sync)).unwrap();
    assert!(s.hand_off(steps.clone()));
    let first = tokio::spawn({
        let s = s.clone();
        async move { s.apply(seen("1"), 0).await }
    });
    steps_reach(&steps, &["page", "sync"]).await;
    // The first commit is syncing. The writer is not waiting for it: a
    // second ticket is committed and its page leaves meanwhile; a read,
    // which sees both commits, is answered once both are durable.
    let second = tokio::spawn({
        let s = s.clone();
        async move { s.apply(seen("2"), 1).await }
    });
    steps_reach(&steps, &["page", "sync", "page"]).await;
    let read = tokio::spawn({
        let s = s.clone();
        async move { s.get(1).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!first.is_finished() && !second.is_finished() && !read.is_finished());
    go.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().incident.unwrap().id, 1);
    // The second commit was written after that sync began: it waits for a
    // sync of its own, and so does the read behind it.
    steps_reach(&steps, &["page", "sync", "page", "sync"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!second.is_finished() && !read.is_finished());
    go.send(()).unwrap();
    assert_eq!(second.await.unwrap().unwrap().incident.unwrap().id, 2);
    assert_eq!(read.await.unwrap().unwrap().unwrap().id, 1);
}

#[tokio::test]
async fn a_commit_that_cannot_be_synced_is_an_error_for_its_caller() {
    let (_d, s, steps, fail) = open_watched();
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = s.apply(seen("1"), 0).await.unwrap_err();
    assert!(
        e.to_string().contains("cannot sync the write-ahead log"),
        "{e}"
    );
    // The page had left (the ticket comes again: the same dedup_key).
    assert_eq!(steps.take(), ["page", "sync"]);
    // Once the disk syncs again, so does the store; the ticket sent again
    // finds its incident (written, now durable with the next sync).
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let again = s.apply(seen("1"), 1).await.unwrap();
    assert_eq!(again.incident.map(|i| i.id), Some(1));
    s.apply(seen("2"), 2).await.unwrap();
    assert_eq!(steps.take(), ["page", "sync"]);
}

#[tokio::test]
async fn a_full_database_fails_each_caller_and_keeps_nothing_half_written() {
    let (_d, s) = open();
    s.apply(seen("1"), 0).await.unwrap();
    // The file may not grow any more: SQLITE_FULL, as on a full disk (some
    // statements roll the whole transaction back themselves).
    let pages: i64 = s
        .call(|conn| Ok(conn.query_row("PRAGMA page_count", [], |r| r.get(0))?))
        .await
        .unwrap();
    s.call(move |conn| Ok(conn.pragma_update(None, "max_page_count", pages)?))
        .await
        .unwrap();
    let big = |id: &str| {
        let mut i = seen(id);
        if let Event::Ticket { ticket, .. } = &mut i.event {
            ticket.title = "x".repeat(64 * 1024);
        }
        i
    };
    // Several at once, so they meet in one group, and alone.
    let (a, b, c) = tokio::join!(
        s.apply(big("2"), 1),
        s.apply(big("3"), 1),
        s.apply(big("4"), 1)
    );
    for r in [a, b, c] {
        let e = r.unwrap_err();
        assert!(e.to_string().contains("full"), "{e}");
    }
    // Room again: everything works, and nothing of the failed tickets is
    // there (they come again from Zendesk).
    s.call(|conn| Ok(conn.pragma_update(None, "max_page_count", 1_073_741_823)?))
        .await
        .unwrap();
    assert!(s.by_ticket("2").await.unwrap().is_none());
    assert!(s.by_ticket("3").await.unwrap().is_none());
    let again = s.apply(big("2"), 2).await.unwrap();
    assert_eq!(again.result, Change::Created);
    assert_eq!(s.list(false, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn each_commit_of_an_incident_has_a_newer_version_and_a_no_op_the_current_one() {
    let (_d, s) = open();
    let created = s.apply(seen("1"), 0).await.unwrap();
    let (due, _) = s.due(0, 10, vec![]).await.unwrap();
    let done = Event::Delivered {
        effect: EffectKind::Page,
        outcome: None,
    };
    let settled = s.complete(due[0].id, done, 1).await.unwrap().unwrap();
    assert!(settled.version > created.version && created.version > 0);
    // Nothing changes: the version of the incident as it is.
    let same = s.apply(seen("1"), 2).await.unwrap();
    assert_eq!(same.version, settled.version);
    // Another incident's commits do not make this one's older.
    s.apply(seen("2"), 3).await.unwrap();
    let tick = s.apply(Intake::incident(1, Event::Tick), 4).await.unwrap();
    assert_eq!(tick.version, settled.version, "nothing due yet: ignored");
}

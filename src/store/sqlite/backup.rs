//! `pagerd backup FILE`: a consistent copy of a live SQLite store.
//!
//! The copy is made with SQLite's online backup API, a few megabytes per
//! step, over a read-only connection: in WAL mode a reader never blocks the
//! daemon's writes, and each step holds its read transaction only for its
//! own pages. It goes to a temporary file beside FILE, is checked there
//! (`PRAGMA integrity_check`, the schema version, the incidents) and only
//! then renamed into place, so FILE is either absent, the old backup, or a
//! complete checked copy: never half a copy. The daemon's lock file is not
//! taken. Restoring is a copy back while the daemon is stopped (README,
//! "Backup and restore").

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// Pages copied per step: 4 MiB of 4 KiB pages.
const PAGES_PER_STEP: i32 = 1024;

/// Pause between steps, so a big copy leaves the disk to the daemon.
const PAUSE: Duration = Duration::from_millis(5);

/// A write by the daemon between two steps makes SQLite start the copy
/// again. After this many restarts the rest is copied in one step: one read
/// transaction, which in WAL mode the daemon writes beside.
const MAX_RESTARTS: u32 = 3;

/// How long the copy waits, in all, for a store that stays busy.
const BUSY_FOR: Duration = Duration::from_secs(30);

/// What [`backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The backup file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The schema version it holds (`meta.schema_version`).
    pub schema_version: i64,
    /// How many incidents it holds (open and resolved).
    pub incidents: i64,
}

/// Why no backup was written. Nothing is left behind in any case: the
/// temporary file is removed and FILE is untouched.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// There is no store to back up.
    #[error("no store at {0} (store.path): nothing to back up")]
    NoStore(PathBuf),
    /// FILE exists and `--force` was not given.
    #[error("{0} exists; give --force to replace it, or another file name")]
    Exists(PathBuf),
    /// FILE is a directory.
    #[error("{0} is a directory; give a file name, like {0}/pagerd.db")]
    IsDirectory(PathBuf),
    /// FILE is the store itself (or its WAL, shared memory or lock file).
    #[error("{0} is the store itself; give another file name")]
    SameFile(PathBuf),
    /// The store cannot be read.
    #[error("cannot read the store {path}: {error}")]
    Source {
        /// The store.
        path: PathBuf,
        /// What SQLite or the system said.
        error: String,
    },
    /// The copy cannot be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// What SQLite or the system said.
        error: String,
    },
    /// The store stayed busy (locked) for too long.
    #[error("the store {path} stayed busy for {}s; try again", BUSY_FOR.as_secs())]
    Busy {
        /// The store.
        path: PathBuf,
    },
    /// The copy did not pass its check; it was not kept.
    #[error("the copy failed its check ({0}); nothing was written")]
    Check(String),
}

/// Copies the SQLite store at `store` to `dest` (see the module docs).
/// An existing `dest` is refused unless `force`; it is then replaced in one
/// rename, once the new copy has passed its check.
pub fn backup(store: &Path, dest: &Path, force: bool) -> Result<BackupReport, BackupError> {
    backup_in_steps(store, dest, force, PAGES_PER_STEP).map(|(report, _)| report)
}

/// [`backup`] with `pages` per step (tests use tiny steps to provoke
/// restarts); also says how many times the copy started again.
fn backup_in_steps(
    store: &Path,
    dest: &Path,
    force: bool,
    pages: i32,
) -> Result<(BackupReport, u32), BackupError> {
    if !store.is_file() {
        return Err(BackupError::NoStore(store.to_path_buf()));
    }
    if dest.is_dir() {
        return Err(BackupError::IsDirectory(dest.to_path_buf()));
    }
    if is_the_store(store, dest) {
        return Err(BackupError::SameFile(dest.to_path_buf()));
    }
    if dest.exists() && !force {
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pagerd.db".into());
    let write_err = |path: &Path, e: &dyn std::fmt::Display| BackupError::Write {
        path: path.to_path_buf(),
        error: e.to_string(),
    };
    // Created 0600: the copy holds customers' names and e-mails.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| write_err(&dir, &e))?;
    let restarts = copy(store, tmp.path(), pages)?;
    let (schema_version, incidents) = check(tmp.path())?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| write_err(tmp.path(), &e))?;
    if force {
        tmp.persist(dest).map_err(|e| write_err(dest, &e.error))?;
    } else {
        // A file that appeared meanwhile is still not replaced.
        tmp.persist_noclobber(dest).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                BackupError::Exists(dest.to_path_buf())
            } else {
                write_err(dest, &e.error)
            }
        })?;
    }
    // The rename is durable once the directory is.
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| write_err(&dir, &e))?;
    let bytes = std::fs::metadata(dest)
        .map_err(|e| write_err(dest, &e))?
        .len();
    let report = BackupReport {
        path: dest.to_path_buf(),
        bytes,
        schema_version,
        incidents,
    };
    Ok((report, restarts))
}

/// Whether `dest` names the store or one of the files SQLite and pagerd keep
/// beside it.
fn is_the_store(store: &Path, dest: &Path) -> bool {
    let (Ok(store), Some(parent), Some(name)) =
        (store.canonicalize(), dest.parent(), dest.file_name())
    else {
        return false;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let Ok(dest) = parent.canonicalize().map(|p| p.join(name)) else {
        return false;
    };
    let with = |suffix: &str| {
        let mut s = store.clone().into_os_string();
        s.push(suffix);
        PathBuf::from(s)
    };
    dest == store
        || dest == with("-wal")
        || dest == with("-shm")
        || dest == store.with_extension("lock")
}

/// The online backup of `store` into the empty file `to`, in steps of
/// `pages`; then the copy is made a single self-contained file (rollback
/// journal, not WAL: it needs no `-wal` beside it; the daemon turns WAL back
/// on when it opens a restored store). Returns how many times a write to
/// the store made SQLite start the copy again.
fn copy(store: &Path, to: &Path, pages: i32) -> Result<u32, BackupError> {
    let source_err = |e: rusqlite::Error| BackupError::Source {
        path: store.to_path_buf(),
        error: e.to_string(),
    };
    let write_err = |e: rusqlite::Error| BackupError::Write {
        path: to.to_path_buf(),
        error: e.to_string(),
    };
    let src = Connection::open_with_flags(
        store,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(source_err)?;
    src.busy_timeout(Duration::from_secs(1))
        .map_err(source_err)?;
    let mut dst = Connection::open(to).map_err(write_err)?;
    let mut restarts = 0;
    {
        let backup = Backup::new(&src, &mut dst).map_err(write_err)?;
        let mut remaining = i32::MAX;
        let mut busy = Duration::ZERO;
        loop {
            let n = if restarts >= MAX_RESTARTS { -1 } else { pages };
            let step = backup.step(n).map_err(|e| BackupError::Source {
                path: store.to_path_buf(),
                error: e.to_string(),
            })?;
            match step {
                StepResult::Done => break,
                StepResult::More => {
                    let now = backup.progress().remaining;
                    if now > remaining {
                        restarts += 1;
                    }
                    remaining = now;
                    std::thread::sleep(PAUSE);
                }
                // Busy, Locked (and whatever a later SQLite adds): wait.
                _ => {
                    if busy >= BUSY_FOR {
                        return Err(BackupError::Busy {
                            path: store.to_path_buf(),
                        });
                    }
                    busy += PAUSE * 20;
                    std::thread::sleep(PAUSE * 20);
                }
            }
        }
    }
    drop(src);
    let mode: String = dst
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .map_err(write_err)?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(BackupError::Check(format!(
            "cannot turn the copy's journal mode to delete (got {mode})"
        )));
    }
    dst.close().map_err(|(_, e)| write_err(e))?;
    Ok(restarts)
}

/// Checks the copy at `path`: SQLite's integrity check passes, the schema
/// version is there, the incidents can be counted. Returns both.
fn check(path: &Path) -> Result<(i64, i64), BackupError> {
    let failed = |e: rusqlite::Error| BackupError::Check(e.to_string());
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed)?;
    let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(failed)?;
    let findings: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .map_err(failed)?
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    if findings != ["ok"] {
        return Err(BackupError::Check(format!(
            "integrity_check: {}",
            findings.join("; ")
        )));
    }
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| BackupError::Check(format!("no pagerd schema version: {e}")))?;
    let Some(version) = version.and_then(|v| v.trim().parse::<i64>().ok()) else {
        return Err(BackupError::Check(
            "no pagerd schema version in meta: is store.path a pagerd store?".into(),
        ));
    };
    let incidents: i64 = conn
        .query_row("SELECT COUNT(*) FROM incidents", [], |r| r.get(0))
        .map_err(|e| BackupError::Check(format!("cannot count the incidents: {e}")))?;
    Ok((version, incidents))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pagerd-shaped database with `n` incidents (the real schema comes
    /// with the store; the backup only reads `meta` and `incidents`).
    fn seed(path: &Path, n: i64) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema_version', '3');
             CREATE TABLE incidents (id INTEGER PRIMARY KEY, state TEXT NOT NULL);",
        )
        .unwrap();
        for i in 0..n {
            conn.execute(
                "INSERT INTO incidents (state) VALUES (?1)",
                [format!("{i:04000}")],
            )
            .unwrap();
        }
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') || n.contains(".tmp"))
            .collect()
    }

    #[test]
    fn a_copy_is_checked_counted_and_self_contained() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("pagerd.db");
        seed(&store, 50);
        let dest = dir.path().join("copy.db");
        let r = backup(&store, &dest, false).unwrap();
        assert_eq!((r.schema_version, r.incidents), (3, 50));
        assert_eq!(r.bytes, std::fs::metadata(&dest).unwrap().len());
        // One file: rollback journal, so nothing is needed beside it.
        let header = std::fs::read(&dest).unwrap();
        assert_eq!(&header[..16], b"SQLite format 3\0");
        assert_eq!((header[18], header[19]), (1, 1), "not WAL");
        assert!(!dir.path().join("copy.db-wal").exists());
        // Private: it holds customers' names and e-mails.
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn an_existing_file_is_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("pagerd.db");
        seed(&store, 3);
        let dest = dir.path().join("copy.db");
        std::fs::write(&dest, "yesterday's backup").unwrap();
        assert!(matches!(
            backup(&store, &dest, false),
            Err(BackupError::Exists(p)) if p == dest
        ));
        assert_eq!(std::fs::read(&dest).unwrap(), b"yesterday's backup");
        assert_eq!(backup(&store, &dest, true).unwrap().incidents, 3);
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn the_store_itself_a_directory_or_no_store_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("pagerd.db");
        assert!(matches!(
            backup(&store, &dir.path().join("x.db"), false),
            Err(BackupError::NoStore(_))
        ));
        seed(&store, 1);
        for dest in [
            store.clone(),
            dir.path().join("pagerd.db-wal"),
            dir.path().join("pagerd.lock"),
            dir.path().join(".").join("pagerd.db"),
        ] {
            assert!(
                matches!(backup(&store, &dest, true), Err(BackupError::SameFile(_))),
                "{}",
                dest.display()
            );
        }
        assert!(matches!(
            backup(&store, dir.path(), true),
            Err(BackupError::IsDirectory(_))
        ));
        assert!(matches!(
            backup(&store, &dir.path().join("no-dir").join("x.db"), false),
            Err(BackupError::Write { .. })
        ));
        // Still a working store.
        let conn = Connection::open(&store).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM incidents", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_file_that_is_not_a_pagerd_store_fails_its_check_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("other.db");
        Connection::open(&store)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let dest = dir.path().join("copy.db");
        let e = backup(&store, &dest, false).unwrap_err();
        assert!(matches!(e, BackupError::Check(_)), "{e}");
        assert!(!dest.exists());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_copy_completes_while_another_process_keeps_writing() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("pagerd.db");
        seed(&store, 200);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let conn = Connection::open(&store).unwrap();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    conn.execute("INSERT INTO incidents (state) VALUES ('new')", [])
                        .unwrap();
                    n += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                n
            })
        };
        // One page per step: every write restarts the copy, until the rest
        // goes in one step.
        let dest = dir.path().join("copy.db");
        let (r, restarts) = backup_in_steps(&store, &dest, false, 1).unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let written = writer.join().unwrap();
        assert!(written > 0);
        assert_eq!(restarts, MAX_RESTARTS, "the writes restarted the copy");
        assert!(
            (200..=200 + written).contains(&r.incidents),
            "{} incidents",
            r.incidents
        );
    }
}

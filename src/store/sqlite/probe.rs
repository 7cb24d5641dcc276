//! What `pagerd doctor` learns of a SQLite store without writing to it and
//! without taking the daemon's lock file: whether the daemon could write
//! there, whether the schema is one this build knows, and whether a daemon
//! is running on it.

use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension;

use super::schema::SCHEMA_VERSION;
use crate::store::StoreError;

/// What [`probe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteProbe {
    /// The database file exists (else the daemon creates it at start).
    pub exists: bool,
    /// `meta.schema_version`; `None` for a new or empty database.
    pub schema_version: Option<i64>,
    /// The newest schema this build knows.
    pub known_version: i64,
    /// Whether a daemon holds the `*.lock` file; `None` when that cannot be
    /// told (no `/proc/locks`).
    pub daemon_running: Option<bool>,
}

/// Why the store would not work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqliteProbeError {
    /// The directory of the database does not exist.
    #[error("directory {0} does not exist")]
    NoDirectory(PathBuf),
    /// The directory cannot take new files (SQLite's `-wal` and `-shm`,
    /// the lock file, the database itself).
    #[error("cannot create files in {dir}: {error}")]
    DirectoryNotWritable {
        /// The directory.
        dir: PathBuf,
        /// What the system said.
        error: String,
    },
    /// The database file cannot be opened for writing.
    #[error("cannot open {path} for writing: {error}")]
    FileNotWritable {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: String,
    },
    /// The schema version cannot be read (not a SQLite file, corrupt).
    #[error("cannot read the schema version of {path}: {error}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        error: String,
    },
    /// The database was written by a newer pagerd.
    #[error("{path} has schema version {found}, newer than this pagerd knows ({known})")]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// This build's.
        known: i64,
    },
}

impl From<SqliteProbeError> for StoreError {
    fn from(e: SqliteProbeError) -> StoreError {
        StoreError::Unusable(e.to_string())
    }
}

/// Checks the store at `path` the way the daemon will use it, read-only:
/// the directory takes new files (a temporary file, removed at once), the
/// database opens for writing (opened, not written), its schema version
/// is known (read over a read-only connection, which a running daemon's
/// WAL allows), and whether a daemon holds its lock file (from
/// `/proc/locks`: the lock is never taken, so a daemon starting meanwhile
/// is not refused).
pub fn probe(path: &Path) -> Result<SqliteProbe, SqliteProbeError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(SqliteProbeError::NoDirectory(dir));
    }
    tempfile::Builder::new()
        .prefix(".pagerd-doctor-")
        .tempfile_in(&dir)
        .map_err(|e| SqliteProbeError::DirectoryNotWritable {
            dir: dir.clone(),
            error: e.to_string(),
        })?;
    let exists = path.exists();
    let mut schema_version = None;
    if exists {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| SqliteProbeError::FileNotWritable {
                path: path.to_path_buf(),
                error: e.to_string(),
            })?;
        let unreadable = |e: String| SqliteProbeError::Unreadable {
            path: path.to_path_buf(),
            error: e,
        };
        let conn = super::open_reader(path).map_err(|e| unreadable(e.to_string()))?;
        let has_meta: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| unreadable(e.to_string()))?;
        if has_meta {
            let v: Option<String> = conn
                .query_row(
                    "SELECT value FROM meta WHERE key='schema_version'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| unreadable(e.to_string()))?;
            schema_version = v.and_then(|v| v.trim().parse::<i64>().ok());
        }
        if let Some(found) = schema_version
            && found > SCHEMA_VERSION
        {
            return Err(SqliteProbeError::Newer {
                path: path.to_path_buf(),
                found,
                known: SCHEMA_VERSION,
            });
        }
    }
    let lock = path.with_extension("lock");
    let daemon_running = match std::fs::read_to_string("/proc/locks") {
        Ok(locks) => Some(lock_held(&lock, &locks)),
        Err(_) => None,
    };
    Ok(SqliteProbe {
        exists,
        schema_version,
        known_version: SCHEMA_VERSION,
        daemon_running,
    })
}

/// Whether `/proc/locks` (`locks`) lists a lock on the file `lock`.
/// Lines look like `1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF`:
/// the device's major and minor numbers in hex, then the inode.
fn lock_held(lock: &Path, locks: &str) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::metadata(lock) else {
        return false;
    };
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let want = (major, minor, meta.ino());
    locks.lines().any(|line| {
        line.split_whitespace()
            .filter_map(|field| {
                let mut parts = field.split(':');
                let (maj, min, ino) = (parts.next()?, parts.next()?, parts.next()?);
                if parts.next().is_some() {
                    return None;
                }
                Some((
                    u64::from_str_radix(maj, 16).ok()?,
                    u64::from_str_radix(min, 16).ok()?,
                    ino.parse::<u64>().ok()?,
                ))
            })
            .any(|found| found == want)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_new_store_is_fine_and_nobody_runs_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = probe(&dir.path().join("pagerd.db")).unwrap();
        assert!(!p.exists);
        assert_eq!(p.schema_version, None);
        assert_ne!(p.daemon_running, Some(true));
        // Nothing was left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_directory_is_named() {
        let e = probe(Path::new("/nonexistent-pagerd-dir/pagerd.db")).unwrap_err();
        assert_eq!(
            e,
            SqliteProbeError::NoDirectory("/nonexistent-pagerd-dir".into())
        );
    }

    #[test]
    fn an_open_store_is_seen_running_without_taking_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pagerd.db");
        let store =
            super::super::SqliteStore::open(&path, Arc::new(crate::engine::Policy::default()))
                .unwrap();
        let p = probe(&path).unwrap();
        assert!(p.exists);
        assert_eq!(p.schema_version, Some(SCHEMA_VERSION));
        if std::path::Path::new("/proc/locks").exists() {
            assert_eq!(p.daemon_running, Some(true));
        }
        drop(store);
        let p = probe(&path).unwrap();
        assert_eq!(p.daemon_running, Some(false));
        // A store is still openable afterwards: the probe took no lock.
        super::super::SqliteStore::open(&path, Arc::new(crate::engine::Policy::default())).unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pagerd.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema_version', '99');",
        )
        .unwrap();
        drop(conn);
        assert!(matches!(
            probe(&path),
            Err(SqliteProbeError::Newer { found: 99, .. })
        ));
    }
}

//! The store: SQLite (the directory and file writable, the schema known,
//! whether a daemon runs on it, without taking its lock) or PostgreSQL
//! (reachable, `SELECT 1`, the schema version, the leader lease).

use super::Check;
use crate::config::Config;
use crate::store::postgres;
use crate::store::sqlite::probe::{SqliteProbeError, probe};

const NAME: &str = "Store";

pub(super) async fn checks(config: &Config) -> Vec<Check> {
    match &config.store.postgres {
        Some(pg) => vec![match postgres::probe(pg).await {
            Ok(p) => postgres_check(&p),
            Err(e) => Check::fail(
                NAME,
                e.to_string(),
                "check store.url (host, port, database, user), the password in \
                 store.password_file, and that this host reaches the database",
            ),
        }],
        None => {
            let path = config.store.path.clone();
            let found = tokio::task::spawn_blocking(move || probe(&path)).await;
            vec![match found {
                Ok(Ok(p)) => {
                    let path = config.store.path.display();
                    let schema = match p.schema_version {
                        _ if !p.exists => {
                            "not created yet: the daemon creates it at start".to_string()
                        }
                        None => "empty: the daemon creates the schema at start".to_string(),
                        Some(v) if v == p.known_version => format!("schema version {v}"),
                        Some(v) => format!(
                            "schema version {v}, migrated to {} at the next start",
                            p.known_version
                        ),
                    };
                    let running = match p.daemon_running {
                        Some(true) => "; a daemon is running on it",
                        Some(false) => "; no daemon is running on it",
                        None => "",
                    };
                    Check::pass(NAME, format!("SQLite {path}: writable, {schema}{running}"))
                }
                Ok(Err(e)) => {
                    let fix = match &e {
                        SqliteProbeError::NoDirectory(_) => {
                            "create the directory, owned by the user pagerd runs as (the Debian \
                             package and systemd's StateDirectory= do), or fix store.path"
                        }
                        SqliteProbeError::DirectoryNotWritable { .. }
                        | SqliteProbeError::FileNotWritable { .. } => {
                            "make it writable by the user pagerd runs as, and run doctor as that \
                             user (sudo -u pagerd pagerd doctor)"
                        }
                        SqliteProbeError::Unreadable { .. } => {
                            "store.path must be pagerd's SQLite database: restore it from a backup \
                             or point store.path at a new file"
                        }
                        SqliteProbeError::Newer { .. } => {
                            "run the newer pagerd that wrote it, or restore a backup made by this version"
                        }
                    };
                    Check::fail(NAME, format!("SQLite: {e}"), fix)
                }
                Err(e) => Check::fail(
                    NAME,
                    format!("SQLite check did not finish: {e}"),
                    "run pagerd doctor again",
                ),
            }]
        }
    }
}

fn postgres_check(p: &postgres::PostgresProbe) -> Check {
    let target = &p.target;
    let schema = match p.schema_version {
        None => "no schema yet: the first pagerd to start creates it".to_string(),
        Some(v) if v > p.known_version => {
            return Check::fail(
                NAME,
                format!(
                    "PostgreSQL {target}: schema version {v} is newer than this pagerd knows ({})",
                    p.known_version
                ),
                "upgrade this pagerd to the version the other instances run",
            );
        }
        Some(v) if v == p.known_version => format!("schema version {v}"),
        Some(v) => format!(
            "schema version {v}, migrated to {} at the next start",
            p.known_version
        ),
    };
    let lease = match &p.lease {
        None => "leader lease: never taken".to_string(),
        Some((holder, left)) if *left > 0 => format!(
            "leader lease held by {holder} for {:.1} s more",
            *left as f64 / 1000.0
        ),
        Some((holder, left)) => format!(
            "leader lease of {holder} expired {:.1} s ago (no leader running?)",
            (-*left) as f64 / 1000.0
        ),
    };
    Check::pass(
        NAME,
        format!("PostgreSQL {target}: reachable (SELECT 1), {schema}; {lease}"),
    )
}

//! The PostgreSQL store: several pagerd instances sharing one database.
//!
//! Every instance takes webhooks and applies events ([`Store::apply`]); one
//! instance, the holder of the leader lease, fires timers and drains the
//! outbox. The tables mirror the SQLite store's (incident state as the same
//! serde JSON, app times as BIGINT milliseconds from the app's clock), so
//! both behave the same under the engine.
//!
//! TLS ([`tls`]): `store.tls` is `verify-full` (certificate chain and host
//! name checked, against `store.ca_file` or the bundled Mozilla roots) by
//! default for any host but a loopback one or a Unix socket, where it is
//! `disable`; `require` encrypts without verifying. A mode that wants TLS
//! never falls back to plaintext.
//!
//! # Correctness across instances
//! - **Webhook dedup**: `apply` inserts the delivery's `(source, id)` first,
//!   `ON CONFLICT DO NOTHING`. A twin delivery on another instance blocks on
//!   the unique index until the first transaction ends, then sees the row
//!   and answers [`Change::Replayed`]. When the engine ignores the event the
//!   transaction rolls back, the delivery included, exactly as SQLite does
//!   not record an ignored delivery.
//! - **One incident per ticket**: the incident is locked `FOR UPDATE`; a
//!   ticket seen on two instances at once races on `INSERT … ON CONFLICT DO
//!   NOTHING`, the loser rolls back and retries the whole apply, finds the
//!   winner's incident and is ignored as a repeat: one incident, one page.
//!   Serialization failures and deadlocks are retried the same way.
//!
//! # Why a lease row and not an advisory lock
//! Leadership is a row `lease(name, holder, token, expires_at)` whose expiry
//! is computed with the *database's* `now()`. A session-level advisory lock
//! held on a dedicated connection looks simpler but fails us three ways:
//! the lock is only released when the server notices the session is dead,
//! which on a half-open TCP connection takes as long as keepalives take
//! (minutes by default) — a failover time we cannot bound from pagerd's
//! config; session locks do not survive a transaction-pooling PgBouncer,
//! which hands the session to other clients; and a lock carries no fencing
//! token, so a leader that lost it has nothing to check its writes against.
//!
//! The lease gives a bounded failover (`lease_ttl`), works through poolers
//! (each statement stands alone), and a token that grows with every change
//! of holder. Fencing: `due`, `complete`, `retry_later` and `fail` begin by
//! checking, in their own transaction, that this instance's `(holder,
//! token)` still holds an unexpired lease, and lock the lease row `FOR
//! SHARE` until they commit. Taking the lease over needs a row lock that
//! conflicts with it, so a takeover and a fenced transaction never overlap:
//! either the old leader's settlement commits first, or it finds it is no
//! longer the leader and gets [`StoreError::NotLeader`].
//!
//! - **Paused process** (SIGSTOP, a long GC-like stall, a VM migration): when
//!   it wakes up past its TTL, its next fenced call fails — it can neither
//!   claim nor settle rows. If it was paused *inside* a fenced transaction,
//!   the server ends that session after `idle_in_transaction_session_timeout`
//!   (set per transaction to `max(lease_ttl, 5s)`), which releases the row
//!   lock so the next instance can take over. A delivery it had already
//!   claimed may still go out when it wakes; the effect's idempotency key
//!   ([`Pending::key`]) makes the new leader's redelivery a no-op at the
//!   vendor. Fencing bounds who *records* outcomes; idempotency keys bound
//!   what vendors see twice.
//! - **Network partition**: a leader cut off from the database cannot renew;
//!   the lease expires in database time and another instance takes it. The
//!   cut-off leader's queries time out on the client side (the connection is
//!   then dropped, not returned to the pool) and, once the network heals,
//!   fail the fencing check. An instance cut off from the *clients* but not
//!   the database keeps leading, which is fine: leadership is about the
//!   database and the vendors, not the webhooks.
//! - **Clock skew**: lease times never use an instance's clock. Grant,
//!   renewal, expiry and the fencing check all compare against the server's
//!   `now()`, so instances whose clocks disagree still agree on who leads.
//!   App times (`now: Millis`) do come from each instance's clock, as with
//!   SQLite: skew there shifts deadlines, never leadership.

pub mod dump;
mod lease;
mod ops;
mod reports;
mod schema;
mod testing;
#[cfg(test)]
mod tests;
pub mod tls;

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;

use super::*;
use crate::config::{PostgresConfig, StoreTls};
use crate::engine::Policy;
use crate::shared::Shared;

/// The newest schema version this build knows (and migrates to).
pub use schema::SCHEMA_VERSION;
/// The schema pagerd 0.1.0 created (tests build such a store to upgrade).
#[doc(hidden)]
pub use schema::V1 as SCHEMA_V1;
#[doc(hidden)]
pub use testing::{drop_test_schema, test_schema_url};

/// Connections per instance.
const POOL_SIZE: usize = 16;

/// Bound on waiting for a pooled connection, opening one, and checking one.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a transaction is retried after a serialization failure, a
/// deadlock or losing an incident-creation race.
const MAX_ATTEMPTS: u32 = 4;

/// The shortest server-side bound on a transaction (statement and idle
/// time), however short the lease.
const MIN_TX_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL store. Cheap to clone: clones share the pool and the lease.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// Read at each decision: a reload's policy applies from the next one.
    policy: Shared<Policy>,
    /// `host:port/dbname`, for error messages (never the URL: it may carry
    /// a password).
    target: Arc<str>,
    /// The lease this instance last obtained: `(holder, token)`.
    leader: Arc<Mutex<Option<(String, i64)>>>,
    /// Server-side bound on each transaction (statement and idle in
    /// transaction), so a paused instance cannot hold row locks for long.
    tx_timeout: Duration,
    /// `store.tls`, to explain a failed handshake.
    tls: StoreTls,
    /// `store.ca_file`, to explain a refused certificate.
    ca_file: Option<Arc<Path>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// What a transaction body asks for at its end.
enum End<T> {
    /// Commit and return the value.
    Commit(T),
    /// Roll back (nothing worth keeping was written) and return the value.
    Rollback(T),
}

/// The future of a transaction body.
type Body<'t, T> = Pin<Box<dyn Future<Output = Result<End<T>, Fail>> + Send + 't>>;

/// A failure inside a transaction, before it becomes a [`StoreError`]:
/// keeps the SQLSTATE so the runner can tell what is worth a retry.
#[derive(Debug)]
enum Fail {
    /// The database said no.
    Pg(&'static str, tokio_postgres::Error),
    /// Another instance created the incident first: retry the whole apply.
    Race,
    /// Already a store error (corrupt row, not the leader).
    Store(StoreError),
}

impl Fail {
    /// Wraps a database error with what was being done.
    fn pg(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Fail {
        move |e| Fail::Pg(what, e)
    }

    fn retryable(&self) -> bool {
        match self {
            Fail::Race => true,
            Fail::Pg(_, e) => matches!(
                e.code(),
                Some(&SqlState::T_R_SERIALIZATION_FAILURE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
            ),
            Fail::Store(_) => false,
        }
    }
}

/// Describes where `config` points (`host:port/dbname`) without its
/// credentials.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost".to_string()
    } else {
        hosts.join(",")
    };
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("(default)");
    format!("{hosts}/{db}")
}

/// The connection settings of `config` (URL, password, application name,
/// connect timeout, TLS as `store.tls` says) and where they point, with the
/// TLS connector (`None`: plaintext).
fn pg_config(
    config: &PostgresConfig,
) -> Result<
    (
        tokio_postgres::Config,
        Arc<str>,
        Option<tokio_postgres_rustls::MakeRustlsConnect>,
    ),
    StoreError,
> {
    // tokio-postgres knows no `verify-full`: the URL's sslmode was resolved
    // into `config.tls` (and checked against it) by the config.
    let (url, sslmode) = tls::split_sslmode(config.url.expose());
    let mut pg: tokio_postgres::Config =
        url.parse().map_err(|e: tokio_postgres::Error| {
            StoreError::Unusable(format!(
                "store.url is not a PostgreSQL URL ({e}); write it like postgres://pagerd@db.internal:5432/pagerd"
            ))
        })?;
    let target: Arc<str> = describe(&pg).into();
    if let Some(password) = &config.password {
        pg.password(password.expose());
    }
    if let Some(mode) = sslmode
        && tls::from_sslmode(&mode) != Ok(config.tls)
    {
        return Err(StoreError::Unusable(format!(
            "postgres {target}: store.url's sslmode conflicts with store.tls = \"{}\"; remove sslmode from the URL",
            config.tls
        )));
    }
    let connector = tls::connector(config.tls, config.ca_file.as_deref())
        .map_err(|e| StoreError::Unusable(format!("postgres {target}: {e}")))?;
    pg.ssl_mode(match config.tls {
        StoreTls::Disable => SslMode::Disable,
        // Never a silent fallback to plaintext.
        StoreTls::Require | StoreTls::VerifyFull => SslMode::Require,
    });
    if pg.get_application_name().is_none() {
        pg.application_name("pagerd");
    }
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(POOL_TIMEOUT);
    }
    Ok((pg, target, connector))
}

/// What [`probe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresProbe {
    /// `host:port/dbname` (never the URL).
    pub target: String,
    /// The schema version; `None` before the first pagerd started on it.
    pub schema_version: Option<i64>,
    /// The newest schema this build knows.
    pub known_version: i64,
    /// The leader lease: holder and milliseconds left (negative once
    /// expired); `None` when nobody ever took it.
    pub lease: Option<(String, i64)>,
}

/// Connects once to the database of `config` and reads, without writing or
/// locking anything: `SELECT 1`, the schema version, and the leader lease
/// (`pagerd doctor`). No migration, no lease taken.
pub async fn probe(config: &PostgresConfig) -> Result<PostgresProbe, StoreError> {
    let (pg, target, connector) = pg_config(config)?;
    let fail = |what: &str, e: tokio_postgres::Error| {
        StoreError::postgres(format!("postgres {target}: {what}"), e)
    };
    let connected = match connector {
        Some(tls) => pg
            .connect(tls)
            .await
            .map(|(c, conn)| (c, tokio::spawn(conn))),
        None => pg
            .connect(NoTls)
            .await
            .map(|(c, conn)| (c, tokio::spawn(conn))),
    };
    let (client, conn_task) = connected.map_err(|e| fail("cannot connect", e))?;
    let result = async {
        let one: i32 = client
            .query_one("SELECT 1", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| fail("SELECT 1", e))?;
        if one != 1 {
            return Err(StoreError::Unusable(format!(
                "postgres {target}: SELECT 1 answered {one}"
            )));
        }
        let exists = |table: &'static str| {
            let client = &client;
            let fail = &fail;
            async move {
                client
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
                    .await
                    .and_then(|r| r.try_get::<_, bool>(0))
                    .map_err(|e| fail("look for the tables", e))
            }
        };
        let schema_version = if exists("pagerd_schema").await? {
            client
                .query_one("SELECT MAX(version) FROM pagerd_schema", &[])
                .await
                .and_then(|r| r.try_get::<_, Option<i64>>(0))
                .map_err(|e| fail("read the schema version", e))?
        } else {
            None
        };
        let lease = if exists("lease").await? {
            client
                .query_opt(lease::HOLDER, &[])
                .await
                .map_err(|e| fail("read the lease", e))?
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .transpose()
                .map_err(|e| fail("read the lease", e))?
        } else {
            None
        };
        Ok(PostgresProbe {
            target: target.to_string(),
            schema_version,
            known_version: schema::SCHEMA_VERSION,
            lease,
        })
    }
    .await;
    drop(client);
    conn_task.abort();
    result
}

/// An error and its causes, `a: b: c` (tokio-postgres keeps the cause of
/// a failed connection, like "Connection refused", out of its message).
/// Connection errors carry no URL and no password.
pub(crate) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

impl PostgresStore {
    /// Connects to the database of `config.url` (with `config.password`
    /// when given, over TLS as `config.tls` says), opens a pool and
    /// migrates the schema.
    ///
    /// Fails when the database cannot be reached, when TLS is asked for and
    /// the server does not offer it or its certificate does not verify, and
    /// when the database's schema is newer than this build knows. Errors
    /// name host and database, never the URL or the password. Each decision
    /// reads the current value of `policy` (a [`Shared`] that a reload
    /// swaps; a plain `Arc<Policy>` never changes).
    pub async fn connect(
        config: &PostgresConfig,
        policy: impl Into<Shared<Policy>>,
    ) -> Result<PostgresStore, StoreError> {
        let policy = policy.into();
        let (mut pg, target, connector) = pg_config(config)?;
        match config.tls {
            StoreTls::VerifyFull => tracing::info!(
                target = %target,
                roots = %tls::roots_source(config.ca_file.as_deref()),
                "postgres: TLS, server certificate verified"
            ),
            StoreTls::Require => tracing::warn!(
                target = %target,
                "postgres: TLS without verifying the server (store.tls = \"require\"): no protection against an active attacker"
            ),
            StoreTls::Disable => {
                tracing::info!(target = %target, "postgres: plaintext (store.tls = \"disable\")")
            }
        }
        let tx_timeout = config.lease_ttl.max(MIN_TX_TIMEOUT);
        if pg.get_tcp_user_timeout().is_none() {
            // Unacknowledged writes on a dead link end the connection within
            // this, instead of the kernel's ~15 minutes.
            pg.tcp_user_timeout(tx_timeout);
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match connector {
            Some(tls) => Manager::from_config(pg, tls, manager_config),
            None => Manager::from_config(pg, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| {
                StoreError::Unusable(format!("postgres {target}: cannot build the pool: {e}"))
            })?;
        let store = PostgresStore {
            pool,
            policy,
            target,
            leader: Arc::new(Mutex::new(None)),
            tx_timeout,
            tls: config.tls,
            ca_file: config.ca_file.as_deref().map(Arc::from),
        };
        let mut client = store.client("connect").await?;
        schema::migrate(&mut client).await.map_err(|f| match f {
            Fail::Store(StoreError::Unusable(m)) => {
                StoreError::Unusable(format!("postgres {}: {m}", store.target))
            }
            f => store.error("migrate the schema", f),
        })?;
        Ok(store)
    }

    /// A pooled connection.
    async fn client(&self, what: &str) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            let context = match tls::explain(&e, self.tls, self.ca_file.as_deref()) {
                Some(why) => format!(
                    "postgres {}: {what}: cannot connect over TLS: {why}",
                    self.target
                ),
                None => format!("postgres {}: {what}: cannot get a connection", self.target),
            };
            StoreError::Db {
                context,
                cause: super::DbError::Pool(Arc::new(e)),
            }
        })
    }

    /// Turns a transaction failure into the store's error, with context.
    fn error(&self, what: &str, fail: Fail) -> StoreError {
        match fail {
            Fail::Store(e) => e,
            Fail::Race => StoreError::Unavailable(format!(
                "postgres {}: {what}: still racing another instance after {MAX_ATTEMPTS} attempts; retry",
                self.target
            )),
            Fail::Pg(step, e) => {
                StoreError::postgres(format!("postgres {}: {what}: {step}", self.target), e)
            }
        }
    }

    /// The lease this instance holds, or `NotLeader`.
    fn fence_key(&self) -> Result<(String, i64), StoreError> {
        self.leader
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::NotLeader)
    }

    /// The first statement of every transaction: the server ends a
    /// statement, or a session idle inside a transaction (a paused
    /// process), after `tx_timeout`, releasing its row locks.
    fn guard(&self) -> String {
        let ms = self.tx_timeout.as_millis();
        format!(
            "SET LOCAL statement_timeout = {ms}; SET LOCAL idle_in_transaction_session_timeout = {ms}"
        )
    }

    /// Runs `body(tx, ctx)` in a transaction: bounded in time on both
    /// sides, fenced by the lease when `fenced`, retried on serialization
    /// failures, deadlocks and creation races (so `body` may run more than
    /// once, each time in a fresh transaction).
    async fn run<C, T, F>(
        &self,
        what: &'static str,
        fenced: bool,
        ctx: &C,
        body: F,
    ) -> Result<T, StoreError>
    where
        C: Sync + ?Sized,
        T: Send,
        F: for<'t> Fn(&'t deadpool_postgres::Transaction<'t>, &'t C) -> Body<'t, T> + Send + Sync,
    {
        let fence = if fenced {
            Some(self.fence_key()?)
        } else {
            None
        };
        let guard = self.guard();
        // The client gives up a little after the server would have.
        let deadline = self.tx_timeout + Duration::from_secs(1);
        let mut attempt = 1;
        loop {
            let mut client = self.client(what).await?;
            let outcome = tokio::time::timeout(deadline, async {
                let tx = client.transaction().await.map_err(Fail::pg("begin"))?;
                tx.batch_execute(&guard)
                    .await
                    .map_err(Fail::pg("set timeouts"))?;
                if let Some((holder, token)) = &fence {
                    lease::check(&tx, holder, *token).await?;
                }
                match body(&tx, ctx).await? {
                    End::Commit(v) => {
                        tx.commit().await.map_err(Fail::pg("commit"))?;
                        Ok::<T, Fail>(v)
                    }
                    End::Rollback(v) => {
                        tx.rollback().await.map_err(Fail::pg("rollback"))?;
                        Ok(v)
                    }
                }
            })
            .await;
            match outcome {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(fail)) if fail.retryable() && attempt < MAX_ATTEMPTS => {
                    drop(client);
                    let pause = if matches!(fail, Fail::Race) {
                        0
                    } else {
                        5 << attempt
                    };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    attempt += 1;
                }
                Ok(Err(fail)) => return Err(self.error(what, fail)),
                Err(_) => {
                    // The link may be dead: do not hand this connection to
                    // the next caller.
                    drop(Object::take(client));
                    return Err(StoreError::Unavailable(format!(
                        "postgres {}: {what}: no answer within {}; the connection was dropped",
                        self.target,
                        humantime::format_duration(deadline)
                    )));
                }
            }
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn apply(&self, intake: Intake, now: Millis) -> Result<Applied, StoreError> {
        // One snapshot for the transaction and its retries.
        let policy = self.policy.load();
        let ctx = (&*policy, &intake, now);
        self.run("apply", false, &ctx, |tx, (policy, intake, now)| {
            Box::pin(async move {
                let applied = ops::apply_in(tx, policy, intake, *now).await?;
                Ok(match applied.result {
                    // Nothing changed: roll back, the delivery row included,
                    // so a redelivery is judged afresh (as SQLite does).
                    Change::Ignored(_) | Change::Replayed => End::Rollback(applied),
                    Change::Created | Change::Updated => End::Commit(applied),
                })
            })
        })
        .await
    }

    async fn get(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        let target = Target::Incident(id);
        self.run("get", false, &target, |tx, target| {
            Box::pin(async move { ops::load(tx, target, false).await.map(End::Rollback) })
        })
        .await
    }

    async fn by_ticket(&self, ticket: &str) -> Result<Option<Incident>, StoreError> {
        let target = Target::Ticket(ticket.to_string());
        self.run("by_ticket", false, &target, |tx, target| {
            Box::pin(async move { ops::load(tx, target, false).await.map(End::Rollback) })
        })
        .await
    }

    async fn list(&self, open_only: bool, limit: usize) -> Result<Vec<Incident>, StoreError> {
        self.run(
            "list",
            false,
            &(open_only, limit),
            |tx, &(open_only, limit)| {
                Box::pin(async move { ops::list(tx, open_only, limit).await.map(End::Rollback) })
            },
        )
        .await
    }

    async fn journal(&self, id: i64) -> Result<Vec<JournalEntry>, StoreError> {
        self.run("journal", false, &id, |tx, &id| {
            Box::pin(async move { ops::journal(tx, id).await.map(End::Rollback) })
        })
        .await
    }

    async fn outbox(&self, id: i64) -> Result<Vec<OutboxRow>, StoreError> {
        self.run("outbox", false, &id, |tx, &id| {
            Box::pin(async move { ops::outbox(tx, id).await.map(End::Rollback) })
        })
        .await
    }

    async fn deadlines(&self) -> Result<Vec<(i64, Millis)>, StoreError> {
        self.run("deadlines", false, &(), |tx, _| {
            Box::pin(async move { ops::deadlines(tx).await.map(End::Rollback) })
        })
        .await
    }

    async fn due(
        &self,
        now: Millis,
        limit: usize,
        skip: Vec<i64>,
    ) -> Result<(Vec<Pending>, Option<Millis>), StoreError> {
        let ctx = (now, limit, skip);
        self.run("due", true, &ctx, |tx, (now, limit, skip)| {
            Box::pin(async move { ops::due(tx, *now, *limit, skip).await.map(End::Commit) })
        })
        .await
    }

    async fn complete(
        &self,
        row: i64,
        feedback: Event,
        now: Millis,
    ) -> Result<Option<Applied>, StoreError> {
        let policy = self.policy.load();
        let ctx = (&*policy, row, feedback, now);
        self.run(
            "complete",
            true,
            &ctx,
            |tx, (policy, row, feedback, now)| {
                Box::pin(async move {
                    ops::finish(tx, policy, *row, None, |_| feedback.clone(), *now)
                        .await
                        .map(End::Commit)
                })
            },
        )
        .await
    }

    async fn retry_later(&self, row: i64, at: Millis, error: String) -> Result<(), StoreError> {
        let ctx = (row, at, error);
        self.run("retry_later", true, &ctx, |tx, (row, at, error)| {
            Box::pin(async move {
                ops::retry_later(tx, *row, *at, error)
                    .await
                    .map(End::Commit)
            })
        })
        .await
    }

    async fn fail(
        &self,
        row: i64,
        error: String,
        now: Millis,
    ) -> Result<Option<Applied>, StoreError> {
        let policy = self.policy.load();
        let ctx = (&*policy, row, error, now);
        self.run("fail", true, &ctx, |tx, (policy, row, error, now)| {
            Box::pin(async move {
                let feedback = |effect| Event::DeliveryFailed {
                    effect,
                    error: error.clone(),
                };
                ops::finish(tx, policy, *row, Some(error), feedback, *now)
                    .await
                    .map(End::Commit)
            })
        })
        .await
    }

    async fn stats(&self, now: Millis) -> Result<Stats, StoreError> {
        self.run("stats", false, &now, |tx, &now| {
            Box::pin(async move { ops::stats(tx, now).await.map(End::Rollback) })
        })
        .await
    }

    async fn prune(
        &self,
        before: Millis,
        deliveries_before: Millis,
        batch: usize,
        after: Option<PruneCursor>,
    ) -> Result<Pruned, StoreError> {
        // Not fenced: every condition is checked under the incidents' row
        // locks, so any instance may prune (only the leader does).
        let ctx = (before, deliveries_before, batch, after);
        self.run(
            "prune",
            false,
            &ctx,
            |tx, &(before, deliveries_before, batch, after)| {
                Box::pin(async move {
                    ops::prune(tx, before, deliveries_before, batch, after)
                        .await
                        .map(End::Commit)
                })
            },
        )
        .await
    }

    async fn lease(&self, holder: &str, ttl: Duration) -> Result<Option<i64>, StoreError> {
        let mut client = self.client("lease").await?;
        let deadline = self.tx_timeout + Duration::from_secs(1);
        let outcome =
            tokio::time::timeout(deadline, lease::acquire(&mut client, holder, ttl)).await;
        let token = match outcome {
            Ok(r) => r.map_err(|f| self.error("lease", f))?,
            Err(_) => {
                drop(Object::take(client));
                return Err(StoreError::Unavailable(format!(
                    "postgres {}: lease: no answer within {}; the connection was dropped",
                    self.target,
                    humantime::format_duration(deadline)
                )));
            }
        };
        let mut leader = self.leader.lock().map_err(|_| StoreError::Closed)?;
        match token {
            Some(token) => *leader = Some((holder.to_string(), token)),
            None => {
                if leader.as_ref().is_some_and(|(h, _)| h == holder) {
                    *leader = None;
                }
            }
        }
        Ok(token)
    }

    async fn lease_holder(&self) -> Result<Option<(String, i64)>, StoreError> {
        self.run("lease_holder", false, &(), |tx, _| {
            Box::pin(async move { lease::holder(tx).await.map(End::Rollback) })
        })
        .await
    }

    async fn watch_report(&self, report: Report) -> Result<(Report, bool), StoreError> {
        self.run("watch_report", false, &report, |tx, report| {
            Box::pin(async move { reports::watch(tx, report).await.map(End::Commit) })
        })
        .await
    }

    async fn report(&self, ticket: &str) -> Result<Option<Report>, StoreError> {
        self.run("report", false, ticket, |tx, ticket| {
            Box::pin(async move { reports::get(tx, ticket, false).await.map(End::Rollback) })
        })
        .await
    }

    async fn reports(&self, limit: usize) -> Result<Vec<Report>, StoreError> {
        self.run("reports", false, &limit, |tx, &limit| {
            Box::pin(async move { reports::list(tx, limit).await.map(End::Rollback) })
        })
        .await
    }

    async fn change_report(
        &self,
        ticket: &str,
        change: ReportChange,
        now: Millis,
    ) -> Result<Option<Report>, StoreError> {
        let ctx = (ticket, change, now);
        self.run("change_report", false, &ctx, |tx, (ticket, change, now)| {
            Box::pin(async move {
                reports::change(tx, ticket, change, *now)
                    .await
                    .map(End::Commit)
            })
        })
        .await
    }

    async fn change_h1(
        &self,
        id: &str,
        change: H1Change,
        delivery: Option<String>,
        now: Millis,
    ) -> Result<H1Applied, StoreError> {
        let ctx = (id, change, delivery, now);
        self.run(
            "change_h1",
            false,
            &ctx,
            |tx, (id, change, delivery, now)| {
                Box::pin(async move {
                    reports::h1_change(tx, id, change, delivery.as_deref(), *now).await
                })
            },
        )
        .await
    }

    async fn h1_report(&self, id: &str) -> Result<Option<H1Report>, StoreError> {
        self.run("h1_report", false, id, |tx, id| {
            Box::pin(async move { reports::h1_get(tx, id, false).await.map(End::Rollback) })
        })
        .await
    }

    async fn h1_reports(&self, limit: usize) -> Result<Vec<H1Report>, StoreError> {
        self.run("h1_reports", false, &limit, |tx, &limit| {
            Box::pin(async move { reports::h1_list(tx, limit).await.map(End::Rollback) })
        })
        .await
    }
}

//! Throw-away schemas for tests against a real PostgreSQL (shared with the
//! end-to-end tests; not part of the public API).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::NoTls;

use crate::store::StoreError;

/// Prefix of every test schema, so strays are easy to find and drop.
const PREFIX: &str = "pagerd_t_";

/// Opens one plain connection to `url` (tests only; an `sslmode` in it is
/// ignored, the test server is local).
async fn connect_plain(url: &str) -> Result<tokio_postgres::Client, StoreError> {
    let (url, _) = super::tls::split_sslmode(url);
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .map_err(|e| StoreError::postgres("test database: cannot connect", e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(cause = %e, "test database connection ended");
        }
    });
    Ok(client)
}

/// A fresh random schema name.
fn schema_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{PREFIX}{:016x}", h.finish())
}

/// Creates a fresh schema `pagerd_t_<random>` in the database of `base`
/// and returns `base` with `options=-c search_path=<schema>`, so a store
/// connected to it sees only its own tables. Drop it with
/// [`drop_test_schema`].
#[doc(hidden)]
pub async fn test_schema_url(base: &str) -> Result<String, StoreError> {
    let name = schema_name();
    let client = connect_plain(base).await?;
    client
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .await
        .map_err(|e| {
            StoreError::postgres(format!("test database: cannot create schema {name}"), e)
        })?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-c%20search_path%3D{name}"))
}

/// Drops the schema of a URL made by [`test_schema_url`] (best effort: a
/// failure is only logged).
#[doc(hidden)]
pub async fn drop_test_schema(base: &str, schema_url: &str) {
    let name = super::tls::split_sslmode(schema_url)
        .0
        .parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|c| {
            c.get_options()
                .and_then(|o| o.split("search_path=").nth(1))
                .map(|s| s.split_whitespace().next().unwrap_or_default().to_string())
        })
        .filter(|n| {
            n.starts_with(PREFIX)
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    let Some(name) = name else {
        tracing::warn!("drop_test_schema: not a test schema URL");
        return;
    };
    let result = match connect_plain(base).await {
        Ok(client) => client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        tracing::warn!(schema = %name, cause = %e, "cannot drop a test schema");
    }
}

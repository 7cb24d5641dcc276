//! The leader lease and the fencing check (see the module docs of
//! [`super`] for why a row with database-time expiry and a token).

use std::time::Duration;

use deadpool_postgres::{Object, Transaction};
use tokio_postgres::error::SqlState;

use super::Fail;
use crate::clock::millis;
use crate::store::StoreError;

/// Take the lease when free or expired, renew it when ours; the token grows
/// whenever the lease changes hands or lapses. No row returned: another
/// holder's lease is still running.
const ACQUIRE: &str = "
INSERT INTO lease AS l (name, holder, token, expires_at)
VALUES ('leader', $1, 1, now() + $2::bigint * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE
   SET holder = EXCLUDED.holder,
       token = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now()
                    THEN l.token ELSE l.token + 1 END,
       expires_at = EXCLUDED.expires_at
 WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
RETURNING token";

/// The fencing check, first statement of every fenced transaction. `FOR
/// SHARE` holds off any takeover (which must lock the row for update) until
/// this transaction ends.
const CHECK: &str = "
SELECT 1 FROM lease
 WHERE name = 'leader' AND holder = $1 AND token = $2 AND expires_at > now()
   FOR SHARE";

/// Who holds the lease and for how many more milliseconds (negative once
/// expired), in database time.
pub(super) const HOLDER: &str = "
SELECT holder, (EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::bigint
  FROM lease WHERE name = 'leader'";

/// Takes or renews the lease for `holder`; `Some(token)` while held.
///
/// Waits for the lease row's lock at most a quarter of `ttl`: the row is
/// share-locked while the leader settles outbox rows, which takes
/// milliseconds. When another holder's transaction still has it locked,
/// that holder is at work, so the answer is `None`; when the lock is our
/// own instance's, the renewal failed and the caller hears an error.
pub(super) async fn acquire(
    client: &mut Object,
    holder: &str,
    ttl: Duration,
) -> Result<Option<i64>, Fail> {
    let wait = (ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(2));
    let acquire = client
        .prepare_cached(ACQUIRE)
        .await
        .map_err(Fail::pg("prepare lease"))?;
    let tx = client.transaction().await.map_err(Fail::pg("begin"))?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = {}", wait.as_millis()))
        .await
        .map_err(Fail::pg("set lock timeout"))?;
    let result = tx.query_opt(&acquire, &[&holder, &millis(ttl)]).await;
    let blocked = match result {
        Ok(row) => {
            let token = row
                .map(|r| r.try_get::<_, i64>(0))
                .transpose()
                .map_err(Fail::pg("read token"))?;
            tx.commit().await.map_err(Fail::pg("commit lease"))?;
            return Ok(token);
        }
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => e,
        Err(e) => return Err(Fail::Pg("take or renew the lease", e)),
    };
    tx.rollback().await.map_err(Fail::pg("rollback"))?;
    let current = client
        .query_opt("SELECT holder FROM lease WHERE name = 'leader'", &[])
        .await
        .map_err(Fail::pg("read the lease"))?
        .map(|r| r.try_get::<_, String>(0))
        .transpose()
        .map_err(Fail::pg("read the lease"))?;
    if current.as_deref() == Some(holder) {
        Err(Fail::Pg("renew the lease (row busy)", blocked))
    } else {
        Ok(None)
    }
}

/// The fencing check: fails with [`StoreError::NotLeader`] unless
/// `(holder, token)` holds an unexpired lease, and keeps the lease row
/// share-locked until the transaction ends.
pub(super) async fn check(tx: &Transaction<'_>, holder: &str, token: i64) -> Result<(), Fail> {
    let stmt = tx
        .prepare_cached(CHECK)
        .await
        .map_err(Fail::pg("prepare fence"))?;
    match tx
        .query_opt(&stmt, &[&holder, &token])
        .await
        .map_err(Fail::pg("check the lease"))?
    {
        Some(_) => Ok(()),
        None => Err(Fail::Store(StoreError::NotLeader)),
    }
}

/// `(holder, ms until expiry)`, or `None` when nobody ever took the lease.
pub(super) async fn holder(tx: &Transaction<'_>) -> Result<Option<(String, i64)>, Fail> {
    let stmt = tx
        .prepare_cached(HOLDER)
        .await
        .map_err(Fail::pg("prepare"))?;
    let Some(row) = tx
        .query_opt(&stmt, &[])
        .await
        .map_err(Fail::pg("read the lease"))?
    else {
        return Ok(None);
    };
    let holder = row.try_get(0).map_err(Fail::pg("read holder"))?;
    let left = row.try_get(1).map_err(Fail::pg("read expiry"))?;
    Ok(Some((holder, left)))
}

//! What the commands read and change in the PostgreSQL store outside a running daemon: the dead letters,
//! the outbox summary, and the schema's state (`check --connect`, `migrate`).

use futures_util::FutureExt;

use super::{PgTarget, blocking, schema};
use crate::store::StoreError;
use crate::store::admin::{DeadLetter, Queue, summary};

/// Every dead letter, oldest first.
pub fn dead_letters(target: &PgTarget) -> Result<Vec<DeadLetter>, StoreError> {
    let t = target.clone();
    blocking(target, move |client| {
        async move {
            let rows = client
                .query(
                    "SELECT key, room, bridge, record, queued_at, failed_at, reason, requeued FROM deadletters ORDER BY key",
                    &[],
                )
                .await
                .map_err(|e| t.error(&e))?;
            Ok(rows
                .iter()
                .map(|row| DeadLetter {
                    key: row.get::<_, i64>(0) as u64,
                    room: row.get(1),
                    bridge: row.get(2),
                    summary: summary(row.get(3)),
                    queued_at: row.get(4),
                    failed_at: row.get(5),
                    reason: row.get(6),
                    requeued: row.get(7),
                })
                .collect())
        }
        .boxed()
    })
}

/// Marks dead letters (the given keys, or all) to go back to the outbox at the next start.
pub fn requeue(target: &PgTarget, keys: Option<&[u64]>) -> Result<usize, StoreError> {
    let t = target.clone();
    let keys: Option<Vec<i64>> = keys.map(|keys| keys.iter().map(|k| *k as i64).collect());
    blocking(target, move |client| {
        async move {
            let marked = match keys {
                None => client.execute("UPDATE deadletters SET requeued = true", &[]).await,
                Some(keys) => {
                    client.execute("UPDATE deadletters SET requeued = true WHERE key = ANY($1)", &[&keys]).await
                }
            };
            marked.map(|n| n as usize).map_err(|e| t.error(&e))
        }
        .boxed()
    })
}

/// Moves dead letters back to the outbox now, at the end of their rooms' queues: keys of a run of their own (after
/// every key given so far), the instances told as for rows another instance queued. Returns how many went.
pub fn requeue_now(target: &PgTarget, keys: &[u64]) -> Result<usize, StoreError> {
    let t = target.clone();
    let keys: Vec<i64> = keys.iter().map(|k| *k as i64).collect();
    blocking(target, move |client| {
        async move {
            let moved: Result<u64, tokio_postgres::Error> = async {
                let tx = client.transaction().await?;
                let run: i64 = tx.query_one("SELECT nextval('chatbridge_runs')", &[]).await?.get(0);
                let first = run << schema::RUN_SHIFT;
                let moved = tx
                    .execute(
                        &format!(
                            "WITH gone AS (
                                 DELETE FROM deadletters WHERE key = ANY($1) RETURNING key, room, bridge, record)
                             INSERT INTO outbox (key, account, room, bridge, record, queued_at)
                             SELECT $2 + row_number() OVER (ORDER BY key), {}, room, bridge, record, $3
                             FROM gone ORDER BY key",
                            schema::lease_of_room()
                        ),
                        &[&keys, &first, &crate::store::now()],
                    )
                    .await?;
                tx.execute(
                    "SELECT pg_notify('chatbridge_outbox', room) FROM (SELECT DISTINCT room FROM outbox WHERE key > $1 AND key <= $2) r",
                    &[&first, &(first + moved as i64)],
                )
                .await?;
                tx.commit().await?;
                Ok(moved)
            }
            .await;
            moved.map(|n| n as usize).map_err(|e| t.error(&e))
        }
        .boxed()
    })
}

/// Removes dead letters for good. Returns how many went.
pub fn drop_letters(target: &PgTarget, keys: &[u64]) -> Result<usize, StoreError> {
    let t = target.clone();
    let keys: Vec<i64> = keys.iter().map(|k| *k as i64).collect();
    blocking(target, move |client| {
        async move {
            let dropped = client.execute("DELETE FROM deadletters WHERE key = ANY($1)", &[&keys]).await;
            dropped.map(|n| n as usize).map_err(|e| t.error(&e))
        }
        .boxed()
    })
}

/// What the outbox holds per destination.
pub fn queues(target: &PgTarget) -> Result<Vec<Queue>, StoreError> {
    let t = target.clone();
    blocking(target, move |client| {
        async move {
            let rows = client
                .query(
                    "SELECT room, bridge, COUNT(*), MIN(queued_at) FROM outbox GROUP BY room, bridge ORDER BY room, bridge",
                    &[],
                )
                .await
                .map_err(|e| t.error(&e))?;
            Ok(rows
                .iter()
                .map(|row| Queue {
                    room: row.get(0),
                    bridge: row.get(1),
                    messages: row.get::<_, i64>(2) as usize,
                    oldest: row.get(3),
                })
                .collect())
        }
        .boxed()
    })
}

/// The schema's state: the version the database has, and the one this build writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaState {
    pub found: i32,
    pub current: i32,
}

/// Connects and reads the schema's version (`check --connect`).
pub fn status(target: &PgTarget) -> Result<SchemaState, StoreError> {
    let t = target.clone();
    blocking(target, move |client| {
        async move {
            let found = schema::version(&*client).await.map_err(|e| t.error(&e))?;
            Ok(SchemaState { found, current: schema::SCHEMA_VERSION })
        }
        .boxed()
    })
}

/// Applies the migrations (`chatbridge migrate`).
pub fn migrate(target: &PgTarget) -> Result<schema::Migrated, StoreError> {
    let t = target.clone();
    blocking(target, move |client| {
        async move {
            schema::migrate(client).await.map_err(|e| match e {
                schema::MigrateError::Newer { found } => StoreError::PgNewer { target: t.describe(), found },
                schema::MigrateError::Postgres(e) => t.error(&e),
            })
        }
        .boxed()
    })
}

/// One instance of a shared store, as `chatbridge status` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub name: String,
    /// Seconds since its last heartbeat.
    pub seen: f64,
    pub stopping: bool,
    /// The accounts whose leases it holds (unexpired).
    pub accounts: Vec<String>,
}

/// Every instance, and the accounts no instance holds.
pub fn instances(target: &PgTarget) -> Result<(Vec<Instance>, Vec<String>), StoreError> {
    let t = target.clone();
    blocking(target, move |client| {
        async move {
            let rows = client
                .query(
                    "SELECT i.name, EXTRACT(EPOCH FROM clock_timestamp() - i.heartbeat)::float8, i.stopping,
                            COALESCE(array_agg(l.account ORDER BY l.account) FILTER (WHERE l.account IS NOT NULL), '{}')
                     FROM instances i
                     LEFT JOIN leases l ON l.run = i.run AND l.expires > clock_timestamp()
                     GROUP BY i.name, i.heartbeat, i.stopping ORDER BY i.name",
                    &[],
                )
                .await
                .map_err(|e| t.error(&e))?;
            let instances = rows
                .iter()
                .map(|row| Instance { name: row.get(0), seen: row.get(1), stopping: row.get(2), accounts: row.get(3) })
                .collect();
            let free = client
                .query(
                    "SELECT account FROM leases WHERE run IS NULL OR expires <= clock_timestamp() ORDER BY account",
                    &[],
                )
                .await
                .map_err(|e| t.error(&e))?
                .iter()
                .map(|row| row.get(0))
                .collect();
            Ok((instances, free))
        }
        .boxed()
    })
}

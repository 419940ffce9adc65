//! Provisioned bridges in PostgreSQL (see `store/provisioned.rs`): a change locks `provision`'s one row, so changes
//! from every instance and command are checked and written one at a time, and notifies `chatbridge_bridges` at
//! commit; every instance's outbox listener hears it and its daemon applies the new version.

use futures_util::FutureExt;

use super::{PgTarget, blocking, schema};
use crate::config::{Problems, Provisioned};
use crate::store::StoreError;
use crate::store::provisioned::{Changed, Listed};

/// The channel a change notifies.
pub(super) const CHANNEL: &str = "chatbridge_bridges";

fn migrated(t: &PgTarget, e: schema::MigrateError) -> StoreError {
    match e {
        schema::MigrateError::Newer { found } => StoreError::PgNewer { target: t.describe(), found },
        schema::MigrateError::Postgres(e) => t.error(&e),
    }
}

pub(in crate::store) fn list(target: &PgTarget) -> Result<Listed, StoreError> {
    let t = target.clone();
    blocking(target, move |client| {
        async move {
            let exists: bool = client
                .query_one("SELECT to_regclass('provision') IS NOT NULL", &[])
                .await
                .map_err(|e| t.error(&e))?
                .get(0);
            if !exists {
                return Ok(Listed::default());
            }
            let tx = client.transaction().await.map_err(|e| t.error(&e))?;
            let version: i64 =
                tx.query_one("SELECT version FROM provision WHERE id = 1", &[]).await.map_err(|e| t.error(&e))?.get(0);
            let rows = tx.query("SELECT name, spec FROM bridges ORDER BY name", &[]).await.map_err(|e| t.error(&e))?;
            let bridges = rows.iter().map(|row| Provisioned { name: row.get(0), toml: row.get(1) }).collect();
            Ok(Listed { version, bridges })
        }
        .boxed()
    })
}

pub(in crate::store) fn put(
    target: &PgTarget,
    bridge: Provisioned,
    check: impl FnOnce(&[Provisioned]) -> Result<(), Problems> + Send + 'static,
) -> Result<Changed, StoreError> {
    let t = target.clone();
    blocking(target, move |client| {
        async move {
            schema::migrate(client).await.map_err(|e| migrated(&t, e))?;
            let tx = client.transaction().await.map_err(|e| t.error(&e))?;
            let version: i64 = tx
                .query_one("UPDATE provision SET version = version + 1 WHERE id = 1 RETURNING version", &[])
                .await
                .map_err(|e| t.error(&e))?
                .get(0);
            let rows = tx.query("SELECT name, spec FROM bridges ORDER BY name", &[]).await.map_err(|e| t.error(&e))?;
            let others: Vec<Provisioned> =
                rows.iter().map(|row| Provisioned { name: row.get(0), toml: row.get(1) }).collect();
            if let Err(problems) = check(&others) {
                return Ok(Changed::Refused(problems));
            }
            let created = !others.iter().any(|b| b.name == bridge.name);
            tx.execute(
                "INSERT INTO bridges (name, spec, updated) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated = excluded.updated",
                &[&bridge.name, &bridge.toml, &schema::now()],
            )
            .await
            .map_err(|e| t.error(&e))?;
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &version.to_string()]).await.map_err(|e| t.error(&e))?;
            tx.commit().await.map_err(|e| t.error(&e))?;
            Ok(Changed::Written { version, created })
        }
        .boxed()
    })
}

pub(in crate::store) fn remove(target: &PgTarget, name: &str) -> Result<Changed, StoreError> {
    let t = target.clone();
    let name = name.to_owned();
    blocking(target, move |client| {
        async move {
            schema::migrate(client).await.map_err(|e| migrated(&t, e))?;
            let tx = client.transaction().await.map_err(|e| t.error(&e))?;
            let gone = tx.execute("DELETE FROM bridges WHERE name = $1", &[&name]).await.map_err(|e| t.error(&e))?;
            if gone == 0 {
                return Ok(Changed::NotFound);
            }
            let version: i64 = tx
                .query_one("UPDATE provision SET version = version + 1 WHERE id = 1 RETURNING version", &[])
                .await
                .map_err(|e| t.error(&e))?
                .get(0);
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &version.to_string()]).await.map_err(|e| t.error(&e))?;
            tx.commit().await.map_err(|e| t.error(&e))?;
            Ok(Changed::Written { version, created: false })
        }
        .boxed()
    })
}

//! The control tables in the target (schema `acode_migrate`), created and
//! upgraded by embedded refinery migrations with their own history table
//! (`acode_migrate.schema_history`), so they never meet the sync server's
//! migrations or the migrated tables.

use tokio_postgres::Client;

use crate::error::{MigrateError, Result};

mod embedded {
    refinery::embed_migrations!("migrations");
}

const HISTORY_TABLE: &str = "acode_migrate.schema_history";
/// Session advisory lock held while migrating ("acodemig").
const MIGRATION_LOCK: i64 = 0x6163_6f64_656d_6967;

/// Creates or upgrades the control tables; safe from several processes at
/// once (a session advisory lock serialises them).
pub async fn ensure(client: &mut Client) -> Result<()> {
    if current(client).await {
        return Ok(());
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(MigrateError::pg("locking the control schema"))?;
    let outcome = async {
        client
            .batch_execute("CREATE SCHEMA IF NOT EXISTS acode_migrate")
            .await
            .map_err(MigrateError::pg("creating schema acode_migrate"))?;
        let mut runner = embedded::migrations::runner();
        runner.set_migration_table_name(HISTORY_TABLE);
        runner
            .set_grouped(true)
            .run_async(client)
            .await
            .map_err(|e| MigrateError::Target {
                context: "creating the control tables".into(),
                message: e.to_string(),
            })?;
        Ok::<(), MigrateError>(())
    }
    .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(MigrateError::pg("unlocking the control schema"))?;
    outcome
}

/// Whether the history already lists exactly this binary's migrations,
/// versions and checksums: the usual case, read in one round trip and
/// without the lock (refinery's own check takes about ten). Anything else
/// (no table yet, a migration missing, edited or newer) goes through
/// refinery, which applies or refuses.
async fn current(client: &Client) -> bool {
    let Ok(rows) = client
        .query_typed(
            &format!(
                "SELECT version::bigint, checksum::text FROM {HISTORY_TABLE} ORDER BY version"
            ),
            &[],
        )
        .await
    else {
        return false;
    };
    let runner = embedded::migrations::runner();
    let want: Vec<(i64, String)> = runner
        .get_migrations()
        .iter()
        .map(|m| (i64::from(m.version()), m.checksum().to_string()))
        .collect();
    let have: Vec<(i64, String)> = rows
        .iter()
        .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
        .collect();
    have.len() == rows.len() && have == want
}

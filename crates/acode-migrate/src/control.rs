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

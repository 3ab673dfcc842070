//! The server schema, as refinery migrations embedded in the binary.

use deadpool_postgres::Object;

use crate::error::{RemoteError, Result};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The history table of the server schema.
const HISTORY_TABLE: &str = "acode_server_schema_history";
/// Session advisory lock held while migrating (any constant unique to acode).
const MIGRATION_LOCK: i64 = 0x6163_6f64_655f_6d67;

pub(crate) async fn migrate(client: &mut Object) -> Result<Vec<String>> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(RemoteError::db("locking for migration"))?;
    let mut runner = embedded::migrations::runner();
    runner.set_migration_table_name(HISTORY_TABLE);
    let outcome = runner
        .set_grouped(true)
        .run_async(&mut ***client)
        .await
        .map_err(|e| RemoteError::Migration(e.to_string()));
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(RemoteError::db("unlocking after migration"))?;
    Ok(outcome?
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// The newest server schema version this build knows.
pub fn latest_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

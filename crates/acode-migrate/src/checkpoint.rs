//! Checkpoints: where each table's pass of a run stands, so a killed run
//! started again skips the tables it finished and resumes the one it was
//! in after its last committed chunk (the chunk's writes and its
//! checkpoint commit together, see [`crate::engine`]).

use deadpool_postgres::Object;
use tokio_postgres::types::Type;

use crate::engine::{Counts, Resume};
use crate::error::{MigrateError, Result};
use crate::value::SqlValue;

/// How a table's pass starts in this run.
pub enum Start {
    /// Finished by the interrupted run this one continues.
    Done(Counts),
    /// To do, from the beginning (`None`) or from where it stopped.
    Go(Option<Resume>),
}

/// The id of the run to do now: the last run from this source if it was
/// cut short (then `true`), else a new one.
pub async fn begin_run(client: &Object, source: &str) -> Result<(String, bool)> {
    let id = format!(
        "{:016x}{:016x}",
        chrono::Utc::now().timestamp_micros(),
        fastrand::u64(..)
    );
    // One statement, one round trip (typed: no prepare first).
    let row = client
        .query_typed_one(
            "WITH open AS (SELECT run_id FROM acode_migrate.migration_runs
                           WHERE source = $1 AND finished_at IS NULL ORDER BY started_at DESC LIMIT 1),
                  new AS (INSERT INTO acode_migrate.migration_runs (run_id, source)
                          SELECT $2, $1 WHERE NOT EXISTS (SELECT 1 FROM open) RETURNING run_id)
             SELECT run_id, true FROM open UNION ALL SELECT run_id, false FROM new",
            &[(&source, Type::TEXT), (&id, Type::TEXT)],
        )
        .await
        .map_err(MigrateError::pg("recording the run"))?;
    Ok((row.get(0), row.get(1)))
}

/// Marks a run finished: the next run starts afresh.
pub async fn finish_run(client: &Object, run_id: &str) -> Result<()> {
    client
        .execute_typed(
            "UPDATE acode_migrate.migration_runs SET finished_at = now() WHERE run_id = $1",
            &[(&run_id, Type::TEXT)],
        )
        .await
        .map_err(MigrateError::pg("recording the end of the run"))?;
    Ok(())
}

fn n(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Decides where `table`'s pass starts and records it.
pub async fn start_table(
    client: &Object,
    run_id: &str,
    source: &str,
    table: &str,
) -> Result<Start> {
    let ctx = || format!("reading the checkpoint of {table}");
    let row = client
        .query_typed_opt(
            "SELECT status, run_id, source, last_key, rows_inserted, rows_updated, rows_deleted, chunks_done
             FROM acode_migrate.migration_checkpoints WHERE table_name = $1",
            &[(&table, Type::TEXT)],
        )
        .await
        .map_err(MigrateError::pg(ctx()))?;
    if let Some(r) = row {
        let (status, rid, from): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if rid == run_id && from == source {
            let key: Option<serde_json::Value> = r.get(3);
            let after = key.and_then(|k| {
                k.as_array().and_then(|a| {
                    a.iter()
                        .map(SqlValue::from_json)
                        .collect::<Option<Vec<_>>>()
                })
            });
            let (inserted, updated, deleted, chunks) =
                (n(r.get(4)), n(r.get(5)), n(r.get(6)), n(r.get(7)));
            if status == "done" {
                return Ok(Start::Done(Counts {
                    inserted,
                    updated,
                    deleted,
                    chunks,
                    resumed: true,
                    ..Counts::default()
                }));
            }
            return Ok(Start::Go(Some(Resume {
                after,
                inserted,
                updated,
                deleted,
                chunks,
            })));
        }
    }
    client
        .execute_typed(
            "INSERT INTO acode_migrate.migration_checkpoints (table_name, source, run_id, status) VALUES ($1, $2, $3, 'running')
             ON CONFLICT (table_name) DO UPDATE SET source = EXCLUDED.source, run_id = EXCLUDED.run_id, status = 'running',
               last_key = NULL, chunks_done = 0, rows_inserted = 0, rows_updated = 0, rows_deleted = 0,
               started_at = now(), updated_at = now()",
            &[(&table, Type::TEXT), (&source, Type::TEXT), (&run_id, Type::TEXT)],
        )
        .await
        .map_err(MigrateError::pg(ctx()))?;
    Ok(Start::Go(None))
}

/// Where a tracked table's cursor lives: source, target schema, table.
#[derive(Clone, Copy, Debug)]
pub struct CursorKey<'a> {
    pub source: &'a str,
    pub schema: &'a str,
    pub table: &'a str,
}

/// A target's cursor into a source's change log (see [`crate::track`]).
#[derive(Clone, Debug)]
pub struct Cursor {
    pub generation: String,
    pub seq: i64,
    pub ready: bool,
}

/// The cursors of every table of `source` in `schema`.
pub async fn read_cursors(
    client: &Object,
    source: &str,
    schema: &str,
) -> Result<std::collections::BTreeMap<String, Cursor>> {
    let rows = client
        .query_typed(
            "SELECT table_name, generation, seq, ready FROM acode_migrate.change_cursors
             WHERE source = $1 AND target_schema = $2",
            &[(&source, Type::TEXT), (&schema, Type::TEXT)],
        )
        .await
        .map_err(MigrateError::pg("reading change cursors"))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.get(0),
                Cursor {
                    generation: r.get(1),
                    seq: r.get(2),
                    ready: r.get(3),
                },
            )
        })
        .collect())
}

/// Records, before a full pass reads its first row, where the change log
/// stood: once the pass is done ([`finish_cursor`]) the target holds every
/// change up to there.
pub async fn begin_cursor(
    client: &Object,
    key: CursorKey<'_>,
    generation: &str,
    seq: i64,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO acode_migrate.change_cursors (source, target_schema, table_name, generation, seq, ready)
             VALUES ($1, $2, $3, $4, $5, false)
             ON CONFLICT (source, target_schema, table_name) DO UPDATE
               SET generation = EXCLUDED.generation, seq = EXCLUDED.seq, ready = false, updated_at = now()",
            &[&key.source, &key.schema, &key.table, &generation, &seq],
        )
        .await
        .map_err(MigrateError::pg(format!("recording the change cursor of {}", key.table)))?;
    Ok(())
}

/// Marks the cursor a finished full pass began as usable, if it is still
/// of `generation`.
pub async fn finish_cursor(client: &Object, key: CursorKey<'_>, generation: &str) -> Result<()> {
    client
        .execute(
            "UPDATE acode_migrate.change_cursors SET ready = true, updated_at = now()
             WHERE source = $1 AND target_schema = $2 AND table_name = $3 AND generation = $4",
            &[&key.source, &key.schema, &key.table, &generation],
        )
        .await
        .map_err(MigrateError::pg(format!(
            "recording the change cursor of {}",
            key.table
        )))?;
    Ok(())
}

/// Moves a ready cursor to `seq` (in the transaction that applied the
/// changes up to it).
pub async fn save_cursor(
    tx: &deadpool_postgres::Transaction<'_>,
    key: CursorKey<'_>,
    seq: i64,
) -> Result<()> {
    let ctx = || format!("moving the change cursor of {}", key.table);
    let stmt = crate::engine::cached(
        tx,
        "UPDATE acode_migrate.change_cursors SET seq = $4, updated_at = now()
         WHERE source = $1 AND target_schema = $2 AND table_name = $3",
    )
    .await
    .map_err(MigrateError::pg(ctx()))?;
    tx.execute(&stmt, &[&key.source, &key.schema, &key.table, &seq])
        .await
        .map_err(MigrateError::pg(ctx()))?;
    Ok(())
}

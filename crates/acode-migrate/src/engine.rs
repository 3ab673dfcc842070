//! The differential core, shared by analyze, run and validate.
//!
//! A table is walked in key order in chunks of `batch` source rows. A
//! reader thread streams the source (one SQLite statement, so one
//! consistent snapshot) and converts and hashes each row. For every chunk
//! the target computes count and sum of its row hashes over the same key
//! range `(previous chunk's last key, this chunk's last key]` (the first
//! range is open below, the last open above, so target rows outside the
//! source's keys are seen too). Equal chunks cost one round trip; for a
//! differing chunk the target's per-row hashes are fetched and compared
//! to find missing, changed and extra keys.
//!
//! Applying a chunk is one transaction: extra rows are deleted, missing
//! and changed rows are loaded with binary COPY into a staging table and
//! merged (`INSERT … ON CONFLICT … DO UPDATE … WHERE row differs`; straight
//! COPY into the table when its range is empty), UUID mappings are
//! recorded, and the table's checkpoint moves to the chunk's last key. A
//! killed run therefore resumes after the last committed chunk and never
//! applies a chunk twice (and the merge would be harmless if it did).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use deadpool_postgres::Object;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::Progress;
use crate::error::{MigrateError, Result};
use crate::plan::{Row, TablePlan};
use crate::value::{Cell, SqlValue, derive_uuid, uuid_text};

/// What a pass over one table found (and did).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub source_rows: u64,
    pub target_rows: u64,
    pub chunks: u64,
    pub chunks_differing: u64,
    pub missing: u64,
    pub changed: u64,
    pub extra: u64,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    /// The pass continued from a checkpoint of a killed run.
    pub resumed: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Compare,
    Apply,
}

/// A chunk of converted source rows; `last`: the final one (its range is
/// open above).
pub struct Chunk {
    pub rows: Vec<Row>,
    pub last: bool,
}

/// Streams `plan`'s source rows in chunks from a thread of its own.
fn spawn_reader(
    path: PathBuf,
    plan: Arc<TablePlan>,
    after: Option<Vec<SqlValue>>,
    batch: usize,
) -> mpsc::Receiver<Result<Chunk>> {
    let (tx, rx) = mpsc::channel(2);
    std::thread::spawn(move || {
        let shown = path.display().to_string();
        let result = (|| -> Result<()> {
            let conn = crate::schema::open_source(&path)?;
            let sql = plan.source_select(after.is_some());
            let mut stmt = conn
                .prepare(&sql)
                .map_err(|e| MigrateError::source(&shown, e))?;
            let width = stmt.column_count();
            let params: Vec<SqlValue> = after.clone().unwrap_or_default();
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params.iter()))
                .map_err(|e| MigrateError::source(&shown, e))?;
            let mut buf = Vec::new();
            let mut chunk = Vec::with_capacity(batch);
            while let Some(r) = rows.next().map_err(|e| MigrateError::source(&shown, e))? {
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    let v = r.get_ref(i).map_err(|e| MigrateError::source(&shown, e))?;
                    values.push(SqlValue::from_ref(v));
                }
                chunk.push(plan.convert_row(values, &mut buf)?);
                if plan.chunkable && chunk.len() >= batch {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(batch));
                    if tx
                        .blocking_send(Ok(Chunk {
                            rows: full,
                            last: false,
                        }))
                        .is_err()
                    {
                        return Ok(()); // the pass stopped
                    }
                }
            }
            let _ = tx.blocking_send(Ok(Chunk {
                rows: chunk,
                last: true,
            }));
            Ok(())
        })();
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

/// Keys of a chunk that differ.
#[derive(Debug, Default, PartialEq)]
pub struct ChunkDiff {
    /// Indexes of source rows the target lacks.
    pub missing: Vec<usize>,
    /// Indexes of source rows the target holds differently.
    pub changed: Vec<usize>,
    /// Match keys of target rows the source does not have.
    pub extra: Vec<Vec<Cell>>,
}

/// Compares a chunk's source rows with the target's `(match key, hash)`.
pub fn diff_chunk(rows: &[Row], mut target: HashMap<Vec<Cell>, u64>) -> ChunkDiff {
    let mut d = ChunkDiff::default();
    for (i, r) in rows.iter().enumerate() {
        match target.remove(&r.match_key) {
            None => d.missing.push(i),
            Some(h) if h != r.hash => d.changed.push(i),
            Some(_) => {}
        }
    }
    d.extra = target.into_keys().collect();
    d
}

fn hash_sum(rows: &[Row]) -> i128 {
    #[allow(clippy::cast_possible_wrap)] // the bits, as PostgreSQL reads them
    rows.iter().map(|r| i128::from(r.hash as i64)).sum()
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Samples kept by reservoir sampling during a compare pass.
pub struct Sampler {
    pub want: usize,
    pub seen: u64,
    pub rows: Vec<Row>,
    rng: fastrand::Rng,
}

impl Sampler {
    pub fn new(want: usize) -> Sampler {
        Sampler {
            want,
            seen: 0,
            rows: Vec::new(),
            rng: fastrand::Rng::new(),
        }
    }

    fn offer(&mut self, row: &Row) {
        self.seen += 1;
        if self.rows.len() < self.want {
            self.rows.push(row.clone());
        } else if let Ok(j) = usize::try_from(self.rng.u64(0..self.seen))
            && j < self.want
        {
            self.rows[j] = row.clone();
        }
    }
}

/// Everything a pass needs.
pub struct Pass<'a> {
    pub plan: Arc<TablePlan>,
    pub source_path: PathBuf,
    pub source_id: &'a str,
    pub batch: usize,
    pub mode: Mode,
    pub progress: &'a dyn Progress,
    pub sampler: Option<&'a mut Sampler>,
    /// In [`Mode::Apply`]: where the table's pass of an interrupted run
    /// stopped, and what it had done.
    pub resume: Option<Resume>,
}

/// The state of a table's pass in a run that was cut short.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// The source key of the last committed chunk; `None`: no chunk yet.
    pub after: Option<Vec<SqlValue>>,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub chunks: u64,
}

/// One pass over a table: compares it and, in [`Mode::Apply`], makes the
/// target equal to the source chunk by chunk, from its checkpoint.
pub async fn pass(client: &mut Object, p: Pass<'_>) -> Result<Counts> {
    let plan = p.plan.clone();
    let name = plan.name().to_owned();
    let mut counts = Counts::default();
    let mut after: Option<Vec<SqlValue>> = None;
    if p.mode == Mode::Apply {
        if let Some(r) = &p.resume {
            counts.resumed = true;
            counts.inserted = r.inserted;
            counts.updated = r.updated;
            counts.deleted = r.deleted;
            if plan.chunkable {
                after.clone_from(&r.after);
            }
        }
        client
            .batch_execute(&plan.stage_sql())
            .await
            .map_err(MigrateError::pg(format!(
                "preparing staging tables for {name}"
            )))?;
    }
    let mut lo: Option<Vec<Cell>> = match &after {
        Some(k) => Some(plan.match_key_of(k)?),
        None => None,
    };
    let fixed: Vec<String> = match &plan.uuid_key {
        Some((t, c)) => vec![t.clone(), c.clone()],
        None => Vec::new(),
    };
    let mut chunks = spawn_reader(p.source_path.clone(), plan.clone(), after, p.batch.max(1));
    let mut sampler = p.sampler;
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk?;
        counts.chunks += 1;
        counts.source_rows += chunk.rows.len() as u64;
        if let Some(s) = sampler.as_deref_mut() {
            for r in &chunk.rows {
                s.offer(r);
            }
        }
        let hi: Option<Vec<Cell>> = if chunk.last {
            None
        } else {
            chunk.rows.last().map(|r| r.match_key.clone())
        };
        let mut params: Vec<&(dyn ToSql + Sync)> =
            fixed.iter().map(|s| s as &(dyn ToSql + Sync)).collect();
        for c in lo.iter().chain(hi.iter()).flatten() {
            params.push(c);
        }
        let agg_sql = plan.aggregate_sql(lo.is_some(), hi.is_some());
        let stmt = client
            .prepare_cached(&agg_sql)
            .await
            .map_err(MigrateError::pg(format!("comparing table {name}")))?;
        let row = client
            .query_one(&stmt, &params)
            .await
            .map_err(MigrateError::pg(format!("comparing table {name}")))?;
        let t_count: i64 = row.get(0);
        let t_sum: String = row.get(1);
        counts.target_rows += to_u64(t_count);
        let equal = to_u64(t_count) == chunk.rows.len() as u64
            && t_sum.parse::<i128>().ok() == Some(hash_sum(&chunk.rows));
        let last_key = chunk.rows.last().map(|r| r.source_key.clone());
        if equal {
            if p.mode == Mode::Apply && !chunk.last {
                save_checkpoint(&***client, &name, last_key.as_deref(), [0, 0, 0]).await?;
            }
        } else {
            counts.chunks_differing += 1;
            let diff = if t_count == 0 {
                ChunkDiff {
                    missing: (0..chunk.rows.len()).collect(),
                    ..ChunkDiff::default()
                }
            } else {
                let hashes_sql = plan.hashes_sql(lo.is_some(), hi.is_some());
                let stmt = client
                    .prepare_cached(&hashes_sql)
                    .await
                    .map_err(MigrateError::pg(format!("comparing rows of {name}")))?;
                let rows = client
                    .query(&stmt, &params)
                    .await
                    .map_err(MigrateError::pg(format!("comparing rows of {name}")))?;
                let nkey = rows.first().map_or(0, |r| r.len() - 1);
                let mut map = HashMap::with_capacity(rows.len());
                for r in rows {
                    let key: Vec<Cell> = (0..nkey)
                        .map(|i| r.try_get::<_, Cell>(i))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(MigrateError::pg(format!("reading keys of {name}")))?;
                    let h: &[u8] = r.get(nkey);
                    let mut b = [0u8; 8];
                    b.copy_from_slice(h.get(..8).unwrap_or(&[0; 8]));
                    map.insert(key, u64::from_be_bytes(b));
                }
                diff_chunk(&chunk.rows, map)
            };
            counts.missing += diff.missing.len() as u64;
            counts.changed += diff.changed.len() as u64;
            counts.extra += diff.extra.len() as u64;
            if p.mode == Mode::Apply {
                apply(
                    client,
                    &plan,
                    &chunk.rows,
                    &diff,
                    t_count == 0,
                    last_key.as_deref(),
                    chunk.last,
                )
                .await?;
                counts.inserted += diff.missing.len() as u64;
                counts.updated += diff.changed.len() as u64;
                counts.deleted += diff.extra.len() as u64;
            }
        }
        p.progress.rows_done(&name, chunk.rows.len() as u64);
        lo = hi;
    }
    if p.mode == Mode::Apply {
        client
            .execute(
                "UPDATE acode_migrate.migration_checkpoints SET status = 'done', updated_at = now() WHERE table_name = $1",
                &[&name],
            )
            .await
            .map_err(MigrateError::pg(format!("finishing the checkpoint of {name}")))?;
        client
            .batch_execute("DROP TABLE IF EXISTS pg_temp.acode_stage; DROP TABLE IF EXISTS pg_temp.acode_stage_del")
            .await
            .map_err(MigrateError::pg("dropping staging tables"))?;
    }
    Ok(counts)
}

/// Applies one chunk's differences and moves the checkpoint, atomically.
async fn apply(
    client: &mut Object,
    plan: &TablePlan,
    rows: &[Row],
    diff: &ChunkDiff,
    empty_range: bool,
    last_key: Option<&[SqlValue]>,
    last: bool,
) -> Result<()> {
    let name = plan.name();
    let ctx = |what: &str| format!("{what} table {name}");
    let tx = client
        .transaction()
        .await
        .map_err(MigrateError::pg(ctx("starting a transaction on")))?;
    if !diff.extra.is_empty() {
        let key_types: Vec<Type> = plan
            .key
            .iter()
            .map(|&i| plan.columns[i].kind.pg_type())
            .collect();
        let ns = plan
            .uuid_key
            .as_ref()
            .and_then(|_| plan.columns[plan.key[0]].uuid_namespace.clone());
        let keys: Vec<Vec<Cell>> = diff
            .extra
            .iter()
            .map(|k| match (&ns, k.first()) {
                (Some(ns), Some(Cell::Int(legacy))) => vec![Cell::Uuid(derive_uuid(ns, *legacy))],
                _ => k.clone(),
            })
            .collect();
        copy_in(
            &tx,
            &format!(
                "COPY pg_temp.acode_stage_del ({}) FROM STDIN (FORMAT binary)",
                plan.quoted_key()
            ),
            &key_types,
            keys.iter().map(Vec::as_slice),
        )
        .await
        .map_err(MigrateError::pg(ctx("staging deletes of")))?;
        tx.execute(&plan.delete_sql(), &[])
            .await
            .map_err(MigrateError::pg(ctx("deleting extra rows of")))?;
    }
    let types: Vec<Type> = plan.columns.iter().map(|c| c.kind.pg_type()).collect();
    let upserts = diff
        .missing
        .iter()
        .chain(diff.changed.iter())
        .map(|&i| rows[i].cells.as_slice());
    if empty_range {
        copy_in(
            &tx,
            &format!(
                "COPY {} ({}) FROM STDIN (FORMAT binary)",
                plan.qualified,
                plan.quoted_columns()
            ),
            &types,
            upserts,
        )
        .await
        .map_err(MigrateError::pg(ctx("copying rows into")))?;
    } else if !(diff.missing.is_empty() && diff.changed.is_empty()) {
        copy_in(
            &tx,
            &format!(
                "COPY pg_temp.acode_stage ({}) FROM STDIN (FORMAT binary)",
                plan.quoted_columns()
            ),
            &types,
            upserts,
        )
        .await
        .map_err(MigrateError::pg(ctx("staging rows of")))?;
        tx.execute(&plan.merge_sql(), &[])
            .await
            .map_err(MigrateError::pg(ctx("merging rows into")))?;
    }
    if let Some((t, c)) = &plan.uuid_key
        && !diff.missing.is_empty()
    {
        let mut legacy = Vec::new();
        let mut uuids = Vec::new();
        for &i in &diff.missing {
            if let (Some(Cell::Int(l)), Some(Cell::Uuid(u))) =
                (rows[i].match_key.first(), rows[i].cells.get(plan.key[0]))
            {
                legacy.push(*l);
                uuids.push(uuid_text(u));
            }
        }
        tx.execute(
            "INSERT INTO acode_migrate.migration_mappings (table_name, column_name, legacy_key, uuid)
             SELECT $1, $2, l, u::uuid FROM unnest($3::bigint[], $4::text[]) AS x(l, u)
             ON CONFLICT (table_name, column_name, legacy_key) DO NOTHING",
            &[t, c, &legacy, &uuids],
        )
        .await
        .map_err(MigrateError::pg(ctx("recording UUID mappings of")))?;
    }
    let counters = [diff.missing.len(), diff.changed.len(), diff.extra.len()]
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    if last {
        save_checkpoint(&*tx, name, None, counters).await?;
    } else {
        save_checkpoint(&*tx, name, last_key, counters).await?;
    }
    tx.commit()
        .await
        .map_err(MigrateError::pg(ctx("committing a chunk of")))?;
    Ok(())
}

async fn copy_in<'r>(
    tx: &tokio_postgres::Transaction<'_>,
    sql: &str,
    types: &[Type],
    rows: impl Iterator<Item = &'r [Cell]>,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in(sql).await?;
    let writer = BinaryCopyInWriter::new(sink, types);
    let mut writer = std::pin::pin!(writer);
    let mut refs: Vec<&(dyn ToSql + Sync)> = Vec::new();
    for row in rows {
        refs.clear();
        refs.extend(row.iter().map(|c| c as &(dyn ToSql + Sync)));
        writer.as_mut().write(&refs).await?;
    }
    writer.finish().await
}

async fn save_checkpoint<C: tokio_postgres::GenericClient>(
    client: &C,
    table: &str,
    last_key: Option<&[SqlValue]>,
    [inserted, updated, deleted]: [i64; 3],
) -> Result<()> {
    let key = last_key.map(|k| serde_json::Value::Array(k.iter().map(SqlValue::to_json).collect()));
    client
        .execute(
            "UPDATE acode_migrate.migration_checkpoints SET last_key = COALESCE($2, last_key), chunks_done = chunks_done + 1,
               rows_inserted = rows_inserted + $3, rows_updated = rows_updated + $4, rows_deleted = rows_deleted + $5, updated_at = now()
             WHERE table_name = $1",
            &[&table, &key, &inserted, &updated, &deleted],
        )
        .await
        .map_err(MigrateError::pg(format!("saving the checkpoint of {table}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: i64, hash: u64) -> Row {
        Row {
            source_key: vec![SqlValue::Int(k)],
            match_key: vec![Cell::Int(k)],
            cells: vec![],
            hash,
        }
    }

    #[test]
    fn chunk_diff_finds_missing_changed_and_extra() {
        let rows = vec![row(1, 10), row(2, 20), row(3, 30)];
        let target: HashMap<Vec<Cell>, u64> = [
            (vec![Cell::Int(2)], 21),
            (vec![Cell::Int(3)], 30),
            (vec![Cell::Int(4)], 40),
        ]
        .into_iter()
        .collect();
        let d = diff_chunk(&rows, target);
        assert_eq!(d.missing, vec![0]);
        assert_eq!(d.changed, vec![1]);
        assert_eq!(d.extra, vec![vec![Cell::Int(4)]]);
    }
}

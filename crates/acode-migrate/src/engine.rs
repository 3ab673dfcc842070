//! The differential core, shared by analyze, run and validate.
//!
//! A table is walked in key order in chunks of `batch` source rows. A
//! reader thread streams the source (one SQLite statement, so one
//! consistent snapshot) and converts and hashes each row. For every chunk
//! the target sends the hashes of its rows in the same key range
//! `(previous chunk's last key, this chunk's last key]` (the first range
//! is open below, the last open above, so target rows outside the
//! source's keys are seen too) as one array: stored in the hidden column
//! of tables acode created ([`crate::rowhash`]), else computed in SQL. A
//! row's hash covers its key, so comparing the two sorted lists finds the
//! source rows to write; only for target hashes no source row has are the
//! keys fetched, to tell changed rows from extra ones.
//!
//! Applying a chunk is one transaction: extra rows are deleted, missing
//! and changed rows are loaded with binary COPY into a staging table and
//! merged (`INSERT … ON CONFLICT … DO UPDATE … WHERE row differs`; straight
//! COPY into the table when its range is empty), UUID mappings are
//! recorded, and the table's checkpoint moves to the chunk's last key. A
//! killed run therefore resumes after the last committed chunk and never
//! applies a chunk twice (and the merge would be harmless if it did). A
//! table in its first load is not compared at all (see [`pass`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use deadpool_postgres::Object;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::checkpoint::{CursorKey, save_cursor};
use crate::error::{MigrateError, Result};
use crate::plan::{Row, TablePlan};
use crate::value::{Cell, SqlValue, derive_uuid, uuid_text};
use crate::{Progress, rowhash};

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
    /// Only the rows named by the source's change log were read
    /// ([`incremental`]); `changes`: how many entries.
    #[serde(default)]
    pub incremental: bool,
    #[serde(default)]
    pub changes: u64,
}

impl Counts {
    /// Carries on the counters of a pass a killed run began.
    fn resume_from(&mut self, r: &Resume) {
        self.resumed = true;
        self.inserted = r.inserted;
        self.updated = r.updated;
        self.deleted = r.deleted;
    }
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

/// What a reader thread gathers a chunk in, row by row.
trait Gather: Send + 'static {
    type Chunk: Send + 'static;
    fn push(&mut self, plan: &TablePlan, row: &rusqlite::Row<'_>, path: &str) -> Result<()>;
    fn len(&self) -> usize;
    /// The chunk gathered so far; the next one starts empty.
    fn take(&mut self, last: bool) -> Self::Chunk;
}

/// Rows converted to cells (and hashed), for comparing.
struct Rows {
    rows: Vec<Row>,
    batch: usize,
    hashed: bool,
    buf: Vec<u8>,
}

impl Gather for Rows {
    type Chunk = Chunk;

    fn push(&mut self, plan: &TablePlan, row: &rusqlite::Row<'_>, path: &str) -> Result<()> {
        self.rows
            .push(plan.convert_source_row(row, &mut self.buf, self.hashed, path)?);
        Ok(())
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn take(&mut self, last: bool) -> Chunk {
        Chunk {
            rows: std::mem::replace(&mut self.rows, Vec::with_capacity(self.batch)),
            last,
        }
    }
}

/// A chunk of a first load: its rows encoded for a binary COPY.
struct Encoded {
    /// The whole COPY: header, tuples and trailer.
    copy: bytes::Bytes,
    rows: usize,
    /// The source key of the last row, for the checkpoint (none for the
    /// last chunk: the checkpoint keeps its key and is marked done).
    last_key: Option<Vec<SqlValue>>,
}

/// Rows encoded straight from the source row into COPY tuples: no values
/// kept, so a first load costs the reader one pass over each value.
struct Tuples {
    copy: bytes::BytesMut,
    rows: usize,
    batch: usize,
    last_key: Option<Vec<SqlValue>>,
    canonical: Vec<u8>,
    /// Buffers of chunks PostgreSQL has taken, given back for the next
    /// chunks: a load allocates a few buffers, not one per chunk (with
    /// glibc's malloc, freed buffers of this size stayed in the heap or
    /// not depending on timing, and peak memory varied by a third between
    /// identical runs).
    returned: Option<std::sync::mpsc::Receiver<bytes::BytesMut>>,
}

/// The binary COPY header: signature, no flags, no extension.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

impl Tuples {
    fn new(batch: usize) -> Tuples {
        let mut copy = bytes::BytesMut::new();
        copy.extend_from_slice(COPY_HEADER);
        Tuples {
            copy,
            rows: 0,
            batch,
            last_key: None,
            canonical: Vec::new(),
            returned: None,
        }
    }
}

impl Gather for Tuples {
    type Chunk = Encoded;

    fn push(&mut self, plan: &TablePlan, row: &rusqlite::Row<'_>, path: &str) -> Result<()> {
        plan.encode_copy_row(row, &mut self.copy, &mut self.canonical, path)?;
        self.rows += 1;
        if self.rows == self.batch {
            self.last_key = Some(
                plan.source_key_of(row)
                    .map_err(|e| MigrateError::source(path, e))?,
            );
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn take(&mut self, last: bool) -> Encoded {
        use bytes::BufMut;
        let mut next = Tuples::new(self.batch);
        next.canonical = std::mem::take(&mut self.canonical);
        next.returned = self.returned.take();
        if let Some(mut buf) = next.returned.as_ref().and_then(|r| r.try_recv().ok()) {
            buf.clear();
            buf.extend_from_slice(COPY_HEADER);
            next.copy = buf;
        }
        next.copy.reserve(self.copy.len());
        let mut done = std::mem::replace(self, next);
        done.copy.put_i16(-1);
        Encoded {
            copy: done.copy.freeze(),
            rows: done.rows,
            last_key: done.last_key.filter(|_| !last),
        }
    }
}

/// Streams `plan`'s source rows in chunks of `batch`, gathered by `gather`,
/// from a thread of its own.
fn spawn_reader<G: Gather>(
    path: PathBuf,
    plan: Arc<TablePlan>,
    after: Option<Vec<SqlValue>>,
    batch: usize,
    mut gather: G,
) -> mpsc::Receiver<Result<G::Chunk>> {
    // One chunk queued while the copier works on another is enough to
    // keep both busy; more only holds memory.
    let (tx, rx) = mpsc::channel(1);
    std::thread::spawn(move || {
        let shown = path.display().to_string();
        let result = (|| -> Result<()> {
            let conn = crate::schema::open_source(&path)?;
            let sql = plan.source_select(after.is_some());
            let mut stmt = conn
                .prepare(&sql)
                .map_err(|e| MigrateError::source(&shown, e))?;
            let params: Vec<SqlValue> = after.clone().unwrap_or_default();
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params.iter()))
                .map_err(|e| MigrateError::source(&shown, e))?;
            while let Some(r) = rows.next().map_err(|e| MigrateError::source(&shown, e))? {
                gather.push(&plan, r, &shown)?;
                if plan.chunkable
                    && gather.len() >= batch
                    && tx.blocking_send(Ok(gather.take(false))).is_err()
                {
                    return Ok(()); // the pass stopped
                }
            }
            let _ = tx.blocking_send(Ok(gather.take(true)));
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

/// Compares a chunk's source row hashes with its target row hashes (a
/// row's hash covers its key too, so equal hashes are equal rows).
/// Returns the indexes of the source rows the target lacks as they are
/// (missing or changed), and the target hashes no source row has (rows
/// changed or extra), both sorted.
pub fn compare_hashes(rows: &[Row], mut target: Vec<u64>) -> (Vec<usize>, Vec<u64>) {
    let mut source: Vec<(u64, usize)> = rows.iter().enumerate().map(|(i, r)| (r.hash, i)).collect();
    source.sort_unstable();
    target.sort_unstable();
    let (mut only_source, mut only_target) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < source.len() || j < target.len() {
        match (source.get(i), target.get(j)) {
            (Some(&(s, _)), Some(&t)) if s == t => {
                i += 1;
                j += 1;
            }
            (Some(&(s, idx)), Some(&t)) if s < t => {
                only_source.push(idx);
                i += 1;
            }
            (Some(&(_, idx)), None) => {
                only_source.push(idx);
                i += 1;
            }
            (_, Some(&t)) => {
                only_target.push(t);
                j += 1;
            }
            (None, None) => break,
        }
    }
    only_source.sort_unstable();
    (only_source, only_target)
}

/// Classifies a differing chunk: `candidates` (source rows the target
/// lacks as they are) whose key is among `stale` (keys of target rows no
/// source row equals) are changed, the others missing; the other stale
/// keys are extra.
pub fn classify(rows: &[Row], candidates: &[usize], stale: Vec<Vec<Cell>>) -> ChunkDiff {
    let by_key: HashMap<&[Cell], usize> = candidates
        .iter()
        .map(|&i| (rows[i].match_key.as_slice(), i))
        .collect();
    let mut d = ChunkDiff::default();
    let mut changed = std::collections::HashSet::new();
    for key in stale {
        match by_key.get(key.as_slice()) {
            Some(&i) => {
                changed.insert(i);
            }
            None => d.extra.push(key),
        }
    }
    for &i in candidates {
        if changed.contains(&i) {
            d.changed.push(i);
        } else {
            d.missing.push(i);
        }
    }
    d
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
    /// Compare with the row hashes the target keeps (run, analyze) rather
    /// than hashing its values (validate).
    pub stored_hashes: bool,
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
///
/// A table in its first load ([`TablePlan::loading`]) is not compared:
/// whatever it holds past the checkpoint is deleted (rows of a chunk and
/// its checkpoint commit together, so only other writers can have put
/// rows there), then every chunk is copied straight in.
pub async fn pass(client: &mut Object, p: Pass<'_>) -> Result<Counts> {
    let plan = p.plan.clone();
    let name = plan.name().to_owned();
    let mut counts = Counts::default();
    let mut after: Option<Vec<SqlValue>> = None;
    let straight = p.mode == Mode::Apply && plan.loading;
    let stored = p.stored_hashes && plan.stored_hash && plan.hash_kept;
    if p.mode == Mode::Apply {
        if let Some(r) = &p.resume {
            counts.resume_from(r);
            if plan.chunkable {
                after.clone_from(&r.after);
            }
        }
        prepare_staging(client, &plan).await?;
    }
    let mut lo: Option<Vec<Cell>> = match &after {
        Some(k) => Some(plan.match_key_of(k)?),
        None => None,
    };
    let fixed: Vec<String> = match &plan.uuid_key {
        Some((t, c)) => vec![t.clone(), c.clone()],
        None => Vec::new(),
    };
    if straight {
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if lo.is_some() {
            params.extend(fixed.iter().map(|s| s as &(dyn ToSql + Sync)));
        }
        for c in lo.iter().flatten() {
            params.push(c);
        }
        client
            .execute(&plan.delete_rest_sql(lo.is_some()), &params)
            .await
            .map_err(MigrateError::pg(format!(
                "clearing the unfinished first load of {name}"
            )))?;
    }
    let batch = p.batch.max(1);
    // A first load keeps no values: the reader encodes the COPY itself.
    // (UUID-mapped tables keep theirs for `migration_mappings`.)
    if straight && plan.uuid_key.is_none() && p.sampler.is_none() {
        let (give_back, returned) = std::sync::mpsc::channel();
        let mut chunks = spawn_reader(
            p.source_path.clone(),
            plan.clone(),
            after,
            batch,
            Tuples {
                returned: Some(returned),
                ..Tuples::new(batch)
            },
        );
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk?;
            counts.chunks += 1;
            counts.source_rows += chunk.rows as u64;
            if chunk.rows > 0 {
                counts.chunks_differing += 1;
                counts.missing += chunk.rows as u64;
                load(client, &plan, &chunk).await?;
                counts.inserted += chunk.rows as u64;
            }
            p.progress.rows_done(&name, chunk.rows as u64);
            // PostgreSQL has the rows: the buffer goes back to the reader.
            if let Ok(buf) = chunk.copy.try_into_mut() {
                let _ = give_back.send(buf);
            }
        }
        finish_pass(client, &name).await?;
        return Ok(counts);
    }
    let mut chunks = spawn_reader(
        p.source_path.clone(),
        plan.clone(),
        after,
        batch,
        Rows {
            rows: Vec::with_capacity(batch),
            batch,
            hashed: !straight || plan.stored_hash,
            buf: Vec::new(),
        },
    );
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
        let last_key = chunk.rows.last().map(|r| r.source_key.clone());
        // A first load compares nothing: every row of the chunk is new.
        let (diff, t_count) = if straight {
            let missing = (0..chunk.rows.len()).collect();
            (
                ChunkDiff {
                    missing,
                    ..ChunkDiff::default()
                },
                0,
            )
        } else {
            let mut params: Vec<&(dyn ToSql + Sync)> =
                fixed.iter().map(|s| s as &(dyn ToSql + Sync)).collect();
            for c in lo.iter().chain(hi.iter()).flatten() {
                params.push(c);
            }
            let list_sql = plan.hash_list_sql(lo.is_some(), hi.is_some(), stored);
            let stmt = client
                .prepare_cached(&list_sql)
                .await
                .map_err(MigrateError::pg(format!("comparing table {name}")))?;
            let row = client
                .query_one(&stmt, &params)
                .await
                .map_err(MigrateError::pg(format!("comparing table {name}")))?;
            let target: Vec<i64> = row
                .try_get(0)
                .map_err(MigrateError::pg(format!("reading row hashes of {name}")))?;
            let t_count = target.len();
            #[allow(clippy::cast_sign_loss)] // the bits, as the source side has them
            let (candidates, stale) =
                compare_hashes(&chunk.rows, target.into_iter().map(|h| h as u64).collect());
            let diff = if stale.is_empty() {
                ChunkDiff {
                    missing: candidates,
                    ..ChunkDiff::default()
                }
            } else {
                // Only the keys of the target rows that differ cross the wire.
                let rows_sql = plan.rows_with_hashes_sql(lo.is_some(), hi.is_some(), stored);
                let stmt = client
                    .prepare_cached(&rows_sql)
                    .await
                    .map_err(MigrateError::pg(format!("comparing rows of {name}")))?;
                #[allow(clippy::cast_possible_wrap)] // the bits, as PostgreSQL reads them
                let wanted: Vec<i64> = stale.iter().map(|&h| h as i64).collect();
                let mut with_hashes = params.clone();
                with_hashes.push(&wanted);
                let rows = client
                    .query(&stmt, &with_hashes)
                    .await
                    .map_err(MigrateError::pg(format!("comparing rows of {name}")))?;
                let nkey = if plan.uuid_key.is_some() {
                    1
                } else {
                    plan.key.len()
                };
                let mut keys = Vec::with_capacity(rows.len());
                for r in rows {
                    let key: Vec<Cell> = (0..nkey)
                        .map(|i| r.try_get::<_, Cell>(i))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(MigrateError::pg(format!("reading keys of {name}")))?;
                    keys.push(key);
                }
                classify(&chunk.rows, &candidates, keys)
            };
            (diff, t_count)
        };
        let empty_range = t_count == 0;
        counts.target_rows += t_count as u64;
        let equal = diff.missing.is_empty() && diff.changed.is_empty() && diff.extra.is_empty();
        if equal {
            if p.mode == Mode::Apply && !chunk.last {
                let ctx = || format!("saving the checkpoint of {name}");
                let stmt = client
                    .prepare_cached(SAVE_CHECKPOINT)
                    .await
                    .map_err(MigrateError::pg(ctx()))?;
                checkpoint_with(&***client, &stmt, &name, last_key.as_deref(), [0, 0, 0])
                    .await
                    .map_err(MigrateError::pg(ctx()))?;
            }
        } else {
            counts.chunks_differing += 1;
            counts.missing += diff.missing.len() as u64;
            counts.changed += diff.changed.len() as u64;
            counts.extra += diff.extra.len() as u64;
            if p.mode == Mode::Apply {
                apply(
                    client,
                    &plan,
                    &chunk.rows,
                    &diff,
                    empty_range,
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
        finish_pass(client, &name).await?;
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
    let tx = begin(client, plan).await?;
    let upserts = diff
        .missing
        .iter()
        .chain(diff.changed.iter())
        .map(|&i| &rows[i]);
    let writes = async {
        if !diff.extra.is_empty() {
            let ns = plan
                .uuid_key
                .as_ref()
                .and_then(|_| plan.columns[plan.key[0]].uuid_namespace.clone());
            let keys: Vec<Vec<Cell>> = diff
                .extra
                .iter()
                .map(|k| match (&ns, k.first()) {
                    (Some(ns), Some(Cell::Int(legacy))) => {
                        vec![Cell::Uuid(derive_uuid(ns, *legacy))]
                    }
                    _ => k.clone(),
                })
                .collect();
            delete_keys(&tx, plan, &keys).await?;
        }
        if empty_range {
            let sql = format!(
                "COPY {} ({}) FROM STDIN (FORMAT binary)",
                plan.qualified,
                plan.write_columns()
            );
            copy_rows(&tx, plan, &sql, upserts)
                .await
                .map_err(MigrateError::pg(ctx("copying rows into")))?;
        } else if !(diff.missing.is_empty() && diff.changed.is_empty()) {
            stage_rows(&tx, plan, upserts).await?;
            let merge = cached(&tx, &plan.merge_sql())
                .await
                .map_err(MigrateError::pg(ctx("merging rows into")))?;
            tx.execute(&merge, &[])
                .await
                .map_err(MigrateError::pg(ctx("merging rows into")))?;
        }
        record_mappings(&tx, plan, diff.missing.iter().map(|&i| &rows[i])).await
    };
    marked(&tx, plan, writes).await?;
    let counters = [diff.missing.len(), diff.changed.len(), diff.extra.len()]
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    save_checkpoint(&tx, name, last_key.filter(|_| !last), counters).await?;
    tx.commit()
        .await
        .map_err(MigrateError::pg(ctx("committing a chunk of")))?;
    Ok(())
}

/// Runs `sql` (a `COPY … FROM STDIN (FORMAT binary)`) with `copy` as its
/// whole input.
async fn send_copy(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    copy: bytes::Bytes,
) -> std::result::Result<u64, tokio_postgres::Error> {
    use futures_util::SinkExt;
    let sink = tx.copy_in(&cached(tx, sql).await?).await?;
    let mut sink = std::pin::pin!(sink);
    sink.send(copy).await?;
    sink.as_mut().finish().await
}

/// Loads one encoded chunk of a first load and moves the checkpoint,
/// atomically.
async fn load(client: &mut Object, plan: &TablePlan, chunk: &Encoded) -> Result<()> {
    let name = plan.name();
    let tx = begin(client, plan).await?;
    let sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        plan.qualified,
        plan.write_columns()
    );
    let copy = async {
        send_copy(&tx, &sql, chunk.copy.clone())
            .await
            .map_err(MigrateError::pg(format!("copying rows into table {name}")))
    };
    marked(&tx, plan, copy).await?;
    let inserted = i64::try_from(chunk.rows).unwrap_or(i64::MAX);
    save_checkpoint(&tx, name, chunk.last_key.as_deref(), [inserted, 0, 0]).await?;
    tx.commit().await.map_err(MigrateError::pg(format!(
        "committing a chunk of table {name}"
    )))?;
    Ok(())
}

/// The rows of a span, as the merge stages them.
enum Staged {
    /// Converted (a UUID-mapped table records their mappings too).
    Rows(Vec<Row>),
    /// Encoded for the staging table's COPY, as a first load encodes.
    Copy(Encoded),
}

impl Staged {
    fn len(&self) -> usize {
        match self {
            Staged::Rows(rows) => rows.len(),
            Staged::Copy(encoded) => encoded.rows,
        }
    }
}

/// The rows a span of change-log entries names, as the source holds them
/// now.
struct Changed {
    /// The last entry of the span.
    upto: i64,
    entries: usize,
    /// Rows of the named keys the source has.
    found: Staged,
    /// Named keys the source no longer has.
    gone: Vec<Vec<SqlValue>>,
}

/// Reads up to `limit` entries of the change log after `after` and the
/// source rows of their keys (each key once). A row read here is as new
/// as its entry or newer: a later change has an entry of its own, so it
/// is read again, harmlessly, after this span.
fn read_changed(
    conn: &rusqlite::Connection,
    plan: &TablePlan,
    tid: i64,
    after: i64,
    limit: usize,
    shown: &str,
) -> Result<Option<Changed>> {
    // One read transaction for the span: in autocommit each lookup would
    // take and drop the file's read lock (a third of the reading's time),
    // and the span's rows come from one snapshot.
    let snapshot = conn
        .unchecked_transaction()
        .map_err(|e| MigrateError::source(shown, e))?;
    let entries = crate::track::changes_after(conn, tid, after, limit, shown)?;
    let Some(&(upto, _)) = entries.last() else {
        return Ok(None);
    };
    let err = |e: rusqlite::Error| MigrateError::source(shown, e);
    let mut stmt = conn
        .prepare_cached(&plan.source_select_by_key())
        .map_err(err)?;
    let mut seen = std::collections::HashSet::new();
    let mut gone = Vec::new();
    let encode = plan.uuid_key.is_none();
    let mut rows_found = Rows {
        rows: Vec::new(),
        batch: 0,
        hashed: true,
        buf: Vec::new(),
    };
    let mut encoded = Tuples::new(usize::MAX);
    for (seq, text) in &entries {
        if !seen.insert(text.as_str()) {
            continue;
        }
        let key = crate::track::decode_key(text)
            .filter(|k| k.len() == plan.key.len())
            .ok_or_else(|| {
                MigrateError::source(
                    shown,
                    format!(
                        "entry {seq} of the change log of {} holds {text:?}, not a key acode wrote (`acode migrate untrack` removes the log; the next tracked run compares in full)",
                        plan.name()
                    ),
                )
            })?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(key.iter()))
            .map_err(err)?;
        match rows.next().map_err(err)? {
            Some(r) if encode => encoded.push(plan, r, shown)?,
            Some(r) => rows_found.push(plan, r, shown)?,
            None => gone.push(key),
        }
    }
    drop(stmt);
    snapshot
        .finish()
        .map_err(|e| MigrateError::source(shown, e))?;
    let found = if encode {
        Staged::Copy(encoded.take(true))
    } else {
        Staged::Rows(rows_found.take(true).rows)
    };
    Ok(Some(Changed {
        upto,
        entries: entries.len(),
        found,
        gone,
    }))
}

/// Change-log entries per span of an incremental pass, at most: small
/// enough that reading the source overlaps the target's work.
const SPAN: usize = 2_000;

/// A tracked table's change log being read after the target's cursor,
/// a span at a time, by a thread of its own (see [`read_spans`]).
pub struct Spans {
    shown: String,
    /// How many entries follow the cursor, once the reader counted them.
    counted: Option<tokio::sync::oneshot::Receiver<Result<u64>>>,
    pending: u64,
    /// Lets the reader go on past the first span (see [`Spans::go`]).
    go: Option<std::sync::mpsc::Sender<()>>,
    rx: mpsc::Receiver<Result<Option<Changed>>>,
}

impl Spans {
    /// The entries after the cursor when reading began.
    pub async fn pending(&mut self) -> Result<u64> {
        if let Some(counted) = self.counted.take() {
            self.pending = counted.await.map_err(|_| {
                MigrateError::source(&self.shown, "the change-log reader stopped")
            })??;
        }
        Ok(self.pending)
    }

    /// Lets the reader read past its first span: a table's reader reads
    /// ahead only once a connection has taken the table, so that readers
    /// of tables still waiting leave the cores to those being written.
    fn go(&mut self) {
        if let Some(go) = self.go.take() {
            let _ = go.send(());
        }
    }
}

/// Starts reading `plan`'s change log after entry `after` in spans of
/// `batch` entries (at most [`SPAN`]), each with the rows its keys name
/// now, on a thread of its own that first counts the entries. The first
/// span is a quarter of that, so that the target starts soon; the thread
/// keeps up to two spans queued ahead. A run starts the readers of all its
/// tracked tables before the target's work begins.
pub fn read_spans(
    source_path: &std::path::Path,
    plan: Arc<TablePlan>,
    tid: i64,
    after: i64,
    batch: usize,
) -> Spans {
    let shown = source_path.display().to_string();
    let (count_tx, counted) = tokio::sync::oneshot::channel();
    let (tx, rx) = mpsc::channel(2);
    let (go, gone) = std::sync::mpsc::channel();
    let (path, reader_shown) = (source_path.to_path_buf(), shown.clone());
    let span = batch.clamp(1, SPAN);
    std::thread::spawn(move || {
        let shown = reader_shown;
        let opened = crate::schema::open_source(&path).and_then(|conn| {
            let n = crate::track::pending(&conn, tid, after, &shown)?;
            Ok((conn, n))
        });
        let conn = match opened {
            Ok((conn, n)) => {
                if count_tx.send(Ok(n)).is_err() || n == 0 {
                    return;
                }
                conn
            }
            Err(e) => {
                let _ = count_tx.send(Err(e));
                return;
            }
        };
        let mut after = after;
        let mut limit = (span / 4).max(1);
        loop {
            let read = read_changed(&conn, &plan, tid, after, limit, &shown);
            let more = matches!(&read, Ok(Some(_)));
            if let Ok(Some(changed)) = &read {
                after = changed.upto;
            }
            if tx.blocking_send(read).is_err() || !more {
                return;
            }
            if limit < span {
                // Given up when the run drops its spans: then the next
                // send fails.
                let _ = gone.recv();
            }
            limit = span;
        }
    });
    Spans {
        shown,
        counted: Some(counted),
        pending: 0,
        go: Some(go),
        rx,
    }
}

/// A tracked table's pass (see [`crate::track`]) over the spans `spans`
/// reads: for each, in one transaction with the cursor's move, deletes
/// the keys the source no longer has and merges the rows (only those
/// that differ are written). Returns the counts and where the cursor
/// stands, durably (the source's log up to there may be pruned).
pub async fn incremental(
    client: &mut Object,
    p: Pass<'_>,
    cursor: CursorKey<'_>,
    mut spans: Spans,
    mut seq: i64,
) -> Result<(Counts, i64)> {
    let plan = p.plan.clone();
    let name = plan.name().to_owned();
    let mut counts = Counts {
        incremental: true,
        ..Counts::default()
    };
    if let Some(r) = &p.resume {
        counts.resume_from(r);
    }
    spans.go();
    let pending = spans.pending().await?;
    p.progress.table_started(&name, pending);
    if pending == 0 {
        finish_pass(client, &name).await?;
        return Ok((counts, seq));
    }
    prepare_staging(client, &plan).await?;
    while let Some(read) = spans.rx.recv().await {
        let Some(changed) = read? else { break };
        counts.chunks += 1;
        counts.changes += changed.entries as u64;
        counts.source_rows += changed.found.len() as u64;
        let gone: Vec<Vec<Cell>> = changed
            .gone
            .iter()
            .map(|k| plan.target_key_of(k))
            .collect::<Result<_>>()?;
        let [inserted, updated, deleted] =
            apply_changes(client, &plan, &changed.found, &gone, (cursor, changed.upto)).await?;
        if inserted + updated + deleted > 0 {
            counts.chunks_differing += 1;
        }
        counts.missing += inserted;
        counts.changed += updated;
        counts.extra += deleted;
        counts.inserted += inserted;
        counts.updated += updated;
        counts.deleted += deleted;
        seq = changed.upto;
        p.progress.rows_done(&name, changed.entries as u64);
    }
    finish_pass_durably(client, &name).await?;
    Ok((counts, seq))
}

/// Applies a span of an incremental pass and moves the cursor, in one
/// transaction: deletes the target rows of the keys `gone` (target key
/// values), and merges `rows`, which writes only those that differ.
/// Returns how many rows were inserted, updated and deleted.
async fn apply_changes(
    client: &mut Object,
    plan: &TablePlan,
    staged: &Staged,
    gone: &[Vec<Cell>],
    cursor: (CursorKey<'_>, i64),
) -> Result<[u64; 3]> {
    let name = plan.name();
    let tx = begin(client, plan).await?;
    let writes = async {
        let deleted = if gone.is_empty() {
            0
        } else {
            delete_keys(&tx, plan, gone).await?
        };
        let (mut inserted, mut updated) = (0, 0);
        if staged.len() == 0 {
            return Ok([inserted, updated, deleted]);
        }
        match staged {
            Staged::Rows(rows) => stage_rows(&tx, plan, rows.iter()).await?,
            Staged::Copy(encoded) => {
                send_copy(&tx, &plan.stage_copy_sql(), encoded.copy.clone())
                    .await
                    .map_err(MigrateError::pg(format!("staging rows of table {name}")))?;
            }
        }
        // A row the merge leaves alone (equal) is not returned; one it
        // inserted has no deleting transaction (xmax 0).
        let ctx = || format!("merging rows into table {name}");
        let merge = cached(&tx, &format!("{} RETURNING (xmax = 0)", plan.merge_sql()))
            .await
            .map_err(MigrateError::pg(ctx()))?;
        for r in tx
            .query(&merge, &[])
            .await
            .map_err(MigrateError::pg(ctx()))?
        {
            if r.try_get::<_, bool>(0).unwrap_or(false) {
                inserted += 1;
            } else {
                updated += 1;
            }
        }
        if let Staged::Rows(rows) = staged {
            record_mappings(&tx, plan, rows.iter()).await?;
        }
        Ok([inserted, updated, deleted])
    };
    let [inserted, updated, deleted] = marked(&tx, plan, writes).await?;
    let counters = [inserted, updated, deleted].map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    // Both sent at once; the commit follows their answers.
    let (checkpoint, cursor) = tokio::join!(
        save_checkpoint(&tx, name, None, counters),
        save_cursor(&tx, cursor.0, cursor.1)
    );
    checkpoint?;
    cursor?;
    tx.commit().await.map_err(MigrateError::pg(format!(
        "committing changes of table {name}"
    )))?;
    Ok([inserted, updated, deleted])
}

/// A transaction writing `plan`'s table. Its writes are marked as
/// acode's own by [`marked`], sent together with the transaction's first
/// statement.
async fn begin<'c>(
    client: &'c mut Object,
    plan: &TablePlan,
) -> Result<deadpool_postgres::Transaction<'c>> {
    client.transaction().await.map_err(MigrateError::pg(format!(
        "starting a transaction on table {}",
        plan.name()
    )))
}

/// Runs `first` (the transaction's first statements) after marking the
/// transaction's writes as acode's own (the row-hash triggers leave the
/// hash acode sends alone). The mark is sent first and not waited for:
/// PostgreSQL runs a connection's statements in the order they arrive.
async fn marked<T>(
    tx: &deadpool_postgres::Transaction<'_>,
    plan: &TablePlan,
    first: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    if !plan.stored_hash {
        return first.await;
    }
    let mark = async {
        tx.batch_execute(rowhash::MARK_OWN_WRITES)
            .await
            .map_err(MigrateError::pg(format!(
                "starting a transaction on table {}",
                plan.name()
            )))
    };
    let (marked, out) = tokio::join!(mark, first);
    marked?;
    out
}

/// Deletes the target rows with these keys (target key values) through a
/// staged key list; returns how many there were.
async fn delete_keys(
    tx: &deadpool_postgres::Transaction<'_>,
    plan: &TablePlan,
    keys: &[Vec<Cell>],
) -> Result<u64> {
    let ctx = |what: &str| format!("{what} table {}", plan.name());
    let key_types: Vec<Type> = plan
        .key
        .iter()
        .map(|&i| plan.columns[i].kind.pg_type())
        .collect();
    copy_in(
        tx,
        &format!(
            "COPY pg_temp.acode_stage_del ({}) FROM STDIN (FORMAT binary)",
            plan.quoted_key()
        ),
        &key_types,
        keys.iter().map(|k| (k.as_slice(), None)),
    )
    .await
    .map_err(MigrateError::pg(ctx("staging deletes of")))?;
    let delete = cached(tx, &plan.delete_sql())
        .await
        .map_err(MigrateError::pg(ctx("deleting rows of")))?;
    tx.execute(&delete, &[])
        .await
        .map_err(MigrateError::pg(ctx("deleting rows of")))
}

/// Binary COPY of rows (with their hashes when the table keeps them) by
/// `sql` (a `COPY … FROM STDIN`).
async fn copy_rows<'r>(
    tx: &deadpool_postgres::Transaction<'_>,
    plan: &TablePlan,
    sql: &str,
    rows: impl Iterator<Item = &'r Row>,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let mut types: Vec<Type> = plan.columns.iter().map(|c| c.kind.pg_type()).collect();
    if plan.stored_hash {
        types.push(Type::INT8);
    }
    #[allow(clippy::cast_possible_wrap)] // the bits, as PostgreSQL keeps them
    let cells = rows.map(|r| {
        (
            r.cells.as_slice(),
            plan.stored_hash.then_some(r.hash as i64),
        )
    });
    copy_in(tx, sql, &types, cells).await
}

/// Loads rows into the staging table the merge reads.
async fn stage_rows<'r>(
    tx: &deadpool_postgres::Transaction<'_>,
    plan: &TablePlan,
    rows: impl Iterator<Item = &'r Row>,
) -> Result<()> {
    copy_rows(tx, plan, &plan.stage_copy_sql(), rows)
        .await
        .map_err(MigrateError::pg(format!(
            "staging rows of table {}",
            plan.name()
        )))?;
    Ok(())
}

/// Keeps the legacy key ↔ UUID pairs of these rows of a UUID-mapped
/// table in `migration_mappings` (pairs already there stay).
async fn record_mappings<'r>(
    tx: &deadpool_postgres::Transaction<'_>,
    plan: &TablePlan,
    rows: impl Iterator<Item = &'r Row>,
) -> Result<()> {
    let Some((t, c)) = &plan.uuid_key else {
        return Ok(());
    };
    let (legacy, uuids): (Vec<i64>, Vec<String>) = rows
        .filter_map(|r| match (r.match_key.first(), r.cells.get(plan.key[0])) {
            (Some(Cell::Int(l)), Some(Cell::Uuid(u))) => Some((*l, uuid_text(u))),
            _ => None,
        })
        .unzip();
    if legacy.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO acode_migrate.migration_mappings (table_name, column_name, legacy_key, uuid)
         SELECT $1, $2, l, u::uuid FROM unnest($3::bigint[], $4::text[]) AS x(l, u)
         ON CONFLICT (table_name, column_name, legacy_key) DO NOTHING",
        &[t, c, &legacy, &uuids],
    )
    .await
    .map_err(MigrateError::pg(format!(
        "recording UUID mappings of table {}",
        plan.name()
    )))?;
    Ok(())
}

/// (Re)creates the session's staging tables for `plan`'s table.
async fn prepare_staging(client: &Object, plan: &TablePlan) -> Result<()> {
    client
        .batch_execute(&plan.stage_sql())
        .await
        .map_err(MigrateError::pg(format!(
            "preparing staging tables for {}",
            plan.name()
        )))
}

/// Marks a table's pass done and drops the staging tables.
async fn finish_pass(client: &Object, name: &str) -> Result<()> {
    client
        .execute(FINISH_PASS, &[&name])
        .await
        .map_err(MigrateError::pg(format!(
            "finishing the checkpoint of {name}"
        )))?;
    drop_staging(client).await
}

/// Marks a table's checkpoint done.
const FINISH_PASS: &str = "UPDATE acode_migrate.migration_checkpoints SET status = 'done', updated_at = now() WHERE table_name = $1";

/// [`finish_pass`], committed durably: PostgreSQL flushes its log in
/// order, so every chunk this or any connection committed before is on
/// disk too when it returns (the source's change log may then be pruned).
/// The three statements go out at once; the last puts back the data
/// session's `synchronous_commit = off` (see `ops::data_session`).
async fn finish_pass_durably(client: &Object, name: &str) -> Result<()> {
    let params: [(&(dyn ToSql + Sync), Type); 1] = [(&name, Type::TEXT)];
    let (durable, finished, restored) = tokio::join!(
        client.batch_execute("SET synchronous_commit = on"),
        client.execute_typed(FINISH_PASS, &params),
        client.batch_execute(
            "SET synchronous_commit = off; DROP TABLE IF EXISTS pg_temp.acode_stage; DROP TABLE IF EXISTS pg_temp.acode_stage_del"
        )
    );
    let ctx = || format!("finishing the checkpoint of {name}");
    durable.map_err(MigrateError::pg(ctx()))?;
    finished.map_err(MigrateError::pg(ctx()))?;
    restored.map_err(MigrateError::pg(ctx()))?;
    Ok(())
}

/// Drops the session's staging tables.
async fn drop_staging(client: &Object) -> Result<()> {
    client
        .batch_execute("DROP TABLE IF EXISTS pg_temp.acode_stage; DROP TABLE IF EXISTS pg_temp.acode_stage_del")
        .await
        .map_err(MigrateError::pg("dropping staging tables"))
}

/// Binary COPY of rows of cells, each followed by its row hash when one
/// is given.
async fn copy_in<'r>(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    types: &[Type],
    rows: impl Iterator<Item = (&'r [Cell], Option<i64>)>,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in(&cached(tx, sql).await?).await?;
    let writer = BinaryCopyInWriter::new(sink, types);
    let mut writer = std::pin::pin!(writer);
    for (row, hash) in rows {
        let mut refs: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(types.len());
        refs.extend(row.iter().map(|c| c as &(dyn ToSql + Sync)));
        if let Some(h) = &hash {
            refs.push(h);
        }
        writer.as_mut().write(&refs).await?;
    }
    writer.finish().await
}

/// Moves a table's checkpoint (in the transaction of the chunk it ends).
const SAVE_CHECKPOINT: &str = "UPDATE acode_migrate.migration_checkpoints SET last_key = COALESCE($2, last_key), chunks_done = chunks_done + 1,
       rows_inserted = rows_inserted + $3, rows_updated = rows_updated + $4, rows_deleted = rows_deleted + $5, updated_at = now()
     WHERE table_name = $1";

async fn save_checkpoint(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    last_key: Option<&[SqlValue]>,
    counters: [i64; 3],
) -> Result<()> {
    let ctx = || format!("saving the checkpoint of {table}");
    let stmt = cached(tx, SAVE_CHECKPOINT)
        .await
        .map_err(MigrateError::pg(ctx()))?;
    checkpoint_with(&**tx, &stmt, table, last_key, counters)
        .await
        .map_err(MigrateError::pg(ctx()))
}

async fn checkpoint_with<C: tokio_postgres::GenericClient>(
    client: &C,
    stmt: &tokio_postgres::Statement,
    table: &str,
    last_key: Option<&[SqlValue]>,
    [inserted, updated, deleted]: [i64; 3],
) -> std::result::Result<(), tokio_postgres::Error> {
    let key = last_key.map(|k| serde_json::Value::Array(k.iter().map(SqlValue::to_json).collect()));
    client
        .execute(stmt, &[&table, &key, &inserted, &updated, &deleted])
        .await?;
    Ok(())
}

/// `sql` prepared once per connection (deadpool keeps the statements of
/// each): a chunk's statements then cost one round trip each, not two.
pub(crate) async fn cached(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
) -> std::result::Result<tokio_postgres::Statement, tokio_postgres::Error> {
    tx.prepare_cached(sql).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan for `table` of an in-memory source, measured as a run would.
    fn plan_of(conn: &rusqlite::Connection, table: &str) -> TablePlan {
        let schema = crate::schema::read_schema(conn, "memory").expect("schema");
        let table = schema.table(table).expect("table");
        let measured = crate::stats::measure(conn, table, "memory", None).expect("measured");
        let mut plan = crate::plan::build(
            table,
            &measured.columns,
            None,
            &crate::plan::UuidMaps::new(),
            "public",
            false,
        );
        plan.stored_hash = true;
        plan
    }

    /// The first-load encoder writes, value for value, what converting a
    /// row to cells and sending them through `ToSql` writes, and the same
    /// row hash; converting straight from SQLite's row gives the same
    /// cells, keys and hash as converting owned values.
    #[test]
    fn copy_tuples_match_converted_rows() {
        let conn = rusqlite::Connection::open_in_memory().expect("memory");
        conn.execute_batch(
            "CREATE TABLE \"odd \"\"t\"\"\" (id INTEGER PRIMARY KEY, n INTEGER, r REAL, t TEXT,
                                          b BLOB, flag BOOLEAN, mixed TEXT, f REAL);
             INSERT INTO \"odd \"\"t\"\"\" VALUES
               (1, 9223372036854775807, 1e308, 'héllo ✓', x'00ff', 1, 42, 3),
               (2, -9223372036854775808, -0.0, '', x'', 0, 1.5, 2.5),
               (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
               (4, 0, 5e-324, 'x', randomblob(3000), 1, 'text', -7);",
        )
        .expect("source");
        let plan = plan_of(&conn, "odd \"t\"");
        let types: Vec<Type> = plan
            .columns
            .iter()
            .map(|c| c.kind.pg_type())
            .chain([Type::INT8])
            .collect();
        let mut stmt = conn.prepare(&plan.source_select(false)).expect("select");
        let mut rows = stmt.query([]).expect("rows");
        let mut n = 0;
        while let Some(r) = rows.next().expect("row") {
            let mut fast = bytes::BytesMut::new();
            plan.encode_copy_row(r, &mut fast, &mut Vec::new(), "memory")
                .expect("encoded");
            let values = (0..r.as_ref().column_count())
                .map(|i| SqlValue::from_ref(r.get_ref(i).expect("value")))
                .collect();
            let row = plan
                .convert_row_hashed(values, &mut Vec::new(), true)
                .expect("converted");
            let direct = plan
                .convert_source_row(r, &mut Vec::new(), true, "memory")
                .expect("converted directly");
            assert_eq!(
                (
                    &direct.cells,
                    &direct.match_key,
                    &direct.source_key,
                    direct.hash
                ),
                (&row.cells, &row.match_key, &row.source_key, row.hash)
            );
            let mut slow = bytes::BytesMut::new();
            slow.extend_from_slice(&i16::try_from(types.len()).expect("width").to_be_bytes());
            #[allow(clippy::cast_possible_wrap)] // the bits, as sent
            let hash = row.hash as i64;
            let fields = row
                .cells
                .iter()
                .map(|c| c as &(dyn ToSql + Sync))
                .chain([&hash as &(dyn ToSql + Sync)]);
            for (field, ty) in fields.zip(&types) {
                let at = slow.len();
                slow.extend_from_slice(&[0; 4]);
                let len = match field.to_sql_checked(ty, &mut slow).expect("to_sql") {
                    tokio_postgres::types::IsNull::Yes => -1,
                    tokio_postgres::types::IsNull::No => {
                        i32::try_from(slow.len() - at - 4).expect("length")
                    }
                };
                slow[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
            assert_eq!(fast, slow, "row {n}");
            n += 1;
        }
        assert_eq!(n, 4);
    }

    /// A chunk's buffer, given back once PostgreSQL has the rows, carries
    /// a later chunk: a load allocates a few buffers, not one per chunk.
    #[test]
    fn a_given_back_buffer_carries_the_next_chunk() {
        let (give_back, returned) = std::sync::mpsc::channel();
        let mut tuples = Tuples {
            returned: Some(returned),
            ..Tuples::new(10)
        };
        let first = tuples.take(false);
        assert_eq!(&first.copy[..COPY_HEADER.len()], COPY_HEADER);
        // Sent and dropped by the copy: the chunk's bytes are its own again.
        let buf = first.copy.try_into_mut().expect("the only holder");
        let at = buf.as_ptr();
        give_back.send(buf).unwrap();
        let second = tuples.take(false);
        // An empty chunk: the header and the trailer (-1).
        assert_eq!(second.copy.len(), COPY_HEADER.len() + 2);
        assert_eq!(tuples.copy.as_ptr(), at, "the given-back buffer is reused");
        assert_eq!(&tuples.copy[..], COPY_HEADER, "and starts afresh");
        // Without a buffer given back, a new one is made.
        let third = tuples.take(true);
        assert_ne!(tuples.copy.as_ptr(), at);
        assert_eq!(third.rows, 0);
    }

    /// A value that no longer fits its column's type stops the first load
    /// with the same error as the converting path, naming the row's key.
    #[test]
    fn a_misfit_value_stops_the_encoder_with_its_key() {
        let conn = rusqlite::Connection::open_in_memory().expect("memory");
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER); INSERT INTO t VALUES (1, 5);",
        )
        .expect("source");
        let plan = plan_of(&conn, "t");
        conn.execute_batch("INSERT INTO t VALUES (7, 'seven')")
            .expect("misfit");
        let mut stmt = conn.prepare(&plan.source_select(false)).expect("select");
        let mut rows = stmt.query([]).expect("rows");
        let mut out = bytes::BytesMut::new();
        let first = rows.next().expect("row").expect("first row");
        plan.encode_copy_row(first, &mut out, &mut Vec::new(), "memory")
            .expect("the fitting row");
        let second = rows.next().expect("row").expect("second row");
        let err = plan
            .encode_copy_row(second, &mut out, &mut Vec::new(), "memory")
            .expect_err("refused");
        match err {
            MigrateError::ValueMisfit {
                table, column, key, ..
            } => assert_eq!(
                (table.as_str(), column.as_str(), key.as_str()),
                ("t", "n", "7")
            ),
            other => panic!("not a misfit: {other}"),
        }
    }

    fn row(k: i64, hash: u64) -> Row {
        Row {
            source_key: vec![SqlValue::Int(k)],
            match_key: vec![Cell::Int(k)],
            cells: vec![],
            hash,
        }
    }

    #[test]
    fn hashes_find_missing_changed_and_extra() {
        // Source rows 1, 2, 3; the target has 2 changed, 3 equal, 4 extra.
        let rows = vec![row(1, 10), row(2, 20), row(3, 30)];
        let (candidates, stale) = compare_hashes(&rows, vec![40, 30, 21]);
        assert_eq!(candidates, vec![0, 1]);
        assert_eq!(stale, vec![21, 40]);
        let d = classify(
            &rows,
            &candidates,
            vec![vec![Cell::Int(2)], vec![Cell::Int(4)]],
        );
        assert_eq!(d.missing, vec![0]);
        assert_eq!(d.changed, vec![1]);
        assert_eq!(d.extra, vec![vec![Cell::Int(4)]]);
        let (candidates, stale) = compare_hashes(&rows, vec![30, 10, 20]);
        assert!(candidates.is_empty() && stale.is_empty());
    }
}

//! The operations: analyze, run, validate, check-record and checkpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Object;
use rusqlite::Connection;
use serde::Serialize;

use crate::engine::{self, Counts, Mode, Pass, Sampler};
use crate::error::{MigrateError, Result};
use crate::ident::quote;
use crate::plan::{self, TablePlan, UuidMaps, key_text};
use crate::report::*;
use crate::schema::{self, Schema};
use crate::target::{self, Target};
use crate::value::{Cell, SqlValue};
use crate::{Progress, checkpoint, control, rowhash, stats, track};

/// Rows per chunk unless told otherwise.
pub const DEFAULT_BATCH: usize = 10_000;
/// Rows compared value by value per table by validate.
pub const DEFAULT_SAMPLE: usize = 20;

/// What to migrate and how.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Options {
    /// Source tables to work on; empty: all.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Rows per chunk.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// `TABLE.COL` legacy integer keys to map to UUIDs.
    #[serde(default)]
    pub uuid_maps: Vec<String>,
    /// Rows per table that validate compares value by value.
    #[serde(default = "default_sample")]
    pub sample: usize,
    /// Run: keep a change log in the source (triggers, see
    /// [`crate::track`]) and read only the rows it names once the target
    /// holds everything before it.
    #[serde(default)]
    pub track_changes: bool,
}

fn default_batch() -> usize {
    DEFAULT_BATCH
}

fn default_sample() -> usize {
    DEFAULT_SAMPLE
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tables: Vec::new(),
            batch_size: DEFAULT_BATCH,
            uuid_maps: Vec::new(),
            sample: DEFAULT_SAMPLE,
            track_changes: false,
        }
    }
}

/// A source file and a target database.
#[derive(Clone)]
pub struct Migrator {
    source: PathBuf,
    /// The source as recorded in control tables (its absolute path).
    source_id: String,
    target: Target,
}

/// Removes the change log and its triggers from a source (see
/// [`crate::track`]); returns how many tables were tracked. A target's
/// cursor into the removed log is never used again: tracking put back in
/// place starts a new generation.
pub fn untrack(source: &str) -> Result<usize> {
    track::remove(&parse_source(source)?)
}

/// `sqlite:PATH` (or a plain path) to the path.
pub fn parse_source(spec: &str) -> Result<PathBuf> {
    let path = spec
        .strip_prefix("sqlite://")
        .or_else(|| spec.strip_prefix("sqlite:"))
        .unwrap_or(spec);
    if path.is_empty() {
        return Err(MigrateError::invalid("source", "expected sqlite:PATH"));
    }
    Ok(PathBuf::from(path))
}

struct Prepared {
    schema: Schema,
    plans: Vec<TablePlan>,
    client: Object,
    conn: Connection,
    notes: Vec<String>,
}

impl Migrator {
    /// `source`: `sqlite:PATH`; `target`: `postgres://…`. Nothing is
    /// opened yet.
    pub fn new(source: &str, target: &str) -> Result<Migrator> {
        let source = parse_source(source)?;
        let source_id = std::path::absolute(&source)
            .unwrap_or_else(|_| source.clone())
            .display()
            .to_string();
        Ok(Migrator {
            source,
            source_id,
            target: Target::new(target, "public")?,
        })
    }

    /// A handle for what needs only the target (checkpoints).
    pub fn target_only(target: &str) -> Result<Migrator> {
        Ok(Migrator {
            source: PathBuf::new(),
            source_id: String::new(),
            target: Target::new(target, "public")?,
        })
    }

    /// Tables go to this schema of the target instead of `public`.
    pub fn with_schema(mut self, schema: &str) -> Migrator {
        self.target.schema = schema.to_owned();
        self
    }

    pub fn source_path(&self) -> &Path {
        &self.source
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn shown(&self) -> String {
        self.source.display().to_string()
    }

    /// A connection with the control tables in place.
    pub(crate) async fn control_client(&self) -> Result<Object> {
        let mut client = self.target.client().await?;
        control::ensure(&mut client).await?;
        Ok(client)
    }

    /// Reads the source schema and the target tables and plans each
    /// table; `running`: for run (records UUID maps, puts change tracking
    /// in place when asked).
    async fn prepare(&self, opts: &Options, running: bool, full_stats: bool) -> Result<Prepared> {
        let shown = self.shown();
        let conn = schema::open_source(&self.source)?;
        let schema = schema::read_schema(&conn, &shown)?;

        let mut selected: Vec<String> = Vec::new();
        for name in &opts.tables {
            let t = schema.table(name).ok_or_else(|| {
                MigrateError::invalid(
                    "table",
                    format!(
                        "no table {name:?} in the source (views and virtual tables are not copied)"
                    ),
                )
            })?;
            selected.push(t.name.clone());
        }
        let client = self.control_client().await?;

        let mut maps = UuidMaps::new();
        let mut declared = Vec::new();
        for spec in &opts.uuid_maps {
            let (t, c) = resolve_uuid_map(&schema, spec)?;
            declared.push((t.clone(), c.clone()));
            maps.insert((t.clone(), c.clone()), format!("{t}.{c}"));
        }
        for r in client
            .query_typed(
                "SELECT table_name, column_name FROM acode_migrate.uuid_maps",
                &[],
            )
            .await
            .map_err(MigrateError::pg("reading UUID maps"))?
        {
            let (t, c): (String, String) = (r.get(0), r.get(1));
            if schema
                .table(&t)
                .is_some_and(|tb| tb.name == t && tb.column(&c).is_some())
            {
                maps.insert((t.clone(), c.clone()), format!("{t}.{c}"));
            }
        }
        if running {
            for (t, c) in &declared {
                client
                    .execute(
                        "INSERT INTO acode_migrate.uuid_maps (table_name, column_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        &[t, c],
                    )
                    .await
                    .map_err(MigrateError::pg("recording UUID maps"))?;
            }
        }
        let mut notes = Vec::new();
        let tracked = if running && opts.track_changes {
            self.tracking(&client, &schema, &selected, &mut notes)
                .await?
        } else {
            BTreeMap::new()
        };

        // What each selected table needs measured: all its columns, or for
        // a table acode created (types already fixed) only its keys, or
        // nothing when its changes are read from the change log.
        let tables: Vec<&schema::Table> = schema
            .tables
            .iter()
            .filter(|t| selected.is_empty() || selected.contains(&t.name))
            .collect();
        // The target's catalog for every table at once: the queries are
        // pipelined on the one connection.
        let existing_all = futures_util::future::join_all(
            tables
                .iter()
                .map(|t| target::existing(&client, &self.target.schema, &t.name)),
        )
        .await;
        let mut wanted = Vec::new();
        for (table, existing) in tables.into_iter().zip(existing_all) {
            let existing = existing?;
            // A table acode created has its types already: a scan of the
            // key columns is enough (values that no longer fit are refused
            // one by one while copying). Analyze always measures all.
            let trusted = !full_stats && existing.as_ref().is_some_and(|e| e.created_by_acode);
            let mut tracking = tracked.get(&table.name).cloned();
            if let Some(track::Tracking::Incremental {
                tid, generation, ..
            }) = &tracking
                && !existing
                    .as_ref()
                    .is_some_and(|e| e.created_by_acode && !e.loading)
            {
                tracking = Some(track::Tracking::Establish {
                    tid: *tid,
                    generation: generation.clone(),
                });
            }
            let incremental = matches!(tracking, Some(track::Tracking::Incremental { .. }));
            let keys: Vec<String> = table
                .primary_key
                .iter()
                .cloned()
                .chain(
                    maps.keys()
                        .filter(|(t, _)| t == &table.name)
                        .map(|(_, c)| c.clone()),
                )
                .collect();
            let only = if incremental {
                Some(Vec::new())
            } else {
                trusted.then_some(keys)
            };
            wanted.push((table, existing, trusted, only, tracking));
        }

        let measured = self.measure_all(
            &wanted
                .iter()
                .map(|(t, _, _, only, _)| (*t, only.as_deref()))
                .collect::<Vec<_>>(),
        )?;

        let mut plans = Vec::new();
        for ((table, existing, trusted, _, tracking), measured) in wanted.into_iter().zip(measured)
        {
            let mut plan = plan::build(
                table,
                &measured.columns,
                existing.as_ref(),
                &maps,
                &self.target.schema,
                trusted,
            );
            plan.counted_rows = measured.rows;
            plan.tracking = tracking;
            plans.push(plan);
        }
        Ok(Prepared {
            schema,
            plans,
            client,
            conn,
            notes,
        })
    }

    /// Puts change tracking in place in the source for the selected tables
    /// that can have it and decides, with the target's cursors, how each is
    /// passed (see [`crate::track`]). A source that cannot be written gets
    /// a note and full comparisons.
    async fn tracking(
        &self,
        client: &Object,
        schema: &Schema,
        selected: &[String],
        notes: &mut Vec<String>,
    ) -> Result<BTreeMap<String, track::Tracking>> {
        let tables: Vec<&schema::Table> = schema
            .tables
            .iter()
            .filter(|t| selected.is_empty() || selected.contains(&t.name))
            .collect();
        let path = self.source.clone();
        let owned: Vec<schema::Table> = tables.iter().map(|t| (*t).clone()).collect();
        let ensured = tokio::task::spawn_blocking(move || {
            let refs: Vec<&schema::Table> = owned.iter().collect();
            let tracked = track::ensure(&path, &refs)?;
            let conn = schema::open_source(&path)?;
            let high = track::high_water(&conn, &path.display().to_string())?;
            Ok::<_, MigrateError>((tracked, high))
        })
        .await
        .map_err(|e| MigrateError::source(&self.shown(), e))?;
        let (tracked, high) = match ensured {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!(
                    "change tracking could not be put in place ({e}): every table is compared in full"
                ));
                return Ok(BTreeMap::new());
            }
        };
        let untracked: Vec<&str> = tables
            .iter()
            .filter(|t| !track::eligible(t))
            .map(|t| t.name.as_str())
            .collect();
        if !untracked.is_empty() {
            notes.push(format!(
                "changes of tables keyed by their rowid are not tracked (VACUUM may renumber rowids): compared in full: {}",
                untracked.join(", ")
            ));
        }
        let cursors =
            checkpoint::read_cursors(client, &self.source_id, &self.target.schema).await?;
        Ok(tracked
            .into_iter()
            .map(|(name, t)| {
                let usable = cursors.get(&name).filter(|c| {
                    c.ready && c.generation == t.generation && c.seq >= t.pruned_to && c.seq <= high
                });
                let tracking = match usable {
                    Some(c) => track::Tracking::Incremental {
                        tid: t.tid,
                        generation: t.generation,
                        seq: c.seq,
                    },
                    None => track::Tracking::Establish {
                        tid: t.tid,
                        generation: t.generation,
                    },
                };
                (name, tracking)
            })
            .collect())
    }

    /// Copies the tables `work` has left, one at a time, on `client`: the
    /// pass from the table's checkpoint, then its key and indexes when
    /// this run loaded it first. Stops at the first error of any copier.
    async fn copy_tables(&self, client: &mut Object, work: &Copying<'_>) -> Result<()> {
        use std::sync::atomic::Ordering;
        loop {
            if work.failed.load(Ordering::SeqCst) {
                return Ok(());
            }
            let next = work.queue.lock().ok().and_then(|mut q| q.pop_front());
            let Some(i) = next else {
                return Ok(());
            };
            let copied = self.copy_table(client, work, i).await;
            match copied {
                Ok(run) => {
                    if let Ok(mut done) = work.done.lock() {
                        done[i] = Some(run);
                    }
                }
                Err(e) => {
                    work.failed.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
        }
    }

    async fn copy_table(
        &self,
        client: &mut Object,
        work: &Copying<'_>,
        i: usize,
    ) -> Result<TableRun> {
        let plan = Arc::new(work.plans[i].clone());
        let cursor = checkpoint::CursorKey {
            source: &self.source_id,
            schema: &self.target.schema,
            table: plan.name(),
        };
        let start =
            checkpoint::start_table(client, work.run_id, &self.source_id, plan.name()).await?;
        let start = match (start, &plan.tracking) {
            // A tracked table the run this one continues finished is read
            // from its cursor again: what changed since costs little.
            (checkpoint::Start::Done(c), Some(track::Tracking::Incremental { .. })) => {
                checkpoint::Start::Go(Some(engine::Resume {
                    after: None,
                    inserted: c.inserted,
                    updated: c.updated,
                    deleted: c.deleted,
                    chunks: c.chunks,
                }))
            }
            (start, _) => start,
        };
        let counts = match (start, &plan.tracking) {
            (checkpoint::Start::Done(counts), tracking) => {
                // Done in the run this one continues: a full pass that
                // began a cursor may have ended just before marking it.
                if let Some(t) = tracking {
                    checkpoint::finish_cursor(client, cursor, t.generation()).await?;
                }
                counts
            }
            (
                checkpoint::Start::Go(resume),
                Some(track::Tracking::Incremental {
                    tid, seq: before, ..
                }),
            ) => {
                let started = work.spans.lock().ok().and_then(|mut s| s[i].take());
                let spans = match started {
                    Some(spans) => spans,
                    None => engine::read_spans(
                        &self.source,
                        plan.clone(),
                        *tid,
                        *before,
                        work.opts.batch_size.max(1),
                    ),
                };
                let (counts, seq) = engine::incremental(
                    client,
                    self.pass(
                        plan.clone(),
                        work.opts,
                        Mode::Apply,
                        work.progress,
                        None,
                        resume,
                    ),
                    cursor,
                    spans,
                    *before,
                )
                .await?;
                work.progress.table_finished(plan.name());
                // The target holds (durably: the pass ended with a commit
                // that waited for the disk) every change up to the cursor:
                // the source's log need not keep them. Pruned meanwhile.
                if seq > *before {
                    let (path, done) = (self.source.clone(), [(*tid, seq)]);
                    let prune = tokio::task::spawn_blocking(move || track::prune(&path, &done));
                    if let Ok(mut prunes) = work.prunes.lock() {
                        prunes.push(prune);
                    }
                }
                counts
            }
            (checkpoint::Start::Go(resume), tracking) => {
                // A full pass that establishes a cursor notes where the
                // change log stands before it reads its first row.
                if let Some(t) = tracking
                    && resume.is_none()
                {
                    let high = match work.conn.lock() {
                        Ok(conn) => track::high_water(&conn, &self.shown())?,
                        Err(_) => 0,
                    };
                    checkpoint::begin_cursor(client, cursor, t.generation(), high).await?;
                }
                let counts = {
                    // For the progress bar: the measuring scan's count, or a
                    // count of its own.
                    let rows = match (plan.counted_rows, work.conn.lock()) {
                        (Some(n), _) => n,
                        (None, Ok(conn)) => schema::count_rows(&conn, plan.name(), &self.shown())?,
                        (None, Err(_)) => 0,
                    };
                    work.progress.table_started(plan.name(), rows);
                    let counts = engine::pass(
                        client,
                        self.pass(
                            plan.clone(),
                            work.opts,
                            Mode::Apply,
                            work.progress,
                            None,
                            resume,
                        ),
                    )
                    .await?;
                    work.progress.table_finished(plan.name());
                    counts
                };
                if let Some(t) = tracking {
                    checkpoint::finish_cursor(client, cursor, t.generation()).await?;
                }
                counts
            }
        };
        if plan.loading {
            finish_first_load(client, &plan).await?;
        }
        let mut notes = Vec::new();
        if plan.created_by_acode {
            notes.extend(ensure_indexes(client, &plan).await?);
        }
        Ok(TableRun {
            table: plan.name().to_owned(),
            created: work.created.contains(plan.name()),
            counts,
            notes,
        })
    }

    /// Measures tables (see [`stats::measure`]), several at once: each
    /// scan is one SQLite statement on one core, so each core takes tables
    /// in turn, on a source connection of its own.
    fn measure_all(
        &self,
        tables: &[(&schema::Table, Option<&[String]>)],
    ) -> Result<Vec<stats::Measured>> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let shown = self.shown();
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(tables.len());
        let conns = (0..threads)
            .map(|_| schema::open_source(&self.source))
            .collect::<Result<Vec<_>>>()?;
        let next = AtomicUsize::new(0);
        let results: Vec<std::sync::Mutex<Option<Result<stats::Measured>>>> =
            tables.iter().map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for conn in conns {
                let (next, results, shown) = (&next, &results, &shown);
                scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some((table, only)) = tables.get(i) else {
                            return;
                        };
                        let measured = stats::measure(&conn, table, shown, *only);
                        *results[i]
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(measured);
                    }
                });
            }
        });
        results
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .unwrap_or_else(|| {
                        Err(MigrateError::source(&shown, "a table was not measured"))
                    })
            })
            .collect()
    }

    /// Compares source and target without writing any table; records the
    /// result in `data_differentials`.
    pub async fn analyze(&self, opts: &Options) -> Result<AnalyzeReport> {
        let Prepared {
            schema,
            plans,
            mut client,
            conn,
            ..
        } = self.prepare(opts, false, true).await?;
        let mut tables = Vec::new();
        for plan in plans {
            let plan = Arc::new(plan);
            let mut problems = plan.problems.clone();
            problems.extend(fk_notes(&conn, &plan, &schema));
            // Analyze measures every column: its scan counted the rows.
            let source_rows = match plan.counted_rows {
                Some(n) => n,
                None => schema::count_rows(&conn, plan.name(), &self.shown())?,
            };
            let (target_rows, missing, changed, extra) = if let Some(b) = &plan.blocker {
                problems.push(b.clone());
                (None, None, None, None)
            } else if !plan.exists {
                (Some(0), Some(source_rows), Some(0), Some(0))
            } else {
                let c = engine::pass(
                    &mut client,
                    self.pass(
                        plan.clone(),
                        opts,
                        Mode::Compare,
                        &crate::NoProgress,
                        None,
                        None,
                    ),
                )
                .await?;
                (
                    Some(c.target_rows),
                    Some(c.missing),
                    Some(c.changed),
                    Some(c.extra),
                )
            };
            let analysis = TableAnalysis {
                table: plan.name().to_owned(),
                key: plan.key_names(),
                target_exists: plan.exists,
                columns: plan.columns.clone(),
                source_rows,
                target_rows,
                missing,
                changed,
                extra,
                problems,
            };
            let n = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
            client
                .execute(
                    "INSERT INTO acode_migrate.data_differentials
                       (source, table_name, source_rows, target_rows, missing, changed, extra, problems, mapping)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &self.source_id,
                        &analysis.table,
                        &n(Some(source_rows)),
                        &n(target_rows),
                        &n(missing),
                        &n(changed),
                        &n(extra),
                        &serde_json::to_value(&analysis.problems).unwrap_or_default(),
                        &serde_json::to_value(&analysis.columns).unwrap_or_default(),
                    ],
                )
                .await
                .map_err(MigrateError::pg("recording the analysis"))?;
            tables.push(analysis);
        }
        Ok(AnalyzeReport {
            source: self.source_id.clone(),
            target: self.target.desc.clone(),
            tables,
            skipped: schema.skipped,
        })
    }

    fn pass<'a>(
        &'a self,
        plan: Arc<TablePlan>,
        opts: &Options,
        mode: Mode,
        progress: &'a dyn Progress,
        sampler: Option<&'a mut Sampler>,
        resume: Option<crate::engine::Resume>,
    ) -> Pass<'a> {
        // Validate hashes the target's values; run and analyze read the
        // hashes the target keeps.
        let stored_hashes = sampler.is_none();
        Pass {
            plan,
            source_path: self.source.clone(),
            source_id: &self.source_id,
            batch: opts.batch_size.max(1),
            mode,
            progress,
            sampler,
            resume,
            stored_hashes,
        }
    }

    /// Makes the target equal to the source: creates missing tables, copies
    /// what is missing or changed, deletes what the source no longer has;
    /// resumes from checkpoints.
    pub async fn run(&self, opts: &Options, progress: &dyn Progress) -> Result<RunReport> {
        let started = Instant::now();
        // A second connection opens while the first prepares (the copy may
        // use it); back in the pool until then.
        let (prepared, spare) = tokio::join!(self.prepare(opts, true, false), self.target.client());
        drop(spare);
        let Prepared {
            schema,
            mut plans,
            mut client,
            conn,
            mut notes,
        } = prepared?;
        if let Some(err) = plans.iter().find_map(TablePlan::error) {
            return Err(err);
        }
        // The change logs of tracked tables are read from now on, while
        // the target gets ready.
        let mut spans = Vec::with_capacity(plans.len());
        for plan in &plans {
            spans.push(match &plan.tracking {
                Some(track::Tracking::Incremental { tid, seq, .. }) => Some(engine::read_spans(
                    &self.source,
                    Arc::new(plan.clone()),
                    *tid,
                    *seq,
                    opts.batch_size.max(1),
                )),
                _ => None,
            });
        }
        // Every missing table at once, or none.
        let mut created = BTreeSet::new();
        if plans.iter().any(|p| !p.exists) {
            let tx = client
                .transaction()
                .await
                .map_err(MigrateError::pg("starting to create tables"))?;
            for plan in plans.iter_mut().filter(|p| !p.exists) {
                let cols: Vec<(String, crate::value::Kind, bool)> = plan
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), c.kind, c.not_null))
                    .collect();
                // The key, indexes, foreign keys and the row-hash insert
                // trigger come after the first load (see engine.rs).
                let hashed = rowhash::possible(plan);
                let mut sql = target::create_table_sql(
                    &plan.qualified,
                    &cols,
                    &plan.key_names(),
                    false,
                    hashed,
                );
                sql.push_str(&format!(
                    ";\nCOMMENT ON TABLE {} IS '{}';\n",
                    plan.qualified,
                    target::LOADING_COMMENT
                ));
                plan.exists = true;
                plan.created_by_acode = true;
                plan.loading = true;
                plan.stored_hash = hashed;
                plan.hash_kept = hashed;
                if hashed {
                    sql.push_str(&rowhash::install_sql(plan, false));
                }
                tx.batch_execute(&sql)
                    .await
                    .map_err(MigrateError::pg(format!("creating table {}", plan.name())))?;
                created.insert(plan.name().to_owned());
            }
            tx.commit()
                .await
                .map_err(MigrateError::pg("creating tables"))?;
        }

        // With foreign keys unchecked while copying, a second connection
        // copies tables beside the first (largest first): one table's
        // pipeline (the source reader, then PostgreSQL) keeps about one of
        // the cores busy. Both connections are set up at once.
        let (replica, second) = tokio::join!(data_session(&client), async {
            if plans.len() < 2 {
                return None;
            }
            let c = self.target.client().await.ok()?;
            match data_session(&c).await {
                Ok(None) => Some(c),
                _ => {
                    end_data_session(&c).await;
                    None
                }
            }
        });
        let mut second = second;
        let replica = match replica {
            Ok(r) => r,
            Err(e) => {
                if let Some(c) = second.take() {
                    end_data_session(&c).await;
                }
                return Err(e);
            }
        };
        if let Some(e) = &replica {
            notes.push(format!(
                "foreign keys are checked while copying (session_replication_role could not be set: {e}): tables are copied parents first, one at a time"
            ));
            // Without it, one connection copies them all.
            if let Some(c) = second.take() {
                end_data_session(&c).await;
            }
        }

        // What each table will cost, for sharing them out below.
        let mut costs = Vec::with_capacity(plans.len());
        for (plan, spans) in plans.iter().zip(spans.iter_mut()) {
            costs.push(match spans {
                Some(s) => s.pending().await?.saturating_mul(MERGE_COST),
                None => plan.counted_rows.unwrap_or(0),
            });
        }
        let conn = std::sync::Mutex::new(conn);
        let outcome = async {
            // In replica mode: the rehash is acode's write, and fires none
            // of the user's own triggers.
            for plan in plans.iter_mut().filter(|p| p.stored_hash && !p.hash_kept) {
                rowhash::repair(&mut client, plan).await?;
            }
            let (run_id, continued) = checkpoint::begin_run(&client, &self.source_id).await?;

            if continued {
                notes.push("continuing a run that was cut short: finished tables are skipped, the others resume from their checkpoints".into());
            }
            // The costliest first: the connection that takes the last
            // (cheapest) table ends about when the other does.
            let mut order: Vec<usize> = (0..plans.len()).collect();
            if second.is_some() {
                order.sort_by_key(|&i| std::cmp::Reverse(costs[i]));
            }
            let work = Copying {
                plans: &plans,
                queue: std::sync::Mutex::new(order.into()),
                done: std::sync::Mutex::new(vec![None; plans.len()]),
                failed: std::sync::atomic::AtomicBool::new(false),
                run_id: &run_id,
                created: &created,
                opts,
                progress,
                conn: &conn,
                prunes: std::sync::Mutex::new(Vec::new()),
                spans: std::sync::Mutex::new(spans),
            };
            let (first, other) = tokio::join!(self.copy_tables(&mut client, &work), async {
                match second.as_mut() {
                    Some(c) => self.copy_tables(c, &work).await,
                    None => Ok(()),
                }
            });
            first?;
            other?;
            let mut tables: Vec<TableRun> = work
                .done
                .into_inner()
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .collect();

            // Foreign keys last, once every table has its key: by both
            // connections too, each checking the source with its own.
            let keying = Keying {
                plans: &plans,
                schema: &schema,
                target: &self.target,
                queue: std::sync::Mutex::new(
                    (0..plans.len()).filter(|&i| plans[i].created_by_acode).collect(),
                ),
                notes: std::sync::Mutex::new(vec![Vec::new(); plans.len()]),
                adding: tokio::sync::Mutex::new(()),
                unchecked: std::sync::Mutex::new(Vec::new()),
            };
            let second_source = match &second {
                Some(_) => Some(std::sync::Mutex::new(schema::open_source(&self.source)?)),
                None => None,
            };
            let (first, other) = tokio::join!(add_foreign_keys(&client, &conn, &keying), async {
                match (&second, &second_source) {
                    (Some(c), Some(source)) => add_foreign_keys(c, source, &keying).await,
                    _ => Ok(()),
                }
            });
            first?;
            other?;
            // The largest tables' keys first (taken from the end).
            if let Ok(mut unchecked) = keying.unchecked.lock() {
                unchecked.sort_by_key(|(i, _, _)| plans[*i].counted_rows.unwrap_or(0));
            }
            tokio::join!(check_foreign_keys(&client, &keying), async {
                if let Some(c) = &second {
                    check_foreign_keys(c, &keying).await;
                }
            });
            for (table, notes) in tables.iter_mut().zip(keying.notes.into_inner().unwrap_or_default()) {
                table.notes.extend(notes);
            }

            // Sent together: the run's end is committed durably.
            let (durable, finished) = tokio::join!(
                client.batch_execute("SET synchronous_commit = on"),
                checkpoint::finish_run(&client, &run_id)
            );
            durable.map_err(MigrateError::pg("finishing the run"))?;
            finished?;
            let prunes = work.prunes.into_inner().unwrap_or_default();
            Ok::<_, MigrateError>((tables, prunes))
        }
        .await;
        end_data_session(&client).await;
        if let Some(c) = &second {
            end_data_session(c).await;
        }
        let (tables, prunes) = outcome?;
        for prune in prunes {
            match prune.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => notes.push(format!("the change log was not pruned: {e}")),
                Err(e) => notes.push(format!("the change log was not pruned: {e}")),
            }
        }

        let copied = tables.iter().map(TableRun::copied).sum();
        let deleted = tables.iter().map(|t| t.counts.deleted).sum();
        Ok(RunReport {
            source: self.source_id.clone(),
            target: self.target.desc.clone(),
            tables,
            notes,
            copied,
            deleted,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Counts and chunked checksums of every table, plus value-by-value
    /// comparison of a random sample of rows; stored in
    /// `migration_validation_reports`. `ok` is false on any difference.
    pub async fn validate(&self, opts: &Options) -> Result<ValidationReport> {
        let Prepared {
            plans,
            mut client,
            conn,
            ..
        } = self.prepare(opts, false, false).await?;
        let plans: Vec<Arc<TablePlan>> = plans.into_iter().map(Arc::new).collect();
        // Two connections take the tables in turn, largest first, as a run
        // does (each table's pass keeps about one core busy).
        let mut order: Vec<usize> = (0..plans.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(plans[i].counted_rows.unwrap_or(0)));
        let queue = std::sync::Mutex::new(std::collections::VecDeque::from(order));
        let done = std::sync::Mutex::new(vec![None; plans.len()]);
        let conn = std::sync::Mutex::new(conn);
        let mut second = if plans.len() > 1 {
            self.target.client().await.ok()
        } else {
            None
        };
        let work = Validating {
            plans: &plans,
            queue,
            done,
            conn,
            opts,
        };
        let (first, other) = tokio::join!(self.validate_tables(&mut client, &work), async {
            match second.as_mut() {
                Some(c) => self.validate_tables(c, &work).await,
                None => Ok(()),
            }
        });
        first?;
        other?;
        let tables: Vec<TableValidation> = work
            .done
            .into_inner()
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect();
        let mut report = ValidationReport {
            ok: tables.iter().all(|t| t.ok),
            source: self.source_id.clone(),
            target: self.target.desc.clone(),
            created_at: chrono::Utc::now().to_rfc3339(),
            tables,
            report_id: 0,
        };
        let json = serde_json::to_value(&report).unwrap_or_default();
        let row = client
            .query_one(
                "INSERT INTO acode_migrate.migration_validation_reports (source, ok, report, markdown) VALUES ($1, $2, $3, $4) RETURNING id",
                &[&self.source_id, &report.ok, &json, &report.to_markdown()],
            )
            .await
            .map_err(MigrateError::pg("storing the validation report"))?;
        report.report_id = row.get(0);
        Ok(report)
    }

    /// Validates the tables `work` has left, one at a time, on `client`.
    async fn validate_tables(&self, client: &mut Object, work: &Validating<'_>) -> Result<()> {
        loop {
            let next = work.queue.lock().ok().and_then(|mut q| q.pop_front());
            let Some(i) = next else {
                return Ok(());
            };
            let v = match self
                .validate_table(client, &work.conn, &work.plans[i], work.opts)
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    // The other connection stops after its table.
                    if let Ok(mut q) = work.queue.lock() {
                        q.clear();
                    }
                    return Err(e);
                }
            };
            if let Ok(mut done) = work.done.lock() {
                done[i] = Some(v);
            }
        }
    }

    /// One table of [`Migrator::validate`], on `client`.
    async fn validate_table(
        &self,
        client: &mut Object,
        conn: &std::sync::Mutex<Connection>,
        plan: &Arc<TablePlan>,
        opts: &Options,
    ) -> Result<TableValidation> {
        let mut v = TableValidation {
            table: plan.name().to_owned(),
            ok: false,
            source_rows: 0,
            target_rows: 0,
            chunks: 0,
            chunks_differing: 0,
            missing: 0,
            changed: 0,
            extra: 0,
            sampled: 0,
            sample_mismatches: Vec::new(),
            problems: Vec::new(),
        };
        // The pass counts the source rows it compares; a table not
        // compared is counted on its own.
        let count = || match conn.lock() {
            Ok(conn) => schema::count_rows(&conn, plan.name(), &self.shown()),
            Err(_) => Err(MigrateError::source(
                &self.shown(),
                "the source connection is unusable",
            )),
        };
        if !plan.exists {
            v.source_rows = count()?;
            v.missing = v.source_rows;
            v.problems.push("the table is missing in the target".into());
        } else if let Some(b) = &plan.blocker {
            v.source_rows = count()?;
            v.problems.push(b.clone());
        } else {
            let mut sampler = Sampler::new(opts.sample);
            let c: Counts = engine::pass(
                client,
                self.pass(
                    plan.clone(),
                    opts,
                    Mode::Compare,
                    &crate::NoProgress,
                    Some(&mut sampler),
                    None,
                ),
            )
            .await?;
            v.source_rows = c.source_rows;
            v.target_rows = c.target_rows;
            v.chunks = c.chunks;
            v.chunks_differing = c.chunks_differing;
            v.missing = c.missing;
            v.changed = c.changed;
            v.extra = c.extra;
            let stmt = client
                .prepare(&plan.select_by_key_sql())
                .await
                .map_err(MigrateError::pg(format!("reading rows of {}", plan.name())))?;
            for row in &sampler.rows {
                v.sampled += 1;
                let key: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = plan
                    .key
                    .iter()
                    .map(|&i| &row.cells[i] as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let found = client
                    .query_opt(&stmt, &key)
                    .await
                    .map_err(MigrateError::pg(format!("reading rows of {}", plan.name())))?;
                let shown_key = key_text(&row.source_key);
                match found {
                    None => v
                        .sample_mismatches
                        .push(format!("row {shown_key} is missing in the target")),
                    Some(t) => {
                        for (i, c) in plan.columns.iter().enumerate() {
                            let have: Cell = t.try_get(i).map_err(MigrateError::pg(format!(
                                "reading rows of {}",
                                plan.name()
                            )))?;
                            if have != row.cells[i] {
                                v.sample_mismatches.push(format!(
                                    "row {shown_key}, column {:?}: source {} ≠ target {}",
                                    c.name,
                                    row.cells[i].display(),
                                    have.display()
                                ));
                            }
                        }
                    }
                }
            }
        }
        v.ok = v.problems.is_empty()
            && v.sample_mismatches.is_empty()
            && v.missing == 0
            && v.changed == 0
            && v.extra == 0
            && v.source_rows == v.target_rows;
        Ok(v)
    }

    /// Both sides of one record. `key`: the value of a single-column key,
    /// or a JSON array for a composite key (`'[12, "A-7"]'`).
    pub async fn check_record(&self, table: &str, key: &str) -> Result<RecordView> {
        let opts = Options {
            tables: vec![table.to_owned()],
            ..Options::default()
        };
        let Prepared {
            plans,
            client,
            conn,
            ..
        } = self.prepare(&opts, false, false).await?;
        let plan = plans
            .into_iter()
            .next()
            .ok_or_else(|| MigrateError::invalid("table", table.to_owned()))?;
        if let Some(b) = &plan.blocker {
            return Err(plan
                .error()
                .unwrap_or_else(|| MigrateError::invalid("table", b.clone())));
        }
        let key_values = parse_key(key, plan.key.len())?;
        let shown = self.shown();
        let mut stmt = conn
            .prepare(&plan.source_select_by_key())
            .map_err(|e| MigrateError::source(&shown, e))?;
        let width = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(key_values.iter()))
            .map_err(|e| MigrateError::source(&shown, e))?;
        let source_row = match rows.next().map_err(|e| MigrateError::source(&shown, e))? {
            Some(r) => {
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    values.push(SqlValue::from_ref(
                        r.get_ref(i).map_err(|e| MigrateError::source(&shown, e))?,
                    ));
                }
                Some(plan.convert_row(values, &mut Vec::new())?)
            }
            None => None,
        };
        let target_key: Vec<Cell> = match &source_row {
            Some(r) => plan.key.iter().map(|&i| r.cells[i].clone()).collect(),
            None => plan.target_key_of(&key_values)?,
        };
        let target_row: Option<Vec<Cell>> = if plan.exists {
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = target_key
                .iter()
                .map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let found = client
                .query_opt(&plan.select_by_key_sql(), &params)
                .await
                .map_err(MigrateError::pg(format!(
                    "reading a row of {}",
                    plan.name()
                )))?;
            match found {
                Some(r) => Some(
                    (0..plan.columns.len())
                        .map(|i| r.try_get::<_, Cell>(i))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(MigrateError::pg(format!(
                            "reading a row of {}",
                            plan.name()
                        )))?,
                ),
                None => None,
            }
        } else {
            None
        };
        if source_row.is_none() && target_row.is_none() {
            return Err(MigrateError::NotFound {
                what: "record",
                name: format!("{} {}", plan.name(), key_text(&key_values)),
            });
        }
        let mut columns = Vec::new();
        for (i, c) in plan.columns.iter().enumerate() {
            let s = source_row.as_ref().map(|r| r.cells[i].clone());
            let t = target_row.as_ref().and_then(|r| r.get(i).cloned());
            columns.push(RecordColumn {
                column: c.name.clone(),
                equal: s.is_some() && s == t,
                source: s.map_or(serde_json::Value::Null, |c| c.to_json()),
                target: t.map_or(serde_json::Value::Null, |c| c.to_json()),
            });
        }
        Ok(RecordView {
            table: plan.name().to_owned(),
            key: key_text(&key_values),
            in_source: source_row.is_some(),
            in_target: target_row.is_some(),
            equal: columns.iter().all(|c| c.equal),
            columns,
        })
    }

    /// The checkpoint of every table.
    pub async fn checkpoint_status(&self) -> Result<Vec<CheckpointRow>> {
        let client = self.control_client().await?;
        let rows = client
            .query(
                "SELECT table_name, source, status, last_key::text, chunks_done, rows_inserted, rows_updated, rows_deleted,
                        to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 FROM acode_migrate.migration_checkpoints ORDER BY table_name",
                &[],
            )
            .await
            .map_err(MigrateError::pg("reading checkpoints"))?;
        Ok(rows
            .into_iter()
            .map(|r| CheckpointRow {
                table: r.get(0),
                source: r.get(1),
                status: r.get(2),
                last_key: r.get(3),
                chunks_done: r.get(4),
                rows_inserted: r.get(5),
                rows_updated: r.get(6),
                rows_deleted: r.get(7),
                updated_at: r.get(8),
            })
            .collect())
    }

    /// Forgets the checkpoint of one table (or all): the next run starts
    /// its pass from the first key, and compares a tracked table in full
    /// (its change cursor goes too). Returns how many were removed.
    pub async fn reset_checkpoint(&self, table: Option<&str>) -> Result<u64> {
        let client = self.control_client().await?;
        // Without a cursor a tracked table is compared in full again.
        let mut n = 0;
        for control in ["migration_checkpoints", "change_cursors"] {
            let sql = format!(
                "DELETE FROM acode_migrate.{control} WHERE $1::text IS NULL OR table_name = $1"
            );
            let removed = client
                .execute(&sql, &[&table])
                .await
                .map_err(MigrateError::pg(format!("resetting {control}")))?;
            n = n.max(removed);
        }
        if let (Some(t), 0) = (table, n) {
            return Err(MigrateError::NotFound {
                what: "checkpoint of table",
                name: t.to_owned(),
            });
        }
        Ok(n)
    }
}

/// The tables of a validation, shared by the connections comparing them.
struct Validating<'a> {
    plans: &'a [Arc<TablePlan>],
    /// Indexes into `plans` not yet taken, in the order to take them.
    queue: std::sync::Mutex<std::collections::VecDeque<usize>>,
    done: std::sync::Mutex<Vec<Option<TableValidation>>>,
    conn: std::sync::Mutex<Connection>,
    opts: &'a Options,
}

/// The tables of a run, shared by the connections copying them.
struct Copying<'a> {
    plans: &'a [TablePlan],
    /// Indexes into `plans` not yet taken, in the order to take them.
    queue: std::sync::Mutex<std::collections::VecDeque<usize>>,
    done: std::sync::Mutex<Vec<Option<TableRun>>>,
    failed: std::sync::atomic::AtomicBool,
    run_id: &'a str,
    created: &'a BTreeSet<String>,
    opts: &'a Options,
    progress: &'a dyn Progress,
    conn: &'a std::sync::Mutex<Connection>,
    /// The prunes of the change logs of tracked tables, once their target
    /// held them.
    prunes: std::sync::Mutex<Vec<tokio::task::JoinHandle<Result<()>>>>,
    /// The change logs being read, by the index of their table's plan.
    spans: std::sync::Mutex<Vec<Option<engine::Spans>>>,
}

/// Sets up a connection to copy with. Chunks commit without waiting for
/// the WAL flush; the commit that ends the run waits (synchronous_commit
/// on), and so makes every chunk before it durable, whichever connection
/// wrote it (the WAL is flushed in order). A crash of PostgreSQL loses at
/// most a tail of chunks together with their checkpoints. Foreign keys
/// are not checked while copying (replica mode): the returned message says
/// why, when that could not be set.
async fn data_session(client: &Object) -> Result<Option<String>> {
    // Both sent at once (a refused role leaves the first in force).
    let (durability, replica) = tokio::join!(
        client.batch_execute("SET synchronous_commit = off"),
        client.batch_execute("SET session_replication_role = replica")
    );
    durability.map_err(MigrateError::pg("preparing the data connection"))?;
    Ok(replica.err().map(|e| {
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned())
    }))
}

/// What merging one change-log entry's row costs against comparing one
/// row in a full pass, roughly (for sharing tables between connections).
const MERGE_COST: u64 = 8;

/// Undoes [`data_session`] before the connection goes back to the pool.
async fn end_data_session(client: &Object) {
    let _ = client
        .batch_execute("RESET session_replication_role; RESET synchronous_commit")
        .await;
}

/// `TABLE.COL` against the schema: table names may hold dots, so every
/// split is tried. The column must be the table's single-column key.
fn resolve_uuid_map(schema: &Schema, spec: &str) -> Result<(String, String)> {
    for (i, _) in spec.match_indices('.') {
        let (t, c) = (&spec[..i], &spec[i + 1..]);
        if let Some(table) = schema.table(t)
            && let Some(col) = table.column(c)
        {
            if table.primary_key.len() != 1 || !table.primary_key[0].eq_ignore_ascii_case(&col.name)
            {
                return Err(MigrateError::invalid(
                    "--uuid-map",
                    format!(
                        "{spec}: {:?} is not the single-column primary key of {:?}",
                        col.name, table.name
                    ),
                ));
            }
            return Ok((table.name.clone(), col.name.clone()));
        }
    }
    Err(MigrateError::invalid(
        "--uuid-map",
        format!("{spec}: expected TABLE.COLUMN of a source table"),
    ))
}

/// A key given on the command line.
fn parse_key(key: &str, columns: usize) -> Result<Vec<SqlValue>> {
    let from_json = |v: &serde_json::Value| -> Option<SqlValue> {
        Some(match v {
            serde_json::Value::Null => SqlValue::Null,
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => SqlValue::Int(i),
                None => SqlValue::Real(n.as_f64()?),
            },
            serde_json::Value::String(s) => SqlValue::Text(s.clone().into_bytes()),
            _ => return None,
        })
    };
    let values: Vec<SqlValue> = if key.trim_start().starts_with('[') {
        let parsed: serde_json::Value = serde_json::from_str(key)
            .map_err(|e| MigrateError::invalid("key", format!("{key}: {e}")))?;
        parsed
            .as_array()
            .and_then(|a| a.iter().map(from_json).collect::<Option<Vec<_>>>())
            .ok_or_else(|| {
                MigrateError::invalid(
                    "key",
                    format!("{key}: expected a JSON array of numbers and strings"),
                )
            })?
    } else if let Ok(i) = key.parse::<i64>() {
        vec![SqlValue::Int(i)]
    } else if let Ok(f) = key.parse::<f64>() {
        vec![SqlValue::Real(f)]
    } else {
        vec![SqlValue::Text(key.as_bytes().to_vec())]
    };
    if values.len() != columns {
        return Err(MigrateError::invalid(
            "key",
            format!(
                "{key}: the key has {columns} column(s); give a composite key as a JSON array, e.g. '[1, \"a\"]'"
            ),
        ));
    }
    Ok(values)
}

/// Why declared foreign keys will not (or may not) become constraints.
fn fk_notes(conn: &Connection, plan: &TablePlan, schema: &Schema) -> Vec<String> {
    let mut notes = Vec::new();
    if plan.table.foreign_keys.is_empty() {
        return notes;
    }
    let violations = schema::fk_violations(conn, plan.name());
    for fk in &plan.table.foreign_keys {
        let what = format!("foreign key ({}) → {}", fk.columns.join(", "), fk.parent);
        if schema.table(&fk.parent).is_none() {
            notes.push(format!("{what}: no such table in the source; not created"));
            continue;
        }
        match &violations {
            Err(e) => notes.push(format!("{what}: cannot be checked ({e}); not created")),
            Ok(v) => {
                if let Some(n) = v.get(&fk.id) {
                    notes.push(format!(
                        "{what}: {n} orphan row(s) in the source; not created"
                    ));
                }
            }
        }
    }
    notes
}

/// Ends a table's first load: adds its primary key and the row-hash
/// insert trigger, and marks it loaded, in one transaction. When that
/// fails (others wrote rows with the same key meanwhile), the table's
/// checkpoint is forgotten so that the next run loads it again.
async fn finish_first_load(client: &mut Object, plan: &TablePlan) -> Result<()> {
    let name = plan.name();
    let mut sql = target::primary_key_sql(&plan.qualified, &plan.key_names());
    sql.push_str(";\n");
    if plan.stored_hash {
        sql.push_str(&rowhash::install_sql(plan, true));
    }
    sql.push_str(&format!(
        "COMMENT ON TABLE {} IS '{}';",
        plan.qualified,
        target::CREATED_COMMENT
    ));
    let outcome = async {
        let tx = client.transaction().await?;
        tx.batch_execute(&sql).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = outcome {
        let _ = client
            .execute(
                "DELETE FROM acode_migrate.migration_checkpoints WHERE table_name = $1",
                &[&name],
            )
            .await;
        return Err(crate::error::pg_error(
            format!(
                "adding the primary key of {name} after its first load (the next run loads it again)"
            ),
            &e,
        ));
    }
    Ok(())
}

async fn ensure_indexes(client: &Object, plan: &TablePlan) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for ix in &plan.table.indexes {
        let Some(cols) = &ix.columns else {
            notes.push(format!(
                "index {}: expressions or a WHERE clause; not recreated",
                ix.name
            ));
            continue;
        };
        let wanted = if ix.auto {
            format!("{}_{}_key", plan.name(), cols.join("_"))
        } else {
            ix.name.clone()
        };
        let name = target::pg_name("acode_ix", &wanted);
        let list: Vec<String> = cols.iter().map(|c| quote(c)).collect();
        let sql = format!(
            "CREATE {}INDEX IF NOT EXISTS {} ON {} ({})",
            if ix.unique { "UNIQUE " } else { "" },
            quote(&name),
            plan.qualified,
            list.join(", ")
        );
        if let Err(e) = client.batch_execute(&sql).await {
            notes.push(format!(
                "index {}: not created: {}",
                ix.name,
                crate::error::pg_error(String::new(), &e)
            ));
        }
    }
    Ok(notes)
}

/// Adds the foreign keys of `plan`'s table `NOT VALID` and returns the
/// notes of those not added and the keys whose rows are still to be
/// checked (see [`check_foreign_keys`]).
async fn ensure_foreign_keys(
    client: &Object,
    conn: &std::sync::Mutex<Connection>,
    adding: &tokio::sync::Mutex<()>,
    plan: &TablePlan,
    schema: &Schema,
    target: &Target,
) -> Result<(Vec<String>, Vec<(String, String)>)> {
    let mut notes = Vec::new();
    let mut unchecked = Vec::new();
    let Some(existing) = target::existing(client, &target.schema, plan.name()).await? else {
        return Ok((notes, unchecked));
    };
    let mut violations = None;
    for fk in &plan.table.foreign_keys {
        let name = target::pg_name(
            "acode_fk",
            &format!("{}_{}_fkey", plan.name(), fk.columns.join("_")),
        );
        let what = format!("foreign key ({}) → {}", fk.columns.join(", "), fk.parent);
        if existing.constraints.contains(&name) {
            // Added by a run cut short before it was validated.
            if existing.unvalidated.contains(&name) {
                unchecked.push((name, what));
            }
            continue;
        }
        if schema.table(&fk.parent).is_none() {
            continue;
        }
        let Some(parent) = target::existing(client, &target.schema, &fk.parent).await? else {
            notes.push(format!(
                "{what}: the parent table is not in the target yet; not created"
            ));
            continue;
        };
        if !parent.has_unique_key(&fk.parent_columns) {
            notes.push(format!(
                "{what}: no unique key on the parent columns; not created"
            ));
            continue;
        }
        let kinds_match = fk.columns.iter().zip(&fk.parent_columns).all(|(c, p)| {
            existing.column(c).map(|x| &x.typname) == parent.column(p).map(|x| &x.typname)
        });
        if !kinds_match {
            notes.push(format!(
                "{what}: column types differ between child and parent; not created"
            ));
            continue;
        }
        let v = violations.get_or_insert_with(|| match conn.lock() {
            Ok(conn) => schema::fk_violations(&conn, plan.name()),
            Err(_) => Err("the source connection is unusable".to_owned()),
        });
        match v {
            Err(e) => {
                notes.push(format!("{what}: cannot be checked ({e}); not created"));
                continue;
            }
            Ok(v) if v.contains_key(&fk.id) => {
                notes.push(format!("{what}: orphan rows in the source; not created"));
                continue;
            }
            Ok(_) => {}
        }
        let cols: Vec<String> = fk.columns.iter().map(|c| quote(c)).collect();
        let pcols: Vec<String> = fk.parent_columns.iter().map(|c| quote(c)).collect();
        // Added without checking the rows (a moment's lock on both
        // tables); the rows are checked once every key is added.
        let sql = format!(
            "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) DEFERRABLE INITIALLY DEFERRED NOT VALID",
            plan.qualified,
            quote(&name),
            cols.join(", "),
            target.qualified(&fk.parent),
            pcols.join(", ")
        );
        // One addition at a time across connections: two at once, on
        // tables that reference each other, could deadlock.
        let adding = adding.lock().await;
        let added = client.batch_execute(&sql).await;
        drop(adding);
        match added {
            Ok(()) => unchecked.push((name, what)),
            Err(e) => notes.push(format!(
                "{what}: not created: {}",
                crate::error::pg_error(String::new(), &e)
            )),
        }
    }
    Ok((notes, unchecked))
}

/// Checks the rows against a foreign key added `NOT VALID`; a key the
/// rows break is dropped again (a note says why).
async fn validate_foreign_key(
    client: &Object,
    plan: &TablePlan,
    name: &str,
    what: &str,
) -> Option<String> {
    let sql = format!(
        "ALTER TABLE {} VALIDATE CONSTRAINT {}",
        plan.qualified,
        quote(name)
    );
    let e = client.batch_execute(&sql).await.err()?;
    let _ = client
        .batch_execute(&format!(
            "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
            plan.qualified,
            quote(name)
        ))
        .await;
    Some(format!(
        "{what}: not created: {}",
        crate::error::pg_error(String::new(), &e)
    ))
}

/// The foreign keys of a run's tables, added by the connections that
/// copied them.
struct Keying<'a> {
    plans: &'a [TablePlan],
    schema: &'a Schema,
    target: &'a Target,
    /// Indexes into `plans` not yet taken.
    queue: std::sync::Mutex<std::collections::VecDeque<usize>>,
    notes: std::sync::Mutex<Vec<Vec<String>>>,
    /// Held while a key is added (see [`ensure_foreign_keys`]).
    adding: tokio::sync::Mutex<()>,
    /// Keys added whose rows are not checked yet: the index into `plans`,
    /// the constraint's name and what the notes call it.
    unchecked: std::sync::Mutex<Vec<(usize, String, String)>>,
}

/// Adds the foreign keys of the tables `work` has left, one table at a
/// time, on `client`; `conn` checks the source's rows first.
async fn add_foreign_keys(
    client: &Object,
    conn: &std::sync::Mutex<Connection>,
    work: &Keying<'_>,
) -> Result<()> {
    loop {
        let next = work.queue.lock().ok().and_then(|mut q| q.pop_front());
        let Some(i) = next else {
            return Ok(());
        };
        let (notes, unchecked) = ensure_foreign_keys(
            client,
            conn,
            &work.adding,
            &work.plans[i],
            work.schema,
            work.target,
        )
        .await?;
        if let Ok(mut all) = work.notes.lock() {
            all[i] = notes;
        }
        if let Ok(mut all) = work.unchecked.lock() {
            all.extend(unchecked.into_iter().map(|(name, what)| (i, name, what)));
        }
    }
}

/// Checks the rows of the keys [`add_foreign_keys`] added, one key at a
/// time, on `client`. Only once every key is added: adding a key locks its
/// parent table in a mode that waits for a check running on that table.
/// Checks of different tables never wait for each other (each locks its
/// own table against writes only, its parent against nothing a check
/// takes), so two connections check two keys at once.
async fn check_foreign_keys(client: &Object, work: &Keying<'_>) {
    loop {
        let next = work.unchecked.lock().ok().and_then(|mut q| q.pop());
        let Some((i, name, what)) = next else {
            return;
        };
        let note = validate_foreign_key(client, &work.plans[i], &name, &what).await;
        if let (Some(note), Ok(mut all)) = (note, work.notes.lock()) {
            all[i].push(note);
        }
    }
}

//! `acode migrate …`: differential migration of any SQLite database into
//! PostgreSQL (`acode-migrate`): analyze, run, validate, check-record,
//! checkpoints, and scheduled jobs. Parses, calls the library, prints.
//!
//! Errors of the library carry their own stable `ACODE-MIGRATE-0xx` code
//! and are printed here (`error[…]: …`, or the JSON error document) with
//! exit code 1. `validate` exits 1 when it finds a difference.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

use acode_migrate::jobs::{JobStatus, Jobs};
use acode_migrate::{
    AnalyzeReport, CheckpointRow, MigrateError, Migrator, Options, RecordView, RunReport,
    ValidationReport,
};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::Ctx;
use crate::output;

/// Where to copy from and to.
#[derive(Debug, Args)]
pub struct Endpoints {
    /// The SQLite database to copy from
    #[arg(long, env = "ACODE_MIGRATE_SOURCE", value_name = "sqlite:PATH")]
    pub source: String,
    #[command(flatten)]
    pub target: TargetArg,
}

#[derive(Debug, Args)]
pub struct TargetArg {
    /// The PostgreSQL database to copy into (control tables live in its
    /// schema `acode_migrate`)
    #[arg(long, env = "ACODE_MIGRATE_TARGET", value_name = "postgres://…")]
    pub target: String,
}

/// Which tables and how.
#[derive(Debug, Args)]
pub struct Selection {
    /// Only these source tables (comma-separated) [default: all]
    #[arg(long, value_delimiter = ',', value_name = "T,…")]
    pub tables: Vec<String>,
    /// Map a legacy integer key to UUIDs (repeatable): TABLE.COLUMN
    #[arg(long = "uuid-map", value_name = "TABLE.COL")]
    pub uuid_map: Vec<String>,
    /// Rows per chunk (compared, copied and checkpointed together)
    #[arg(long, default_value_t = acode_migrate::DEFAULT_BATCH, value_name = "N")]
    pub batch_size: usize,
}

impl Selection {
    fn options(self) -> Options {
        Options {
            tables: self.tables,
            batch_size: self.batch_size,
            uuid_maps: self.uuid_map,
            ..Options::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Per table: source rows, target rows, missing, changed, extra, type
    /// mapping and problems (recorded in acode_migrate.data_differentials)
    Analyze {
        #[command(flatten)]
        ends: Endpoints,
        #[command(flatten)]
        selection: Selection,
    },
    /// Copy only what differs (creating missing tables); resumes from
    /// checkpoints after a crash; deletes target rows the source no longer has
    Run {
        #[command(flatten)]
        ends: Endpoints,
        #[command(flatten)]
        selection: Selection,
        /// Keep a change log in the source (triggers on its tables with a
        /// primary key): later tracked runs read only the rows it names
        #[arg(long)]
        track_changes: bool,
    },
    /// Remove the change log and triggers `run --track-changes` put in the
    /// source
    Untrack {
        /// The SQLite database
        #[arg(long, env = "ACODE_MIGRATE_SOURCE", value_name = "sqlite:PATH")]
        source: String,
    },
    /// Counts, chunked checksums and sampled full-row comparisons; exit 1 on
    /// any mismatch
    Validate {
        #[command(flatten)]
        ends: Endpoints,
        #[command(flatten)]
        selection: Selection,
        /// Also write the report here (JSON if the name ends in .json, else Markdown)
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Rows per table compared value by value
        #[arg(long, default_value_t = acode_migrate::DEFAULT_SAMPLE, value_name = "N")]
        sample: usize,
    },
    /// Both sides of one record; KEY is the key value, or a JSON array for a
    /// composite key ('[1, "a"]')
    CheckRecord {
        #[command(flatten)]
        ends: Endpoints,
        table: String,
        key: String,
    },
    /// Where each table's pass stands
    CheckpointStatus {
        #[command(flatten)]
        target: TargetArg,
    },
    /// Forget checkpoints: the next run compares from the first key
    ResetCheckpoint {
        #[command(flatten)]
        target: TargetArg,
        /// Only this table's
        #[arg(long, value_name = "T")]
        table: Option<String>,
    },
    /// Named incremental syncs on a cron schedule, with run history
    #[command(subcommand)]
    Jobs(JobsCommand),
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Store a job (in the target database)
    Create {
        name: String,
        /// Cron schedule: 5 fields, or 6 with seconds first
        #[arg(long, value_name = "CRON")]
        schedule: String,
        #[command(flatten)]
        ends: Endpoints,
        #[command(flatten)]
        selection: Selection,
        /// Runs keep a change log in the source (see `migrate run`)
        #[arg(long)]
        track_changes: bool,
        /// The job's JSON-lines log [default: next to the source]
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
    },
    /// The jobs of a target
    List {
        #[command(flatten)]
        target: TargetArg,
    },
    /// Run a job now (refused while it runs elsewhere)
    Run {
        name: String,
        #[command(flatten)]
        target: TargetArg,
    },
    /// A job, its next run and its latest runs
    Status {
        name: String,
        #[command(flatten)]
        target: TargetArg,
        /// How many past runs to show
        #[arg(long, default_value_t = 10, value_name = "N")]
        history: i64,
    },
    /// Run every job on its schedule until SIGINT or SIGTERM
    Daemon {
        #[command(flatten)]
        target: TargetArg,
    },
}

pub fn run(ctx: &Ctx, cmd: MigrateCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // A library error reaches `output::error` with its ACODE-MIGRATE code.
    runtime.block_on(dispatch(ctx, cmd))?
}

fn migrator(ends: &Endpoints) -> Result<Migrator, MigrateError> {
    Migrator::new(&ends.source, &ends.target.target)
}

/// The library call; its `Ok` is the printing's outcome.
async fn dispatch(ctx: &Ctx, cmd: MigrateCommand) -> Result<anyhow::Result<()>, MigrateError> {
    Ok(match cmd {
        MigrateCommand::Analyze { ends, selection } => {
            let report = migrator(&ends)?.analyze(&selection.options()).await?;
            ctx.print(&AnalyzeView(report))
        }
        MigrateCommand::Run {
            ends,
            selection,
            track_changes,
        } => {
            let bars = Bars::new(ctx.json);
            let opts = Options {
                track_changes,
                ..selection.options()
            };
            let report = migrator(&ends)?.run(&opts, &bars).await?;
            bars.clear();
            ctx.print(&RunView(report))
        }
        MigrateCommand::Validate {
            ends,
            selection,
            report: file,
            sample,
        } => {
            let opts = Options {
                sample,
                ..selection.options()
            };
            let report = migrator(&ends)?.validate(&opts).await?;
            if let Some(file) = &file {
                report.write_to(file)?;
            }
            let ok = report.ok;
            let mismatched = report.mismatched_tables();
            let printed = ctx.print(&ValidateView(report));
            if printed.is_ok() && !ok {
                if !ctx.json {
                    let e = MigrateError::ValidationFailed(mismatched);
                    eprintln!("error[{}]: {e}", e.code());
                }
                std::process::exit(1);
            }
            printed
        }
        MigrateCommand::CheckRecord { ends, table, key } => {
            let view = migrator(&ends)?.check_record(&table, &key).await?;
            ctx.print(&RecordPrint(view))
        }
        MigrateCommand::CheckpointStatus { target } => {
            let rows = Migrator::target_only(&target.target)?
                .checkpoint_status()
                .await?;
            ctx.print(&CheckpointsView { checkpoints: rows })
        }
        MigrateCommand::ResetCheckpoint { target, table } => {
            let removed = Migrator::target_only(&target.target)?
                .reset_checkpoint(table.as_deref())
                .await?;
            ctx.print(&Removed { removed })
        }
        MigrateCommand::Untrack { source } => {
            let tables = acode_migrate::untrack(&source)?;
            ctx.print(&Untracked { tables })
        }
        MigrateCommand::Jobs(cmd) => return jobs(ctx, cmd).await,
    })
}

async fn jobs(ctx: &Ctx, cmd: JobsCommand) -> Result<anyhow::Result<()>, MigrateError> {
    Ok(match cmd {
        JobsCommand::Create {
            name,
            schedule,
            ends,
            selection,
            track_changes,
            log,
        } => {
            let jobs = Jobs::new(&ends.target.target)?;
            let opts = Options {
                track_changes,
                ..selection.options()
            };
            let job = jobs
                .create(&name, &schedule, &ends.source, opts, log.as_deref())
                .await?;
            ctx.print(&JobsView { jobs: vec![job] })
        }
        JobsCommand::List { target } => ctx.print(&JobsView {
            jobs: Jobs::new(&target.target)?.list().await?,
        }),
        JobsCommand::Run { name, target } => {
            ctx.print(&RunRecordView(Jobs::new(&target.target)?.run(&name).await?))
        }
        JobsCommand::Status {
            name,
            target,
            history,
        } => ctx.print(&JobStatusView(
            Jobs::new(&target.target)?.status(&name, history).await?,
        )),
        JobsCommand::Daemon { target } => {
            let jobs = Jobs::new(&target.target)?;
            jobs.daemon(shutdown()).await?;
            Ok(())
        }
    })
}

/// SIGINT or SIGTERM.
async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}

/// A bar per table on stderr: only on a terminal, never with `--json`, and
/// only once the run has taken more than a second.
struct Bars {
    multi: indicatif::MultiProgress,
    bars: Mutex<HashMap<String, indicatif::ProgressBar>>,
    started: std::time::Instant,
    allowed: bool,
    shown: std::sync::atomic::AtomicBool,
}

impl Bars {
    fn new(json: bool) -> Bars {
        use std::io::IsTerminal;
        Bars {
            multi: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::hidden(),
            ),
            bars: Mutex::new(HashMap::new()),
            started: std::time::Instant::now(),
            allowed: !json && std::io::stdout().is_terminal(),
            shown: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn clear(&self) {
        let _ = self.multi.clear();
    }
}

impl acode_migrate::Progress for Bars {
    fn table_started(&self, table: &str, rows: u64) {
        let bar = self
            .multi
            .add(indicatif::ProgressBar::new(rows).with_message(table.to_owned()));
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:24} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(table.to_owned(), bar);
        }
    }

    fn rows_done(&self, table: &str, rows: u64) {
        use std::sync::atomic::Ordering;
        if self.allowed
            && !self.shown.load(Ordering::Relaxed)
            && self.started.elapsed().as_secs() >= 1
        {
            self.multi
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
            self.shown.store(true, Ordering::Relaxed);
        }
        if let Ok(bars) = self.bars.lock()
            && let Some(bar) = bars.get(table)
        {
            bar.inc(rows);
        }
    }

    fn table_finished(&self, table: &str) {
        if let Ok(bars) = self.bars.lock()
            && let Some(bar) = bars.get(table)
        {
            bar.finish();
        }
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[derive(Serialize)]
#[serde(transparent)]
struct AnalyzeView(AnalyzeReport);

impl fmt::Display for AnalyzeView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Analysis of {} → {}", self.0.source, self.0.target)?;
        let mut table = output::table([
            "Table",
            "Source rows",
            "Target rows",
            "Missing",
            "Changed",
            "Extra",
            "Problems",
        ]);
        for t in &self.0.tables {
            table.add_row([
                t.table.clone(),
                t.source_rows.to_string(),
                if t.target_exists {
                    opt(t.target_rows)
                } else {
                    "(new)".into()
                },
                opt(t.missing),
                opt(t.changed),
                opt(t.extra),
                t.problems.len().to_string(),
            ]);
        }
        writeln!(f, "{}", output::render(&table))?;
        for t in &self.0.tables {
            writeln!(f, "\n{} (key: {})", t.table, t.key.join(", "))?;
            for c in &t.columns {
                let declared = if c.declared.is_empty() {
                    "(none)"
                } else {
                    c.declared.as_str()
                };
                write!(f, "  {:<24} {:<16} → {}", c.name, declared, c.kind.ddl())?;
                if let Some(n) = &c.note {
                    write!(f, "  ({n})")?;
                }
                writeln!(f)?;
            }
            for p in &t.problems {
                writeln!(f, "  ! {p}")?;
            }
        }
        for s in &self.0.skipped {
            writeln!(f, "skipped {} {}: {}", s.kind, s.name, s.reason)?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct RunView(RunReport);

impl fmt::Display for RunView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table = output::table([
            "Table",
            "Source rows",
            "Inserted",
            "Updated",
            "Deleted",
            "Chunks (differing)",
            "",
        ]);
        for t in &self.0.tables {
            let mut flags = Vec::new();
            if t.created {
                flags.push("created".to_owned());
            }
            if t.counts.resumed {
                flags.push("resumed".into());
            }
            if t.counts.incremental {
                flags.push(format!("changes only ({} logged)", t.counts.changes));
            }
            table.add_row([
                t.table.clone(),
                t.counts.source_rows.to_string(),
                t.counts.inserted.to_string(),
                t.counts.updated.to_string(),
                t.counts.deleted.to_string(),
                format!("{} ({})", t.counts.chunks, t.counts.chunks_differing),
                flags.join(", "),
            ]);
        }
        writeln!(f, "{}", output::render(&table))?;
        for t in &self.0.tables {
            for n in &t.notes {
                writeln!(f, "  {}: {n}", t.table)?;
            }
        }
        for n in &self.0.notes {
            writeln!(f, "note: {n}")?;
        }
        write!(
            f,
            "Copied {} rows, deleted {} in {:.1}s.",
            self.0.copied,
            self.0.deleted,
            self.0.duration_ms as f64 / 1000.0
        )
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct ValidateView(ValidationReport);

impl fmt::Display for ValidateView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table = output::table([
            "",
            "Table",
            "Source rows",
            "Target rows",
            "Missing",
            "Changed",
            "Extra",
            "Sampled",
        ]);
        for t in &self.0.tables {
            table.add_row([
                if t.ok { "✓" } else { "✗" }.to_owned(),
                t.table.clone(),
                t.source_rows.to_string(),
                t.target_rows.to_string(),
                t.missing.to_string(),
                t.changed.to_string(),
                t.extra.to_string(),
                t.sampled.to_string(),
            ]);
        }
        writeln!(f, "{}", output::render(&table))?;
        for t in &self.0.tables {
            for p in t.problems.iter().chain(&t.sample_mismatches) {
                writeln!(f, "  {}: {p}", t.table)?;
            }
        }
        write!(
            f,
            "{} (report {} in acode_migrate.migration_validation_reports)",
            if self.0.ok {
                "Source and target are equal."
            } else {
                "MISMATCH."
            },
            self.0.report_id
        )
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct RecordPrint(RecordView);

impl fmt::Display for RecordPrint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.0;
        writeln!(
            f,
            "{} {}: {}",
            r.table,
            r.key,
            match (r.in_source, r.in_target, r.equal) {
                (true, true, true) => "equal",
                (true, true, false) => "different",
                (true, false, _) => "missing in the target",
                _ => "only in the target",
            }
        )?;
        let mut table = output::table(["", "Column", "Source", "Target"]);
        for c in &r.columns {
            table.add_row([
                if c.equal { " " } else { "≠" }.to_owned(),
                c.column.clone(),
                output::preview(&c.source.to_string(), 40),
                output::preview(&c.target.to_string(), 40),
            ]);
        }
        f.write_str(&output::render(&table))
    }
}

#[derive(Serialize)]
struct CheckpointsView {
    checkpoints: Vec<CheckpointRow>,
}

impl fmt::Display for CheckpointsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.checkpoints.is_empty() {
            return f.write_str("No checkpoints.");
        }
        let mut table = output::table([
            "Table",
            "Status",
            "Chunks",
            "Inserted",
            "Updated",
            "Deleted",
            "Last key",
            "Updated at",
        ]);
        for c in &self.checkpoints {
            table.add_row([
                c.table.clone(),
                c.status.clone(),
                c.chunks_done.to_string(),
                c.rows_inserted.to_string(),
                c.rows_updated.to_string(),
                c.rows_deleted.to_string(),
                c.last_key.clone().unwrap_or_else(|| "-".into()),
                c.updated_at.clone(),
            ]);
        }
        f.write_str(&output::render(&table))
    }
}

#[derive(Serialize)]
struct Removed {
    removed: u64,
}

impl fmt::Display for Removed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Removed {} checkpoint(s); the next run starts from the first key.",
            self.removed
        )
    }
}

#[derive(Serialize)]
struct Untracked {
    tables: usize,
}

impl fmt::Display for Untracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Removed change tracking of {} table(s) from the source; the next tracked run compares in full.",
            self.tables
        )
    }
}

#[derive(Serialize)]
struct JobsView {
    jobs: Vec<acode_migrate::jobs::Job>,
}

impl fmt::Display for JobsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.jobs.is_empty() {
            return f.write_str("No jobs.");
        }
        let mut table = output::table(["Job", "Schedule", "Source", "Log"]);
        for j in &self.jobs {
            table.add_row([
                j.name.clone(),
                j.schedule.clone(),
                j.source.clone(),
                j.log_path.clone(),
            ]);
        }
        f.write_str(&output::render(&table))
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct RunRecordView(acode_migrate::jobs::RunRecord);

impl fmt::Display for RunRecordView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.0;
        write!(
            f,
            "Job {} {}: inserted {}, updated {}, deleted {} in {} ms",
            r.job, r.status, r.rows_inserted, r.rows_updated, r.rows_deleted, r.duration_ms
        )
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct JobStatusView(JobStatus);

impl fmt::Display for JobStatusView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        writeln!(
            f,
            "Job {} ({}) from {}",
            s.job.name, s.job.schedule, s.job.source
        )?;
        writeln!(f, "Running now: {}", if s.running { "yes" } else { "no" })?;
        writeln!(
            f,
            "Next run:    {}",
            s.next_run_at.as_deref().unwrap_or("-")
        )?;
        writeln!(f, "Log:         {}", s.job.log_path)?;
        let mut table = output::table([
            "Started", "Status", "Took", "Inserted", "Updated", "Deleted", "Error",
        ]);
        for r in &s.history {
            table.add_row([
                r.started_at.clone(),
                r.status.clone(),
                format!("{} ms", r.duration_ms),
                r.rows_inserted.to_string(),
                r.rows_updated.to_string(),
                r.rows_deleted.to_string(),
                r.error.clone().unwrap_or_default(),
            ]);
        }
        f.write_str(&output::render(&table))
    }
}

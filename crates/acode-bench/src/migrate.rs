//! `acode migrate run` of an SQLite file into a fresh PostgreSQL database,
//! against pgloader loading the same file into another fresh database in
//! the same run (BENCH.md); then the re-run after 1 % of the rows changed,
//! against the full run: with the change log (`--track-changes`), and
//! again with every row compared; then `validate`. The full run goes in a
//! child process of this binary (`--child`), as does a full run of a file
//! half the size, so that their peak memory is their own: it must not grow
//! with the rows (BENCH.md rule 4). Two more full runs of each size at the
//! end make each size's memory figure the median of three.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acode_migrate::{Migrator, NoProgress, Options};
use acode_testkit::TestDb;
use anyhow::Context;

use crate::fixture::{median, memory_row, status_mib};
use crate::report::Row;

/// Full runs of each size whose peak memory is measured.
const MEMORY_RUNS: usize = 3;

#[derive(clap::Args)]
pub struct Args {
    /// Rows in all.
    #[arg(long, default_value_t = 1_200_000, value_parser = clap::value_parser!(u64).range(60..))]
    rows: u64,
    /// The source's tables.
    #[arg(long, value_enum, default_value_t = Shape::OrderSystem)]
    shape: Shape,
    /// Internal: one tracked full run of SOURCE into TARGET (a URL) that
    /// must copy ROWS rows, writing "seconds peak_mib" to RESULT.
    #[arg(long, hide = true, num_args = 4, value_names = ["SOURCE", "TARGET", "ROWS", "RESULT"])]
    child: Option<Vec<String>>,
}

/// What the generated source holds.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Shape {
    /// Customers, their orders and the orders' lines (1 : 2 : 3): an
    /// integer key, a foreign key, a composite key, text, reals, BLOBs.
    OrderSystem,
    /// One parent table and one child table with a foreign key to it
    /// (5 : 1: the 1,000,000 parents and 200,000 children).
    ParentChild,
}

/// The full run puts change tracking in place first (its cost is in the
/// figure).
fn tracked() -> Options {
    Options {
        track_changes: true,
        ..Options::default()
    }
}

/// The child's side: one full run, timed from inside, with its peak
/// memory: the peak RSS (VmHWM), which counts the pages of the source
/// file SQLite maps (`mmap_size`), and the peak of the process's own
/// memory (RssAnon, read every 5 ms: the kernel keeps no peak of it).
fn child(source: &Path, target: &str, rows: u64, result: &Path) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let migrator = Migrator::new(&format!("sqlite:{}", source.display()), target)?;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0f64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(status_mib("RssAnon:").unwrap_or(0.0));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak.max(status_mib("RssAnon:").unwrap_or(0.0))
        })
    };
    let started = Instant::now();
    let full = rt.block_on(migrator.run(&tracked(), &NoProgress));
    let secs = started.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let anon = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("the memory sampler stopped"))?;
    let full = full?;
    anyhow::ensure!(
        full.tables.iter().map(|t| t.counts.inserted).sum::<u64>() == rows,
        "the full run copied {full:?}"
    );
    let peak = status_mib("VmHWM:").unwrap_or(f64::NAN);
    std::fs::write(result, format!("{secs} {peak} {anon}"))?;
    Ok(())
}

/// A full run in a child process: its time, its peak RSS and the peak of
/// its own memory (MiB).
struct ChildRun {
    took: Duration,
    peak_rss: f64,
    peak_anon: f64,
}

fn full_in_child(source: &Path, target: &str, rows: u64) -> anyhow::Result<ChildRun> {
    let result = tempfile::NamedTempFile::new()?;
    let status = Command::new(std::env::current_exe()?)
        .args(["migrate", "--child"])
        .arg(source)
        .arg(target)
        .arg(rows.to_string())
        .arg(result.path())
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "the full run's child failed: {status}");
    let text = std::fs::read_to_string(result.path())?;
    let mut parts = text.split_whitespace();
    let mut next = || -> anyhow::Result<f64> {
        Ok(parts.next().context("short child result")?.parse::<f64>()?)
    };
    let (secs, peak_rss, peak_anon) = (next()?, next()?, next()?);
    Ok(ChildRun {
        took: Duration::from_secs_f64(secs),
        peak_rss,
        peak_anon,
    })
}

pub fn run(args: &Args, quick: bool) -> anyhow::Result<Vec<Row>> {
    if let Some([source, target, rows, result]) = args.child.as_deref() {
        child(Path::new(source), target, rows.parse()?, Path::new(result))?;
        return Ok(Vec::new());
    }
    let rows = if quick { 12_000 } else { args.rows };
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("shop.db");
    generate(args.shape, &source, rows)?;
    // Half the rows: the fixed buffers (chunks in flight, SQLite's page
    // caches) are full at both sizes, so what grows with rows shows.
    let small = dir.path().join("shop-half.db");
    let small_rows = rows / 2;
    generate(args.shape, &small, small_rows)?;
    // pgloader loads the file as it was before acode put its change log
    // in place (acode's log tables are not pgloader's work). It goes
    // first, so that acode's re-runs follow acode's own full run, as they
    // would for a user, and not another tool's load of the same size.
    let pristine = dir.path().join("shop-for-pgloader.db");
    std::fs::copy(&source, &pristine).context("copying the source for pgloader")?;
    let theirs_db = TestDb::create();
    let theirs = pgloader(&pristine, &theirs_db.url())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let spec = format!("sqlite:{}", source.display());

    // The small file's run first: the re-runs follow the full run
    // directly (dropping a database forces a checkpoint, so it waits till
    // the end).
    let small_db = TestDb::create();
    let small_run = full_in_child(&small, &small_db.url(), small_rows)?;
    let ours_db = TestDb::create();
    let full_run = full_in_child(&source, &ours_db.url(), rows)?;
    let ours = full_run.took;
    let migrator = Migrator::new(&spec, &ours_db.url())?;
    let tracked = tracked();

    change_one_percent(args.shape, &source)?;
    let started = Instant::now();
    let rerun = rt.block_on(migrator.run(&tracked, &NoProgress))?;
    let again = started.elapsed();
    let changed: u64 = rerun.tables.iter().map(|t| t.counts.updated).sum();
    anyhow::ensure!(
        rerun.tables.iter().all(|t| t.counts.incremental),
        "the tracked re-run compared in full: {rerun:?}"
    );
    // The same without the change log: every row compared.
    change_one_percent(args.shape, &source)?;
    let started = Instant::now();
    let compared = rt.block_on(migrator.run(&Options::default(), &NoProgress))?;
    let compare_all = started.elapsed();
    let compared_changed: u64 = compared.tables.iter().map(|t| t.counts.updated).sum();
    let started = Instant::now();
    let validated = rt.block_on(migrator.validate(&Options::default()))?;
    let validate = started.elapsed();
    anyhow::ensure!(validated.ok, "validate found differences: {validated:?}");

    // More full runs of each size, for memory only (after the timed
    // figures, so they disturb none): a peak varies by a megabyte or two
    // from run to run with how far the readers get ahead of PostgreSQL,
    // whatever the size, so each size's figure is the median of its runs.
    let (mut small_runs, mut full_runs) = (vec![small_run], vec![full_run]);
    let mut memory_dbs = Vec::new();
    for _ in 1..MEMORY_RUNS {
        for (file, n, runs) in [
            (&small, small_rows, &mut small_runs),
            (&pristine, rows, &mut full_runs),
        ] {
            let db = TestDb::create();
            runs.push(full_in_child(file, &db.url(), n)?);
            memory_dbs.push(db);
        }
    }
    let spread = |runs: &[ChildRun], f: fn(&ChildRun) -> f64| {
        let values: Vec<f64> = runs.iter().map(f).collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(0.0, f64::max);
        (median(values), format!("{lo:.1}–{hi:.1}"))
    };
    let (anon_full, anon_full_range) = spread(&full_runs, |r| r.peak_anon);
    let (anon_small, anon_small_range) = spread(&small_runs, |r| r.peak_anon);
    let (rss_full, rss_full_range) = spread(&full_runs, |r| r.peak_rss);
    let (rss_small, rss_small_range) = spread(&small_runs, |r| r.peak_rss);

    let secs = |d: Duration| d.as_secs_f64();
    Ok(vec![
        Row {
            figure: format!("acode migrate run, {rows} rows, fresh target"),
            value: rows as f64 / secs(ours),
            unit: "rows/s",
            reference: "pgloader, same file, fresh database".into(),
            reference_value: rows as f64 / secs(theirs),
            ratio: secs(theirs) / secs(ours),
            target: "≥ 2 × faster than pgloader".into(),
            meets_target: secs(theirs) / secs(ours) >= 2.0,
        },
        rerun_row(
            format!("re-run after 1 % changed, change log read ({changed} rows updated)"),
            again,
            ours,
            Some(0.10),
        ),
        rerun_row(
            format!(
                "re-run after 1 % changed, every row compared ({compared_changed} rows updated)"
            ),
            compare_all,
            ours,
            None,
        ),
        rerun_row(
            format!("validate, {rows} rows (counts, checksums, a sample compared)"),
            validate,
            ours,
            None,
        ),
        memory_row(
            format!(
                "peak own memory (RssAnon), full run of {rows} rows (median of {MEMORY_RUNS}: {anon_full_range})"
            ),
            anon_full,
            format!("the same, {small_rows} rows ({anon_small_range})"),
            anon_small,
            None,
        ),
        memory_row(
            format!(
                "peak RSS (VmHWM, with the mapped source), {rows} rows (median of {MEMORY_RUNS}: {rss_full_range})"
            ),
            rss_full,
            format!("the same, {small_rows} rows ({rss_small_range})"),
            rss_small,
            Some("none (file pages, reclaimable)"),
        ),
    ])
}

/// A re-run against the full run, with its target share when it has one.
fn rerun_row(figure: String, took: Duration, full: Duration, share: Option<f64>) -> Row {
    let ratio = took.as_secs_f64() / full.as_secs_f64();
    Row {
        figure,
        value: took.as_secs_f64() * 1000.0,
        unit: "ms",
        reference: "the full run".into(),
        reference_value: full.as_secs_f64() * 1000.0,
        ratio,
        target: share.map_or_else(
            || "none".to_owned(),
            |s| format!("≤ {s:.2} of the full run"),
        ),
        meets_target: share.is_none_or(|s| ratio <= s),
    }
}

/// A source of `shape` with `rows` rows in all, at `path`.
fn generate(shape: Shape, path: &Path, rows: u64) -> anyhow::Result<()> {
    match shape {
        Shape::OrderSystem => generate_orders(path, rows),
        Shape::ParentChild => generate_parents(path, rows),
    }
}

/// An order system: customers, their orders, the orders' lines.
fn generate_orders(path: &Path, rows: u64) -> anyhow::Result<()> {
    let customers = (rows / 6).max(1);
    let orders = customers * 2;
    let lines = rows - customers - orders;
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT,
                                 created_at TEXT NOT NULL, balance REAL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY,
                              customer_id INTEGER NOT NULL REFERENCES customers (id),
                              status TEXT NOT NULL, total REAL NOT NULL, placed_at TEXT NOT NULL);
         CREATE TABLE order_lines (order_id INTEGER NOT NULL REFERENCES orders (id),
                                   line INTEGER NOT NULL, product TEXT NOT NULL,
                                   quantity INTEGER NOT NULL, price REAL NOT NULL, note BLOB,
                                   PRIMARY KEY (order_id, line));
         BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {customers})
         INSERT INTO customers SELECT i, 'Customer ' || i, 'c' || i || '@example.com',
                '2026-01-01T00:00:00Z', i * 1.25 FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {orders})
         INSERT INTO orders SELECT i, (i % {customers}) + 1, 'placed', i * 0.5,
                '2026-02-01T00:00:00Z' FROM n;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {lines} - 1)
         INSERT INTO order_lines SELECT (i % {orders}) + 1, i / {orders} + 1, 'product ' || (i % 997),
                i % 7 + 1, (i % 1000) * 0.01, CASE WHEN i % 10 = 0 THEN randomblob(16) END FROM n;
         COMMIT;"
    ))
    .context("generating the source database")?;
    Ok(())
}

/// Parents and their children, five to one.
fn generate_parents(path: &Path, rows: u64) -> anyhow::Result<()> {
    let children = (rows / 6).max(1);
    let parents = rows - children;
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                               created_at TEXT NOT NULL, score REAL);
         CREATE TABLE children (id INTEGER PRIMARY KEY,
                                parent_id INTEGER NOT NULL REFERENCES parents (id),
                                body TEXT NOT NULL, amount REAL NOT NULL, data BLOB);
         BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {parents})
         INSERT INTO parents SELECT i, 'Parent ' || i, '2026-01-01T00:00:00Z', i * 0.25 FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {children})
         INSERT INTO children SELECT i, (i * 5 % {parents}) + 1, 'child ' || i || ' of a parent',
                i * 0.5, CASE WHEN i % 10 = 0 THEN randomblob(16) END FROM n;
         COMMIT;"
    ))
    .context("generating the source database")?;
    Ok(())
}

/// Updates 1 % of each table's rows, spread evenly (every 100th key).
fn change_one_percent(shape: Shape, path: &Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(match shape {
        Shape::OrderSystem => {
            "BEGIN;
             UPDATE customers SET balance = balance + 1 WHERE id % 100 = 0;
             UPDATE orders SET status = CASE status WHEN 'shipped' THEN 'placed' ELSE 'shipped' END WHERE id % 100 = 0;
             UPDATE order_lines SET quantity = quantity + 1 WHERE order_id % 100 = 0;
             COMMIT;"
        }
        Shape::ParentChild => {
            "BEGIN;
             UPDATE parents SET score = score + 1 WHERE id % 100 = 0;
             UPDATE children SET amount = amount + 1 WHERE id % 100 = 0;
             COMMIT;"
        }
    })?;
    Ok(())
}

/// Loads `source` with pgloader (Debian package `pgloader`) and returns
/// how long it took.
fn pgloader(source: &Path, target: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new("pgloader")
        .arg("--quiet")
        .arg(format!("sqlite://{}", source.display()))
        .arg(target.replacen("postgres://", "postgresql://", 1))
        .output()
        .context("running pgloader (install the Debian package pgloader)")?;
    let took = started.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "pgloader failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

//! Streamed export of messages (`acode export messages`) as JSON, CSV and
//! SQL into a file: rows/s against a plain rusqlite `SELECT` that reads the
//! same rows and columns and writes nothing (the read side's limit), and
//! peak RSS at two sizes ten times apart, to show that memory does not grow
//! with the rows (BENCH.md rule 4).
//!
//! Both databases are built first; then, per size, rounds of scan, JSON,
//! CSV, SQL alternate so disk and CPU noise hit all alike, and each figure
//! is the median of the rounds. Every pass runs in a fresh child process of
//! this binary (`--child`), so its peak RSS (VmHWM) is that pass's own and
//! not memory left over from building the databases.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;

use acode_backup::{ExportFilter, ExportFormat, ExportKind, export};
use acode_store::{OpenOptions, Store};

use crate::fixture::{median, memory_row, messages_db, peak_rss_mib};
use crate::report::Row;

#[derive(clap::Args)]
pub struct Args {
    /// Messages in the larger database; the smaller one has a tenth.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(10..))]
    rows: u64,
    /// Rounds per size (each: plain scan, JSON, CSV, SQL).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Internal: run one pass (`scan` or a format) on DB and write
    /// "rows seconds peak_kib" to RESULT.
    #[arg(long, hide = true, num_args = 3, value_names = ["PASS", "DB", "RESULT"])]
    child: Option<Vec<String>>,
}

/// The passes of a round: the plain scan, then each format.
const PASSES: [&str; 4] = ["scan", "JSON", "CSV", "SQL"];

const FORMATS: [(ExportFormat, &str); 3] = [
    (ExportFormat::Json, "JSON"),
    (ExportFormat::Csv, "CSV"),
    (ExportFormat::Sql, "SQL"),
];

/// About 200 bytes, with the characters each format must escape.
fn content(i: u64) -> String {
    format!(
        "message {i}: a chat turn of about two hundred bytes, with \"quotes\", commas, \
         an apostrophe (it's) and a line break\nso every format has something to escape; \
         the rest is ordinary text."
    )
}

/// One size's medians: scan and per-format rates, per-format peak RSS.
struct Measured {
    rows: u64,
    scan: f64,
    rates: [f64; 3],
    peaks: [f64; 3],
    scan_peak: f64,
}

/// The reference: every row and column of `messages` read as text.
fn plain_scan(store: &Store) -> anyhow::Result<u64> {
    let conn = store.connection();
    let mut stmt = conn.prepare(
        "SELECT id, chat_id, role, content, privacy, created_at, updated_at FROM messages",
    )?;
    let mut rows = stmt.query([])?;
    let (mut n, mut bytes) = (0u64, 0usize);
    while let Some(row) = rows.next()? {
        for i in 0..7 {
            let v: Option<String> = row.get(i)?;
            bytes += v.map_or(0, |s| s.len());
        }
        n += 1;
    }
    std::hint::black_box(bytes);
    Ok(n)
}

/// The child's side: one pass over `db`, its result written to `result`.
fn child(pass: &str, db: &Path, result: &Path) -> anyhow::Result<()> {
    let store = Store::open(db, &OpenOptions::default())?;
    let start = Instant::now();
    let rows = match FORMATS.iter().find(|(_, name)| *name == pass) {
        None => plain_scan(&store)?,
        Some((format, _)) => {
            let path = db.with_extension(pass);
            let mut file = File::create(&path)?;
            let done = export(
                &store,
                ExportKind::Messages,
                *format,
                &ExportFilter::default(),
                &mut file,
            )?;
            file.sync_data()?;
            std::fs::remove_file(&path)?;
            done.rows
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let peak = peak_rss_mib().unwrap_or(f64::NAN);
    std::fs::write(result, format!("{rows} {secs} {peak}"))?;
    Ok(())
}

/// Runs one pass in a child process: (rows/s, peak RSS in MiB).
fn pass_in_child(pass: &str, db: &Path, rows: u64) -> anyhow::Result<(f64, f64)> {
    let result = db.with_extension("result");
    let status = Command::new(std::env::current_exe()?)
        .args(["export", "--child", pass])
        .arg(db)
        .arg(&result)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(
        status.success(),
        "{pass} pass on {}: {status}",
        db.display()
    );
    let text = std::fs::read_to_string(&result)?;
    let mut parts = text.split_whitespace();
    let mut next = || -> anyhow::Result<f64> {
        Ok(parts.next().context("short child result")?.parse::<f64>()?)
    };
    let (done, secs, peak) = (next()?, next()?, next()?);
    anyhow::ensure!(
        done as u64 == rows,
        "{pass} pass read {done} rows, not {rows}"
    );
    Ok((rows as f64 / secs, peak))
}

fn measure(db: &Path, rows: u64, runs: u32) -> anyhow::Result<Measured> {
    pass_in_child("scan", db, rows)?; // warm-up: the file into the page cache
    let mut rates: [Vec<f64>; 4] = Default::default();
    let mut peaks = [0f64; 4];
    for _ in 0..runs {
        for (i, pass) in PASSES.iter().enumerate() {
            let (rate, peak) = pass_in_child(pass, db, rows)?;
            rates[i].push(rate);
            peaks[i] = peaks[i].max(peak);
        }
    }
    let [scan, json, csv, sql] = rates.map(median);
    Ok(Measured {
        rows,
        scan,
        rates: [json, csv, sql],
        peaks: [peaks[1], peaks[2], peaks[3]],
        scan_peak: peaks[0],
    })
}

pub fn run(args: &Args, quick: bool) -> anyhow::Result<Vec<Row>> {
    if let Some([pass, db, result]) = args.child.as_deref() {
        child(pass, Path::new(db), Path::new(result))?;
        return Ok(Vec::new());
    }
    let (large, runs) = if quick {
        (10_000, 1)
    } else {
        (args.rows, args.runs)
    };
    let small = large / 10;
    let dir = tempfile::tempdir()?;
    let (small_db, large_db) = (dir.path().join("small.db"), dir.path().join("large.db"));
    drop(messages_db(&small_db, small, 1000, content)?);
    drop(messages_db(&large_db, large, 1000, content)?);
    let sizes = [
        measure(&small_db, small, runs)?,
        measure(&large_db, large, runs)?,
    ];

    let mut out = Vec::new();
    for m in &sizes {
        for (i, (_, name)) in FORMATS.iter().enumerate() {
            out.push(Row {
                figure: format!(
                    "export messages as {name} to a file ({} rows, median of {runs})",
                    m.rows
                ),
                value: m.rates[i],
                unit: "rows/s",
                reference: "plain SELECT of the same rows, rusqlite, nothing written".into(),
                reference_value: m.scan,
                ratio: m.rates[i] / m.scan,
                target: "— (no target yet)".into(),
                meets_target: true,
            });
        }
    }
    let [small_m, large_m] = &sizes;
    for (i, (_, name)) in FORMATS.iter().enumerate() {
        let (big, little) = (large_m.peaks[i], small_m.peaks[i]);
        out.push(memory_row(
            format!("peak RSS, {name} export of {large} rows (own process)"),
            big,
            format!("peak RSS, same export of {small} rows"),
            little,
            None,
        ));
    }
    out.push(memory_row(
        format!("peak RSS, plain scan of {large} rows (own process)"),
        large_m.scan_peak,
        format!("peak RSS, plain scan of {small} rows"),
        small_m.scan_peak,
        Some("— (SQLite's page cache: 32 MiB)"),
    ));
    Ok(out)
}

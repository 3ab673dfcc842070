//! Throughput of `acode db backup` (`acode_backup::backup`, the code the
//! command runs) on a database of about 1 GB, gzip-compressed and with
//! `--no-compress`, against a plain file copy of the same database file
//! (`std::fs::copy` plus an fsync, since a backup is fsynced too) in the
//! same run: the disk's limit for moving those bytes.
//!
//! The messages hold chat-like text (words drawn from a small vocabulary),
//! so gzip meets data that compresses about as real chats do. Rounds of
//! copy, compressed backup and plain backup alternate after a warm-up copy;
//! each figure is the median, in MB/s of the database's size.

use std::path::Path;
use std::time::Instant;

use crate::fixture::{median, messages_db};
use crate::report::Row;

#[derive(clap::Args)]
pub struct Args {
    /// Approximate size of the database to back up, in MB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    mb: u64,
    /// Rounds (each: copy, compressed backup, plain backup).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
}

const WORDS: &[&str] = &[
    "the", "a", "to", "of", "and", "in", "is", "it", "that", "for", "you", "this", "with", "on",
    "file", "function", "error", "test", "value", "return", "change", "build", "run", "line",
    "config", "database", "query", "table", "row", "index", "commit", "branch", "merge", "fix",
    "should", "could", "would", "please", "thanks", "here", "there", "because", "when", "then",
    "rust", "cargo", "struct", "impl", "trait", "async", "await", "result", "option", "string",
    "let", "mut", "fn", "pub", "use", "mod", "match", "loop", "while", "if", "else", "true",
];

/// About 1 KB of chat-like text, different for every message.
fn chat_text(rng: &mut fastrand::Rng) -> String {
    let mut text = String::with_capacity(1100);
    while text.len() < 1000 {
        text.push_str(WORDS[rng.usize(..WORDS.len())]);
        text.push(if rng.u8(..12) == 0 { '\n' } else { ' ' });
    }
    text
}

fn mb_per_s(bytes: u64, start: Instant) -> f64 {
    bytes as f64 / 1e6 / start.elapsed().as_secs_f64()
}

/// A copy of `db` with its data on disk, as a backup leaves its file.
fn copy_and_sync(db: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(db, to)?;
    std::fs::File::open(to)?.sync_all()?;
    Ok(())
}

pub fn run(args: &Args, quick: bool) -> anyhow::Result<Vec<Row>> {
    let (mb, runs) = if quick { (20, 1) } else { (args.mb, args.runs) };
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("workspace.db");
    // ~1.5 KB per message row on disk (text, ids, times, index entries).
    let rows = mb * 1_000_000 / 1_500;
    let mut rng = fastrand::Rng::with_seed(7);
    drop(messages_db(&db, rows, 500, |_| chat_text(&mut rng))?);
    let bytes = std::fs::metadata(&db)?.len();
    let out = dir.path().join("backups");
    let copy = dir.path().join("copy.db");

    copy_and_sync(&db, &copy)?;
    std::fs::remove_file(&copy)?;
    let (mut copies, mut gz, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    let mut gz_bytes = 0;
    for _ in 0..runs {
        let start = Instant::now();
        copy_and_sync(&db, &copy)?;
        copies.push(mb_per_s(bytes, start));
        std::fs::remove_file(&copy)?;

        for (compress, rates) in [(true, &mut gz), (false, &mut plain)] {
            let start = Instant::now();
            let done = acode_backup::backup(&db, &out, compress)?;
            rates.push(mb_per_s(bytes, start));
            anyhow::ensure!(done.manifest.db_bytes > 0, "empty backup");
            if compress {
                gz_bytes = done.bytes;
            }
            std::fs::remove_file(&done.path)?;
            std::fs::remove_file(&done.manifest_path)?;
        }
    }
    let copy_rate = median(copies);
    let size = format!("{:.0} MB database", bytes as f64 / 1e6);
    let rows_out = [
        (
            format!(
                "acode db backup, gzip ({size} → {:.0} MB), median of {runs}",
                gz_bytes as f64 / 1e6
            ),
            median(gz),
        ),
        (
            format!("acode db backup --no-compress ({size}), median of {runs}"),
            median(plain),
        ),
    ];
    Ok(rows_out
        .into_iter()
        .map(|(figure, value)| Row {
            figure,
            value,
            unit: "MB/s",
            reference: "std::fs::copy + fsync of the same file".into(),
            reference_value: copy_rate,
            ratio: value / copy_rate,
            target: "— (no target yet)".into(),
            meets_target: true,
        })
        .collect())
}

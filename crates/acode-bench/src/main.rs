//! `acode-bench`: benchmarks that print ratios against references measured
//! in the same run (BENCH.md). Run one with
//! `cargo run --release -p acode-bench -- store-commit` (or `export`,
//! `backup`, `sync-drain`, `health`, `server`, `migrate`); `--quick` is the
//! smoke CI runs, `--json` is for machines.

mod backup;
mod export;
mod fixture;
mod health;
mod migrate;
mod report;
mod server;
mod store_commit;
mod sync_drain;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "acode-bench",
    about = "acode benchmarks (figures with same-run references)"
)]
struct Cli {
    /// Tiny sizes: checks the benchmark runs, measures nothing worth keeping.
    #[arg(long, global = true)]
    quick: bool,
    /// One JSON document instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Local commits with and without change capture: single-row latency at
    /// both durabilities, and bulk rows/s.
    StoreCommit(store_commit::Args),
    /// A pending outbox drained into PostgreSQL, against batched INSERT and
    /// COPY of the same rows; one batch's latency; conflict decision cost.
    SyncDrain(sync_drain::Args),
    /// Streamed export of messages (JSON, CSV, SQL) against a plain scan,
    /// with peak memory at two sizes.
    Export(export::Args),
    /// Local backup (compressed and not) against a plain file copy.
    Backup(backup::Args),
    /// A full health run (every check, cache off) against a bare SELECT 1.
    Health(health::Args),
    /// `acode migrate run` of an SQLite file against pgloader on the same
    /// file; the re-run after 1 % changed against the full run.
    Migrate(migrate::Args),
    /// The sync server: a write on one device visible on another (long-poll),
    /// p50/p99; 20 devices pushing through HTTP against the direct transport.
    Server(server::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rows = match cli.bench {
        Bench::StoreCommit(args) => store_commit::run(&args, cli.quick)?,
        Bench::Export(args) => export::run(&args, cli.quick)?,
        Bench::Backup(args) => backup::run(&args, cli.quick)?,
        Bench::SyncDrain(args) => sync_drain::run(&args, cli.quick)?,
        Bench::Health(args) => health::run(&args, cli.quick)?,
        Bench::Server(args) => server::run(&args, cli.quick)?,
        Bench::Migrate(args) => migrate::run(&args, cli.quick)?,
    };
    report::print(&rows, cli.json)
}

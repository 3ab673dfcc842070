//! `acode-bench`: benchmarks that print ratios against references measured
//! in the same run (BENCH.md). Run one with
//! `cargo run --release -p acode-bench -- store-commit`; `--quick` is the
//! smoke CI runs, `--json` is for machines.

mod report;
mod store_commit;

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rows = match cli.bench {
        Bench::StoreCommit(args) => store_commit::run(&args, cli.quick)?,
    };
    report::print(&rows, cli.json)
}

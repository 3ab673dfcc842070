//! A full `acode health` run (`acode_health::WorkspaceChecks`: the local
//! database, schema, queue, lag, failure rate, disk, database and WAL size,
//! and PostgreSQL reachability, connection slots and long transactions on
//! a fresh database) while everything is healthy, with the cache off so
//! every run runs every check. Reference: a bare `SELECT 1` round trip on
//! the same local store, in the same run.

use std::time::{Duration, Instant};

use acode_config::Config;
use acode_health::{CacheTtl, Status, WorkspaceChecks};
use acode_store::{NewChat, OpenOptions, Store};
use acode_testkit::TestDb;

use crate::report::Row;

#[derive(clap::Args)]
pub struct Args {
    /// Measured runs (after a warm-up of 10).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// Microseconds: the reference is far below a millisecond.
fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn run(args: &Args, quick: bool) -> anyhow::Result<Vec<Row>> {
    let runs = if quick { 10 } else { args.runs as usize };
    let dir = tempfile::tempdir()?;
    let pg = TestDb::create();
    let mut store = Store::open(dir.path().join("workspace.db"), &OpenOptions::default())?;
    store.write(|tx| {
        for i in 0..100 {
            tx.create_chat(&NewChat::new(format!("chat {i}")))?;
        }
        Ok(())
    })?;
    // The reference on its own connection to the same file.
    let reference = rusqlite::Connection::open(dir.path().join("workspace.db"))?;
    let mut config = Config::default();
    config.sync.remote.url = Some(pg.url());
    let no_env = |_: &str| None;
    let registry = WorkspaceChecks::new(config, store, dir.path(), &no_env)
        .build()?
        .with_ttl(CacheTtl {
            healthy: Duration::ZERO,
            degraded: Duration::ZERO,
            unhealthy: Duration::ZERO,
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let checks = registry.names().len();

    let (mut full, mut select) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs + 10 {
        let start = Instant::now();
        let report = rt.block_on(registry.run());
        let took = us(start.elapsed());
        anyhow::ensure!(
            report.status == Status::Healthy,
            "the benchmark needs everything healthy: {}",
            serde_json::to_string(&report)?
        );
        let start = Instant::now();
        let one: i64 = reference.query_row("SELECT 1", [], |r| r.get(0))?;
        let bare = us(start.elapsed());
        anyhow::ensure!(one == 1, "SELECT 1 returned {one}");
        if i >= 10 {
            full.push(took);
            select.push(bare);
        }
    }
    full.sort_by(f64::total_cmp);
    select.sort_by(f64::total_cmp);
    let reference_p50 = percentile(&select, 0.5);
    let row = |what: &str, p: f64| {
        let value = percentile(&full, p);
        Row {
            figure: format!("full health run, {checks} checks, all healthy, {what} of {runs}"),
            value,
            unit: "µs",
            reference: format!("bare SELECT 1 on the local store, p50 of {runs}"),
            reference_value: reference_p50,
            ratio: value / reference_p50,
            target: "< 50 ms (50000 µs)".into(),
            meets_target: value < 50_000.0,
        }
    };
    Ok(vec![row("p50", 0.5), row("p99", 0.99)])
}

//! `acode health`: runs every check of the workspace (`acode-health`) and
//! exits 0 Healthy, 1 Degraded, 2 Unhealthy. An error that keeps the
//! checks from running at all (no workspace, a bad config) is printed as
//! usual, `error[ACODE-…]`, and exits 2: nothing vouches for health then.

use std::fmt;
use std::time::Duration;

use acode_health::{HealthReport, Status, WorkspaceChecks};
use serde::Serialize;

use super::Ctx;
use crate::output;

#[derive(Serialize)]
#[serde(transparent)]
struct HealthView(HealthReport);

impl fmt::Display for HealthView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Health: {}", self.0.status)?;
        let mut table = output::table(["", "Check", "Status", "Took", "Message"]);
        for c in &self.0.checks {
            let mark = match c.status {
                Status::Healthy => "✓",
                Status::Degraded => "!",
                Status::Unhealthy => "✗",
            };
            table.add_row([
                mark.to_string(),
                c.name.clone(),
                c.status.to_string(),
                format!("{:.1} ms", c.duration_ms),
                c.message.clone(),
            ]);
        }
        f.write_str(&output::render(&table))
    }
}

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let report = match check(ctx) {
        Ok(report) => report,
        Err(e) => {
            let _ = output::error(&e, ctx.json);
            std::process::exit(i32::from(Status::Unhealthy.exit_code()));
        }
    };
    let status = report.status;
    ctx.print(&HealthView(report))?;
    if status != Status::Healthy {
        std::process::exit(i32::from(status.exit_code()));
    }
    Ok(())
}

fn check(ctx: &Ctx) -> anyhow::Result<HealthReport> {
    // Not migrated: pending migrations are a finding of the schema check.
    let (ws, config, store) = ctx.open_unmigrated()?;
    let env = |name: &str| std::env::var(name).ok();
    let registry = WorkspaceChecks::new(config, store, ws.root(), &env).build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(registry.run());
    // A check abandoned at its timeout may still sit in a blocking call.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(report)
}

//! `acode sync status`: the sync mode, the outbox queue and today's
//! counts. The sync engine is not part of this binary yet, so the mode is
//! never `online`: with a remote configured it says the engine is not
//! running rather than pretending to sync.

use std::fmt;

use acode_config::Config;
use acode_store::{Store, StoreError};
use chrono::Utc;
use serde::Serialize;

use super::Ctx;
use crate::cli::SyncCommand;
use crate::output;

#[derive(Serialize)]
pub struct SyncStatus {
    /// `online`, `offline` or `paused`.
    pub mode: &'static str,
    /// Why the mode is what it is.
    pub reason: &'static str,
    pub pending: i64,
    pub failed: i64,
    pub conflicts: i64,
    pub synced_today: i64,
    pub downloaded_today: i64,
    pub last_push_at: Option<String>,
    pub last_pull_at: Option<String>,
    /// Age of the oldest entry not yet uploaded (0 when none waits).
    pub lag_seconds: f64,
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = Utc::now();
        let when = |t: &Option<String>| {
            t.as_deref()
                .map_or("never".to_owned(), |t| output::ago(t, now))
        };
        let plural =
            |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        writeln!(f, "Sync status")?;
        writeln!(f, "{}", "─".repeat(28))?;
        writeln!(f, "Mode:        {} ({})", self.mode, self.reason)?;
        writeln!(
            f,
            "Last push:   {:<12}Last pull: {}",
            when(&self.last_push_at),
            when(&self.last_pull_at)
        )?;
        writeln!(
            f,
            "Queue:       {} pending, {} failed, {}",
            self.pending,
            self.failed,
            plural(self.conflicts, "conflict", "conflicts")
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "Local → remote   pending {} · synced today {} · failed {}",
            self.pending, self.synced_today, self.failed
        )?;
        write!(
            f,
            "Remote → local   downloaded today {} · lag {:.1}s",
            self.downloaded_today, self.lag_seconds
        )
    }
}

pub fn run(ctx: &Ctx, cmd: SyncCommand) -> anyhow::Result<()> {
    match cmd {
        SyncCommand::Status => {
            let (_, config, mut store) = ctx.open()?;
            ctx.print(&status(&config, &mut store)?)
        }
    }
}

/// The figures of `sync status` for this store.
pub fn status(config: &Config, store: &mut Store) -> Result<SyncStatus, StoreError> {
    let now_ms = Utc::now().timestamp_millis();
    let counts = store.read(|tx| tx.sync_counts(now_ms))?;
    let (mode, reason) = mode(counts.paused, config);
    Ok(SyncStatus {
        mode,
        reason,
        pending: counts.pending,
        failed: counts.failed,
        conflicts: counts.conflicts,
        synced_today: counts.synced_today,
        downloaded_today: counts.downloaded_today,
        last_push_at: counts.last_push_at,
        last_pull_at: counts.last_pull_at,
        lag_seconds: counts
            .oldest_pending_at
            .map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0),
    })
}

/// The mode and its reason. Without a running engine nothing is online.
fn mode(paused: bool, config: &Config) -> (&'static str, &'static str) {
    let has_remote = config
        .sync
        .remote
        .url
        .as_deref()
        .is_some_and(|u| !u.trim().is_empty());
    if paused {
        (
            "paused",
            "paused by `acode sync pause`; changes keep queueing",
        )
    } else if !config.sync.enabled {
        ("offline", "sync disabled")
    } else if !has_remote {
        ("offline", "no remote configured")
    } else {
        ("offline", "sync engine not running")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_is_never_online_without_an_engine() {
        let mut config = Config::default();
        assert_eq!(mode(false, &config), ("offline", "no remote configured"));
        config.sync.remote.url = Some("https://sync.example".into());
        assert_eq!(mode(false, &config), ("offline", "sync engine not running"));
        assert_eq!(mode(true, &config).0, "paused");
        config.sync.enabled = false;
        assert_eq!(mode(false, &config), ("offline", "sync disabled"));
    }
}

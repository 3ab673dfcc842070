//! What `acode sync status` shows: the mode (from the configuration, the
//! pause flag and what the last sync found), the queue and today's counts.

use acode_config::Config;
use acode_store::{Store, StoreError};
use serde::Serialize;

use crate::engine::Mode;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyncStatus {
    pub mode: Mode,
    /// Why the mode is what it is.
    pub reason: String,
    pub pending: i64,
    pub failed: i64,
    pub conflicts: i64,
    pub synced_today: i64,
    pub downloaded_today: i64,
    pub last_push_at: Option<String>,
    pub last_pull_at: Option<String>,
    /// Age of the oldest entry not yet uploaded (0 when none waits).
    pub lag_seconds: f64,
    /// Pulled changes set aside because they could not be applied.
    pub inbox_errors: i64,
    /// The worker holding the lease, if one runs.
    pub worker: Option<String>,
}

/// The status of this workspace at `now_ms`.
pub fn status(config: &Config, store: &mut Store, now_ms: i64) -> Result<SyncStatus, StoreError> {
    store.read(|tx| {
        let counts = tx.sync_counts(now_ms)?;
        let worker = tx
            .lease()?
            .filter(|l| l.expires_at > now_ms)
            .map(|l| l.owner);
        let inbox_errors = tx.inbox()?.iter().filter(|e| e.status == "error").count() as i64;
        let has_remote = config
            .sync
            .remote
            .url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty());
        let last = tx.state("mode")?;
        let (mode, reason) = if counts.paused {
            (
                Mode::Paused,
                "paused by `acode sync pause`; changes keep queueing".to_string(),
            )
        } else if !config.sync.enabled {
            (
                Mode::Offline,
                "sync disabled (sync.enabled is false)".to_string(),
            )
        } else if !has_remote {
            (
                Mode::Offline,
                "no remote configured (sync.remote.url)".to_string(),
            )
        } else {
            match last.as_deref() {
                Some("online") => (Mode::Online, "the last sync reached the remote".to_string()),
                Some(_) => (Mode::Offline, tx.state("mode_reason")?.unwrap_or_default()),
                None => (
                    Mode::Offline,
                    "not synced yet: run `acode sync now` or `acode sync run`".to_string(),
                ),
            }
        };
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
            inbox_errors,
            worker,
        })
    })
}

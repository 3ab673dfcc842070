//! The upload queue: how many changes wait (`outbox`), how long the oldest
//! has waited (`sync_lag`), and how many recent uploads failed
//! (`failure_rate`).
//!
//! A workspace that does not sync (no remote, or `sync.enabled: false`)
//! keeps its changes locally by design: there the queue is reported but
//! never counts against health. A paused one is capped at Degraded: the
//! pause was asked for, but the queue still grows.

use std::sync::Arc;
use std::time::Duration;

use acode_store::SyncCounts;
use rusqlite::Connection;
use serde::Serialize;
use serde_json::json;

use crate::check::{Check, CheckError, CheckFuture, CheckResult, Status};
use crate::clock::Clock;
use crate::local::LocalDb;
use crate::thresholds::Lines;

/// What the queue checks share: the store, the clock, and whether this
/// workspace syncs at all.
#[derive(Clone)]
pub struct QueueSource {
    pub db: LocalDb,
    pub clock: Arc<dyn Clock>,
    /// A remote is configured and sync is enabled.
    pub syncs: bool,
}

impl QueueSource {
    async fn counts(&self) -> Result<SyncCounts, CheckError> {
        let now = self.clock.unix_millis();
        self.db
            .with(move |store| Ok(store.read(|tx| tx.sync_counts(now))?))
            .await
    }

    /// The status to report: none when the workspace does not sync, at
    /// most Degraded while paused.
    fn judge(&self, status: Status, paused: bool) -> Status {
        match (self.syncs, paused) {
            (false, _) => Status::Healthy,
            (true, true) => status.min(Status::Degraded),
            (true, false) => status,
        }
    }

    fn note(&self, paused: bool) -> &'static str {
        match (self.syncs, paused) {
            (false, _) => " (this workspace does not sync: changes stay local)",
            (true, true) => " (sync is paused)",
            (true, false) => "",
        }
    }
}

pub struct OutboxCheck {
    source: QueueSource,
    lines: Lines<u64>,
}

impl OutboxCheck {
    pub fn new(source: QueueSource, lines: Lines<u64>) -> Self {
        OutboxCheck { source, lines }
    }
}

impl Check for OutboxCheck {
    fn name(&self) -> &str {
        "outbox"
    }

    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let c = self.source.counts().await?;
            let pending = c.pending.max(0).unsigned_abs();
            let status = self.source.judge(self.lines.growing(pending), c.paused);
            let message = format!(
                "{pending} change(s) waiting to upload, {} failed (Degraded at {}, Unhealthy at {}){}",
                c.failed,
                self.lines.degraded,
                self.lines.unhealthy,
                self.source.note(c.paused)
            );
            let data = json!({ "pending": c.pending, "failed": c.failed, "conflicts": c.conflicts, "paused": c.paused });
            Ok(CheckResult::new(status, message, data))
        })
    }
}

pub struct LagCheck {
    source: QueueSource,
    lines: Lines<Duration>,
}

impl LagCheck {
    pub fn new(source: QueueSource, lines: Lines<Duration>) -> Self {
        LagCheck { source, lines }
    }
}

impl Check for LagCheck {
    fn name(&self) -> &str {
        "sync_lag"
    }

    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let now = self.source.clock.unix_millis();
            let c = self.source.counts().await?;
            let lag_ms = c.oldest_pending_at.map_or(0, |t| (now - t).max(0));
            let lag = Duration::from_millis(lag_ms.unsigned_abs());
            let status = self.source.judge(self.lines.growing(lag), c.paused);
            let message = match c.oldest_pending_at {
                None => "nothing waiting to upload".to_string(),
                Some(_) => format!(
                    "oldest change waiting {:.1}s (Degraded at {}s, Unhealthy at {}s){}",
                    lag.as_secs_f64(),
                    self.lines.degraded.as_secs(),
                    self.lines.unhealthy.as_secs(),
                    self.source.note(c.paused)
                ),
            };
            let data = json!({ "lag_seconds": lag.as_secs_f64(), "oldest_pending_at": c.oldest_pending_at, "paused": c.paused });
            Ok(CheckResult::new(status, message, data))
        })
    }
}

/// Uploads settled in a window: failed entries against all settled ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FailureWindow {
    /// Entries that failed for good (they wait for `acode sync retry`).
    pub failed: i64,
    /// Changes the remote took (the `push` lines of the sync log).
    pub uploaded: i64,
}

impl FailureWindow {
    pub fn settled(&self) -> i64 {
        self.failed + self.uploaded
    }

    /// failed / settled; 0 when nothing settled.
    pub fn rate(&self) -> f64 {
        match self.settled() {
            0 => 0.0,
            n => self.failed as f64 / n as f64,
        }
    }
}

/// The failure window since `since_ms` (unix ms). Uploaded entries leave
/// the outbox when they settle, so their count comes from the sync log;
/// failed ones stay, with the time they settled.
pub fn failure_window(conn: &Connection, since_ms: i64) -> rusqlite::Result<FailureWindow> {
    let failed = conn
        .prepare_cached(
            "SELECT count(*) FROM sync_outbox WHERE status = 'failed' AND settled_at >= ?1",
        )?
        .query_row([since_ms], |r| r.get(0))?;
    let uploaded = conn
        .prepare_cached(
            "SELECT coalesce(sum(count), 0) FROM sync_log WHERE kind = 'push' AND at >= ?1",
        )?
        .query_row([since_ms], |r| r.get(0))?;
    Ok(FailureWindow { failed, uploaded })
}

pub struct FailureRateCheck {
    source: QueueSource,
    window: Duration,
    min_settled: u64,
    lines: Lines<f64>,
}

impl FailureRateCheck {
    pub fn new(source: QueueSource, window: Duration, min_settled: u64, lines: Lines<f64>) -> Self {
        FailureRateCheck {
            source,
            window,
            min_settled,
            lines,
        }
    }
}

impl Check for FailureRateCheck {
    fn name(&self) -> &str {
        "failure_rate"
    }

    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
            let since = self.source.clock.unix_millis().saturating_sub(window_ms);
            let w = self
                .source
                .db
                .with(move |store| Ok(failure_window(store.connection(), since)?))
                .await?;
            let minutes = self.window.as_secs() / 60;
            let rate = w.rate();
            let data = json!({ "failed": w.failed, "uploaded": w.uploaded, "rate": rate, "window_minutes": minutes });
            let settled = w.settled().max(0).unsigned_abs();
            if settled < self.min_settled {
                let message = format!(
                    "{} failed of {settled} settled in the last {minutes} min: too few to judge (at least {})",
                    w.failed, self.min_settled
                );
                return Ok(CheckResult::healthy(message, data));
            }
            let message = format!(
                "{} failed of {settled} settled in the last {minutes} min ({:.1} %; Degraded at {:.0} %, Unhealthy at {:.0} %)",
                w.failed,
                rate * 100.0,
                self.lines.degraded * 100.0,
                self.lines.unhealthy * 100.0
            );
            Ok(CheckResult::new(self.lines.growing(rate), message, data))
        })
    }
}

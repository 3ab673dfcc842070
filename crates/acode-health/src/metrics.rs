//! Every metric of acode, declared in one place (Prometheus names prefixed
//! `acode_`, DESIGN.md §9), and the text `/metrics` answers with.
//!
//! [`Metrics`] owns its recorder instead of installing a process-wide one,
//! so a library never fights its embedder for the global slot and tests
//! stay independent. Gauges are read from the store when rendering
//! ([`Metrics::render_store`]); counters and the latency histogram are fed
//! by whoever runs the engine ([`Metrics::record_sync_report`],
//! [`Metrics::record_batch_latency`]).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use acode_store::{Store, StoreError};
use acode_sync::{Mode, SyncReport};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use acode_protocol::{ErrorCode, ItemResult};

use crate::registry::HealthReport;

/// Outbox entries by `status` (`pending`: waiting or in flight; `failed`).
pub const QUEUE_DEPTH: &str = "acode_queue_depth";
/// Age of the oldest change not yet uploaded.
pub const LAG_SECONDS: &str = "acode_sync_lag_seconds";
/// Conflicts not yet acknowledged.
pub const CONFLICTS_OPEN: &str = "acode_conflicts_open";
/// Failed outbox entries by the error `code` that failed them.
pub const FAILED_ENTRIES: &str = "acode_failed_entries";
pub const DB_SIZE_BYTES: &str = "acode_db_size_bytes";
pub const WAL_SIZE_BYTES: &str = "acode_wal_size_bytes";
/// Changes uploaded and taken by the remote.
pub const PUSHED_TOTAL: &str = "acode_pushed_changes_total";
/// Upload batches sent, answered or not.
pub const PUSH_BATCHES_TOTAL: &str = "acode_push_batches_total";
/// Remote changes applied locally.
pub const PULLED_TOTAL: &str = "acode_pulled_changes_total";
pub const CONFLICTS_TOTAL: &str = "acode_conflicts_total";
/// Sync failures by error `code` (failed changes, unreachable remote).
pub const FAILURES_TOTAL: &str = "acode_sync_failures_total";
/// Push of one batch, from send to settle.
pub const BATCH_LATENCY: &str = "acode_batch_latency_seconds";
/// Each health `check`'s last status: 0 Healthy, 1 Degraded, 2 Unhealthy.
pub const HEALTH_STATUS: &str = "acode_health_status";

/// Server: requests answered, by `route` and HTTP `status`.
pub const SERVER_REQUESTS_TOTAL: &str = "acode_server_requests_total";
/// Server: pushed changes by `result` (applied, duplicate, conflict, rejected).
pub const SERVER_CHANGES_TOTAL: &str = "acode_server_changes_total";
/// Server: conflicts decided while ingesting.
pub const SERVER_CONFLICTS_TOTAL: &str = "acode_server_conflicts_total";
/// Server: changes served by pulls.
pub const SERVER_PULLED_TOTAL: &str = "acode_server_pulled_changes_total";
/// Server: failed requests and rejected changes by error `code`.
pub const SERVER_FAILURES_TOTAL: &str = "acode_server_failures_total";
/// Server: one push, from the body read to the answer.
pub const SERVER_PUSH_LATENCY: &str = "acode_server_push_latency_seconds";
/// Server: long-polls waiting for a change now.
pub const SERVER_LONG_POLLS: &str = "acode_server_long_polls_waiting";
/// Server: PostgreSQL pool connections by `state` (in_use, idle).
pub const SERVER_POOL: &str = "acode_server_pool_connections";

/// Batch latency buckets, seconds: the 20 ms target sits in the middle.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Error codes given a failed-entries gauge, so one that no longer
    /// fails anything is set back to 0 instead of keeping its last value.
    codes_seen: Mutex<BTreeSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        let builder = builder
            .set_buckets_for_metric(Matcher::Full(BATCH_LATENCY.into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(SERVER_PUSH_LATENCY.into()), LATENCY_BUCKETS)
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics {
            recorder,
            handle,
            codes_seen: Mutex::new(BTreeSet::new()),
        };
        metrics.with(describe);
        metrics
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// Counts what one sync run did (`sync_now`, a worker round).
    pub fn record_sync_report(&self, report: &SyncReport) {
        self.with(|| {
            counter!(PUSHED_TOTAL).increment(report.uploaded as u64);
            counter!(PUSH_BATCHES_TOTAL).increment(report.batches as u64);
            counter!(PULLED_TOTAL).increment(report.downloaded as u64);
            counter!(CONFLICTS_TOTAL).increment(report.conflicts as u64);
            let code = report.last_error.as_deref().map_or("unknown", code_of);
            if report.failed > 0 {
                counter!(FAILURES_TOTAL, "code" => code.to_string())
                    .increment(report.failed as u64);
            }
            if report.mode == Mode::Offline {
                counter!(FAILURES_TOTAL, "code" => code.to_string()).increment(1);
            }
        });
    }

    /// One batch's push-to-settle time.
    pub fn record_batch_latency(&self, took: Duration) {
        self.with(|| histogram!(BATCH_LATENCY).record(took.as_secs_f64()));
    }

    /// Each check's status as a gauge.
    pub fn record_health(&self, report: &HealthReport) {
        self.with(|| {
            for c in &report.checks {
                gauge!(HEALTH_STATUS, "check" => c.name.clone())
                    .set(f64::from(c.status.exit_code()));
            }
        });
    }

    /// Reads the store's queue, conflicts and file sizes into the gauges,
    /// as of `now_ms` (unix ms).
    pub fn observe_store(&self, store: &mut Store, now_ms: i64) -> Result<(), StoreError> {
        let counts = store.read(|tx| tx.sync_counts(now_ms))?;
        let by_code = failed_by_code(store)?;
        let wal = {
            let mut name = store.path().as_os_str().to_owned();
            name.push("-wal");
            std::path::PathBuf::from(name)
        };
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len()) as f64;
        let (db_bytes, wal_bytes) = (size(store.path()), size(&wal));
        let mut seen = self.codes_seen.lock().unwrap_or_else(|p| p.into_inner());
        self.with(|| {
            gauge!(QUEUE_DEPTH, "status" => "pending").set(counts.pending as f64);
            gauge!(QUEUE_DEPTH, "status" => "failed").set(counts.failed as f64);
            let lag = counts.oldest_pending_at.map_or(0, |t| (now_ms - t).max(0));
            gauge!(LAG_SECONDS).set(lag as f64 / 1000.0);
            gauge!(CONFLICTS_OPEN).set(counts.conflicts as f64);
            gauge!(DB_SIZE_BYTES).set(db_bytes);
            gauge!(WAL_SIZE_BYTES).set(wal_bytes);
            for code in seen.iter() {
                if !by_code.iter().any(|(c, _)| c == code) {
                    gauge!(FAILED_ENTRIES, "code" => code.clone()).set(0.0);
                }
            }
            for (code, n) in &by_code {
                gauge!(FAILED_ENTRIES, "code" => code.clone()).set(*n as f64);
            }
        });
        seen.extend(by_code.into_iter().map(|(c, _)| c));
        Ok(())
    }

    /// Server: one answered request.
    pub fn record_request(&self, route: &'static str, status: u16) {
        self.with(|| {
            counter!(SERVER_REQUESTS_TOTAL, "route" => route, "status" => status.to_string())
                .increment(1);
        });
    }

    /// Server: what one push did, and how long it took.
    pub fn record_push(&self, results: &[ItemResult], took: Duration) {
        self.with(|| {
            for r in results {
                let result = match r {
                    ItemResult::Applied { .. } => "applied",
                    ItemResult::Duplicate { .. } => "duplicate",
                    ItemResult::Conflict { .. } => {
                        counter!(SERVER_CONFLICTS_TOTAL).increment(1);
                        "conflict"
                    }
                    ItemResult::Rejected { code, .. } => {
                        counter!(SERVER_FAILURES_TOTAL, "code" => code.clone()).increment(1);
                        "rejected"
                    }
                };
                counter!(SERVER_CHANGES_TOTAL, "result" => result).increment(1);
            }
            histogram!(SERVER_PUSH_LATENCY).record(took.as_secs_f64());
        });
    }

    /// Server: changes one pull served.
    pub fn record_pulled(&self, changes: usize) {
        self.with(|| counter!(SERVER_PULLED_TOTAL).increment(changes as u64));
    }

    /// Server: a request that failed with `code`.
    pub fn record_failure(&self, code: ErrorCode) {
        self.with(|| counter!(SERVER_FAILURES_TOTAL, "code" => code.code()).increment(1));
    }

    /// Server: a long-poll starts (`+1.0`) or ends (`-1.0`) waiting.
    pub fn long_polls(&self, delta: f64) {
        self.with(|| gauge!(SERVER_LONG_POLLS).increment(delta));
    }

    /// Server: the PostgreSQL pool as it stands.
    pub fn observe_pool(&self, in_use: usize, idle: usize) {
        self.with(|| {
            gauge!(SERVER_POOL, "state" => "in_use").set(in_use as f64);
            gauge!(SERVER_POOL, "state" => "idle").set(idle as f64);
        });
    }

    /// The Prometheus text format of every metric as it stands.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// [`Metrics::observe_store`] then [`Metrics::render`]: what `/metrics`
    /// answers for a store.
    pub fn render_store(&self, store: &mut Store, now_ms: i64) -> Result<String, StoreError> {
        self.observe_store(store, now_ms)?;
        Ok(self.render())
    }
}

fn describe() {
    describe_counter!(
        SERVER_REQUESTS_TOTAL,
        Unit::Count,
        "Server: requests answered, by route and HTTP status."
    );
    describe_counter!(
        SERVER_CHANGES_TOTAL,
        Unit::Count,
        "Server: pushed changes by result."
    );
    describe_counter!(
        SERVER_CONFLICTS_TOTAL,
        Unit::Count,
        "Server: conflicts decided while ingesting."
    );
    describe_counter!(
        SERVER_PULLED_TOTAL,
        Unit::Count,
        "Server: changes served by pulls."
    );
    describe_counter!(
        SERVER_FAILURES_TOTAL,
        Unit::Count,
        "Server: failed requests and rejected changes by error code."
    );
    describe_histogram!(
        SERVER_PUSH_LATENCY,
        Unit::Seconds,
        "Server: one push, from the body read to the answer."
    );
    describe_gauge!(
        SERVER_LONG_POLLS,
        Unit::Count,
        "Server: long-polls waiting for a change."
    );
    describe_gauge!(
        SERVER_POOL,
        Unit::Count,
        "Server: PostgreSQL pool connections by state."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Outbox entries by status (pending includes in flight)."
    );
    describe_gauge!(
        LAG_SECONDS,
        Unit::Seconds,
        "Age of the oldest change not yet uploaded."
    );
    describe_gauge!(
        CONFLICTS_OPEN,
        Unit::Count,
        "Conflicts not yet acknowledged."
    );
    describe_gauge!(
        FAILED_ENTRIES,
        Unit::Count,
        "Failed outbox entries by error code."
    );
    describe_gauge!(
        DB_SIZE_BYTES,
        Unit::Bytes,
        "Size of the local database file."
    );
    describe_gauge!(
        WAL_SIZE_BYTES,
        Unit::Bytes,
        "Size of the local database's WAL file."
    );
    describe_counter!(
        PUSHED_TOTAL,
        Unit::Count,
        "Changes uploaded and taken by the remote."
    );
    describe_counter!(
        PUSH_BATCHES_TOTAL,
        Unit::Count,
        "Upload batches sent, answered or not."
    );
    describe_counter!(PULLED_TOTAL, Unit::Count, "Remote changes applied locally.");
    describe_counter!(
        CONFLICTS_TOTAL,
        Unit::Count,
        "Conflicts detected, both directions."
    );
    describe_counter!(FAILURES_TOTAL, Unit::Count, "Sync failures by error code.");
    describe_histogram!(
        BATCH_LATENCY,
        Unit::Seconds,
        "Push of one batch, from send to settle."
    );
    describe_gauge!(
        HEALTH_STATUS,
        "Last status of each health check: 0 Healthy, 1 Degraded, 2 Unhealthy."
    );
}

/// The `ACODE-…` code an error text starts with, else `unknown`.
fn code_of(text: &str) -> &str {
    text.split_whitespace()
        .next()
        .filter(|w| w.starts_with("ACODE-") && w.len() <= 20)
        .unwrap_or("unknown")
}

/// Failed entries grouped by the code their error starts with.
fn failed_by_code(store: &Store) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = store.connection().prepare_cached(
        "SELECT coalesce(last_error, '') FROM sync_outbox WHERE status = 'failed'",
    )?;
    let mut counts: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let error: String = row.get(0)?;
        *counts.entry(code_of(&error).to_string()).or_default() += 1;
    }
    Ok(counts.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_from_the_start_of_an_error() {
        assert_eq!(
            code_of("ACODE-SYNC-005 invalid payload: title"),
            "ACODE-SYNC-005"
        );
        assert_eq!(code_of("connection refused"), "unknown");
        assert_eq!(code_of(""), "unknown");
    }
}

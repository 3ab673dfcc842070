//! The one boundary every health check sits behind: [`Check`], and what a
//! run of one says ([`CheckResult`]).

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

/// How well a part is doing. Ordered: a report's status is the worst of
/// its checks'.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Status {
    /// Working as it should.
    #[default]
    Healthy,
    /// Working, but past a warning line: act before it gets worse.
    Degraded,
    /// Not working, or about to stop.
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "Healthy",
            Status::Degraded => "Degraded",
            Status::Unhealthy => "Unhealthy",
        }
    }

    /// The exit code of `acode health`: 0, 1 or 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::Degraded => 1,
            Status::Unhealthy => 2,
        }
    }

    /// The status of `value` against two lines where growing is worse: at
    /// or past `unhealthy` is Unhealthy, at or past `degraded` is Degraded.
    pub fn of_growing<T: PartialOrd>(value: T, degraded: T, unhealthy: T) -> Status {
        if value >= unhealthy {
            Status::Unhealthy
        } else if value >= degraded {
            Status::Degraded
        } else {
            Status::Healthy
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one run of a check found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckResult {
    pub status: Status,
    /// One line for a person: what was measured, against which line.
    pub message: String,
    /// The figures behind the status, for machines (`{}` when none).
    pub data: serde_json::Value,
}

impl CheckResult {
    pub fn new(status: Status, message: impl Into<String>, data: serde_json::Value) -> Self {
        CheckResult {
            status,
            message: message.into(),
            data,
        }
    }

    pub fn healthy(message: impl Into<String>, data: serde_json::Value) -> Self {
        CheckResult::new(Status::Healthy, message, data)
    }
}

/// Why a check could not give an answer; the registry reports it as
/// Unhealthy (ACODE-HEALTH-001) with this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckError(pub String);

impl CheckError {
    pub fn new(message: impl std::fmt::Display) -> Self {
        CheckError(message.to_string())
    }
}

impl From<acode_store::StoreError> for CheckError {
    fn from(e: acode_store::StoreError) -> Self {
        CheckError(format!("{} {e}", e.code()))
    }
}

impl From<rusqlite::Error> for CheckError {
    fn from(e: rusqlite::Error) -> Self {
        CheckError(format!("local database: {e}"))
    }
}

/// The future a check's run returns.
pub type CheckFuture<'a> =
    Pin<Box<dyn Future<Output = Result<CheckResult, CheckError>> + Send + 'a>>;

/// One health check. The registry runs each in a task of its own with a
/// timeout, so a check may block on I/O, fail, hang or even panic without
/// harming the others: an error, a panic and a timeout all become
/// Unhealthy.
pub trait Check: Send + Sync + 'static {
    /// A stable snake_case name (`sqlite`, `sync_lag`, …).
    fn name(&self) -> &str;

    fn run(&self) -> CheckFuture<'_>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_order_from_best_to_worst() {
        assert!(Status::Healthy < Status::Degraded);
        assert!(Status::Degraded < Status::Unhealthy);
        let worst = [Status::Degraded, Status::Unhealthy, Status::Healthy]
            .into_iter()
            .max();
        assert_eq!(worst, Some(Status::Unhealthy));
        assert_eq!(Status::Unhealthy.exit_code(), 2);
    }

    #[test]
    fn growing_values_cross_their_lines_at_the_line() {
        assert_eq!(Status::of_growing(9, 10, 20), Status::Healthy);
        assert_eq!(Status::of_growing(10, 10, 20), Status::Degraded);
        assert_eq!(Status::of_growing(20, 10, 20), Status::Unhealthy);
        assert_eq!(Status::of_growing(0.5, 0.0, 1.0), Status::Degraded);
    }
}

//! Health checks and metrics of acode (DESIGN.md §9).
//!
//! A [`Registry`] holds [`Check`]s and runs them all at once, each in a
//! task of its own under a timeout; an error, a panic or a timeout makes
//! that check Unhealthy (ACODE-HEALTH-001) without touching the others.
//! Results are cached by status (Healthy 30 s, Degraded 10 s, Unhealthy
//! 5 s) and the report's status is the worst of its checks'.
//!
//! - [`checks`]: the local database and schema, the upload queue (depth,
//!   lag, failure rate), the disk (free space, database and WAL size),
//!   PostgreSQL (reachable, connections in use, long transactions and lock
//!   waits) and Redis.
//! - [`WorkspaceChecks`]: the checks of one workspace, as `acode health`
//!   runs them.
//! - [`HealthReport::http`]: the status code and body of `/health`;
//!   [`metrics::Metrics`]: the Prometheus text of `/metrics`.

mod check;
pub mod checks;
pub mod clock;
mod local;
pub mod metrics;
mod registry;
mod thresholds;
mod workspace;

pub use check::{Check, CheckError, CheckFuture, CheckResult, Status};
pub use clock::{Clock, ManualClock, SystemClock};
pub use local::LocalDb;
pub use registry::{CacheTtl, CheckReport, DEFAULT_TIMEOUT, HealthReport, Registry};
pub use thresholds::{Lines, Thresholds};
pub use workspace::WorkspaceChecks;

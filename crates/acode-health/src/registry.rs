//! Running checks: all in parallel, each in a task of its own under a
//! timeout, each result cached for a time that depends on its status
//! (DESIGN.md §9), so `/health` polled every second does not hammer
//! PostgreSQL and a failing part is looked at again soon.

use std::sync::Arc;
use std::time::{Duration, Instant};

use acode_protocol::ErrorCode;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::check::{Check, CheckResult, Status};
use crate::clock::{Clock, SystemClock};

/// How long one check may run by default (`health.timeout_seconds`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a result is reused, by its status: a healthy part is looked at
/// rarely, a failing one soon again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheTtl {
    pub healthy: Duration,
    pub degraded: Duration,
    pub unhealthy: Duration,
}

impl Default for CacheTtl {
    fn default() -> Self {
        CacheTtl {
            healthy: Duration::from_secs(30),
            degraded: Duration::from_secs(10),
            unhealthy: Duration::from_secs(5),
        }
    }
}

impl CacheTtl {
    pub fn of(&self, status: Status) -> Duration {
        match status {
            Status::Healthy => self.healthy,
            Status::Degraded => self.degraded,
            Status::Unhealthy => self.unhealthy,
        }
    }
}

/// One check's line in a report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckReport {
    pub name: String,
    pub status: Status,
    pub message: String,
    /// How long the run took (the cached run's, when `cached`).
    pub duration_ms: f64,
    pub data: serde_json::Value,
    /// Whether this result is a cached one, still within its TTL.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
}

/// What a run of every check found: the worst status, and each check's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthReport {
    pub status: Status,
    pub checks: Vec<CheckReport>,
}

impl HealthReport {
    /// The status and JSON body `/health` answers with: 200 while Healthy
    /// or Degraded (the service still works; a load balancer keeps it),
    /// 503 when Unhealthy.
    pub fn http(&self) -> (u16, serde_json::Value) {
        let code = match self.status {
            Status::Healthy | Status::Degraded => 200,
            Status::Unhealthy => 503,
        };
        (code, serde_json::to_value(self).unwrap_or_default())
    }

    pub fn check(&self, name: &str) -> Option<&CheckReport> {
        self.checks.iter().find(|c| c.name == name)
    }
}

struct Entry {
    check: Arc<dyn Check>,
    /// The last result and when (monotonic) it was taken. Locked for the
    /// whole run, so concurrent callers wait for one run and share it.
    cached: Mutex<Option<(Duration, CheckReport)>>,
}

/// The checks of one process, with their cached results.
pub struct Registry {
    entries: Vec<Arc<Entry>>,
    timeout: Duration,
    ttl: CacheTtl,
    clock: Arc<dyn Clock>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Registry {
            entries: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            ttl: CacheTtl::default(),
            clock: Arc::new(SystemClock::default()),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_ttl(mut self, ttl: CacheTtl) -> Self {
        self.ttl = ttl;
        self
    }

    /// The clock the cache's TTLs run on.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn add(&mut self, check: impl Check) -> &mut Self {
        self.add_arc(Arc::new(check))
    }

    pub fn add_arc(&mut self, check: Arc<dyn Check>) -> &mut Self {
        self.entries.push(Arc::new(Entry {
            check,
            cached: Mutex::new(None),
        }));
        self
    }

    pub fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| e.check.name().to_string())
            .collect()
    }

    /// Runs every check whose cached result has expired, all at once, and
    /// reports them in the order they were added. Needs a tokio runtime.
    pub async fn run(&self) -> HealthReport {
        let tasks: Vec<_> = self
            .entries
            .iter()
            .map(|entry| {
                let (entry, clock) = (entry.clone(), self.clock.clone());
                let (timeout, ttl) = (self.timeout, self.ttl);
                tokio::spawn(async move { run_entry(&entry, clock.as_ref(), timeout, ttl).await })
            })
            .collect();
        let mut checks = Vec::with_capacity(tasks.len());
        for (task, entry) in tasks.into_iter().zip(&self.entries) {
            checks.push(task.await.unwrap_or_else(|e| {
                failed(entry.check.name(), format!("its run was lost: {e}"), 0.0)
            }));
        }
        let status = checks.iter().map(|c| c.status).max().unwrap_or_default();
        HealthReport { status, checks }
    }
}

async fn run_entry(
    entry: &Entry,
    clock: &dyn Clock,
    timeout: Duration,
    ttl: CacheTtl,
) -> CheckReport {
    let mut cached = entry.cached.lock().await;
    if let Some((at, report)) = cached.as_ref()
        && clock.monotonic().saturating_sub(*at) < ttl.of(report.status)
    {
        return CheckReport {
            cached: true,
            ..report.clone()
        };
    }
    let report = run_isolated(entry.check.clone(), timeout).await;
    *cached = Some((clock.monotonic(), report.clone()));
    report
}

/// Runs one check in a task of its own: a panic ends that task only, and
/// a check still running at `timeout` is abandoned (its task aborted).
async fn run_isolated(check: Arc<dyn Check>, timeout: Duration) -> CheckReport {
    let name = check.name().to_string();
    let start = Instant::now();
    let task = tokio::spawn({
        let check = check.clone();
        async move { check.run().await }
    });
    let abort = task.abort_handle();
    let outcome = tokio::time::timeout(timeout, task).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(Ok(Ok(CheckResult {
            status,
            message,
            data,
        }))) => CheckReport {
            name,
            status,
            message,
            duration_ms: ms,
            data,
            cached: false,
        },
        Ok(Ok(Err(e))) => failed(&name, e.to_string(), ms),
        Ok(Err(join)) if join.is_panic() => {
            let why = panic_message(join.into_panic());
            failed(&name, format!("panicked: {why}"), ms)
        }
        Ok(Err(join)) => failed(&name, format!("was cancelled: {join}"), ms),
        Err(_) => {
            abort.abort();
            failed(
                &name,
                format!("timed out after {:.1}s", timeout.as_secs_f64()),
                ms,
            )
        }
    }
}

fn failed(name: &str, why: String, ms: f64) -> CheckReport {
    CheckReport {
        name: name.to_string(),
        status: Status::Unhealthy,
        message: format!("{} check {name}: {why}", ErrorCode::HealthCheckFailed),
        duration_ms: ms,
        data: serde_json::json!({}),
        cached: false,
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

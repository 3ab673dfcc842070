//! Time as the registry and the checks see it. The cache's TTLs run on a
//! monotonic clock, ages of stored changes on the wall clock; tests use
//! [`ManualClock`] and move both by hand instead of sleeping.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub trait Clock: Send + Sync + 'static {
    /// Time since an arbitrary fixed origin; never goes back.
    fn monotonic(&self) -> Duration;
    /// Unix time in milliseconds, as the store records `created_at`.
    fn unix_millis(&self) -> i64;
}

/// The real clocks.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn unix_millis(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    monotonic_ms: AtomicU64,
    unix_ms: AtomicI64,
}

impl ManualClock {
    /// Starts at `unix_ms` on the wall clock.
    pub fn new(unix_ms: i64) -> Self {
        ManualClock {
            monotonic_ms: AtomicU64::new(0),
            unix_ms: AtomicI64::new(unix_ms),
        }
    }

    /// Moves both clocks forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.monotonic_ms.fetch_add(ms, Ordering::SeqCst);
        self.unix_ms
            .fetch_add(i64::try_from(ms).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn monotonic(&self) -> Duration {
        Duration::from_millis(self.monotonic_ms.load(Ordering::SeqCst))
    }

    fn unix_millis(&self) -> i64 {
        self.unix_ms.load(Ordering::SeqCst)
    }
}

//! The lines between Healthy, Degraded and Unhealthy, as the checks use
//! them (bytes, durations, fractions), made from the `health` config
//! section (MB, seconds, percents).

use std::time::Duration;

use acode_config::HealthConfig;

use crate::check::Status;

/// Where a figure turns Degraded and where it turns Unhealthy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lines<T> {
    pub degraded: T,
    pub unhealthy: T,
}

impl<T: PartialOrd + Copy> Lines<T> {
    pub fn new(degraded: T, unhealthy: T) -> Self {
        Lines {
            degraded,
            unhealthy,
        }
    }

    /// For figures where more is worse (queue depth, lag, sizes).
    pub fn growing(&self, value: T) -> Status {
        Status::of_growing(value, self.degraded, self.unhealthy)
    }

    /// For figures where less is worse (free disk space): at or below
    /// `unhealthy` is Unhealthy.
    pub fn shrinking(&self, value: T) -> Status {
        if value <= self.unhealthy {
            Status::Unhealthy
        } else if value <= self.degraded {
            Status::Degraded
        } else {
            Status::Healthy
        }
    }
}

const MB: u64 = 1024 * 1024;

#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    pub timeout: Duration,
    /// Changes waiting to upload.
    pub outbox_pending: Lines<u64>,
    /// Age of the oldest change waiting to upload.
    pub lag: Lines<Duration>,
    pub failure_window: Duration,
    pub failure_min_settled: u64,
    /// Failed / settled, as a fraction.
    pub failure_rate: Lines<f64>,
    /// Free bytes on the workspace's filesystem (less is worse).
    pub disk_free: Lines<u64>,
    pub db_size: Lines<u64>,
    pub wal_size: Lines<u64>,
    pub slow_round_trip: Duration,
    /// Connections in use / the most there may be, as a fraction.
    pub pool_usage: Lines<f64>,
    /// Age of the oldest open transaction or lock wait.
    pub transaction: Lines<Duration>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::from_config(&HealthConfig::default())
    }
}

impl Thresholds {
    pub fn from_config(c: &HealthConfig) -> Self {
        let secs = Duration::from_secs;
        let pct = |p: u64| p as f64 / 100.0;
        Thresholds {
            timeout: secs(c.timeout_seconds),
            outbox_pending: Lines::new(c.outbox_pending_degraded, c.outbox_pending_unhealthy),
            lag: Lines::new(secs(c.lag_degraded_seconds), secs(c.lag_unhealthy_seconds)),
            failure_window: secs(c.failure_rate_window_minutes.saturating_mul(60)),
            failure_min_settled: c.failure_rate_min_settled,
            failure_rate: Lines::new(
                pct(c.failure_rate_degraded_percent),
                pct(c.failure_rate_unhealthy_percent),
            ),
            disk_free: Lines::new(
                c.disk_free_degraded_mb.saturating_mul(MB),
                c.disk_free_unhealthy_mb.saturating_mul(MB),
            ),
            db_size: Lines::new(
                c.db_size_degraded_mb.saturating_mul(MB),
                c.db_size_unhealthy_mb.saturating_mul(MB),
            ),
            wal_size: Lines::new(
                c.wal_size_degraded_mb.saturating_mul(MB),
                c.wal_size_unhealthy_mb.saturating_mul(MB),
            ),
            slow_round_trip: Duration::from_millis(c.slow_round_trip_ms),
            pool_usage: Lines::new(
                pct(c.pool_usage_degraded_percent),
                pct(c.pool_usage_unhealthy_percent),
            ),
            transaction: Lines::new(
                secs(c.transaction_degraded_seconds),
                secs(c.transaction_unhealthy_seconds),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_units_become_bytes_durations_and_fractions() {
        let t = Thresholds::default();
        assert_eq!(t.timeout, Duration::from_secs(5));
        assert_eq!(
            t.lag,
            Lines::new(Duration::from_secs(30), Duration::from_secs(300))
        );
        assert_eq!(t.wal_size.degraded, 64 * MB);
        assert_eq!(t.failure_rate, Lines::new(0.05, 0.25));
        assert_eq!(t.failure_window, Duration::from_secs(15 * 60));
    }

    #[test]
    fn free_space_is_worse_when_it_shrinks() {
        let l = Lines::new(100u64, 10);
        assert_eq!(l.shrinking(101), Status::Healthy);
        assert_eq!(l.shrinking(100), Status::Degraded);
        assert_eq!(l.shrinking(10), Status::Unhealthy);
    }
}

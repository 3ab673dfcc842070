//! Checks that need more than a type: ranges and cross-field rules, so a
//! config that parses but cannot work is refused at load time, naming the key.

use crate::error::ConfigError;
use crate::model::{Config, HealthConfig};

/// URL schemes a remote may use: a sync server, or PostgreSQL directly.
const REMOTE_SCHEMES: &[&str] = &["http://", "https://", "postgres://", "postgresql://"];

impl Config {
    /// Refuses values that are well-typed but unusable; the error names the
    /// first offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let sync = &self.sync;
        let up = &sync.upload;
        if !(1..=1000).contains(&up.batch_size) {
            return Err(ConfigError::invalid(
                "sync.upload.batch_size",
                up.batch_size,
                "an integer from 1 to 1000",
            ));
        }
        if up.batch_bytes_max < 1024 {
            return Err(ConfigError::invalid(
                "sync.upload.batch_bytes_max",
                up.batch_bytes_max,
                "at least 1024",
            ));
        }
        if up.poll_interval_seconds < 1 {
            return Err(ConfigError::invalid(
                "sync.upload.poll_interval_seconds",
                up.poll_interval_seconds,
                "at least 1",
            ));
        }
        if sync.download.poll_interval_seconds < 1 {
            return Err(ConfigError::invalid(
                "sync.download.poll_interval_seconds",
                sync.download.poll_interval_seconds,
                "at least 1",
            ));
        }
        let retry = &sync.retry;
        if retry.max_attempts < 1 {
            return Err(ConfigError::invalid(
                "sync.retry.max_attempts",
                retry.max_attempts,
                "at least 1",
            ));
        }
        if retry.base_delay_seconds < 1 {
            return Err(ConfigError::invalid(
                "sync.retry.base_delay_seconds",
                retry.base_delay_seconds,
                "at least 1",
            ));
        }
        if retry.base_delay_seconds > retry.max_delay_seconds {
            return Err(ConfigError::invalid(
                "sync.retry.base_delay_seconds",
                retry.base_delay_seconds,
                &format!(
                    "at most sync.retry.max_delay_seconds ({})",
                    retry.max_delay_seconds
                ),
            ));
        }
        if let Some(url) = &sync.remote.url {
            let has_host = REMOTE_SCHEMES.iter().any(|s| {
                url.strip_prefix(s)
                    .is_some_and(|rest| !rest.trim().is_empty())
            });
            if !has_host {
                return Err(ConfigError::invalid(
                    "sync.remote.url",
                    url,
                    "a URL starting with http://, https://, postgres:// or postgresql://",
                ));
            }
        }
        if sync.remote.tenant.trim().is_empty() {
            return Err(ConfigError::invalid(
                "sync.remote.tenant",
                &sync.remote.tenant,
                "a non-empty tenant name",
            ));
        }
        self.health.validate()
    }
}

impl HealthConfig {
    /// Each Degraded line must come before its Unhealthy line (for free
    /// disk space, above it), percents must be percents, and the timeout
    /// and window must be positive.
    fn validate(&self) -> Result<(), ConfigError> {
        let at_least_1 = [
            ("health.timeout_seconds", self.timeout_seconds),
            (
                "health.failure_rate_window_minutes",
                self.failure_rate_window_minutes,
            ),
        ];
        for (key, value) in at_least_1 {
            if value < 1 {
                return Err(ConfigError::invalid(key, value, "at least 1"));
            }
        }
        let percents = [
            (
                "health.failure_rate_degraded_percent",
                self.failure_rate_degraded_percent,
            ),
            (
                "health.failure_rate_unhealthy_percent",
                self.failure_rate_unhealthy_percent,
            ),
            (
                "health.pool_usage_degraded_percent",
                self.pool_usage_degraded_percent,
            ),
            (
                "health.pool_usage_unhealthy_percent",
                self.pool_usage_unhealthy_percent,
            ),
        ];
        for (key, value) in percents {
            if !(1..=100).contains(&value) {
                return Err(ConfigError::invalid(key, value, "an integer from 1 to 100"));
            }
        }
        // Growing is worse for each of these: Degraded comes first.
        let pairs = [
            (
                "outbox_pending",
                self.outbox_pending_degraded,
                self.outbox_pending_unhealthy,
                "",
            ),
            (
                "lag",
                self.lag_degraded_seconds,
                self.lag_unhealthy_seconds,
                "_seconds",
            ),
            (
                "failure_rate",
                self.failure_rate_degraded_percent,
                self.failure_rate_unhealthy_percent,
                "_percent",
            ),
            (
                "db_size",
                self.db_size_degraded_mb,
                self.db_size_unhealthy_mb,
                "_mb",
            ),
            (
                "wal_size",
                self.wal_size_degraded_mb,
                self.wal_size_unhealthy_mb,
                "_mb",
            ),
            (
                "pool_usage",
                self.pool_usage_degraded_percent,
                self.pool_usage_unhealthy_percent,
                "_percent",
            ),
            (
                "transaction",
                self.transaction_degraded_seconds,
                self.transaction_unhealthy_seconds,
                "_seconds",
            ),
        ];
        for (name, degraded, unhealthy, unit) in pairs {
            if degraded > unhealthy {
                return Err(ConfigError::invalid(
                    &format!("health.{name}_degraded{unit}"),
                    degraded,
                    &format!("at most health.{name}_unhealthy{unit} ({unhealthy})"),
                ));
            }
        }
        if self.disk_free_degraded_mb < self.disk_free_unhealthy_mb {
            return Err(ConfigError::invalid(
                "health.disk_free_degraded_mb",
                self.disk_free_degraded_mb,
                &format!(
                    "at least health.disk_free_unhealthy_mb ({})",
                    self.disk_free_unhealthy_mb
                ),
            ));
        }
        if let Some(url) = &self.redis_url {
            let ok = ["redis://", "rediss://"].iter().any(|s| {
                url.strip_prefix(s)
                    .is_some_and(|rest| !rest.trim().is_empty())
            });
            if !ok {
                return Err(ConfigError::invalid(
                    "health.redis_url",
                    url,
                    "a URL starting with redis:// or rediss://",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acode_protocol::ErrorCode;

    /// A change to the defaults that validation must refuse.
    type Change = fn(&mut Config);

    /// Applies `change` to the defaults and returns the key validation blames.
    fn rejected_key(change: impl FnOnce(&mut Config)) -> Option<String> {
        let mut c = Config::default();
        change(&mut c);
        let err = c.validate().err()?;
        assert_eq!(err.code(), ErrorCode::ConfigInvalidValue);
        assert!(err.to_string().contains("invalid value"), "{err}");
        err.key().map(str::to_owned)
    }

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let cases: Vec<(&str, Change)> = vec![
            ("sync.upload.batch_size", |c| c.sync.upload.batch_size = 0),
            ("sync.upload.batch_size", |c| {
                c.sync.upload.batch_size = 1001
            }),
            ("sync.upload.batch_bytes_max", |c| {
                c.sync.upload.batch_bytes_max = 1023
            }),
            ("sync.retry.max_attempts", |c| c.sync.retry.max_attempts = 0),
            ("sync.retry.base_delay_seconds", |c| {
                c.sync.retry.base_delay_seconds = 0
            }),
            ("sync.retry.base_delay_seconds", |c| {
                c.sync.retry.base_delay_seconds = 301
            }),
            ("sync.upload.poll_interval_seconds", |c| {
                c.sync.upload.poll_interval_seconds = 0
            }),
            ("sync.download.poll_interval_seconds", |c| {
                c.sync.download.poll_interval_seconds = 0
            }),
            ("sync.remote.url", |c| {
                c.sync.remote.url = Some("ftp://x".into())
            }),
            ("sync.remote.url", |c| {
                c.sync.remote.url = Some("https://".into())
            }),
            ("sync.remote.tenant", |c| c.sync.remote.tenant = " ".into()),
            ("health.timeout_seconds", |c| c.health.timeout_seconds = 0),
            ("health.failure_rate_window_minutes", |c| {
                c.health.failure_rate_window_minutes = 0
            }),
            ("health.failure_rate_unhealthy_percent", |c| {
                c.health.failure_rate_unhealthy_percent = 101
            }),
            ("health.pool_usage_degraded_percent", |c| {
                c.health.pool_usage_degraded_percent = 0
            }),
            ("health.lag_degraded_seconds", |c| {
                c.health.lag_degraded_seconds = 301
            }),
            ("health.outbox_pending_degraded", |c| {
                c.health.outbox_pending_degraded = 10_001
            }),
            ("health.wal_size_degraded_mb", |c| {
                c.health.wal_size_degraded_mb = 513
            }),
            ("health.transaction_degraded_seconds", |c| {
                c.health.transaction_degraded_seconds = 301
            }),
            ("health.disk_free_degraded_mb", |c| {
                c.health.disk_free_degraded_mb = 99
            }),
            ("health.redis_url", |c| {
                c.health.redis_url = Some("http://cache".into())
            }),
        ];
        for (key, change) in cases {
            assert_eq!(rejected_key(change).as_deref(), Some(key));
        }
    }

    #[test]
    fn boundary_values_are_accepted() {
        let mut c = Config::default();
        c.sync.upload.batch_size = 1000;
        c.sync.upload.batch_bytes_max = 1024;
        c.sync.retry.base_delay_seconds = 300;
        c.sync.remote.url = Some("postgresql://db/acode".into());
        assert!(c.validate().is_ok());
        c.sync.upload.batch_size = 1;
        c.sync.remote.url = Some("http://localhost:8080".into());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn health_thresholds_may_meet() {
        let mut c = Config::default();
        c.health.lag_degraded_seconds = 300;
        c.health.disk_free_degraded_mb = 100;
        c.health.failure_rate_degraded_percent = 100;
        c.health.failure_rate_unhealthy_percent = 100;
        c.health.redis_url = Some("redis://127.0.0.1:6379".into());
        assert!(c.validate().is_ok());
        c.health.lag_degraded_seconds = 301;
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.contains("expected at most health.lag_unhealthy_seconds (300)"),
            "{msg}"
        );
    }

    #[test]
    fn message_shows_the_bad_value_and_expectation() {
        let mut c = Config::default();
        c.sync.retry.base_delay_seconds = 400;
        let msg = c.validate().unwrap_err().to_string();
        assert_eq!(
            msg,
            "invalid value \"400\" for config key `sync.retry.base_delay_seconds`: \
             expected at most sync.retry.max_delay_seconds (300)"
        );
    }
}

//! Checks that need more than a type: ranges and cross-field rules, so a
//! config that parses but cannot work is refused at load time, naming the key.

use crate::error::ConfigError;
use crate::model::Config;

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

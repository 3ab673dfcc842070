//! What the engine needs from the workspace configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acode_config::{Config, ConflictPolicy};
use acode_protocol::Policy;

use crate::retry::RetryPolicy;

/// The wall clock in Unix milliseconds; tests replace it.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Clone)]
pub struct EngineConfig {
    /// At most this many changes per batch.
    pub batch_size: usize,
    /// At most this many bytes of changes per batch (a larger change goes alone).
    pub batch_bytes_max: usize,
    pub retry: RetryPolicy,
    pub policy: Policy,
    /// Where losing versions are written as JSON (`.agent/conflicts`).
    pub conflicts_dir: Option<PathBuf>,
    /// Changes per pull page.
    pub pull_limit: u32,
    pub upload_poll: Duration,
    pub download_poll: Duration,
    pub clock: Clock,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig::from_config(&Config::default(), None)
    }
}

impl EngineConfig {
    pub fn from_config(config: &Config, conflicts_dir: Option<PathBuf>) -> Self {
        let sync = &config.sync;
        EngineConfig {
            batch_size: sync.upload.batch_size as usize,
            batch_bytes_max: sync.upload.batch_bytes_max as usize,
            retry: RetryPolicy {
                max_attempts: sync.retry.max_attempts,
                base: Duration::from_secs_f64(sync.retry.base_delay_seconds as f64),
                cap: Duration::from_secs_f64(sync.retry.max_delay_seconds as f64),
            },
            policy: match sync.conflict.policy {
                ConflictPolicy::LastWriteWins => Policy::LastWriteWins,
                ConflictPolicy::LocalWins => Policy::LocalWins,
                ConflictPolicy::RemoteWins => Policy::RemoteWins,
            },
            conflicts_dir,
            pull_limit: 500,
            upload_poll: Duration::from_secs_f64(sync.upload.poll_interval_seconds as f64),
            download_poll: Duration::from_secs_f64(sync.download.poll_interval_seconds as f64),
            clock: Arc::new(|| chrono::Utc::now().timestamp_millis()),
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}

//! The checks of one workspace, as `acode health` runs them: the local
//! database and its queue, the disk, and the remote's PostgreSQL and Redis
//! when they are configured.

use std::path::PathBuf;
use std::sync::Arc;

use acode_config::{Config, ConfigError, Origin};
use acode_store::Store;

use crate::checks::postgres::{PgTarget, PoolCheck, PostgresCheck, TransactionsCheck};
use crate::checks::queue::{FailureRateCheck, LagCheck, OutboxCheck, QueueSource};
use crate::checks::redis::RedisCheck;
use crate::checks::server::ServerCheck;
use crate::checks::sqlite::{SchemaCheck, SqliteCheck};
use crate::checks::storage::{DiskCheck, FileSizeCheck, FreeSpace, Statvfs};
use crate::clock::{Clock, SystemClock};
use crate::local::LocalDb;
use crate::registry::Registry;
use crate::thresholds::Thresholds;

/// What the workspace checks are built from. The clock and the free-space
/// source are replaceable for tests.
pub struct WorkspaceChecks {
    pub config: Config,
    pub store: Store,
    /// The directory whose filesystem the disk check watches.
    pub dir: PathBuf,
    /// Redis to PING; `None`: no Redis check.
    pub redis_url: Option<(String, Option<Origin>)>,
    pub clock: Arc<dyn Clock>,
    pub free_space: Arc<dyn FreeSpace>,
}

impl WorkspaceChecks {
    /// Real clocks and `statvfs`; Redis from `health.redis_url`, else from
    /// the `REDIS_URL` that `env` returns.
    pub fn new(
        config: Config,
        store: Store,
        dir: impl Into<PathBuf>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        let redis_url = match &config.health.redis_url {
            Some(url) => Some((url.clone(), None)),
            None => env("REDIS_URL")
                .filter(|u| !u.trim().is_empty())
                .map(|u| (u, Some(Origin::Env("REDIS_URL".into())))),
        };
        WorkspaceChecks {
            config,
            store,
            dir: dir.into(),
            redis_url,
            clock: Arc::new(SystemClock::default()),
            free_space: Arc::new(Statvfs),
        }
    }

    /// The registry of every check that applies. Fails only on a remote or
    /// Redis URL that cannot be parsed (ACODE-CONFIG-001).
    pub fn build(self) -> Result<Registry, ConfigError> {
        let t = Thresholds::from_config(&self.config.health);
        let sync = &self.config.sync;
        let remote = sync
            .remote
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| sync.enabled && !u.is_empty());
        let db = LocalDb::new(self.store);
        let queue = QueueSource {
            db: db.clone(),
            clock: self.clock.clone(),
            syncs: remote.is_some(),
        };
        let mut registry = Registry::new()
            .with_timeout(t.timeout)
            .with_clock(self.clock.clone());
        registry
            .add(SqliteCheck::new(db.clone()))
            .add(SchemaCheck::new(db.clone()))
            .add(OutboxCheck::new(queue.clone(), t.outbox_pending))
            .add(LagCheck::new(queue.clone(), t.lag))
            .add(FailureRateCheck::new(
                queue,
                t.failure_window,
                t.failure_min_settled,
                t.failure_rate,
            ))
            .add(DiskCheck::new(self.dir, self.free_space, t.disk_free))
            .add(FileSizeCheck::database(db.path(), t.db_size))
            .add(FileSizeCheck::wal(db.wal_path(), t.wal_size));
        if let Some(url) =
            remote.filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
        {
            let pg =
                PgTarget::new(url, t.timeout).map_err(|e| invalid("sync.remote.url", e, None))?;
            registry
                .add(PostgresCheck::new(pg.clone(), t.slow_round_trip))
                .add(PoolCheck::server_slots(pg.clone(), t.pool_usage))
                .add(TransactionsCheck::new(pg, t.transaction));
        }
        if let Some(url) = remote.filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        {
            let ca_file = sync.remote.ca_file.as_deref();
            let check = ServerCheck::new(url, t.timeout, t.slow_round_trip, ca_file)
                .map_err(|e| invalid("sync.remote.url", e, None))?;
            registry.add(check);
        }
        if let Some((url, origin)) = self.redis_url {
            let check = RedisCheck::new(&url, t.slow_round_trip)
                .map_err(|e| invalid("health.redis_url", e, origin))?;
            registry.add(check);
        }
        Ok(registry)
    }
}

fn invalid(key: &str, why: impl std::fmt::Display, origin: Option<Origin>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: None,
        expected: format!("a URL that parses ({why})"),
        origin,
    }
}

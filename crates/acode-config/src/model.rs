//! The typed shape of `.agent/config.yml` and its built-in defaults.
//!
//! Every struct denies unknown fields (a typo must not be silently ignored)
//! and defaults every field (a missing key means "use the default"), so an
//! empty file is a complete, valid configuration.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The whole workspace configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How (and whether) local changes travel to and from the remote.
    pub sync: SyncConfig,
    /// How the local SQLite store trades safety for speed.
    pub store: StoreConfig,
    /// When the local database is copied aside before risky operations.
    pub backup: BackupConfig,
    /// Where `acode health` (and the server's `/health`) draws the lines
    /// between Healthy, Degraded and Unhealthy.
    pub health: HealthConfig,
}

/// Everything the sync engine needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Lets a workspace stay purely local even when a remote is configured,
    /// e.g. while working on something that must not leave the machine.
    pub enabled: bool,
    /// Where changes go; unset URL means the workspace is offline-only.
    pub remote: RemoteConfig,
    /// Pacing and sizing of outgoing change batches.
    pub upload: UploadConfig,
    /// Backoff after a failed upload or download.
    pub retry: RetryConfig,
    /// Pacing of incoming changes.
    pub download: DownloadConfig,
    /// What happens when the same row changed on both sides.
    pub conflict: ConflictConfig,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            remote: RemoteConfig::default(),
            upload: UploadConfig::default(),
            retry: RetryConfig::default(),
            download: DownloadConfig::default(),
            conflict: ConflictConfig::default(),
        }
    }
}

/// The remote endpoint and the credentials for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteConfig {
    /// The sync server (`http(s)://`) or a PostgreSQL database
    /// (`postgres(ql)://`, direct mode). Unset means offline: changes are
    /// captured and kept locally until a remote is configured.
    pub url: Option<String>,
    /// The device token sent to a sync server; kept optional so it can come
    /// from the environment instead of a file that may be committed.
    pub token: Option<String>,
    /// The tenant rows are written under in direct-postgres mode, where no
    /// server exists to derive it from the token.
    pub tenant: String,
    /// Extra certificates (PEM) to trust for an `https://` sync server,
    /// e.g. a private CA; the system's roots are trusted too.
    pub ca_file: Option<String>,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        Self {
            url: None,
            token: None,
            tenant: "default".to_owned(),
            ca_file: None,
        }
    }
}

/// Pacing and sizing of outgoing change batches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// How often the outbox is checked for new changes; bounds how stale the
    /// remote can be while online.
    pub poll_interval_seconds: u64,
    /// Most changes per batch; keeps one request (and one remote
    /// transaction) short.
    pub batch_size: u32,
    /// Most payload bytes per batch; keeps a few huge rows from producing a
    /// request the remote or a proxy would refuse.
    pub batch_bytes_max: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            poll_interval_seconds: 5,
            batch_size: 50,
            batch_bytes_max: 1_048_576,
        }
    }
}

/// Exponential backoff after failures, so an unreachable remote is not
/// hammered and a transient failure is still retried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts before a batch is reported as failed (ACODE-SYNC-004).
    pub max_attempts: u32,
    /// The first wait; doubled after every failed attempt.
    pub base_delay_seconds: u64,
    /// The cap on the doubled wait, so backoff never grows unbounded.
    pub max_delay_seconds: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay_seconds: 1,
            max_delay_seconds: 300,
        }
    }
}

/// Pacing of incoming changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownloadConfig {
    /// How often the remote is asked for changes made elsewhere; longer than
    /// the upload interval because remote changes are usually rarer.
    pub poll_interval_seconds: u64,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        Self {
            poll_interval_seconds: 30,
        }
    }
}

/// Conflict resolution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConflictConfig {
    /// Which side wins when the same row changed locally and remotely.
    pub policy: ConflictPolicy,
    /// Keeps the losing version so a wrong resolution can be undone by hand.
    pub preserve_original: bool,
}

impl Default for ConflictConfig {
    fn default() -> Self {
        Self {
            policy: ConflictPolicy::default(),
            preserve_original: true,
        }
    }
}

/// Local store settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite `synchronous` level: `full` survives power loss, `normal` is
    /// faster but may lose the last commits on power loss.
    pub durability: Durability,
}

/// Backup settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Copies the database aside before a schema migration, so a failed or
    /// unwanted upgrade can be rolled back.
    pub before_migrate: bool,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            before_migrate: true,
        }
    }
}

/// Thresholds of the health checks (DESIGN.md §9). Each pair names the
/// value at which a check turns Degraded and the one at which it turns
/// Unhealthy, so an operator can move either without the other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// How long one check may run before it counts as Unhealthy; a hung
    /// dependency must not hang the whole report.
    pub timeout_seconds: u64,
    /// Changes waiting to upload before the queue counts as backed up.
    pub outbox_pending_degraded: u64,
    pub outbox_pending_unhealthy: u64,
    /// Age of the oldest change not yet uploaded: how stale the remote is.
    pub lag_degraded_seconds: u64,
    pub lag_unhealthy_seconds: u64,
    /// The window over which failed uploads are set against settled ones.
    pub failure_rate_window_minutes: u64,
    /// Fewer settled changes than this in the window say nothing about a
    /// rate (one failure out of two is not a 50 % outage).
    pub failure_rate_min_settled: u64,
    pub failure_rate_degraded_percent: u64,
    pub failure_rate_unhealthy_percent: u64,
    /// Free space left on the workspace's filesystem; below it, writes
    /// (and SQLite's WAL) will soon fail.
    pub disk_free_degraded_mb: u64,
    pub disk_free_unhealthy_mb: u64,
    /// Size of the local database file.
    pub db_size_degraded_mb: u64,
    pub db_size_unhealthy_mb: u64,
    /// Size of the WAL file: a large one means checkpoints are starved
    /// (a reader held open for long) and reads slow down.
    pub wal_size_degraded_mb: u64,
    pub wal_size_unhealthy_mb: u64,
    /// A PostgreSQL or Redis round trip slower than this counts as Degraded.
    pub slow_round_trip_ms: u64,
    /// Share of the connection pool (or of the server's connection slots)
    /// in use.
    pub pool_usage_degraded_percent: u64,
    pub pool_usage_unhealthy_percent: u64,
    /// Age of the oldest open PostgreSQL transaction (or lock wait): a
    /// long one holds locks and stops vacuum.
    pub transaction_degraded_seconds: u64,
    pub transaction_unhealthy_seconds: u64,
    /// Redis to PING (`redis://…`); unset means the `REDIS_URL` environment
    /// variable, and no Redis check when that is unset too.
    pub redis_url: Option<String>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            timeout_seconds: 5,
            outbox_pending_degraded: 1_000,
            outbox_pending_unhealthy: 10_000,
            lag_degraded_seconds: 30,
            lag_unhealthy_seconds: 300,
            failure_rate_window_minutes: 15,
            failure_rate_min_settled: 20,
            failure_rate_degraded_percent: 5,
            failure_rate_unhealthy_percent: 25,
            disk_free_degraded_mb: 1_024,
            disk_free_unhealthy_mb: 100,
            db_size_degraded_mb: 10_240,
            db_size_unhealthy_mb: 102_400,
            wal_size_degraded_mb: 64,
            wal_size_unhealthy_mb: 512,
            slow_round_trip_ms: 500,
            pool_usage_degraded_percent: 80,
            pool_usage_unhealthy_percent: 95,
            transaction_degraded_seconds: 60,
            transaction_unhealthy_seconds: 300,
            redis_url: None,
        }
    }
}

/// A string naming no variant of a config enum.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`: expected one of {}", .expected.join(", "))]
pub struct ParseEnumError {
    /// What was being parsed, e.g. "conflict policy".
    pub what: &'static str,
    /// The rejected input.
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static [&'static str],
}

/// Adds `NAMES`, `as_str`, `Display` and `FromStr` to a snake_case config
/// enum, so the spellings live in one place next to the serde ones.
macro_rules! config_enum_impls {
    ($name:ident, $what:literal, { $( $variant:ident = $text:literal ),+ $(,)? }) => {
        impl $name {
            /// Every accepted spelling, in declaration order.
            pub const NAMES: &'static [&'static str] = &[ $( $text ),+ ];

            /// The YAML / environment spelling.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(ParseEnumError { what: $what, value: s.to_owned(), expected: Self::NAMES }),
                }
            }
        }
    };
}

/// Which side wins a conflict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The change with the later hybrid-logical-clock timestamp wins.
    #[default]
    LastWriteWins,
    /// The local change always wins.
    LocalWins,
    /// The remote change always wins.
    RemoteWins,
}

config_enum_impls!(ConflictPolicy, "conflict policy", {
    LastWriteWins = "last_write_wins",
    LocalWins = "local_wins",
    RemoteWins = "remote_wins",
});

/// How hard SQLite works to keep commits across power loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// `PRAGMA synchronous = FULL`: a commit survives power loss.
    #[default]
    Full,
    /// `PRAGMA synchronous = NORMAL`: faster; the last commits may be lost on
    /// power loss (never corrupted).
    Normal,
}

config_enum_impls!(Durability, "durability", {
    Full = "full",
    Normal = "normal",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::default();
        assert!(c.sync.enabled);
        assert_eq!(c.sync.remote.url, None);
        assert_eq!(c.sync.remote.token, None);
        assert_eq!(c.sync.remote.tenant, "default");
        assert_eq!(c.sync.upload.poll_interval_seconds, 5);
        assert_eq!(c.sync.upload.batch_size, 50);
        assert_eq!(c.sync.upload.batch_bytes_max, 1_048_576);
        assert_eq!(c.sync.retry.max_attempts, 5);
        assert_eq!(c.sync.retry.base_delay_seconds, 1);
        assert_eq!(c.sync.retry.max_delay_seconds, 300);
        assert_eq!(c.sync.download.poll_interval_seconds, 30);
        assert_eq!(c.sync.conflict.policy, ConflictPolicy::LastWriteWins);
        assert!(c.sync.conflict.preserve_original);
        assert_eq!(c.store.durability, Durability::Full);
        assert!(c.backup.before_migrate);
        let h = &c.health;
        assert_eq!(h.timeout_seconds, 5);
        assert_eq!((h.lag_degraded_seconds, h.lag_unhealthy_seconds), (30, 300));
        assert_eq!(
            (h.outbox_pending_degraded, h.outbox_pending_unhealthy),
            (1_000, 10_000)
        );
        assert_eq!(h.redis_url, None);
    }

    #[test]
    fn enums_round_trip_through_their_names() {
        for name in ConflictPolicy::NAMES {
            let p: ConflictPolicy = name.parse().unwrap();
            assert_eq!(p.as_str(), *name);
            assert_eq!(p.to_string(), *name);
        }
        for name in Durability::NAMES {
            let d: Durability = name.parse().unwrap();
            assert_eq!(d.as_str(), *name);
        }
        assert_eq!(
            "remote_wins".parse::<ConflictPolicy>(),
            Ok(ConflictPolicy::RemoteWins)
        );
        assert_eq!("normal".parse::<Durability>(), Ok(Durability::Normal));
    }

    #[test]
    fn unknown_enum_names_are_rejected_with_the_choices() {
        let err = "newest".parse::<ConflictPolicy>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("conflict policy `newest`"), "{msg}");
        assert!(
            msg.contains("last_write_wins, local_wins, remote_wins"),
            "{msg}"
        );
        assert!("FULL".parse::<Durability>().is_err());
    }
}

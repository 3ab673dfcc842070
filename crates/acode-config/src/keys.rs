//! The one list of every leaf config key.
//!
//! Environment overrides, error messages ("expected …") and the `acode init`
//! template all read this list, so a key added to the model but not here is
//! caught by the tests rather than silently missing an override.

use crate::model::{ConflictPolicy, Durability};

/// What kind of value a key holds; decides how an environment value is read
/// and what an error message says was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `true` or `false`.
    Bool,
    /// A non-negative integer.
    UInt,
    /// A string, taken verbatim from the environment.
    Str,
    /// A string that may be unset; `example` is shown in the template.
    OptStr {
        /// A plausible value, written commented-out in the template.
        example: &'static str,
    },
    /// One of a fixed set of snake_case names.
    Choice(&'static [&'static str]),
}

impl KeyKind {
    /// What a valid value looks like, for error messages.
    pub fn expected(self) -> String {
        match self {
            KeyKind::Bool => "true or false".to_owned(),
            KeyKind::UInt => "a non-negative integer".to_owned(),
            KeyKind::Str => "a string".to_owned(),
            KeyKind::OptStr { .. } => "a string (or nothing, to leave it unset)".to_owned(),
            KeyKind::Choice(names) => format!("one of {}", names.join(", ")),
        }
    }

    /// Whether an environment value is kept as the raw string instead of
    /// being read as a YAML scalar (so a token like `123` stays a string).
    pub fn is_string(self) -> bool {
        matches!(self, KeyKind::Str | KeyKind::OptStr { .. })
    }
}

/// One leaf key of the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The dotted path, e.g. `sync.upload.batch_size`.
    pub key: &'static str,
    /// The environment variable that overrides it, e.g.
    /// `ACODE_SYNC_UPLOAD_BATCH_SIZE`.
    pub env: &'static str,
    /// The kind of value it holds.
    pub kind: KeyKind,
    /// One line saying what it is for (written into the template).
    pub doc: &'static str,
}

impl KeyInfo {
    /// The key's entry in [`KEYS`], if it is a leaf key.
    pub fn find(key: &str) -> Option<&'static KeyInfo> {
        KEYS.iter().find(|k| k.key == key)
    }

    /// Whether `path` names a section (e.g. `sync` or `sync.upload`) rather
    /// than a leaf key.
    pub fn is_section(path: &str) -> bool {
        KEYS.iter().any(|k| {
            k.key
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('.'))
        })
    }
}

/// Every leaf key, in the order the template writes them (grouped by
/// section).
pub static KEYS: &[KeyInfo] = &[
    KeyInfo {
        key: "sync.enabled",
        env: "ACODE_SYNC_ENABLED",
        kind: KeyKind::Bool,
        doc: "Sync with the remote at all; false keeps every change local.",
    },
    KeyInfo {
        key: "sync.remote.url",
        env: "ACODE_SYNC_REMOTE_URL",
        kind: KeyKind::OptStr {
            example: "https://sync.example.com",
        },
        doc: "Sync server (http:// or https://) or PostgreSQL database (postgres:// or postgresql://); unset means offline.",
    },
    KeyInfo {
        key: "sync.remote.token",
        env: "ACODE_SYNC_REMOTE_TOKEN",
        kind: KeyKind::OptStr {
            example: "device-token",
        },
        doc: "Device token for the sync server; prefer setting it in the environment.",
    },
    KeyInfo {
        key: "sync.remote.tenant",
        env: "ACODE_SYNC_REMOTE_TENANT",
        kind: KeyKind::Str,
        doc: "Tenant rows are written under in direct-postgres mode.",
    },
    KeyInfo {
        key: "sync.remote.ca_file",
        env: "ACODE_SYNC_REMOTE_CA_FILE",
        kind: KeyKind::OptStr {
            example: "/etc/acode/server-ca.pem",
        },
        doc: "PEM certificate(s) to trust for an https:// sync server, besides the system's roots.",
    },
    KeyInfo {
        key: "sync.upload.poll_interval_seconds",
        env: "ACODE_SYNC_UPLOAD_POLL_INTERVAL_SECONDS",
        kind: KeyKind::UInt,
        doc: "Seconds between checks of the outbox for changes to upload.",
    },
    KeyInfo {
        key: "sync.upload.batch_size",
        env: "ACODE_SYNC_UPLOAD_BATCH_SIZE",
        kind: KeyKind::UInt,
        doc: "Most changes sent in one upload batch (1 to 1000).",
    },
    KeyInfo {
        key: "sync.upload.batch_bytes_max",
        env: "ACODE_SYNC_UPLOAD_BATCH_BYTES_MAX",
        kind: KeyKind::UInt,
        doc: "Most payload bytes in one upload batch (at least 1024).",
    },
    KeyInfo {
        key: "sync.retry.max_attempts",
        env: "ACODE_SYNC_RETRY_MAX_ATTEMPTS",
        kind: KeyKind::UInt,
        doc: "Attempts before a failing batch is reported as failed.",
    },
    KeyInfo {
        key: "sync.retry.base_delay_seconds",
        env: "ACODE_SYNC_RETRY_BASE_DELAY_SECONDS",
        kind: KeyKind::UInt,
        doc: "First wait after a failure, doubled after each further failure.",
    },
    KeyInfo {
        key: "sync.retry.max_delay_seconds",
        env: "ACODE_SYNC_RETRY_MAX_DELAY_SECONDS",
        kind: KeyKind::UInt,
        doc: "Longest wait between retries.",
    },
    KeyInfo {
        key: "sync.download.poll_interval_seconds",
        env: "ACODE_SYNC_DOWNLOAD_POLL_INTERVAL_SECONDS",
        kind: KeyKind::UInt,
        doc: "Seconds between asking the remote for changes made elsewhere.",
    },
    KeyInfo {
        key: "sync.conflict.policy",
        env: "ACODE_SYNC_CONFLICT_POLICY",
        kind: KeyKind::Choice(ConflictPolicy::NAMES),
        doc: "Which side wins a conflict: last_write_wins, local_wins or remote_wins.",
    },
    KeyInfo {
        key: "sync.conflict.preserve_original",
        env: "ACODE_SYNC_CONFLICT_PRESERVE_ORIGINAL",
        kind: KeyKind::Bool,
        doc: "Keep the losing version of a conflict so it can be restored by hand.",
    },
    KeyInfo {
        key: "store.durability",
        env: "ACODE_STORE_DURABILITY",
        kind: KeyKind::Choice(Durability::NAMES),
        doc: "full survives power loss; normal is faster but may lose the last commits.",
    },
    KeyInfo {
        key: "backup.before_migrate",
        env: "ACODE_BACKUP_BEFORE_MIGRATE",
        kind: KeyKind::Bool,
        doc: "Copy the database aside before a schema migration.",
    },
    KeyInfo {
        key: "health.timeout_seconds",
        env: "ACODE_HEALTH_TIMEOUT_SECONDS",
        kind: KeyKind::UInt,
        doc: "Seconds one health check may run before it counts as Unhealthy.",
    },
    KeyInfo {
        key: "health.outbox_pending_degraded",
        env: "ACODE_HEALTH_OUTBOX_PENDING_DEGRADED",
        kind: KeyKind::UInt,
        doc: "Changes waiting to upload at which health turns Degraded.",
    },
    KeyInfo {
        key: "health.outbox_pending_unhealthy",
        env: "ACODE_HEALTH_OUTBOX_PENDING_UNHEALTHY",
        kind: KeyKind::UInt,
        doc: "Changes waiting to upload at which health turns Unhealthy.",
    },
    KeyInfo {
        key: "health.lag_degraded_seconds",
        env: "ACODE_HEALTH_LAG_DEGRADED_SECONDS",
        kind: KeyKind::UInt,
        doc: "Age in seconds of the oldest change not yet uploaded at which health turns Degraded.",
    },
    KeyInfo {
        key: "health.lag_unhealthy_seconds",
        env: "ACODE_HEALTH_LAG_UNHEALTHY_SECONDS",
        kind: KeyKind::UInt,
        doc: "Age in seconds of the oldest change not yet uploaded at which health turns Unhealthy.",
    },
    KeyInfo {
        key: "health.failure_rate_window_minutes",
        env: "ACODE_HEALTH_FAILURE_RATE_WINDOW_MINUTES",
        kind: KeyKind::UInt,
        doc: "Minutes of recent uploads the failure rate is measured over.",
    },
    KeyInfo {
        key: "health.failure_rate_min_settled",
        env: "ACODE_HEALTH_FAILURE_RATE_MIN_SETTLED",
        kind: KeyKind::UInt,
        doc: "Fewest settled changes in the window for the failure rate to count.",
    },
    KeyInfo {
        key: "health.failure_rate_degraded_percent",
        env: "ACODE_HEALTH_FAILURE_RATE_DEGRADED_PERCENT",
        kind: KeyKind::UInt,
        doc: "Percent of failed uploads in the window at which health turns Degraded (1 to 100).",
    },
    KeyInfo {
        key: "health.failure_rate_unhealthy_percent",
        env: "ACODE_HEALTH_FAILURE_RATE_UNHEALTHY_PERCENT",
        kind: KeyKind::UInt,
        doc: "Percent of failed uploads in the window at which health turns Unhealthy (1 to 100).",
    },
    KeyInfo {
        key: "health.disk_free_degraded_mb",
        env: "ACODE_HEALTH_DISK_FREE_DEGRADED_MB",
        kind: KeyKind::UInt,
        doc: "Free MB on the workspace's disk below which health turns Degraded.",
    },
    KeyInfo {
        key: "health.disk_free_unhealthy_mb",
        env: "ACODE_HEALTH_DISK_FREE_UNHEALTHY_MB",
        kind: KeyKind::UInt,
        doc: "Free MB on the workspace's disk below which health turns Unhealthy.",
    },
    KeyInfo {
        key: "health.db_size_degraded_mb",
        env: "ACODE_HEALTH_DB_SIZE_DEGRADED_MB",
        kind: KeyKind::UInt,
        doc: "Local database size in MB at which health turns Degraded.",
    },
    KeyInfo {
        key: "health.db_size_unhealthy_mb",
        env: "ACODE_HEALTH_DB_SIZE_UNHEALTHY_MB",
        kind: KeyKind::UInt,
        doc: "Local database size in MB at which health turns Unhealthy.",
    },
    KeyInfo {
        key: "health.wal_size_degraded_mb",
        env: "ACODE_HEALTH_WAL_SIZE_DEGRADED_MB",
        kind: KeyKind::UInt,
        doc: "WAL file size in MB at which health turns Degraded (checkpoints starved).",
    },
    KeyInfo {
        key: "health.wal_size_unhealthy_mb",
        env: "ACODE_HEALTH_WAL_SIZE_UNHEALTHY_MB",
        kind: KeyKind::UInt,
        doc: "WAL file size in MB at which health turns Unhealthy.",
    },
    KeyInfo {
        key: "health.slow_round_trip_ms",
        env: "ACODE_HEALTH_SLOW_ROUND_TRIP_MS",
        kind: KeyKind::UInt,
        doc: "PostgreSQL or Redis round trip in milliseconds above which health turns Degraded.",
    },
    KeyInfo {
        key: "health.pool_usage_degraded_percent",
        env: "ACODE_HEALTH_POOL_USAGE_DEGRADED_PERCENT",
        kind: KeyKind::UInt,
        doc: "Percent of PostgreSQL connections in use at which health turns Degraded (1 to 100).",
    },
    KeyInfo {
        key: "health.pool_usage_unhealthy_percent",
        env: "ACODE_HEALTH_POOL_USAGE_UNHEALTHY_PERCENT",
        kind: KeyKind::UInt,
        doc: "Percent of PostgreSQL connections in use at which health turns Unhealthy (1 to 100).",
    },
    KeyInfo {
        key: "health.transaction_degraded_seconds",
        env: "ACODE_HEALTH_TRANSACTION_DEGRADED_SECONDS",
        kind: KeyKind::UInt,
        doc: "Age in seconds of the oldest open PostgreSQL transaction or lock wait at which health turns Degraded.",
    },
    KeyInfo {
        key: "health.transaction_unhealthy_seconds",
        env: "ACODE_HEALTH_TRANSACTION_UNHEALTHY_SECONDS",
        kind: KeyKind::UInt,
        doc: "Age in seconds of the oldest open PostgreSQL transaction or lock wait at which health turns Unhealthy.",
    },
    KeyInfo {
        key: "health.redis_url",
        env: "ACODE_HEALTH_REDIS_URL",
        kind: KeyKind::OptStr {
            example: "redis://127.0.0.1:6379",
        },
        doc: "Redis to PING in health checks; unset uses REDIS_URL, and no Redis check when both are unset.",
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn env_names_follow_the_rule() {
        for k in KEYS {
            let want = format!("ACODE_{}", k.key.to_uppercase().replace('.', "_"));
            assert_eq!(k.env, want, "{}", k.key);
        }
    }

    #[test]
    fn keys_and_env_names_are_unique() {
        let keys: HashSet<_> = KEYS.iter().map(|k| k.key).collect();
        let envs: HashSet<_> = KEYS.iter().map(|k| k.env).collect();
        assert_eq!(keys.len(), KEYS.len());
        assert_eq!(envs.len(), KEYS.len());
    }

    #[test]
    fn every_model_leaf_is_listed() {
        // Serializing the defaults yields every leaf of the model; each must
        // be in KEYS (and vice versa), or env overrides would miss it.
        fn leaves(prefix: &str, dict: &figment::value::Dict, out: &mut Vec<String>) {
            for (k, v) in dict {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    figment::value::Value::Dict(_, d) => leaves(&path, d, out),
                    _ => out.push(path),
                }
            }
        }
        let value = figment::value::Value::serialize(crate::Config::default()).unwrap();
        let dict = value.into_dict().unwrap();
        let mut model = Vec::new();
        leaves("", &dict, &mut model);
        model.sort();
        let mut listed: Vec<String> = KEYS.iter().map(|k| k.key.to_owned()).collect();
        listed.sort();
        assert_eq!(model, listed);
    }

    #[test]
    fn sections_are_told_from_leaves() {
        assert!(KeyInfo::is_section("sync"));
        assert!(KeyInfo::is_section("sync.upload"));
        assert!(!KeyInfo::is_section("sync.upload.batch_size"));
        assert!(!KeyInfo::is_section("syn"));
        assert!(KeyInfo::find("store.durability").is_some());
        assert!(KeyInfo::find("store").is_none());
    }
}

//! PostgreSQL, when the workspace syncs to a `postgres://` remote (and
//! later the server's database): reachable and quick (`postgres`), how
//! full its connections are (`postgres_pool`), and whether a transaction
//! or a lock wait has gone on too long (`postgres_transactions`).
//!
//! The checks use a small pool of their own (built by `acode_remote::pool`,
//! like the sync pool); an embedder with a pool of its own (the server) passes it to
//! [`PoolCheck::deadpool`] so its usage is what gets reported.

use std::time::{Duration, Instant};

use acode_protocol::ErrorCode;
use deadpool_postgres::{Object, Pool};
use serde_json::json;

use crate::check::{Check, CheckError, CheckFuture, CheckResult, Status};
use crate::thresholds::Lines;

/// A PostgreSQL database the checks connect to.
#[derive(Clone)]
pub struct PgTarget {
    pool: Pool,
    /// host:port/db, never the password.
    target: String,
}

impl PgTarget {
    /// A lazy pool for `url` (nothing is sent before the first check).
    /// `connect_timeout` bounds a connection attempt.
    pub fn new(url: &str, connect_timeout: Duration) -> Result<PgTarget, CheckError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            CheckError::new(format!(
                "{} invalid PostgreSQL URL: {e}",
                ErrorCode::ConfigInvalidValue
            ))
        })?;
        config.connect_timeout(connect_timeout);
        config.application_name("acode-health");
        // One connection for each of the three checks, run at once.
        let (pool, target) =
            acode_remote::pool(config, 3).map_err(|e| CheckError::new(e.to_string()))?;
        Ok(PgTarget { pool, target })
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    async fn client(&self) -> Result<Object, String> {
        self.pool.get().await.map_err(|e| {
            format!(
                "{} connecting to PostgreSQL at {}: {e}",
                ErrorCode::SyncConnectionFailed,
                self.target
            )
        })
    }

    async fn client_or_err(&self) -> Result<Object, CheckError> {
        self.client().await.map_err(CheckError::new)
    }
}

fn query_err(e: tokio_postgres::Error) -> CheckError {
    CheckError::new(format!("querying PostgreSQL: {e}"))
}

/// Connects and times a `SELECT 1`: unreachable is Unhealthy (local writes
/// go on and queue), slower than `slow` is Degraded.
pub struct PostgresCheck {
    pg: PgTarget,
    slow: Duration,
}

impl PostgresCheck {
    pub fn new(pg: PgTarget, slow: Duration) -> Self {
        PostgresCheck { pg, slow }
    }
}

impl Check for PostgresCheck {
    fn name(&self) -> &str {
        "postgres"
    }

    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let client = match self.pg.client().await {
                Ok(c) => c,
                Err(why) => {
                    let message = format!("{why} (local writes go on and queue)");
                    let data = json!({ "target": self.pg.target() });
                    return Ok(CheckResult::new(Status::Unhealthy, message, data));
                }
            };
            let start = Instant::now();
            client.simple_query("SELECT 1").await.map_err(query_err)?;
            let rtt = start.elapsed();
            let version: String = client
                .query_one("SELECT current_setting('server_version')", &[])
                .await
                .map_err(query_err)?
                .get(0);
            let ms = rtt.as_secs_f64() * 1000.0;
            let data = json!({ "target": self.pg.target(), "round_trip_ms": ms, "server_version": version });
            let status = Status::of_growing(rtt, self.slow, Duration::MAX);
            let message = format!(
                "{} reachable, PostgreSQL {version}, round trip {ms:.2} ms (Degraded above {} ms)",
                self.pg.target(),
                self.slow.as_millis()
            );
            Ok(CheckResult::new(status, message, data))
        })
    }
}

enum PoolSource {
    /// An embedder's own pool: in use / max size.
    Deadpool(Pool),
    /// The server's connection slots: client backends / (max_connections
    /// − superuser_reserved_connections), what every client shares.
    ServerSlots(PgTarget),
}

pub struct PoolCheck {
    source: PoolSource,
    /// Fractions of the pool in use.
    lines: Lines<f64>,
}

impl PoolCheck {
    pub fn deadpool(pool: Pool, lines: Lines<f64>) -> Self {
        PoolCheck {
            source: PoolSource::Deadpool(pool),
            lines,
        }
    }

    pub fn server_slots(pg: PgTarget, lines: Lines<f64>) -> Self {
        PoolCheck {
            source: PoolSource::ServerSlots(pg),
            lines,
        }
    }
}

impl Check for PoolCheck {
    fn name(&self) -> &str {
        "postgres_pool"
    }

    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let (what, used, max, waiting) = match &self.source {
                PoolSource::Deadpool(pool) => {
                    let s = pool.status();
                    let used = s.size.saturating_sub(s.available);
                    ("pool", used as i64, s.max_size as i64, s.waiting as i64)
                }
                PoolSource::ServerSlots(pg) => {
                    let client = pg.client_or_err().await?;
                    let row = client
                        .query_one(
                            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
                                    current_setting('max_connections')::int8
                                    - current_setting('superuser_reserved_connections')::int8",
                            &[],
                        )
                        .await
                        .map_err(query_err)?;
                    ("server connections", row.get(0), row.get(1), 0)
                }
            };
            let usage = if max > 0 {
                used as f64 / max as f64
            } else {
                1.0
            };
            let mut status = self.lines.growing(usage);
            if waiting > 0 {
                status = status.max(Status::Degraded);
            }
            let message = format!(
                "{what}: {used} of {max} in use ({:.0} %), {waiting} waiting (Degraded at {:.0} %, Unhealthy at {:.0} %)",
                usage * 100.0,
                self.lines.degraded * 100.0,
                self.lines.unhealthy * 100.0
            );
            let data = json!({ "in_use": used, "max": max, "waiting": waiting, "usage": usage });
            Ok(CheckResult::new(status, message, data))
        })
    }
}

/// Other sessions on the same database: the oldest open transaction
/// (idle in transaction is the usual culprit: it holds its locks and stops
/// vacuum) and the longest lock wait.
pub struct TransactionsCheck {
    pg: PgTarget,
    lines: Lines<Duration>,
}

impl TransactionsCheck {
    pub fn new(pg: PgTarget, lines: Lines<Duration>) -> Self {
        TransactionsCheck { pg, lines }
    }
}

const SESSIONS: &str = "
SELECT a.pid, a.state,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8,
       CASE WHEN a.wait_event_type = 'Lock'
            THEN extract(epoch FROM clock_timestamp() - a.state_change)::float8 END,
       (SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid AND l.granted),
       left(a.query, 120)
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND a.backend_type = 'client backend' AND a.xact_start IS NOT NULL
ORDER BY a.xact_start";

impl Check for TransactionsCheck {
    fn name(&self) -> &str {
        "postgres_transactions"
    }

    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let client = self.pg.client_or_err().await?;
            let rows = client.query(SESSIONS, &[]).await.map_err(query_err)?;
            let oldest = rows.first().map(|r| {
                let pid: i32 = r.get(0);
                let state: Option<String> = r.get(1);
                let age: f64 = r.get(2);
                let locks: i64 = r.get(4);
                let query: Option<String> = r.get(5);
                (
                    pid,
                    state.unwrap_or_default(),
                    age,
                    locks,
                    query.unwrap_or_default(),
                )
            });
            let waits: Vec<f64> = rows
                .iter()
                .filter_map(|r| r.get::<_, Option<f64>>(3))
                .collect();
            let longest_wait = waits.iter().copied().fold(0.0_f64, f64::max);
            let oldest_age = oldest.as_ref().map_or(0.0, |o| o.2);
            let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
            // No open transaction (no lock wait) is Healthy whatever the lines.
            let tx_status = oldest
                .as_ref()
                .map_or(Status::Healthy, |o| self.lines.growing(secs(o.2)));
            let wait_status = if waits.is_empty() {
                Status::Healthy
            } else {
                self.lines.growing(secs(longest_wait))
            };
            let status = tx_status.max(wait_status);
            let lines = format!(
                "(Degraded at {}s, Unhealthy at {}s)",
                self.lines.degraded.as_secs(),
                self.lines.unhealthy.as_secs()
            );
            let message = match &oldest {
                None => "no open transaction on this database".to_string(),
                Some((pid, state, age, locks, _)) => format!(
                    "{} open transaction(s); oldest: pid {pid}, {state}, {age:.1}s, {locks} lock(s) held; {} session(s) waiting on a lock, longest {longest_wait:.1}s {lines}",
                    rows.len(),
                    waits.len()
                ),
            };
            let data = json!({
                "open_transactions": rows.len(),
                "oldest_transaction_seconds": oldest_age,
                "oldest_pid": oldest.as_ref().map(|o| o.0),
                "oldest_state": oldest.as_ref().map(|o| o.1.clone()),
                "oldest_locks_held": oldest.as_ref().map(|o| o.3),
                "oldest_query": oldest.as_ref().map(|o| o.4.clone()),
                "lock_waits": waits.len(),
                "longest_lock_wait_seconds": longest_wait,
            });
            Ok(CheckResult::new(status, message, data))
        })
    }
}

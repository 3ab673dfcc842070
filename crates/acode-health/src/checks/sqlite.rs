//! The local database: can it be read and written (`sqlite`), and is its
//! schema the one this binary expects (`schema`)?

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::ErrorCode as SqliteCode;
use serde_json::json;

use crate::check::{Check, CheckError, CheckFuture, CheckResult, Status};
use crate::local::LocalDb;

/// Reads the schema page (a `SELECT 1` never touches the file) and probes
/// the write lock without waiting: a writer holding it blocks every local
/// write, which is Degraded; a database that cannot be read, or whose file
/// is gone, is Unhealthy.
pub struct SqliteCheck {
    db: LocalDb,
}

impl SqliteCheck {
    pub fn new(db: LocalDb) -> Self {
        SqliteCheck { db }
    }
}

impl Check for SqliteCheck {
    fn name(&self) -> &str {
        "sqlite"
    }

    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            self.db
                .with(|store| {
                    let conn = store.connection();
                    // Probe without waiting: a lock held elsewhere is the
                    // finding, not a reason to wait out the busy timeout.
                    let previous: i64 = conn.query_row("PRAGMA busy_timeout", [], |r| r.get(0))?;
                    conn.busy_timeout(Duration::ZERO)?;
                    let outcome = probe(conn, store.path());
                    conn.busy_timeout(Duration::from_millis(previous.max(0).unsigned_abs()))?;
                    outcome
                })
                .await
        })
    }
}

/// Reads the schema page, then takes the write lock and gives it back
/// (busy there: another writer holds it, Degraded). A database file gone
/// from its path is Unhealthy: the open connection would go on writing
/// into a deleted file that nothing will ever read again.
fn probe(conn: &rusqlite::Connection, path: &Path) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| CheckError::new(format!("reading the local database: {e}")))?;
    let read_ms = start.elapsed().as_secs_f64() * 1000.0;
    let in_memory = path.as_os_str() == ":memory:";
    if !in_memory && !path.exists() {
        return Ok(CheckResult::new(
            Status::Unhealthy,
            format!(
                "the database file {} is gone (deleted or moved): writes go to a file nothing will read",
                path.display()
            ),
            json!({ "path": path.display().to_string() }),
        ));
    }
    // Inside a transaction of our own the lock is ours already.
    let write_locked = conn.is_autocommit()
        && match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                conn.execute_batch("ROLLBACK")?;
                false
            }
            Err(e) if is_busy(&e) => true,
            Err(e) => return Err(CheckError::new(format!("taking the write lock: {e}"))),
        };
    let data = json!({ "tables": tables, "read_ms": read_ms, "write_locked": write_locked });
    Ok(if write_locked {
        CheckResult::new(
            Status::Degraded,
            "readable, but another connection holds the write lock: local writes wait",
            data,
        )
    } else {
        CheckResult::healthy(format!("readable and writable ({read_ms:.2} ms)"), data)
    })
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, SqliteCode::DatabaseBusy | SqliteCode::DatabaseLocked))
}

/// Applied against embedded migrations: pending ones are Degraded (run
/// `acode db migrate`), a modified or newer schema is Unhealthy.
pub struct SchemaCheck {
    db: LocalDb,
}

impl SchemaCheck {
    pub fn new(db: LocalDb) -> Self {
        SchemaCheck { db }
    }
}

impl Check for SchemaCheck {
    fn name(&self) -> &str {
        "schema"
    }

    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            self.db
                .with(|store| {
                    let result = match store.schema_status() {
                        Err(e) => CheckResult::new(
                            Status::Unhealthy,
                            format!("{} {e}", e.code()),
                            json!({}),
                        ),
                        Ok(s) => {
                            let pending: Vec<String> =
                                s.pending.iter().map(ToString::to_string).collect();
                            let data = json!({ "version": s.version, "latest": s.latest, "pending": pending });
                            if pending.is_empty() {
                                CheckResult::healthy(format!("version {} (up to date)", s.version), data)
                            } else {
                                CheckResult::new(
                                    Status::Degraded,
                                    format!(
                                        "version {} of {}: {} pending migration(s); run `acode db migrate`",
                                        s.version,
                                        s.latest,
                                        pending.len()
                                    ),
                                    data,
                                )
                            }
                        }
                    };
                    Ok(result)
                })
                .await
        })
    }
}

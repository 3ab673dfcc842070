//! The disk under the workspace: free space (`disk`), the database file
//! (`db_size`) and its WAL (`wal_size`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use crate::check::{Check, CheckError, CheckFuture, CheckResult};
use crate::thresholds::Lines;

/// Free and total bytes of the filesystem holding a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    /// What an unprivileged process may still write.
    pub free: u64,
    pub total: u64,
}

/// Where free space is read from; tests pass a fixed figure.
pub trait FreeSpace: Send + Sync + 'static {
    fn space(&self, path: &Path) -> std::io::Result<Space>;
}

/// `statvfs(3)` through `rustix`: a safe wrapper from the Bytecode
/// Alliance that the workspace already builds (the CLI's table crate
/// depends on it), so no `unsafe` and no new crate for one call. `fs2` is
/// unmaintained; `sysinfo` and `nix` are far larger for the same figure.
#[derive(Clone, Copy, Debug, Default)]
pub struct Statvfs;

impl FreeSpace for Statvfs {
    fn space(&self, path: &Path) -> std::io::Result<Space> {
        let s = rustix::fs::statvfs(path)?;
        Ok(Space {
            free: s.f_bavail.saturating_mul(s.f_frsize),
            total: s.f_blocks.saturating_mul(s.f_frsize),
        })
    }
}

/// A fixed figure, for tests of a full or small disk.
#[derive(Clone, Copy, Debug)]
pub struct FixedSpace(pub Space);

impl FreeSpace for FixedSpace {
    fn space(&self, _: &Path) -> std::io::Result<Space> {
        Ok(self.0)
    }
}

pub struct DiskCheck {
    dir: PathBuf,
    source: Arc<dyn FreeSpace>,
    /// Free bytes; less is worse.
    lines: Lines<u64>,
}

impl DiskCheck {
    pub fn new(dir: impl Into<PathBuf>, source: Arc<dyn FreeSpace>, lines: Lines<u64>) -> Self {
        DiskCheck {
            dir: dir.into(),
            source,
            lines,
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

impl Check for DiskCheck {
    fn name(&self) -> &str {
        "disk"
    }

    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let s = self.source.space(&self.dir).map_err(|e| {
                CheckError::new(format!("reading free space of {}: {e}", self.dir.display()))
            })?;
            let percent = if s.total == 0 {
                0.0
            } else {
                s.free as f64 * 100.0 / s.total as f64
            };
            let message = format!(
                "{:.0} MiB free of {:.0} MiB ({percent:.1} %) under {} (Degraded below {:.0} MiB, Unhealthy below {:.0} MiB)",
                s.free as f64 / MIB,
                s.total as f64 / MIB,
                self.dir.display(),
                self.lines.degraded as f64 / MIB,
                self.lines.unhealthy as f64 / MIB
            );
            let data =
                json!({ "free_bytes": s.free, "total_bytes": s.total, "free_percent": percent });
            Ok(CheckResult::new(
                self.lines.shrinking(s.free),
                message,
                data,
            ))
        })
    }
}

/// The size of one file against two lines: the database or its WAL.
pub struct FileSizeCheck {
    name: &'static str,
    what: &'static str,
    path: PathBuf,
    lines: Lines<u64>,
}

impl FileSizeCheck {
    /// `db_size`: the database file.
    pub fn database(path: impl Into<PathBuf>, lines: Lines<u64>) -> Self {
        FileSizeCheck {
            name: "db_size",
            what: "database",
            path: path.into(),
            lines,
        }
    }

    /// `wal_size`: the WAL beside the database. A large WAL means
    /// checkpoints cannot finish (a reader held open for long).
    pub fn wal(path: impl Into<PathBuf>, lines: Lines<u64>) -> Self {
        FileSizeCheck {
            name: "wal_size",
            what: "WAL",
            path: path.into(),
            lines,
        }
    }
}

impl Check for FileSizeCheck {
    fn name(&self) -> &str {
        self.name
    }

    fn run(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let bytes = match std::fs::metadata(&self.path) {
                Ok(m) => m.len(),
                // No WAL yet (or an in-memory database): nothing to weigh.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => {
                    return Err(CheckError::new(format!(
                        "reading the size of {}: {e}",
                        self.path.display()
                    )));
                }
            };
            let message = format!(
                "{} is {:.1} MiB (Degraded at {:.0} MiB, Unhealthy at {:.0} MiB)",
                self.what,
                bytes as f64 / MIB,
                self.lines.degraded as f64 / MIB,
                self.lines.unhealthy as f64 / MIB
            );
            let data = json!({ "bytes": bytes, "path": self.path.display().to_string() });
            Ok(CheckResult::new(self.lines.growing(bytes), message, data))
        })
    }
}

//! `acode db backup`, `db restore`, `db prune-backups`: thin calls into
//! `acode-backup` on the workspace's database and its `.agent/backups/`.

use std::fmt;
use std::path::{Path, PathBuf};

use acode_backup::{Retention, backup, prune, restore};
use serde::Serialize;

use super::Ctx;

#[derive(Serialize)]
struct BackedUp {
    path: PathBuf,
    bytes: u64,
    sha256: String,
    manifest: PathBuf,
    compressed: bool,
    schema_version: i64,
}

impl fmt::Display for BackedUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Backup written: {}", self.path.display())?;
        writeln!(
            f,
            "  {} bytes{}, schema v{}",
            self.bytes,
            if self.compressed { " (gzip)" } else { "" },
            self.schema_version
        )?;
        writeln!(f, "  sha256   {}", self.sha256)?;
        write!(f, "  manifest {}", self.manifest.display())
    }
}

/// `acode db backup [--out DIR] [--no-compress]`.
pub fn run_backup(ctx: &Ctx, out: Option<PathBuf>, no_compress: bool) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    // Shown and reported as an absolute path, wherever it was named from.
    let dir = match out {
        Some(dir) => std::path::absolute(&dir).unwrap_or(dir),
        None => ws.backups_dir(),
    };
    let done = backup(&ws.db_path(), &dir, !no_compress)?;
    ctx.print(&BackedUp {
        path: done.path,
        bytes: done.bytes,
        sha256: done.sha256,
        manifest: done.manifest_path,
        compressed: done.manifest.compressed,
        schema_version: done.manifest.schema_version,
    })
}

#[derive(Serialize)]
struct Restored {
    path: PathBuf,
    from: PathBuf,
    created_at: String,
    schema_version: i64,
}

impl fmt::Display for Restored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Restored {} from {}",
            self.path.display(),
            self.from.display()
        )?;
        write!(
            f,
            "  taken {}, schema v{}",
            self.created_at, self.schema_version
        )
    }
}

/// `acode db restore FILE`: verified before the database is replaced.
pub fn run_restore(ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let done = restore(file, &ws.db_path())?;
    ctx.print(&Restored {
        path: done.target,
        from: file.to_path_buf(),
        created_at: done.manifest.created_at,
        schema_version: done.manifest.schema_version,
    })
}

#[derive(Serialize)]
struct Pruned {
    removed: Vec<PathBuf>,
}

impl fmt::Display for Pruned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.removed.is_empty() {
            return write!(f, "No backup to remove.");
        }
        write!(f, "Removed {} backup(s):", self.removed.len())?;
        for path in &self.removed {
            write!(f, "\n  {}", path.display())?;
        }
        Ok(())
    }
}

/// `acode db prune-backups [--keep-days N] [--keep-last N] [--dir DIR]`.
pub fn run_prune(
    ctx: &Ctx,
    keep_days: Option<u32>,
    keep_last: Option<usize>,
    dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let dir = dir.unwrap_or_else(|| ws.backups_dir());
    let rules = Retention {
        keep_days,
        keep_last,
    };
    let removed = prune(&dir, rules, chrono::Utc::now())?;
    ctx.print(&Pruned { removed })
}

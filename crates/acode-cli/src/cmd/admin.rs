//! `acode admin …`: commands on the server database (no workspace needed).
//! `admin backup` is a thin call into `acode_backup::server`: it finds
//! `pg_dump` on this process's `PATH`, dumps, and prints what was written
//! and what retention removed.

use std::fmt;
use std::path::PathBuf;

use acode_backup::{PgDump, Retention, backup_server};
use serde::Serialize;

use super::Ctx;
use crate::cli::{AdminBackupArgs, AdminCommand};

pub fn run(ctx: &Ctx, cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Backup(args) => run_backup(ctx, args),
    }
}

#[derive(Serialize)]
struct ServerBackedUp {
    path: PathBuf,
    bytes: u64,
    sha256: String,
    manifest: PathBuf,
    database: String,
    /// `null` when the database has no acode server schema.
    schema_version: Option<i64>,
    server_version: String,
    pg_dump_version: String,
    /// Older server backups removed by `--keep-days` / `--keep-last`.
    removed: Vec<PathBuf>,
}

impl fmt::Display for ServerBackedUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Server backup written: {}", self.path.display())?;
        let schema = self
            .schema_version
            .map_or_else(|| "no acode schema".to_owned(), |v| format!("schema v{v}"));
        writeln!(
            f,
            "  {} bytes (pg_dump {}, custom format) of {}, {schema}",
            self.bytes, self.pg_dump_version, self.database
        )?;
        writeln!(f, "  server   PostgreSQL {}", self.server_version)?;
        writeln!(f, "  sha256   {}", self.sha256)?;
        write!(f, "  manifest {}", self.manifest.display())?;
        if !self.removed.is_empty() {
            write!(f, "\nRemoved {} older backup(s):", self.removed.len())?;
            for path in &self.removed {
                write!(f, "\n  {}", path.display())?;
            }
        }
        Ok(())
    }
}

/// `acode admin backup --database-url URL [--out DIR] [--keep-days N]
/// [--keep-last N]`.
fn run_backup(ctx: &Ctx, args: AdminBackupArgs) -> anyhow::Result<()> {
    let pg_dump = PgDump::find(std::env::var_os("PATH").as_deref())?;
    // Shown and reported as an absolute path, wherever it was named from.
    let dir = std::path::absolute(&args.out).unwrap_or(args.out);
    let retention = (args.keep_days.is_some() || args.keep_last.is_some()).then(|| Retention {
        keep_days: args.keep_days,
        keep_last: args
            .keep_last
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    });
    let done = backup_server(&args.database.database_url, &dir, &pg_dump, retention)?;
    ctx.print(&ServerBackedUp {
        path: done.path,
        bytes: done.bytes,
        sha256: done.sha256,
        manifest: done.manifest_path,
        database: done.manifest.database,
        schema_version: done.manifest.schema_version,
        server_version: done.manifest.server_version,
        pg_dump_version: done.manifest.pg_dump_version,
        removed: done.pruned,
    })
}

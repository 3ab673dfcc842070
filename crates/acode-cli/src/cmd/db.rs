//! `acode db …`: the local database's schema, size and migrations. Both
//! commands open the database without migrating, so pending migrations are
//! shown (or applied on request), never applied behind the user's back.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use acode_store::StoreError;
use acode_store::migrations::MigrationInfo;
use serde::Serialize;

use super::Ctx;
use crate::cli::DbCommand;
use crate::output;

#[derive(Serialize)]
struct DbStatus {
    path: PathBuf,
    schema_version: i64,
    latest_version: i64,
    applied_migrations: Vec<MigrationInfo>,
    pending_migrations: Vec<MigrationInfo>,
    db_bytes: u64,
    wal_bytes: u64,
    /// Rows per table (tables the schema does not have yet are left out).
    rows: BTreeMap<&'static str, i64>,
}

impl fmt::Display for DbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Database {}", self.path.display())?;
        writeln!(
            f,
            "Schema:   v{} (this binary knows up to v{})",
            self.schema_version, self.latest_version
        )?;
        writeln!(f, "Applied:  {}", names(&self.applied_migrations))?;
        writeln!(f, "Pending:  {}", names(&self.pending_migrations))?;
        if !self.pending_migrations.is_empty() {
            writeln!(f, "          `acode db migrate` applies them")?;
        }
        writeln!(
            f,
            "Size:     {} bytes + {} bytes of WAL",
            self.db_bytes, self.wal_bytes
        )?;
        let mut table = output::table(["Table", "Rows"]);
        for (name, n) in &self.rows {
            table.add_row([name.to_string(), n.to_string()]);
        }
        write!(f, "\n{}", output::render(&table))
    }
}

fn names(migrations: &[MigrationInfo]) -> String {
    if migrations.is_empty() {
        return "none".to_owned();
    }
    let names: Vec<String> = migrations
        .iter()
        .map(|m| format!("V{} {}", m.version, m.name))
        .collect();
    names.join(", ")
}

#[derive(Serialize)]
struct Migrated {
    applied: Vec<MigrationInfo>,
    backup: Option<PathBuf>,
    schema_version: i64,
}

impl fmt::Display for Migrated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() {
            return write!(
                f,
                "Schema v{} is up to date: nothing to apply.",
                self.schema_version
            );
        }
        writeln!(f, "Applied {}", names(&self.applied))?;
        if let Some(backup) = &self.backup {
            writeln!(f, "Backup taken first: {}", backup.display())?;
        }
        write!(f, "Schema is now v{}.", self.schema_version)
    }
}

pub fn run(ctx: &Ctx, cmd: DbCommand) -> anyhow::Result<()> {
    // Backups work on the file, without opening a store of their own.
    match cmd {
        DbCommand::Backup { out, no_compress } => {
            return super::backup::run_backup(ctx, out, no_compress);
        }
        DbCommand::Restore { file } => return super::backup::run_restore(ctx, &file),
        DbCommand::PruneBackups {
            keep_days,
            keep_last,
            dir,
        } => return super::backup::run_prune(ctx, keep_days, keep_last, dir),
        DbCommand::Status | DbCommand::Migrate => {}
    }
    let (ws, config, mut store) = ctx.open_unmigrated()?;
    match cmd {
        DbCommand::Status => {
            let schema = store.schema_status()?;
            let rows = store.read(|tx| tx.row_counts())?;
            ctx.print(&DbStatus {
                path: ws.db_path(),
                schema_version: schema.version,
                latest_version: schema.latest,
                applied_migrations: schema.applied,
                pending_migrations: schema.pending,
                db_bytes: file_len(&ws.db_path())?,
                wal_bytes: file_len(&ws.wal_path())?,
                rows,
            })
        }
        DbCommand::Migrate => {
            let outcome = store.migrate(ws.migrate_backup_dir(&config).as_deref())?;
            ctx.print(&Migrated {
                applied: outcome.applied,
                backup: outcome.backup,
                schema_version: store.schema_status()?.version,
            })
        }
        // Handled above, before the store is opened.
        DbCommand::Backup { .. } | DbCommand::Restore { .. } | DbCommand::PruneBackups { .. } => {
            Ok(())
        }
    }
}

/// A file's size; 0 if it does not exist (no WAL yet).
fn file_len(path: &Path) -> Result<u64, StoreError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(StoreError::Io {
            context: format!("reading the size of {}", path.display()),
            source,
        }),
    }
}

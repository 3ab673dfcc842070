//! Taking a backup of a workspace database while other connections keep
//! writing (DESIGN.md §10).
//!
//! The copy is SQLite's `VACUUM INTO`: it reads the source in one read
//! transaction, so the copy is the database at one instant, and WAL writers
//! are never blocked. The copy is then gzip-compressed (unless asked not
//! to), hashed while it is written, renamed into place, and only then is the
//! manifest written: a crash at any point leaves either a complete backup
//! with its manifest, or files that no listing takes for one.

use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{BackupError, Result};
use crate::files::{self, AtomicFile, Hashing};
use crate::manifest::{FORMAT, FORMAT_VERSION, Manifest};
use acode_store::StoreError;
use acode_store::migrations::HISTORY_TABLE;

/// What a backup wrote.
#[derive(Clone, Debug)]
pub struct BackupOutcome {
    /// The backup file.
    pub path: PathBuf,
    /// Its size and SHA-256 (hex), as in the manifest.
    pub bytes: u64,
    pub sha256: String,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
}

/// Backs up the database at `db` into `out_dir` (created if missing), named
/// by the current time.
pub fn backup(db: &Path, out_dir: &Path, compress: bool) -> Result<BackupOutcome> {
    backup_at(db, out_dir, compress, Utc::now())
}

/// [`backup`] with the time that names the file given by the caller.
pub fn backup_at(
    db: &Path,
    out_dir: &Path,
    compress: bool,
    now: DateTime<Utc>,
) -> Result<BackupOutcome> {
    if !db.is_file() {
        return Err(StoreError::WorkspaceNotFound(format!(
            "{} (the database file is missing)",
            db.display()
        ))
        .into());
    }
    std::fs::create_dir_all(out_dir)
        .map_err(|e| BackupError::io(format!("creating {}", out_dir.display()), e))?;
    let (path, at) = files::free_name(out_dir, now, |at| files::backup_name(at, compress));

    // The plain copy, under a hidden temporary name.
    let raw = Temp(files::partial_path(&path.with_extension("raw")));
    files::remove_if_exists(&raw.0)?;
    copy_database(db, &raw.0)?;
    let info = read_info(&raw.0)?;
    files::fsync(&raw.0)?;
    let (db_bytes, db_sha256) = files::hash_file(&raw.0)?;

    let (bytes, sha256) = if compress {
        let mut input = File::open(&raw.0)
            .map_err(|e| BackupError::io(format!("reading {}", raw.0.display()), e))?;
        let context = || format!("compressing into {}", path.display());
        let mut gz = GzEncoder::new(
            Hashing::new(AtomicFile::create(&path)?),
            Compression::default(),
        );
        files::copy(&mut input, &mut gz).map_err(|e| BackupError::io(context(), e))?;
        let hashing = gz.finish().map_err(|e| BackupError::io(context(), e))?;
        let (file, bytes, sha) = hashing.finish();
        file.commit()?;
        (bytes, sha)
    } else {
        files::commit_rename(&raw.0, &path)?;
        (db_bytes, db_sha256.clone())
    };

    let manifest = Manifest {
        format: FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: sha256.clone(),
        bytes,
        compressed: compress,
        db_sha256,
        db_bytes,
        schema_version: info.schema_version,
        sync_cursor: info.cursor,
        device_id: info.device_id,
        created_at: at.to_rfc3339_opts(SecondsFormat::Millis, true),
    };
    if let Err(e) = manifest.write_beside(&path) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(BackupOutcome {
        manifest_path: files::manifest_path(&path),
        path,
        bytes,
        sha256,
        manifest,
    })
}

/// The consistent copy: `VACUUM INTO` from a connection of our own, after
/// checking that the source is an acode database.
fn copy_database(db: &Path, into: &Path) -> Result<()> {
    let shown = db.display().to_string();
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not_a_database(&shown, &e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let is_acode: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [HISTORY_TABLE],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| not_a_database(&shown, &e))?;
    if is_acode.is_none() {
        return Err(StoreError::NotADatabase {
            path: shown,
            detail: "not an acode workspace database".into(),
        }
        .into());
    }
    conn.execute("VACUUM INTO ?1", [into.to_string_lossy()])?;
    Ok(())
}

fn not_a_database(shown: &str, e: &rusqlite::Error) -> BackupError {
    StoreError::NotADatabase {
        path: shown.to_owned(),
        detail: e.to_string(),
    }
    .into()
}

/// What the manifest records about the copy, read from the copy itself so
/// it describes exactly what was saved.
struct Info {
    schema_version: i64,
    cursor: Option<String>,
    device_id: Option<String>,
}

fn read_info(copy: &Path) -> Result<Info> {
    let conn = Connection::open(copy)?;
    // A plain rollback-journal file: restoring it never needs a -wal beside it.
    let _mode: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    let schema_version: i64 = conn.query_row(
        &format!("SELECT coalesce(max(version), 0) FROM {HISTORY_TABLE}"),
        [],
        |r| r.get(0),
    )?;
    let state = |key: &str| -> Result<Option<String>> {
        Ok(conn
            .query_row("SELECT value FROM sync_state WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    };
    Ok(Info {
        schema_version,
        cursor: state("cursor")?,
        device_id: state("device_id")?,
    })
}

/// A temporary file removed when dropped (after a rename, nothing is left
/// to remove).
struct Temp(PathBuf);

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

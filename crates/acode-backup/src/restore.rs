//! Restoring a backup over a workspace database, all or nothing.
//!
//! Everything is checked before the target is touched: the manifest, the
//! size and SHA-256 of the file, the size and SHA-256 of the database after
//! decompression (into a temporary file beside the target), `PRAGMA
//! integrity_check`, and that it is an acode database this binary can open.
//! Only then is the target's WAL checkpointed (a target another connection
//! still has open is refused), its `-wal`/`-shm`/`-journal` removed (an old
//! log must never be replayed onto the restored file), and the restored
//! file renamed over it. A restore refused by its checks leaves the target
//! byte for byte as it was; one refused because the target is in use may
//! have folded its WAL into it, which changes no row.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use rusqlite::{Connection, OptionalExtension};

use crate::error::{BackupError, Result};
use crate::files::{self, Hashing};
use crate::manifest::Manifest;
use acode_store::StoreError;
use acode_store::migrations::{self, HISTORY_TABLE};

/// What a restore did.
#[derive(Clone, Debug)]
pub struct RestoreOutcome {
    pub target: PathBuf,
    pub manifest: Manifest,
    /// Whether a database was there before (and is now replaced).
    pub replaced: bool,
}

/// Restores `backup` (a file written by [`crate::backup`]) to `target`.
/// The target must not be in use by another process: one that has it open
/// (in WAL mode, as every workspace database is) is refused.
pub fn restore(backup: &Path, target: &Path) -> Result<RestoreOutcome> {
    if !backup.is_file() {
        return Err(BackupError::NotFound(backup.display().to_string()));
    }
    let manifest = Manifest::read_beside(backup)?;
    let (bytes, sha256) = files::hash_file(backup)?;
    if bytes != manifest.bytes {
        return Err(BackupError::checksum(
            backup,
            format!(
                "{bytes} bytes where the manifest says {} (truncated or damaged)",
                manifest.bytes
            ),
        ));
    }
    if sha256 != manifest.sha256 {
        return Err(BackupError::checksum(
            backup,
            "SHA-256 differs from the manifest's (the file is damaged)",
        ));
    }

    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| BackupError::io(format!("creating {}", dir.display()), e))?;
    let temp = TempDb(files::partial_path(target));
    temp.remove()?;
    unpack(backup, &manifest, &temp.0)?;
    validate(backup, &temp.0)?;
    files::fsync(&temp.0)?;

    let replaced = target.exists();
    if replaced {
        quiesce(target)?;
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        files::remove_if_exists(&sidecar(target, suffix))?;
    }
    files::commit_rename(&temp.0, target)?;
    Ok(RestoreOutcome {
        target: target.to_path_buf(),
        manifest,
        replaced,
    })
}

/// Writes the database inside the backup to `into`, checking its size and
/// SHA-256 against the manifest. A damaged gzip stream is a checksum error.
fn unpack(backup: &Path, manifest: &Manifest, into: &Path) -> Result<()> {
    let file = File::open(backup)
        .map_err(|e| BackupError::io(format!("reading {}", backup.display()), e))?;
    let mut input: Box<dyn Read> = if manifest.compressed {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let out = File::create(into)
        .map_err(|e| BackupError::io(format!("creating {}", into.display()), e))?;
    let mut out = Hashing::new(out);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(BackupError::checksum(
                    backup,
                    format!("cannot be decompressed: {e}"),
                ));
            }
        };
        out.write_all(&buf[..n])
            .map_err(|e| BackupError::io(format!("writing {}", into.display()), e))?;
        // A damaged or hostile stream must not fill the disk before the
        // size check below would refuse it anyway.
        if out.bytes() > manifest.db_bytes {
            return Err(BackupError::checksum(
                backup,
                format!(
                    "the database inside is larger than the manifest's {} bytes",
                    manifest.db_bytes
                ),
            ));
        }
    }
    let (_, bytes, sha256) = out.finish();
    if bytes != manifest.db_bytes || sha256 != manifest.db_sha256 {
        return Err(BackupError::checksum(
            backup,
            "the database inside differs from the manifest's checksum",
        ));
    }
    Ok(())
}

/// The unpacked file is an intact acode database this binary can open.
fn validate(backup: &Path, db: &Path) -> Result<()> {
    let refuse = |detail: String| BackupError::not_a_backup(backup, detail);
    let conn = Connection::open(db).map_err(|e| refuse(e.to_string()))?;
    let check: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| refuse(format!("integrity check failed: {e}")))?;
    if check.first().map(String::as_str) != Some("ok") {
        return Err(refuse(format!(
            "integrity check failed: {}",
            check.join("; ")
        )));
    }
    for table in [HISTORY_TABLE, "sync_state"] {
        let found: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .optional()?;
        if found.is_none() {
            return Err(refuse(format!("an SQLite database without {table}")));
        }
    }
    let version: i64 = conn.query_row(
        &format!("SELECT coalesce(max(version), 0) FROM {HISTORY_TABLE}"),
        [],
        |r| r.get(0),
    )?;
    if version > migrations::latest() {
        return Err(StoreError::SchemaTooNew {
            found: version.to_string(),
            known: migrations::latest().to_string(),
        }
        .into());
    }
    let _mode: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    Ok(())
}

/// Folds the target's WAL into it and checks nobody else has it open.
/// A checkpoint that cannot finish means another connection is in a
/// transaction; a `-wal` still there once our connection has closed means
/// another connection holds the file open (SQLite removes the log when the
/// last connection to a WAL database closes). Either is refused: deleting
/// the log under a live connection, or renaming the file away from it,
/// would lose its writes.
fn quiesce(target: &Path) -> Result<()> {
    let shown = target.display().to_string();
    let in_use = || -> BackupError {
        StoreError::Busy(format!(
            "{shown} is in use by another process; stop it and restore again"
        ))
        .into()
    };
    let conn = match Connection::open(target) {
        Ok(conn) => conn,
        // Not a database at all: nothing of it to keep in step.
        Err(_) => return Ok(()),
    };
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    let checkpoint = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    match checkpoint {
        Ok(0) => {}
        Ok(_) => return Err(in_use()),
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
            ) =>
        {
            return Ok(());
        }
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
            return Err(
                StoreError::Busy(format!("{shown} is in use by another process: {e}")).into(),
            );
        }
        Err(e) => return Err(e.into()),
    }
    conn.close().map_err(|(_, e)| BackupError::from(e))?;
    if sidecar(target, "-wal").exists() {
        return Err(in_use());
    }
    Ok(())
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    db.with_file_name(name)
}

/// The unpacked database until it is renamed into place; removed (with any
/// journal SQLite left beside it) otherwise.
struct TempDb(PathBuf);

impl TempDb {
    fn remove(&self) -> Result<()> {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            files::remove_if_exists(&sidecar(&self.0, suffix))?;
        }
        Ok(())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

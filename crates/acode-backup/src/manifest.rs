//! The manifest written beside every backup (`<file>.manifest.json`): what
//! the backup holds and the checksums restore verifies before it touches
//! anything. It is written last, so its presence marks a finished backup.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{BackupError, Result};
use crate::files::{self, AtomicFile};

/// What `format` says in every acode backup manifest.
pub const FORMAT: &str = "acode-sqlite-backup";
/// The manifest layout version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`]: tells an acode manifest from any other JSON.
    pub format: String,
    /// Bumped when the layout changes incompatibly; a newer one is refused.
    pub format_version: u32,
    /// The backup's file name (without directory), as written.
    pub file: String,
    /// SHA-256 (hex) of the backup file as stored (compressed or not).
    pub sha256: String,
    /// Size of the backup file as stored.
    pub bytes: u64,
    /// Whether the file is gzip-compressed.
    pub compressed: bool,
    /// SHA-256 and size of the SQLite database inside, checked again after
    /// decompression.
    pub db_sha256: String,
    pub db_bytes: u64,
    /// The highest applied migration of the copied database.
    pub schema_version: i64,
    /// The sync cursor saved in the copy (`sync_state.cursor`), if any.
    pub sync_cursor: Option<String>,
    /// The device the database belongs to.
    pub device_id: Option<String>,
    /// When the copy was taken (RFC 3339, UTC, milliseconds).
    pub created_at: String,
}

impl Manifest {
    /// Writes the manifest for `backup` atomically.
    pub fn write_beside(&self, backup: &Path) -> Result<()> {
        write_json_beside(self, backup)
    }

    /// Reads and checks the manifest of `backup`: missing, unreadable or
    /// foreign is "not an acode backup".
    pub fn read_beside(backup: &Path) -> Result<Manifest> {
        let path = files::manifest_path(backup);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::not_a_backup(
                    backup,
                    format!("its manifest {} is missing", path.display()),
                ));
            }
            Err(e) => return Err(BackupError::io(format!("reading {}", path.display()), e)),
        };
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| BackupError::not_a_backup(backup, format!("unreadable manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(BackupError::not_a_backup(
                backup,
                format!("the manifest's format is {:?}", manifest.format),
            ));
        }
        if manifest.format_version > FORMAT_VERSION {
            return Err(BackupError::not_a_backup(
                backup,
                format!(
                    "manifest format {} is newer than this binary reads ({FORMAT_VERSION})",
                    manifest.format_version
                ),
            ));
        }
        Ok(manifest)
    }
}

/// Writes `manifest` as pretty JSON to `<backup>.manifest.json`, atomically.
pub(crate) fn write_json_beside(manifest: &impl Serialize, backup: &Path) -> Result<()> {
    let path = files::manifest_path(backup);
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| BackupError::io("encoding the manifest", e.into()))?;
    let mut file = AtomicFile::create(&path)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|e| BackupError::io(format!("writing {}", path.display()), e))?;
    file.commit()
}

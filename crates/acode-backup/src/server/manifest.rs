//! The manifest beside a server backup (`<file>.manifest.json`): what the
//! archive holds, which server and tool wrote it, and its checksum. Written
//! last, like the local backups' manifest, so its presence marks a finished
//! backup.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{BackupError, Result};
use crate::files;
use crate::manifest::write_json_beside;

/// What `format` says in every server backup manifest.
pub const SERVER_FORMAT: &str = "acode-postgres-backup";
/// The layout version this code writes and reads.
pub const SERVER_FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerManifest {
    /// Always [`SERVER_FORMAT`]: tells this manifest from a local one.
    pub format: String,
    pub format_version: u32,
    /// The archive's file name (without directory).
    pub file: String,
    /// SHA-256 (hex) and size of the archive as stored.
    pub sha256: String,
    pub bytes: u64,
    /// Always `custom` (`pg_dump -Fc`): compressed, and restorable table by
    /// table with `pg_restore`.
    pub dump_format: String,
    /// `host:port/database` the dump was taken from (no credentials).
    pub database: String,
    /// The highest applied acode server migration; `None` for a database
    /// without the acode server schema.
    pub schema_version: Option<i64>,
    /// `server_version` and `server_version_num` of the server: restore
    /// into the same major version or a newer one.
    pub server_version: String,
    pub server_version_num: i64,
    /// The `pg_dump` that wrote the archive (`pg_restore` must be at least
    /// as new).
    pub pg_dump_version: String,
    /// When the dump was started (RFC 3339, UTC, milliseconds).
    pub created_at: String,
}

impl ServerManifest {
    pub fn write_beside(&self, backup: &Path) -> Result<()> {
        write_json_beside(self, backup)
    }

    /// Reads the manifest of `backup`, and checks the archive's size and
    /// SHA-256 against it.
    pub fn verify(backup: &Path) -> Result<ServerManifest> {
        let path = files::manifest_path(backup);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            BackupError::not_a_backup(backup, format!("reading {}: {e}", path.display()))
        })?;
        let manifest: ServerManifest = serde_json::from_str(&text)
            .map_err(|e| BackupError::not_a_backup(backup, format!("unreadable manifest: {e}")))?;
        if manifest.format != SERVER_FORMAT || manifest.format_version > SERVER_FORMAT_VERSION {
            return Err(BackupError::not_a_backup(
                backup,
                format!(
                    "manifest format {:?} version {}",
                    manifest.format, manifest.format_version
                ),
            ));
        }
        let (bytes, sha256) = files::hash_file(backup)?;
        if bytes != manifest.bytes || sha256 != manifest.sha256 {
            return Err(BackupError::checksum(
                backup,
                format!(
                    "{bytes} bytes, SHA-256 {sha256}; the manifest says {} bytes, {}",
                    manifest.bytes, manifest.sha256
                ),
            ));
        }
        Ok(manifest)
    }
}

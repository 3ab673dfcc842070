//! Backups, restore, retention and export of an acode workspace's local
//! SQLite database (DESIGN.md §10).
//!
//! - [`backup()`]: an online, consistent copy (`VACUUM INTO`) taken while
//!   other connections write, gzip-compressed, named by its UTC time
//!   (`acode-20250101T120000.123Z.db.gz`), with a JSON manifest beside it
//!   (`<file>.manifest.json`) holding its size and SHA-256.
//! - [`restore()`]: verifies manifest, checksums and `integrity_check`
//!   before it touches the target, then replaces it atomically.
//! - [`prune()`]: retention by age and count over finished backups only.
//! - [`export()`]: conversations, messages or run records as JSON, CSV or
//!   SQL, streamed row by row, with privacy applied.
//! - [`server`]: backups of the server database with `pg_dump` (custom
//!   format), named `acode-server-<time>.pgdump`, with their own manifest
//!   and the same atomic writes and retention (`acode admin backup`).

mod backup;
pub mod error;
pub mod export;
pub mod files;
pub mod manifest;
pub mod prune;
mod restore;
pub mod server;

pub use backup::{BackupOutcome, backup, backup_at};
pub use error::{BackupError, Result};
pub use export::{ExportFilter, ExportFormat, ExportKind, ExportOutcome, export, export_with};
pub use manifest::Manifest;
pub use prune::{BackupFile, Retention, prune};
pub use restore::{RestoreOutcome, restore};
pub use server::manifest::ServerManifest;
pub use server::tool::PgDump;
pub use server::{ServerBackupOutcome, backup_server, backup_server_at};

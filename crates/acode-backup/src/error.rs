//! The errors of backup, restore, retention and export, each mapped to one
//! public code (ACODE-BACKUP-00x, or the store's code for store errors).

use acode_protocol::ErrorCode;
use acode_store::StoreError;

pub type Result<T, E = BackupError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Writing a backup (or a restored file) failed; nothing that looks
    /// complete was left behind.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The backup's bytes do not match its manifest: one flipped byte, a
    /// cut-short copy, a damaged gzip stream.
    #[error("{path}: {detail}")]
    Checksum { path: String, detail: String },

    /// Not something `acode db backup` wrote: no or unreadable manifest, or
    /// the file inside is not an intact acode database.
    #[error("{path}: not an acode backup ({detail})")]
    NotABackup { path: String, detail: String },

    #[error("{0}: no such backup file")]
    NotFound(String),

    /// A bad argument (an unparsable `--since`, no retention rule).
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    /// Writing the export to its destination failed.
    #[error("writing the export: {0}")]
    Output(#[source] std::io::Error),

    /// `pg_dump` is not installed, or is older than the server it would
    /// dump (it refuses, or writes an archive that misses new objects).
    /// Retrying does not help: the message says what to install.
    #[error("{0}")]
    ToolUnavailable(String),

    /// The server database could not be reached or read, or `pg_dump`
    /// failed; no backup was left behind.
    #[error("{context}: {message}")]
    Server { context: String, message: String },

    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> Self {
        BackupError::Store(StoreError::Sqlite(e))
    }
}

impl BackupError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BackupError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn checksum(path: &std::path::Path, detail: impl Into<String>) -> Self {
        BackupError::Checksum {
            path: path.display().to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn not_a_backup(path: &std::path::Path, detail: impl Into<String>) -> Self {
        BackupError::NotABackup {
            path: path.display().to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn server(context: impl Into<String>, message: impl ToString) -> Self {
        BackupError::Server {
            context: context.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        BackupError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The public code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            BackupError::Io { .. } => ErrorCode::BackupFailed,
            BackupError::Checksum { .. } => ErrorCode::BackupChecksum,
            BackupError::NotABackup { .. } => ErrorCode::BackupInvalid,
            BackupError::NotFound(_) => ErrorCode::BackupNotFound,
            BackupError::Invalid { .. } => ErrorCode::StoreInvalidInput,
            BackupError::Output(_) => ErrorCode::StoreIo,
            BackupError::ToolUnavailable(_) => ErrorCode::BackupToolUnavailable,
            BackupError::Server { .. } => ErrorCode::BackupFailed,
            BackupError::Store(e) => e.code(),
        }
    }

    /// Whether the same call may succeed later (a full disk, a lock).
    pub fn is_transient(&self) -> bool {
        self.code().is_transient()
    }
}

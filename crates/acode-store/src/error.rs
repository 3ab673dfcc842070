//! The store's errors, each mapped to one public code.

use acode_protocol::ErrorCode;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },

    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    #[error("opening {path}: not an SQLite database, or corrupt ({detail})")]
    NotADatabase { path: String, detail: String },

    #[error(
        "the database schema is at migration {found}, newer than this binary knows (up to {known}): upgrade acode"
    )]
    SchemaTooNew { found: String, known: String },

    #[error(
        "applied migration {0} differs from the one in this binary: it was edited after it was applied"
    )]
    MigrationModified(String),

    #[error("applying migrations: {0}")]
    MigrationFailed(String),

    #[error("change capture is unavailable on this connection ({0}): write through acode")]
    CaptureUnavailable(String),

    #[error("the database is locked by another writer: {0}")]
    Busy(String),

    #[error("no acode workspace at or above {0} (run `acode init`, or pass --workspace)")]
    WorkspaceNotFound(String),

    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("taking the pre-migration backup: {0}")]
    Backup(String),

    #[error("stored sync data is damaged: {0}")]
    Internal(String),

    #[error("another sync worker holds the lease now (epoch {0} is over): nothing was written")]
    Fenced(i64),
}

impl StoreError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// The public code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::NotFound { .. } => ErrorCode::StoreNotFound,
            StoreError::Invalid { .. } => ErrorCode::StoreInvalidInput,
            StoreError::NotADatabase { .. } => ErrorCode::StoreNotADatabase,
            StoreError::SchemaTooNew { .. } => ErrorCode::StoreSchemaTooNew,
            StoreError::MigrationModified(_) => ErrorCode::StoreMigrationModified,
            StoreError::MigrationFailed(_) => ErrorCode::StoreMigrationFailed,
            StoreError::CaptureUnavailable(_) => ErrorCode::StoreCaptureUnavailable,
            StoreError::Busy(_) => ErrorCode::StoreBusy,
            StoreError::WorkspaceNotFound(_) => ErrorCode::StoreWorkspaceNotFound,
            StoreError::Sqlite(e) => sqlite_code(e),
            StoreError::Io { .. } => ErrorCode::StoreIo,
            StoreError::Backup(_) => ErrorCode::BackupFailed,
            StoreError::Internal(_) => ErrorCode::StoreInternal,
            StoreError::Fenced(_) => ErrorCode::StoreBusy,
        }
    }

    /// Whether the same call may succeed later (a lock, a full disk).
    pub fn is_transient(&self) -> bool {
        self.code().is_transient()
    }
}

fn sqlite_code(e: &rusqlite::Error) -> ErrorCode {
    use rusqlite::ffi::ErrorCode as C;
    match e {
        // A stored value that does not parse: the database was changed by
        // something other than acode, or damaged.
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => return ErrorCode::StoreNotADatabase,
        _ => {}
    }
    match e.sqlite_error_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked) => ErrorCode::StoreBusy,
        Some(C::NotADatabase | C::DatabaseCorrupt) => ErrorCode::StoreNotADatabase,
        Some(C::ConstraintViolation | C::TooBig) => ErrorCode::StoreInvalidInput,
        Some(
            C::SystemIoFailure | C::DiskFull | C::CannotOpen | C::ReadOnly | C::PermissionDenied,
        ) => ErrorCode::StoreIo,
        _ => ErrorCode::StoreInternal,
    }
}

/// Turns a SQLite error into the store error a caller can act on.
pub(crate) fn classify(e: rusqlite::Error, path: &str) -> StoreError {
    use rusqlite::ffi::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::NotADatabase | C::DatabaseCorrupt) => StoreError::NotADatabase {
            path: path.to_string(),
            detail: e.to_string(),
        },
        Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Busy(e.to_string()),
        _ if e.to_string().contains("no such function: acode_") => {
            StoreError::CaptureUnavailable(e.to_string())
        }
        _ if e.to_string().contains("acode: ") => StoreError::Invalid {
            field: "write",
            reason: e.to_string(),
        },
        _ => StoreError::Sqlite(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_io_errors_are_reported_as_transient_io() -> Result<()> {
        let conn = rusqlite::Connection::open_in_memory()?;
        let missing = conn.execute("SELECT * FROM no_such_table", []).unwrap_err();
        let e = classify(missing, ":memory:");
        assert_eq!(e.code(), ErrorCode::StoreInternal);
        assert!(!e.is_transient());

        conn.execute_batch("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('not a number');")?;
        let bad = conn
            .query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        assert_eq!(StoreError::Sqlite(bad).code(), ErrorCode::StoreNotADatabase);

        conn.execute_batch("CREATE TABLE u (x TEXT NOT NULL)")?;
        let constraint = conn.execute("INSERT INTO u VALUES (NULL)", []).unwrap_err();
        assert_eq!(
            classify(constraint, ":memory:").code(),
            ErrorCode::StoreInvalidInput
        );
        Ok(())
    }
}

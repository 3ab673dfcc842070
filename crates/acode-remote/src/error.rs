//! Errors of the PostgreSQL side. A rejected *change* is not an error: it
//! is a result inside the answer. These fail a whole call.

use acode_protocol::{ErrorCode, Id};

pub type Result<T, E = RemoteError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// No connection could be made: the engine is offline (rule 2).
    #[error("connecting to PostgreSQL at {target}: {message}")]
    Unreachable { target: String, message: String },
    /// The server was reached and the call failed (a broken connection, a
    /// timeout, a serialization failure): worth retrying.
    #[error("{context}: {}", detail(source))]
    Db {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("invalid remote url: {0}")]
    BadUrl(String),
    #[error("migrating the server schema: {0}")]
    Migration(String),
    #[error("batch {0}: idempotency key reused with another body")]
    BatchKeyReused(Id),
    #[error("device {0} is unknown, revoked, or belongs to another tenant")]
    Forbidden(String),
    #[error(
        "client schema version {client} is newer than the server's {server}: waiting for the server to be upgraded"
    )]
    SchemaTooNew { client: u32, server: u32 },
    #[error(
        "cursor {cursor} expired: tombstones below {purged_below} were purged; pull again from 0"
    )]
    CursorExpired { cursor: i64, purged_below: i64 },
    #[error("invalid cursor {0:?}: expected the next_cursor of an earlier pull, or 0")]
    BadCursor(String),
    #[error("missing, malformed, unknown or revoked device token")]
    Unauthorized,
    #[error("no such {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("stored data is not what this server wrote: {0}")]
    Corrupt(String),
}

/// The server's own message for a database error (tokio-postgres shows
/// only "db error"), else the error as it is.
fn detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl RemoteError {
    pub(crate) fn db(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> RemoteError {
        move |source| RemoteError::Db { context, source }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            RemoteError::Unreachable { .. } => ErrorCode::SyncConnectionFailed,
            RemoteError::Db { .. } | RemoteError::Corrupt(_) => ErrorCode::SyncBatchFailed,
            RemoteError::BadUrl(_) => ErrorCode::ConfigInvalidValue,
            RemoteError::Migration(_) => ErrorCode::SyncBatchFailed,
            RemoteError::BatchKeyReused(_) => ErrorCode::SyncKeyReused,
            RemoteError::BadCursor(_) => ErrorCode::SyncInvalidPayload,
            RemoteError::CursorExpired { .. } => ErrorCode::SyncCursorExpired,
            RemoteError::Forbidden(_) => ErrorCode::AuthForbidden,
            RemoteError::Unauthorized => ErrorCode::AuthInvalidToken,
            RemoteError::NotFound(_) => ErrorCode::AuthNotFound,
            RemoteError::Invalid(_) => ErrorCode::UsageInvalid,
            RemoteError::SchemaTooNew { .. } => ErrorCode::SyncSchemaMismatch,
        }
    }

    /// True when no answer came from the server: no connection could be
    /// made, or the connection was gone (a pooled connection cut by an
    /// outage). No retry attempt is spent on these (rule 2); a batch that
    /// was in flight stays frozen and is resent.
    pub fn is_unreachable(&self) -> bool {
        match self {
            RemoteError::Unreachable { .. } => true,
            RemoteError::Db { source, .. } => source.is_closed(),
            _ => false,
        }
    }

    /// True when the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            RemoteError::Unreachable { .. } | RemoteError::SchemaTooNew { .. } => true,
            RemoteError::Db { source, .. } => source.as_db_error().is_none_or(|db| {
                // Class 40 (serialization, deadlock), 53 (resources), 57
                // (operator intervention, e.g. shutdown), 08 (connection).
                let class = &db.code().code()[..2];
                matches!(class, "40" | "53" | "57" | "08")
            }),
            _ => false,
        }
    }
}

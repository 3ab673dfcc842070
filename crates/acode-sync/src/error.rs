//! Errors of the engine. A change the remote refuses is not one of these:
//! it fails its own entry and the engine goes on.

use acode_protocol::ErrorCode;
use acode_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("local database: {0}")]
    Store(#[from] StoreError),
    #[error("another sync worker ({0}) is running on this workspace")]
    LeaseHeld(String),
    #[error("{message}")]
    Remote { code: ErrorCode, message: String },
}

impl SyncError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SyncError::Store(e) => e.code(),
            SyncError::LeaseHeld(_) => ErrorCode::StoreBusy,
            SyncError::Remote { code, .. } => *code,
        }
    }
}

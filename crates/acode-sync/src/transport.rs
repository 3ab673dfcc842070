//! The boundary between the engine and a remote: push a batch, pull a page.
//! Implemented by the direct-PostgreSQL transport ([`crate::postgres`]) and
//! the HTTP one; tests wrap a real one to inject faults.

use std::future::Future;
use std::time::Duration;

use acode_protocol::{ErrorCode, Id, PullPage, PushRequest, PushResponse};

/// Why a call failed, in the terms the engine acts on (§15 rule 2).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TransportError {
    /// Nothing reached the remote (refused, no route, DNS): offline, no
    /// retry attempt is spent.
    #[error("remote unreachable: {0}")]
    Unreachable(String),
    /// The remote answered (or timed out after connecting) and the call may
    /// succeed later: counts as an attempt, unless `retry_after` says when.
    #[error("{code}: {message}")]
    Transient {
        code: ErrorCode,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Will fail again as it is: the batch's entries fail with `code`.
    #[error("{code}: {message}")]
    Permanent { code: ErrorCode, message: String },
    /// The remote refuses this device itself (a missing, bad or revoked
    /// token, a disabled tenant): the engine stops for this round, as when
    /// offline, spending no attempts; the status shows `code`.
    #[error("{code}: {message}")]
    Refused { code: ErrorCode, message: String },
    /// The cursor is older than the feed keeps: pull again from 0.
    #[error("cursor expired")]
    CursorExpired,
}

pub trait Transport: Send + Sync {
    /// Pushes one batch under its idempotency key.
    fn push(
        &self,
        batch_key: Id,
        request: &PushRequest,
    ) -> impl Future<Output = Result<PushResponse, TransportError>> + Send;

    /// Whether [`Transport::pull`] honours `wait` (holds the request until a
    /// change arrives); the worker then watches the feed with it.
    fn long_polls(&self) -> bool {
        false
    }

    /// Pulls changes after `cursor`; with `wait`, holds until one arrives.
    fn pull(
        &self,
        cursor: &str,
        limit: u32,
        wait: Option<Duration>,
    ) -> impl Future<Output = Result<PullPage, TransportError>> + Send;
}

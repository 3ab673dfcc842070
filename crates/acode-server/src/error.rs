//! Errors as the wire shows them (PROTOCOL.md "Common"): a status code and
//! `{"error": {"code", "message", "retryable"}}`. A change that is refused
//! is not one of these: it is a `rejected` result inside a 200.

use std::time::Duration;

use acode_protocol::ErrorCode;
use acode_remote::RemoteError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with the status and retryability of its code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            retryable: code.is_transient(),
            retry_after: None,
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    pub fn retryable(mut self, retryable: bool) -> ApiError {
        self.retryable = retryable;
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::AuthInvalidToken, message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::SyncInvalidPayload, message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::SyncInvalidPayload, message)
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    }

    /// A call to PostgreSQL that did not finish in time: it may or may not
    /// have committed; a retry under the same key finds out.
    pub fn timed_out(what: &str, after: Duration) -> ApiError {
        ApiError::new(
            ErrorCode::SyncBatchFailed,
            format!("{what} took longer than {} s", after.as_secs_f64()),
        )
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
        .retryable(true)
    }
}

impl From<RemoteError> for ApiError {
    fn from(e: RemoteError) -> ApiError {
        let message = e.to_string();
        match &e {
            RemoteError::Unauthorized => ApiError::unauthorized(message),
            RemoteError::Unreachable { .. } => {
                tracing::warn!(error = %e, "PostgreSQL unreachable");
                let mut e = ApiError::new(ErrorCode::SyncConnectionFailed, message);
                e.retry_after = Some(Duration::from_secs(5));
                e
            }
            RemoteError::Db { .. } | RemoteError::Migration(_) | RemoteError::Corrupt(_) => {
                tracing::error!(error = %e, "request failed in PostgreSQL");
                let transient = e.is_transient() || e.is_unreachable();
                let status = if transient {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                // The details stay in the server's log.
                ApiError::new(e.code(), "the server could not complete the request")
                    .with_status(status)
                    .retryable(transient)
            }
            _ => ApiError::new(e.code(), message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code.code(),
            "message": self.message,
            "retryable": self.retryable,
        }});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(after) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response.extensions_mut().insert(self.code);
        response
    }
}

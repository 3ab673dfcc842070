//! The HTTP transport (`remote.url: http(s)://…`): PROTOCOL.md over
//! reqwest with rustls (ring).
//!
//! How answers map onto the engine's terms (§15 rule 2):
//! - no connection at all (refused, DNS, no route, TLS handshake), or one
//!   cut before any answer: offline, no attempt spent;
//! - 401 and 403: the server refuses this device: offline with the code,
//!   no attempt spent, until the token is fixed;
//! - 5xx, 429 (with `Retry-After`), a 412 marked retryable (the server is
//!   older than this client), a timeout: transient;
//! - 503 with ACODE-SYNC-001 (the server's database is unreachable):
//!   offline, as with the direct transport;
//! - 410 on pull: the cursor expired, resync from zero;
//! - 400, 413, 422 and an older client's 412: permanent for the batch;
//! - any other status (a proxy's 404 during a deploy, 408, …): transient.

use std::time::Duration;

use acode_protocol::{ErrorCode, Id, PullPage, PushRequest, PushResponse, SCHEMA_VERSION};
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode};
use serde::Deserialize;

use crate::transport::{Transport, TransportError};

/// How long a TCP (and TLS) connection may take before the server counts
/// as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request may take once connected (a pull's `wait` comes on
/// top).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub struct HttpTransport {
    client: Client,
    /// `scheme://host[:port][/prefix]`, without a trailing slash.
    base: String,
    auth: HeaderValue,
}

impl HttpTransport {
    /// A client for the server at `url` with the device `token`; `ca_file`
    /// adds certificates to trust (PEM) for `https://`.
    pub fn new(url: &str, token: &str, ca_file: Option<&str>) -> Result<Self, String> {
        let base = url.trim().trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let token = token.trim();
        if token.is_empty() {
            return Err("sync.remote.token is not set: a sync server needs the device token that `acode admin device add` printed".into());
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "sync.remote.token holds characters a header cannot carry".to_string())?;
        auth.set_sensitive(true);
        let client = client_builder(ca_file)?
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(HttpTransport { client, base, auth })
    }
}

/// A client builder for the sync server: ring as the TLS provider, acode's
/// user agent, and the certificates of `ca_file` (PEM,
/// `sync.remote.ca_file`) trusted besides the system's roots.
pub fn client_builder(ca_file: Option<&str>) -> Result<reqwest::ClientBuilder, String> {
    install_crypto_provider();
    let mut builder = Client::builder().user_agent(concat!("acode/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file.map(str::trim).filter(|p| !p.is_empty()) {
        let pem = std::fs::read(path).map_err(|e| format!("sync.remote.ca_file {path}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("sync.remote.ca_file {path}: {e}"))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

/// Makes ring the process's TLS crypto provider (the one provider of the
/// whole build). Calling it again does nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The error body of PROTOCOL.md.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
    #[serde(default)]
    retryable: Option<bool>,
}

fn code_named(name: &str) -> Option<ErrorCode> {
    ErrorCode::ALL.iter().copied().find(|c| c.code() == name)
}

/// A failure before any answer came. No connection, or one that was gone
/// before a byte of answer arrived (the server or the way to it is down),
/// is offline, as for PostgreSQL; waiting too long on a live connection
/// is a transient failure that counts.
fn network(e: reqwest::Error) -> TransportError {
    // A connect timeout is both: it never connected, so it is offline.
    if e.is_connect() {
        return TransportError::Unreachable(without_url(&e));
    }
    if e.is_timeout() {
        return TransportError::Transient {
            code: ErrorCode::SyncConnectionFailed,
            message: format!("no answer in time: {}", without_url(&e)),
            retry_after: None,
        };
    }
    if e.is_request() {
        return TransportError::Unreachable(without_url(&e));
    }
    TransportError::Transient {
        code: ErrorCode::SyncConnectionFailed,
        message: without_url(&e),
        retry_after: None,
    }
}

/// The error with its cause chain, without the URL (it may hold a path or
/// credentials an operator would rather not log).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = match e.url() {
        Some(url) => e.to_string().replace(&format!(" for url ({url})"), ""),
        None => e.to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Maps a non-200 answer.
async fn refused(response: Response) -> TransportError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await.unwrap_or_default();
    let detail = serde_json::from_slice::<ErrorBody>(&body)
        .ok()
        .map(|b| b.error);
    let named = detail.as_ref().and_then(|d| code_named(&d.code));
    let message = detail.as_ref().map_or_else(
        || {
            let text = String::from_utf8_lossy(&body);
            format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            )
        },
        |d| d.message.clone(),
    );
    let retryable = detail.as_ref().and_then(|d| d.retryable);
    match status {
        // The server is up and its database is not: offline, as the direct
        // transport is when PostgreSQL cannot be reached (rule 2).
        StatusCode::SERVICE_UNAVAILABLE if named == Some(ErrorCode::SyncConnectionFailed) => {
            TransportError::Unreachable(format!("the server's database is unreachable: {message}"))
        }
        StatusCode::UNAUTHORIZED => TransportError::Refused {
            code: ErrorCode::AuthInvalidToken,
            message,
        },
        StatusCode::FORBIDDEN => TransportError::Refused {
            code: named.unwrap_or(ErrorCode::AuthForbidden),
            message,
        },
        StatusCode::GONE => TransportError::CursorExpired,
        StatusCode::TOO_MANY_REQUESTS => TransportError::Transient {
            code: named.unwrap_or(ErrorCode::SyncBatchFailed),
            message,
            retry_after,
        },
        StatusCode::PRECONDITION_FAILED if retryable != Some(false) => TransportError::Transient {
            code: ErrorCode::SyncSchemaMismatch,
            message,
            retry_after,
        },
        // What PROTOCOL.md names as final for the batch: unparseable (400),
        // a reused key (422), an older client (412), too large (413; a
        // frozen batch cannot be split, and under `batch_bytes_max` it
        // does not happen).
        StatusCode::BAD_REQUEST
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::PRECONDITION_FAILED
        | StatusCode::PAYLOAD_TOO_LARGE => TransportError::Permanent {
            code: named.unwrap_or(if status == StatusCode::PRECONDITION_FAILED {
                ErrorCode::SyncSchemaMismatch
            } else {
                ErrorCode::SyncInvalidPayload
            }),
            message,
        },
        // 5xx, and any other answer (a proxy's 404 during a deploy, 408,
        // 421, …), which is not the sync server's verdict on the batch:
        // retry.
        _ => TransportError::Transient {
            code: named.unwrap_or(ErrorCode::SyncBatchFailed),
            message,
            retry_after,
        },
    }
}

/// Reads a 200's JSON body; one that does not parse is a server fault
/// (e.g. a proxy's page), worth retrying.
async fn body<T: serde::de::DeserializeOwned>(response: Response) -> Result<T, TransportError> {
    let bytes = response.bytes().await.map_err(network)?;
    serde_json::from_slice(&bytes).map_err(|e| TransportError::Transient {
        code: ErrorCode::SyncBatchFailed,
        message: format!("the server's answer is not a protocol message: {e}"),
        retry_after: None,
    })
}

impl Transport for HttpTransport {
    fn long_polls(&self) -> bool {
        true
    }

    async fn push(
        &self,
        batch_key: Id,
        request: &PushRequest,
    ) -> Result<PushResponse, TransportError> {
        let response = self
            .client
            .post(format!("{}/v1/push", self.base))
            .header(AUTHORIZATION, self.auth.clone())
            .header("Idempotency-Key", batch_key.to_string())
            .header("Acode-Schema", SCHEMA_VERSION.to_string())
            .timeout(REQUEST_TIMEOUT)
            .json(request)
            .send()
            .await
            .map_err(network)?;
        if response.status() != StatusCode::OK {
            return Err(refused(response).await);
        }
        body(response).await
    }

    async fn pull(
        &self,
        cursor: &str,
        limit: u32,
        wait: Option<Duration>,
    ) -> Result<PullPage, TransportError> {
        let wait_secs = wait.map_or(0, |w| w.as_secs().min(60));
        let response = self
            .client
            .get(format!("{}/v1/pull", self.base))
            .header(AUTHORIZATION, self.auth.clone())
            .header("Acode-Schema", SCHEMA_VERSION.to_string())
            .query(&[
                ("since", cursor.to_string()),
                ("limit", limit.to_string()),
                ("wait", wait_secs.to_string()),
            ])
            .timeout(REQUEST_TIMEOUT + Duration::from_secs(wait_secs))
            .send()
            .await
            .map_err(network)?;
        if response.status() != StatusCode::OK {
            return Err(refused(response).await);
        }
        body(response).await
    }
}

//! Choosing the transport from `sync.remote.url`.

use std::time::Duration;

use acode_config::Config;
use acode_protocol::{ErrorCode, Id, PullPage, PushRequest, PushResponse};

use crate::error::SyncError;
use crate::http::HttpTransport;
use crate::postgres::PostgresTransport;
use crate::transport::{Transport, TransportError};

/// The transport a workspace's configuration names.
pub enum RemoteTransport {
    /// Boxed: it carries the pool and its configuration.
    Postgres(Box<PostgresTransport>),
    Http(HttpTransport),
}

/// The configured transport, or `None` when sync is disabled or no remote
/// is set (the workspace is offline-only).
pub fn transport_for(
    config: &Config,
    device_id: &str,
) -> Result<Option<RemoteTransport>, SyncError> {
    let Some(url) = config
        .sync
        .remote
        .url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    else {
        return Ok(None);
    };
    if !config.sync.enabled {
        return Ok(None);
    }
    let invalid = |message: String| SyncError::Remote {
        code: ErrorCode::ConfigInvalidValue,
        message,
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let t = PostgresTransport::new(url, &config.sync.remote.tenant, device_id)
            .map_err(|e| invalid(format!("sync.remote.url: {e}")))?;
        return Ok(Some(RemoteTransport::Postgres(Box::new(t))));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        let token = config.sync.remote.token.as_deref().unwrap_or_default();
        let t = HttpTransport::new(url, token, config.sync.remote.ca_file.as_deref())
            .map_err(|e| invalid(format!("sync.remote: {e}")))?;
        return Ok(Some(RemoteTransport::Http(t)));
    }
    Err(invalid(format!(
        "sync.remote.url: {:?} is neither postgres(ql):// nor http(s)://",
        url.chars().take(60).collect::<String>()
    )))
}

impl Transport for RemoteTransport {
    fn long_polls(&self) -> bool {
        matches!(self, RemoteTransport::Http(_))
    }

    async fn push(
        &self,
        batch_key: Id,
        request: &PushRequest,
    ) -> Result<PushResponse, TransportError> {
        match self {
            RemoteTransport::Postgres(t) => t.push(batch_key, request).await,
            RemoteTransport::Http(t) => t.push(batch_key, request).await,
        }
    }

    async fn pull(
        &self,
        cursor: &str,
        limit: u32,
        wait: Option<Duration>,
    ) -> Result<PullPage, TransportError> {
        match self {
            RemoteTransport::Postgres(t) => t.pull(cursor, limit, wait).await,
            RemoteTransport::Http(t) => t.pull(cursor, limit, wait).await,
        }
    }
}

//! Choosing the transport from `sync.remote.url`.

use std::time::Duration;

use acode_config::Config;
use acode_protocol::{ErrorCode, Id, PullPage, PushRequest, PushResponse};

use crate::error::SyncError;
use crate::postgres::PostgresTransport;
use crate::transport::{Transport, TransportError};

/// The transport a workspace's configuration names.
pub enum RemoteTransport {
    Postgres(PostgresTransport),
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
        return Ok(Some(RemoteTransport::Postgres(t)));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(invalid(
            "sync.remote.url: the http(s) transport needs the sync server, which this build does not include yet; use a postgres:// URL (direct mode)".into(),
        ));
    }
    Err(invalid(format!(
        "sync.remote.url: {:?} is neither postgres(ql):// nor http(s)://",
        url.chars().take(60).collect::<String>()
    )))
}

impl Transport for RemoteTransport {
    async fn push(
        &self,
        batch_key: Id,
        request: &PushRequest,
    ) -> Result<PushResponse, TransportError> {
        match self {
            RemoteTransport::Postgres(t) => t.push(batch_key, request).await,
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
        }
    }
}

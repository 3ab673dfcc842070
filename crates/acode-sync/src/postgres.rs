//! The direct-PostgreSQL transport (`remote.url: postgres://…`): runs the
//! ingest and feed code of `acode-remote` in process, so it cannot drift
//! from the server. The device belongs to the configured tenant, registered
//! on first use, and the server schema is created on first use.
//!
//! Trust: the database credentials reach every tenant, so a device holding
//! them is trusted with all of them (§15 rule 9). Use the sync server
//! (`http(s)://…`) where devices must be isolated from each other.

use std::time::Duration;

use acode_protocol::{ErrorCode, Id, PullPage, PushRequest, PushResponse};
use acode_remote::{Device, Remote, RemoteError};
use tokio::sync::OnceCell;

use crate::transport::{Transport, TransportError};

pub struct PostgresTransport {
    remote: Remote,
    tenant: String,
    device_id: String,
    device: OnceCell<Device>,
}

impl PostgresTransport {
    pub fn new(url: &str, tenant: &str, device_id: &str) -> Result<Self, TransportError> {
        let remote = Remote::new(url, 4).map_err(|e| TransportError::Permanent {
            code: e.code(),
            message: e.to_string(),
        })?;
        Ok(PostgresTransport {
            remote,
            tenant: tenant.to_string(),
            device_id: device_id.to_string(),
            device: OnceCell::new(),
        })
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    async fn device(&self) -> Result<&Device, TransportError> {
        self.device
            .get_or_try_init(|| async {
                self.remote.migrate().await.map_err(map)?;
                self.remote
                    .register_device(&self.tenant, &self.device_id, &self.device_id)
                    .await
                    .map_err(map)
            })
            .await
    }
}

fn map(e: RemoteError) -> TransportError {
    if e.is_unreachable() {
        return TransportError::Unreachable(e.to_string());
    }
    if e.is_transient() {
        return TransportError::Transient {
            code: e.code(),
            message: e.to_string(),
            retry_after: None,
        };
    }
    TransportError::Permanent {
        code: e.code(),
        message: e.to_string(),
    }
}

impl Transport for PostgresTransport {
    async fn push(
        &self,
        batch_key: Id,
        request: &PushRequest,
    ) -> Result<PushResponse, TransportError> {
        let device = self.device().await?;
        self.remote
            .push(device, batch_key, request)
            .await
            .map_err(map)
    }

    async fn pull(
        &self,
        cursor: &str,
        limit: u32,
        _wait: Option<Duration>,
    ) -> Result<PullPage, TransportError> {
        let device = self.device().await?;
        self.remote
            .pull(device, cursor, limit)
            .await
            .map_err(|e| match e {
                RemoteError::CursorExpired { .. } => TransportError::CursorExpired,
                RemoteError::BadCursor(_) => TransportError::Permanent {
                    code: ErrorCode::SyncCursorExpired,
                    message: e.to_string(),
                },
                other => map(other),
            })
    }
}

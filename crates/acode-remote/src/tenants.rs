//! Tenants and devices. Every read and write of the feed and the mirror
//! tables is scoped by the tenant of the calling [`Device`].

use acode_protocol::Id;

use crate::Remote;
use crate::error::{RemoteError, Result};

/// An authenticated caller: the device and the tenant it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub tenant_id: String,
    pub device_id: String,
}

impl Remote {
    /// The id of the tenant named `name`, created when missing.
    pub async fn ensure_tenant(&self, name: &str) -> Result<String> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO sync_tenants (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&Id::new().to_string(), &name],
            )
            .await
            .map_err(RemoteError::db("creating tenant"))?;
        let row = client
            .query_one("SELECT id FROM sync_tenants WHERE name = $1", &[&name])
            .await
            .map_err(RemoteError::db("reading tenant"))?;
        Ok(row.get(0))
    }

    /// Registers a device of the direct transport (no token) in the tenant
    /// named `tenant`, or finds it. A device id already registered in
    /// another tenant, or revoked, is refused.
    pub async fn register_device(
        &self,
        tenant: &str,
        device_id: &str,
        name: &str,
    ) -> Result<Device> {
        let tenant_id = self.ensure_tenant(tenant).await?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO sync_devices (id, tenant_id, name) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
                &[&device_id, &tenant_id, &name],
            )
            .await
            .map_err(RemoteError::db("registering device"))?;
        let row = client
            .query_one(
                "SELECT tenant_id, revoked_at IS NOT NULL FROM sync_devices WHERE id = $1",
                &[&device_id],
            )
            .await
            .map_err(RemoteError::db("reading device"))?;
        let (owner, revoked): (String, bool) = (row.get(0), row.get(1));
        if owner != tenant_id || revoked {
            return Err(RemoteError::Forbidden(device_id.to_string()));
        }
        Ok(Device {
            tenant_id,
            device_id: device_id.to_string(),
        })
    }
}

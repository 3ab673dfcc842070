//! Device tokens of the sync server (DESIGN.md §6, §15 rule 9).
//!
//! A token is `acd1.<device id>.<secret>`: the device id selects the row,
//! and the secret is checked against the SHA-256 stored for it with a
//! constant-time comparison. Only the hash is stored; the token is shown
//! once, when the device is added. A revoked device, or one of a disabled
//! tenant, is refused on its next request: nothing is cached.

use acode_protocol::Id;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{RemoteError, Result};
use crate::{Device, Remote};

const TOKEN_PREFIX: &str = "acd1";
/// Bytes of randomness in a token's secret (hex-encoded in the token).
const SECRET_BYTES: usize = 32;

/// A tenant as `admin tenant add` reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// False when a tenant of that name existed already.
    pub created: bool,
}

/// A device added by `admin device add`, with its token (never stored).
#[derive(Clone, Debug, serde::Serialize)]
pub struct NewDevice {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub token: String,
}

/// A device as `admin device list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    pub id: String,
    pub tenant: String,
    pub name: String,
    /// False for a device of the direct transport (it has no token).
    pub has_token: bool,
    pub created_at: String,
    pub last_seen_at: Option<String>,
    pub revoked_at: Option<String>,
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn new_secret() -> Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| RemoteError::Corrupt(format!("no randomness for a token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The device id and secret of a token, or `None` when it is not one.
fn split(token: &str) -> Option<(&str, &str)> {
    let mut parts = token.trim().splitn(3, '.');
    let (prefix, id, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let well_formed = prefix == TOKEN_PREFIX
        && id.parse::<Id>().is_ok()
        && secret.len() == SECRET_BYTES * 2
        && secret.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some((id, secret))
}

impl Remote {
    /// Creates the tenant `name`; an existing one is returned as it is.
    pub async fn add_tenant(&self, name: &str) -> Result<Tenant> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 || name.contains('\0') {
            return Err(RemoteError::Invalid(
                "a tenant name is 1 to 200 characters, without NUL".into(),
            ));
        }
        let client = self.client().await?;
        let inserted = client
            .query_opt(
                "INSERT INTO sync_tenants (id, name) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&Id::new().to_string(), &name],
            )
            .await
            .map_err(RemoteError::db("creating tenant"))?;
        let (id, created) = match inserted {
            Some(row) => (row.get(0), true),
            None => {
                let row = client
                    .query_one("SELECT id FROM sync_tenants WHERE name = $1", &[&name])
                    .await
                    .map_err(RemoteError::db("reading tenant"))?;
                (row.get(0), false)
            }
        };
        Ok(Tenant {
            id,
            name: name.to_string(),
            created,
        })
    }

    /// Adds a device with a new token to the existing tenant `tenant`.
    pub async fn add_device(&self, tenant: &str, name: &str) -> Result<NewDevice> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 || name.contains('\0') {
            return Err(RemoteError::Invalid(
                "a device name is 1 to 200 characters, without NUL".into(),
            ));
        }
        let client = self.client().await?;
        let tenant_id: String = client
            .query_opt("SELECT id FROM sync_tenants WHERE name = $1", &[&tenant])
            .await
            .map_err(RemoteError::db("reading tenant"))?
            .ok_or_else(|| RemoteError::NotFound(format!("tenant {tenant:?}")))?
            .get(0);
        let id = Id::new().to_string();
        let secret = new_secret()?;
        client
            .execute(
                "INSERT INTO sync_devices (id, tenant_id, name, token_hash) VALUES ($1, $2, $3, $4)",
                &[&id, &tenant_id, &name, &hash(&secret)],
            )
            .await
            .map_err(RemoteError::db("adding device"))?;
        Ok(NewDevice {
            token: format!("{TOKEN_PREFIX}.{id}.{secret}"),
            id,
            tenant: tenant.to_string(),
            name: name.to_string(),
        })
    }

    /// Every device, oldest first; only those of `tenant` when given.
    pub async fn list_devices(&self, tenant: Option<&str>) -> Result<Vec<DeviceInfo>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT d.id, t.name, d.name, d.token_hash IS NOT NULL,
                        to_char(d.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                        to_char(d.last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                        to_char(d.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 FROM sync_devices d JOIN sync_tenants t ON t.id = d.tenant_id
                 WHERE $1::text IS NULL OR t.name = $1
                 ORDER BY d.created_at, d.id",
                &[&tenant],
            )
            .await
            .map_err(RemoteError::db("listing devices"))?;
        Ok(rows
            .iter()
            .map(|r| DeviceInfo {
                id: r.get(0),
                tenant: r.get(1),
                name: r.get(2),
                has_token: r.get(3),
                created_at: r.get(4),
                last_seen_at: r.get(5),
                revoked_at: r.get(6),
            })
            .collect())
    }

    /// Revokes device `id`: its token stops working at once. Revoking a
    /// revoked device changes nothing.
    pub async fn revoke_device(&self, id: &str) -> Result<()> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE sync_devices SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(RemoteError::db("revoking device"))?;
        if n == 0 {
            return Err(RemoteError::NotFound(format!("device {id:?}")));
        }
        Ok(())
    }

    /// The device a bearer token stands for. A malformed, unknown or
    /// revoked token is [`RemoteError::Unauthorized`]; a device of a
    /// disabled tenant is [`RemoteError::Forbidden`].
    pub async fn authenticate(&self, token: &str) -> Result<Device> {
        let (id, secret) = split(token).ok_or(RemoteError::Unauthorized)?;
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT d.tenant_id, d.token_hash, d.revoked_at IS NOT NULL, t.disabled
                 FROM sync_devices d JOIN sync_tenants t ON t.id = d.tenant_id
                 WHERE d.id = $1",
                &[&id],
            )
            .await
            .map_err(RemoteError::db("reading device"))?
            .ok_or(RemoteError::Unauthorized)?;
        let stored: Option<Vec<u8>> = row.get(1);
        let matches = stored.is_some_and(|s| bool::from(s.ct_eq(&hash(secret))));
        let (revoked, disabled): (bool, bool) = (row.get(2), row.get(3));
        if !matches || revoked {
            return Err(RemoteError::Unauthorized);
        }
        if disabled {
            return Err(RemoteError::Forbidden(id.to_string()));
        }
        Ok(Device {
            tenant_id: row.get(0),
            device_id: id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_split() {
        let id = Id::new().to_string();
        let secret = "ab".repeat(SECRET_BYTES);
        let token = format!("acd1.{id}.{secret}");
        assert_eq!(split(&token), Some((id.as_str(), secret.as_str())));
        for bad in [
            "",
            "acd1",
            &format!("acd2.{id}.{secret}"),
            &format!("acd1.nope.{secret}"),
            &format!("acd1.{id}.{}", "zz".repeat(SECRET_BYTES)),
            &format!("acd1.{id}.ab"),
            &format!("acd1.{id}.{secret}.x"),
        ] {
            assert_eq!(split(bad), None, "{bad:?}");
        }
    }
}

//! Reads of the change feed by cursor (DESIGN.md §5). The cursor is the
//! last feed sequence number a device has applied; within a tenant, sequence
//! order is commit order (see `ingest`), so reading "after the cursor" never
//! skips a change that commits later.

use acode_protocol::{PullChange, PullPage};
use serde_json::Value;

use crate::error::{RemoteError, Result};
use crate::{Device, Remote};

/// The most changes one pull returns.
pub const MAX_LIMIT: u32 = 1000;

impl Remote {
    /// The changes of the device's tenant after `since` (`"0"` at first).
    pub async fn pull(&self, device: &Device, since: &str, limit: u32) -> Result<PullPage> {
        let since: i64 = since
            .parse()
            .ok()
            .filter(|s: &i64| *s >= 0)
            .ok_or_else(|| RemoteError::BadCursor(since.chars().take(40).collect()))?;
        let limit = i64::from(limit.clamp(1, MAX_LIMIT));
        let client = self.client().await?;
        // The device has applied everything up to `since`: remember it (the
        // purge horizon), and refuse a cursor behind purged tombstones.
        let purged_below: i64 = client
            .query_one(
                "WITH seen AS (
                     UPDATE sync_devices SET last_pulled_seq = greatest(last_pulled_seq, $3), last_seen_at = now()
                     WHERE id = $2 AND tenant_id = $1
                 )
                 SELECT purged_below FROM sync_tenants WHERE id = $1",
                &[&device.tenant_id, &device.device_id, &since],
            )
            .await
            .map_err(RemoteError::db("recording pull progress"))?
            .get(0);
        if since > 0 && since < purged_below {
            return Err(RemoteError::CursorExpired {
                cursor: since,
                purged_below,
            });
        }
        let rows = client
            .query(
                "SELECT seq, key, entity, entity_id, op, version, hlc, origin_device, data
                 FROM sync_changes WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&device.tenant_id, &since, &(limit + 1)],
            )
            .await
            .map_err(RemoteError::db("reading the feed"))?;
        let has_more = rows.len() as i64 > limit;
        let mut changes = Vec::with_capacity(rows.len());
        for row in rows.iter().take(limit as usize) {
            let corrupt = |what: &str| RemoteError::Corrupt(format!("feed entry: bad {what}"));
            let data: Option<Value> = row.get(8);
            changes.push(PullChange {
                seq: row.get(0),
                key: row
                    .get::<_, String>(1)
                    .parse()
                    .map_err(|_| corrupt("key"))?,
                entity: row
                    .get::<_, String>(2)
                    .parse()
                    .map_err(|_| corrupt("entity"))?,
                id: row.get::<_, String>(3).parse().map_err(|_| corrupt("id"))?,
                op: serde_json::from_value(Value::String(row.get(4))).map_err(|_| corrupt("op"))?,
                version: row.get(5),
                hlc: row.get(6),
                origin_device: row.get(7),
                data: data.and_then(|d| d.as_object().cloned()),
            });
        }
        let next_cursor = changes.last().map_or(since, |c| c.seq).to_string();
        Ok(PullPage {
            changes,
            next_cursor,
            has_more,
            server_time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })
    }
}

/// What a purge removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Purged {
    /// Tombstones removed from the feed.
    pub removed: u64,
    /// Every active device has applied the feed up to here; tombstones up
    /// to it are gone, and cursors below it (other than 0) have expired.
    pub horizon: i64,
}

impl Remote {
    /// Removes the feed's tombstones that every active device of the tenant
    /// has pulled past (rule 10). A device is active when it pulled within
    /// `active_within` and is not revoked; an inactive one whose cursor is
    /// behind the horizon gets `cursor_expired` and resyncs from zero.
    pub async fn purge_tombstones(
        &self,
        tenant_id: &str,
        active_within: std::time::Duration,
    ) -> Result<Purged> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(RemoteError::db("starting purge"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(1, hashtext($1))",
            &[&tenant_id],
        )
        .await
        .map_err(RemoteError::db("locking tenant"))?;
        let seconds = active_within.as_secs_f64();
        let horizon: i64 = tx
            .query_one(
                "SELECT coalesce(
                     (SELECT min(last_pulled_seq) FROM sync_devices
                      WHERE tenant_id = $1 AND revoked_at IS NULL
                        AND last_seen_at > now() - make_interval(secs => $2)),
                     (SELECT coalesce(max(seq), 0) FROM sync_changes WHERE tenant_id = $1))",
                &[&tenant_id, &seconds],
            )
            .await
            .map_err(RemoteError::db("finding the purge horizon"))?
            .get(0);
        let removed = tx
            .execute(
                "DELETE FROM sync_changes WHERE tenant_id = $1 AND op = 'delete' AND seq <= $2",
                &[&tenant_id, &horizon],
            )
            .await
            .map_err(RemoteError::db("purging tombstones"))?;
        tx.execute(
            "UPDATE sync_tenants SET purged_below = greatest(purged_below, $2) WHERE id = $1",
            &[&tenant_id, &horizon],
        )
        .await
        .map_err(RemoteError::db("recording the purge"))?;
        tx.commit()
            .await
            .map_err(RemoteError::db("committing purge"))?;
        Ok(Purged { removed, horizon })
    }
}

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

//! Reads of the change feed by cursor (DESIGN.md §5). The cursor is the
//! last feed sequence number a device has applied; within a tenant, sequence
//! order is commit order (see `ingest`), so reading "after the cursor" never
//! skips a change that commits later.

use acode_protocol::{PullChange, PullPage};
use serde_json::Value;

use crate::error::{RemoteError, Result};
use crate::{Device, Remote};

/// A position in the feed: the last sequence number applied, and the purge
/// horizon when the cursor was issued (`<purged_below>.<seq>`; a bare
/// `<seq>` is from before any purge). A cursor expires only when a purge
/// since it was issued removed tombstones it had not reached yet: a device
/// reading from 0 through rows older than the horizon is never refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    purged_below: i64,
    seq: i64,
}

impl Cursor {
    fn parse(text: &str) -> Result<Cursor> {
        let bad = || RemoteError::BadCursor(text.chars().take(40).collect());
        let (purged_below, seq) = match text.split_once('.') {
            Some((p, s)) => (p.parse().map_err(|_| bad())?, s.parse().map_err(|_| bad())?),
            None => (0, text.parse().map_err(|_| bad())?),
        };
        if seq < 0 || purged_below < 0 {
            return Err(bad());
        }
        Ok(Cursor { purged_below, seq })
    }

    fn expired(&self, purged_below: i64) -> bool {
        self.seq > 0 && self.purged_below < purged_below && self.seq < purged_below
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.purged_below == 0 {
            write!(f, "{}", self.seq)
        } else {
            write!(f, "{}.{}", self.purged_below, self.seq)
        }
    }
}

/// The most changes one pull returns.
pub const MAX_LIMIT: u32 = 1000;

impl Remote {
    /// The changes of the device's tenant after `since` (`"0"` at first).
    pub async fn pull(&self, device: &Device, since: &str, limit: u32) -> Result<PullPage> {
        let cursor = Cursor::parse(since)?;
        let limit = i64::from(limit.clamp(1, MAX_LIMIT));
        let mut client = self.client().await?;
        // The device has applied everything up to the cursor: remember it
        // (the purge horizon). Its own statement, outside the snapshot
        // below, so two pulls of one device at once (a worker's and its
        // long-poll) never fail each other on this row.
        client
            .execute(
                "UPDATE sync_devices SET last_pulled_seq = greatest(last_pulled_seq, $3), last_seen_at = now()
                 WHERE id = $2 AND tenant_id = $1",
                &[&device.tenant_id, &device.device_id, &cursor.seq],
            )
            .await
            .map_err(RemoteError::db("recording pull progress"))?;
        // One snapshot for the horizon check and the read, so a purge that
        // commits in between cannot slip tombstones past this pull: a
        // cursor issued before tombstones it had not reached were purged is
        // refused.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(RemoteError::db("starting a pull"))?;
        let purged_below: i64 = tx
            .query_one(
                "SELECT purged_below FROM sync_tenants WHERE id = $1",
                &[&device.tenant_id],
            )
            .await
            .map_err(RemoteError::db("reading the purge horizon"))?
            .get(0);
        if cursor.expired(purged_below) {
            return Err(RemoteError::CursorExpired {
                cursor: cursor.seq,
                purged_below,
            });
        }
        let since = cursor.seq;
        let rows = tx
            .query(
                "SELECT seq, key, entity, entity_id, op, version, hlc, origin_device, data
                 FROM sync_changes WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&device.tenant_id, &since, &(limit + 1)],
            )
            .await
            .map_err(RemoteError::db("reading the feed"))?;
        tx.commit()
            .await
            .map_err(RemoteError::db("ending a pull"))?;
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
        let next_cursor = Cursor {
            purged_below,
            seq: changes.last().map_or(since, |c| c.seq),
        }
        .to_string();
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
    /// [`Remote::purge_tombstones`] for every tenant that has tombstones;
    /// how many it removed in all.
    pub async fn purge_all_tombstones(&self, active_within: std::time::Duration) -> Result<u64> {
        let tenants: Vec<String> = self
            .client()
            .await?
            .query(
                "SELECT DISTINCT tenant_id FROM sync_changes WHERE op = 'delete'",
                &[],
            )
            .await
            .map_err(RemoteError::db("finding tenants with tombstones"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut removed = 0;
        for tenant in tenants {
            removed += self.purge_tombstones(&tenant, active_within).await?.removed;
        }
        Ok(removed)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_expire_only_across_a_purge() {
        let c = Cursor::parse("7.120").unwrap();
        assert_eq!((c.purged_below, c.seq), (7, 120));
        assert_eq!(c.to_string(), "7.120");
        assert_eq!(Cursor::parse("42").unwrap().to_string(), "42");
        assert!(
            Cursor::parse("x").is_err()
                && Cursor::parse("-1").is_err()
                && Cursor::parse("1.x").is_err()
        );
        // Issued after the purge at 100: reading older rows is fine.
        assert!(
            !Cursor {
                purged_below: 100,
                seq: 50
            }
            .expired(100)
        );
        // Issued before it, and behind it: expired.
        assert!(
            Cursor {
                purged_below: 0,
                seq: 50
            }
            .expired(100)
        );
        // Past the horizon, or at the start: never.
        assert!(
            !Cursor {
                purged_below: 0,
                seq: 100
            }
            .expired(100)
        );
        assert!(
            !Cursor {
                purged_below: 0,
                seq: 0
            }
            .expired(100)
        );
    }
}

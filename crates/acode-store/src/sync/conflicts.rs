//! The losing side of every conflict (DESIGN.md §8), kept until the user
//! has looked (`acode sync conflicts --ack`).

use acode_protocol::{Entity, Id};
use serde::Serialize;

use crate::Tx;
use crate::error::{Result, StoreError};
use crate::outbox::RowStatus;
use crate::record::{id_column, parsed_column};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConflictRecord {
    pub id: i64,
    pub entity: Entity,
    pub entity_id: Id,
    pub local_version: i64,
    pub remote_version: i64,
    pub resolution: String,
    /// The losing version as JSON: `{version, hlc, deleted, data}`.
    pub loser: serde_json::Value,
    pub preserved_path: Option<String>,
    pub created_at: i64,
    pub acked_at: Option<i64>,
}

/// A conflict to record.
pub struct NewConflict<'a> {
    pub entity: Entity,
    pub entity_id: Id,
    pub local_version: i64,
    pub remote_version: i64,
    pub resolution: &'a str,
    pub loser: &'a serde_json::Value,
    pub preserved_path: Option<&'a str>,
}

impl Tx<'_> {
    pub fn record_conflict(&self, c: &NewConflict<'_>, now: i64) -> Result<i64> {
        self.conn
            .prepare_cached(
                "INSERT INTO sync_conflicts
                     (entity, entity_id, local_version, remote_version, resolution, loser, preserved_path, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute((
                c.entity.as_str(),
                c.entity_id.to_string(),
                c.local_version,
                c.remote_version,
                c.resolution,
                c.loser.to_string(),
                c.preserved_path,
                now,
            ))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Conflicts, newest first; acknowledged ones only when asked.
    pub fn conflicts(&self, include_acked: bool) -> Result<Vec<ConflictRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, entity, entity_id, local_version, remote_version, resolution, loser,
                    preserved_path, created_at, acked_at
             FROM sync_conflicts WHERE ?1 OR acked_at IS NULL ORDER BY id DESC",
        )?;
        let rows = stmt.query_map([include_acked], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                parsed_column(row, 1)?,
                id_column(row, 2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get::<_, String>(6)?,
                row.get(7)?,
                row.get(8)?,
                row.get(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (
                id,
                entity,
                entity_id,
                local_version,
                remote_version,
                resolution,
                loser,
                preserved_path,
                created_at,
                acked_at,
            ) = r?;
            out.push(ConflictRecord {
                id,
                entity,
                entity_id,
                local_version,
                remote_version,
                resolution,
                loser: serde_json::from_str(&loser)
                    .map_err(|e| StoreError::Internal(format!("conflict {id}: {e}")))?,
                preserved_path,
                created_at,
                acked_at,
            });
        }
        Ok(out)
    }

    /// Marks conflicts as seen (all when `ids` is empty). A row whose
    /// conflicts are all seen shows `synced` again. Returns how many.
    pub fn ack_conflicts(&self, ids: &[i64], now: i64) -> Result<usize> {
        let open = self.conflicts(false)?;
        let mut n = 0;
        for c in open
            .iter()
            .filter(|c| ids.is_empty() || ids.contains(&c.id))
        {
            self.conn
                .prepare_cached("UPDATE sync_conflicts SET acked_at = ?2 WHERE id = ?1")?
                .execute((c.id, now))?;
            n += 1;
            let still_open: i64 = self.conn.query_row(
                "SELECT count(*) FROM sync_conflicts WHERE entity = ?1 AND entity_id = ?2 AND acked_at IS NULL",
                (c.entity.as_str(), c.entity_id.to_string()),
                |r| r.get(0),
            )?;
            if still_open == 0 {
                self.conn
                    .prepare_cached(
                        "UPDATE sync_row_remote SET status = ?3 WHERE entity = ?1 AND entity_id = ?2 AND status = 'conflict'",
                    )?
                    .execute((c.entity.as_str(), c.entity_id.to_string(), RowStatus::Synced.as_str()))?;
            }
        }
        Ok(n)
    }
}

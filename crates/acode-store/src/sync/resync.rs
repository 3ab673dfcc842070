//! Resync from zero after `cursor_expired` (DESIGN.md §15 rule 10): the
//! feed no longer holds the tombstones this device missed, so the rows it
//! sees again are noted, and at the end the synced rows it did not see are
//! the ones deleted remotely meanwhile.

use acode_protocol::{Entity, Id};

use crate::Tx;
use crate::error::Result;
use crate::record::{id_column, parsed_column};

impl Tx<'_> {
    /// Starts a resync: the cursor goes back to 0 and nothing is seen yet.
    pub fn begin_resync(&self) -> Result<()> {
        self.conn.execute("DELETE FROM sync_resync_seen", [])?;
        self.set_state("resyncing", "1")?;
        self.reset_cursor()
    }

    pub fn resyncing(&self) -> Result<bool> {
        Ok(self.state("resyncing")?.as_deref() == Some("1"))
    }

    /// Notes that the feed still has this row.
    pub fn mark_seen(&self, entity: Entity, id: Id) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO sync_resync_seen (entity, entity_id) VALUES (?1, ?2)",
            )?
            .execute((entity.as_str(), id.to_string()))?;
        Ok(())
    }

    /// The rows the remote had (server version > 0) that the resync did not
    /// see: deleted remotely while this device was away.
    pub fn unseen_synced_rows(&self) -> Result<Vec<(Entity, Id)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.entity, r.entity_id FROM sync_row_remote r
             WHERE r.server_version > 0
               AND NOT EXISTS (SELECT 1 FROM sync_resync_seen s
                               WHERE s.entity = r.entity AND s.entity_id = r.entity_id)",
        )?;
        let rows = stmt.query_map([], |r| Ok((parsed_column(r, 0)?, id_column(r, 1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets what the remote knew of a row that is gone on both sides.
    pub fn forget_row_remote(&self, entity: Entity, id: Id) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM sync_row_remote WHERE entity = ?1 AND entity_id = ?2")?
            .execute((entity.as_str(), id.to_string()))?;
        Ok(())
    }

    pub fn end_resync(&self) -> Result<()> {
        self.conn.execute("DELETE FROM sync_resync_seen", [])?;
        self.set_state("resyncing", "0")
    }
}

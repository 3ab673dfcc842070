//! The upload queue: unsettled outbox entries, frozen batches (§15 rule 1)
//! and their settlement.

use std::collections::{HashMap, HashSet};

use acode_protocol::{Change, Entity, Id};
use rusqlite::OptionalExtension;

use crate::Tx;
use crate::error::{Result, StoreError};
use crate::outbox::{ENTRY_COLUMNS, EntryStatus, OutboxEntry, RowStatus, entry};
use crate::record::{id_column, parsed_column};

/// One change of a frozen batch and the outbox entries it settles.
#[derive(Clone, Debug, PartialEq)]
pub struct FrozenChange {
    pub change: Change,
    /// Every entry of the row this change covers (coalesced), oldest first.
    pub seqs: Vec<i64>,
}

/// What the remote said about a row: its version there, the outcome, and
/// the last local entry that outcome settles.
#[derive(Clone, Copy, Debug)]
pub struct RowRemote<'a> {
    pub server_version: i64,
    pub status: RowStatus,
    pub last_error: Option<&'a str>,
    pub settled_seq: Option<i64>,
}

impl<'a> RowRemote<'a> {
    pub fn synced(server_version: i64, settled_seq: Option<i64>) -> Self {
        RowRemote {
            server_version,
            status: RowStatus::Synced,
            last_error: None,
            settled_seq,
        }
    }

    pub fn conflict(server_version: i64, error: &'a str, settled_seq: Option<i64>) -> Self {
        RowRemote {
            server_version,
            status: RowStatus::Conflict,
            last_error: Some(error),
            settled_seq,
        }
    }
}

/// A batch as first sent: resent exactly until it settles.
#[derive(Clone, Debug, PartialEq)]
pub struct FrozenBatch {
    pub key: Id,
    pub changes: Vec<FrozenChange>,
    pub attempts: i64,
    pub next_retry_at: Option<i64>,
}

impl Tx<'_> {
    /// Every unsettled entry, in local order (one scan of the queue).
    pub fn queue(&self) -> Result<Vec<OutboxEntry>> {
        let mut stmt = self.conn.prepare_cached(
            &format!("SELECT {ENTRY_COLUMNS} FROM sync_outbox WHERE status IN ('pending', 'in_flight', 'failed') ORDER BY seq"),
        )?;
        let rows = stmt.query_map([], entry)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The server version of each row, as last settled or pulled (0: the
    /// server has never had it).
    pub fn server_version(&self, entity: Entity, id: Id) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT server_version FROM sync_row_remote WHERE entity = ?1 AND entity_id = ?2",
            )?
            .query_row((entity.as_str(), id.to_string()), |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// [`Tx::server_version`] for many rows of one entity in one query;
    /// rows the remote never had are absent (version 0).
    pub fn server_versions(&self, entity: Entity, ids: &[Id]) -> Result<HashMap<Id, i64>> {
        let wanted: Vec<String> = ids.iter().map(Id::to_string).collect();
        let wanted =
            serde_json::to_string(&wanted).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.entity_id, r.server_version
             FROM json_each(?2) AS w CROSS JOIN sync_row_remote r ON r.entity = ?1 AND r.entity_id = w.value",
        )?;
        let rows = stmt.query_map((entity.as_str(), wanted), |r| {
            Ok((id_column(r, 0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Fixes a batch: its key, and for each change the base version and
    /// payload (the change as JSON, as the caller serialised it to size the
    /// batch). The change is stored on the row's first entry in the batch,
    /// so reading the batch back in entry order gives the changes in the
    /// order they were sent (a resend must be byte-for-byte the same batch).
    pub fn freeze_batch(&self, key: Id, changes: &[(FrozenChange, String)]) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE sync_outbox SET status = 'in_flight', batch_key = ?2, base_version = ?3,
                    payload = ?4, next_retry_at = NULL
             WHERE seq = ?1",
        )?;
        let key = key.to_string();
        for (fc, payload) in changes {
            let first = fc.seqs.iter().copied().min();
            for seq in &fc.seqs {
                let carried = (Some(*seq) == first).then_some(payload.as_str());
                stmt.execute((seq, &key, fc.change.base_version, carried))?;
            }
        }
        Ok(())
    }

    /// The oldest frozen batch that is due at `now` (it has no retry time,
    /// or that time has come), other than `skip` (a batch being pushed):
    /// exactly as it was frozen. Batches are taken in the order of their
    /// oldest entry.
    pub fn frozen_batch(&self, now: i64, skip: Option<Id>) -> Result<Option<FrozenBatch>> {
        let key: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT batch_key FROM sync_outbox INDEXED BY sync_outbox_in_flight
                 WHERE status = 'in_flight' AND batch_key IS NOT ?2
                 GROUP BY batch_key HAVING coalesce(max(next_retry_at), 0) <= ?1
                 ORDER BY min(seq) LIMIT 1",
            )?
            .query_row((now, skip.map(|k| k.to_string())), |r| r.get(0))
            .optional()?;
        let Some(key) = key else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT batch_key, seq, entity, entity_id, payload, attempts, next_retry_at
             FROM sync_outbox INDEXED BY sync_outbox_in_flight
             WHERE status = 'in_flight' AND batch_key = ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query([key])?;
        let mut batch: Option<FrozenBatch> = None;
        let mut seqs_of: HashMap<(String, String), Vec<i64>> = HashMap::new();
        while let Some(row) = rows.next()? {
            let key: Id = id_column(row, 0)?;
            let b = batch.get_or_insert_with(|| FrozenBatch {
                key,
                changes: Vec::new(),
                attempts: 0,
                next_retry_at: None,
            });
            b.attempts = b.attempts.max(row.get(5)?);
            b.next_retry_at = b.next_retry_at.max(row.get(6)?);
            seqs_of
                .entry((row.get(2)?, row.get(3)?))
                .or_default()
                .push(row.get(1)?);
            if let Some(payload) = row.get::<_, Option<String>>(4)? {
                let change: Change = serde_json::from_str(&payload).map_err(|e| {
                    StoreError::Internal(format!(
                        "frozen change of entry {}: {e}",
                        row.get::<_, i64>(1).unwrap_or(0)
                    ))
                })?;
                b.changes.push(FrozenChange {
                    change,
                    seqs: Vec::new(),
                });
            }
        }
        if let Some(b) = batch.as_mut() {
            for fc in &mut b.changes {
                let row = (
                    fc.change.entity.as_str().to_string(),
                    fc.change.id.to_string(),
                );
                fc.seqs = seqs_of.remove(&row).unwrap_or_default();
            }
        }
        Ok(batch)
    }

    /// When the first frozen batch waiting for its retry is due; `None`
    /// when none waits.
    pub fn next_retry_at(&self) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT min(next_retry_at) FROM sync_outbox INDEXED BY sync_outbox_in_flight
                 WHERE status = 'in_flight'",
            )?
            .query_row([], |r| r.get(0))?)
    }

    /// The rows with an entry in a frozen batch: no new batch plans them
    /// until that batch settles (a row is in one batch at a time, so each of
    /// its changes is based on the answer to the one before).
    pub fn rows_in_flight(&self) -> Result<HashSet<(Entity, Id)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT entity, entity_id FROM sync_outbox INDEXED BY sync_outbox_in_flight
             WHERE status = 'in_flight'",
        )?;
        let rows = stmt.query_map([], |r| Ok((parsed_column(r, 0)?, id_column(r, 1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Settles entries: `synced`, `superseded` or `failed` (with its
    /// error). Synced and superseded entries are removed at once (by seq;
    /// the newest entry of the outbox stays, see V2), so the queue holds
    /// only what is unsettled and no scan is needed to prune it.
    pub fn settle(
        &self,
        seqs: &[i64],
        status: EntryStatus,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let list = serde_json::to_string(seqs).map_err(|e| StoreError::Internal(e.to_string()))?;
        if matches!(status, EntryStatus::Synced | EntryStatus::Superseded) {
            self.conn
                .prepare_cached(
                    "DELETE FROM sync_outbox WHERE seq IN (SELECT value FROM json_each(?1))",
                )?
                .execute([&list])?;
        }
        // What stays: failed entries, and the outbox's newest entry.
        self.conn
            .prepare_cached(
                "UPDATE sync_outbox SET status = ?2, last_error = ?3, settled_at = ?4, next_retry_at = NULL
                 WHERE seq IN (SELECT value FROM json_each(?1))",
            )?
            .execute((&list, status.as_str(), error, now))?;
        Ok(())
    }

    /// Records many rows as synced at their server versions (see
    /// [`Tx::set_row_remote`]) in one statement: `(entity, id, version,
    /// last settled seq)`.
    pub fn set_rows_synced(&self, rows: &[(Entity, Id, i64, i64)], now: i64) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let list: Vec<(&str, String, i64, i64)> = rows
            .iter()
            .map(|(e, id, v, seq)| (e.as_str(), id.to_string(), *v, *seq))
            .collect();
        let list = serde_json::to_string(&list).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.conn
            .prepare_cached(
                "INSERT INTO sync_row_remote (entity, entity_id, server_version, status, last_error, settled_seq, updated_at)
                 SELECT j.value->>0, j.value->>1, j.value->>2, 'synced', NULL, j.value->>3, ?2
                 FROM json_each(?1) AS j WHERE true
                 ON CONFLICT (entity, entity_id) DO UPDATE SET
                     server_version = max(server_version, excluded.server_version),
                     status = CASE WHEN status = 'conflict' THEN 'conflict' ELSE 'synced' END,
                     last_error = NULL,
                     settled_seq = max(settled_seq, excluded.settled_seq),
                     updated_at = excluded.updated_at",
            )?
            .execute((list, now))?;
        Ok(())
    }

    /// The oldest `limit` pending entries after `after_seq`, in local
    /// order: a window a new batch is planned from (the scan stops after
    /// `limit` matches).
    pub fn pending_window(&self, after_seq: i64, limit: u32) -> Result<Vec<OutboxEntry>> {
        let mut stmt = self.conn.prepare_cached(
            &format!("SELECT {ENTRY_COLUMNS} FROM sync_outbox WHERE status = 'pending' AND seq > ?1 ORDER BY seq LIMIT ?2"),
        )?;
        let rows = stmt.query_map((after_seq, limit), entry)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether any entry waits to be planned into a batch (an index lookup).
    pub fn has_pending(&self) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM sync_outbox WHERE status = 'pending')")?
            .query_row([], |r| r.get(0))?)
    }

    /// Whether any entry has failed (an index lookup).
    pub fn any_failed(&self) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM sync_outbox WHERE status = 'failed')")?
            .query_row([], |r| r.get(0))?)
    }

    /// The failed entries of one row (an index lookup).
    pub fn failed_of(&self, entity: Entity, id: Id) -> Result<Vec<OutboxEntry>> {
        let mut stmt = self.conn.prepare_cached(
            &format!("SELECT {ENTRY_COLUMNS} FROM sync_outbox WHERE status = 'failed' AND entity = ?1 AND entity_id = ?2"),
        )?;
        let rows = stmt.query_map((entity.as_str(), id.to_string()), entry)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A batch that reached the server and failed, to be resent as it is
    /// after `next_retry_at`.
    pub fn retry_later(
        &self,
        seqs: &[i64],
        attempts: i64,
        next_retry_at: i64,
        error: &str,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE sync_outbox SET attempts = ?2, next_retry_at = ?3, last_error = ?4 WHERE seq = ?1",
        )?;
        for seq in seqs {
            stmt.execute((seq, attempts, next_retry_at, error))?;
        }
        Ok(())
    }

    /// Records what the remote knows of a row after a settle or an apply.
    /// An unacknowledged conflict stays visible over later outcomes.
    pub fn set_row_remote(
        &self,
        entity: Entity,
        id: Id,
        remote: &RowRemote<'_>,
        now: i64,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO sync_row_remote (entity, entity_id, server_version, status, last_error, settled_seq, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, coalesce(?6, 0), ?7)
                 ON CONFLICT (entity, entity_id) DO UPDATE SET
                     server_version = max(server_version, excluded.server_version),
                     status = CASE WHEN status = 'conflict' AND excluded.status = 'synced'
                                   THEN 'conflict' ELSE excluded.status END,
                     last_error = excluded.last_error,
                     settled_seq = max(settled_seq, coalesce(?6, settled_seq)),
                     updated_at = excluded.updated_at",
            )?
            .execute((
                entity.as_str(),
                id.to_string(),
                remote.server_version,
                remote.status.as_str(),
                remote.last_error,
                remote.settled_seq,
                now,
            ))?;
        Ok(())
    }

    /// Failed entries back to pending, with a fresh key each (the old key
    /// may be in the server's ledger with its rejection), or only those of
    /// `keys`. `force` also clears the backoff of entries waiting to retry.
    /// Returns the keys retried, old → new.
    pub fn retry_failed(&self, keys: &[Id], force: bool) -> Result<Vec<(Id, Id, Entity, Id)>> {
        let wanted: Vec<String> = keys.iter().map(Id::to_string).collect();
        let mut out = Vec::new();
        for e in self.queue()? {
            let selected = wanted.is_empty() || wanted.contains(&e.key.to_string());
            if !selected {
                continue;
            }
            if e.status == EntryStatus::Failed {
                let fresh = Id::new();
                self.conn
                    .prepare_cached(
                        "UPDATE sync_outbox SET status = 'pending', key = ?2, attempts = 0, next_retry_at = NULL,
                                last_error = NULL, batch_key = NULL, base_version = NULL, payload = NULL,
                                settled_at = NULL
                         WHERE seq = ?1",
                    )?
                    .execute((e.seq, fresh.to_string()))?;
                out.push((e.key, fresh, e.entity, e.entity_id));
            } else if force && e.next_retry_at.is_some() {
                self.conn
                    .prepare_cached("UPDATE sync_outbox SET next_retry_at = NULL WHERE seq = ?1")?
                    .execute([e.seq])?;
                out.push((e.key, e.key, e.entity, e.entity_id));
            }
        }
        Ok(out)
    }

    /// The oldest key still unsettled: the server may forget this device's
    /// ledger below it (rule 8).
    pub fn oldest_unsettled_key(&self) -> Result<Option<Id>> {
        let key: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT key FROM sync_outbox WHERE status IN ('pending', 'in_flight', 'failed')
                 ORDER BY seq LIMIT 1",
            )?
            .query_row([], |r| r.get(0))
            .optional()?;
        key.map(|k| {
            k.parse()
                .map_err(|e| StoreError::Internal(format!("outbox key {k:?}: {e}")))
        })
        .transpose()
    }

    /// Appends a line to the sync log (`push`, `pull`, `conflict`, ...).
    pub fn log_sync(&self, kind: &str, count: i64, detail: Option<&str>, now: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO sync_log (at, kind, count, detail) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute((now, kind, count, detail))?;
        Ok(())
    }
}

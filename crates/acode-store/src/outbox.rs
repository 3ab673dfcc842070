//! Reading the capture results: outbox entries, per-row sync state, and the
//! figures `sync status` shows. The sync engine settles entries; capture
//! only ever adds them.

use std::collections::{BTreeMap, HashMap, HashSet};

use acode_protocol::{Entity, Id, Privacy};
use rusqlite::{OptionalExtension, Row};
use serde::Serialize;

use crate::Tx;
use crate::error::{Result, StoreError};
use crate::record::{id_column, parsed_column};
use crate::text_enum::text_enum;

text_enum!(
    "op",
    /// What a captured change did to its row.
    ChangeOp { Create = "create", Update = "update", Delete = "delete" }
);

text_enum!(
    "status",
    /// Where an outbox entry is on its way to the remote.
    EntryStatus {
        Pending = "pending",
        InFlight = "in_flight",
        Synced = "synced",
        Failed = "failed",
        Superseded = "superseded",
    }
);

text_enum!(
    "status",
    /// A row's sync status, as users see it.
    RowStatus { Pending = "pending", Synced = "synced", Conflict = "conflict", Failed = "failed" }
);

/// One captured change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutboxEntry {
    /// The local order of changes.
    pub seq: i64,
    /// The idempotency key.
    pub key: Id,
    pub entity: Entity,
    pub entity_id: Id,
    pub op: ChangeOp,
    pub hlc: String,
    pub status: EntryStatus,
    pub attempts: i64,
    pub next_retry_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    /// The batch the entry was frozen into (rule 1); `None` until sent.
    pub batch_key: Option<Id>,
}

pub(crate) const ENTRY_COLUMNS: &str = "seq, key, entity, entity_id, op, hlc, status, attempts, \
     next_retry_at, last_error, created_at, batch_key";

pub(crate) fn entry(row: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    Ok(OutboxEntry {
        seq: row.get(0)?,
        key: id_column(row, 1)?,
        entity: parsed_column(row, 2)?,
        entity_id: id_column(row, 3)?,
        op: parsed_column(row, 4)?,
        hlc: row.get(5)?,
        status: parsed_column(row, 6)?,
        attempts: row.get(7)?,
        next_retry_at: row.get(8)?,
        last_error: row.get(9)?,
        created_at: row.get(10)?,
        batch_key: row
            .get::<_, Option<String>>(11)?
            .map(|k| k.parse())
            .transpose()
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    11,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
    })
}

/// The sync state of one row (the `sync_row_state` view).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowState {
    pub entity: Entity,
    pub entity_id: Id,
    /// The seq of the row's latest local change (grows with every change).
    pub local_version: i64,
    /// The server's version as last seen; 0 until the row reached it.
    pub server_version: i64,
    pub status: RowStatus,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

/// The figures of `acode sync status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncCounts {
    /// Entries waiting or on their way.
    pub pending: i64,
    pub failed: i64,
    /// Conflicts not yet acknowledged.
    pub conflicts: i64,
    pub synced_today: i64,
    pub downloaded_today: i64,
    /// When the oldest pending entry was captured (unix ms).
    pub oldest_pending_at: Option<i64>,
    pub paused: bool,
    pub last_push_at: Option<String>,
    pub last_pull_at: Option<String>,
}

impl Tx<'_> {
    /// Outbox entries in local order, only those in `statuses` (all if empty).
    pub fn outbox(&self, statuses: &[EntryStatus], limit: u32) -> Result<Vec<OutboxEntry>> {
        let wanted: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let wanted = serde_json::to_string(&wanted)
            .map_err(|e| StoreError::invalid("statuses", e.to_string()))?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM sync_outbox
             WHERE ?1 = '[]' OR status IN (SELECT value FROM json_each(?1))
             ORDER BY seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map((wanted, i64::from(limit)), entry)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every entry of one row, oldest first.
    pub fn outbox_for_row(&self, entity: Entity, id: Id) -> Result<Vec<OutboxEntry>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM sync_outbox WHERE entity = ?1 AND entity_id = ?2 ORDER BY seq"
        ))?;
        let rows = stmt.query_map((entity.as_str(), id.to_string()), entry)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The row's sync state; `None` for a row never captured nor synced
    /// (local-only rows, rows written before capture existed).
    pub fn row_state(&self, entity: Entity, id: Id) -> Result<Option<RowState>> {
        Ok(self.row_states(entity, &[id])?.remove(&id))
    }

    /// The sync state of many rows of one entity, reading the queue of
    /// unsettled entries once: the same answer as the `sync_row_state` view,
    /// without its cost per row.
    pub fn row_states(&self, entity: Entity, ids: &[Id]) -> Result<HashMap<Id, RowState>> {
        let wanted: HashSet<Id> = ids.iter().copied().collect();
        // The latest unsettled entry of each wanted row.
        let mut unsettled: HashMap<Id, (i64, EntryStatus, Option<String>, i64)> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT entity_id, seq, status, last_error, created_at FROM sync_outbox
             WHERE entity = ?1 AND status IN ('pending', 'in_flight', 'failed') ORDER BY seq",
        )?;
        let mut rows = stmt.query([entity.as_str()])?;
        while let Some(row) = rows.next()? {
            let id = id_column(row, 0)?;
            if wanted.contains(&id) {
                let entry = (
                    row.get(1)?,
                    parsed_column(row, 2)?,
                    row.get(3)?,
                    row.get(4)?,
                );
                unsettled.insert(id, entry);
            }
        }
        let mut remote = self.conn.prepare_cached(
            "SELECT server_version, status, last_error, settled_seq, updated_at
             FROM sync_row_remote WHERE entity = ?1 AND entity_id = ?2",
        )?;
        let mut out = HashMap::new();
        for id in wanted {
            let known: Option<(i64, RowStatus, Option<String>, i64, i64)> = remote
                .query_row((entity.as_str(), id.to_string()), |r| {
                    Ok((
                        r.get(0)?,
                        parsed_column(r, 1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                })
                .optional()?;
            let state = match (unsettled.remove(&id), known) {
                (None, None) => continue,
                (None, Some((server_version, status, last_error, settled, at))) => RowState {
                    entity,
                    entity_id: id,
                    local_version: settled,
                    server_version,
                    status,
                    last_error,
                    updated_at: at,
                },
                (Some((seq, entry_status, entry_error, at)), known) => {
                    let server_version = known.as_ref().map_or(0, |k| k.0);
                    let status = match (&known, entry_status) {
                        (Some((_, RowStatus::Conflict, ..)), _) => RowStatus::Conflict,
                        (_, EntryStatus::Failed) => RowStatus::Failed,
                        _ => RowStatus::Pending,
                    };
                    RowState {
                        entity,
                        entity_id: id,
                        local_version: seq,
                        server_version,
                        status,
                        last_error: entry_error,
                        updated_at: at,
                    }
                }
            };
            out.insert(id, state);
        }
        Ok(out)
    }

    /// What users see as each row's sync status: its state, `local_only` for
    /// a row that never leaves the device (with nothing left to withdraw
    /// remotely), or `synced` for a row that came from the remote.
    pub fn sync_labels(
        &self,
        entity: Entity,
        rows: &[(Id, Privacy)],
    ) -> Result<HashMap<Id, &'static str>> {
        let ids: Vec<Id> = rows.iter().map(|(id, _)| *id).collect();
        let states = self.row_states(entity, &ids)?;
        Ok(rows
            .iter()
            .map(|(id, effective)| {
                let status = states.get(id).map(|s| s.status);
                let label = match status {
                    None | Some(RowStatus::Synced) if *effective == Privacy::LocalOnly => {
                        "local_only"
                    }
                    Some(status) => status.as_str(),
                    None => "synced",
                };
                (*id, label)
            })
            .collect())
    }

    /// Rows per table, for `db status`: every entity's table and the outbox
    /// (tables the schema does not have yet are left out).
    pub fn row_counts(&self) -> Result<BTreeMap<&'static str, i64>> {
        let tables = Entity::ALL.iter().map(|e| e.table()).chain(["sync_outbox"]);
        let mut counts = BTreeMap::new();
        for table in tables {
            let exists: i64 = self.conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )?;
            if exists > 0 {
                // `table` is one of our constant names, never input.
                let n = self
                    .conn
                    .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
                counts.insert(table, n);
            }
        }
        Ok(counts)
    }

    /// A value of `sync_state` (device id, cursor, paused, ...).
    pub fn state(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM sync_state WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_state(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO sync_state (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute((key, value))?;
        Ok(())
    }

    /// The figures of `sync status`; "today" is the UTC day of `now_millis`.
    pub fn sync_counts(&self, now_millis: i64) -> Result<SyncCounts> {
        let day_start = now_millis - now_millis.rem_euclid(86_400_000);
        let (pending, failed, oldest_pending_at) = self.conn.query_row(
            "SELECT
                 count(*) FILTER (WHERE status IN ('pending', 'in_flight')),
                 count(*) FILTER (WHERE status = 'failed'),
                 min(created_at) FILTER (WHERE status IN ('pending', 'in_flight'))
             FROM sync_outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        // Settled entries leave the outbox; the sync log keeps the counts.
        let synced_today = self.conn.query_row(
            "SELECT coalesce(sum(count), 0) FROM sync_log WHERE kind = 'push' AND at >= ?1",
            [day_start],
            |r| r.get(0),
        )?;
        let conflicts = self.conn.query_row(
            "SELECT count(*) FROM sync_conflicts WHERE acked_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        let downloaded_today = self.conn.query_row(
            "SELECT coalesce(sum(count), 0) FROM sync_log WHERE kind = 'pull' AND at >= ?1",
            [day_start],
            |r| r.get(0),
        )?;
        Ok(SyncCounts {
            pending,
            failed,
            conflicts,
            synced_today,
            downloaded_today,
            oldest_pending_at,
            paused: self.state("paused")?.as_deref() == Some("1"),
            last_push_at: self.state("last_push_at")?,
            last_pull_at: self.state("last_pull_at")?,
        })
    }
}

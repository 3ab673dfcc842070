//! The download cycle (DESIGN.md §7, §8; §15 rules 5, 6, 7, 12, 15): pull a
//! page, apply it in one local transaction with capture suppressed, and
//! save the cursor in that same transaction.

use std::collections::HashMap;

use acode_protocol::conflict::{self, Contender, Winner};
use acode_protocol::{Entity, ErrorCode, Hlc, Id, Op, Privacy, PullChange, PullPage};
use acode_store::OutboxEntry;
use acode_store::outbox::{ChangeOp, EntryStatus};
use acode_store::sync::conflicts::NewConflict;
use acode_store::sync::inbox::Applied;
use acode_store::sync::queue::RowRemote;
use acode_store::{Store, Tx};
use serde_json::{Value, json};

use crate::config::EngineConfig;
use crate::error::SyncError;
use crate::transport::{Transport, TransportError};
use crate::upload::{Preserved, conflict_path, write_preserved};

#[derive(Clone, Debug, PartialEq)]
pub enum DownloadOutcome {
    /// A page was applied; `more` when the feed has more after it.
    Applied {
        applied: usize,
        conflicts: usize,
        more: bool,
    },
    /// As for upload: unreachable or refused, with the code first.
    Offline(String),
    Failed {
        code: ErrorCode,
        message: String,
    },
}

/// Pulls one page after the saved cursor and applies it.
pub async fn download_once<T: Transport>(
    store: &mut Store,
    transport: &T,
    cfg: &EngineConfig,
    epoch: i64,
) -> Result<DownloadOutcome, SyncError> {
    let cursor = store.read(|tx| tx.cursor())?;
    let page = match transport.pull(&cursor, cfg.pull_limit, None).await {
        Ok(page) => page,
        Err(TransportError::Unreachable(why)) => {
            return Ok(DownloadOutcome::Offline(format!(
                "{} {why}",
                ErrorCode::SyncConnectionFailed
            )));
        }
        Err(TransportError::Refused { code, message }) => {
            return Ok(DownloadOutcome::Offline(format!("{code} {message}")));
        }
        Err(TransportError::CursorExpired) => {
            // Resync from the start; pending local changes stay queued.
            store.write(|tx| {
                tx.check_epoch(epoch)?;
                tx.begin_resync()
            })?;
            return Ok(DownloadOutcome::Applied {
                applied: 0,
                conflicts: 0,
                more: true,
            });
        }
        Err(
            TransportError::Transient { code, message, .. }
            | TransportError::Permanent { code, message },
        ) => {
            return Ok(DownloadOutcome::Failed { code, message });
        }
    };
    apply_page(store, cfg, &page, epoch)
}

/// Applies a pulled page, retries what waits in the inbox, and moves the
/// cursor, all in one transaction.
pub fn apply_page(
    store: &mut Store,
    cfg: &EngineConfig,
    page: &PullPage,
    epoch: i64,
) -> Result<DownloadOutcome, SyncError> {
    let now = cfg.now();
    let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut files = Vec::new();
    let (applied, conflicts) = store.apply_remote(|tx| {
        tx.check_epoch(epoch)?;
        let mut pending: HashMap<(Entity, Id), Vec<OutboxEntry>> = HashMap::new();
        for e in tx.queue()? {
            pending.entry((e.entity, e.entity_id)).or_default().push(e);
        }
        let mut ctx = Apply {
            cfg,
            now,
            stamp: &stamp,
            pending,
            files: &mut files,
            conflicts: 0,
        };
        let mut applied = 0;
        let resyncing = tx.resyncing()?;
        for change in &page.changes {
            if resyncing {
                tx.mark_seen(change.entity, change.id)?;
            }
            tx.unpark(change.entity, change.id)?;
            if ctx.apply(tx, change, false)? == Outcome::Applied {
                applied += 1;
            }
        }
        // Parked changes whose parent arrived (or whose cause went away).
        loop {
            let mut progress = false;
            for entry in tx.inbox()? {
                let c = &entry.change;
                match ctx.apply(tx, c, true)? {
                    Outcome::Applied => {
                        tx.unpark(c.entity, c.id)?;
                        applied += 1;
                        progress = true;
                    }
                    // Overtaken: a newer version of the row is here already.
                    Outcome::Seen => tx.unpark(c.entity, c.id)?,
                    Outcome::SetAside => {}
                }
            }
            if !progress {
                break;
            }
        }
        if let Some(max) = page.changes.iter().map(|c| c.hlc.as_str()).max() {
            tx.observe_hlc(max)?;
        }
        if let Some(floor) = server_floor(&page.server_time) {
            tx.observe_hlc(&floor)?;
        }
        if resyncing && !page.has_more {
            // Caught up from zero: what the remote had and no longer has was
            // deleted there (its tombstone purged while this device was away).
            // Rows with unsent local changes stay; their push decides.
            for (entity, id) in tx.unseen_synced_rows()? {
                if ctx.pending.contains_key(&(entity, id)) {
                    continue;
                }
                // A row made local_only was withdrawn from the server by
                // this device itself: it is gone there, and stays here.
                let withdrawn_here =
                    tx.row_exists(entity, id)? && tx.payload(entity, id)?.is_none();
                if !withdrawn_here {
                    tx.delete_remote(entity, id)?;
                }
                tx.forget_row_remote(entity, id)?;
            }
            tx.end_resync()?;
        }
        tx.advance_cursor(&page.next_cursor)?;
        tx.set_state("last_pull_at", &stamp)?;
        if applied > 0 {
            tx.log_sync("pull", applied as i64, None, now)?;
        }
        Ok((applied, ctx.conflicts))
    })?;
    write_preserved(files);
    Ok(DownloadOutcome::Applied {
        applied,
        conflicts,
        more: page.has_more,
    })
}

/// What became of one pulled change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Applied,
    /// Nothing to write: this version (or a newer one) is here already.
    Seen,
    /// Waiting for its parent, or failed: in the inbox.
    SetAside,
}

struct Apply<'a> {
    cfg: &'a EngineConfig,
    now: i64,
    stamp: &'a str,
    pending: HashMap<(Entity, Id), Vec<OutboxEntry>>,
    files: &'a mut Vec<Preserved>,
    conflicts: usize,
}

impl Apply<'_> {
    /// Applies one pulled change, or sets it aside in the inbox.
    fn apply(
        &mut self,
        tx: &Tx<'_>,
        change: &PullChange,
        from_inbox: bool,
    ) -> acode_store::Result<Outcome> {
        let result = tx.savepoint(|tx| self.apply_inner(tx, change));
        match result {
            Ok(Some(Applied::Done)) => Ok(Outcome::Applied),
            Ok(None) => Ok(Outcome::Seen),
            Ok(Some(Applied::ParentMissing(parent, pid))) => {
                if !from_inbox {
                    tx.park(
                        change,
                        "waiting",
                        Some(&format!("waiting for {parent} {pid}")),
                        self.now,
                    )?;
                }
                Ok(Outcome::SetAside)
            }
            Err(e) => {
                tx.park(
                    change,
                    "error",
                    Some(&format!("{}: {e}", e.code())),
                    self.now,
                )?;
                Ok(Outcome::SetAside)
            }
        }
    }

    fn apply_inner(
        &mut self,
        tx: &Tx<'_>,
        change: &PullChange,
    ) -> acode_store::Result<Option<Applied>> {
        let (entity, id) = (change.entity, change.id);
        if change.version <= tx.server_version(entity, id)? {
            return Ok(None); // Seen already (rule 5).
        }
        let unsettled = self.pending.get(&(entity, id)).cloned().unwrap_or_default();
        if unsettled.iter().any(|e| e.key == change.key) {
            // This device's own change coming back before its answer was
            // settled (a lost reply): not a conflict (rule 5); the frozen
            // batch's answer settles it. Recognised by its key, whatever
            // name the remote knows this device by. A change of this
            // device's that is no longer queued (e.g. after a restore from
            // a backup older than it) is applied like any other.
            tx.set_row_remote(
                entity,
                id,
                &RowRemote::synced(change.version, None),
                self.now,
            )?;
            return Ok(None);
        }
        if unsettled.is_empty() {
            let outcome = write_change(tx, change, self.stamp)?;
            if outcome == Applied::Done {
                tx.set_row_remote(
                    entity,
                    id,
                    &RowRemote::synced(change.version, None),
                    self.now,
                )?;
            }
            return Ok(Some(outcome));
        }
        self.conflict(tx, change, &unsettled).map(Some)
    }

    /// A pulled change meets an unsettled local edit of the same row: the
    /// same rule as the server's decides (§8).
    fn conflict(
        &mut self,
        tx: &Tx<'_>,
        change: &PullChange,
        unsettled: &[OutboxEntry],
    ) -> acode_store::Result<Applied> {
        let (entity, id) = (change.entity, change.id);
        let Some(latest) = unsettled.last() else {
            return Ok(Applied::Done);
        };
        let exists = tx.row_exists(entity, id)?;
        let own_level = own_privacy(tx, entity, id)?;
        let local = Contender {
            deleted: latest.op == ChangeOp::Delete || !exists,
            hlc: parse_hlc(&latest.hlc),
            privacy: own_level,
        };
        let remote = Contender {
            deleted: change.op == Op::Delete,
            hlc: parse_hlc(&change.hlc),
            privacy: change
                .data
                .as_ref()
                .and_then(|d| d.get("privacy"))
                .and_then(Value::as_str)
                .and_then(|p| p.parse().ok()),
        };
        let mine = tx.payload(entity, id)?.map(|p| Value::Object(p.data));
        let server_version = tx.server_version(entity, id)?;
        if !local.deleted && !remote.deleted && same_values(entity, mine.as_ref(), change) {
            // The pending edit already matches what arrived: no conflict; it
            // is pushed on top of this version and answered as applied.
            tx.set_row_remote(
                entity,
                id,
                &RowRemote::synced(change.version, None),
                self.now,
            )?;
            return Ok(Applied::Done);
        }
        let (resolution, loser) = match conflict::decide(self.cfg.policy, &local, &remote) {
            Winner::Remote => {
                let outcome = write_change(tx, change, self.stamp)?;
                if outcome != Applied::Done {
                    return Ok(outcome);
                }
                // The remote winner cancels pending local entries; one in
                // flight settles from its own answer (rule 1).
                let cancel: Vec<i64> = unsettled
                    .iter()
                    .filter(|e| e.status != EntryStatus::InFlight)
                    .map(|e| e.seq)
                    .collect();
                tx.settle(
                    &cancel,
                    EntryStatus::Superseded,
                    Some("conflict: remote kept"),
                    self.now,
                )?;
                self.pending.remove(&(entity, id));
                (
                    "remote_kept",
                    json!({"version": server_version, "hlc": latest.hlc, "deleted": local.deleted, "data": mine}),
                )
            }
            Winner::Local => {
                // The local edit is pushed on top of this version; it keeps
                // the stricter privacy of the two (rule 7).
                let merged = conflict::merged_privacy(&local, &remote).filter(|m| {
                    !local.deleted && Some(*m) != own_level && *m != Privacy::LocalOnly
                });
                if let Some(merged) = merged {
                    tx.raise_privacy_remote(entity, id, merged)?;
                }
                (
                    "local_applied",
                    json!({"version": change.version, "hlc": change.hlc,
                    "deleted": remote.deleted, "data": change.data}),
                )
            }
        };
        self.conflicts += 1;
        let local_version = server_version + 1;
        let path = conflict_path(self.cfg, entity, id, local_version);
        let shown = path.as_ref().map(|p| p.display().to_string());
        tx.record_conflict(
            &NewConflict {
                entity,
                entity_id: id,
                local_version,
                remote_version: change.version,
                resolution,
                loser: &loser,
                preserved_path: shown.as_deref(),
            },
            self.now,
        )?;
        let error = format!(
            "{} conflict detected: {resolution}",
            ErrorCode::SyncConflict
        );
        tx.set_row_remote(
            entity,
            id,
            &RowRemote::conflict(change.version, &error, None),
            self.now,
        )?;
        if let Some(path) = path {
            self.files.push(Preserved { path, loser });
        }
        Ok(Applied::Done)
    }
}

/// Whether every value a pulled change names equals the local one (a null
/// content column of a redacted change matches anything: it says nothing).
fn same_values(entity: Entity, mine: Option<&Value>, change: &PullChange) -> bool {
    let (Some(mine), Some(theirs)) = (mine, change.data.as_ref()) else {
        return false;
    };
    theirs.iter().all(|(k, v)| {
        mine.get(k) == Some(v) || (v.is_null() && entity.content_columns().contains(&k.as_str()))
    })
}

/// The server's clock as an HLC floor (rule 12): local changes are stamped
/// after it even when this device's clock is behind.
pub(crate) fn server_floor(server_time: &str) -> Option<String> {
    let millis = chrono::DateTime::parse_from_rfc3339(server_time)
        .ok()?
        .timestamp_millis();
    Some(
        Hlc {
            millis,
            counter: 0,
            device: "server".into(),
        }
        .to_string(),
    )
}

fn parse_hlc(s: &str) -> Hlc {
    s.parse().unwrap_or(Hlc {
        millis: 0,
        counter: 0,
        device: String::new(),
    })
}

/// The row's own privacy column (chats, messages, sessions), if any.
fn own_privacy(tx: &Tx<'_>, entity: Entity, id: Id) -> acode_store::Result<Option<Privacy>> {
    if !matches!(entity, Entity::Chat | Entity::Message | Entity::Session) {
        return Ok(None);
    }
    tx.payload_privacy_column(entity, id)
}

/// Writes a pulled change to the local row (upsert or delete).
fn write_change(tx: &Tx<'_>, change: &PullChange, stamp: &str) -> acode_store::Result<Applied> {
    match change.op {
        Op::Delete => {
            tx.delete_remote(change.entity, change.id)?;
            Ok(Applied::Done)
        }
        Op::Upsert => {
            let data = change.data.clone().unwrap_or_default();
            tx.upsert_remote(change.entity, change.id, &data, stamp)
        }
    }
}

/// Raises the local row to the privacy level the server resolved a
/// conflict to (the stricter one wins, rule 7), keeping its content.
pub(crate) fn adopt_winner_privacy(
    tx: &Tx<'_>,
    entity: Entity,
    id: Id,
    winner: &Value,
) -> acode_store::Result<()> {
    let level = winner
        .get("data")
        .and_then(|d| d.get("privacy"))
        .and_then(Value::as_str)
        .and_then(|p| p.parse::<Privacy>().ok());
    if let Some(level) = level {
        tx.raise_privacy_remote(entity, id, level)?;
    }
    Ok(())
}

/// Makes the local row what the server resolved a conflict to.
pub(crate) fn adopt_winner(
    tx: &Tx<'_>,
    entity: Entity,
    id: Id,
    winner: &Value,
    stamp: &str,
) -> acode_store::Result<()> {
    if winner.get("deleted").and_then(Value::as_bool) == Some(true) {
        tx.delete_remote(entity, id)?;
        return Ok(());
    }
    if let Some(data) = winner.get("data").and_then(Value::as_object) {
        tx.upsert_remote(entity, id, data, stamp)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_clock_becomes_an_hlc_floor_that_sorts_after_earlier_stamps() {
        let floor = server_floor("2026-11-22T01:02:04.000Z").unwrap();
        assert!(
            floor.as_str() > "2026-11-22T01:02:03.999Z-9999-zzzz",
            "{floor}"
        );
        assert!(floor.parse::<Hlc>().is_ok());
        assert_eq!(server_floor("yesterday"), None);
    }
}

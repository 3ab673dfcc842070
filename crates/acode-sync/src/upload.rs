//! The upload cycle (DESIGN.md §7; §15 rules 1–5): take the batch in
//! flight, or plan and freeze a new one; push it; settle every result in one
//! local transaction.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use acode_protocol::{
    Change, Entity, ErrorCode, Id, ItemResult, Op, PushRequest, PushResponse, Resolution,
};
use acode_store::outbox::{ChangeOp, EntryStatus};
use acode_store::sync::conflicts::NewConflict;
use acode_store::sync::queue::RowRemote;
use acode_store::sync::queue::{FrozenBatch, FrozenChange};
use acode_store::{Payload, Store, Tx};
use serde_json::{Value, json};

use crate::config::EngineConfig;
use crate::error::SyncError;
use crate::transport::{Transport, TransportError};
use crate::{batcher, download};

/// What one upload step did.
#[derive(Clone, Debug, PartialEq)]
pub enum UploadOutcome {
    /// Nothing due.
    Idle,
    /// The batch in flight backs off until this time (Unix ms).
    Waiting(i64),
    /// The remote could not be reached, or refused this device; nothing
    /// was spent. The message starts with its error code.
    Offline(String),
    /// A batch was answered and settled.
    Settled(Counts),
    /// The batch failed as a whole; its entries retry later or failed.
    BatchFailed { error: String, failed: usize },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub changes: usize,
    pub uploaded: usize,
    pub conflicts: usize,
    pub failed: usize,
}

/// Pushes one batch (the one in flight, or a new one) and settles it.
pub async fn upload_once<T: Transport>(
    store: &mut Store,
    transport: &T,
    cfg: &EngineConfig,
    epoch: i64,
) -> Result<UploadOutcome, SyncError> {
    upload_step(store, transport, cfg, epoch, &mut None).await
}

/// Like [`upload_once`], for a loop that uploads until idle: `carried` is
/// the batch the previous step froze in the transaction that settled its
/// own (one local commit per batch, not two); this step sends it, and
/// leaves the next one there when its answer settles.
pub async fn upload_step<T: Transport>(
    store: &mut Store,
    transport: &T,
    cfg: &EngineConfig,
    epoch: i64,
    carried: &mut Option<FrozenBatch>,
) -> Result<UploadOutcome, SyncError> {
    let now = cfg.now();
    let batch = match carried.take() {
        Some(b) => Some(b),
        None => store.write(|tx| {
            tx.check_epoch(epoch)?;
            match tx.frozen_batch()? {
                Some(b) => Ok(Some(b)),
                None => build(tx, cfg, now),
            }
        })?,
    };
    let Some(batch) = batch else {
        return Ok(UploadOutcome::Idle);
    };
    if let Some(at) = batch.next_retry_at.filter(|at| *at > now) {
        return Ok(UploadOutcome::Waiting(at));
    }
    let request = PushRequest {
        device_oldest_unsettled: store.read(|tx| tx.oldest_unsettled_key())?,
        policy: cfg.policy,
        changes: batch.changes.iter().map(|c| c.change.clone()).collect(),
    };
    match transport.push(batch.key, &request).await {
        Ok(response) if answers(&batch, &response) => {
            let (outcome, next) = settle(store, cfg, &batch, &response, epoch)?;
            *carried = next;
            Ok(outcome)
        }
        Ok(_) => batch_failed(
            store,
            cfg,
            &batch,
            epoch,
            ErrorCode::SyncBatchFailed,
            "the answer does not match the batch",
            None,
        ),
        Err(TransportError::Unreachable(why)) => Ok(UploadOutcome::Offline(format!(
            "{} {why}",
            ErrorCode::SyncConnectionFailed
        ))),
        Err(TransportError::Refused { code, message }) => {
            Ok(UploadOutcome::Offline(format!("{code} {message}")))
        }
        Err(TransportError::Transient {
            code,
            message,
            retry_after,
        }) => batch_failed(store, cfg, &batch, epoch, code, &message, Some(retry_after)),
        Err(TransportError::Permanent { code, message }) => {
            batch_failed(store, cfg, &batch, epoch, code, &message, None)
        }
        Err(TransportError::CursorExpired) => batch_failed(
            store,
            cfg,
            &batch,
            epoch,
            ErrorCode::SyncBatchFailed,
            "unexpected answer to a push",
            None,
        ),
    }
}

fn answers(batch: &FrozenBatch, response: &PushResponse) -> bool {
    response.results.len() == batch.changes.len()
        && response
            .results
            .iter()
            .zip(&batch.changes)
            .all(|(r, c)| key_of(r) == c.change.key)
}

fn key_of(r: &ItemResult) -> Id {
    match r {
        ItemResult::Applied { key, .. }
        | ItemResult::Duplicate { key, .. }
        | ItemResult::Conflict { key, .. }
        | ItemResult::Rejected { key, .. } => *key,
    }
}

/// Plans and freezes the next batch, or `None` when nothing is due.
fn build(tx: &Tx<'_>, cfg: &EngineConfig, now: i64) -> acode_store::Result<Option<FrozenBatch>> {
    // Entries read per window: a batch's worth. Every planned row's payload
    // and versions are read, so a larger window read rows the batch then
    // left out (4 x the batch cost a third of the drain's device time);
    // the loop below reads further windows while the batch is not full.
    let window = u32::try_from(cfg.batch_size.max(1)).unwrap_or(u32::MAX);
    // Each change with its JSON, serialised once: to size the batch and to
    // freeze it.
    let mut changes: Vec<(FrozenChange, String)> = Vec::new();
    let mut bytes = 0;
    let mut in_batch: HashSet<(Entity, Id)> = HashSet::new();
    // Rows already planned or left waiting: their later entries (in a later
    // window) go in a later batch, so a row is one change per batch.
    let mut seen: HashSet<(Entity, Id)> = HashSet::new();
    let mut after = 0;
    // Windows of the oldest pending entries, until the batch is full or the
    // queue ends: rows that must wait (children of a parent that has not
    // reached the server) never hold up rows behind them.
    'windows: loop {
        let mut queue = tx.pending_window(after, window)?;
        let Some(last) = queue.last().map(|e| e.seq) else {
            break;
        };
        after = last;
        queue.retain(|e| !seen.contains(&(e.entity, e.entity_id)));
        if tx.any_failed()? {
            // A row's failed entries ride along with its newer change.
            let rows: HashSet<(Entity, Id)> =
                queue.iter().map(|e| (e.entity, e.entity_id)).collect();
            for (entity, id) in rows {
                queue.extend(tx.failed_of(entity, id)?);
            }
            queue.sort_by_key(|e| e.seq);
        }
        let plans = batcher::plan(&queue, now);
        seen.extend(queue.iter().map(|e| (e.entity, e.entity_id)));
        let (mut payloads, versions) = prefetch(tx, &plans)?;
        let version_of = |entity: Entity, id: Id| versions.get(&(entity, id)).copied().unwrap_or(0);
        'rows: for row in plans {
            if changes.len() >= cfg.batch_size {
                break 'windows;
            }
            let base_version = version_of(row.entity, row.id);
            let (op, data) = match payloads.remove(&(row.entity, row.id)) {
                Some(p) => (Op::Upsert, Some(p.data)),
                None if row.op == ChangeOp::Delete && base_version > 0 => (Op::Delete, None),
                None => {
                    // Gone before the server had it, or gone with its parent
                    // (whose delete covers it): nothing to send.
                    tx.settle(&row.seqs, EntryStatus::Superseded, None, now)?;
                    continue;
                }
            };
            if base_version == 0 {
                // A new row waits for its parents to reach the server (rule 3).
                for (parent, pid) in parents_of(row.entity, data.as_ref()) {
                    if !in_batch.contains(&(parent, pid)) && version_of(parent, pid) == 0 {
                        continue 'rows;
                    }
                }
            }
            let change = Change {
                key: row.key,
                entity: row.entity,
                id: row.id,
                op,
                base_version,
                hlc: row.hlc,
                data,
            };
            let json = serde_json::to_string(&change).map_err(|e| {
                acode_store::StoreError::Internal(format!("encoding a change: {e}"))
            })?;
            let size = json.len();
            if !batcher::fits(
                changes.len(),
                bytes,
                size,
                cfg.batch_size,
                cfg.batch_bytes_max,
            ) {
                break 'windows;
            }
            bytes += size;
            in_batch.insert((row.entity, row.id));
            changes.push((
                FrozenChange {
                    change,
                    seqs: row.seqs,
                },
                json,
            ));
        }
    }
    if changes.is_empty() {
        return Ok(None);
    }
    let key = Id::new();
    tx.freeze_batch(key, &changes)?;
    Ok(Some(FrozenBatch {
        key,
        changes: changes.into_iter().map(|(fc, _)| fc).collect(),
        attempts: 0,
        next_retry_at: None,
    }))
}

/// The parents a row names (its cascading parents), from its data.
fn parents_of(entity: Entity, data: Option<&serde_json::Map<String, Value>>) -> Vec<(Entity, Id)> {
    entity
        .cascading_parents()
        .iter()
        .filter_map(|(parent, col)| {
            let pid = data?.get(*col)?.as_str()?.parse::<Id>().ok()?;
            Some((*parent, pid))
        })
        .collect()
}

type Prefetched = (HashMap<(Entity, Id), Payload>, HashMap<(Entity, Id), i64>);

/// The payloads and server versions of the planned rows, and the server
/// versions of their parents: one query per entity, not three per row.
fn prefetch(tx: &Tx<'_>, plans: &[batcher::RowPlan]) -> acode_store::Result<Prefetched> {
    let mut ids: HashMap<Entity, Vec<Id>> = HashMap::new();
    for p in plans {
        ids.entry(p.entity).or_default().push(p.id);
    }
    let mut payloads = HashMap::new();
    let mut versions = HashMap::new();
    for (entity, ids) in &ids {
        payloads.extend(
            tx.payloads(*entity, ids)?
                .into_iter()
                .map(|(id, p)| ((*entity, id), p)),
        );
        versions.extend(
            tx.server_versions(*entity, ids)?
                .into_iter()
                .map(|(id, v)| ((*entity, id), v)),
        );
    }
    let mut parents: HashMap<Entity, Vec<Id>> = HashMap::new();
    for ((entity, id), p) in &payloads {
        if !versions.contains_key(&(*entity, *id)) {
            for (parent, pid) in parents_of(*entity, Some(&p.data)) {
                parents.entry(parent).or_default().push(pid);
            }
        }
    }
    for (entity, ids) in &parents {
        versions.extend(
            tx.server_versions(*entity, ids)?
                .into_iter()
                .map(|(id, v)| ((*entity, id), v)),
        );
    }
    Ok((payloads, versions))
}

/// A batch that failed as a whole. `retry` is `Some` for a transient
/// failure (with the remote's own wait, if it gave one); a wait given by
/// the remote costs no attempt.
fn batch_failed(
    store: &mut Store,
    cfg: &EngineConfig,
    batch: &FrozenBatch,
    epoch: i64,
    code: ErrorCode,
    message: &str,
    retry: Option<Option<std::time::Duration>>,
) -> Result<UploadOutcome, SyncError> {
    let now = cfg.now();
    let seqs: Vec<i64> = batch
        .changes
        .iter()
        .flat_map(|c| c.seqs.iter().copied())
        .collect();
    let error = format!("{code} {message}");
    let failed = store.write(|tx| {
        tx.check_epoch(epoch)?;
        match retry {
            Some(wait) => {
                let attempts = batch.attempts + i64::from(wait.is_none());
                if cfg
                    .retry
                    .exhausted(u32::try_from(attempts).unwrap_or(u32::MAX))
                {
                    let why = format!(
                        "{} max retries exceeded; last: {error}",
                        ErrorCode::SyncMaxRetries
                    );
                    tx.settle(&seqs, EntryStatus::Failed, Some(&why), now)?;
                    return Ok(batch.changes.len());
                }
                let delay = wait.unwrap_or_else(|| {
                    cfg.retry
                        .delay(u32::try_from(attempts).unwrap_or(u32::MAX), fastrand::f64())
                });
                let at = now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                tx.retry_later(&seqs, attempts, at, &error)?;
                Ok(0)
            }
            None => {
                tx.settle(&seqs, EntryStatus::Failed, Some(&error), now)?;
                Ok(batch.changes.len())
            }
        }
    })?;
    Ok(UploadOutcome::BatchFailed { error, failed })
}

/// A conflict file to write once the settle has committed.
pub(crate) struct Preserved {
    pub path: PathBuf,
    pub loser: Value,
}

pub(crate) fn conflict_path(
    cfg: &EngineConfig,
    entity: Entity,
    id: Id,
    version: i64,
) -> Option<PathBuf> {
    cfg.conflicts_dir
        .as_ref()
        .map(|d| d.join(format!("{entity}_{id}_v{version}.json")))
}

pub(crate) fn write_preserved(files: Vec<Preserved>) {
    for f in files {
        let body = serde_json::to_string_pretty(&f.loser).unwrap_or_default();
        let written = f
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&f.path, body));
        if let Err(e) = written {
            // The loser is also in sync_conflicts: nothing is lost.
            tracing::warn!(path = %f.path.display(), error = %e, "writing a conflict file");
        }
    }
}

/// Settles every result of an answered batch in one transaction, with
/// capture suppressed (a remote winner is written to the local row).
/// Settles every result of `batch` in one local transaction, and freezes
/// the next batch in it (returned, `None` when nothing is due).
fn settle(
    store: &mut Store,
    cfg: &EngineConfig,
    batch: &FrozenBatch,
    response: &PushResponse,
    epoch: i64,
) -> Result<(UploadOutcome, Option<FrozenBatch>), SyncError> {
    let now = cfg.now();
    let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut files = Vec::new();
    let (counts, next) = store.apply_remote(|tx| {
        tx.check_epoch(epoch)?;
        // Plain successes are settled together after the loop.
        let mut synced_seqs: Vec<i64> = Vec::new();
        let mut synced_rows = Vec::new();
        // Read only when a remote winner must cancel newer local entries.
        let mut queue = None;
        let mut counts = Counts { changes: batch.changes.len(), ..Counts::default() };
        for (fc, result) in batch.changes.iter().zip(&response.results) {
            let c = &fc.change;
            let last = fc.seqs.iter().copied().max();
            match result {
                ItemResult::Applied { version, .. } | ItemResult::Duplicate { version, .. } => {
                    synced_seqs.extend_from_slice(&fc.seqs);
                    synced_rows.push((c.entity, c.id, *version, last.unwrap_or(0)));
                    counts.uploaded += 1;
                }
                ItemResult::Rejected { code, message, .. } => {
                    tx.settle(&fc.seqs, EntryStatus::Failed, Some(&format!("{code} {message}")), now)?;
                    counts.failed += 1;
                }
                ItemResult::Conflict { version, resolution, winner, loser, .. } => {
                    counts.conflicts += 1;
                    if queue.is_none() {
                        queue = Some(tx.queue()?);
                    }
                    // This row's local entries newer than the batch.
                    let newer: Vec<i64> = queue
                        .iter()
                        .flatten()
                        .filter(|e| e.entity == c.entity && e.entity_id == c.id && e.status == EntryStatus::Pending)
                        .map(|e| e.seq)
                        .filter(|s| !fc.seqs.contains(s))
                        .collect();
                    let loser = match resolution {
                        Resolution::LocalApplied => {
                            tx.settle(&fc.seqs, EntryStatus::Synced, None, now)?;
                            counts.uploaded += 1;
                            loser.clone().unwrap_or(Value::Null)
                        }
                        Resolution::RemoteKept => {
                            // The remote winner cancels this row's local
                            // entries, in flight or newer (rule 5); their
                            // content is kept as the loser.
                            let mine = tx.payload(c.entity, c.id)?.map(|p| Value::Object(p.data));
                            tx.settle(&fc.seqs, EntryStatus::Superseded, Some("conflict: remote kept"), now)?;
                            tx.settle(&newer, EntryStatus::Superseded, Some("conflict: remote kept"), now)?;
                            json!({"version": c.base_version, "hlc": c.hlc, "deleted": c.op == Op::Delete,
                                   "data": mine.or_else(|| c.data.clone().map(Value::Object))})
                        }
                    };
                    if *resolution == Resolution::LocalApplied && !newer.is_empty() {
                        // This device won, and has edited the row again
                        // since: its newer content stays (it goes up next);
                        // only the level the conflict settled on is taken.
                        download::adopt_winner_privacy(tx, c.entity, c.id, winner)?;
                    } else {
                        download::adopt_winner(tx, c.entity, c.id, winner, &stamp)?;
                    }
                    let path = conflict_path(cfg, c.entity, c.id, c.base_version + 1);
                    let shown = path.as_ref().map(|p| p.display().to_string());
                    tx.record_conflict(
                        &NewConflict {
                            entity: c.entity,
                            entity_id: c.id,
                            local_version: c.base_version + 1,
                            remote_version: *version,
                            resolution: resolution_str(*resolution),
                            loser: &loser,
                            preserved_path: shown.as_deref(),
                        },
                        now,
                    )?;
                    let error = format!("{} conflict detected: {}", ErrorCode::SyncConflict, resolution_str(*resolution));
                    tx.set_row_remote(c.entity, c.id, &RowRemote::conflict(*version, &error, last), now)?;
                    if let Some(path) = path {
                        files.push(Preserved { path, loser });
                    }
                }
            }
        }
        tx.settle(&synced_seqs, EntryStatus::Synced, None, now)?;
        tx.set_rows_synced(&synced_rows, now)?;
        tx.set_state("last_push_at", &stamp)?;
        if let Some(floor) = download::server_floor(&response.server_time) {
            tx.observe_hlc(&floor)?;
        }
        tx.log_sync("push", counts.uploaded as i64, None, now)?;
        let next = build(tx, cfg, now)?;
        Ok((counts, next))
    })?;
    write_preserved(files);
    Ok((UploadOutcome::Settled(counts), next))
}

pub(crate) fn resolution_str(r: Resolution) -> &'static str {
    match r {
        Resolution::LocalApplied => "local_applied",
        Resolution::RemoteKept => "remote_kept",
    }
}

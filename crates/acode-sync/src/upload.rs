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

/// Pushes one batch (the oldest frozen one that is due, or a new one) and
/// settles it.
pub async fn upload_once<T: Transport>(
    store: &mut Store,
    transport: &T,
    cfg: &EngineConfig,
    epoch: i64,
) -> Result<UploadOutcome, SyncError> {
    let Some(batch) = take_batch(store, cfg, epoch)? else {
        return idle_or_waiting(store);
    };
    let request = request_for(store, cfg, &batch)?;
    let pushed = transport.push(batch.key, &request).await;
    match after_push(store, cfg, &batch, pushed, epoch)? {
        Pushed::Answered(response) => {
            Ok(settle(store, cfg, &batch, &response, epoch, |_| Ok(None))?.0)
        }
        Pushed::Done(outcome) => Ok(outcome),
    }
}

/// Uploads until nothing is due; `each` sees the outcome of every batch
/// answered or failed. Returns why it stopped: `Idle`, `Waiting` or
/// `Offline`.
///
/// Pipelined: while one batch is pushed, the answer to the batch before it
/// is settled and the next batch is frozen, in one local transaction on a
/// second connection to the database, on another thread; the device's work
/// hides behind the remote's. Two batches in flight together never share a
/// row (a new batch skips rows in flight), so no change is based on an
/// answer not yet settled. A failed batch does not stop the ones behind it.
/// An in-memory store has no second connection: its batches go one by one.
pub async fn drain<T: Transport>(
    store: &mut Store,
    transport: &T,
    cfg: &EngineConfig,
    epoch: i64,
    mut each: impl FnMut(&UploadOutcome),
) -> Result<UploadOutcome, SyncError> {
    // The second connection, opened once there are two batches to overlap.
    let mut side: Option<Store> = None;
    // The batch to send next, frozen beside the previous push.
    let mut next: Option<FrozenBatch> = None;
    // A batch answered and not yet settled.
    let mut answered: Option<(FrozenBatch, PushResponse)> = None;
    loop {
        let batch = match (next.take(), answered.take()) {
            (Some(b), previous) => {
                answered = previous;
                b
            }
            (None, None) => match take_batch(store, cfg, epoch)? {
                Some(b) => b,
                None => return idle_or_waiting(store),
            },
            (None, Some((a, response))) => {
                // Nothing to send beside it: settle the answer, and take
                // the next batch in the same transaction.
                let now = cfg.now();
                let (outcome, taken) = settle(store, cfg, &a, &response, epoch, |tx| {
                    next_batch(tx, cfg, now, None)
                })?;
                each(&outcome);
                next = taken;
                continue;
            }
        };
        let request = request_for(store, cfg, &batch)?;
        if side.is_none() && (answered.is_some() || store.read(|tx| tx.has_pending())?) {
            side = store.reopen()?;
        }
        let Some(mut beside) = side.take() else {
            // One by one: push, then settle and take the next batch.
            if let Some((a, response)) = answered.take() {
                each(&settle(store, cfg, &a, &response, epoch, |_| Ok(None))?.0);
            }
            let pushed = transport.push(batch.key, &request).await;
            match after_push(store, cfg, &batch, pushed, epoch)? {
                Pushed::Answered(response) => answered = Some((batch, response)),
                Pushed::Done(outcome @ UploadOutcome::Offline(_)) => return Ok(outcome),
                Pushed::Done(outcome) => each(&outcome),
            }
            continue;
        };
        let previous = answered.take();
        let job_cfg = cfg.clone();
        let sending = batch.key;
        let work = tokio::task::spawn_blocking(move || {
            let now = job_cfg.now();
            let then = |tx: &Tx<'_>| next_batch(tx, &job_cfg, now, Some(sending));
            let done = match previous {
                Some((a, response)) => settle(&mut beside, &job_cfg, &a, &response, epoch, then)
                    .map(|(outcome, taken)| (Some(outcome), taken)),
                None => beside
                    .write(|tx| {
                        tx.check_epoch(epoch)?;
                        then(tx)
                    })
                    .map(|taken| (None, taken))
                    .map_err(SyncError::from),
            };
            (beside, done)
        });
        let pushed = transport.push(batch.key, &request).await;
        let (beside, done) = work.await.map_err(|e| {
            SyncError::Store(acode_store::StoreError::Internal(format!(
                "settling beside a push: {e}"
            )))
        })?;
        side = Some(beside);
        let (settled, taken) = done?;
        if let Some(outcome) = settled {
            each(&outcome);
        }
        next = taken;
        match after_push(store, cfg, &batch, pushed, epoch)? {
            Pushed::Answered(response) => answered = Some((batch, response)),
            Pushed::Done(outcome @ UploadOutcome::Offline(_)) => return Ok(outcome),
            Pushed::Done(outcome) => each(&outcome),
        }
    }
}

/// [`next_batch`] in a transaction of its own.
fn take_batch(
    store: &mut Store,
    cfg: &EngineConfig,
    epoch: i64,
) -> Result<Option<FrozenBatch>, SyncError> {
    let now = cfg.now();
    Ok(store.write(|tx| {
        tx.check_epoch(epoch)?;
        next_batch(tx, cfg, now, None)
    })?)
}

/// The oldest frozen batch that is due, other than `sending` (the batch
/// being pushed); else a new one. `None` when nothing is due.
fn next_batch(
    tx: &Tx<'_>,
    cfg: &EngineConfig,
    now: i64,
    sending: Option<Id>,
) -> acode_store::Result<Option<FrozenBatch>> {
    match tx.frozen_batch(now, sending)? {
        Some(b) => Ok(Some(b)),
        None => build(tx, cfg, now),
    }
}

/// Nothing to send: `Waiting` until a batch's retry time, or `Idle`.
fn idle_or_waiting(store: &mut Store) -> Result<UploadOutcome, SyncError> {
    Ok(store
        .read(|tx| tx.next_retry_at())?
        .map_or(UploadOutcome::Idle, UploadOutcome::Waiting))
}

fn request_for(
    store: &mut Store,
    cfg: &EngineConfig,
    batch: &FrozenBatch,
) -> Result<PushRequest, SyncError> {
    Ok(PushRequest {
        device_oldest_unsettled: store.read(|tx| tx.oldest_unsettled_key())?,
        policy: cfg.policy,
        changes: batch.changes.iter().map(|c| c.change.clone()).collect(),
    })
}

/// What a push came to: an answer to settle, or an outcome already final
/// (the batch failed, or the remote could not be reached).
enum Pushed {
    Answered(PushResponse),
    Done(UploadOutcome),
}

fn after_push(
    store: &mut Store,
    cfg: &EngineConfig,
    batch: &FrozenBatch,
    pushed: Result<PushResponse, TransportError>,
    epoch: i64,
) -> Result<Pushed, SyncError> {
    let failed = |store: &mut Store, code, message: &str, retry| {
        batch_failed(store, cfg, batch, epoch, code, message, retry).map(Pushed::Done)
    };
    match pushed {
        Ok(response) if answers(batch, &response) => Ok(Pushed::Answered(response)),
        Ok(_) => failed(
            store,
            ErrorCode::SyncBatchFailed,
            "the answer does not match the batch",
            None,
        ),
        Err(TransportError::Unreachable(why)) => Ok(Pushed::Done(UploadOutcome::Offline(format!(
            "{} {why}",
            ErrorCode::SyncConnectionFailed
        )))),
        Err(TransportError::Refused { code, message }) => Ok(Pushed::Done(UploadOutcome::Offline(
            format!("{code} {message}"),
        ))),
        Err(TransportError::Transient {
            code,
            message,
            retry_after,
        }) => failed(store, code, &message, Some(retry_after)),
        Err(TransportError::Permanent { code, message }) => failed(store, code, &message, None),
        Err(TransportError::CursorExpired) => failed(
            store,
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
    // window) go in a later batch, so a row is one change per batch. Rows
    // of a batch still in flight wait for its answer.
    let mut seen: HashSet<(Entity, Id)> = tx.rows_in_flight()?;
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
/// capture suppressed (a remote winner is written to the local row); `then`
/// takes the next batch in the same transaction (one local commit per
/// batch, not two), or returns `None`.
fn settle(
    store: &mut Store,
    cfg: &EngineConfig,
    batch: &FrozenBatch,
    response: &PushResponse,
    epoch: i64,
    then: impl FnOnce(&Tx<'_>) -> acode_store::Result<Option<FrozenBatch>>,
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
        Ok((counts, then(tx)?))
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

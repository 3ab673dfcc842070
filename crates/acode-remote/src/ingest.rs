//! Ingest of a pushed batch (DESIGN.md §2, §5, §8; §15 rules 4–10, 12).
//!
//! One PostgreSQL transaction per batch, under the tenant's advisory lock
//! (taken first, so feed sequence numbers are drawn in commit order). The
//! batch key's stored answer is returned for a replay. Then for each
//! change: the idempotency ledger (a known key returns its stored result
//! and applies nothing); the set-based path (`fast.rs`) for plain creates
//! and clean updates; the per-change path (`change.rs`) for the rest:
//! version check on the locked row, conflict policy, mirror write, feed
//! append. Last, the content under newly redacted chats and sessions goes.

use std::collections::HashMap;

use acode_protocol::{
    Change, Entity, ErrorCode, Hlc, Id, ItemResult, Op, PushRequest, PushResponse,
};
use deadpool_postgres::Transaction;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::change::{ingest_one, redact_descendants};
use crate::error::{RemoteError, Result};
use crate::{Device, Remote, cached, fast};

impl Remote {
    /// Ingests one batch pushed by `device`, keyed by `batch_key`.
    pub async fn push(
        &self,
        device: &Device,
        batch_key: Id,
        request: &PushRequest,
    ) -> Result<PushResponse> {
        // The body a batch key stands for: its changes. The device's oldest
        // unsettled key, and its policy, may change between resends.
        let body = serde_json::to_vec(&request.changes)
            .map_err(|e| RemoteError::Corrupt(format!("encoding batch: {e}")))?;
        let body_hash = Sha256::digest(&body).to_vec();
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(RemoteError::db("starting ingest"))?;
        // The tenant's lock first (feed sequence numbers in commit order),
        // and, for this transaction only, every statement planned for its
        // own parameters: they are prepared once per connection
        // (cached.rs) and take the batch's rows as arrays whose length
        // the planner must see (its generic plan halved the ingest rate).
        cached::execute(
            &tx,
            "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
                    pg_advisory_xact_lock(1, hashtext($1))",
            &[&device.tenant_id],
        )
        .await
        .map_err(RemoteError::db("locking tenant"))?;
        if let Some(answer) = stored_answer(&tx, device, batch_key, &body_hash).await? {
            return Ok(answer);
        }
        if let Some(oldest) = request.device_oldest_unsettled {
            prune(&tx, device, oldest).await?;
        }
        let changes = &request.changes;
        let hashes: Vec<Vec<u8>> = changes.iter().map(change_hash).collect();
        let prior = ledger(&tx, device, changes).await?;
        let mut results: Vec<Option<ItemResult>> = vec![None; changes.len()];
        let mut keys_seen = std::collections::HashSet::new();
        for (i, change) in changes.iter().enumerate() {
            if !keys_seen.insert(change.key) {
                results[i] = Some(ItemResult::Rejected {
                    key: change.key,
                    code: ErrorCode::SyncInvalidPayload.code().into(),
                    message: "the key appears twice in this batch".into(),
                });
                continue;
            }
            results[i] = match prior.get(&change.key.to_string()) {
                Some((stored_hash, stored)) if *stored_hash == hashes[i] => Some(replayed(stored)),
                Some(_) => Some(ItemResult::Rejected {
                    key: change.key,
                    code: ErrorCode::SyncInvalidPayload.code().into(),
                    message: "change key reused with another payload".into(),
                }),
                None => None,
            };
        }
        let server_now = chrono::Utc::now();
        let replays: Vec<bool> = results.iter().map(Option::is_some).collect();
        let taken = fast::apply(
            &tx,
            device,
            changes,
            &replays,
            server_now.timestamp_millis(),
        )
        .await?;
        let mut fresh: Vec<usize> = Vec::with_capacity(changes.len());
        for (i, result) in taken {
            results[i] = Some(result);
            fresh.push(i);
        }
        for (i, change) in changes.iter().enumerate() {
            if results[i].is_none() {
                let result = ingest_one(
                    &tx,
                    device,
                    request.policy,
                    change,
                    server_now.timestamp_millis(),
                )
                .await?;
                results[i] = Some(result);
                fresh.push(i);
            }
        }
        let results: Vec<ItemResult> = results.into_iter().flatten().collect();
        record(&tx, device, changes, &hashes, &results, &fresh).await?;
        // Content under a redacted chat or session never stays on the
        // server: chats and sessions this batch may have redacted, and the
        // chats and sessions of every child it wrote (a device that had not
        // yet heard of the redaction sends its children with content).
        let sweep_hlc = Hlc {
            millis: server_now.timestamp_millis(),
            counter: 0,
            device: "server".into(),
        }
        .to_string();
        for (entity, id) in redaction_roots(&tx, device, changes, &results).await? {
            redact_descendants(&tx, device, entity, &id, &sweep_hlc)
                .await
                .map_err(RemoteError::db("redacting children"))?;
        }
        let response = PushResponse {
            results,
            server_time: server_now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let stored = serde_json::to_value(&response)
            .map_err(|e| RemoteError::Corrupt(format!("encoding answer: {e}")))?;
        cached::execute(
            &tx,
            "INSERT INTO sync_push_batches (tenant_id, device_id, batch_key, body_hash, response)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &device.tenant_id,
                &device.device_id,
                &batch_key.to_string(),
                &body_hash,
                &stored,
            ],
        )
        .await
        .map_err(RemoteError::db("storing batch answer"))?;
        let wrote = fresh.iter().any(|&i| {
            matches!(
                response.results[i],
                ItemResult::Applied { .. }
                    | ItemResult::Conflict {
                        resolution: acode_protocol::Resolution::LocalApplied,
                        ..
                    }
            )
        });
        if wrote {
            // Delivered at commit: long-polls of this tenant, on every
            // server instance, wake and read the feed.
            cached::execute(
                &tx,
                "SELECT pg_notify($1, $2)",
                &[&crate::notify::FEED_CHANNEL, &device.tenant_id],
            )
            .await
            .map_err(RemoteError::db("announcing the batch"))?;
        }
        tx.commit()
            .await
            .map_err(RemoteError::db("committing batch"))?;
        Ok(response)
    }
}

/// Whether a change may have left a chat or session redacted: its data
/// says so, or a conflict merged in the stricter level.
fn may_redact(change: &Change, result: &ItemResult) -> bool {
    let says_redacted = change
        .data
        .as_ref()
        .and_then(|d| d.get("privacy"))
        .and_then(Value::as_str)
        == Some("redacted");
    change.op == Op::Upsert && (says_redacted || matches!(result, ItemResult::Conflict { .. }))
}

/// The chats and sessions whose redaction must be (re)applied after this
/// batch: those it may have redacted, and the roots of the children it wrote.
async fn redaction_roots(
    tx: &Transaction<'_>,
    device: &Device,
    changes: &[Change],
    results: &[ItemResult],
) -> Result<Vec<(Entity, String)>> {
    let mut roots: Vec<(Entity, String)> = Vec::new();
    let mut children: HashMap<Entity, Vec<String>> = HashMap::new();
    for (c, r) in changes.iter().zip(results) {
        if matches!(r, ItemResult::Rejected { .. }) || c.op != Op::Upsert {
            continue;
        }
        match c.entity {
            Entity::Chat | Entity::Session => {
                if may_redact(c, r) {
                    roots.push((c.entity, c.id.to_string()));
                }
            }
            child => children.entry(child).or_default().push(c.id.to_string()),
        }
    }
    for (child, ids) in children {
        // One primary-key probe per id and per hop (lateral lookups,
        // `LIMIT 1` keeping each a probe), as in `mirror::select_live_many`.
        let (root, sql) = match child {
            Entity::Message => (
                Entity::Chat,
                "SELECT DISTINCT m.chat_id FROM unnest($2::text[]) AS u(wanted)
                 CROSS JOIN LATERAL (SELECT chat_id FROM messages
                     WHERE tenant_id = $1 AND id = u.wanted LIMIT 1) AS m",
            ),
            Entity::Task => (
                Entity::Session,
                "SELECT DISTINCT t.session_id FROM unnest($2::text[]) AS u(wanted)
                 CROSS JOIN LATERAL (SELECT session_id FROM tasks
                     WHERE tenant_id = $1 AND id = u.wanted LIMIT 1) AS t",
            ),
            Entity::Artifact => (
                Entity::Session,
                "SELECT DISTINCT a.session_id FROM unnest($2::text[]) AS u(wanted)
                 CROSS JOIN LATERAL (SELECT session_id FROM artifacts
                     WHERE tenant_id = $1 AND id = u.wanted LIMIT 1) AS a",
            ),
            Entity::Step => (
                Entity::Session,
                "SELECT DISTINCT t.session_id FROM unnest($2::text[]) AS u(wanted)
                 CROSS JOIN LATERAL (SELECT task_id FROM steps
                     WHERE tenant_id = $1 AND id = u.wanted LIMIT 1) AS s
                 CROSS JOIN LATERAL (SELECT session_id FROM tasks
                     WHERE tenant_id = $1 AND id = s.task_id LIMIT 1) AS t",
            ),
            Entity::ToolCall => (
                Entity::Session,
                "SELECT DISTINCT t.session_id FROM unnest($2::text[]) AS u(wanted)
                 CROSS JOIN LATERAL (SELECT step_id FROM tool_calls
                     WHERE tenant_id = $1 AND id = u.wanted LIMIT 1) AS c
                 CROSS JOIN LATERAL (SELECT task_id FROM steps
                     WHERE tenant_id = $1 AND id = c.step_id LIMIT 1) AS s
                 CROSS JOIN LATERAL (SELECT session_id FROM tasks
                     WHERE tenant_id = $1 AND id = s.task_id LIMIT 1) AS t",
            ),
            Entity::Chat | Entity::Session => continue,
        };
        let rows = cached::query(tx, sql, &[&device.tenant_id, &ids])
            .await
            .map_err(RemoteError::db("finding redaction roots"))?;
        roots.extend(rows.into_iter().map(|r| (root, r.get::<_, String>(0))));
    }
    roots.sort();
    roots.dedup();
    Ok(roots)
}

/// The answer already given to this batch key, or 422 when the same key
/// came with another body.
async fn stored_answer(
    tx: &Transaction<'_>,
    device: &Device,
    batch_key: Id,
    body_hash: &[u8],
) -> Result<Option<PushResponse>> {
    let row = cached::query_opt(
        tx,
        "SELECT body_hash, response FROM sync_push_batches
             WHERE tenant_id = $1 AND device_id = $2 AND batch_key = $3",
        &[&device.tenant_id, &device.device_id, &batch_key.to_string()],
    )
    .await
    .map_err(RemoteError::db("reading batch answers"))?;
    let Some(row) = row else { return Ok(None) };
    let stored_hash: Vec<u8> = row.get(0);
    if stored_hash != body_hash {
        return Err(RemoteError::BatchKeyReused(batch_key));
    }
    serde_json::from_value(row.get(1))
        .map(Some)
        .map_err(|e| RemoteError::Corrupt(format!("stored answer of batch {batch_key}: {e}")))
}

/// Forgets what this device can no longer replay: everything below its
/// oldest unsettled key (rule 8), not by age.
async fn prune(tx: &Transaction<'_>, device: &Device, oldest: Id) -> Result<()> {
    let oldest = oldest.to_string();
    // Only the range since the last prune: [watermark, oldest).
    let from: Option<String> = cached::query_opt(tx,
            "UPDATE sync_devices AS d SET ledger_pruned_below = $3
             FROM (SELECT ledger_pruned_below AS lo FROM sync_devices WHERE id = $2 AND tenant_id = $1) AS old
             WHERE d.id = $2 AND d.tenant_id = $1 AND old.lo < $3
             RETURNING old.lo",
            &[&device.tenant_id, &device.device_id, &oldest],
        )
        .await
        .map_err(RemoteError::db("moving the prune watermark"))?
        .map(|r| r.get(0));
    let Some(from) = from else {
        return Ok(()); // nothing new below the oldest unsettled key
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&device.tenant_id, &device.device_id, &from, &oldest];
    cached::execute(
        tx,
        "DELETE FROM sync_idempotency
         WHERE tenant_id = $1 AND device_id = $2 AND key >= $3 AND key < $4",
        &params,
    )
    .await
    .map_err(RemoteError::db("pruning ledger"))?;
    cached::execute(
        tx,
        "DELETE FROM sync_push_batches
         WHERE tenant_id = $1 AND device_id = $2 AND batch_key >= $3 AND batch_key < $4",
        &params,
    )
    .await
    .map_err(RemoteError::db("pruning batch answers"))?;
    Ok(())
}

/// Each known key: its payload hash and its stored answer.
type Ledger = HashMap<String, (Vec<u8>, ItemResult)>;

async fn ledger(tx: &Transaction<'_>, device: &Device, changes: &[Change]) -> Result<Ledger> {
    let keys: std::collections::HashSet<String> =
        changes.iter().map(|c| c.key.to_string()).collect();
    let (Some(low), Some(high)) = (keys.iter().min(), keys.iter().max()) else {
        return Ok(Ledger::new());
    };
    // One range scan of this device's ledger over the batch's keys (ULIDs:
    // the ledger holds only this device's unsettled span), not a probe per key.
    let rows = cached::query(
        tx,
        "SELECT key, payload_hash, result, applied_version, applied_seq FROM sync_idempotency
             WHERE tenant_id = $1 AND device_id = $2 AND key >= $3 AND key <= $4",
        &[&device.tenant_id, &device.device_id, low, high],
    )
    .await
    .map_err(RemoteError::db("reading ledger"))?;
    let mut ledger = Ledger::new();
    for r in rows {
        let key: String = r.get(0);
        if !keys.contains(&key) {
            continue;
        }
        let answer = stored_result(&key, r.get(2), r.get(3), r.get(4))?;
        ledger.insert(key, (r.get(1), answer));
    }
    Ok(ledger)
}

/// A ledger row's answer: an applied change as its two numbers, any other
/// as its JSON document.
fn stored_result(
    key: &str,
    result: Option<Value>,
    version: Option<i64>,
    seq: Option<i64>,
) -> Result<ItemResult> {
    match (result, version, seq) {
        (Some(doc), _, _) => serde_json::from_value(doc)
            .map_err(|e| RemoteError::Corrupt(format!("stored result of {key}: {e}"))),
        (None, Some(version), Some(seq)) => Ok(ItemResult::Applied {
            key: key
                .parse()
                .map_err(|_| RemoteError::Corrupt(format!("ledger key {key:?}")))?,
            version,
            seq,
        }),
        _ => Err(RemoteError::Corrupt(format!(
            "ledger entry {key} has no answer"
        ))),
    }
}

/// Writes the ledger entries of the changes this batch answered anew
/// (`fresh`), in one statement.
async fn record(
    tx: &Transaction<'_>,
    device: &Device,
    changes: &[Change],
    hashes: &[Vec<u8>],
    results: &[ItemResult],
    fresh: &[usize],
) -> Result<()> {
    let mut keys = Vec::with_capacity(fresh.len());
    let mut sums = Vec::with_capacity(fresh.len());
    let mut docs: Vec<Option<Value>> = Vec::with_capacity(fresh.len());
    let mut versions: Vec<Option<i64>> = Vec::with_capacity(fresh.len());
    let mut seqs: Vec<Option<i64>> = Vec::with_capacity(fresh.len());
    for &i in fresh {
        keys.push(changes[i].key.to_string());
        sums.push(hashes[i].clone());
        if let ItemResult::Applied { version, seq, .. } = results[i] {
            docs.push(None);
            versions.push(Some(version));
            seqs.push(Some(seq));
        } else {
            docs.push(Some(serde_json::to_value(&results[i]).map_err(|e| {
                RemoteError::Corrupt(format!("encoding result: {e}"))
            })?));
            versions.push(None);
            seqs.push(None);
        }
    }
    cached::execute(tx,
        "INSERT INTO sync_idempotency
             (tenant_id, device_id, key, payload_hash, result, applied_version, applied_seq)
         SELECT $1, $2, k, h, r, v, s
         FROM unnest($3::text[], $4::bytea[], $5::jsonb[], $6::bigint[], $7::bigint[]) AS u(k, h, r, v, s)",
        &[&device.tenant_id, &device.device_id, &keys, &sums, &docs, &versions, &seqs],
    )
    .await
    .map_err(RemoteError::db("writing ledger"))?;
    Ok(())
}

/// What a replayed key gets: its stored answer, an `applied` now reading
/// `duplicate`.
fn replayed(stored: &ItemResult) -> ItemResult {
    match stored.clone() {
        ItemResult::Applied { key, version, seq } => ItemResult::Duplicate { key, version, seq },
        other => other,
    }
}

/// The hash that ties a key to its payload (rule 8).
fn change_hash(change: &Change) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(change.entity.as_str());
    h.update([0]);
    h.update(change.id.to_string());
    h.update([0]);
    h.update(if change.op == Op::Upsert { "u" } else { "d" });
    h.update(change.base_version.to_be_bytes());
    h.update(&change.hlc);
    h.update([0]);
    if let Some(data) = &change.data {
        h.update(Value::Object(data.clone()).to_string());
    }
    h.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hash_binds_key_to_payload() {
        let a = Change {
            key: Id::new(),
            entity: Entity::Chat,
            id: Id::new(),
            op: Op::Upsert,
            base_version: 0,
            hlc: "2026-11-22T01:02:03.123Z-0000-dev".into(),
            data: json!({"title": "a"}).as_object().cloned(),
        };
        let mut b = a.clone();
        b.data = json!({"title": "b"}).as_object().cloned();
        assert_ne!(change_hash(&a), change_hash(&b));
        assert_eq!(change_hash(&a), change_hash(&a.clone()));
    }
}

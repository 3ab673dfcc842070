//! One change at a time (DESIGN.md §5, §8; §15 rules 4, 6, 7, 9, 12): the
//! path for everything the set-based path (`fast.rs`) leaves — conflicts,
//! deletes with their cascade, resurrections, invalid changes. Each change
//! runs in its own savepoint, so a bad one is rejected alone.

use acode_protocol::conflict::{self, Contender, Policy, Winner};
use acode_protocol::{Change, Entity, ErrorCode, Hlc, Id, ItemResult, Op, Privacy, Resolution};
use serde_json::{Map, Value, json};
use tokio_postgres::Transaction;

use crate::error::{RemoteError, Result};
use crate::{Device, mirror};

/// How far ahead of the server's clock an incoming HLC may be (rule 12).
pub(crate) const MAX_CLOCK_LEAD_MS: i64 = 60_000;

/// Columns only the server sets; a payload naming one is rejected (rule 9).
const SYSTEM_COLUMNS: &[&str] = &[
    "id",
    "tenant_id",
    "version",
    "hlc",
    "origin_device",
    "deleted",
    "server_seq",
    "seq",
];

/// Why one change was refused.
pub(crate) struct Rejection {
    code: ErrorCode,
    message: String,
}

fn reject(code: ErrorCode, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
    }
}

/// Checks one change on its own, before touching the database.
pub(crate) fn validate(change: &Change) -> Result<(), Rejection> {
    if change.base_version < 0 {
        return Err(reject(
            ErrorCode::SyncInvalidPayload,
            "base_version is negative",
        ));
    }
    if change.op == Op::Delete {
        return Ok(());
    }
    let Some(data) = &change.data else {
        return Err(reject(
            ErrorCode::SyncInvalidPayload,
            "an upsert needs data",
        ));
    };
    let known = change.entity.data_columns();
    for (col, value) in data {
        if SYSTEM_COLUMNS.contains(&col.as_str()) {
            return Err(reject(
                ErrorCode::SyncInvalidPayload,
                format!("data names the system column {col:?}, which only the server sets"),
            ));
        }
        if !known.contains(&col.as_str()) {
            return Err(reject(
                ErrorCode::SyncInvalidPayload,
                format!("{} has no column {col:?}", change.entity),
            ));
        }
        match value {
            Value::Null if mirror::required(change.entity).contains(&col.as_str()) => {
                return Err(reject(
                    ErrorCode::SyncInvalidPayload,
                    format!("{col} cannot be null"),
                ));
            }
            Value::String(t)
                if mirror::is_time(col) && chrono::DateTime::parse_from_rfc3339(t).is_err() =>
            {
                return Err(reject(
                    ErrorCode::SyncInvalidPayload,
                    format!(
                        "{col} must be an RFC 3339 time, not {:?}",
                        t.chars().take(40).collect::<String>()
                    ),
                ));
            }
            Value::Null | Value::String(_) => {}
            _ => {
                return Err(reject(
                    ErrorCode::SyncInvalidPayload,
                    format!("{col} must be a string or null"),
                ));
            }
        }
    }
    match data.get("privacy").and_then(Value::as_str) {
        None | Some("full") | Some("redacted") => Ok(()),
        Some("local_only") => Err(reject(
            ErrorCode::SyncInvalidPayload,
            "a local_only row never syncs (send a delete instead)",
        )),
        Some(other) => Err(reject(
            ErrorCode::SyncInvalidPayload,
            format!("unknown privacy level {other:?}"),
        )),
    }
}

/// The row as the server has it, locked.
struct Current {
    version: i64,
    deleted: bool,
    hlc: String,
    data: Value,
}

impl Current {
    fn privacy(&self) -> Option<Privacy> {
        self.data.get("privacy")?.as_str()?.parse().ok()
    }

    fn as_winner(&self) -> Value {
        json!({"version": self.version, "hlc": self.hlc, "deleted": self.deleted,
               "data": if self.deleted { Value::Null } else { self.data.clone() }})
    }
}

enum Fail {
    Reject(Rejection),
    Db(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<Rejection> for Fail {
    fn from(r: Rejection) -> Self {
        Fail::Reject(r)
    }
}

/// One change in its own savepoint. A rejection, or a database error that
/// the change's own values caused (a constraint, a bad time), rolls back to
/// the savepoint and becomes a `rejected` result; anything else fails the
/// batch (and is retried whole).
pub(crate) async fn ingest_one(
    tx: &Transaction<'_>,
    device: &Device,
    policy: Policy,
    change: &Change,
    server_now_ms: i64,
) -> Result<ItemResult> {
    let rejected = |r: Rejection| ItemResult::Rejected {
        key: change.key,
        code: r.code.code().into(),
        message: r.message,
    };
    if let Err(r) = validate(change) {
        return Ok(rejected(r));
    }
    let mut hlc: Hlc = match change.hlc.parse() {
        Ok(h) => h,
        Err(e) => {
            return Ok(rejected(reject(
                ErrorCode::SyncInvalidPayload,
                format!("{e}"),
            )));
        }
    };
    hlc.millis = hlc.millis.min(server_now_ms + MAX_CLOCK_LEAD_MS);
    tx.batch_execute("SAVEPOINT change")
        .await
        .map_err(RemoteError::db("savepoint"))?;
    let outcome = apply(tx, device, policy, change, &hlc.to_string()).await;
    let release = match &outcome {
        Ok(_) => "RELEASE SAVEPOINT change",
        Err(_) => "ROLLBACK TO SAVEPOINT change",
    };
    let result = match outcome {
        Ok(result) => result,
        Err(Fail::Reject(r)) => rejected(r),
        Err(Fail::Db(e)) => match e.as_db_error() {
            // 22: data exception (a bad time, a NUL byte); 23: integrity.
            Some(db) if matches!(&db.code().code()[..2], "22" | "23") => rejected(reject(
                ErrorCode::SyncInvalidPayload,
                db.message().to_string(),
            )),
            _ => {
                return Err(RemoteError::Db {
                    context: "applying change",
                    source: e,
                });
            }
        },
    };
    tx.batch_execute(release)
        .await
        .map_err(RemoteError::db("savepoint"))?;
    Ok(result)
}

async fn apply(
    tx: &Transaction<'_>,
    device: &Device,
    policy: Policy,
    change: &Change,
    hlc: &str,
) -> Result<ItemResult, Fail> {
    let entity = change.entity;
    let id = change.id.to_string();
    let current = tx
        .query_opt(
            &mirror::select_for_update(entity),
            &[&device.tenant_id, &id],
        )
        .await?
        .map(|r| Current {
            version: r.get(0),
            deleted: r.get(1),
            hlc: r.get(2),
            data: r.get(3),
        });
    let mut data = change.data.clone().unwrap_or_default();
    normalize_times(&mut data);
    let Some(current) = current else {
        return create(tx, device, change, hlc, data).await;
    };
    if let Some((_, col)) = entity.parent() {
        let named = data.get(col).and_then(Value::as_str);
        if named.is_some_and(|p| Some(p) != current.data.get(col).and_then(Value::as_str)) {
            return Err(reject(
                ErrorCode::SyncInvalidPayload,
                format!("{col} cannot change"),
            )
            .into());
        }
    }
    let deleting = change.op == Op::Delete;
    if current.deleted && deleting {
        // Deleted already, by this device or another: nothing to do.
        return Ok(ItemResult::Applied {
            key: change.key,
            version: current.version,
            seq: 0,
        });
    }
    if change.base_version == current.version {
        // Made on the server's current version: no conflict. An upsert on
        // a tombstone it has seen brings the row back (a row made
        // local_only and later shared again); a concurrent update of a
        // deleted row has an older base and loses below (rule 6).
        let (version, seq) = write(tx, device, change, hlc, &mut data, current.version + 1).await?;
        return Ok(ItemResult::Applied {
            key: change.key,
            version,
            seq,
        });
    }
    if !deleting && !current.deleted && data.iter().all(|(k, v)| current.data.get(k) == Some(v)) {
        // The same values on both sides (two devices made the same edit, or
        // redacted the same rows): nothing to decide, nothing to write.
        return Ok(ItemResult::Applied {
            key: change.key,
            version: current.version,
            seq: 0,
        });
    }
    // Edited elsewhere since this device's base: a conflict (§8).
    let local = Contender {
        deleted: deleting,
        hlc: hlc
            .parse()
            .map_err(|e| reject(ErrorCode::SyncInvalidPayload, format!("{e}")))?,
        privacy: data
            .get("privacy")
            .and_then(Value::as_str)
            .and_then(|p| p.parse().ok())
            .or_else(|| current.privacy()),
    };
    let remote = Contender {
        deleted: current.deleted,
        hlc: current.hlc.parse().unwrap_or(Hlc {
            millis: 0,
            counter: 0,
            device: String::new(),
        }),
        privacy: current.privacy(),
    };
    let merged = conflict::merged_privacy(&local, &remote);
    let winner = conflict::decide(policy, &local, &remote);
    let (resolution, version) = match winner {
        Winner::Local => {
            if let Some(level) = merged.filter(|_| !deleting) {
                data.insert("privacy".into(), Value::String(level.as_str().into()));
            }
            let (version, _) =
                write(tx, device, change, hlc, &mut data, current.version + 1).await?;
            (Resolution::LocalApplied, version)
        }
        Winner::Remote if !current.deleted && merged != current.privacy() => {
            // The server's content stays, at the pusher's stricter level.
            let mut stricter = Map::new();
            if let Some(level) = merged {
                stricter.insert("privacy".into(), Value::String(level.as_str().into()));
            }
            let keep = Change {
                op: Op::Upsert,
                ..change.clone()
            };
            let (version, _) = write(
                tx,
                device,
                &keep,
                &current.hlc,
                &mut stricter,
                current.version + 1,
            )
            .await?;
            (Resolution::RemoteKept, version)
        }
        Winner::Remote => (Resolution::RemoteKept, current.version),
    };
    let after = read_back(tx, device, entity, &id).await?;
    let loser = match resolution {
        Resolution::LocalApplied => current.as_winner(),
        Resolution::RemoteKept => json!({"version": change.base_version, "hlc": change.hlc,
            "deleted": deleting, "data": change.data}),
    };
    tx.execute(
        "INSERT INTO sync_conflict_log
             (tenant_id, device_id, entity, entity_id, key, policy, resolution, winner, loser)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &device.tenant_id,
            &device.device_id,
            &entity.as_str(),
            &id,
            &change.key.to_string(),
            &policy.as_str(),
            &resolution_str(resolution),
            &after,
            &loser,
        ],
    )
    .await?;
    Ok(ItemResult::Conflict {
        key: change.key,
        version,
        resolution,
        winner: after,
        loser: (resolution == Resolution::LocalApplied).then_some(loser),
    })
}

fn resolution_str(r: Resolution) -> &'static str {
    match r {
        Resolution::LocalApplied => "local_applied",
        Resolution::RemoteKept => "remote_kept",
    }
}

/// A change for a row this tenant does not have.
async fn create(
    tx: &Transaction<'_>,
    device: &Device,
    change: &Change,
    hlc: &str,
    mut data: Map<String, Value>,
) -> Result<ItemResult, Fail> {
    let entity = change.entity;
    if change.op == Op::Delete {
        // Never reached the server (or another tenant's id): nothing to delete.
        return Ok(ItemResult::Applied {
            key: change.key,
            version: 0,
            seq: 0,
        });
    }
    if change.base_version != 0 {
        return Err(reject(
            ErrorCode::SyncInvalidPayload,
            format!(
                "{entity} {} is unknown to the server: it cannot be updated",
                change.id
            ),
        )
        .into());
    }
    for col in mirror::required(entity) {
        if data.get(*col).is_none_or(Value::is_null) {
            return Err(reject(
                ErrorCode::SyncInvalidPayload,
                format!("a new {entity} needs {col}"),
            )
            .into());
        }
    }
    for (parent, col) in entity.cascading_parents() {
        let Some(parent_id) = data.get(*col).and_then(Value::as_str) else {
            continue;
        };
        let live: Option<bool> = tx
            .query_opt(
                &mirror::select_live(*parent),
                &[&device.tenant_id, &parent_id],
            )
            .await?
            .map(|r| r.get(0));
        if live != Some(true) {
            return Err(reject(
                ErrorCode::SyncParentUnknown,
                format!("{parent} {parent_id} is unknown to the server or deleted"),
            )
            .into());
        }
    }
    redact(entity, &mut data);
    let id = change.id.to_string();
    let row = tx
        .query_one(
            &mirror::insert(entity),
            &[
                &device.tenant_id,
                &id,
                &Value::Object(data),
                &1i64,
                &hlc,
                &device.device_id,
            ],
        )
        .await?;
    let seq: i64 = row.get(0);
    append(tx, device, entity, &id, change.key, Op::Upsert).await?;
    Ok(ItemResult::Applied {
        key: change.key,
        version: 1,
        seq,
    })
}

/// Writes `change` over the existing row at `version`: an update of the
/// named columns, or a tombstone with its children (rule 6).
async fn write(
    tx: &Transaction<'_>,
    device: &Device,
    change: &Change,
    hlc: &str,
    data: &mut Map<String, Value>,
    version: i64,
) -> Result<(i64, i64), Fail> {
    let entity = change.entity;
    let id = change.id.to_string();
    let seq: i64 = if change.op == Op::Delete {
        let row = tx
            .query_one(
                &mirror::delete(entity),
                &[&device.tenant_id, &id, &version, &hlc, &device.device_id],
            )
            .await?;
        cascade(tx, device, entity, vec![id.clone()], hlc).await?;
        row.get(0)
    } else {
        redact(entity, data);
        let row = tx
            .query_one(
                &mirror::update(entity),
                &[
                    &device.tenant_id,
                    &id,
                    &Value::Object(data.clone()),
                    &version,
                    &hlc,
                    &device.device_id,
                ],
            )
            .await?;
        row.get(0)
    };
    append(tx, device, entity, &id, change.key, change.op).await?;
    Ok((version, seq))
}

/// Times in the one form the server stores and serves (RFC 3339 UTC with
/// milliseconds, as devices write them), so every path writes the same
/// value and equal times compare equal. Validation has checked they parse.
pub(crate) fn normalize_times(data: &mut Map<String, Value>) {
    for (col, value) in data.iter_mut() {
        if !mirror::is_time(col) {
            continue;
        }
        if let Some(t) = value
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            let utc = t.with_timezone(&chrono::Utc);
            *value = Value::String(utc.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
    }
}

/// A redacted row's content is never stored (rule 7).
pub(crate) fn redact(entity: Entity, data: &mut Map<String, Value>) {
    if data.get("privacy").and_then(Value::as_str) == Some("redacted") {
        for col in entity.content_columns() {
            data.insert((*col).to_string(), Value::Null);
        }
    }
}

/// Tombstones the children of deleted rows, all the way down, and takes
/// their entries out of the feed: devices delete them with their parent,
/// and a new device must not receive children of a deleted parent.
async fn cascade(
    tx: &Transaction<'_>,
    device: &Device,
    parent: Entity,
    ids: Vec<String>,
    hlc: &str,
) -> Result<(), Fail> {
    let mut work = vec![(parent, ids)];
    while let Some((parent, ids)) = work.pop() {
        for child in Entity::ALL {
            for (p, col) in child.cascading_parents() {
                if *p != parent {
                    continue;
                }
                let gone: Vec<String> = tx
                    .query(
                        &mirror::cascade(child, col),
                        &[&device.tenant_id, &ids, &hlc, &device.device_id],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if gone.is_empty() {
                    continue;
                }
                tx.execute(
                    "DELETE FROM sync_changes WHERE tenant_id = $1 AND entity = $2 AND entity_id = ANY($3)",
                    &[&device.tenant_id, &child.as_str(), &gone],
                )
                .await?;
                work.push((child, gone));
            }
        }
    }
    Ok(())
}

/// When a chat or session is redacted, no content under it stays on the
/// server, including rows this device never had (rule 7). Runs after the
/// batch's own changes, so the pusher's redacted children apply first.
pub(crate) async fn redact_descendants(
    tx: &Transaction<'_>,
    device: &Device,
    entity: Entity,
    id: &str,
    hlc: &str,
) -> Result<(), tokio_postgres::Error> {
    let level: Option<String> = tx
        .query_opt(&mirror::select_privacy(entity), &[&device.tenant_id, &id])
        .await?
        .map(|r| r.get(0));
    if level.as_deref() != Some("redacted") {
        return Ok(());
    }
    let mut work = vec![(entity, vec![id.to_string()])];
    while let Some((parent, ids)) = work.pop() {
        for child in Entity::ALL {
            for (p, col) in child.cascading_parents() {
                if *p != parent {
                    continue;
                }
                let emptied: Vec<String> = tx
                    .query(
                        &mirror::redact_children(child, col),
                        &[&device.tenant_id, &ids, &hlc],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                for child_id in &emptied {
                    tx.execute(
                        &mirror::feed_append(child),
                        &[
                            &device.tenant_id,
                            child_id,
                            &child.as_str(),
                            &Id::new().to_string(),
                            &"upsert",
                        ],
                    )
                    .await?;
                }
                let below: Vec<String> = tx
                    .query(
                        &mirror::live_children(child, col),
                        &[&device.tenant_id, &ids],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if !below.is_empty() {
                    work.push((child, below));
                }
            }
        }
    }
    Ok(())
}

async fn append(
    tx: &Transaction<'_>,
    device: &Device,
    entity: Entity,
    id: &str,
    key: Id,
    op: Op,
) -> Result<(), Fail> {
    let op = if op == Op::Delete { "delete" } else { "upsert" };
    tx.execute(
        &mirror::feed_append(entity),
        &[
            &device.tenant_id,
            &id,
            &entity.as_str(),
            &key.to_string(),
            &op,
        ],
    )
    .await?;
    Ok(())
}

/// The row after a conflict, as the winner the device adopts.
async fn read_back(
    tx: &Transaction<'_>,
    device: &Device,
    entity: Entity,
    id: &str,
) -> Result<Value, Fail> {
    let r = tx
        .query_one(
            &mirror::select_for_update(entity),
            &[&device.tenant_id, &id],
        )
        .await?;
    Ok(Current {
        version: r.get(0),
        deleted: r.get(1),
        hlc: r.get(2),
        data: r.get(3),
    }
    .as_winner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(data: Value) -> Change {
        Change {
            key: Id::new(),
            entity: Entity::Chat,
            id: Id::new(),
            op: Op::Upsert,
            base_version: 0,
            hlc: "2026-11-22T01:02:03.123Z-0000-dev".into(),
            data: data.as_object().cloned(),
        }
    }

    #[test]
    fn system_and_unknown_columns_are_refused() {
        for bad in [
            json!({"tenant_id": "t2"}),
            json!({"version": "9"}),
            json!({"colour": "red"}),
        ] {
            assert!(validate(&change(bad)).is_err());
        }
        assert!(validate(&change(json!({"title": "ok", "privacy": "full"}))).is_ok());
    }

    #[test]
    fn values_must_be_text_and_levels_known() {
        assert!(validate(&change(json!({"title": 7}))).is_err());
        assert!(validate(&change(json!({"privacy": "local_only"}))).is_err());
        assert!(validate(&change(json!({"privacy": null}))).is_err());
        assert!(validate(&change(json!({"title": null, "privacy": "redacted"}))).is_ok());
    }
}

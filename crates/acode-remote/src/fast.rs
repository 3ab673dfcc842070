//! The set-based path of ingest: every change of a batch that is a plain
//! create or a clean update (made on the server's current version) is
//! written with one statement per entity and kind, instead of a dozen round
//! trips per change. What it cannot decide alone — conflicts, deletes,
//! resurrections, a row named twice, anything invalid — is left to the
//! per-change path (`ingest.rs`), which runs after it in the same
//! transaction. Both give the same answers; this one is faster.

use std::collections::{HashMap, HashSet};

use acode_protocol::{Change, Entity, Hlc, ItemResult, Op};
use deadpool_postgres::Transaction;
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;

use crate::change::{MAX_CLOCK_LEAD_MS, normalize_times, redact, validate};
use crate::error::{RemoteError, Result};
use crate::{Device, cached, mirror};

/// The row as the server has it.
struct Current {
    version: i64,
    deleted: bool,
    data: Value,
}

enum Write {
    Create,
    Update { version: i64 },
}

/// Applies what it can; returns `(index, result)` for each change it took.
/// `done[i]` marks changes already answered (replays).
pub(crate) async fn apply(
    tx: &Transaction<'_>,
    device: &Device,
    changes: &[Change],
    done: &[bool],
    server_now_ms: i64,
) -> Result<Vec<(usize, ItemResult)>> {
    let candidates = candidates(changes, done);
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let current = current_rows(tx, device, changes, &candidates).await?;
    let live_parents = live_parents(tx, device, changes, &candidates, &current).await?;

    // Decide in batch order, so a parent created earlier in the batch counts.
    let mut created: HashSet<(Entity, String)> = HashSet::new();
    let mut writes: Vec<(usize, Write)> = Vec::new();
    for &i in &candidates {
        let c = &changes[i];
        let id = c.id.to_string();
        let data = c.data.as_ref();
        let write = match current.get(&(c.entity, id.clone())) {
            None if c.base_version == 0 => {
                let complete = mirror::required(c.entity)
                    .iter()
                    .all(|col| data.and_then(|d| d.get(*col)).is_some_and(|v| !v.is_null()));
                let parents_live = c.entity.cascading_parents().iter().all(|(parent, col)| {
                    match data.and_then(|d| d.get(*col)).and_then(Value::as_str) {
                        None => true,
                        Some(pid) => {
                            let key = (*parent, pid.to_string());
                            live_parents.contains(&key) || created.contains(&key)
                        }
                    }
                });
                (complete && parents_live).then_some(Write::Create)
            }
            Some(cur) if c.base_version == cur.version && !cur.deleted && parent_kept(c, cur) => {
                Some(Write::Update {
                    version: cur.version + 1,
                })
            }
            _ => None,
        };
        if let Some(w) = write {
            if matches!(w, Write::Create) {
                created.insert((c.entity, id));
            }
            writes.push((i, w));
        }
    }
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    tx.batch_execute("SAVEPOINT fast")
        .await
        .map_err(RemoteError::db("savepoint"))?;
    match write_all(tx, device, changes, &writes, server_now_ms).await {
        Ok(results) => {
            tx.batch_execute("RELEASE SAVEPOINT fast")
                .await
                .map_err(RemoteError::db("savepoint"))?;
            Ok(results)
        }
        Err(e)
            if e.as_db_error()
                .is_some_and(|db| matches!(&db.code().code()[..2], "22" | "23")) =>
        {
            // A value the database refuses: the per-change path finds which
            // change it was and rejects that one alone.
            tx.batch_execute("ROLLBACK TO SAVEPOINT fast; RELEASE SAVEPOINT fast")
                .await
                .map_err(RemoteError::db("savepoint"))?;
            Ok(Vec::new())
        }
        Err(e) => Err(RemoteError::Db {
            context: "applying a batch",
            source: e,
        }),
    }
}

/// Valid upserts of rows the batch names once, before its first delete (a
/// delete's cascade must see the batch in order).
fn candidates(changes: &[Change], done: &[bool]) -> Vec<usize> {
    let mut count: HashMap<(Entity, String), usize> = HashMap::new();
    for c in changes {
        *count.entry((c.entity, c.id.to_string())).or_default() += 1;
    }
    let first_delete = changes
        .iter()
        .position(|c| c.op == Op::Delete)
        .unwrap_or(changes.len());
    (0..first_delete)
        .filter(|&i| {
            let c = &changes[i];
            !done[i]
                && c.op == Op::Upsert
                && count.get(&(c.entity, c.id.to_string())) == Some(&1)
                && validate(c).is_ok()
                && c.hlc.parse::<Hlc>().is_ok()
        })
        .collect()
}

fn parent_kept(c: &Change, cur: &Current) -> bool {
    let Some((_, col)) = c.entity.parent() else {
        return true;
    };
    match c
        .data
        .as_ref()
        .and_then(|d| d.get(col))
        .and_then(Value::as_str)
    {
        None => true,
        Some(p) => Some(p) == cur.data.get(col).and_then(Value::as_str),
    }
}

async fn current_rows(
    tx: &Transaction<'_>,
    device: &Device,
    changes: &[Change],
    candidates: &[usize],
) -> Result<HashMap<(Entity, String), Current>> {
    let mut out = HashMap::new();
    for entity in Entity::ALL {
        let mut ids: Vec<String> = candidates
            .iter()
            .filter(|&&i| changes[i].entity == entity)
            .map(|&i| changes[i].id.to_string())
            .collect();
        if ids.is_empty() {
            continue;
        }
        // Locked in id order, as every batch does.
        ids.sort_unstable();
        ids.dedup();
        let rows = cached::query(
            tx,
            &mirror::select_many_for_update(entity),
            &[&device.tenant_id, &ids],
        )
        .await
        .map_err(RemoteError::db("reading rows"))?;
        for r in rows {
            out.insert(
                (entity, r.get::<_, String>(0)),
                Current {
                    version: r.get(1),
                    deleted: r.get(2),
                    data: r.get(3),
                },
            );
        }
    }
    Ok(out)
}

/// The live parents (already on the server) of the rows to be created.
async fn live_parents(
    tx: &Transaction<'_>,
    device: &Device,
    changes: &[Change],
    candidates: &[usize],
    current: &HashMap<(Entity, String), Current>,
) -> Result<HashSet<(Entity, String)>> {
    let mut wanted: HashMap<Entity, Vec<String>> = HashMap::new();
    for &i in candidates {
        let c = &changes[i];
        if current.contains_key(&(c.entity, c.id.to_string())) {
            continue;
        }
        for (parent, col) in c.entity.cascading_parents() {
            if let Some(pid) = c
                .data
                .as_ref()
                .and_then(|d| d.get(*col))
                .and_then(Value::as_str)
            {
                wanted.entry(*parent).or_default().push(pid.to_string());
            }
        }
    }
    let mut live = HashSet::new();
    for (parent, mut ids) in wanted {
        // Many children name the same parent: one probe each.
        ids.sort_unstable();
        ids.dedup();
        let rows = cached::query(
            tx,
            &mirror::select_live_many(parent),
            &[&device.tenant_id, &ids],
        )
        .await
        .map_err(RemoteError::db("reading parents"))?;
        live.extend(rows.into_iter().map(|r| (parent, r.get::<_, String>(0))));
    }
    Ok(live)
}

async fn write_all(
    tx: &Transaction<'_>,
    device: &Device,
    changes: &[Change],
    writes: &[(usize, Write)],
    server_now_ms: i64,
) -> Result<Vec<(usize, ItemResult)>, tokio_postgres::Error> {
    let mut results = Vec::with_capacity(writes.len());
    let head: [&(dyn ToSql + Sync); 2] = [&device.tenant_id, &device.device_id];
    for entity in Entity::ALL {
        let mut inserts = Columns::new(entity);
        let mut updates = Columns::new(entity);
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, w) in writes {
            let c = &changes[*i];
            if c.entity != entity {
                continue;
            }
            let id = c.id.to_string();
            let mut data: Map<String, Value> = c.data.clone().unwrap_or_default();
            normalize_times(&mut data);
            redact(entity, &mut data);
            let hlc = clamped(&c.hlc, server_now_ms);
            match w {
                Write::Create => inserts.push(&id, c.key.to_string(), hlc, &data, None),
                Write::Update { version } => {
                    updates.push(&id, c.key.to_string(), hlc, &data, Some(*version))
                }
            }
            index.insert(id, *i);
        }
        let mut written = Vec::new();
        for (group, update) in [(&inserts, false), (&updates, true)] {
            if group.ids.is_empty() {
                continue;
            }
            let statement = if update {
                mirror::update_many(entity)
            } else {
                mirror::insert_many(entity)
            };
            let mut params = group.params(&head, update);
            if group.complete() {
                // Devices send every column: the feed takes the data as sent.
                let n = params.len();
                params.push(&group.keys);
                params.push(&group.data);
                let sql = mirror::with_feed(entity, &statement, n + 1, n + 2);
                written.extend(cached::query(tx, &sql, &params).await?);
            } else {
                written.extend(cached::query(tx, &statement, &params).await?);
                cached::execute(
                    tx,
                    &mirror::feed_append_many(entity),
                    &[
                        &device.tenant_id,
                        &entity.as_str(),
                        &group.ids,
                        &group.keys,
                        &group.data,
                    ],
                )
                .await?;
            }
        }
        for r in written {
            let id: String = r.get(0);
            if let Some(&i) = index.get(&id) {
                let (seq, version): (i64, i64) = (r.get(1), r.get(2));
                results.push((
                    i,
                    ItemResult::Applied {
                        key: changes[i].key,
                        version,
                        seq,
                    },
                ));
            }
        }
    }
    Ok(results)
}

/// The changes of one entity as one array per column (what `unnest`
/// takes), with whether each change named the column, and what the feed
/// needs: keys, and the data as JSON text when it names every column.
struct Columns {
    entity: Entity,
    ids: Vec<String>,
    keys: Vec<String>,
    hlcs: Vec<String>,
    versions: Vec<i64>,
    values: Vec<Vec<Option<String>>>,
    named: Vec<Vec<bool>>,
    data: Vec<Option<String>>,
}

impl Columns {
    fn new(entity: Entity) -> Self {
        let n = entity.data_columns().len();
        Columns {
            entity,
            ids: Vec::new(),
            keys: Vec::new(),
            hlcs: Vec::new(),
            versions: Vec::new(),
            values: vec![Vec::new(); n],
            named: vec![Vec::new(); n],
            data: Vec::new(),
        }
    }

    fn push(
        &mut self,
        id: &str,
        key: String,
        hlc: String,
        data: &Map<String, Value>,
        version: Option<i64>,
    ) {
        self.ids.push(id.to_string());
        self.keys.push(key);
        self.hlcs.push(hlc);
        self.versions.extend(version);
        let mut complete = true;
        for (k, col) in self.entity.data_columns().iter().enumerate() {
            let v = data.get(*col);
            complete &= v.is_some();
            self.named[k].push(v.is_some());
            self.values[k].push(v.and_then(Value::as_str).map(str::to_owned));
        }
        self.data
            .push(complete.then(|| Value::Object(data.clone()).to_string()));
    }

    /// Whether every change names every column.
    fn complete(&self) -> bool {
        self.data.iter().all(Option::is_some)
    }

    /// `head`, ids, HLCs, then for an update the new versions and each
    /// column's values with whether it is named; for an insert the values.
    fn params<'a>(
        &'a self,
        head: &[&'a (dyn ToSql + Sync); 2],
        update: bool,
    ) -> Vec<&'a (dyn ToSql + Sync)> {
        let mut p: Vec<&(dyn ToSql + Sync)> = vec![head[0], head[1], &self.ids, &self.hlcs];
        if update {
            p.push(&self.versions);
        }
        for k in 0..self.values.len() {
            p.push(&self.values[k]);
            if update {
                p.push(&self.named[k]);
            }
        }
        p
    }
}

fn clamped(hlc: &str, server_now_ms: i64) -> String {
    match hlc.parse::<Hlc>() {
        Ok(mut h) => {
            h.millis = h.millis.min(server_now_ms + MAX_CLOCK_LEAD_MS);
            h.to_string()
        }
        Err(_) => hlc.to_string(),
    }
}

//! SQL for the mirror tables, built from the entity's column list in
//! acode-protocol. Only those static names ever reach the SQL text; values
//! travel as parameters (the change's data as one `jsonb`).

use acode_protocol::Entity;

/// Columns stored as `timestamptz` (the others are `text`).
pub(crate) fn is_time(col: &str) -> bool {
    matches!(col, "created_at" | "updated_at" | "started_at" | "ended_at")
}

/// Columns that must be given when a row is created (the mirror's NOT NULL
/// application columns). Content columns never are: they are NULL when
/// redacted.
pub(crate) fn required(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::Chat => &["privacy"],
        Entity::Message => &["chat_id", "role", "privacy"],
        Entity::Session => &["status", "privacy"],
        Entity::Task => &["session_id", "status"],
        Entity::Step => &["task_id", "kind", "status"],
        Entity::ToolCall => &["step_id", "tool", "status"],
        Entity::Artifact => &["session_id", "media_type"],
    }
}

/// The value of `col` from the change's data (`$3`), cast to the column type.
fn value_of(col: &str) -> String {
    value_from("$3::jsonb", col)
}

/// The value of `col` in the JSON object `src`, cast to the column type.
fn value_from(src: &str, col: &str) -> String {
    if is_time(col) {
        format!("({src}->>'{col}')::timestamptz")
    } else {
        format!("({src}->>'{col}')")
    }
}

/// The row as the `data` of a change: a JSON object of its application
/// columns, times in the fixed RFC 3339 form the devices store.
pub(crate) fn row_json(entity: Entity) -> String {
    let fields: Vec<String> = entity
        .data_columns()
        .iter()
        .map(|col| {
            if is_time(col) {
                format!(
                    "'{col}', to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
                )
            } else {
                format!("'{col}', {col}")
            }
        })
        .collect();
    format!("jsonb_build_object({})", fields.join(", "))
}

/// `$1` tenant, `$2` id. Locks the row for the rest of the transaction.
pub(crate) fn select_for_update(entity: Entity) -> String {
    format!(
        "SELECT version, deleted, hlc, {json} FROM {table}
         WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        json = row_json(entity),
        table = entity.table()
    )
}

/// `$1` tenant, `$2` id: does a live row exist?
pub(crate) fn select_live(entity: Entity) -> String {
    format!(
        "SELECT NOT deleted FROM {} WHERE tenant_id = $1 AND id = $2",
        entity.table()
    )
}

/// `$1` tenant, `$2` id, `$3` data, `$4` version, `$5` hlc, `$6` device.
/// Returns the new `server_seq`.
pub(crate) fn insert(entity: Entity) -> String {
    let cols = entity.data_columns();
    let values: Vec<String> = cols.iter().map(|c| value_of(c)).collect();
    format!(
        "INSERT INTO {table} (tenant_id, id, {cols}, version, hlc, origin_device, deleted, server_seq)
         VALUES ($1, $2, {values}, $4, $5, $6, false, nextval('sync_changes_seq'))
         RETURNING server_seq",
        table = entity.table(),
        cols = cols.join(", "),
        values = values.join(", ")
    )
}

/// Same parameters as [`insert`]; only the columns the data names change
/// (rule 14: a column the client does not know keeps its value).
pub(crate) fn update(entity: Entity) -> String {
    let sets: Vec<String> = entity
        .data_columns()
        .iter()
        .map(|c| {
            format!(
                "{c} = CASE WHEN $3::jsonb ? '{c}' THEN {} ELSE {c} END",
                value_of(c)
            )
        })
        .collect();
    format!(
        "UPDATE {table} SET {sets}, version = $4, hlc = $5, origin_device = $6, deleted = false,
                server_seq = nextval('sync_changes_seq')
         WHERE tenant_id = $1 AND id = $2
         RETURNING server_seq",
        table = entity.table(),
        sets = sets.join(", ")
    )
}

/// A tombstone: `$1` tenant, `$2` id, `$3` version, `$4` hlc, `$5` device.
/// The content goes; the row stays so a late update cannot resurrect it.
pub(crate) fn delete(entity: Entity) -> String {
    let content: Vec<String> = entity
        .content_columns()
        .iter()
        .map(|c| format!("{c} = NULL"))
        .collect();
    format!(
        "UPDATE {table} SET {content}, deleted = true, version = $3, hlc = $4, origin_device = $5,
                server_seq = nextval('sync_changes_seq')
         WHERE tenant_id = $1 AND id = $2
         RETURNING server_seq",
        table = entity.table(),
        content = content.join(", ")
    )
}

/// Tombstones every live child of the given parents: `$1` tenant, `$2`
/// parent ids, `$3` hlc, `$4` device. Returns the children's ids.
pub(crate) fn cascade(child: Entity, parent_column: &str) -> String {
    let content: Vec<String> = child
        .content_columns()
        .iter()
        .map(|c| format!("{c} = NULL"))
        .collect();
    format!(
        "UPDATE {table} SET {content}, deleted = true, version = version + 1, hlc = $3,
                origin_device = $4, server_seq = nextval('sync_changes_seq')
         WHERE tenant_id = $1 AND {parent_column} = ANY($2) AND NOT deleted
         RETURNING id",
        table = child.table(),
        content = content.join(", ")
    )
}

/// Appends the row's current state to the feed, replacing its previous
/// entry (rule 10). `$1` tenant, `$2` id, `$3` entity, `$4` key, `$5` op.
pub(crate) fn feed_append(entity: Entity) -> String {
    format!(
        "INSERT INTO sync_changes (seq, tenant_id, entity, entity_id, key, version, op, data, origin_device, hlc)
         SELECT server_seq, tenant_id, $3, id, $4, version, $5,
                CASE WHEN deleted THEN NULL ELSE {json} END, origin_device, hlc
         FROM {table} WHERE tenant_id = $1 AND id = $2
         ON CONFLICT (tenant_id, entity, entity_id) DO UPDATE
         SET seq = excluded.seq, key = excluded.key, version = excluded.version, op = excluded.op,
             data = excluded.data, origin_device = excluded.origin_device, hlc = excluded.hlc",
        json = row_json(entity),
        table = entity.table()
    )
}

/// Empties the content of live children of redacted parents that still
/// have some (rule 7): `$1` tenant, `$2` parent ids, `$3` hlc. The origin
/// stays the row's author, so its author still receives it. Returns the
/// ids changed.
pub(crate) fn redact_children(child: Entity, parent_column: &str) -> String {
    let content = child.content_columns();
    let sets: Vec<String> = content.iter().map(|c| format!("{c} = NULL")).collect();
    let some: Vec<String> = content.iter().map(|c| format!("{c} IS NOT NULL")).collect();
    format!(
        "UPDATE {table} SET {sets}, version = version + 1, hlc = $3,
                server_seq = nextval('sync_changes_seq')
         WHERE tenant_id = $1 AND {parent_column} = ANY($2) AND NOT deleted AND ({some})
         RETURNING id",
        table = child.table(),
        sets = sets.join(", "),
        some = some.join(" OR ")
    )
}

/// The live children of the given parents: `$1` tenant, `$2` parent ids.
pub(crate) fn live_children(child: Entity, parent_column: &str) -> String {
    format!(
        "SELECT id FROM {} WHERE tenant_id = $1 AND {parent_column} = ANY($2) AND NOT deleted",
        child.table()
    )
}

/// `$1` tenant, `$2` id: the row's own privacy level.
pub(crate) fn select_privacy(entity: Entity) -> String {
    format!(
        "SELECT privacy FROM {} WHERE tenant_id = $1 AND id = $2 AND NOT deleted",
        entity.table()
    )
}

// Set-based forms for a whole batch (`fast.rs`), fed with typed arrays.

/// `$1` tenant, `$2` ids: the rows, locked, with what the version check needs.
///
/// One primary-key probe per id (a lateral lookup), whatever the planner's
/// statistics say: written as `id = ANY($2)`, a table that grew since its
/// last ANALYZE was read through the tenant's whole key range with the ids
/// as a filter, making each batch cost grow with the table (15 -> 29 ms
/// per 500-change batch over a 100,000-row drain). Row locks are taken in
/// the ids' order; the tenant's ingest lock already serialises batches.
pub(crate) fn select_many_for_update(entity: Entity) -> String {
    format!(
        "SELECT t.id, t.version, t.deleted, {json}
         FROM unnest($2::text[]) AS u(wanted)
         CROSS JOIN LATERAL (SELECT * FROM {table} AS r
                             WHERE r.tenant_id = $1 AND r.id = u.wanted FOR UPDATE) AS t",
        json = row_json(entity),
        table = entity.table()
    )
}

/// `$1` tenant, `$2` ids: which of them are live rows (one probe per id,
/// as above; `LIMIT 1` keeps PostgreSQL from turning the lateral lookup
/// back into a join it may plan as a scan).
pub(crate) fn select_live_many(entity: Entity) -> String {
    format!(
        "SELECT t.id FROM unnest($2::text[]) AS u(wanted)
         CROSS JOIN LATERAL (SELECT id FROM {} AS r
                             WHERE r.tenant_id = $1 AND r.id = u.wanted AND NOT r.deleted
                             LIMIT 1) AS t",
        entity.table()
    )
}

/// A column of `u` (the unnested arrays) cast to the column's type.
fn typed(col: &str) -> String {
    if is_time(col) {
        format!("u.c_{col}::timestamptz")
    } else {
        format!("u.c_{col}")
    }
}

/// `$1` tenant, `$2` device, `$3` ids, `$4` HLCs, then one `text[]` per
/// data column: new rows at version 1, sequence numbers in batch order.
/// Typed arrays, not JSON: the values are not parsed again on the server.
pub(crate) fn insert_many(entity: Entity) -> String {
    let cols = entity.data_columns();
    let arrays: Vec<String> = (0..cols.len())
        .map(|i| format!("${}::text[]", i + 5))
        .collect();
    let names: Vec<String> = cols.iter().map(|c| format!("c_{c}")).collect();
    let values: Vec<String> = cols.iter().map(|c| typed(c)).collect();
    format!(
        "INSERT INTO {table} (tenant_id, id, {cols}, version, hlc, origin_device, deleted, server_seq)
         SELECT $1, u.id, {values}, 1, u.hlc, $2, false, nextval('sync_changes_seq')
         FROM unnest($3::text[], $4::text[], {arrays}) WITH ORDINALITY AS u(id, hlc, {names}, ord)
         ORDER BY u.ord
         RETURNING id, server_seq, version, hlc, origin_device",
        table = entity.table(),
        cols = cols.join(", "),
        values = values.join(", "),
        arrays = arrays.join(", "),
        names = names.join(", ")
    )
}

/// `$1` tenant, `$2` device, `$3` ids, `$4` HLCs, `$5` new versions, then
/// per data column a `text[]` of values and a `bool[]` saying whether the
/// change names it (a column it does not name keeps its value, rule 14).
pub(crate) fn update_many(entity: Entity) -> String {
    let cols = entity.data_columns();
    let mut arrays = Vec::new();
    let mut names = Vec::new();
    for (i, c) in cols.iter().enumerate() {
        arrays.push(format!("${}::text[], ${}::bool[]", 6 + 2 * i, 7 + 2 * i));
        names.push(format!("c_{c}, n_{c}"));
    }
    let sets: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = CASE WHEN u.n_{c} THEN {} ELSE t.{c} END", typed(c)))
        .collect();
    format!(
        "UPDATE {table} AS t SET {sets}, version = u.version, hlc = u.hlc, origin_device = $2,
                deleted = false, server_seq = nextval('sync_changes_seq')
         FROM unnest($3::text[], $4::text[], $5::bigint[], {arrays}) AS u(id, hlc, version, {names})
         WHERE t.tenant_id = $1 AND t.id = u.id
         RETURNING t.id, t.server_seq, t.version, t.hlc, t.origin_device",
        table = entity.table(),
        sets = sets.join(", "),
        arrays = arrays.join(", "),
        names = names.join(", ")
    )
}

/// `$1` tenant, `$2` entity, `$3` ids, `$4` keys, `$5` the rows' data as
/// JSON text when the change named every column (NULL: read the row): the
/// feed entries of the rows just written, replacing their previous ones.
pub(crate) fn feed_append_many(entity: Entity) -> String {
    format!(
        "INSERT INTO sync_changes (seq, tenant_id, entity, entity_id, key, version, op, data, origin_device, hlc)
         SELECT t.server_seq, t.tenant_id, $2, t.id, u.key, t.version, 'upsert',
                coalesce(u.d::json, ({json})::json), t.origin_device, t.hlc
         FROM {table} AS t JOIN unnest($3::text[], $4::text[], $5::text[]) AS u(id, key, d) ON t.id = u.id
         WHERE t.tenant_id = $1
         ON CONFLICT (tenant_id, entity, entity_id) DO UPDATE
         SET seq = excluded.seq, key = excluded.key, version = excluded.version, op = excluded.op,
             data = excluded.data, origin_device = excluded.origin_device, hlc = excluded.hlc",
        json = row_json(entity),
        table = entity.table()
    )
}

/// `statement` (an insert or update of `entity` returning `id, server_seq,
/// version, hlc, origin_device`) with the feed entries of the rows it wrote,
/// in one statement: `$tenant` (1), the ids (3), and `keys`, `data` (the
/// rows' complete data as JSON text, as the changes named it) at the given
/// parameter numbers. No scan of the mirror table is needed to find them.
pub(crate) fn with_feed(entity: Entity, statement: &str, keys: usize, data: usize) -> String {
    format!(
        "WITH w AS ({statement}),
         f AS (
             INSERT INTO sync_changes (seq, tenant_id, entity, entity_id, key, version, op, data, origin_device, hlc)
             SELECT w.server_seq, $1, '{entity}', w.id, u.key, w.version, 'upsert', u.d::json, w.origin_device, w.hlc
             FROM w JOIN unnest($3::text[], ${keys}::text[], ${data}::text[]) AS u(id, key, d) ON u.id = w.id
             ON CONFLICT (tenant_id, entity, entity_id) DO UPDATE
             SET seq = excluded.seq, key = excluded.key, version = excluded.version, op = excluded.op,
                 data = excluded.data, origin_device = excluded.origin_device, hlc = excluded.hlc
         )
         SELECT id, server_seq, version FROM w",
        entity = entity.as_str()
    )
}

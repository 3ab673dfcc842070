//! Change tracking in the source (opt-in: `migrate run --track-changes`),
//! so a run after a few changes reads those rows only instead of
//! comparing every row.
//!
//! # The source side
//!
//! Three triggers per tracked table (`__acode_track_<tid>_i|u|d`, AFTER
//! INSERT, UPDATE, DELETE) write the key of every row a statement touches
//! into `__acode_changes` (an UPDATE that changes the key writes the old
//! key too). They live in the database file, so every writer is seen, in
//! the writer's own transaction: a rolled-back write leaves no entry.
//! `__acode_changes.seq` is `AUTOINCREMENT`, so sequence numbers only grow,
//! even after entries are pruned. `__acode_tracking` holds per table its
//! id, a *generation* (new whenever the triggers are installed again: a
//! gap in which writes were not logged may lie behind it) and `pruned_to`
//! (entries up to it may be gone).
//!
//! A key is stored as text, its columns joined by `,`, each as `t<hex>`
//! (text, any bytes), `b<hex>` (blob) or SQLite's `quote()` of it
//! (integer, real, NULL; `quote()` writes reals so they read back exactly).
//!
//! # Which tables
//!
//! Tables with a declared primary key. A table keyed by its rowid is
//! always compared in full: `VACUUM` may renumber such rowids without any
//! trigger firing.
//!
//! # The target side
//!
//! See [`crate::engine::incremental`]: a cursor per source, target schema
//! and table (`acode_migrate.change_cursors`) says up to which entry the
//! target holds the source's changes; it moves in the transaction that
//! applies them.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{MigrateError, Result};
use crate::ident::quote;
use crate::schema::Table;
use crate::value::SqlValue;

pub const CHANGES: &str = "__acode_changes";
pub const TRACKING: &str = "__acode_tracking";
/// Matches the names of the triggers acode puts in the source.
const OURS: &str = "name LIKE '\\_\\_acode\\_track\\_%' ESCAPE '\\'";

/// How a run treats a tracked table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracking {
    /// The target holds the source's changes up to entry `seq`: only the
    /// rows of later entries are read.
    Incremental {
        tid: i64,
        generation: String,
        seq: i64,
    },
    /// The target has no usable cursor: a full pass establishes one.
    Establish { tid: i64, generation: String },
}

impl Tracking {
    pub fn tid(&self) -> i64 {
        match self {
            Tracking::Incremental { tid, .. } | Tracking::Establish { tid, .. } => *tid,
        }
    }

    pub fn generation(&self) -> &str {
        match self {
            Tracking::Incremental { generation, .. } | Tracking::Establish { generation, .. } => {
                generation
            }
        }
    }
}

/// A tracked table as the source records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub tid: i64,
    pub generation: String,
    pub pruned_to: i64,
}

/// Whether changes of `table` can be tracked (see the module docs).
pub fn eligible(table: &Table) -> bool {
    !table.rowid_keyed() && !table.primary_key.is_empty()
}

/// The expression of a row's key (`row`: `NEW` or `OLD`) as the change log
/// stores it.
fn key_sql(table: &Table, row: &str) -> String {
    table
        .primary_key
        .iter()
        .map(|c| {
            let v = format!("{row}.{}", quote(c));
            format!(
                "CASE typeof({v}) WHEN 'text' THEN 't' || hex({v}) WHEN 'blob' THEN 'b' || hex({v}) ELSE quote({v}) END"
            )
        })
        .collect::<Vec<_>>()
        .join(" || ',' || ")
}

fn trigger_names(tid: i64) -> [String; 3] {
    ["i", "u", "d"].map(|k| format!("__acode_track_{tid}_{k}"))
}

/// The three triggers' `CREATE` statements, as `sqlite_schema` keeps them.
fn trigger_sql(table: &Table, tid: i64) -> [String; 3] {
    let [ins, upd, del] = trigger_names(tid);
    let t = quote(&table.name);
    let (new, old) = (key_sql(table, "NEW"), key_sql(table, "OLD"));
    [
        format!(
            "CREATE TRIGGER \"{ins}\" AFTER INSERT ON {t} BEGIN INSERT INTO {CHANGES} (tid, key) VALUES ({tid}, {new}); END"
        ),
        format!(
            "CREATE TRIGGER \"{upd}\" AFTER UPDATE ON {t} BEGIN INSERT INTO {CHANGES} (tid, key) SELECT {tid}, {old} WHERE ({old}) IS NOT ({new}); INSERT INTO {CHANGES} (tid, key) VALUES ({tid}, {new}); END"
        ),
        format!(
            "CREATE TRIGGER \"{del}\" AFTER DELETE ON {t} BEGIN INSERT INTO {CHANGES} (tid, key) VALUES ({tid}, {old}); END"
        ),
    ]
}

/// A connection that may write to the source (it never creates a file).
pub fn open_writable(path: &Path) -> Result<Connection> {
    let shown = path.display().to_string();
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| MigrateError::source(&shown, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| MigrateError::source(&shown, e))?;
    Ok(conn)
}

/// The tracking of each table in `tables` that has it in place, its
/// triggers as acode writes them.
pub fn read(
    conn: &Connection,
    tables: &[&Table],
    shown: &str,
) -> Result<BTreeMap<String, Tracked>> {
    let err =
        |e: rusqlite::Error| MigrateError::source(shown, format!("reading change tracking: {e}"));
    let mut out = BTreeMap::new();
    let present: bool = conn
        .query_row(
            "SELECT count(*) = 2 FROM sqlite_schema WHERE type = 'table' AND name IN (?1, ?2)",
            [CHANGES, TRACKING],
            |r| r.get(0),
        )
        .map_err(err)?;
    if !present {
        return Ok(out);
    }
    let mut row = conn
        .prepare(&format!(
            "SELECT tid, generation, pruned_to FROM {TRACKING} WHERE tbl = ?1"
        ))
        .map_err(err)?;
    let mut trigger = conn
        .prepare(
            "SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND name = ?1 AND tbl_name = ?2",
        )
        .map_err(err)?;
    for table in tables {
        let Some(t) = row
            .query_row([&table.name], |r| {
                Ok(Tracked {
                    tid: r.get(0)?,
                    generation: r.get(1)?,
                    pruned_to: r.get(2)?,
                })
            })
            .optional()
            .map_err(err)?
        else {
            continue;
        };
        let mut intact = true;
        for (name, want) in trigger_names(t.tid).iter().zip(trigger_sql(table, t.tid)) {
            let have: Option<String> = trigger
                .query_row([name, &table.name], |r| r.get(0))
                .optional()
                .map_err(err)?;
            intact &= have.as_deref() == Some(want.as_str());
        }
        if intact {
            out.insert(table.name.clone(), t);
        }
    }
    Ok(out)
}

/// Puts tracking in place for every eligible table of `tables` that lacks
/// it (or whose triggers are not as acode wrote them: those get a new
/// generation and their old entries are dropped), in one write
/// transaction of the source; returns the tracking of every eligible
/// table. Nothing is written when all is in place.
pub fn ensure(path: &Path, tables: &[&Table]) -> Result<BTreeMap<String, Tracked>> {
    let shown = path.display().to_string();
    let eligible: Vec<&Table> = tables.iter().copied().filter(|t| eligible(t)).collect();
    let conn = crate::schema::open_source(path)?;
    let have = read(&conn, &eligible, &shown)?;
    if have.len() == eligible.len() {
        return Ok(have);
    }
    drop(conn);
    let mut conn = open_writable(path)?;
    let err = |e: rusqlite::Error| {
        MigrateError::source(&shown, format!("installing change tracking: {e}"))
    };
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {TRACKING} (tid INTEGER PRIMARY KEY, tbl TEXT NOT NULL UNIQUE,
             generation TEXT NOT NULL, pruned_to INTEGER NOT NULL DEFAULT 0);
         CREATE TABLE IF NOT EXISTS {CHANGES} (seq INTEGER PRIMARY KEY AUTOINCREMENT,
             tid INTEGER NOT NULL, key TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS {CHANGES}_tid ON {CHANGES} (tid, seq);"
    ))
    .map_err(err)?;
    // Read again under the write lock: another run may have just done it.
    let have = read(&tx, &eligible, &shown)?;
    for table in &eligible {
        if have.contains_key(&table.name) {
            continue;
        }
        let generation = new_generation();
        tx.execute(
            &format!(
                "INSERT INTO {TRACKING} (tbl, generation) VALUES (?1, ?2)
                 ON CONFLICT (tbl) DO UPDATE SET generation = excluded.generation"
            ),
            [&table.name, &generation],
        )
        .map_err(err)?;
        let tid: i64 = tx
            .query_row(
                &format!("SELECT tid FROM {TRACKING} WHERE tbl = ?1"),
                [&table.name],
                |r| r.get(0),
            )
            .map_err(err)?;
        tx.execute(&format!("DELETE FROM {CHANGES} WHERE tid = ?1"), [tid])
            .map_err(err)?;
        // Triggers acode put on this table before (under another id, say
        // before a rename) would log its changes twice.
        let stale: Vec<String> = {
            let mut stmt = tx
                .prepare(
                    &format!("SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 AND {OURS}"),
                )
                .map_err(err)?;
            stmt.query_map([&table.name], |r| r.get(0))
                .map_err(err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(err)?
        };
        for name in stale {
            tx.execute_batch(&format!("DROP TRIGGER {}", quote(&name)))
                .map_err(err)?;
        }
        for (name, sql) in trigger_names(tid).iter().zip(trigger_sql(table, tid)) {
            tx.execute_batch(&format!("DROP TRIGGER IF EXISTS \"{name}\"; {sql};"))
                .map_err(err)?;
        }
    }
    let all = read(&tx, &eligible, &shown)?;
    tx.commit().map_err(err)?;
    Ok(all)
}

fn new_generation() -> String {
    format!(
        "{:x}-{:016x}",
        chrono::Utc::now().timestamp_micros(),
        fastrand::u64(..)
    )
}

/// The highest sequence number the change log ever gave (0: none).
pub fn high_water(conn: &Connection, shown: &str) -> Result<i64> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = ?1",
            [CHANGES],
            |r| r.get(0),
        )
        .optional()
        .or_else(|e| match e {
            // No AUTOINCREMENT table yet: no sqlite_sequence either.
            rusqlite::Error::SqliteFailure(..) => Ok(None),
            e => Err(e),
        })
        .map_err(|e| MigrateError::source(shown, format!("reading the change log: {e}")))?;
    Ok(seq.unwrap_or(0))
}

/// Entries of table `tid` after `after`, at most `limit`, in order.
pub fn changes_after(
    conn: &Connection,
    tid: i64,
    after: i64,
    limit: usize,
    shown: &str,
) -> Result<Vec<(i64, String)>> {
    let err =
        |e: rusqlite::Error| MigrateError::source(shown, format!("reading the change log: {e}"));
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT seq, key FROM {CHANGES} WHERE tid = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
        ))
        .map_err(err)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    stmt.query_map(rusqlite::params![tid, after, limit], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .map_err(err)?
    .collect::<rusqlite::Result<_>>()
    .map_err(err)
}

/// How many entries of table `tid` lie after `after`.
pub fn pending(conn: &Connection, tid: i64, after: i64, shown: &str) -> Result<u64> {
    let n: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {CHANGES} WHERE tid = ?1 AND seq > ?2"),
            [tid, after],
            |r| r.get(0),
        )
        .map_err(|e| MigrateError::source(shown, format!("reading the change log: {e}")))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Drops the entries of each `(tid, upto)` up to `upto` and records that
/// in `pruned_to`: a target whose cursor lies below it compares in full.
pub fn prune(path: &Path, done: &[(i64, i64)]) -> Result<()> {
    let shown = path.display().to_string();
    let err =
        |e: rusqlite::Error| MigrateError::source(&shown, format!("pruning the change log: {e}"));
    let mut conn = open_writable(path)?;
    // Losing a prune in a power cut is harmless (its entries come back
    // together with the old `pruned_to`): in WAL mode the commit need not
    // wait for the disk. (NORMAL keeps the file consistent in WAL mode;
    // other journal modes keep their setting.)
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(err)?;
    if mode.eq_ignore_ascii_case("wal") {
        conn.execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(err)?;
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    for (tid, upto) in done {
        tx.execute(
            &format!("DELETE FROM {CHANGES} WHERE tid = ?1 AND seq <= ?2"),
            [tid, upto],
        )
        .map_err(err)?;
        tx.execute(
            &format!("UPDATE {TRACKING} SET pruned_to = max(pruned_to, ?2) WHERE tid = ?1"),
            [tid, upto],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)
}

/// Removes tracking from the source: its triggers and tables. Returns the
/// number of tables that were tracked.
pub fn remove(path: &Path) -> Result<usize> {
    let shown = path.display().to_string();
    let err =
        |e: rusqlite::Error| MigrateError::source(&shown, format!("removing change tracking: {e}"));
    crate::schema::open_source(path)?;
    let mut conn = open_writable(path)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    let triggers: Vec<String> = {
        let mut stmt = tx
            .prepare(&format!(
                "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND {OURS}"
            ))
            .map_err(err)?;
        stmt.query_map([], |r| r.get(0))
            .map_err(err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(err)?
    };
    let tracked: i64 = tx
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [TRACKING],
            |r| r.get(0),
        )
        .map_err(err)?;
    let tracked = if tracked > 0 {
        tx.query_row(&format!("SELECT count(*) FROM {TRACKING}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(err)?
    } else {
        0
    };
    for t in triggers {
        tx.execute_batch(&format!("DROP TRIGGER {}", quote(&t)))
            .map_err(err)?;
    }
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS {CHANGES}; DROP TABLE IF EXISTS {TRACKING};"
    ))
    .map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(usize::try_from(tracked).unwrap_or(0))
}

/// A logged key back to its values; `None` if it is not one acode wrote.
pub fn decode_key(text: &str) -> Option<Vec<SqlValue>> {
    text.split(',')
        .map(|part| {
            if let Some(hex) = part.strip_prefix('t') {
                return unhex(hex).map(SqlValue::Text);
            }
            if let Some(hex) = part.strip_prefix('b') {
                return unhex(hex).map(SqlValue::Blob);
            }
            if part == "NULL" {
                return Some(SqlValue::Null);
            }
            // quote() writes every real with a '.' or an exponent (or as
            // Inf): what reads as an integer was one.
            part.parse::<i64>()
                .ok()
                .map(SqlValue::Int)
                .or_else(|| part.parse::<f64>().ok().map(SqlValue::Real))
        })
        .collect()
}

fn unhex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the triggers write, read back: every storage class, text with
    /// commas, quotes and NUL, reals at their edges.
    #[test]
    fn logged_keys_read_back_as_they_were_stored() {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch(
            "CREATE TABLE t (a, b, PRIMARY KEY (a, b));
             CREATE TABLE log (key TEXT);",
        )
        .expect("schema");
        let table = crate::schema::read_schema(&conn, ":memory:")
            .expect("schema")
            .tables
            .into_iter()
            .find(|t| t.name == "t")
            .expect("table t");
        let values = [
            SqlValue::Int(i64::MIN),
            SqlValue::Int(42),
            SqlValue::Real(0.1),
            SqlValue::Real(-1.7976931348623157e308),
            SqlValue::Real(f64::INFINITY),
            SqlValue::Real(5e-324),
            SqlValue::Text(b"a,b 'q' \"d\"".to_vec()),
            SqlValue::Text(b"nul\0inside".to_vec()),
            SqlValue::Text("日本語".as_bytes().to_vec()),
            SqlValue::Text(Vec::new()),
            SqlValue::Blob(vec![0, 255, 44]),
            SqlValue::Null,
        ];
        for a in &values {
            let b = SqlValue::Int(7);
            let text: String = conn
                .query_row(
                    &format!(
                        "SELECT {} FROM (SELECT ?1 AS a, ?2 AS b) AS NEW",
                        key_sql(&table, "NEW")
                    ),
                    rusqlite::params![a, b],
                    |r| r.get(0),
                )
                .expect("key text");
            let back = decode_key(&text).expect("decodes");
            assert_eq!(back.len(), 2, "{text}");
            assert_eq!(back[1], b);
            match (a, &back[0]) {
                (SqlValue::Real(x), SqlValue::Real(y)) => {
                    assert_eq!(x.to_bits(), y.to_bits(), "{text}")
                }
                (x, y) => assert_eq!(x, y, "{text}"),
            }
        }
        assert_eq!(decode_key("tzz"), None);
        assert_eq!(decode_key("x1"), None);
    }
}

//! The source schema, read from SQLite's own catalog (`pragma_table_list`,
//! `pragma_table_xinfo`, `pragma_foreign_key_list`, `pragma_index_list`):
//! tables with their declared columns and types, primary and composite
//! keys, foreign keys and indexes; views and virtual tables are noted as
//! skipped. Foreign-key order puts parents before children.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::error::{MigrateError, Result};
use crate::ident::quote;

/// A read-only connection to the source. A file that is not an SQLite
/// database fails here, before anything else happens.
///
/// A file whose last writer was killed in the middle of a transaction
/// (a hot rollback journal, or a WAL whose index must be rebuilt) cannot
/// be read until someone with write access rolls it back or rebuilds the
/// index, as any SQLite connection opening it for writing does at once:
/// then the file is opened once for writing to let SQLite do so (its
/// committed content is unchanged), and read-only again.
pub fn open_source(path: &Path) -> Result<Connection> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(MigrateError::source(&shown, "no such file"));
    }
    match open_read_only(path) {
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ReadOnly => {
            recover(path).map_err(|e| {
                MigrateError::source(
                    &shown,
                    format!("a writer was killed in a transaction and the file cannot be opened for writing to roll it back: {e}"),
                )
            })?;
            open_read_only(path).map_err(|e| MigrateError::source(&shown, e))
        }
        opened => opened.map_err(|e| MigrateError::source(&shown, e)),
    }
}

fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let conn = open_and_read(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    // Pages are read through a memory map rather than a copy per read
    // (most of the reading's kernel time otherwise).
    conn.execute_batch("PRAGMA mmap_size = 1073741824")?;
    Ok(conn)
}

/// Lets SQLite roll back a hot journal or rebuild a WAL index: the first
/// read of a connection that may write does either.
fn recover(path: &Path) -> rusqlite::Result<()> {
    open_and_read(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map(drop)
}

/// Opens the file (never creating it) and reads its catalog, which is
/// what tells a database from any other file.
fn open_and_read(path: &Path, mode: OpenFlags) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(conn)
}

#[derive(Clone, Debug, Serialize)]
pub struct Column {
    pub name: String,
    /// The declared type as written (may be empty).
    pub declared: String,
    pub not_null: bool,
    /// Position in the primary key (1-based), 0 when not part of it.
    pub pk: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    /// The parent table, resolved to its exact name when it exists.
    pub parent: String,
    /// The parent columns (the parent's primary key when not named).
    pub parent_columns: Vec<String>,
    /// SQLite's id of the constraint, as `pragma_foreign_key_check` names it.
    #[serde(skip)]
    pub id: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    /// Plain columns; `None` when the index has expressions or is partial
    /// (not recreated).
    pub columns: Option<Vec<String>>,
    /// Made by SQLite for a UNIQUE constraint (`sqlite_autoindex_…`).
    pub auto: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    /// The declared primary key, in key order; empty: the table is keyed
    /// by its rowid.
    pub primary_key: Vec<String>,
    pub without_rowid: bool,
    pub foreign_keys: Vec<ForeignKey>,
    pub indexes: Vec<Index>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The name to select the rowid by: one of SQLite's three aliases that
    /// no column shadows.
    pub fn rowid_alias(&self) -> Option<&'static str> {
        ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|a| self.column(a).is_none())
    }

    /// Whether the key is the integer rowid itself (no PK, or an
    /// `INTEGER PRIMARY KEY` alias of it).
    pub fn rowid_keyed(&self) -> bool {
        self.primary_key.is_empty()
    }
}

/// Something in the source that is not copied, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub name: String,
    pub kind: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Schema {
    /// In foreign-key order: parents first.
    pub tables: Vec<Table>,
    pub skipped: Vec<Skipped>,
}

impl Schema {
    /// The table of that exact name, else the one of that name in another
    /// case (SQLite names are case-insensitive).
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name).or_else(|| {
            self.tables
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(name))
        })
    }
}

fn sqlite_err(path: &str) -> impl Fn(rusqlite::Error) -> MigrateError + '_ {
    move |e| MigrateError::source(path, e)
}

/// Reads the whole schema of the `main` database.
pub fn read_schema(conn: &Connection, path: &str) -> Result<Schema> {
    let err = sqlite_err(path);
    let mut list = conn
        .prepare("SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' ORDER BY name")
        .map_err(&err)?;
    let entries: Vec<(String, String, bool)> = list
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(&err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(&err)?;
    let mut tables = Vec::new();
    let mut skipped = Vec::new();
    for (name, kind, wr) in entries {
        // SQLite's own tables, and acode's change log (crate::track).
        if name.starts_with("sqlite_")
            || name == crate::track::CHANGES
            || name == crate::track::TRACKING
        {
            continue;
        }
        match kind.as_str() {
            "table" => tables.push(read_table(conn, &name, wr, path)?),
            "view" => skipped.push(Skipped {
                name,
                kind,
                reason: "views are not copied (their tables are)".into(),
            }),
            "virtual" => skipped.push(Skipped {
                name,
                kind,
                reason: "virtual tables (FTS, R*Tree, …) are not copied".into(),
            }),
            "shadow" => skipped.push(Skipped {
                name,
                kind,
                reason: "internal storage of a virtual table".into(),
            }),
            _ => skipped.push(Skipped {
                name,
                kind,
                reason: "not a table".into(),
            }),
        }
    }
    resolve_foreign_keys(&mut tables);
    let tables = fk_order(tables);
    Ok(Schema { tables, skipped })
}

fn read_table(conn: &Connection, name: &str, without_rowid: bool, path: &str) -> Result<Table> {
    let err = sqlite_err(path);
    let mut stmt = conn
        .prepare(
            "SELECT name, type, \"notnull\", pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid",
        )
        .map_err(&err)?;
    let mut columns = Vec::new();
    let mut rows = stmt.query([name]).map_err(&err)?;
    while let Some(r) = rows.next().map_err(&err)? {
        let hidden: i64 = r.get(4).map_err(&err)?;
        if hidden == 1 {
            continue; // a hidden column of a virtual table
        }
        let pk: i64 = r.get(3).map_err(&err)?;
        columns.push(Column {
            name: r.get(0).map_err(&err)?,
            declared: r
                .get::<_, Option<String>>(1)
                .map_err(&err)?
                .unwrap_or_default(),
            not_null: r.get(2).map_err(&err)?,
            pk: usize::try_from(pk).unwrap_or(0),
        });
    }
    let mut pk: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
    pk.sort_by_key(|c| c.pk);
    // An `INTEGER PRIMARY KEY` is the rowid itself: it stays the declared
    // key (always an integer, never NULL).
    let primary_key: Vec<String> = pk.iter().map(|c| c.name.clone()).collect();

    let mut foreign_keys: BTreeMap<i64, ForeignKey> = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT id, seq, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
        .map_err(&err)?;
    let mut rows = stmt.query([name]).map_err(&err)?;
    while let Some(r) = rows.next().map_err(&err)? {
        let id: i64 = r.get(0).map_err(&err)?;
        let fk = foreign_keys.entry(id).or_insert_with(|| ForeignKey {
            columns: Vec::new(),
            parent: String::new(),
            parent_columns: Vec::new(),
            id,
        });
        fk.parent = r.get(2).map_err(&err)?;
        fk.columns.push(r.get(3).map_err(&err)?);
        if let Some(to) = r.get::<_, Option<String>>(4).map_err(&err)? {
            fk.parent_columns.push(to);
        }
    }

    let mut indexes = Vec::new();
    let mut stmt = conn
        .prepare(
            "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1) ORDER BY name",
        )
        .map_err(&err)?;
    let list: Vec<(String, bool, String, bool)> = stmt
        .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(&err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(&err)?;
    for (index, unique, origin, partial) in list {
        if origin == "pk" {
            continue;
        }
        let mut stmt = conn
            .prepare("SELECT cid, name FROM pragma_index_info(?1) ORDER BY seqno")
            .map_err(&err)?;
        let cols: Vec<(i64, Option<String>)> = stmt
            .query_map([&index], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(&err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(&err)?;
        let plain = !partial && cols.iter().all(|(cid, n)| *cid >= 0 && n.is_some());
        indexes.push(Index {
            auto: origin == "u",
            name: index,
            unique,
            columns: plain.then(|| cols.into_iter().filter_map(|(_, n)| n).collect()),
        });
    }

    Ok(Table {
        name: name.to_owned(),
        columns,
        primary_key,
        without_rowid,
        foreign_keys: foreign_keys.into_values().collect(),
        indexes,
    })
}

/// Names foreign keys by the exact names of their parent table and
/// columns (SQLite matches them case-insensitively), and fills in the
/// parent's primary key where the declaration names no columns.
fn resolve_foreign_keys(tables: &mut [Table]) {
    let parents: Vec<(String, Vec<String>, Vec<String>)> = tables
        .iter()
        .map(|t| {
            let cols = t.columns.iter().map(|c| c.name.clone()).collect();
            (t.name.clone(), t.primary_key.clone(), cols)
        })
        .collect();
    for t in tables.iter_mut() {
        for fk in &mut t.foreign_keys {
            let parent = parents.iter().find(|p| p.0 == fk.parent).or_else(|| {
                parents
                    .iter()
                    .find(|p| p.0.eq_ignore_ascii_case(&fk.parent))
            });
            let Some((pname, pkey, pcols)) = parent else {
                continue;
            };
            fk.parent = pname.clone();
            if fk.parent_columns.is_empty() {
                fk.parent_columns = pkey.clone();
            } else {
                for c in &mut fk.parent_columns {
                    if let Some(exact) = pcols.iter().find(|p| p.eq_ignore_ascii_case(c)) {
                        c.clone_from(exact);
                    }
                }
            }
        }
    }
}

/// Parents before children (a stable topological order by name); a cycle
/// is broken at the alphabetically first table of it.
fn fk_order(tables: Vec<Table>) -> Vec<Table> {
    let names: BTreeSet<String> = tables.iter().map(|t| t.name.clone()).collect();
    let mut pending: BTreeMap<String, Table> =
        tables.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .find(|(name, t)| {
                t.foreign_keys.iter().all(|fk| {
                    &fk.parent == *name || done.contains(&fk.parent) || !names.contains(&fk.parent)
                })
            })
            .map(|(name, _)| name.clone());
        let next = ready.or_else(|| pending.keys().next().cloned());
        let Some(next) = next else { break };
        if let Some(t) = pending.remove(&next) {
            done.insert(next);
            out.push(t);
        }
    }
    out
}

/// `SELECT count(*)` of a table.
pub fn count_rows(conn: &Connection, table: &str, path: &str) -> Result<u64> {
    let n: i64 = conn
        .query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| {
            r.get(0)
        })
        .map_err(sqlite_err(path))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Rows of `table` that break each of its foreign keys, by the key's id
/// (`pragma_foreign_key_check`); `Err` with SQLite's message when the
/// check itself cannot run (e.g. the parent key is not unique).
pub fn fk_violations(
    conn: &Connection,
    table: &str,
) -> std::result::Result<BTreeMap<i64, u64>, String> {
    let mut stmt = conn
        .prepare("SELECT fkid, count(*) FROM pragma_foreign_key_check(?1) GROUP BY fkid")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([table], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for r in rows {
        let (id, n) = r.map_err(|e| e.to_string())?;
        out.insert(id, u64::try_from(n).unwrap_or(0));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(sql: &str) -> Schema {
        let conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(sql).unwrap_or_else(|e| panic!("{e}"));
        read_schema(&conn, ":memory:").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parents_come_before_children_and_names_resolve() {
        let s = schema(
            "CREATE TABLE \"Order Lines\"(o INTEGER REFERENCES orders, p TEXT REFERENCES Products(SKU), PRIMARY KEY(o, p));
             CREATE TABLE orders(id INTEGER PRIMARY KEY, c INTEGER REFERENCES customers(id));
             CREATE TABLE customers(id INTEGER PRIMARY KEY, parent INTEGER REFERENCES customers(id));
             CREATE TABLE products(sku TEXT PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE loose(a, b);
             CREATE VIEW v AS SELECT * FROM orders;",
        );
        let names: Vec<&str> = s.tables.iter().map(|t| t.name.as_str()).collect();
        let pos = |n: &str| names.iter().position(|x| *x == n).unwrap_or(usize::MAX);
        assert!(pos("customers") < pos("orders"));
        assert!(pos("orders") < pos("Order Lines"));
        assert!(pos("products") < pos("Order Lines"));
        let lines = s.table("order lines").unwrap_or_else(|| panic!("no table"));
        assert_eq!(lines.primary_key, vec!["o", "p"]);
        let fk_p = lines.foreign_keys.iter().find(|f| f.parent == "products");
        assert_eq!(
            fk_p.map(|f| f.parent_columns.clone()),
            Some(vec!["sku".to_owned()])
        );
        let fk_o = lines.foreign_keys.iter().find(|f| f.parent == "orders");
        assert_eq!(
            fk_o.map(|f| f.parent_columns.clone()),
            Some(vec!["id".to_owned()])
        );
        assert!(s.table("products").is_some_and(|t| t.without_rowid));
        assert!(s.table("loose").is_some_and(Table::rowid_keyed));
        assert_eq!(s.skipped.len(), 1);
    }
}

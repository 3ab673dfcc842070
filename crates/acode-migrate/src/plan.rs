//! How one source table is copied: its target columns and their types,
//! its key, how chunks are bounded on both sides, and the SQL of each
//! step. Built from the source schema, the measured values and, when it
//! exists, the target table (whose types then rule).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::MigrateError;
use crate::ident::{PG_MAX_IDENT, quote};
use crate::rowhash;
use crate::schema::Table;
use crate::stats::{ColumnStats, fits_existing, map_column};
use crate::target::Existing;
use crate::value::{Cell, Kind, SqlValue, convert, convert_ref, hash_of};

/// The target column that holds the rowid of a source table without a
/// declared primary key.
pub const ROWID_COLUMN: &str = "acode_rowid";

/// `--uuid-map TABLE.COL` entries, resolved: (table, column) → namespace.
pub type UuidMaps = BTreeMap<(String, String), String>;

#[derive(Clone, Debug, Serialize)]
pub struct PlanColumn {
    pub name: String,
    /// Declared source type ("rowid" for the rowid column).
    pub declared: String,
    pub kind: Kind,
    #[serde(skip)]
    pub not_null: bool,
    /// Position in the source select list.
    #[serde(skip)]
    pub source: usize,
    /// Holds UUIDs derived from legacy integer keys in this namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid_namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Clone, Debug)]
pub struct TablePlan {
    pub table: Table,
    /// `"schema"."name"` of the target table.
    pub qualified: String,
    pub columns: Vec<PlanColumn>,
    /// Indexes into `columns` of the key, in key order.
    pub key: Vec<usize>,
    /// The rowid alias selected first, for tables keyed by rowid.
    pub rowid_alias: Option<&'static str>,
    /// Whether key ranges sort the same on both sides; if not, the table is
    /// compared as one chunk.
    pub chunkable: bool,
    /// The table's own key is mapped to UUIDs: chunks are bounded by the
    /// legacy key through `migration_mappings`.
    pub uuid_key: Option<(String, String)>,
    pub exists: bool,
    pub created_by_acode: bool,
    /// The schema the target table lives in.
    pub schema: String,
    /// The table's first load is not finished: it has no primary key,
    /// indexes or foreign keys yet and is copied straight, without
    /// comparing (see [`crate::engine`]).
    pub loading: bool,
    /// The table keeps each row's hash in the hidden column
    /// [`rowhash::COLUMN`], which acode's writes fill.
    pub stored_hash: bool,
    /// The triggers that keep that column right for other writers are in
    /// place, so a comparison may read it.
    pub hash_kept: bool,
    /// Reported by analyze; run refuses the table when `blocker` is set.
    pub problems: Vec<String>,
    pub blocker: Option<String>,
    pub incompatible: bool,
    /// The source's rows as the measuring scan counted them; `None` when
    /// no column was measured.
    pub counted_rows: Option<u64>,
    /// How a run with change tracking treats the table.
    pub tracking: Option<crate::track::Tracking>,
}

pub fn build(
    table: &Table,
    stats: &[ColumnStats],
    existing: Option<&Existing>,
    uuid_maps: &UuidMaps,
    schema: &str,
    trust_target: bool,
) -> TablePlan {
    let qualified = crate::ident::qualified(schema, &table.name);
    // A table acode created whose first load did not finish has no key
    // yet: it is loaded again, not refused.
    let loading = existing.is_some_and(|e| e.created_by_acode && e.loading);
    let mut problems = Vec::new();
    let mut blocker: Option<String> = None;
    let mut incompatible = false;
    let rowid_alias = if table.rowid_keyed() {
        table.rowid_alias()
    } else {
        None
    };
    let offset = usize::from(rowid_alias.is_some());
    let mut columns = Vec::new();
    if table.rowid_keyed() {
        if rowid_alias.is_none() {
            blocker = Some(
                "no primary key, and columns named rowid, _rowid_ and oid hide the rowid".into(),
            );
        }
        if table.column(ROWID_COLUMN).is_some() {
            blocker = Some(format!(
                "no primary key and a column named {ROWID_COLUMN}, the name acode gives the rowid"
            ));
        }
        columns.push(PlanColumn {
            name: ROWID_COLUMN.into(),
            declared: "rowid".into(),
            kind: Kind::Int8,
            not_null: true,
            source: 0,
            uuid_namespace: None,
            note: Some("the table has no primary key: its rowid is kept as the key".into()),
            problem: None,
        });
    }
    if table.name.len() > PG_MAX_IDENT {
        blocker = Some(format!(
            "the name is longer than PostgreSQL's {PG_MAX_IDENT} bytes"
        ));
    }
    let default_stats = ColumnStats::default();
    for (i, col) in table.columns.iter().enumerate() {
        let s = stats.get(i).unwrap_or(&default_stats);
        let mut m = map_column(col, s);
        if col.name.len() > PG_MAX_IDENT {
            blocker = Some(format!(
                "column {:?} is longer than PostgreSQL's {PG_MAX_IDENT} bytes",
                col.name
            ));
        }
        let mut ns = uuid_maps
            .get(&(table.name.clone(), col.name.clone()))
            .cloned();
        if ns.is_none() {
            for fk in &table.foreign_keys {
                if let Some(pos) = fk
                    .columns
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case(&col.name))
                    && let Some(pcol) = fk.parent_columns.get(pos)
                    && let Some(parent_ns) = uuid_maps.get(&(fk.parent.clone(), pcol.clone()))
                {
                    ns = Some(parent_ns.clone());
                }
            }
        }
        if let Some(ns) = &ns {
            if s.reals + s.texts + s.blobs > 0 {
                blocker = Some(format!(
                    "column {:?} maps to UUIDs ({ns}) but holds values that are not integers",
                    col.name
                ));
            }
            m.kind = Kind::Uuid;
            m.note = Some(format!("legacy integer keys mapped to UUIDs ({ns})"));
            m.problem = None;
        }
        if let Some(p) = &m.problem {
            problems.push(format!("column {:?}: {p}", col.name));
        }
        let mut kind = m.kind;
        if let Some(ex) = existing {
            match ex.column(&col.name) {
                None => {
                    incompatible = true;
                    blocker = Some(format!("the target table has no column {:?}", col.name));
                }
                Some(tc) => match tc.kind {
                    None => {
                        incompatible = true;
                        blocker = Some(format!(
                            "column {:?} is {} in the target, a type acode does not copy into",
                            col.name, tc.typname
                        ));
                    }
                    Some(have)
                        if have != m.kind
                            && (ns.is_some()
                                || (!trust_target && !fits_existing(m.kind, have, s))) =>
                    {
                        incompatible = true;
                        blocker = Some(format!(
                            "column {:?} is {} in the target but its values need {}",
                            col.name,
                            tc.typname,
                            m.kind.ddl()
                        ));
                    }
                    Some(have) => kind = have,
                },
            }
        }
        columns.push(PlanColumn {
            name: col.name.clone(),
            declared: col.declared.clone(),
            kind,
            not_null: col.not_null || col.pk > 0,
            source: i + offset,
            uuid_namespace: ns,
            note: m.note,
            problem: m.problem,
        });
    }
    let key: Vec<usize> = if table.rowid_keyed() {
        vec![0]
    } else {
        table
            .primary_key
            .iter()
            .filter_map(|k| columns.iter().position(|c| &c.name == k))
            .collect()
    };
    let key_names: Vec<String> = key.iter().map(|&i| columns[i].name.clone()).collect();
    if let Some(ex) = existing {
        if table.rowid_keyed() && ex.column(ROWID_COLUMN).is_none() {
            incompatible = true;
            blocker = Some(format!(
                "the source has no primary key and the target table has no {ROWID_COLUMN} column to key it by"
            ));
        }
        if !ex.has_unique_key(&key_names) && !loading {
            incompatible = true;
            blocker = Some(format!(
                "no primary key or unique index on ({})",
                key_names.join(", ")
            ));
        }
        for tc in &ex.columns {
            if tc.not_null && !tc.has_default && !columns.iter().any(|c| c.name == tc.name) {
                incompatible = true;
                blocker = Some(format!(
                    "target column {:?} is NOT NULL without a default and has no source",
                    tc.name
                ));
            }
        }
    }
    let chunkable = table.rowid_keyed()
        || table.primary_key.iter().all(|k| {
            table
                .columns
                .iter()
                .position(|c| &c.name == k)
                .and_then(|i| stats.get(i))
                .is_none_or(|s| {
                    let classes = [s.integers, s.reals, s.texts, s.blobs]
                        .iter()
                        .filter(|n| **n > 0)
                        .count();
                    classes <= 1 && s.bad_texts == 0 && s.nulls == 0
                })
        });
    // A key column holding UUIDs derived from a parent's legacy keys sorts
    // differently on the two sides.
    let derived_key = key.iter().any(|&i| {
        columns[i].uuid_namespace.is_some()
            && !uuid_maps.contains_key(&(table.name.clone(), columns[i].name.clone()))
    });
    // Key ranges are compared on both sides, so the key must sort the same
    // way in SQLite and in the target column: numbers as numbers, text and
    // blobs as bytes. Integer ids in an existing text key column do not
    // (2 < 10, "2" > "10"): such a table is compared as one chunk, or a
    // range would count rows of another range as extra and delete them.
    let order_kept = key.iter().all(|&k| {
        let c = &columns[k];
        let Some(s) = table
            .columns
            .iter()
            .position(|tc| tc.name == c.name)
            .and_then(|i| stats.get(i))
        else {
            return true; // the rowid: an integer on both sides
        };
        let numeric = matches!(
            c.kind,
            Kind::Int8 | Kind::Int4 | Kind::Int2 | Kind::Float8 | Kind::Bool
        );
        (s.integers + s.reals == 0 || numeric)
            && (s.texts == 0 || c.kind.is_texty() || c.kind == Kind::Bytea)
            && (s.blobs == 0 || c.kind == Kind::Bytea)
    });
    let chunkable = chunkable && !derived_key && order_kept;
    if !chunkable {
        problems.push("key values of mixed types, NULL, sorting differently in the target, or mapped to UUIDs through a parent: compared as one chunk".into());
    }
    let uuid_key = match key.as_slice() {
        [k] => columns[*k]
            .uuid_namespace
            .as_ref()
            .filter(|ns| {
                uuid_maps.contains_key(&(table.name.clone(), columns[*k].name.clone()))
                    && !ns.is_empty()
            })
            .map(|_| (table.name.clone(), columns[*k].name.clone())),
        _ => None,
    };
    let mut plan = TablePlan {
        table: table.clone(),
        qualified,
        columns,
        key,
        rowid_alias,
        chunkable,
        uuid_key,
        exists: existing.is_some(),
        created_by_acode: existing.is_some_and(|e| e.created_by_acode),
        schema: schema.to_owned(),
        loading,
        stored_hash: false,
        hash_kept: false,
        problems,
        blocker,
        incompatible,
        counted_rows: None,
        tracking: None,
    };
    if let Some(ex) = existing
        && ex.created_by_acode
        && rowhash::possible(&plan)
        && ex
            .column(rowhash::COLUMN)
            .is_some_and(|c| c.kind == Some(Kind::Int8))
    {
        plan.stored_hash = true;
        plan.hash_kept = rowhash::kept(&plan, &ex.triggers);
    }
    plan
}

/// One source row, converted.
#[derive(Clone, Debug)]
pub struct Row {
    /// The source key values (for checkpoints).
    pub source_key: Vec<SqlValue>,
    /// The key as the target compares it (the legacy integer for
    /// UUID-mapped tables).
    pub match_key: Vec<Cell>,
    pub cells: Vec<Cell>,
    pub hash: u64,
}

impl TablePlan {
    pub fn name(&self) -> &str {
        &self.table.name
    }

    pub fn error(&self) -> Option<MigrateError> {
        let detail = self.blocker.clone()?;
        Some(if self.incompatible {
            MigrateError::IncompatibleTarget {
                table: self.table.name.clone(),
                detail,
            }
        } else {
            MigrateError::UnsupportedSource {
                table: self.table.name.clone(),
                detail,
            }
        })
    }

    pub fn key_names(&self) -> Vec<String> {
        self.key
            .iter()
            .map(|&i| self.columns[i].name.clone())
            .collect()
    }

    fn source_key_exprs(&self) -> Vec<String> {
        if let Some(alias) = self.rowid_alias {
            return vec![alias.to_owned()];
        }
        self.key
            .iter()
            .map(|&i| {
                let c = &self.columns[i];
                if c.kind.is_texty() || c.kind == Kind::Bytea {
                    format!("{} COLLATE BINARY", quote(&c.name))
                } else {
                    quote(&c.name)
                }
            })
            .collect()
    }

    /// The SQLite query of all rows in key order, after `?…` when resuming.
    pub fn source_select(&self, resume: bool) -> String {
        let mut list: Vec<String> = Vec::new();
        if let Some(alias) = self.rowid_alias {
            list.push(alias.to_owned());
        }
        list.extend(self.table.columns.iter().map(|c| quote(&c.name)));
        let keys = self.source_key_exprs();
        let mut sql = format!(
            "SELECT {} FROM {}",
            list.join(", "),
            quote(&self.table.name)
        );
        if resume && self.chunkable {
            let params: Vec<String> = (1..=keys.len()).map(|i| format!("?{i}")).collect();
            sql.push_str(&format!(
                " WHERE ({}) > ({})",
                keys.join(", "),
                params.join(", ")
            ));
        }
        if self.chunkable {
            sql.push_str(&format!(" ORDER BY {}", keys.join(", ")));
        }
        sql
    }

    /// Converts one selected source row.
    pub fn convert_row(
        &self,
        values: Vec<SqlValue>,
        buf: &mut Vec<u8>,
    ) -> Result<Row, MigrateError> {
        self.convert_row_hashed(values, buf, true)
    }

    /// Converts one selected source row; its hash is left 0 unless
    /// `hashed`.
    pub fn convert_row_hashed(
        &self,
        values: Vec<SqlValue>,
        buf: &mut Vec<u8>,
        hashed: bool,
    ) -> Result<Row, MigrateError> {
        let source_key: Vec<SqlValue> = self
            .key
            .iter()
            .map(|&i| values[self.columns[i].source].clone())
            .collect();
        self.build_row(|i| Ok(values[i].as_ref()), source_key, buf, hashed)
    }

    /// [`TablePlan::convert_row_hashed`] of a row as SQLite hands it out
    /// (a row of [`TablePlan::source_select`]): each value is converted
    /// from the row itself, without an owned copy first.
    pub fn convert_source_row(
        &self,
        r: &rusqlite::Row<'_>,
        buf: &mut Vec<u8>,
        hashed: bool,
        path: &str,
    ) -> Result<Row, MigrateError> {
        let err = |e| MigrateError::source(path, e);
        let source_key = self.source_key_of(r).map_err(err)?;
        self.build_row(|i| r.get_ref(i).map_err(err), source_key, buf, hashed)
    }

    fn build_row<'v>(
        &self,
        value: impl Fn(usize) -> Result<rusqlite::types::ValueRef<'v>, MigrateError>,
        source_key: Vec<SqlValue>,
        buf: &mut Vec<u8>,
        hashed: bool,
    ) -> Result<Row, MigrateError> {
        buf.clear();
        let mut cells = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let cell = convert_ref(value(c.source)?, c.kind, c.uuid_namespace.as_deref()).map_err(
                |detail| MigrateError::ValueMisfit {
                    table: self.table.name.clone(),
                    column: c.name.clone(),
                    key: key_text(&source_key),
                    detail,
                },
            )?;
            if hashed {
                cell.encode(buf);
            }
            cells.push(cell.into_owned());
        }
        let match_key = match (&self.uuid_key, source_key.first()) {
            (Some(_), Some(SqlValue::Int(i))) => vec![Cell::Int(*i)],
            _ => self.key.iter().map(|&i| cells[i].clone()).collect(),
        };
        let hash = if hashed { hash_of(buf) } else { 0 };
        Ok(Row {
            source_key,
            match_key,
            cells,
            hash,
        })
    }

    /// The source key of a row of [`TablePlan::source_select`].
    pub fn source_key_of(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<SqlValue>> {
        self.key
            .iter()
            .map(|&i| r.get_ref(self.columns[i].source).map(SqlValue::from_ref))
            .collect()
    }

    /// Appends a row of [`TablePlan::source_select`] to `out` as one tuple
    /// of a binary COPY into the table ([`TablePlan::write_columns`]), its
    /// row hash computed on the way when the table keeps one: what
    /// [`TablePlan::convert_row_hashed`] and a COPY of its cells write,
    /// without keeping the values. `canonical` is scratch space.
    pub fn encode_copy_row(
        &self,
        r: &rusqlite::Row<'_>,
        out: &mut bytes::BytesMut,
        canonical: &mut Vec<u8>,
        path: &str,
    ) -> Result<(), MigrateError> {
        use bytes::BufMut;
        use tokio_postgres::types::{IsNull, ToSql};
        let misfit = |column: &str, detail: String| MigrateError::ValueMisfit {
            table: self.table.name.clone(),
            column: column.to_owned(),
            key: self
                .source_key_of(r)
                .map_or_else(|e| e.to_string(), |k| key_text(&k)),
            detail,
        };
        let fields = self.columns.len() + usize::from(self.stored_hash);
        out.put_i16(i16::try_from(fields).unwrap_or(i16::MAX));
        canonical.clear();
        for c in &self.columns {
            let v = r
                .get_ref(c.source)
                .map_err(|e| MigrateError::source(path, e))?;
            let cell = convert_ref(v, c.kind, c.uuid_namespace.as_deref())
                .map_err(|detail| misfit(&c.name, detail))?;
            if self.stored_hash {
                cell.encode(canonical);
            }
            let at = out.len();
            out.put_i32(0);
            match cell.to_sql(&c.kind.pg_type(), out) {
                Ok(IsNull::Yes) => out[at..at + 4].copy_from_slice(&(-1i32).to_be_bytes()),
                Ok(IsNull::No) => {
                    let len = i32::try_from(out.len() - at - 4)
                        .map_err(|_| misfit(&c.name, "a value larger than 2 GiB".to_owned()))?;
                    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
                }
                Err(e) => return Err(misfit(&c.name, e.to_string())),
            }
        }
        if self.stored_hash {
            out.put_i32(8);
            out.put_u64(hash_of(canonical));
        }
        Ok(())
    }

    /// The SQLite query of the row with a given key (`?1…`).
    pub fn source_select_by_key(&self) -> String {
        let mut list: Vec<String> = Vec::new();
        if let Some(alias) = self.rowid_alias {
            list.push(alias.to_owned());
        }
        list.extend(self.table.columns.iter().map(|c| quote(&c.name)));
        let conds: Vec<String> = self
            .source_key_exprs()
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} = ?{}", i + 1))
            .collect();
        format!(
            "SELECT {} FROM {} WHERE {}",
            list.join(", "),
            quote(&self.table.name),
            conds.join(" AND ")
        )
    }

    /// The target key columns' values for a source key.
    pub fn target_key_of(&self, source_key: &[SqlValue]) -> Result<Vec<Cell>, MigrateError> {
        self.key
            .iter()
            .zip(source_key)
            .map(|(&i, v)| {
                let c = &self.columns[i];
                convert(v, c.kind, c.uuid_namespace.as_deref()).map_err(|detail| {
                    MigrateError::ValueMisfit {
                        table: self.table.name.clone(),
                        column: c.name.clone(),
                        key: key_text(source_key),
                        detail,
                    }
                })
            })
            .collect()
    }

    /// The match key of a source key (for resuming from a checkpoint).
    pub fn match_key_of(&self, source_key: &[SqlValue]) -> Result<Vec<Cell>, MigrateError> {
        if self.uuid_key.is_some() {
            return match source_key.first() {
                Some(SqlValue::Int(i)) => Ok(vec![Cell::Int(*i)]),
                _ => Err(MigrateError::invalid(
                    "checkpoint",
                    "a UUID-mapped key that is not an integer",
                )),
            };
        }
        self.target_key_of(source_key)
    }

    pub fn quoted_columns(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The columns acode writes: the plan's, and the hidden hash column.
    pub fn write_columns(&self) -> String {
        let mut cols = self.quoted_columns();
        if self.stored_hash {
            cols.push_str(", ");
            cols.push_str(&quote(rowhash::COLUMN));
        }
        cols
    }

    pub fn quoted_key(&self) -> String {
        self.key_names()
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `FROM` clause of target reads; the UUID-mapped join takes `$1`
    /// (table) and `$2` (column).
    fn target_from(&self) -> String {
        match &self.uuid_key {
            Some(_) => format!(
                "{} AS t JOIN acode_migrate.migration_mappings AS m ON m.table_name = $1 AND m.column_name = $2 AND m.uuid = t.{}",
                self.qualified,
                quote(&self.columns[self.key[0]].name)
            ),
            None => format!("{} AS t", self.qualified),
        }
    }

    /// Expressions of the match key on the target.
    fn target_key_exprs(&self) -> Vec<String> {
        match &self.uuid_key {
            Some(_) => vec!["m.legacy_key".into()],
            None => self
                .key
                .iter()
                .map(|&i| {
                    let c = &self.columns[i];
                    c.kind.order_sql(&format!("t.{}", quote(&c.name)))
                })
                .collect(),
        }
    }

    /// Number of parameters before the range bounds.
    pub fn fixed_params(&self) -> usize {
        if self.uuid_key.is_some() { 2 } else { 0 }
    }

    fn range_where(&self, lo: bool, hi: bool) -> String {
        if !self.chunkable {
            return String::new();
        }
        let keys = self.target_key_exprs();
        let n = keys.len();
        let tuple = |exprs: &[String]| {
            if exprs.len() == 1 {
                exprs[0].clone()
            } else {
                format!("ROW({})", exprs.join(", "))
            }
        };
        let mut next = self.fixed_params() + 1;
        let mut params = |count: usize| {
            let p: Vec<String> = (next..next + count).map(|i| format!("${i}")).collect();
            next += count;
            p
        };
        let mut conds = Vec::new();
        if lo {
            conds.push(format!("{} > {}", tuple(&keys), tuple(&params(n))));
        }
        if hi {
            conds.push(format!("{} <= {}", tuple(&keys), tuple(&params(n))));
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    }

    /// The row hash computed from the values of the row `row` (`t.`,
    /// `NEW.`): the first 8 bytes of SHA-256 over the canonical encoding,
    /// as a bigint.
    pub fn hash_value_sql(&self, row: &str) -> String {
        let parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| c.kind.hash_sql(&format!("{row}{}", quote(&c.name))))
            .collect();
        format!(
            "('x' || encode(substr(sha256({}), 1, 8), 'hex'))::bit(64)::bigint",
            parts.join(" || ")
        )
    }

    /// The row hash of target row `t`: read from the hidden column when
    /// `stored` (computed if a row holds none), else computed.
    fn hash_expr(&self, stored: bool) -> String {
        if stored && self.stored_hash {
            format!(
                "COALESCE(t.{}, {})",
                quote(rowhash::COLUMN),
                self.hash_value_sql("t.")
            )
        } else {
            self.hash_value_sql("t.")
        }
    }

    /// The row hashes of a key range, as one `bigint[]`.
    pub fn hash_list_sql(&self, lo: bool, hi: bool, stored: bool) -> String {
        format!(
            "SELECT COALESCE(array_agg({}), '{{}}') FROM {}{}",
            self.hash_expr(stored),
            self.target_from(),
            self.range_where(lo, hi)
        )
    }

    /// Match key and row hash of the rows of a key range whose hash is one
    /// of the last parameter's (a `bigint[]`).
    pub fn rows_with_hashes_sql(&self, lo: bool, hi: bool, stored: bool) -> String {
        let nkey = if self.uuid_key.is_some() {
            1
        } else {
            self.key.len()
        };
        let bounds = usize::from(lo) * nkey + usize::from(hi) * nkey;
        let names: Vec<String> = (0..nkey).map(|i| format!("k{i}")).collect();
        format!(
            "SELECT * FROM ({}) AS s({}, h) WHERE s.h IN (SELECT unnest(${}::bigint[]))",
            self.hashes_sql(lo, hi, stored),
            names.join(", "),
            self.fixed_params() + bounds + 1
        )
    }

    /// Deletes the target rows after the key bound `$…` (all rows when
    /// `lo` is false).
    pub fn delete_rest_sql(&self, lo: bool) -> String {
        if lo {
            format!(
                "DELETE FROM {} WHERE ctid IN (SELECT t.ctid FROM {}{})",
                self.qualified,
                self.target_from(),
                self.range_where(true, false)
            )
        } else {
            format!("DELETE FROM {}", self.qualified)
        }
    }

    /// Match key and row hash of every row of a key range.
    pub fn hashes_sql(&self, lo: bool, hi: bool, stored: bool) -> String {
        let keys: Vec<String> = match &self.uuid_key {
            Some(_) => vec!["m.legacy_key".into()],
            None => self
                .key
                .iter()
                .map(|&i| format!("t.{}", quote(&self.columns[i].name)))
                .collect(),
        };
        format!(
            "SELECT {}, {} FROM {}{}",
            keys.join(", "),
            self.hash_expr(stored),
            self.target_from(),
            self.range_where(lo, hi)
        )
    }

    /// All columns of the rows with these keys (`$…` per key column).
    pub fn select_by_key_sql(&self) -> String {
        let conds: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(n, &i)| format!("t.{} = ${}", quote(&self.columns[i].name), n + 1))
            .collect();
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("t.{}", quote(&c.name)))
            .collect();
        format!(
            "SELECT {} FROM {} AS t WHERE {}",
            cols.join(", "),
            self.qualified,
            conds.join(" AND ")
        )
    }

    pub fn merge_sql(&self) -> String {
        let cols = self.write_columns();
        let mut nonkey: Vec<&str> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.key.contains(i))
            .map(|(_, c)| c.name.as_str())
            .collect();
        if self.stored_hash {
            nonkey.push(rowhash::COLUMN);
        }
        let action = if nonkey.is_empty() {
            "DO NOTHING".to_owned()
        } else {
            let sets: Vec<String> = nonkey
                .iter()
                .map(|c| format!("{0} = EXCLUDED.{0}", quote(c)))
                .collect();
            let old: Vec<String> = nonkey.iter().map(|c| format!("t.{}", quote(c))).collect();
            let new: Vec<String> = nonkey
                .iter()
                .map(|c| format!("EXCLUDED.{}", quote(c)))
                .collect();
            format!(
                "DO UPDATE SET {} WHERE ROW({}) IS DISTINCT FROM ROW({})",
                sets.join(", "),
                old.join(", "),
                new.join(", ")
            )
        };
        format!(
            "INSERT INTO {} AS t ({cols}) SELECT {cols} FROM pg_temp.acode_stage ON CONFLICT ({}) {action}",
            self.qualified,
            self.quoted_key()
        )
    }

    pub fn delete_sql(&self) -> String {
        let conds: Vec<String> = self
            .key_names()
            .iter()
            .map(|k| format!("t.{0} = d.{0}", quote(k)))
            .collect();
        format!(
            "DELETE FROM {} AS t USING pg_temp.acode_stage_del AS d WHERE {}",
            self.qualified,
            conds.join(" AND ")
        )
    }

    /// The binary COPY into the staging table the merge reads.
    pub fn stage_copy_sql(&self) -> String {
        format!(
            "COPY pg_temp.acode_stage ({}) FROM STDIN (FORMAT binary)",
            self.write_columns()
        )
    }

    pub fn stage_sql(&self) -> String {
        format!(
            "DROP TABLE IF EXISTS pg_temp.acode_stage; DROP TABLE IF EXISTS pg_temp.acode_stage_del;
             CREATE TEMP TABLE acode_stage (LIKE {0} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
             CREATE TEMP TABLE acode_stage_del ON COMMIT DELETE ROWS AS SELECT {1} FROM {0} WITH NO DATA",
            self.qualified,
            self.quoted_key()
        )
    }
}

/// A key as text for messages: `42`, or `(1, "a")` for composite keys.
pub fn key_text(key: &[SqlValue]) -> String {
    match key {
        [one] => one.display(),
        many => format!(
            "({})",
            many.iter()
                .map(SqlValue::display)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

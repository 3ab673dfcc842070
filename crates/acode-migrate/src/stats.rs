//! What the values of each source column really are (SQLite types are
//! loose: an INTEGER column may hold `'abc'`), measured by one scan per
//! table, and the PostgreSQL type each column maps to.
//!
//! The rule: a column maps to the PostgreSQL type of its declared type
//! when every stored value fits it; when some do not, the column falls
//! back to a type that holds them all without loss (`text`, or `bytea`
//! when blobs or text that PostgreSQL cannot store are present) and the
//! values that did not fit are reported as a problem. Nothing is silently
//! converted into something else. Dates keep the form they are stored in
//! (text stays text, numbers stay numbers), and the decision is noted.

use rusqlite::Connection;
use serde::Serialize;

use crate::error::{MigrateError, Result};
use crate::ident::quote;
use crate::schema::{Column, Table};
use crate::value::{Kind, MAX_EXACT_F64_INT};

#[derive(Clone, Debug, Default, Serialize)]
pub struct ColumnStats {
    pub nulls: u64,
    pub integers: u64,
    pub reals: u64,
    pub texts: u64,
    pub blobs: u64,
    /// Text values that are not UTF-8 or contain NUL.
    pub bad_texts: u64,
    /// Integers outside ±2^53 (not exact as a double).
    pub big_integers: u64,
    /// Integers other than 0 and 1.
    pub non_boolean_integers: u64,
    pub min_integer: Option<i64>,
    pub max_integer: Option<i64>,
}

impl ColumnStats {
    fn classes(&self) -> usize {
        [self.integers, self.reals, self.texts, self.blobs]
            .iter()
            .filter(|n| **n > 0)
            .count()
    }
}

/// The columns of a table as one scan measured them.
pub struct Measured {
    pub columns: Vec<ColumnStats>,
    /// The rows the scan read; `None` when no column was measured (no scan).
    pub rows: Option<u64>,
}

/// Measures the columns of `table` in one scan: all of them, or only
/// those named in `only` (the others get empty stats). The values are
/// read and classified here rather than by SQL aggregates, which cost
/// SQLite about ten expressions per value.
pub fn measure(
    conn: &Connection,
    table: &Table,
    path: &str,
    only: Option<&[String]>,
) -> Result<Measured> {
    let picked: Vec<usize> = (0..table.columns.len())
        .filter(|&i| only.is_none_or(|o| o.contains(&table.columns[i].name)))
        .collect();
    let mut out = vec![ColumnStats::default(); table.columns.len()];
    if picked.is_empty() {
        return Ok(Measured {
            columns: out,
            rows: None,
        });
    }
    let list: Vec<String> = picked
        .iter()
        .map(|&i| quote(&table.columns[i].name))
        .collect();
    let sql = format!("SELECT {} FROM {}", list.join(", "), quote(&table.name));
    let fail = |e: rusqlite::Error| {
        MigrateError::source(path, format!("measuring table {}: {e}", table.name))
    };
    let mut stmt = conn.prepare(&sql).map_err(fail)?;
    let mut rows = stmt.query([]).map_err(fail)?;
    let mut count = 0;
    while let Some(r) = rows.next().map_err(fail)? {
        count += 1;
        for (pos, &i) in picked.iter().enumerate() {
            out[i].add(r.get_ref(pos).map_err(fail)?);
        }
    }
    Ok(Measured {
        columns: out,
        rows: Some(count),
    })
}

impl ColumnStats {
    /// Counts one value.
    fn add(&mut self, v: rusqlite::types::ValueRef<'_>) {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => self.nulls += 1,
            ValueRef::Integer(i) => {
                self.integers += 1;
                if !(-MAX_EXACT_F64_INT..=MAX_EXACT_F64_INT).contains(&i) {
                    self.big_integers += 1;
                }
                if i != 0 && i != 1 {
                    self.non_boolean_integers += 1;
                }
                self.min_integer = Some(self.min_integer.map_or(i, |m| m.min(i)));
                self.max_integer = Some(self.max_integer.map_or(i, |m| m.max(i)));
            }
            ValueRef::Real(_) => self.reals += 1,
            ValueRef::Text(t) => {
                self.texts += 1;
                if t.contains(&0) || std::str::from_utf8(t).is_err() {
                    self.bad_texts += 1;
                }
            }
            ValueRef::Blob(_) => self.blobs += 1,
        }
    }
}

/// SQLite's type affinity of a declared type (its §3.1 rules, in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

pub fn affinity(declared: &str) -> Affinity {
    let d = declared.to_ascii_uppercase();
    if d.contains("INT") {
        Affinity::Integer
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        Affinity::Text
    } else if d.contains("BLOB") || d.trim().is_empty() {
        Affinity::Blob
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// The PostgreSQL type chosen for a column, with why.
#[derive(Clone, Debug, Serialize)]
pub struct Mapping {
    pub kind: Kind,
    /// A decision worth knowing (dates kept as stored, NUMERIC as double).
    pub note: Option<String>,
    /// Values that do not fit the declared type, and what was done.
    pub problem: Option<String>,
}

fn is_date_like(declared: &str) -> bool {
    let d = declared.to_ascii_uppercase();
    d.contains("DATE") || d.contains("TIME")
}

/// Maps one column (pure: declared type and measured values in, type out).
pub fn map_column(col: &Column, s: &ColumnStats) -> Mapping {
    let declared = if col.declared.is_empty() {
        "(none)"
    } else {
        col.declared.as_str()
    };
    let aff = affinity(&col.declared);
    let is_bool = col.declared.to_ascii_uppercase().contains("BOOL");
    let date = is_date_like(&col.declared);
    let ok = |kind: Kind| Mapping {
        kind,
        note: None,
        problem: None,
    };
    let noted = |kind: Kind, note: String| Mapping {
        kind,
        note: Some(note),
        problem: None,
    };
    let fallback = |kind: Kind, problem: String| Mapping {
        kind,
        note: None,
        problem: Some(problem),
    };

    if s.blobs > 0 || s.bad_texts > 0 {
        if s.classes() == 1 && s.blobs > 0 {
            return ok(Kind::Bytea);
        }
        let mut what = Vec::new();
        if s.blobs > 0 {
            what.push(format!("{} blob(s)", s.blobs));
        }
        if s.bad_texts > 0 {
            what.push(format!(
                "{} text value(s) that are not UTF-8 or contain NUL",
                s.bad_texts
            ));
        }
        return fallback(
            Kind::Bytea,
            format!(
                "{} in a column declared {declared}: copied as bytea (text as its bytes, numbers as their decimal text)",
                what.join(" and ")
            ),
        );
    }
    if s.texts > 0 {
        let numbers = s.integers + s.reals;
        if numbers == 0 && (matches!(aff, Affinity::Text | Affinity::Blob) || date) {
            return if date {
                noted(Kind::Text, "dates kept as stored text".into())
            } else {
                ok(Kind::Text)
            };
        }
        return fallback(
            Kind::Text,
            format!(
                "{} text value(s) and {numbers} number(s) in a column declared {declared}: copied as text (numbers as their decimal text)",
                s.texts
            ),
        );
    }
    if s.reals > 0 {
        if s.big_integers > 0 {
            return fallback(
                Kind::Text,
                format!(
                    "{} integer(s) beyond ±2^53 mixed with {} real(s) in a column declared {declared}: copied as text so no digit is lost",
                    s.big_integers, s.reals
                ),
            );
        }
        if aff == Affinity::Integer && !is_bool {
            return fallback(
                Kind::Float8,
                format!(
                    "{} real value(s) in a column declared {declared}: mapped to double precision",
                    s.reals
                ),
            );
        }
        if date {
            return noted(
                Kind::Float8,
                "dates stored as numbers (e.g. Julian days): kept as double precision".into(),
            );
        }
        if aff == Affinity::Numeric {
            return noted(
                Kind::Float8,
                format!(
                    "{declared} values are stored by SQLite as integer or real: mapped to double precision"
                ),
            );
        }
        return ok(Kind::Float8);
    }
    if s.integers > 0 {
        if is_bool && s.non_boolean_integers == 0 {
            return ok(Kind::Bool);
        }
        if is_bool {
            return fallback(
                Kind::Int8,
                format!(
                    "{} value(s) other than 0 and 1 in a column declared {declared}: mapped to bigint",
                    s.non_boolean_integers
                ),
            );
        }
        if aff == Affinity::Real {
            return if s.big_integers > 0 {
                fallback(
                    Kind::Text,
                    format!(
                        "{} integer(s) beyond ±2^53 in a column declared {declared}: copied as text",
                        s.big_integers
                    ),
                )
            } else {
                ok(Kind::Float8)
            };
        }
        if date {
            return noted(
                Kind::Int8,
                "dates stored as integers (e.g. Unix time): kept as bigint".into(),
            );
        }
        return ok(Kind::Int8);
    }
    // No values: the declared type decides.
    match aff {
        _ if is_bool => ok(Kind::Bool),
        _ if date => noted(Kind::Text, "dates kept as stored text".into()),
        Affinity::Integer => ok(Kind::Int8),
        Affinity::Text => ok(Kind::Text),
        Affinity::Real => ok(Kind::Float8),
        Affinity::Numeric => noted(
            Kind::Float8,
            format!(
                "{declared} values are stored by SQLite as integer or real: mapped to double precision"
            ),
        ),
        Affinity::Blob if col.declared.is_empty() => ok(Kind::Text),
        Affinity::Blob => ok(Kind::Bytea),
    }
}

/// Whether values measured as `s` (mapped to `wanted`) can go into an
/// existing column of kind `have` without changing them.
pub fn fits_existing(wanted: Kind, have: Kind, s: &ColumnStats) -> bool {
    if wanted == have {
        return true;
    }
    let ints_in = |lo: i64, hi: i64| {
        s.min_integer.is_none_or(|m| m >= lo) && s.max_integer.is_none_or(|m| m <= hi)
    };
    match (wanted, have) {
        (Kind::Int8, Kind::Int4) | (Kind::Bool, Kind::Int4) => {
            ints_in(i64::from(i32::MIN), i64::from(i32::MAX))
        }
        (Kind::Int8, Kind::Int2) | (Kind::Bool, Kind::Int2) => {
            ints_in(i64::from(i16::MIN), i64::from(i16::MAX))
        }
        (Kind::Bool, Kind::Int8) => true,
        (Kind::Int8, Kind::Float8) => s.big_integers == 0,
        (Kind::Text, Kind::Varchar) | (Kind::Varchar, Kind::Text) => true,
        (Kind::Int8 | Kind::Float8, Kind::Text | Kind::Varchar) => true,
        (Kind::Text | Kind::Varchar, Kind::Bytea) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(declared: &str) -> Column {
        Column {
            name: "c".into(),
            declared: declared.into(),
            not_null: false,
            pk: 0,
        }
    }

    #[test]
    fn declared_types_map_when_values_fit() {
        let ints = ColumnStats {
            integers: 5,
            non_boolean_integers: 5,
            ..Default::default()
        };
        assert_eq!(map_column(&col("INTEGER"), &ints).kind, Kind::Int8);
        let bools = ColumnStats {
            integers: 5,
            ..Default::default()
        };
        assert_eq!(map_column(&col("BOOLEAN"), &bools).kind, Kind::Bool);
        let reals = ColumnStats {
            reals: 3,
            integers: 2,
            ..Default::default()
        };
        assert_eq!(map_column(&col("DECIMAL(10,2)"), &reals).kind, Kind::Float8);
        let texts = ColumnStats {
            texts: 3,
            ..Default::default()
        };
        let d = map_column(&col("DATETIME"), &texts);
        assert_eq!(d.kind, Kind::Text);
        assert!(d.note.is_some() && d.problem.is_none());
        let blobs = ColumnStats {
            blobs: 3,
            ..Default::default()
        };
        assert_eq!(map_column(&col("BLOB"), &blobs).kind, Kind::Bytea);
        assert_eq!(
            map_column(&col(""), &ColumnStats::default()).kind,
            Kind::Text
        );
    }

    #[test]
    fn misfits_fall_back_and_are_reported() {
        let abc = ColumnStats {
            integers: 5,
            texts: 1,
            ..Default::default()
        };
        let m = map_column(&col("INTEGER"), &abc);
        assert_eq!(m.kind, Kind::Text);
        assert!(m.problem.is_some_and(|p| p.contains("1 text value")));
        let bad = ColumnStats {
            texts: 5,
            bad_texts: 1,
            ..Default::default()
        };
        assert_eq!(map_column(&col("TEXT"), &bad).kind, Kind::Bytea);
        let big = ColumnStats {
            integers: 1,
            reals: 1,
            big_integers: 1,
            ..Default::default()
        };
        assert_eq!(map_column(&col("REAL"), &big).kind, Kind::Text);
        let two = ColumnStats {
            integers: 3,
            non_boolean_integers: 1,
            ..Default::default()
        };
        assert_eq!(map_column(&col("BOOL"), &two).kind, Kind::Int8);
    }

    #[test]
    fn existing_columns_accept_only_lossless_values() {
        let small = ColumnStats {
            integers: 2,
            min_integer: Some(-5),
            max_integer: Some(70_000),
            ..Default::default()
        };
        assert!(fits_existing(Kind::Int8, Kind::Int4, &small));
        assert!(!fits_existing(Kind::Int8, Kind::Int2, &small));
        assert!(!fits_existing(Kind::Text, Kind::Int8, &small));
        assert!(fits_existing(Kind::Int8, Kind::Text, &small));
    }
}

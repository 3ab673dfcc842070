//! Values on both sides and the canonical encoding that makes their
//! checksums equal by construction.
//!
//! A source value ([`SqlValue`], SQLite's five storage classes) is first
//! converted to the value its target column holds ([`Cell`], typed by the
//! column's [`Kind`]); the row hash is SHA-256 over the canonical bytes of
//! those cells. PostgreSQL computes the same bytes in SQL from the stored
//! row ([`Kind::hash_sql`]), so a row hashes equal on both sides exactly
//! when the target holds what the source converts to.
//!
//! Canonical bytes of one cell: `00` for NULL, else `01` followed by
//! 8 big-endian bytes for integers (any width, as int8) and doubles (IEEE
//! bits), a 4-byte big-endian length and the bytes for text (UTF-8) and
//! bytea, one byte for booleans, 16 bytes for UUIDs.

use std::borrow::Cow;
use std::error::Error as StdError;

use bytes::BytesMut;
use sha2::{Digest, Sha256};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// A value read from SQLite, storage class preserved.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    /// SQLite does not check text encoding: kept as the stored bytes.
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl SqlValue {
    pub fn from_ref(v: rusqlite::types::ValueRef<'_>) -> SqlValue {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(i) => SqlValue::Int(i),
            ValueRef::Real(f) => SqlValue::Real(f),
            ValueRef::Text(t) => SqlValue::Text(t.to_vec()),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        }
    }

    /// The value as SQLite hands it out.
    pub fn as_ref(&self) -> rusqlite::types::ValueRef<'_> {
        use rusqlite::types::ValueRef;
        match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Int(i) => ValueRef::Integer(*i),
            SqlValue::Real(f) => ValueRef::Real(*f),
            SqlValue::Text(t) => ValueRef::Text(t),
            SqlValue::Blob(b) => ValueRef::Blob(b),
        }
    }

    /// Storage class name, as SQLite's `typeof()`.
    pub fn class(&self) -> &'static str {
        match self {
            SqlValue::Null => "null",
            SqlValue::Int(_) => "integer",
            SqlValue::Real(_) => "real",
            SqlValue::Text(_) => "text",
            SqlValue::Blob(_) => "blob",
        }
    }

    /// A JSON form that round-trips exactly (for checkpoints).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            SqlValue::Null => json!(["n"]),
            SqlValue::Int(i) => json!(["i", i]),
            SqlValue::Real(f) => json!(["r", format!("{:016x}", f.to_bits())]),
            SqlValue::Text(t) => json!(["t", hex(t)]),
            SqlValue::Blob(b) => json!(["b", hex(b)]),
        }
    }

    pub fn from_json(v: &serde_json::Value) -> Option<SqlValue> {
        let arr = v.as_array()?;
        let tag = arr.first()?.as_str()?;
        let arg = arr.get(1);
        Some(match tag {
            "n" => SqlValue::Null,
            "i" => SqlValue::Int(arg?.as_i64()?),
            "r" => SqlValue::Real(f64::from_bits(
                u64::from_str_radix(arg?.as_str()?, 16).ok()?,
            )),
            "t" => SqlValue::Text(unhex(arg?.as_str()?)?),
            "b" => SqlValue::Blob(unhex(arg?.as_str()?)?),
            _ => return None,
        })
    }

    /// For messages: the value as a user would write it.
    pub fn display(&self) -> String {
        match self {
            SqlValue::Null => "NULL".into(),
            SqlValue::Int(i) => i.to_string(),
            SqlValue::Real(f) => f.to_string(),
            SqlValue::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
            SqlValue::Blob(b) => format!("x'{}'", hex(b)),
        }
    }
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(self.as_ref()))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

/// The PostgreSQL types a target column may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Int8,
    Int4,
    Int2,
    Float8,
    Text,
    Varchar,
    Bytea,
    Bool,
    Uuid,
}

impl Kind {
    /// The type as written in `CREATE TABLE`.
    pub fn ddl(self) -> &'static str {
        match self {
            Kind::Int8 => "bigint",
            Kind::Int4 => "integer",
            Kind::Int2 => "smallint",
            Kind::Float8 => "double precision",
            Kind::Text => "text",
            Kind::Varchar => "varchar",
            Kind::Bytea => "bytea",
            Kind::Bool => "boolean",
            Kind::Uuid => "uuid",
        }
    }

    /// The kind of an existing column by its `pg_type.typname`; `None`
    /// for types acode does not copy into (they would change values:
    /// `real`, `char(n)`, `numeric`, dates…).
    pub fn from_typname(name: &str) -> Option<Kind> {
        Some(match name {
            "int8" => Kind::Int8,
            "int4" => Kind::Int4,
            "int2" => Kind::Int2,
            "float8" => Kind::Float8,
            "text" => Kind::Text,
            "varchar" => Kind::Varchar,
            "bytea" => Kind::Bytea,
            "bool" => Kind::Bool,
            "uuid" => Kind::Uuid,
            _ => return None,
        })
    }

    pub fn pg_type(self) -> Type {
        match self {
            Kind::Int8 => Type::INT8,
            Kind::Int4 => Type::INT4,
            Kind::Int2 => Type::INT2,
            Kind::Float8 => Type::FLOAT8,
            Kind::Text => Type::TEXT,
            Kind::Varchar => Type::VARCHAR,
            Kind::Bytea => Type::BYTEA,
            Kind::Bool => Type::BOOL,
            Kind::Uuid => Type::UUID,
        }
    }

    pub fn is_texty(self) -> bool {
        matches!(self, Kind::Text | Kind::Varchar)
    }

    /// The SQL expression (bytea) of the canonical bytes of column `col`
    /// (already quoted and qualified).
    pub fn hash_sql(self, col: &str) -> String {
        let inner = match self {
            Kind::Int8 | Kind::Int4 | Kind::Int2 => format!("int8send({col}::int8)"),
            Kind::Float8 => format!("float8send({col})"),
            Kind::Text | Kind::Varchar => format!(
                "int4send(octet_length(convert_to({col}, 'UTF8'))) || convert_to({col}, 'UTF8')"
            ),
            Kind::Bytea => format!("int4send(length({col})) || {col}"),
            Kind::Bool => format!("CASE WHEN {col} THEN '\\x01'::bytea ELSE '\\x00'::bytea END"),
            Kind::Uuid => format!("uuid_send({col})"),
        };
        format!("CASE WHEN {col} IS NULL THEN '\\x00'::bytea ELSE '\\x01'::bytea || {inner} END")
    }

    /// `col` with the byte-order collation where text is compared, so
    /// ranges agree with SQLite's BINARY order.
    pub fn order_sql(self, col: &str) -> String {
        if self.is_texty() {
            format!("{col} COLLATE \"C\"")
        } else {
            col.to_owned()
        }
    }
}

/// A value as its target column holds it.
#[derive(Clone, Debug)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
    Uuid([u8; 16]),
}

impl PartialEq for Cell {
    fn eq(&self, other: &Cell) -> bool {
        match (self, other) {
            (Cell::Float(a), Cell::Float(b)) => a.to_bits() == b.to_bits(),
            (Cell::Null, Cell::Null) => true,
            (Cell::Int(a), Cell::Int(b)) => a == b,
            (Cell::Text(a), Cell::Text(b)) => a == b,
            (Cell::Bytes(a), Cell::Bytes(b)) => a == b,
            (Cell::Bool(a), Cell::Bool(b)) => a == b,
            (Cell::Uuid(a), Cell::Uuid(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Cell {}

impl std::hash::Hash for Cell {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut buf = Vec::new();
        self.encode(&mut buf);
        buf.hash(state);
    }
}

impl Cell {
    /// The cell, borrowed.
    pub fn as_ref(&self) -> CellRef<'_> {
        match self {
            Cell::Null => CellRef::Null,
            Cell::Int(i) => CellRef::Int(*i),
            Cell::Float(f) => CellRef::Float(*f),
            Cell::Text(s) => CellRef::Text(Cow::Borrowed(s)),
            Cell::Bytes(b) => CellRef::Bytes(Cow::Borrowed(b)),
            Cell::Bool(b) => CellRef::Bool(*b),
            Cell::Uuid(u) => CellRef::Uuid(*u),
        }
    }

    /// Appends the canonical bytes (see the module docs).
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.as_ref().encode(out);
    }

    /// For messages and `check-record`.
    pub fn display(&self) -> String {
        match self {
            Cell::Null => "NULL".into(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Text(s) => format!("{s:?}"),
            Cell::Bytes(b) => format!("\\x{}", hex(b)),
            Cell::Bool(b) => b.to_string(),
            Cell::Uuid(u) => uuid_text(u),
        }
    }

    /// The value as JSON (bytes as `\x…` hex, UUIDs as text).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Cell::Null => Value::Null,
            Cell::Int(i) => Value::from(*i),
            Cell::Float(f) => serde_json::Number::from_f64(*f)
                .map_or_else(|| Value::String(f.to_string()), Value::Number),
            Cell::Text(s) => Value::String(s.clone()),
            Cell::Bytes(b) => Value::String(format!("\\x{}", hex(b))),
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Uuid(u) => Value::String(uuid_text(u)),
        }
    }
}

/// A [`Cell`] that borrows its text and bytes from where they were read
/// (a source row, while it is current), so that a row can be hashed and
/// encoded for COPY without a copy of its values.
#[derive(Debug)]
pub enum CellRef<'a> {
    Null,
    Int(i64),
    Float(f64),
    Text(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    Bool(bool),
    Uuid([u8; 16]),
}

impl CellRef<'_> {
    /// Appends the canonical bytes (see the module docs).
    pub fn encode(&self, out: &mut Vec<u8>) {
        if matches!(self, CellRef::Null) {
            out.push(0);
            return;
        }
        out.push(1);
        match self {
            CellRef::Null => {}
            CellRef::Int(i) => out.extend_from_slice(&i.to_be_bytes()),
            CellRef::Float(f) => out.extend_from_slice(&f.to_bits().to_be_bytes()),
            CellRef::Text(s) => {
                out.extend_from_slice(&len32(s.len()).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            CellRef::Bytes(b) => {
                out.extend_from_slice(&len32(b.len()).to_be_bytes());
                out.extend_from_slice(b);
            }
            CellRef::Bool(b) => out.push(u8::from(*b)),
            CellRef::Uuid(u) => out.extend_from_slice(u),
        }
    }

    pub fn into_owned(self) -> Cell {
        match self {
            CellRef::Null => Cell::Null,
            CellRef::Int(i) => Cell::Int(i),
            CellRef::Float(f) => Cell::Float(f),
            CellRef::Text(s) => Cell::Text(s.into_owned()),
            CellRef::Bytes(b) => Cell::Bytes(b.into_owned()),
            CellRef::Bool(b) => Cell::Bool(b),
            CellRef::Uuid(u) => Cell::Uuid(u),
        }
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The 8-byte row hash: the first 8 bytes of SHA-256 over a row's
/// canonical bytes (its cells' [`Cell::encode`], in column order).
pub fn hash_of(canonical: &[u8]) -> u64 {
    let digest = Sha256::digest(canonical);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Largest integer a double holds exactly.
pub const MAX_EXACT_F64_INT: i64 = 1 << 53;

/// Why a value does not fit a kind.
pub type Misfit = String;

/// Converts a source value to what a `kind` column holds. `uuid_ns` set:
/// the column holds UUIDs derived from legacy integer keys.
pub fn convert(v: &SqlValue, kind: Kind, uuid_ns: Option<&str>) -> Result<Cell, Misfit> {
    convert_ref(v.as_ref(), kind, uuid_ns).map(CellRef::into_owned)
}

/// [`convert`] of a value as SQLite hands it out: text and bytes stay
/// borrowed.
pub fn convert_ref<'a>(
    v: rusqlite::types::ValueRef<'a>,
    kind: Kind,
    uuid_ns: Option<&str>,
) -> Result<CellRef<'a>, Misfit> {
    use rusqlite::types::ValueRef;
    let misfit = || {
        let v = SqlValue::from_ref(v);
        format!(
            "{} value {} does not fit {}",
            v.class(),
            v.display(),
            kind.ddl()
        )
    };
    if let (Some(ns), Kind::Uuid) = (uuid_ns, kind) {
        return match v {
            ValueRef::Null => Ok(CellRef::Null),
            ValueRef::Integer(i) => Ok(CellRef::Uuid(derive_uuid(ns, i))),
            _ => Err(format!("{}: only integer keys map to UUIDs", misfit())),
        };
    }
    Ok(match (v, kind) {
        (ValueRef::Null, _) => CellRef::Null,
        (ValueRef::Integer(i), Kind::Int8) => CellRef::Int(i),
        (ValueRef::Integer(i), Kind::Int4) => {
            i32::try_from(i).map_err(|_| misfit())?;
            CellRef::Int(i)
        }
        (ValueRef::Integer(i), Kind::Int2) => {
            i16::try_from(i).map_err(|_| misfit())?;
            CellRef::Int(i)
        }
        (ValueRef::Integer(i), Kind::Float8)
            if (-MAX_EXACT_F64_INT..=MAX_EXACT_F64_INT).contains(&i) =>
        {
            #[allow(clippy::cast_precision_loss)] // exact: checked above
            CellRef::Float(i as f64)
        }
        (ValueRef::Integer(i), Kind::Bool) if i == 0 || i == 1 => CellRef::Bool(i == 1),
        (ValueRef::Real(f), Kind::Float8) => CellRef::Float(f),
        (ValueRef::Integer(i), k) if k.is_texty() => CellRef::Text(Cow::Owned(i.to_string())),
        (ValueRef::Real(f), k) if k.is_texty() => CellRef::Text(Cow::Owned(real_text(f))),
        (ValueRef::Text(t), k) if k.is_texty() => match std::str::from_utf8(t) {
            Ok(s) if !s.contains('\0') => CellRef::Text(Cow::Borrowed(s)),
            Ok(_) => return Err(format!("{}: text with a NUL character", misfit())),
            Err(_) => return Err(format!("{}: text that is not valid UTF-8", misfit())),
        },
        (ValueRef::Blob(b) | ValueRef::Text(b), Kind::Bytea) => CellRef::Bytes(Cow::Borrowed(b)),
        (ValueRef::Integer(i), Kind::Bytea) => {
            CellRef::Bytes(Cow::Owned(i.to_string().into_bytes()))
        }
        (ValueRef::Real(f), Kind::Bytea) => CellRef::Bytes(Cow::Owned(real_text(f).into_bytes())),
        _ => return Err(misfit()),
    })
}

/// A REAL as text: shortest exact form (`1.5`, `1e300`, `inf`).
pub fn real_text(f: f64) -> String {
    let s = format!("{f:?}");
    match s.as_str() {
        "inf" => "Infinity".into(),
        "-inf" => "-Infinity".into(),
        _ => s,
    }
}

/// The UUID of legacy integer `key` in namespace `ns` (`table.column`):
/// SHA-256 of both, as a version-8 UUID. The same key always gives the
/// same UUID, in every run and on every machine.
pub fn derive_uuid(ns: &str, key: i64) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"acode-migrate uuid\0");
    h.update(ns.as_bytes());
    h.update(b"\0");
    h.update(key.to_be_bytes());
    let digest = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&digest[..16]);
    u[6] = (u[6] & 0x0f) | 0x80;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

pub fn uuid_text(u: &[u8; 16]) -> String {
    let h = hex(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Cell {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.as_ref().to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        accepted(ty)
    }

    to_sql_checked!();
}

impl ToSql for CellRef<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            CellRef::Null => Ok(IsNull::Yes),
            CellRef::Int(i) => match *ty {
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            CellRef::Float(f) => f.to_sql(ty, out),
            CellRef::Text(s) => s.as_ref().to_sql(ty, out),
            CellRef::Bytes(b) => b.as_ref().to_sql(ty, out),
            CellRef::Bool(b) => b.to_sql(ty, out),
            CellRef::Uuid(u) => {
                if *ty != Type::UUID {
                    return Err(format!("a UUID cannot be sent as {ty}").into());
                }
                out.extend_from_slice(u);
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(ty: &Type) -> bool {
        accepted(ty)
    }

    to_sql_checked!();
}

fn accepted(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::INT8
            | Type::INT4
            | Type::INT2
            | Type::FLOAT8
            | Type::TEXT
            | Type::VARCHAR
            | Type::BYTEA
            | Type::BOOL
            | Type::UUID
    )
}

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, BoxError> {
        Ok(match *ty {
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Cell::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Cell::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::FLOAT8 => Cell::Float(f64::from_sql(ty, raw)?),
            Type::TEXT | Type::VARCHAR => Cell::Text(String::from_sql(ty, raw)?),
            Type::BYTEA => Cell::Bytes(raw.to_vec()),
            Type::BOOL => Cell::Bool(bool::from_sql(ty, raw)?),
            Type::UUID => {
                let u: [u8; 16] = raw.try_into().map_err(|_| "a UUID is 16 bytes")?;
                Cell::Uuid(u)
            }
            _ => return Err(format!("type {ty} is not read by acode migrate").into()),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Cell, BoxError> {
        Ok(Cell::Null)
    }

    fn accepts(ty: &Type) -> bool {
        accepted(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_round_trip() {
        for v in [
            SqlValue::Null,
            SqlValue::Int(i64::MIN),
            SqlValue::Real(-0.0),
            SqlValue::Real(f64::INFINITY),
            SqlValue::Text(vec![0xff, b'a']),
            SqlValue::Blob(vec![0, 1, 2]),
        ] {
            let back = SqlValue::from_json(&v.to_json());
            match (&v, back) {
                (SqlValue::Real(a), Some(SqlValue::Real(b))) => {
                    assert_eq!(a.to_bits(), b.to_bits())
                }
                (_, back) => assert_eq!(Some(v), back),
            }
        }
    }

    #[test]
    fn conversions_refuse_what_does_not_fit() {
        assert!(convert(&SqlValue::Text(b"abc".to_vec()), Kind::Int8, None).is_err());
        assert!(convert(&SqlValue::Int(1 << 40), Kind::Int4, None).is_err());
        assert!(convert(&SqlValue::Int(i64::MAX), Kind::Float8, None).is_err());
        assert!(convert(&SqlValue::Int(2), Kind::Bool, None).is_err());
        assert!(convert(&SqlValue::Text(vec![0xff]), Kind::Text, None).is_err());
        assert!(convert(&SqlValue::Text(b"a\0b".to_vec()), Kind::Text, None).is_err());
        assert_eq!(
            convert(&SqlValue::Int(7), Kind::Text, None),
            Ok(Cell::Text("7".into()))
        );
        assert_eq!(
            convert(&SqlValue::Real(0.1), Kind::Text, None),
            Ok(Cell::Text("0.1".into()))
        );
    }

    #[test]
    fn uuids_are_stable_version_8() {
        let a = derive_uuid("customers.id", 42);
        assert_eq!(a, derive_uuid("customers.id", 42));
        assert_ne!(a, derive_uuid("customers.id", 43));
        assert_ne!(a, derive_uuid("orders.id", 42));
        let text = uuid_text(&a);
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "8");
    }
}

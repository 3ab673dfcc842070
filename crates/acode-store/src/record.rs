//! What every entity shares: get by id, delete, and filtered, sorted,
//! cursor-paginated listing. The SQL is assembled only from the entity's
//! constant table and column names; every value is a bound parameter.

use acode_protocol::{Entity, Id, Privacy};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, params_from_iter};

use crate::Tx;
use crate::error::{Result, StoreError};
use crate::runs::RunStatus;
use crate::time::{self, Time};

/// A row type of one synced table.
pub trait Record: Sized {
    const ENTITY: Entity;
    /// The selected columns, in the order `from_row` reads them; `id` first
    /// and `created_at` among them.
    const COLUMNS: &'static str;
    /// The column naming the parent row a list may be filtered by.
    const PARENT: Option<&'static str>;
    const HAS_STATUS: bool;
    const HAS_PRIVACY: bool;

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self>;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

/// Filters, order and page of a list. Filters that an entity lacks (status
/// on a chat) are refused, not ignored.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only children of this row (a chat's messages, a session's tasks, ...).
    pub parent: Option<Id>,
    pub status: Option<RunStatus>,
    pub privacy: Option<Privacy>,
    /// Created at or after.
    pub since: Option<Time>,
    /// Created before.
    pub until: Option<Time>,
    pub order: Order,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size; 0 means the default (100), at most 1000.
    pub limit: u32,
}

pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;

#[derive(Clone, Debug)]
pub struct Page<R> {
    pub items: Vec<R>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

fn encode_cursor(created_at: &str, id: &str) -> String {
    format!("{created_at}~{id}")
}

fn decode_cursor(cursor: &str) -> Result<(String, String)> {
    let bad = || StoreError::invalid("cursor", "not a cursor returned by a previous page");
    let (t, id) = cursor.split_once('~').ok_or_else(bad)?;
    let t = time::parse("cursor", t).map_err(|_| bad())?;
    let id: Id = id.parse().map_err(|_| bad())?;
    Ok((time::format(&t), id.to_string()))
}

impl Tx<'_> {
    /// The row with this id, if it exists.
    pub fn find<R: Record>(&self, id: Id) -> Result<Option<R>> {
        let sql = format!(
            "SELECT {} FROM {} WHERE id = ?1",
            R::COLUMNS,
            R::ENTITY.table()
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([id.to_string()], R::from_row)
            .optional()?)
    }

    /// The row with this id, or ACODE-STORE-001.
    pub fn get<R: Record>(&self, id: Id) -> Result<R> {
        self.find(id)?
            .ok_or_else(|| StoreError::not_found(R::ENTITY.as_str(), id))
    }

    /// Deletes the row (and, by cascade, its children).
    pub fn delete<R: Record>(&self, id: Id) -> Result<()> {
        let sql = format!("DELETE FROM {} WHERE id = ?1", R::ENTITY.table());
        let n = self.conn.prepare_cached(&sql)?.execute([id.to_string()])?;
        if n == 0 {
            return Err(StoreError::not_found(R::ENTITY.as_str(), id));
        }
        Ok(())
    }

    /// One page of rows matching `q`.
    pub fn list<R: Record>(&self, q: &ListQuery) -> Result<Page<R>> {
        let mut sql = format!(
            "SELECT {} FROM {} WHERE 1 = 1",
            R::COLUMNS,
            R::ENTITY.table()
        );
        let mut args: Vec<Value> = Vec::new();
        if let Some(parent) = q.parent {
            let col = R::PARENT.ok_or_else(|| {
                StoreError::invalid("parent", format!("{} rows have no parent", R::ENTITY))
            })?;
            sql += &format!(" AND {col} = ?");
            args.push(Value::Text(parent.to_string()));
        }
        if let Some(status) = q.status {
            if !R::HAS_STATUS {
                return Err(StoreError::invalid(
                    "status",
                    format!("{} rows have no status", R::ENTITY),
                ));
            }
            sql += " AND status = ?";
            args.push(Value::Text(status.as_str().into()));
        }
        if let Some(privacy) = q.privacy {
            if !R::HAS_PRIVACY {
                return Err(StoreError::invalid(
                    "privacy",
                    format!("{} rows inherit their privacy", R::ENTITY),
                ));
            }
            sql += " AND privacy = ?";
            args.push(Value::Text(privacy.as_str().into()));
        }
        if let Some(since) = &q.since {
            sql += " AND created_at >= ?";
            args.push(Value::Text(time::format(since)));
        }
        if let Some(until) = &q.until {
            sql += " AND created_at < ?";
            args.push(Value::Text(time::format(until)));
        }
        let (cmp, dir) = match q.order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        if let Some(cursor) = &q.cursor {
            let (t, id) = decode_cursor(cursor)?;
            sql += &format!(" AND (created_at, id) {cmp} (?, ?)");
            args.push(Value::Text(t));
            args.push(Value::Text(id));
        }
        let limit = match q.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        sql += &format!(" ORDER BY created_at {dir}, id {dir} LIMIT ?");
        args.push(Value::Integer(i64::from(limit) + 1));

        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        let mut items = Vec::new();
        let mut keys = Vec::new();
        while let Some(row) = rows.next()? {
            keys.push((
                row.get::<_, String>("created_at")?,
                row.get::<_, String>("id")?,
            ));
            items.push(R::from_row(row)?);
        }
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            keys.get(limit as usize - 1)
                .map(|(t, id)| encode_cursor(t, id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}

/// Checks that a parent row exists, for a clear error before an insert.
pub(crate) fn require(tx: &Tx<'_>, entity: Entity, id: Id) -> Result<()> {
    let sql = format!("SELECT 1 FROM {} WHERE id = ?1", entity.table());
    let found: Option<i64> = tx
        .conn
        .prepare_cached(&sql)?
        .query_row([id.to_string()], |r| r.get(0))
        .optional()?;
    found
        .map(|_| ())
        .ok_or_else(|| StoreError::not_found(entity.as_str(), id))
}

/// Reads an id column.
pub(crate) fn id_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<Id> {
    let s: String = row.get(idx)?;
    s.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Reads an enum column stored as text.
pub(crate) fn parsed_column<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let s: String = row.get(idx)?;
    s.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

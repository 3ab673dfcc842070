//! Exporting conversations, messages or run records as JSON, CSV or SQL,
//! streamed: one statement is stepped row by row and each row is written
//! before the next is read, so memory stays flat however large the data
//! (DESIGN.md §10). All rows come from one read transaction: the export is
//! the database at one instant.
//!
//! Privacy is applied as sync applies it: a row whose effective level is
//! `local_only` (a message takes the stricter of its own and its chat's
//! level, run records their session's) is left out unless
//! `include_local_only`; a `redacted` row is exported with its content
//! columns NULL (empty in CSV).

mod query;
mod sink;

use std::io::Write;

use acode_store::{Id, Store};
use chrono::{DateTime, Utc};

use crate::error::{BackupError, Result};
use sink::Sink;

/// What to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// Chats: one row per chat (table `chats`).
    Conversations,
    /// Messages with their effective privacy (table `messages`).
    Messages,
    /// Run records: sessions, tasks, steps, tool calls and artifacts, one
    /// row each in one table (`run_records`) with an `entity` column.
    Runs,
}

/// How to write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON array of objects (column name → string or null).
    Json,
    /// RFC 4180 CSV with a header row; NULL is an empty field.
    Csv,
    /// `CREATE TABLE IF NOT EXISTS` and one `INSERT` per row in one
    /// transaction, loadable by SQLite and PostgreSQL alike. A value with
    /// a NUL character (which PostgreSQL text cannot hold) is refused.
    Sql,
}

/// Which rows.
#[derive(Clone, Debug, Default)]
pub struct ExportFilter {
    /// Only this chat (conversations) or this chat's messages. Not for runs.
    pub chat: Option<Id>,
    /// Only rows created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Also rows whose effective privacy is `local_only`.
    pub include_local_only: bool,
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportOutcome {
    pub rows: u64,
}

/// Parses a `--since` value (RFC 3339); anything else is ACODE-STORE-002.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>> {
    Ok(acode_store::time::parse("since", text)?)
}

/// How many rows [`export`] would write now (for a progress bar).
pub fn count(store: &Store, kind: ExportKind, filter: &ExportFilter) -> Result<u64> {
    let conn = store.connection();
    query::check(conn, kind, filter)?;
    let mut total = 0u64;
    for q in query::queries(kind) {
        let sql = format!("SELECT count(*) FROM ({q})");
        let n: i64 = conn.query_row(
            &sql,
            rusqlite::params_from_iter(query::params(filter)),
            |r| r.get(0),
        )?;
        total += u64::try_from(n).unwrap_or(0);
    }
    Ok(total)
}

/// Writes the rows of `kind` matching `filter` to `out` in `format`.
pub fn export(
    store: &Store,
    kind: ExportKind,
    format: ExportFormat,
    filter: &ExportFilter,
    out: &mut dyn Write,
) -> Result<ExportOutcome> {
    export_with(store, kind, format, filter, out, &mut || {})
}

/// [`export`], calling `on_row` after each row is written.
pub fn export_with(
    store: &Store,
    kind: ExportKind,
    format: ExportFormat,
    filter: &ExportFilter,
    out: &mut dyn Write,
    on_row: &mut dyn FnMut(),
) -> Result<ExportOutcome> {
    let conn = store.connection();
    // One snapshot for every statement; rolled back (nothing was written)
    // when dropped.
    let tx = conn.unchecked_transaction()?;
    query::check(&tx, kind, filter)?;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut sink = Sink::new(format, &mut out);
    let (table, columns) = query::table(kind);
    sink.begin(table, columns).map_err(BackupError::Output)?;
    let params = query::params(filter);
    let mut rows = 0u64;
    let mut values: Vec<Option<String>> = Vec::with_capacity(columns.len());
    for q in query::queries(kind) {
        let mut stmt = tx.prepare(&q)?;
        let mut cursor = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        while let Some(row) = cursor.next()? {
            values.clear();
            for i in 0..columns.len() {
                values.push(row.get(i)?);
            }
            if format == ExportFormat::Sql {
                refuse_nul(table, columns, &values)?;
            }
            sink.row(&values).map_err(BackupError::Output)?;
            rows += 1;
            on_row();
        }
    }
    sink.end().map_err(BackupError::Output)?;
    drop(sink);
    out.flush().map_err(BackupError::Output)?;
    Ok(ExportOutcome { rows })
}

/// PostgreSQL text cannot hold a NUL character and SQLite stops reading a
/// script at one, so an SQL export of such a value would not load back the
/// same: it is refused, naming the row (JSON and CSV carry it as is).
fn refuse_nul(table: &str, columns: &[&str], values: &[Option<String>]) -> Result<()> {
    let Some(column) = columns
        .iter()
        .zip(values)
        .find_map(|(c, v)| v.as_deref().is_some_and(|v| v.contains('\0')).then_some(c))
    else {
        return Ok(());
    };
    let id = columns
        .iter()
        .position(|c| *c == "id")
        .and_then(|i| values.get(i).cloned().flatten())
        .unwrap_or_default();
    Err(BackupError::invalid(
        "export",
        format!(
            "{table} row {id}: column {column} holds a NUL character, which SQL text \
             cannot carry; export it as JSON or CSV instead"
        ),
    ))
}

//! Times are stored as RFC 3339 UTC strings with milliseconds, a fixed-width
//! form that sorts as text and reads well in both databases.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::{Result, StoreError};

pub type Time = DateTime<Utc>;

pub fn now() -> Time {
    // Truncated to what is stored, so a value read back equals the one written.
    let t = Utc::now();
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

pub fn format(t: &Time) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse(field: &'static str, s: &str) -> Result<Time> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::invalid(field, format!("{s:?} is not an RFC 3339 time")))
}

/// Reads a stored time column; a malformed value is a database error.
pub(crate) fn column(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Time> {
    let s: String = row.get(idx)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
        })
}

pub(crate) fn column_opt(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<Time>> {
    let s: Option<String> = row.get(idx)?;
    s.map(|s| {
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    idx,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
    })
    .transpose()
}

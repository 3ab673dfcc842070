//! The SQL of each export: columns, privacy, filters. Every statement takes
//! the same three parameters (`?1` chat id, `?2` since, `?3` include
//! local-only) and is ordered along an index, so SQLite streams its rows
//! without sorting them first. Values are always bound, never formatted in.

use acode_store::StoreError;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::{ExportFilter, ExportKind};
use crate::error::{BackupError, Result};

const CHAT_COLUMNS: &[&str] = &["id", "title", "privacy", "created_at", "updated_at"];
const MESSAGE_COLUMNS: &[&str] = &[
    "id",
    "chat_id",
    "role",
    "content",
    "privacy",
    "created_at",
    "updated_at",
];
const RUN_COLUMNS: &[&str] = &[
    "entity",
    "id",
    "session_id",
    "parent_id",
    "name",
    "status",
    "input",
    "output",
    "media_type",
    "started_at",
    "ended_at",
    "privacy",
    "created_at",
    "updated_at",
];

/// The exported table's name and columns.
pub fn table(kind: ExportKind) -> (&'static str, &'static [&'static str]) {
    match kind {
        ExportKind::Conversations => ("chats", CHAT_COLUMNS),
        ExportKind::Messages => ("messages", MESSAGE_COLUMNS),
        ExportKind::Runs => ("run_records", RUN_COLUMNS),
    }
}

/// The common filter on an inner select with `privacy` (the effective
/// level) and `created_at` columns.
const FILTER: &str = "(?2 IS NULL OR created_at >= ?2) AND (?3 OR privacy <> 'local_only')";

/// The statements whose rows, in order, are the export.
pub fn queries(kind: ExportKind) -> Vec<String> {
    match kind {
        ExportKind::Conversations => vec![format!(
            "SELECT id, CASE WHEN privacy = 'redacted' THEN NULL ELSE title END,
                    privacy, created_at, updated_at
             FROM chats
             WHERE (?1 IS NULL OR id = ?1) AND {FILTER}
             ORDER BY created_at, id"
        )],
        ExportKind::Messages => vec![format!(
            "SELECT id, chat_id, role, CASE WHEN privacy = 'redacted' THEN NULL ELSE content END,
                    privacy, created_at, updated_at
             FROM (SELECT m.id, m.chat_id, m.role, m.content, m.created_at, m.updated_at,
                          CASE WHEN 'local_only' IN (m.privacy, c.privacy) THEN 'local_only'
                               WHEN 'redacted' IN (m.privacy, c.privacy) THEN 'redacted'
                               ELSE 'full' END AS privacy
                   FROM messages m JOIN chats c ON c.id = m.chat_id)
             WHERE (?1 IS NULL OR chat_id = ?1) AND {FILTER}
             ORDER BY chat_id, created_at, id"
        )],
        ExportKind::Runs => RUN_SOURCES
            .iter()
            .map(|(inner, order)| {
                format!(
                    "SELECT entity, id, session_id, parent_id,
                            CASE WHEN privacy = 'redacted' AND entity IN ('session', 'task', 'artifact')
                                 THEN NULL ELSE name END,
                            status,
                            CASE WHEN privacy = 'redacted' THEN NULL ELSE input END,
                            CASE WHEN privacy = 'redacted' THEN NULL ELSE output END,
                            media_type, started_at, ended_at, privacy, created_at, updated_at
                     FROM ({inner})
                     WHERE {FILTER}
                     ORDER BY {order}"
                )
            })
            .collect(),
    }
}

/// Each run entity as a `run_records` row (before redaction), with the
/// order its index gives. Parents come before children.
const RUN_SOURCES: &[(&str, &str)] = &[
    (
        "SELECT 'session' AS entity, id, id AS session_id, NULL AS parent_id, title AS name,
                status, NULL AS input, NULL AS output, NULL AS media_type, started_at, ended_at,
                privacy, created_at, updated_at
         FROM sessions",
        "created_at, id",
    ),
    (
        "SELECT 'task' AS entity, t.id, t.session_id, t.session_id AS parent_id, t.title AS name,
                t.status, NULL AS input, NULL AS output, NULL AS media_type,
                NULL AS started_at, NULL AS ended_at, s.privacy, t.created_at, t.updated_at
         FROM tasks t JOIN sessions s ON s.id = t.session_id",
        "parent_id, created_at, id",
    ),
    (
        "SELECT 'step' AS entity, st.id, t.session_id, st.task_id AS parent_id, st.kind AS name,
                st.status, st.input, st.output, NULL AS media_type,
                NULL AS started_at, NULL AS ended_at, s.privacy, st.created_at, st.updated_at
         FROM steps st JOIN tasks t ON t.id = st.task_id JOIN sessions s ON s.id = t.session_id",
        "parent_id, created_at, id",
    ),
    (
        "SELECT 'tool_call' AS entity, tc.id, t.session_id, tc.step_id AS parent_id,
                tc.tool AS name, tc.status, tc.arguments AS input, tc.result AS output,
                NULL AS media_type, NULL AS started_at, NULL AS ended_at, s.privacy,
                tc.created_at, tc.updated_at
         FROM tool_calls tc JOIN steps st ON st.id = tc.step_id
              JOIN tasks t ON t.id = st.task_id JOIN sessions s ON s.id = t.session_id",
        "parent_id, created_at, id",
    ),
    (
        "SELECT 'artifact' AS entity, a.id, a.session_id, coalesce(a.step_id, a.session_id) AS parent_id,
                a.name, NULL AS status, NULL AS input, a.body AS output, a.media_type,
                NULL AS started_at, NULL AS ended_at, s.privacy, a.created_at, a.updated_at
         FROM artifacts a JOIN sessions s ON s.id = a.session_id",
        "session_id, created_at, id",
    ),
];

/// The three bound parameters of every statement.
pub fn params(filter: &ExportFilter) -> Vec<Value> {
    vec![
        filter
            .chat
            .map_or(Value::Null, |id| Value::Text(id.to_string())),
        filter
            .since
            .as_ref()
            .map_or(Value::Null, |t| Value::Text(acode_store::time::format(t))),
        Value::Integer(i64::from(filter.include_local_only)),
    ]
}

/// Refuses filters that do not apply, and a chat that does not exist.
pub fn check(conn: &Connection, kind: ExportKind, filter: &ExportFilter) -> Result<()> {
    let Some(chat) = filter.chat else {
        return Ok(());
    };
    if kind == ExportKind::Runs {
        return Err(BackupError::invalid(
            "chat",
            "--chat applies to conversations and messages, not runs",
        ));
    }
    let found: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM chats WHERE id = ?1",
            [chat.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::not_found("chat", chat).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streaming means no sort of the whole result before the first row:
    /// every statement's order must come from an index.
    #[test]
    fn every_export_streams_along_an_index() -> Result<()> {
        let store = acode_store::Store::open_in_memory()?;
        let conn = store.connection();
        for kind in [
            ExportKind::Conversations,
            ExportKind::Messages,
            ExportKind::Runs,
        ] {
            for q in queries(kind) {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {q}"))?;
                let plan: Vec<String> = stmt
                    .query_map(
                        rusqlite::params_from_iter(params(&ExportFilter::default())),
                        |r| r.get::<_, String>(3),
                    )?
                    .collect::<rusqlite::Result<_>>()?;
                assert!(
                    !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                    "{kind:?} sorts before streaming: {plan:?}"
                );
            }
        }
        Ok(())
    }
}

//! The upload-time half of capture: a row's data as it will be sent, read
//! when the batch is built and redacted by the row's effective privacy at
//! that moment (DESIGN.md §4, §15 rule 7).

use std::collections::HashMap;

use acode_protocol::{Entity, Id, Privacy};
use rusqlite::OptionalExtension;
use rusqlite::types::ValueRef;
use serde_json::{Map, Value};

use crate::Tx;
use crate::error::{Result, StoreError};

/// A row's data to send, and the level it was redacted to.
#[derive(Clone, Debug, PartialEq)]
pub struct Payload {
    pub data: Map<String, Value>,
    pub privacy: Privacy,
}

/// The effective privacy of a row: chats and sessions carry their own,
/// messages take the stricter of theirs and their chat's, run records their
/// session's.
fn privacy_sql(entity: Entity) -> &'static str {
    match entity {
        Entity::Chat => "SELECT privacy FROM chats WHERE id = ?1",
        Entity::Session => "SELECT privacy FROM sessions WHERE id = ?1",
        Entity::Message => {
            "SELECT acode_stricter(m.privacy, c.privacy) FROM messages m
             JOIN chats c ON c.id = m.chat_id WHERE m.id = ?1"
        }
        Entity::Task => {
            "SELECT s.privacy FROM tasks t JOIN sessions s ON s.id = t.session_id WHERE t.id = ?1"
        }
        Entity::Step => {
            "SELECT s.privacy FROM steps st JOIN tasks t ON t.id = st.task_id
             JOIN sessions s ON s.id = t.session_id WHERE st.id = ?1"
        }
        Entity::ToolCall => {
            "SELECT s.privacy FROM tool_calls tc JOIN steps st ON st.id = tc.step_id
             JOIN tasks t ON t.id = st.task_id JOIN sessions s ON s.id = t.session_id
             WHERE tc.id = ?1"
        }
        Entity::Artifact => {
            "SELECT s.privacy FROM artifacts a JOIN sessions s ON s.id = a.session_id WHERE a.id = ?1"
        }
    }
}

/// Empties the content columns of data whose effective level is redacted.
/// The `privacy` column keeps the row's own level: a message of a redacted
/// chat stays `full` itself, so every device stores the same value and
/// derives the same effective level from its chat.
pub fn redact(entity: Entity, data: &mut Map<String, Value>, privacy: Privacy) {
    if privacy == Privacy::Redacted {
        for col in entity.content_columns() {
            data.insert((*col).to_string(), Value::Null);
        }
    }
}

impl Tx<'_> {
    /// The row's effective privacy, `None` if the row does not exist.
    pub fn effective_privacy_of(&self, entity: Entity, id: Id) -> Result<Option<Privacy>> {
        let level: Option<String> = self
            .conn
            .prepare_cached(privacy_sql(entity))?
            .query_row([id.to_string()], |r| r.get(0))
            .optional()?;
        level
            .map(|l| {
                l.parse().map_err(|_| {
                    StoreError::Sqlite(rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Text,
                        format!("{entity} {id} has privacy {l:?}").into(),
                    ))
                })
            })
            .transpose()
    }

    /// The row's data as it would be sent now: `None` when the row is gone
    /// or local-only (nothing of it may leave the device).
    pub fn payload(&self, entity: Entity, id: Id) -> Result<Option<Payload>> {
        Ok(self.payloads(entity, &[id])?.remove(&id))
    }

    /// The payloads of many rows of one entity, in one query (the upload
    /// batch reads hundreds at a time). Rows that are gone or local-only are
    /// absent from the map.
    pub fn payloads(&self, entity: Entity, ids: &[Id]) -> Result<HashMap<Id, Payload>> {
        let mut out = HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(out);
        }
        let cols = entity.data_columns();
        let wanted: Vec<String> = ids.iter().map(Id::to_string).collect();
        let wanted =
            serde_json::to_string(&wanted).map_err(|e| StoreError::Internal(e.to_string()))?;
        // The effective level as a correlated subquery of the same per-entity
        // SQL `effective_privacy_of` runs (its `?1` names the row).
        let level = privacy_sql(entity).replace("?1", "e.id");
        let sql = format!(
            "SELECT e.id, ({level}), p.entity_id IS NOT NULL, {cols}
             FROM json_each(?1) AS w CROSS JOIN {table} e ON e.id = w.value
             LEFT JOIN sync_placeholders p ON p.entity = '{name}' AND p.entity_id = e.id",
            cols = cols
                .iter()
                .map(|c| format!("e.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            table = entity.table(),
            name = entity.as_str(),
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([wanted])?;
        while let Some(row) = rows.next()? {
            let id: Id = crate::record::id_column(row, 0)?;
            // No level: the row's parent is gone (a cascade); nothing to send.
            // A level that does not parse is a damaged row, an error.
            if row.get_ref(1)? == ValueRef::Null {
                continue;
            }
            let privacy: Privacy = crate::record::parsed_column(row, 1)?;
            if privacy == Privacy::LocalOnly {
                continue;
            }
            let stood_in: bool = row.get(2)?;
            let mut data = Map::new();
            for (i, col) in cols.iter().enumerate() {
                data.insert((*col).to_string(), json_value(row, i + 3, col)?);
            }
            redact(entity, &mut data, privacy);
            if privacy == Privacy::Full && stood_in {
                drop_placeholders(entity, &mut data);
            }
            out.insert(id, Payload { data, privacy });
        }
        Ok(out)
    }
}

/// A column value as JSON (our columns are TEXT; a BLOB was written by
/// hand and is refused).
fn json_value(row: &rusqlite::Row<'_>, i: usize, col: &str) -> rusqlite::Result<Value> {
    Ok(match row.get_ref(i)? {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::from(n),
        ValueRef::Real(x) => Value::from(x),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(_) => {
            return Err(rusqlite::Error::InvalidColumnType(
                i,
                col.to_string(),
                rusqlite::types::Type::Blob,
            ));
        }
    })
}

/// Content this device never had is not uploaded as content: a column
/// still holding its placeholder is left out of the data.
fn drop_placeholders(entity: Entity, data: &mut Map<String, Value>) {
    for col in entity.content_columns() {
        let stand_in = placeholder(entity, col)
            .map(Value::from)
            .unwrap_or(Value::Null);
        if data.get(*col) == Some(&stand_in) {
            data.remove(*col);
        }
    }
}

/// What a content column that is NOT NULL locally holds when the row
/// arrived redacted; nullable content columns hold NULL.
pub fn placeholder(entity: Entity, col: &str) -> Option<&'static str> {
    match (entity, col) {
        (Entity::Chat | Entity::Session | Entity::Task, "title") => Some("(redacted)"),
        (Entity::Artifact, "name") => Some("(redacted)"),
        (Entity::Message, "content")
        | (Entity::ToolCall, "arguments")
        | (Entity::Artifact, "body") => Some(""),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_empties_only_content_columns() {
        let mut data = Map::new();
        data.insert("chat_id".into(), "c".into());
        data.insert("content".into(), "secret".into());
        data.insert("privacy".into(), "full".into());
        redact(Entity::Message, &mut data, Privacy::Redacted);
        assert_eq!(data["content"], Value::Null);
        assert_eq!(data["chat_id"], "c");
        assert_eq!(data["privacy"], "full", "the row's own level is kept");

        let mut full = Map::new();
        full.insert("content".into(), "kept".into());
        redact(Entity::Message, &mut full, Privacy::Full);
        assert_eq!(full["content"], "kept");
    }
}

//! Pulled changes applied to the local tables (capture suppressed: call
//! these inside [`crate::Store::apply_remote`]), and the inbox of those that
//! could not be applied yet (§15 rule 15).

use acode_protocol::{Entity, Id, Privacy, PullChange};
use rusqlite::OptionalExtension;
use serde_json::{Map, Value};

use crate::Tx;
use crate::error::{Result, StoreError};
use crate::payload::placeholder;

/// What applying a pulled row did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// A parent of a new row is not here yet: the change waits.
    ParentMissing(Entity, String),
}

/// Local columns outside the wire data that a new row still needs.
fn local_times(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::Chat => &[],
        Entity::Session => &["created_at", "updated_at"],
        _ => &["updated_at"],
    }
}

/// An inbox entry: a pulled change waiting for its parent, or set aside.
#[derive(Clone, Debug, PartialEq)]
pub struct InboxEntry {
    pub change: PullChange,
    pub status: String,
    pub error: Option<String>,
    pub attempts: i64,
}

impl Tx<'_> {
    /// Writes a pulled upsert: the named columns of an existing row, or a
    /// new row. Content that arrives null because the row is redacted never
    /// overwrites what this device has (rule 7).
    pub fn upsert_remote(
        &self,
        entity: Entity,
        id: Id,
        data: &Map<String, Value>,
        now: &str,
    ) -> Result<Applied> {
        let exists: Option<i64> = self
            .conn
            .prepare_cached(&format!("SELECT 1 FROM {} WHERE id = ?1", entity.table()))?
            .query_row([id.to_string()], |r| r.get(0))
            .optional()?;
        if exists.is_none() {
            for (parent, col) in entity.cascading_parents() {
                let Some(pid) = data.get(*col).and_then(Value::as_str) else {
                    continue;
                };
                let here: Option<i64> = self
                    .conn
                    .prepare_cached(&format!("SELECT 1 FROM {} WHERE id = ?1", parent.table()))?
                    .query_row([pid], |r| r.get(0))
                    .optional()?;
                if here.is_none() {
                    return Ok(Applied::ParentMissing(*parent, pid.to_string()));
                }
            }
        }
        let redacted = self.arrives_redacted(entity, data)?;
        let old_level = self.payload_privacy_column(entity, id)?;
        let mut stood_in = false;
        let content_arrived = entity
            .content_columns()
            .iter()
            .all(|c| data.get(*c).is_some_and(|v| !v.is_null()));
        let mut cols: Vec<&str> = Vec::new();
        let mut values: Vec<Option<String>> = Vec::new();
        for col in entity.data_columns() {
            let Some(v) = data.get(*col) else { continue };
            let value = match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            };
            let is_content = entity.content_columns().contains(col);
            if value.is_none() && is_content && (redacted || placeholder(entity, col).is_some()) {
                if exists.is_some() {
                    continue; // keep this device's content
                }
                stood_in = true;
                cols.push(col);
                values.push(placeholder(entity, col).map(str::to_owned));
                continue;
            }
            cols.push(col);
            values.push(value);
        }
        if exists.is_some() {
            if cols.is_empty() {
                return Ok(Applied::Done);
            }
            let sets: Vec<String> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c} = ?{}", i + 2))
                .collect();
            let sql = format!(
                "UPDATE {} SET {} WHERE id = ?1",
                entity.table(),
                sets.join(", ")
            );
            let mut params: Vec<Option<String>> = vec![Some(id.to_string())];
            params.extend(values);
            self.conn
                .prepare_cached(&sql)?
                .execute(rusqlite::params_from_iter(params))?;
        } else {
            let created = data
                .get("created_at")
                .and_then(Value::as_str)
                .or(data.get("started_at").and_then(Value::as_str))
                .unwrap_or(now);
            for col in local_times(entity) {
                if !cols.contains(col) {
                    cols.push(col);
                    values.push(Some(created.to_string()));
                }
            }
            for col in entity.data_columns() {
                if let (false, Some(p)) = (cols.contains(col), placeholder(entity, col)) {
                    stood_in = true;
                    cols.push(col);
                    values.push(Some(p.to_string()));
                }
            }
            let marks: Vec<String> = (0..=cols.len()).map(|i| format!("?{}", i + 1)).collect();
            let sql = format!(
                "INSERT INTO {} (id, {}) VALUES ({})",
                entity.table(),
                cols.join(", "),
                marks.join(", ")
            );
            let mut params: Vec<Option<String>> = vec![Some(id.to_string())];
            params.extend(values);
            self.conn
                .prepare_cached(&sql)?
                .execute(rusqlite::params_from_iter(params))?;
        }
        if stood_in {
            self.conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO sync_placeholders (entity, entity_id) VALUES (?1, ?2)",
                )?
                .execute((entity.as_str(), id.to_string()))?;
        } else if content_arrived {
            self.conn
                .prepare_cached(
                    "DELETE FROM sync_placeholders WHERE entity = ?1 AND entity_id = ?2",
                )?
                .execute((entity.as_str(), id.to_string()))?;
        }
        let new_level = self.payload_privacy_column(entity, id)?;
        if let (Some(old), Some(new)) = (old_level, new_level)
            && old != new
        {
            self.recapture_children(entity, id, old, new)?;
        }
        Ok(Applied::Done)
    }

    /// A chat's or session's level changed by a pulled change: its children
    /// here change effective level too, so they are captured exactly as a
    /// local privacy change captures them (rule 7). This device then uploads
    /// them redacted, or (made full again) with the content it kept.
    fn recapture_children(&self, entity: Entity, id: Id, old: Privacy, new: Privacy) -> Result<()> {
        let (old, new, id) = (old.as_str(), new.as_str(), id.to_string());
        let statements: &[&str] = match entity {
            Entity::Chat => &["INSERT INTO sync_capture
                 SELECT 'message', m.id, acode_op(acode_stricter(?1, m.privacy), acode_stricter(?2, m.privacy))
                 FROM messages m
                 WHERE m.chat_id = ?3 AND acode_stricter(?1, m.privacy) != acode_stricter(?2, m.privacy)
                 ORDER BY m.id"],
            Entity::Session => &[
                "INSERT INTO sync_capture SELECT 'task', t.id, acode_op(?1, ?2)
                 FROM tasks t WHERE t.session_id = ?3 ORDER BY t.id",
                "INSERT INTO sync_capture SELECT 'step', st.id, acode_op(?1, ?2)
                 FROM steps st JOIN tasks t ON t.id = st.task_id WHERE t.session_id = ?3 ORDER BY st.id",
                "INSERT INTO sync_capture SELECT 'tool_call', tc.id, acode_op(?1, ?2)
                 FROM tool_calls tc JOIN steps st ON st.id = tc.step_id JOIN tasks t ON t.id = st.task_id
                 WHERE t.session_id = ?3 ORDER BY tc.id",
                "INSERT INTO sync_capture SELECT 'artifact', a.id, acode_op(?1, ?2)
                 FROM artifacts a WHERE a.session_id = ?3 ORDER BY a.id",
            ],
            _ => &[],
        };
        for sql in statements {
            self.conn.prepare_cached(sql)?.execute((old, new, &id))?;
        }
        Ok(())
    }

    /// Whether a pulled row is redacted: by its own level, or (run records,
    /// a message in a chat) by its parent's level here.
    fn arrives_redacted(&self, entity: Entity, data: &Map<String, Value>) -> Result<bool> {
        let own = data.get("privacy").and_then(Value::as_str) == Some("redacted");
        if own {
            return Ok(true);
        }
        let parent_level = match entity {
            Entity::Chat | Entity::Session => None,
            _ => match entity.parent() {
                Some((parent, col)) => match data
                    .get(col)
                    .and_then(Value::as_str)
                    .and_then(|p| p.parse::<Id>().ok())
                {
                    Some(pid) => self.effective_privacy_of(parent, pid)?,
                    None => None,
                },
                None => None,
            },
        };
        Ok(parent_level == Some(Privacy::Redacted))
    }

    /// Deletes a row and, by cascade, its children.
    pub fn delete_remote(&self, entity: Entity, id: Id) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(&format!("DELETE FROM {} WHERE id = ?1", entity.table()))?
            .execute([id.to_string()])?;
        Ok(n > 0)
    }

    /// Raises a local row's own privacy to `level` (a conflict's stricter
    /// level, rule 7).
    pub fn raise_privacy_remote(&self, entity: Entity, id: Id, level: Privacy) -> Result<()> {
        if matches!(entity, Entity::Chat | Entity::Message | Entity::Session) {
            self.conn
                .prepare_cached(&format!(
                    "UPDATE {} SET privacy = acode_stricter(privacy, ?2) WHERE id = ?1",
                    entity.table()
                ))?
                .execute((id.to_string(), level.as_str()))?;
        }
        Ok(())
    }

    /// Whether a local row exists.
    pub fn row_exists(&self, entity: Entity, id: Id) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT 1 FROM {} WHERE id = ?1", entity.table()))?
            .query_row([id.to_string()], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Sets a pulled change aside (replacing an older one of the same row).
    pub fn park(
        &self,
        change: &PullChange,
        status: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let json =
            serde_json::to_string(change).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.conn
            .prepare_cached(
                "INSERT INTO sync_inbox (entity, entity_id, seq, status, change, error, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (entity, entity_id) DO UPDATE SET
                     seq = excluded.seq, status = excluded.status, change = excluded.change,
                     error = excluded.error, attempts = attempts + 1",
            )?
            .execute((
                change.entity.as_str(),
                change.id.to_string(),
                change.seq,
                status,
                json,
                error,
                now,
            ))?;
        Ok(())
    }

    /// Removes a row's inbox entry (applied, or replaced by a newer change).
    pub fn unpark(&self, entity: Entity, id: Id) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM sync_inbox WHERE entity = ?1 AND entity_id = ?2")?
            .execute((entity.as_str(), id.to_string()))?;
        Ok(())
    }

    /// Everything in the inbox, in feed order.
    pub fn inbox(&self) -> Result<Vec<InboxEntry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT change, status, error, attempts FROM sync_inbox ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let json: String = row.get(0)?;
            let change = serde_json::from_str(&json)
                .map_err(|e| StoreError::Internal(format!("inbox entry: {e}")))?;
            out.push(InboxEntry {
                change,
                status: row.get(1)?,
                error: row.get(2)?,
                attempts: row.get(3)?,
            });
        }
        Ok(out)
    }

    /// Runs `f` in a savepoint: its writes are undone if it fails, and the
    /// transaction goes on.
    pub fn savepoint<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("SAVEPOINT one_change")?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("RELEASE one_change")?;
                Ok(v)
            }
            Err(e) => {
                self.conn
                    .execute_batch("ROLLBACK TO one_change; RELEASE one_change")?;
                Err(e)
            }
        }
    }
}

impl Tx<'_> {
    /// The `privacy` column of a chat, message or session row (its own
    /// level, not the effective one).
    pub fn payload_privacy_column(&self, entity: Entity, id: Id) -> Result<Option<Privacy>> {
        if !matches!(entity, Entity::Chat | Entity::Message | Entity::Session) {
            return Ok(None);
        }
        let level: Option<String> = self
            .conn
            .prepare_cached(&format!(
                "SELECT privacy FROM {} WHERE id = ?1",
                entity.table()
            ))?
            .query_row([id.to_string()], |r| r.get(0))
            .optional()?;
        Ok(level.and_then(|l| l.parse().ok()))
    }
}

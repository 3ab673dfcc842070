//! Sessions (one agent run) and their tasks.

use acode_protocol::{Entity, Id, Privacy};
use rusqlite::Row;
use serde::Serialize;

use super::RunStatus;
use crate::error::Result;
use crate::record::{Record, id_column, parsed_column, require};
use crate::time::{self, Time};
use crate::{Tx, validate};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: Id,
    pub title: String,
    pub status: RunStatus,
    pub privacy: Privacy,
    pub started_at: Time,
    pub ended_at: Option<Time>,
    pub created_at: Time,
    pub updated_at: Time,
}

#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: Option<Id>,
    pub title: String,
    pub status: RunStatus,
    pub privacy: Privacy,
}

impl NewSession {
    pub fn new(title: impl Into<String>) -> Self {
        NewSession {
            id: None,
            title: title.into(),
            status: RunStatus::Running,
            privacy: Privacy::Full,
        }
    }
}

/// Fields to change; a status that finishes the session sets `ended_at`.
#[derive(Clone, Debug, Default)]
pub struct SessionPatch {
    pub title: Option<String>,
    pub status: Option<RunStatus>,
    pub privacy: Option<Privacy>,
}

impl Record for Session {
    const ENTITY: Entity = Entity::Session;
    const COLUMNS: &'static str =
        "id, title, status, privacy, started_at, ended_at, created_at, updated_at";
    const PARENT: Option<&'static str> = None;
    const HAS_STATUS: bool = true;
    const HAS_PRIVACY: bool = true;

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Session {
            id: id_column(row, 0)?,
            title: row.get(1)?,
            status: parsed_column(row, 2)?,
            privacy: parsed_column(row, 3)?,
            started_at: time::column(row, 4)?,
            ended_at: time::column_opt(row, 5)?,
            created_at: time::column(row, 6)?,
            updated_at: time::column(row, 7)?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Task {
    pub id: Id,
    pub session_id: Id,
    pub title: String,
    pub status: RunStatus,
    pub created_at: Time,
    pub updated_at: Time,
}

#[derive(Clone, Debug)]
pub struct NewTask {
    pub id: Option<Id>,
    pub session_id: Id,
    pub title: String,
    pub status: RunStatus,
}

#[derive(Clone, Debug, Default)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub status: Option<RunStatus>,
}

impl Record for Task {
    const ENTITY: Entity = Entity::Task;
    const COLUMNS: &'static str = "id, session_id, title, status, created_at, updated_at";
    const PARENT: Option<&'static str> = Some("session_id");
    const HAS_STATUS: bool = true;
    const HAS_PRIVACY: bool = false;

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Task {
            id: id_column(row, 0)?,
            session_id: id_column(row, 1)?,
            title: row.get(2)?,
            status: parsed_column(row, 3)?,
            created_at: time::column(row, 4)?,
            updated_at: time::column(row, 5)?,
        })
    }
}

impl Tx<'_> {
    pub fn create_session(&self, new: &NewSession) -> Result<Session> {
        validate::title("title", &new.title)?;
        let now = time::now();
        let s = Session {
            id: new.id.unwrap_or_default(),
            title: new.title.clone(),
            status: new.status,
            privacy: new.privacy,
            started_at: now,
            ended_at: new.status.is_finished().then_some(now),
            created_at: now,
            updated_at: now,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (id, title, status, privacy, started_at, ended_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5, ?5)",
            )?
            .execute((
                s.id.to_string(),
                &s.title,
                s.status.as_str(),
                s.privacy.as_str(),
                time::format(&now),
                s.ended_at.as_ref().map(time::format),
            ))?;
        Ok(s)
    }

    /// Changes a session. A privacy change also captures a change for every
    /// task, step, tool call and artifact under it, in this transaction.
    pub fn update_session(&self, id: Id, patch: &SessionPatch) -> Result<Session> {
        let mut s: Session = self.get(id)?;
        if let Some(title) = &patch.title {
            validate::title("title", title)?;
            s.title = title.clone();
        }
        if let Some(privacy) = patch.privacy {
            s.privacy = privacy;
        }
        s.updated_at = time::now();
        if let Some(status) = patch.status {
            s.status = status;
            s.ended_at = status.is_finished().then_some(s.updated_at);
        }
        self.conn
            .prepare_cached(if patch.privacy.is_some() {
                "UPDATE sessions SET title = ?2, status = ?3, privacy = ?4, ended_at = ?5, updated_at = ?6
                 WHERE id = ?1"
            } else {
                // Without privacy in the SET list the privacy-change trigger
                // is not part of the statement at all (V7).
                "UPDATE sessions SET title = ?2, status = ?3, ended_at = ?5, updated_at = ?6
                 WHERE id = ?1"
            })?
            .execute((
                id.to_string(),
                &s.title,
                s.status.as_str(),
                s.privacy.as_str(),
                s.ended_at.as_ref().map(time::format),
                time::format(&s.updated_at),
            ))?;
        Ok(s)
    }

    pub fn create_task(&self, new: &NewTask) -> Result<Task> {
        validate::title("title", &new.title)?;
        require(self, Entity::Session, new.session_id)?;
        let now = time::now();
        let t = Task {
            id: new.id.unwrap_or_default(),
            session_id: new.session_id,
            title: new.title.clone(),
            status: new.status,
            created_at: now,
            updated_at: now,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO tasks (id, session_id, title, status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )?
            .execute((
                t.id.to_string(),
                t.session_id.to_string(),
                &t.title,
                t.status.as_str(),
                time::format(&now),
            ))?;
        Ok(t)
    }

    pub fn update_task(&self, id: Id, patch: &TaskPatch) -> Result<Task> {
        let mut t: Task = self.get(id)?;
        if let Some(title) = &patch.title {
            validate::title("title", title)?;
            t.title = title.clone();
        }
        if let Some(status) = patch.status {
            t.status = status;
        }
        t.updated_at = time::now();
        self.conn
            .prepare_cached(
                "UPDATE tasks SET title = ?2, status = ?3, updated_at = ?4 WHERE id = ?1",
            )?
            .execute((
                id.to_string(),
                &t.title,
                t.status.as_str(),
                time::format(&t.updated_at),
            ))?;
        Ok(t)
    }
}

//! Steps of a task, tool calls of a step, and artifacts of a session (or of
//! one of its steps).

use acode_protocol::{Entity, Id};
use rusqlite::{OptionalExtension, Row};
use serde::Serialize;

use super::RunStatus;
use crate::error::{Result, StoreError};
use crate::record::{Record, id_column, parsed_column, require};
use crate::time::{self, Time};
use crate::{Tx, validate};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub id: Id,
    pub task_id: Id,
    pub kind: String,
    pub status: RunStatus,
    pub input: Option<String>,
    pub output: Option<String>,
    pub created_at: Time,
    pub updated_at: Time,
}

#[derive(Clone, Debug)]
pub struct NewStep {
    pub id: Option<Id>,
    pub task_id: Id,
    /// What the step is: "plan", "edit", "test", ...
    pub kind: String,
    pub status: RunStatus,
    pub input: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct StepPatch {
    pub status: Option<RunStatus>,
    pub output: Option<String>,
}

impl Record for Step {
    const ENTITY: Entity = Entity::Step;
    const COLUMNS: &'static str =
        "id, task_id, kind, status, input, output, created_at, updated_at";
    const PARENT: Option<&'static str> = Some("task_id");
    const HAS_STATUS: bool = true;
    const HAS_PRIVACY: bool = false;

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Step {
            id: id_column(row, 0)?,
            task_id: id_column(row, 1)?,
            kind: row.get(2)?,
            status: parsed_column(row, 3)?,
            input: row.get(4)?,
            output: row.get(5)?,
            created_at: time::column(row, 6)?,
            updated_at: time::column(row, 7)?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    pub id: Id,
    pub step_id: Id,
    pub tool: String,
    /// The call's arguments, as the tool received them (usually JSON).
    pub arguments: String,
    pub result: Option<String>,
    pub status: RunStatus,
    pub created_at: Time,
    pub updated_at: Time,
}

#[derive(Clone, Debug)]
pub struct NewToolCall {
    pub id: Option<Id>,
    pub step_id: Id,
    pub tool: String,
    pub arguments: String,
    pub status: RunStatus,
}

#[derive(Clone, Debug, Default)]
pub struct ToolCallPatch {
    pub status: Option<RunStatus>,
    pub result: Option<String>,
}

impl Record for ToolCall {
    const ENTITY: Entity = Entity::ToolCall;
    const COLUMNS: &'static str =
        "id, step_id, tool, arguments, result, status, created_at, updated_at";
    const PARENT: Option<&'static str> = Some("step_id");
    const HAS_STATUS: bool = true;
    const HAS_PRIVACY: bool = false;

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(ToolCall {
            id: id_column(row, 0)?,
            step_id: id_column(row, 1)?,
            tool: row.get(2)?,
            arguments: row.get(3)?,
            result: row.get(4)?,
            status: parsed_column(row, 5)?,
            created_at: time::column(row, 6)?,
            updated_at: time::column(row, 7)?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Artifact {
    pub id: Id,
    pub session_id: Id,
    pub step_id: Option<Id>,
    pub name: String,
    pub media_type: String,
    pub body: String,
    pub created_at: Time,
    pub updated_at: Time,
}

#[derive(Clone, Debug)]
pub struct NewArtifact {
    pub id: Option<Id>,
    pub session_id: Id,
    /// The step that produced it; must belong to `session_id`.
    pub step_id: Option<Id>,
    pub name: String,
    pub media_type: String,
    pub body: String,
}

impl Record for Artifact {
    const ENTITY: Entity = Entity::Artifact;
    const COLUMNS: &'static str =
        "id, session_id, step_id, name, media_type, body, created_at, updated_at";
    const PARENT: Option<&'static str> = Some("session_id");
    const HAS_STATUS: bool = false;
    const HAS_PRIVACY: bool = false;

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        let step_id: Option<String> = row.get(2)?;
        Ok(Artifact {
            id: id_column(row, 0)?,
            session_id: id_column(row, 1)?,
            step_id: step_id.map(|_| id_column(row, 2)).transpose()?,
            name: row.get(3)?,
            media_type: row.get(4)?,
            body: row.get(5)?,
            created_at: time::column(row, 6)?,
            updated_at: time::column(row, 7)?,
        })
    }
}

impl Tx<'_> {
    pub fn create_step(&self, new: &NewStep) -> Result<Step> {
        validate::title("kind", &new.kind)?;
        if let Some(input) = &new.input {
            validate::body("input", input)?;
        }
        require(self, Entity::Task, new.task_id)?;
        let now = time::now();
        let s = Step {
            id: new.id.unwrap_or_default(),
            task_id: new.task_id,
            kind: new.kind.clone(),
            status: new.status,
            input: new.input.clone(),
            output: None,
            created_at: now,
            updated_at: now,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO steps (id, task_id, kind, status, input, output, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?6)",
            )?
            .execute((
                s.id.to_string(),
                s.task_id.to_string(),
                &s.kind,
                s.status.as_str(),
                &s.input,
                time::format(&now),
            ))?;
        Ok(s)
    }

    pub fn update_step(&self, id: Id, patch: &StepPatch) -> Result<Step> {
        let mut s: Step = self.get(id)?;
        if let Some(output) = &patch.output {
            validate::body("output", output)?;
            s.output = Some(output.clone());
        }
        if let Some(status) = patch.status {
            s.status = status;
        }
        s.updated_at = time::now();
        self.conn
            .prepare_cached(
                "UPDATE steps SET status = ?2, output = ?3, updated_at = ?4 WHERE id = ?1",
            )?
            .execute((
                id.to_string(),
                s.status.as_str(),
                &s.output,
                time::format(&s.updated_at),
            ))?;
        Ok(s)
    }

    pub fn create_tool_call(&self, new: &NewToolCall) -> Result<ToolCall> {
        validate::title("tool", &new.tool)?;
        validate::body("arguments", &new.arguments)?;
        require(self, Entity::Step, new.step_id)?;
        let now = time::now();
        let c = ToolCall {
            id: new.id.unwrap_or_default(),
            step_id: new.step_id,
            tool: new.tool.clone(),
            arguments: new.arguments.clone(),
            result: None,
            status: new.status,
            created_at: now,
            updated_at: now,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO tool_calls (id, step_id, tool, arguments, result, status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?6)",
            )?
            .execute((
                c.id.to_string(),
                c.step_id.to_string(),
                &c.tool,
                &c.arguments,
                c.status.as_str(),
                time::format(&now),
            ))?;
        Ok(c)
    }

    pub fn update_tool_call(&self, id: Id, patch: &ToolCallPatch) -> Result<ToolCall> {
        let mut c: ToolCall = self.get(id)?;
        if let Some(result) = &patch.result {
            validate::body("result", result)?;
            c.result = Some(result.clone());
        }
        if let Some(status) = patch.status {
            c.status = status;
        }
        c.updated_at = time::now();
        self.conn
            .prepare_cached(
                "UPDATE tool_calls SET status = ?2, result = ?3, updated_at = ?4 WHERE id = ?1",
            )?
            .execute((
                id.to_string(),
                c.status.as_str(),
                &c.result,
                time::format(&c.updated_at),
            ))?;
        Ok(c)
    }

    pub fn create_artifact(&self, new: &NewArtifact) -> Result<Artifact> {
        validate::title("name", &new.name)?;
        validate::title("media_type", &new.media_type)?;
        validate::body("body", &new.body)?;
        require(self, Entity::Session, new.session_id)?;
        if let Some(step_id) = new.step_id {
            let session: Option<String> = self
                .conn
                .prepare_cached(
                    "SELECT t.session_id FROM steps s JOIN tasks t ON t.id = s.task_id WHERE s.id = ?1",
                )?
                .query_row([step_id.to_string()], |r| r.get(0))
                .optional()?;
            match session {
                None => return Err(StoreError::not_found("step", step_id)),
                Some(s) if s != new.session_id.to_string() => {
                    return Err(StoreError::invalid(
                        "step_id",
                        format!("step {step_id} belongs to another session"),
                    ));
                }
                Some(_) => {}
            }
        }
        let now = time::now();
        let a = Artifact {
            id: new.id.unwrap_or_default(),
            session_id: new.session_id,
            step_id: new.step_id,
            name: new.name.clone(),
            media_type: new.media_type.clone(),
            body: new.body.clone(),
            created_at: now,
            updated_at: now,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO artifacts (id, session_id, step_id, name, media_type, body, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            )?
            .execute((
                a.id.to_string(),
                a.session_id.to_string(),
                a.step_id.map(|s| s.to_string()),
                &a.name,
                &a.media_type,
                &a.body,
                time::format(&now),
            ))?;
        Ok(a)
    }
}

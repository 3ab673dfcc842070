//! The synced entities (PROTOCOL.md, "Entities (v1)"): their wire names,
//! local tables, data columns, content columns and parents.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Chat,
    Message,
    Session,
    Task,
    Step,
    ToolCall,
    Artifact,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown entity {0:?}")]
pub struct ParseEntityError(pub String);

impl Entity {
    /// Parents before children: the order in which a fresh device creates rows.
    pub const ALL: [Entity; 7] = [
        Entity::Chat,
        Entity::Message,
        Entity::Session,
        Entity::Task,
        Entity::Step,
        Entity::ToolCall,
        Entity::Artifact,
    ];

    /// The name on the wire and in `sync_outbox.entity`.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Chat => "chat",
            Entity::Message => "message",
            Entity::Session => "session",
            Entity::Task => "task",
            Entity::Step => "step",
            Entity::ToolCall => "tool_call",
            Entity::Artifact => "artifact",
        }
    }

    /// The local (and mirror) table.
    pub fn table(self) -> &'static str {
        match self {
            Entity::Chat => "chats",
            Entity::Message => "messages",
            Entity::Session => "sessions",
            Entity::Task => "tasks",
            Entity::Step => "steps",
            Entity::ToolCall => "tool_calls",
            Entity::Artifact => "artifacts",
        }
    }

    /// The application columns a change carries in `data` (PROTOCOL.md).
    pub fn data_columns(self) -> &'static [&'static str] {
        match self {
            Entity::Chat => &["title", "privacy", "created_at", "updated_at"],
            Entity::Message => &["chat_id", "role", "content", "privacy", "created_at"],
            Entity::Session => &["title", "status", "privacy", "started_at", "ended_at"],
            Entity::Task => &["session_id", "title", "status", "created_at"],
            Entity::Step => &["task_id", "kind", "status", "input", "output", "created_at"],
            Entity::ToolCall => &[
                "step_id",
                "tool",
                "arguments",
                "result",
                "status",
                "created_at",
            ],
            Entity::Artifact => &[
                "session_id",
                "step_id",
                "name",
                "media_type",
                "body",
                "created_at",
            ],
        }
    }

    /// Columns emptied when the row's effective privacy is `redacted`
    /// (DESIGN.md §15 rule 7).
    pub fn content_columns(self) -> &'static [&'static str] {
        match self {
            Entity::Chat => &["title"],
            Entity::Message => &["content"],
            Entity::Session => &["title"],
            Entity::Task => &["title"],
            Entity::Step => &["input", "output"],
            Entity::ToolCall => &["arguments", "result"],
            Entity::Artifact => &["name", "body"],
        }
    }

    /// Every parent whose delete deletes the row (rule 6: on the server
    /// too), with the column naming it: the required parent, and for an
    /// artifact also the step that produced it, when it names one.
    pub fn cascading_parents(self) -> &'static [(Entity, &'static str)] {
        match self {
            Entity::Chat | Entity::Session => &[],
            Entity::Message => &[(Entity::Chat, "chat_id")],
            Entity::Task => &[(Entity::Session, "session_id")],
            Entity::Step => &[(Entity::Task, "task_id")],
            Entity::ToolCall => &[(Entity::Step, "step_id")],
            Entity::Artifact => &[(Entity::Session, "session_id"), (Entity::Step, "step_id")],
        }
    }

    /// The parent a row cannot exist without, and the column naming it.
    pub fn parent(self) -> Option<(Entity, &'static str)> {
        match self {
            Entity::Chat | Entity::Session => None,
            Entity::Message => Some((Entity::Chat, "chat_id")),
            Entity::Task => Some((Entity::Session, "session_id")),
            Entity::Step => Some((Entity::Task, "task_id")),
            Entity::ToolCall => Some((Entity::Step, "step_id")),
            Entity::Artifact => Some((Entity::Session, "session_id")),
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Entity {
    type Err = ParseEntityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Entity::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| ParseEntityError(s.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in Entity::ALL {
            assert_eq!(e.as_str().parse::<Entity>(), Ok(e));
        }
        assert!("chats".parse::<Entity>().is_err());
    }

    #[test]
    fn content_columns_are_data_columns_and_parents_come_first() {
        for e in Entity::ALL {
            for c in e.content_columns() {
                assert!(e.data_columns().contains(c), "{e}: {c}");
            }
            if let Some(required) = e.parent() {
                assert_eq!(e.cascading_parents().first(), Some(&required));
            }
            for (parent, col) in e.cascading_parents() {
                assert!(e.data_columns().contains(col));
                let pos = |x| Entity::ALL.iter().position(|y| *y == x);
                assert!(pos(*parent) < pos(e), "{parent} must precede {e}");
            }
        }
    }
}

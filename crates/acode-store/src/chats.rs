//! Chats: a titled conversation with a privacy level its messages inherit.

use acode_protocol::{Entity, Id, Privacy};
use rusqlite::Row;
use serde::Serialize;

use crate::error::Result;
use crate::record::{Record, id_column, parsed_column};
use crate::time::{self, Time};
use crate::{Tx, validate};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Chat {
    pub id: Id,
    pub title: String,
    pub privacy: Privacy,
    pub created_at: Time,
    pub updated_at: Time,
}

#[derive(Clone, Debug)]
pub struct NewChat {
    /// A caller-chosen id (an importer keeping its ids); a new ULID if `None`.
    pub id: Option<Id>,
    pub title: String,
    pub privacy: Privacy,
}

impl NewChat {
    pub fn new(title: impl Into<String>) -> Self {
        NewChat {
            id: None,
            title: title.into(),
            privacy: Privacy::Full,
        }
    }

    pub fn privacy(mut self, privacy: Privacy) -> Self {
        self.privacy = privacy;
        self
    }
}

/// Fields to change; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct ChatPatch {
    pub title: Option<String>,
    pub privacy: Option<Privacy>,
}

impl Record for Chat {
    const ENTITY: Entity = Entity::Chat;
    const COLUMNS: &'static str = "id, title, privacy, created_at, updated_at";
    const PARENT: Option<&'static str> = None;
    const HAS_STATUS: bool = false;
    const HAS_PRIVACY: bool = true;

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Chat {
            id: id_column(row, 0)?,
            title: row.get(1)?,
            privacy: parsed_column(row, 2)?,
            created_at: time::column(row, 3)?,
            updated_at: time::column(row, 4)?,
        })
    }
}

impl Tx<'_> {
    pub fn create_chat(&self, new: &NewChat) -> Result<Chat> {
        validate::title("title", &new.title)?;
        let now = time::now();
        let chat = Chat {
            id: new.id.unwrap_or_default(),
            title: new.title.clone(),
            privacy: new.privacy,
            created_at: now,
            updated_at: now,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO chats (id, title, privacy, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute((
                chat.id.to_string(),
                &chat.title,
                chat.privacy.as_str(),
                time::format(&now),
            ))?;
        Ok(chat)
    }

    /// Changes a chat. A privacy change also captures a change for every
    /// message whose effective level it changes, in this transaction.
    pub fn update_chat(&self, id: Id, patch: &ChatPatch) -> Result<Chat> {
        let mut chat: Chat = self.get(id)?;
        if let Some(title) = &patch.title {
            validate::title("title", title)?;
            chat.title = title.clone();
        }
        if let Some(privacy) = patch.privacy {
            chat.privacy = privacy;
        }
        chat.updated_at = time::now();
        self.conn
            .prepare_cached(if patch.privacy.is_some() {
                "UPDATE chats SET title = ?2, privacy = ?3, updated_at = ?4 WHERE id = ?1"
            } else {
                // Without privacy in the SET list the privacy-change trigger
                // is not part of the statement at all (V7).
                "UPDATE chats SET title = ?2, updated_at = ?4 WHERE id = ?1"
            })?
            .execute((
                id.to_string(),
                &chat.title,
                chat.privacy.as_str(),
                time::format(&chat.updated_at),
            ))?;
        Ok(chat)
    }
}

//! Messages of a chat. A message's effective privacy is the stricter of its
//! own level and its chat's.

use acode_protocol::{Entity, Id, Privacy};
use rusqlite::Row;
use serde::Serialize;

use crate::chats::Chat;
use crate::error::Result;
use crate::record::{Record, id_column, parsed_column, require};
use crate::text_enum::text_enum;
use crate::time::{self, Time};
use crate::{Tx, validate};

text_enum!(
    "role",
    /// Who wrote a message.
    Role { User = "user", Assistant = "assistant", System = "system", Tool = "tool" }
);

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: Id,
    pub chat_id: Id,
    pub role: Role,
    pub content: String,
    pub privacy: Privacy,
    pub created_at: Time,
    pub updated_at: Time,
}

#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: Option<Id>,
    pub chat_id: Id,
    pub role: Role,
    pub content: String,
    pub privacy: Privacy,
}

impl NewMessage {
    pub fn new(chat_id: Id, role: Role, content: impl Into<String>) -> Self {
        NewMessage {
            id: None,
            chat_id,
            role,
            content: content.into(),
            privacy: Privacy::Full,
        }
    }

    pub fn privacy(mut self, privacy: Privacy) -> Self {
        self.privacy = privacy;
        self
    }
}

#[derive(Clone, Debug, Default)]
pub struct MessagePatch {
    pub content: Option<String>,
    pub privacy: Option<Privacy>,
}

impl Record for Message {
    const ENTITY: Entity = Entity::Message;
    const COLUMNS: &'static str = "id, chat_id, role, content, privacy, created_at, updated_at";
    const PARENT: Option<&'static str> = Some("chat_id");
    const HAS_STATUS: bool = false;
    const HAS_PRIVACY: bool = true;

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Message {
            id: id_column(row, 0)?,
            chat_id: id_column(row, 1)?,
            role: parsed_column(row, 2)?,
            content: row.get(3)?,
            privacy: parsed_column(row, 4)?,
            created_at: time::column(row, 5)?,
            updated_at: time::column(row, 6)?,
        })
    }
}

impl Tx<'_> {
    pub fn add_message(&self, new: &NewMessage) -> Result<Message> {
        validate::body("content", &new.content)?;
        require(self, Entity::Chat, new.chat_id)?;
        let now = time::now();
        let msg = Message {
            id: new.id.unwrap_or_default(),
            chat_id: new.chat_id,
            role: new.role,
            content: new.content.clone(),
            privacy: new.privacy,
            created_at: now,
            updated_at: now,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO messages (id, chat_id, role, content, privacy, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )?
            .execute((
                msg.id.to_string(),
                msg.chat_id.to_string(),
                msg.role.as_str(),
                &msg.content,
                msg.privacy.as_str(),
                time::format(&now),
            ))?;
        Ok(msg)
    }

    pub fn update_message(&self, id: Id, patch: &MessagePatch) -> Result<Message> {
        let mut msg: Message = self.get(id)?;
        if let Some(content) = &patch.content {
            validate::body("content", content)?;
            msg.content = content.clone();
        }
        if let Some(privacy) = patch.privacy {
            msg.privacy = privacy;
        }
        msg.updated_at = time::now();
        self.conn
            .prepare_cached(if patch.privacy.is_some() {
                "UPDATE messages SET content = ?2, privacy = ?3, updated_at = ?4 WHERE id = ?1"
            } else {
                // Without privacy in the SET list the privacy-change trigger
                // is not part of the statement at all (V7).
                "UPDATE messages SET content = ?2, updated_at = ?4 WHERE id = ?1"
            })?
            .execute((
                id.to_string(),
                &msg.content,
                msg.privacy.as_str(),
                time::format(&msg.updated_at),
            ))?;
        Ok(msg)
    }

    /// The message's level as synced: the stricter of its own and its chat's.
    pub fn effective_privacy(&self, msg: &Message) -> Result<Privacy> {
        let chat: Chat = self.get(msg.chat_id)?;
        Ok(msg.privacy.stricter(chat.privacy))
    }
}

//! `acode chat …`: create, list, show, rename, delete chats and change
//! their privacy.

use std::fmt;

use acode_store::time::Time;
use acode_store::{Chat, ChatPatch, Entity, Id, NewChat, Privacy, Store, StoreError, Tx};
use serde::Serialize;

use super::msg::{self, MessageRow};
use super::{Ctx, list_all, parse_id, sync_status};
use crate::cli::ChatCommand;
use crate::output;

#[derive(Serialize)]
pub struct ChatRow {
    pub id: Id,
    pub title: String,
    pub privacy: Privacy,
    pub sync_status: &'static str,
    pub created_at: Time,
    pub updated_at: Time,
}

impl ChatRow {
    fn new(tx: &Tx<'_>, chat: Chat) -> Result<ChatRow, StoreError> {
        let label = sync_status(tx, Entity::Chat, chat.id, chat.privacy)?;
        Ok(ChatRow::labelled(chat, label))
    }

    fn labelled(chat: Chat, sync_status: &'static str) -> ChatRow {
        ChatRow {
            sync_status,
            id: chat.id,
            title: chat.title,
            privacy: chat.privacy,
            created_at: chat.created_at,
            updated_at: chat.updated_at,
        }
    }
}

impl fmt::Display for ChatRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chat {} {:?} ({}, {})",
            self.id, self.title, self.privacy, self.sync_status
        )
    }
}

#[derive(Serialize)]
pub struct ChatList {
    pub chats: Vec<ChatRow>,
}

impl fmt::Display for ChatList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.chats.is_empty() {
            return write!(f, "No chats yet: `acode chat new TITLE` creates one.");
        }
        let mut table = output::table(["Id", "Title", "Privacy", "Sync"]);
        for c in &self.chats {
            table.add_row([
                c.id.to_string(),
                output::preview(&c.title, 50),
                c.privacy.to_string(),
                c.sync_status.to_owned(),
            ]);
        }
        f.write_str(&output::render(&table))
    }
}

#[derive(Serialize)]
struct ChatShow {
    #[serde(flatten)]
    chat: ChatRow,
    messages: Vec<MessageRow>,
}

impl fmt::Display for ChatShow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.chat)?;
        write!(f, "{}", msg::MessageList::table(&self.messages))
    }
}

/// A new chat: the row (with its `id`), said as "Created …".
#[derive(Serialize)]
#[serde(transparent)]
struct Created(ChatRow);

impl fmt::Display for Created {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Created {}", self.0)
    }
}

#[derive(Serialize)]
struct Deleted {
    deleted: Id,
}

impl fmt::Display for Deleted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Deleted chat {} and its messages", self.deleted)
    }
}

pub fn run(ctx: &Ctx, cmd: ChatCommand) -> anyhow::Result<()> {
    let (_, _, mut store) = ctx.open()?;
    match cmd {
        ChatCommand::New { title, privacy } => {
            let new = NewChat::new(title).privacy(privacy.into());
            let chat = store.write(|tx| ChatRow::new(tx, tx.create_chat(&new)?))?;
            ctx.print(&Created(chat))
        }
        ChatCommand::List => ctx.print(&list(&mut store)?),
        ChatCommand::Show { id } => {
            let id = parse_id(&id)?;
            ctx.print(&store.read(|tx| {
                let chat: Chat = tx.get(id)?;
                let messages = msg::rows(tx, &chat)?;
                Ok(ChatShow {
                    chat: ChatRow::new(tx, chat)?,
                    messages,
                })
            })?)
        }
        ChatCommand::Rename { id, title } => update(
            ctx,
            &mut store,
            &id,
            ChatPatch {
                title: Some(title),
                privacy: None,
            },
        ),
        ChatCommand::Privacy { id, level } => update(
            ctx,
            &mut store,
            &id,
            ChatPatch {
                title: None,
                privacy: Some(level.into()),
            },
        ),
        ChatCommand::Delete { id } => {
            let id = parse_id(&id)?;
            store.write(|tx| tx.delete::<Chat>(id))?;
            ctx.print(&Deleted { deleted: id })
        }
    }
}

fn update(ctx: &Ctx, store: &mut Store, id: &str, patch: ChatPatch) -> anyhow::Result<()> {
    let id = parse_id(id)?;
    let chat = store.write(|tx| ChatRow::new(tx, tx.update_chat(id, &patch)?))?;
    ctx.print(&chat)
}

/// Every chat, oldest first.
pub fn list(store: &mut Store) -> Result<ChatList, StoreError> {
    store.read(|tx| {
        let chats = list_all::<Chat>(tx, None)?;
        let keys: Vec<_> = chats.iter().map(|c| (c.id, c.privacy)).collect();
        let labels = tx.sync_labels(Entity::Chat, &keys)?;
        let chats = chats
            .into_iter()
            .map(|c| {
                let label = labels.get(&c.id).copied().unwrap_or("synced");
                ChatRow::labelled(c, label)
            })
            .collect();
        Ok(ChatList { chats })
    })
}

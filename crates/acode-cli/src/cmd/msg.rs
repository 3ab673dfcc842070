//! `acode msg …`: add, list and import the messages of a chat.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use acode_store::time::Time;
use acode_store::{Chat, Entity, Id, Message, NewMessage, Privacy, Role, StoreError, Tx, import};
use serde::Serialize;

use super::{Ctx, list_all, parse_id};
use crate::cli::MsgCommand;
use crate::output;

#[derive(Serialize)]
pub struct MessageRow {
    pub id: Id,
    pub chat_id: Id,
    pub role: Role,
    pub content: String,
    /// The level it is synced with: the stricter of its own and its chat's.
    pub privacy: Privacy,
    pub sync_status: &'static str,
    pub created_at: Time,
}

impl MessageRow {
    fn new(msg: Message, privacy: Privacy, sync_status: &'static str) -> MessageRow {
        MessageRow {
            sync_status,
            id: msg.id,
            chat_id: msg.chat_id,
            role: msg.role,
            content: msg.content,
            privacy,
            created_at: msg.created_at,
        }
    }
}

/// A chat's messages, oldest first.
pub fn rows(tx: &Tx<'_>, chat: &Chat) -> Result<Vec<MessageRow>, StoreError> {
    let messages = list_all::<Message>(tx, Some(chat.id))?;
    // The level each is synced with: the stricter of its own and its chat's.
    let keys: Vec<_> = messages
        .iter()
        .map(|m| (m.id, m.privacy.stricter(chat.privacy)))
        .collect();
    let labels = tx.sync_labels(Entity::Message, &keys)?;
    Ok(messages
        .into_iter()
        .zip(keys)
        .map(|(m, (id, privacy))| {
            let label = labels.get(&id).copied().unwrap_or("synced");
            MessageRow::new(m, privacy, label)
        })
        .collect())
}

#[derive(Serialize)]
pub struct MessageList {
    messages: Vec<MessageRow>,
}

impl MessageList {
    /// The messages as a table (or a line saying there are none).
    pub fn table(messages: &[MessageRow]) -> String {
        if messages.is_empty() {
            return "No messages.".to_owned();
        }
        let mut table = output::table(["Id", "Role", "Sync", "Content"]);
        for m in messages {
            table.add_row([
                m.id.to_string(),
                m.role.to_string(),
                m.sync_status.to_owned(),
                output::preview(&m.content, 60),
            ]);
        }
        output::render(&table)
    }
}

impl fmt::Display for MessageList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Self::table(&self.messages))
    }
}

#[derive(Serialize)]
struct Added {
    id: Id,
    chat_id: Id,
    role: Role,
}

impl fmt::Display for Added {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Added {} message {} to chat {}",
            self.role, self.id, self.chat_id
        )
    }
}

#[derive(Serialize)]
struct Imported {
    chat_id: Id,
    imported: usize,
}

impl fmt::Display for Imported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Imported {} messages into chat {}",
            self.imported, self.chat_id
        )
    }
}

pub fn run(ctx: &Ctx, cmd: MsgCommand) -> anyhow::Result<()> {
    let (_, _, mut store) = ctx.open()?;
    match cmd {
        MsgCommand::Add {
            chat_id,
            text,
            role,
        } => {
            let new = NewMessage::new(parse_id(&chat_id)?, role.into(), text);
            let msg = store.write(|tx| tx.add_message(&new))?;
            ctx.print(&Added {
                id: msg.id,
                chat_id: msg.chat_id,
                role: msg.role,
            })
        }
        MsgCommand::List { chat_id } => {
            let id = parse_id(&chat_id)?;
            let messages = store.read(|tx| rows(tx, &tx.get::<Chat>(id)?))?;
            ctx.print(&MessageList { messages })
        }
        MsgCommand::Import { chat_id, file } => {
            let chat_id = parse_id(&chat_id)?;
            let input = read_input(file.as_deref())?;
            let messages = import::parse_lines(&input, chat_id)?;
            let progress =
                crate::progress::Progress::new(ctx.json, messages.len() as u64, "importing");
            let imported = store.write(|tx| {
                tx.get::<Chat>(chat_id)?;
                for m in &messages {
                    tx.add_message(m)?;
                    progress.inc();
                }
                Ok(messages.len())
            })?;
            progress.finish();
            ctx.print(&Imported { chat_id, imported })
        }
    }
}

/// The file's bytes, or standard input's for `-` or no file.
fn read_input(file: Option<&Path>) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    let (what, read) = match file {
        None => (
            PathBuf::from("standard input"),
            std::io::stdin().read_to_end(&mut bytes),
        ),
        Some(p) if p == Path::new("-") => (
            PathBuf::from("standard input"),
            std::io::stdin().read_to_end(&mut bytes),
        ),
        Some(p) => (
            p.to_path_buf(),
            std::fs::File::open(p).and_then(|mut f| f.read_to_end(&mut bytes)),
        ),
    };
    read.map_err(|source| StoreError::Io {
        context: format!("reading {}", what.display()),
        source,
    })?;
    Ok(bytes)
}

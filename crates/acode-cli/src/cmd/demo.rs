//! `acode demo`: a workspace with sample data to look around in — chats of
//! each privacy level and one agent run — then what `chat list` and
//! `sync status` say about it. Data is added once; running it again only
//! shows the workspace.

use std::fmt;
use std::path::PathBuf;

use acode_store::{
    Chat, NewArtifact, NewChat, NewMessage, NewSession, NewStep, NewTask, NewToolCall, Privacy,
    Role, RunStatus, StoreError, Tx, Workspace,
};
use serde::Serialize;

use super::chat::{self, ChatList};
use super::sync::{self, StatusView};
use super::{Ctx, list_all};
use crate::cli::DemoArgs;

#[derive(Serialize)]
struct Demo {
    workspace: PathBuf,
    device_id: String,
    /// Whether this run added the sample data (false: it was already there).
    seeded: bool,
    #[serde(flatten)]
    chats: ChatList,
    sync: StatusView,
}

impl fmt::Display for Demo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.workspace.display();
        if self.seeded {
            writeln!(
                f,
                "Demo workspace created at {dir} (device {})",
                self.device_id
            )?;
        } else {
            writeln!(
                f,
                "Demo workspace at {dir} already has its data (device {})",
                self.device_id
            )?;
        }
        writeln!(f, "\n{}\n", self.chats)?;
        writeln!(f, "{}\n", self.sync)?;
        write!(
            f,
            "Look around: acode --workspace {dir} chat list (or runs list, db status, sync status)"
        )
    }
}

pub fn run(ctx: &Ctx, args: DemoArgs) -> anyhow::Result<()> {
    let (ws, mut store) = Workspace::init(&args.dir, Some("demo"))?;
    let config = ws.config()?;
    let seeded = store.write(|tx| {
        if !list_all::<Chat>(tx, None)?.is_empty() {
            return Ok(false);
        }
        seed(tx)?;
        Ok(true)
    })?;
    let workspace = std::path::absolute(ws.root()).unwrap_or_else(|_| ws.root().to_path_buf());
    ctx.print(&Demo {
        workspace,
        device_id: store.device_id().to_owned(),
        seeded,
        chats: chat::list(&mut store)?,
        sync: sync::status_view(&config, &mut store)?,
    })
}

/// The sample data, written in the caller's transaction.
fn seed(tx: &Tx<'_>) -> Result<(), StoreError> {
    chat(
        tx,
        "Offline-first basics",
        Privacy::Full,
        &[
            (Role::User, "What happens to my messages when I'm offline?"),
            (
                Role::Assistant,
                "They are written to the local database and queued in the outbox; sync uploads them once a remote is reachable.",
            ),
            (Role::User, "And if two devices edit the same chat?"),
            (
                Role::Assistant,
                "The conflict policy decides, and the losing version is kept under .agent/conflicts/.",
            ),
        ],
    )?;
    chat(
        tx,
        "Customer call notes",
        Privacy::Redacted,
        &[
            (
                Role::User,
                "Call with ACME about their renewal: budget approved.",
            ),
            (
                Role::Assistant,
                "Noted. This chat is redacted: its text never leaves this device, only its shape is synced.",
            ),
        ],
    )?;
    chat(
        tx,
        "Private scratchpad",
        Privacy::LocalOnly,
        &[(Role::User, "Nothing in this chat is ever uploaded.")],
    )?;

    let session = tx.create_session(&NewSession {
        status: RunStatus::Succeeded,
        ..NewSession::new("Fix the failing date test")
    })?;
    let task = tx.create_task(&NewTask {
        id: None,
        session_id: session.id,
        title: "Reproduce the failure".into(),
        status: RunStatus::Succeeded,
    })?;
    let step = tx.create_step(&NewStep {
        id: None,
        task_id: task.id,
        kind: "test".into(),
        status: RunStatus::Succeeded,
        input: Some("run the date tests".into()),
    })?;
    tx.create_tool_call(&NewToolCall {
        id: None,
        step_id: step.id,
        tool: "shell".into(),
        arguments: r#"{"command":"cargo test dates"}"#.into(),
        status: RunStatus::Succeeded,
    })?;
    tx.create_artifact(&NewArtifact {
        id: None,
        session_id: session.id,
        step_id: Some(step.id),
        name: "test-output.txt".into(),
        media_type: "text/plain".into(),
        body: "test dates::parses_leap_day ... FAILED\n".into(),
    })?;
    Ok(())
}

fn chat(
    tx: &Tx<'_>,
    title: &str,
    privacy: Privacy,
    messages: &[(Role, &str)],
) -> Result<(), StoreError> {
    let chat = tx.create_chat(&NewChat::new(title).privacy(privacy))?;
    for (role, text) in messages {
        tx.add_message(&NewMessage::new(chat.id, *role, *text))?;
    }
    Ok(())
}

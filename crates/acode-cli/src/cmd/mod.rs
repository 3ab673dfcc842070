//! One module per command group. Each finds the workspace through [`Ctx`],
//! calls the store and prints a view: a struct that is `Serialize` (the
//! `--json` document) and `Display` (the text).

mod admin;
mod backup;
mod chat;
mod codes;
mod db;
mod demo;
mod export;
mod health;
mod init;
pub mod migrate;
mod msg;
mod runs;
mod serve;
mod sync;

use std::path::PathBuf;

use acode_config::Config;
use acode_store::record::MAX_PAGE;
use acode_store::{
    Entity, Id, ListQuery, Privacy, Record, Store, StoreError, Tx, Workspace, WorkspaceError,
};
use clap::CommandFactory;
use serde::Serialize;

use crate::cli::{Cli, Command};
use crate::output;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx {
        workspace: cli.workspace,
        json: cli.json,
    };
    match cli.command {
        Command::Init(args) => init::run(&ctx, args),
        Command::Chat(cmd) => chat::run(&ctx, cmd),
        Command::Msg(cmd) => msg::run(&ctx, cmd),
        Command::Runs(cmd) => runs::run(&ctx, cmd),
        Command::Db(cmd) => db::run(&ctx, cmd),
        Command::Sync(cmd) => sync::run(&ctx, cmd),
        Command::Health => health::run(&ctx),
        Command::Export(args) => export::run(&ctx, args),
        Command::Serve(args) => serve::run(args),
        Command::Migrate(cmd) => migrate::run(&ctx, cmd),
        Command::Admin(cmd) => admin::run(&ctx, cmd),
        Command::Demo(args) => demo::run(&ctx, args),
        Command::Codes => codes::run(&ctx),
        Command::Help { topic } if topic.first().is_some_and(|t| t == "codes") => codes::run(&ctx),
        Command::Help { topic } => help(&topic),
    }
}

/// `acode help chat new`: the same as `acode chat new --help`.
fn help(topic: &[String]) -> anyhow::Result<()> {
    let args = std::iter::once("acode")
        .chain(topic.iter().map(String::as_str))
        .chain(std::iter::once("--help"));
    match Cli::command().try_get_matches_from(args) {
        Err(e) => Err(e.into()),
        Ok(_) => Ok(()),
    }
}

/// What every command needs: where the workspace is and how to print.
pub struct Ctx {
    workspace: Option<PathBuf>,
    json: bool,
}

impl Ctx {
    pub fn print<T: Serialize + std::fmt::Display>(&self, view: &T) -> anyhow::Result<()> {
        output::print(view, self.json)
    }

    /// The workspace named by `--workspace`, `ACODE_WORKSPACE` or found
    /// above the current directory.
    pub fn workspace(&self) -> Result<Workspace, StoreError> {
        let ws = Workspace::discover(self.workspace.as_deref(), env_workspace(), &cwd()?)?;
        tracing::debug!(root = %ws.root().display(), "workspace");
        Ok(ws)
    }

    /// The directory `init` works on: `--workspace`, `ACODE_WORKSPACE`, or
    /// the current directory.
    pub fn init_dir(&self) -> Result<PathBuf, StoreError> {
        let named = self.workspace.clone().or_else(env_workspace);
        let cwd = cwd()?;
        Ok(named.map_or_else(|| cwd.clone(), |dir| cwd.join(dir)))
    }

    /// The workspace, its config, and its store with pending migrations
    /// applied.
    pub fn open(&self) -> Result<(Workspace, Config, Store), WorkspaceError> {
        let ws = self.workspace()?;
        let (config, store) = ws.open(true)?;
        Ok((ws, config, store))
    }

    /// [`Ctx::open`] without migrating, for looking at the schema.
    pub fn open_unmigrated(&self) -> Result<(Workspace, Config, Store), WorkspaceError> {
        let ws = self.workspace()?;
        let (config, store) = ws.open(false)?;
        Ok((ws, config, store))
    }
}

/// `ACODE_WORKSPACE`, when set and not empty.
fn env_workspace() -> Option<PathBuf> {
    std::env::var_os("ACODE_WORKSPACE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn cwd() -> Result<PathBuf, StoreError> {
    std::env::current_dir().map_err(|source| StoreError::Io {
        context: "reading the current directory".into(),
        source,
    })
}

/// An id from the command line; a malformed one is ACODE-STORE-002.
pub fn parse_id(text: &str) -> Result<Id, StoreError> {
    text.parse().map_err(|e: acode_protocol::ParseIdError| {
        StoreError::invalid("id", format!("{:?} is not a 26-character ULID", e.0))
    })
}

/// Every row of a list, page after page.
pub fn list_all<R: Record>(tx: &Tx<'_>, parent: Option<Id>) -> Result<Vec<R>, StoreError> {
    let mut query = ListQuery {
        parent,
        limit: MAX_PAGE,
        ..ListQuery::default()
    };
    let mut rows = Vec::new();
    loop {
        let page = tx.list::<R>(&query)?;
        rows.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(rows),
        }
    }
}

/// One row's sync status as users see it (see `Tx::sync_labels`); lists
/// ask for all their rows at once instead.
pub fn sync_status(
    tx: &Tx<'_>,
    entity: Entity,
    id: Id,
    effective: Privacy,
) -> Result<&'static str, StoreError> {
    Ok(tx
        .sync_labels(entity, &[(id, effective)])?
        .remove(&id)
        .unwrap_or("synced"))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

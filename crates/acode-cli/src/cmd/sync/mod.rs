//! `acode sync …`: status, now, retry, pause/resume, queue, conflicts and
//! the foreground worker. Each command opens the workspace, calls
//! `acode-sync` (or the store) and prints a view.

mod inspect;
mod run;

use std::fmt;

use acode_store::Store;
use acode_sync::{Mode, SyncStatus};
use chrono::Utc;
use serde::Serialize;

use super::Ctx;
use crate::cli::SyncCommand;
use crate::output;

pub fn run(ctx: &Ctx, cmd: SyncCommand) -> anyhow::Result<()> {
    match cmd {
        SyncCommand::Status => {
            let (_, config, mut store) = ctx.open()?;
            ctx.print(&StatusView(acode_sync::status(
                &config,
                &mut store,
                Utc::now().timestamp_millis(),
            )?))
        }
        SyncCommand::Pause => pause(ctx, true),
        SyncCommand::Resume => pause(ctx, false),
        SyncCommand::Now => run::now(ctx),
        SyncCommand::Retry { force, ids } => run::retry(ctx, force, &ids),
        SyncCommand::Run => run::worker(ctx),
        SyncCommand::Queue { errors } => inspect::queue(ctx, errors),
        SyncCommand::Conflicts { show, ack, all } => inspect::conflicts(ctx, show, ack, all),
    }
}

/// The status of a store, for `acode demo` and `sync status`.
pub fn status_view(config: &acode_config::Config, store: &mut Store) -> anyhow::Result<StatusView> {
    Ok(StatusView(acode_sync::status(
        config,
        store,
        Utc::now().timestamp_millis(),
    )?))
}

#[derive(Serialize)]
#[serde(transparent)]
pub struct StatusView(pub SyncStatus);

impl fmt::Display for StatusView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        let now = Utc::now();
        let when = |t: &Option<String>| {
            t.as_deref()
                .map_or("never".to_owned(), |t| output::ago(t, now))
        };
        let plural =
            |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        writeln!(f, "Sync status")?;
        writeln!(f, "{}", "─".repeat(28))?;
        writeln!(f, "Mode:        {} ({})", mode_word(s.mode), s.reason)?;
        if let Some(worker) = &s.worker {
            writeln!(f, "Worker:      {worker}")?;
        }
        writeln!(
            f,
            "Last push:   {:<12}Last pull: {}",
            when(&s.last_push_at),
            when(&s.last_pull_at)
        )?;
        writeln!(
            f,
            "Queue:       {} pending, {} failed, {}",
            s.pending,
            s.failed,
            plural(s.conflicts, "conflict", "conflicts")
        )?;
        if s.inbox_errors > 0 {
            writeln!(
                f,
                "Set aside:   {} pulled changes (see `acode sync queue --errors`)",
                s.inbox_errors
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "Local → remote   pending {} · synced today {} · failed {}",
            s.pending, s.synced_today, s.failed
        )?;
        write!(
            f,
            "Remote → local   downloaded today {} · lag {:.1}s",
            s.downloaded_today, s.lag_seconds
        )
    }
}

pub fn mode_word(mode: Mode) -> &'static str {
    match mode {
        Mode::Online => "online",
        Mode::Offline => "offline",
        Mode::Paused => "paused",
    }
}

#[derive(Serialize)]
struct Paused {
    paused: bool,
}

impl fmt::Display for Paused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.paused {
            write!(f, "Sync paused. Changes keep queueing locally.")
        } else {
            write!(f, "Sync resumed.")
        }
    }
}

fn pause(ctx: &Ctx, paused: bool) -> anyhow::Result<()> {
    let (_, _, mut store) = ctx.open()?;
    store.write(|tx| tx.set_paused(paused))?;
    ctx.print(&Paused { paused })
}

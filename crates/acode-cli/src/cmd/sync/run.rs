//! `sync now`, `sync retry` and `sync run`: the commands that talk to the
//! remote.

use std::fmt;
use std::time::Instant;

use acode_config::Config;
use acode_store::{Id, Store, Workspace};
use acode_sync::{EngineConfig, Mode, RemoteTransport, SyncEngine, SyncReport};
use serde::Serialize;

use super::mode_word;
use crate::cmd::Ctx;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn engine_config(ws: &Workspace, config: &Config) -> EngineConfig {
    EngineConfig::from_config(config, Some(ws.root().join(".agent").join("conflicts")))
}

fn transport(config: &Config, store: &Store) -> anyhow::Result<Option<RemoteTransport>> {
    Ok(acode_sync::transport_for(config, store.device_id())?)
}

#[derive(Serialize)]
struct NowView {
    #[serde(flatten)]
    report: SyncReport,
    /// Why nothing was sent, when nothing could be.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    seconds: f64,
}

impl fmt::Display for NowView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        writeln!(f, "Syncing…")?;
        writeln!(f, "  ↑ uploaded   {}", r.uploaded)?;
        writeln!(f, "  ↓ downloaded {}", r.downloaded)?;
        if r.conflicts > 0 {
            writeln!(
                f,
                "  ⚠ conflicts  {} (see `acode sync conflicts`)",
                r.conflicts
            )?;
        }
        if r.failed > 0 {
            writeln!(
                f,
                "  ✗ failed     {} (see `acode sync queue --errors`)",
                r.failed
            )?;
        }
        if r.mode != Mode::Online {
            let why = self
                .reason
                .as_deref()
                .or(r.last_error.as_deref())
                .unwrap_or("");
            writeln!(f, "Mode: {} {why}", mode_word(r.mode))?;
        } else if let Some(e) = &r.last_error {
            writeln!(f, "Last error: {e}")?;
        }
        write!(f, "Done in {:.1}s.", self.seconds)
    }
}

/// `acode sync now`.
pub fn now(ctx: &Ctx) -> anyhow::Result<()> {
    let (ws, config, mut store) = ctx.open()?;
    let started = Instant::now();
    let Some(transport) = transport(&config, &store)? else {
        let status =
            acode_sync::status(&config, &mut store, chrono::Utc::now().timestamp_millis())?;
        let report = SyncReport {
            mode: Mode::Offline,
            ..SyncReport::default()
        };
        return ctx.print(&NowView {
            report,
            reason: Some(status.reason),
            seconds: 0.0,
        });
    };
    let cfg = engine_config(&ws, &config);
    let report = runtime()?.block_on(acode_sync::sync_now_or_ask(&mut store, &transport, &cfg))?;
    ctx.print(&NowView {
        report,
        reason: None,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[derive(Serialize)]
struct Retried {
    id: String,
    entity: String,
    entity_id: String,
    result: String,
}

#[derive(Serialize)]
struct RetryView {
    retried: Vec<Retried>,
}

impl fmt::Display for RetryView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.retried.is_empty() {
            return write!(f, "Nothing to retry.");
        }
        writeln!(f, "Retrying {} entries…", self.retried.len())?;
        for (i, r) in self.retried.iter().enumerate() {
            let mark = if r.result == "synced" { "✓" } else { "✗" };
            write!(f, "  {mark} {} {}: {}", r.entity, r.entity_id, r.result)?;
            if i + 1 < self.retried.len() {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

/// `acode sync retry [--force] [ID…]`: IDs are entry keys or row ids.
pub fn retry(ctx: &Ctx, force: bool, ids: &[String]) -> anyhow::Result<()> {
    let (ws, config, mut store) = ctx.open()?;
    let wanted: Vec<Id> = ids
        .iter()
        .map(|s| super::super::parse_id(s))
        .collect::<Result<_, _>>()?;
    let keys: Vec<Id> = store.read(|tx| {
        Ok(tx
            .queue()?
            .into_iter()
            .filter(|e| {
                wanted.is_empty() || wanted.contains(&e.key) || wanted.contains(&e.entity_id)
            })
            .map(|e| e.key)
            .collect())
    })?;
    if !wanted.is_empty() && keys.is_empty() {
        return ctx.print(&RetryView {
            retried: Vec::new(),
        });
    }
    let retried = store.write(|tx| tx.retry_failed(&keys, force))?;
    if let Some(transport) = transport(&config, &store)? {
        let cfg = engine_config(&ws, &config);
        runtime()?.block_on(acode_sync::sync_now_or_ask(&mut store, &transport, &cfg))?;
    }
    let mut out = Vec::new();
    for (_, fresh, entity, entity_id) in retried {
        let state = store.read(|tx| tx.row_state(entity, entity_id))?;
        let result = match state {
            Some(s) if s.status == acode_store::RowStatus::Failed => {
                format!("still failing — {}", s.last_error.unwrap_or_default())
            }
            Some(s) => s.status.as_str().to_string(),
            None => "settled".to_string(),
        };
        out.push(Retried {
            id: fresh.to_string(),
            entity: entity.to_string(),
            entity_id: entity_id.to_string(),
            result,
        });
    }
    ctx.print(&RetryView { retried: out })
}

/// `acode sync run`: the worker in the foreground until SIGINT or SIGTERM.
pub fn worker(ctx: &Ctx) -> anyhow::Result<()> {
    let (ws, config, store) = ctx.open()?;
    let Some(transport) = transport(&config, &store)? else {
        anyhow::bail!(acode_sync::SyncError::Remote {
            code: acode_protocol::ErrorCode::ConfigInvalidValue,
            message: "sync.remote.url is not set (or sync.enabled is false): there is nothing to sync with".into(),
        });
    };
    let cfg = engine_config(&ws, &config);
    runtime()?.block_on(async move {
        let engine = SyncEngine::start(store, transport, cfg)?;
        eprintln!("acode sync worker running; stop with Ctrl-C");
        crate::cmd::shutdown_signal().await;
        engine.stop().await?;
        eprintln!("acode sync worker stopped");
        Ok(())
    })
}

//! `sync queue` and `sync conflicts`: what waits, what failed, what lost.

use std::fmt;

use chrono::Utc;
use serde::Serialize;

use crate::cmd::Ctx;
use crate::output;

#[derive(Serialize)]
struct QueueEntry {
    key: String,
    entity: String,
    entity_id: String,
    status: String,
    retries: i64,
    last_error: Option<String>,
    next_retry_at: Option<String>,
}

#[derive(Serialize)]
struct SetAside {
    seq: i64,
    entity: String,
    entity_id: String,
    status: String,
    error: Option<String>,
}

#[derive(Serialize)]
struct QueueView {
    entries: Vec<QueueEntry>,
    /// Pulled changes that could not be applied (with `--errors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    inbox: Option<Vec<SetAside>>,
}

impl fmt::Display for QueueView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entries.is_empty() && self.inbox.as_ref().is_none_or(Vec::is_empty) {
            return write!(f, "The queue is empty.");
        }
        let mut t = output::table(["Entity", "Status", "Retries", "Next try", "Last error"]);
        for e in &self.entries {
            let next = match (&e.next_retry_at, e.status.as_str()) {
                (_, "failed") => "-".to_string(),
                (Some(at), _) => at.clone(),
                (None, _) => "now".to_string(),
            };
            t.add_row(vec![
                format!("{} {}", e.entity, e.entity_id),
                e.status.clone(),
                e.retries.to_string(),
                next,
                e.last_error.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        write!(f, "{}", output::render(&t))?;
        if let Some(inbox) = self.inbox.as_ref().filter(|i| !i.is_empty()) {
            writeln!(f)?;
            writeln!(f, "Pulled changes set aside:")?;
            for i in inbox {
                writeln!(
                    f,
                    "  {} {} (seq {}): {}",
                    i.entity,
                    i.entity_id,
                    i.seq,
                    i.error.as_deref().unwrap_or(&i.status)
                )?;
            }
        }
        Ok(())
    }
}

/// `acode sync queue [--errors]`.
pub fn queue(ctx: &Ctx, errors: bool) -> anyhow::Result<()> {
    let (_, _, mut store) = ctx.open()?;
    let (queue, inbox) = store.read(|tx| Ok((tx.queue()?, tx.inbox()?)))?;
    let entries = queue
        .into_iter()
        .filter(|e| !errors || e.status == acode_store::EntryStatus::Failed)
        .map(|e| QueueEntry {
            key: e.key.to_string(),
            entity: e.entity.to_string(),
            entity_id: e.entity_id.to_string(),
            status: if e.status == acode_store::EntryStatus::InFlight {
                "sending".into()
            } else {
                e.status.to_string()
            },
            retries: e.attempts,
            last_error: e.last_error,
            next_retry_at: e.next_retry_at.and_then(|ms| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }),
        })
        .collect();
    let inbox = errors.then(|| {
        inbox
            .into_iter()
            .map(|i| SetAside {
                seq: i.change.seq,
                entity: i.change.entity.to_string(),
                entity_id: i.change.id.to_string(),
                status: i.status,
                error: i.error,
            })
            .collect()
    });
    ctx.print(&QueueView { entries, inbox })
}

#[derive(Serialize)]
struct ConflictsView {
    conflicts: Vec<acode_store::sync::conflicts::ConflictRecord>,
    /// With `--show`: the one conflict asked for, losing version included.
    #[serde(skip)]
    detail: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    acknowledged: Option<usize>,
}

impl fmt::Display for ConflictsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.acknowledged {
            return write!(f, "{n} conflict(s) marked as seen.");
        }
        let n = self.conflicts.len();
        write!(f, "{n} {}", if n == 1 { "conflict" } else { "conflicts" })?;
        let now = Utc::now();
        for c in &self.conflicts {
            let title = c.loser["data"]["title"]
                .as_str()
                .map(|t| format!(" {t:?}"))
                .unwrap_or_default();
            let at = chrono::DateTime::from_timestamp_millis(c.created_at)
                .map(|t| output::ago(&t.to_rfc3339(), now))
                .unwrap_or_default();
            let outcome = if c.resolution == "remote_kept" {
                "remote kept"
            } else {
                "local applied"
            };
            write!(
                f,
                "\n#{} {} {}{title}\n  local v{} vs remote v{} → {outcome} ({at})",
                c.id, c.entity, c.entity_id, c.local_version, c.remote_version
            )?;
            if let Some(p) = &c.preserved_path {
                write!(f, "\n  losing version kept in {p}")?;
            }
            if self.detail {
                let loser = serde_json::to_string_pretty(&c.loser).unwrap_or_default();
                write!(f, "\n{loser}")?;
            }
        }
        Ok(())
    }
}

/// `acode sync conflicts [--show ID] [--ack ID | --all]`.
pub fn conflicts(ctx: &Ctx, show: Option<i64>, ack: Option<i64>, all: bool) -> anyhow::Result<()> {
    let (_, _, mut store) = ctx.open()?;
    if ack.is_some() || all {
        let now = Utc::now().timestamp_millis();
        let ids: Vec<i64> = ack.into_iter().collect();
        let open = store.read(|tx| tx.conflicts(false))?;
        if let Some(id) = ack.filter(|id| !open.iter().any(|c| c.id == *id)) {
            anyhow::bail!(acode_store::StoreError::not_found("conflict", id));
        }
        let n = store.write(|tx| tx.ack_conflicts(&ids, now))?;
        return ctx.print(&ConflictsView {
            conflicts: Vec::new(),
            detail: false,
            acknowledged: Some(n),
        });
    }
    let mut conflicts = store.read(|tx| tx.conflicts(show.is_some()))?;
    if let Some(id) = show {
        conflicts.retain(|c| c.id == id);
        if conflicts.is_empty() {
            anyhow::bail!(acode_store::StoreError::not_found("conflict", id));
        }
    }
    ctx.print(&ConflictsView {
        conflicts,
        detail: show.is_some(),
        acknowledged: None,
    })
}

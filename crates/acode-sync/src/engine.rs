//! Running the cycles: [`sync_now`] uploads every due batch and downloads
//! until caught up, under the workspace's single-worker lease.

use acode_protocol::Id;
use acode_store::Store;
use acode_store::sync::state::Lease;
use serde::{Deserialize, Serialize};

use crate::config::EngineConfig;
use crate::download::{DownloadOutcome, download_once};
use crate::error::SyncError;
use crate::transport::Transport;
use crate::upload::{self, UploadOutcome};

/// How long a lease lasts without renewal: a crashed worker's lease
/// expires after this.
pub const LEASE_TTL_MS: i64 = 30_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Online,
    Offline,
    Paused,
}

/// What a sync run did (`acode sync now --json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    pub mode: Mode,
    pub uploaded: usize,
    pub downloaded: usize,
    pub conflicts: usize,
    pub failed: usize,
    /// Batches pushed, answered or not.
    pub batches: usize,
    /// Why the remote was unreachable, or the last error of a failed batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Uploads every due entry (batch after batch until none is due) and
/// downloads until caught up. Honours pause. Fails with
/// [`SyncError::LeaseHeld`] while a worker holds the lease.
pub async fn sync_now<T: Transport>(
    store: &mut Store,
    transport: &T,
    cfg: &EngineConfig,
) -> Result<SyncReport, SyncError> {
    let (owner, lease) = take_lease(store, "sync-now", cfg.now())?;
    let report = run_cycles(store, transport, cfg, lease.epoch, Cycles::BOTH).await;
    store.write(|tx| tx.release_lease(&owner))?;
    report
}

/// Takes the workspace's lease as a new owner of `kind` (`sync-now`,
/// `worker`), or says who holds it.
pub(crate) fn take_lease(
    store: &mut Store,
    kind: &str,
    now: i64,
) -> Result<(String, Lease), SyncError> {
    let owner = format!("{kind}:{}:{}", std::process::id(), Id::new());
    match store.write(|tx| tx.acquire_lease(&owner, now, LEASE_TTL_MS, holder_gone))? {
        Some(lease) => Ok((owner, lease)),
        None => {
            let holder = store
                .read(|tx| tx.lease())?
                .map(|l| l.owner)
                .unwrap_or_default();
            Err(SyncError::LeaseHeld(holder))
        }
    }
}

/// How long `sync now` waits for a running worker to serve its request.
pub const ASK_WORKER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// [`sync_now`], or, while a worker holds the lease, a request to that
/// worker to sync now, waiting for its report (§15 rule 13: one worker, and
/// `sync now` does not fight it).
pub async fn sync_now_or_ask<T: Transport>(
    store: &mut Store,
    transport: &T,
    cfg: &EngineConfig,
) -> Result<SyncReport, SyncError> {
    match sync_now(store, transport, cfg).await {
        Err(SyncError::LeaseHeld(holder)) if holder.starts_with("worker:") => {
            ask_worker(store, &holder).await
        }
        other => other,
    }
}

async fn ask_worker(store: &mut Store, holder: &str) -> Result<SyncReport, SyncError> {
    let request = Id::new().to_string();
    store.write(|tx| tx.set_state("sync_request", &request))?;
    let deadline = tokio::time::Instant::now() + ASK_WORKER_TIMEOUT;
    loop {
        let (done, report, lease) = store.read(|tx| {
            Ok((
                tx.state("sync_done")?,
                tx.state("sync_done_report")?,
                tx.lease()?,
            ))
        })?;
        if done.as_deref() == Some(request.as_str()) {
            let report = report.unwrap_or_default();
            return serde_json::from_str(&report).map_err(|e| {
                SyncError::Store(acode_store::StoreError::Internal(format!(
                    "worker report: {e}"
                )))
            });
        }
        let still_held = lease.is_some_and(|l| l.owner == holder && !holder_gone(&l.owner));
        if !still_held || tokio::time::Instant::now() > deadline {
            return Err(SyncError::LeaseHeld(holder.to_string()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A lease owner is `<kind>:<pid>:<ulid>`. On Linux a holder whose process
/// is gone (killed, crashed) is known dead at once, so its lease does not
/// have to run out first; elsewhere the lease expires after its TTL.
pub(crate) fn holder_gone(owner: &str) -> bool {
    let Some(pid) = owner.split(':').nth(1).and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    if pid == std::process::id() {
        return false;
    }
    let proc_fs = std::path::Path::new("/proc/self");
    proc_fs.exists() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Which directions a round runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cycles {
    pub upload: bool,
    pub download: bool,
}

impl Cycles {
    pub const BOTH: Cycles = Cycles {
        upload: true,
        download: true,
    };
}

/// One round of upload-until-idle then download-until-caught-up, fenced by
/// `epoch`; the mode it found is saved for `sync status`.
pub(crate) async fn run_cycles<T: Transport>(
    store: &mut Store,
    transport: &T,
    cfg: &EngineConfig,
    epoch: i64,
    cycles: Cycles,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    if store.read(|tx| tx.paused())? {
        report.mode = Mode::Paused;
        return Ok(report);
    }
    if cycles.upload {
        upload_all(store, transport, cfg, epoch, &mut report).await?;
    }
    if cycles.download && report.mode != Mode::Offline {
        download_all(store, transport, cfg, epoch, &mut report).await?;
    }
    let (mode, why) = match report.mode {
        Mode::Offline => ("offline", report.last_error.clone().unwrap_or_default()),
        _ => ("online", String::new()),
    };
    store.write(|tx| {
        tx.set_state("mode", mode)?;
        tx.set_state("mode_reason", &why)
    })?;
    Ok(report)
}

async fn upload_all<T: Transport>(
    store: &mut Store,
    transport: &T,
    cfg: &EngineConfig,
    epoch: i64,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let stopped = upload::drain(store, transport, cfg, epoch, |outcome| match outcome {
        UploadOutcome::Settled(c) => {
            report.batches += 1;
            report.uploaded += c.uploaded;
            report.conflicts += c.conflicts;
            report.failed += c.failed;
        }
        UploadOutcome::BatchFailed { error, failed } => {
            report.batches += 1;
            report.failed += failed;
            report.last_error = Some(error.clone());
        }
        UploadOutcome::Idle | UploadOutcome::Waiting(_) | UploadOutcome::Offline(_) => {}
    })
    .await?;
    if let UploadOutcome::Offline(why) = stopped {
        report.mode = Mode::Offline;
        report.last_error = Some(why);
    }
    Ok(())
}

async fn download_all<T: Transport>(
    store: &mut Store,
    transport: &T,
    cfg: &EngineConfig,
    epoch: i64,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    loop {
        match download_once(store, transport, cfg, epoch).await? {
            DownloadOutcome::Applied {
                applied,
                conflicts,
                more,
            } => {
                report.downloaded += applied;
                report.conflicts += conflicts;
                if !more {
                    break;
                }
            }
            DownloadOutcome::Offline(why) => {
                report.mode = Mode::Offline;
                report.last_error = Some(why);
                break;
            }
            DownloadOutcome::Failed { code, message } => {
                report.last_error = Some(format!("{code} {message}"));
                break;
            }
        }
    }
    Ok(())
}

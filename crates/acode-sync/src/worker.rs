//! The background worker (DESIGN.md §7; §15 rule 13): `acode sync run` and
//! [`SyncEngine::start`]. It holds the workspace's lease, uploads as soon as
//! a local write lands (it watches `PRAGMA data_version`, so writes from
//! other processes count too), downloads every download-poll interval,
//! obeys pause/resume stored in the database, backs off while the remote is
//! unreachable, and stops gracefully: the batch in flight is settled or
//! left frozen, never half-written.
//!
//! With a transport that long-polls (the sync server), a watcher task holds
//! a pull open at the worker's cursor and wakes the worker as soon as the
//! feed has something new, so another device's change arrives within a
//! second instead of a download-poll interval.

use std::sync::Arc;
use std::time::Duration;

use acode_store::Store;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::EngineConfig;
use crate::engine::{Cycles, LEASE_TTL_MS, Mode, SyncReport, holder_gone, run_cycles, take_lease};
use crate::error::SyncError;
use crate::retry::RetryPolicy;
use crate::transport::Transport;

/// How often the worker looks for local writes and renews its lease.
const TICK: Duration = Duration::from_millis(100);

/// Backoff of reconnect attempts while offline (no retry attempts spent).
const RECONNECT: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    base: Duration::from_secs(1),
    cap: Duration::from_secs(60),
};

/// How long the watcher's pull waits for a change.
const LONG_POLL: Duration = Duration::from_secs(25);

/// A running worker.
pub struct SyncEngine {
    stop: watch::Sender<bool>,
    wake: Arc<Notify>,
    task: JoinHandle<Result<Store, SyncError>>,
}

impl SyncEngine {
    /// Takes the lease and starts the worker on the current tokio runtime.
    /// Fails with [`SyncError::LeaseHeld`] when another worker runs.
    pub fn start<T: Transport + 'static>(
        mut store: Store,
        transport: T,
        cfg: EngineConfig,
    ) -> Result<SyncEngine, SyncError> {
        let (owner, lease) = take_lease(&mut store, "worker", cfg.now())?;
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let transport = Arc::new(transport);
        let cursor = watch::channel(store.read(|tx| tx.cursor())?).0;
        let news = Arc::new(Notify::new());
        let watcher = transport.long_polls().then(|| {
            tokio::spawn(watch_feed(
                transport.clone(),
                cursor.subscribe(),
                news.clone(),
            ))
        });
        let worker = Worker {
            store,
            transport,
            cfg,
            owner,
            epoch: lease.epoch,
            wake: wake.clone(),
            stopped,
            cursor,
            news,
            watcher,
        };
        let task = tokio::spawn(worker.run());
        Ok(SyncEngine { stop, wake, task })
    }

    /// Asks for a sync now (e.g. right after a write in this process).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops after the current step, releases the lease, and gives the
    /// store back.
    pub async fn stop(self) -> Result<Store, SyncError> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(SyncError::Remote {
                code: acode_protocol::ErrorCode::StoreInternal,
                message: format!("the sync worker ended abnormally: {e}"),
            }),
        }
    }
}

struct Worker<T> {
    store: Store,
    transport: Arc<T>,
    cfg: EngineConfig,
    owner: String,
    epoch: i64,
    wake: Arc<Notify>,
    stopped: watch::Receiver<bool>,
    /// The saved cursor, for the watcher.
    cursor: watch::Sender<String>,
    /// Rung by the watcher when the feed has something past the cursor.
    news: Arc<Notify>,
    watcher: Option<JoinHandle<()>>,
}

impl<T: Transport + 'static> Worker<T> {
    async fn run(mut self) -> Result<Store, SyncError> {
        let result = self.run_loop().await;
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
        let released = self.store.write(|tx| tx.release_lease(&self.owner));
        result?;
        released?;
        Ok(self.store)
    }

    async fn run_loop(&mut self) -> Result<(), SyncError> {
        let mut seen_version = self.data_version()?;
        let mut next_download = 0i64;
        let mut next_upload = 0i64;
        let mut offline_streak = 0u32;
        let mut wanted = true;
        let mut served = self.store.read(|tx| tx.state("sync_done"))?;
        while !*self.stopped.borrow() {
            let now = self.cfg.now();
            self.renew(now)?;
            let version = self.data_version()?;
            if version != seen_version {
                seen_version = version;
                wanted = true; // a write landed, here or in another process
            }
            // `sync now` from another process asks this worker to sync.
            let asked = self
                .store
                .read(|tx| tx.state("sync_request"))?
                .filter(|r| Some(r) != served.as_ref());
            let cycles = if asked.is_some() {
                Cycles::BOTH
            } else if offline_streak > 0 {
                // Offline: try again (both ways) only when the backoff ends.
                let retry = now >= next_upload;
                Cycles {
                    upload: retry,
                    download: retry,
                }
            } else {
                Cycles {
                    upload: wanted || now >= next_upload,
                    download: now >= next_download,
                }
            };
            if cycles.upload || cycles.download {
                let report = run_cycles(
                    &mut self.store,
                    &*self.transport,
                    &self.cfg,
                    self.epoch,
                    cycles,
                )
                .await?;
                if cycles.download {
                    let cursor = self.store.read(|tx| tx.cursor())?;
                    self.cursor.send_if_modified(|c| {
                        let moved = *c != cursor;
                        *c = cursor;
                        moved
                    });
                }
                if let Some(request) = asked {
                    let json = serde_json::to_string(&report).unwrap_or_default();
                    self.store.write(|tx| {
                        tx.set_state("sync_done_report", &json)?;
                        tx.set_state("sync_done", &request)
                    })?;
                    served = Some(request);
                }
                seen_version = self.data_version()?;
                wanted = false;
                let now = self.cfg.now();
                if report.mode == Mode::Offline {
                    offline_streak += 1;
                    next_upload = now + millis(RECONNECT.delay(offline_streak, fastrand::f64()));
                } else {
                    offline_streak = 0;
                    if cycles.upload {
                        next_upload = now + millis(self.cfg.upload_poll);
                    }
                    if cycles.download {
                        next_download = now + millis(self.cfg.download_poll);
                    }
                }
                log(&report);
            }
            tokio::select! {
                _ = self.stopped.changed() => {}
                _ = self.wake.notified() => wanted = true,
                _ = self.news.notified() => next_download = 0,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
        Ok(())
    }

    fn renew(&mut self, now: i64) -> Result<(), SyncError> {
        let lease = self
            .store
            .write(|tx| tx.acquire_lease(&self.owner, now, LEASE_TTL_MS, holder_gone))?;
        match lease {
            Some(l) if l.epoch == self.epoch => Ok(()),
            Some(l) => Err(SyncError::Store(acode_store::StoreError::Fenced(l.epoch))),
            None => {
                let holder = self
                    .store
                    .read(|tx| tx.lease())?
                    .map(|l| l.owner)
                    .unwrap_or_default();
                Err(SyncError::LeaseHeld(holder))
            }
        }
    }

    fn data_version(&self) -> Result<i64, SyncError> {
        self.store
            .connection()
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| SyncError::Store(e.into()))
    }
}

/// Holds a long-poll open at the worker's cursor; when the feed has a
/// change past it, rings `news` and waits for the worker to move the
/// cursor (or a while, should that download fail) before asking again.
async fn watch_feed<T: Transport>(
    transport: Arc<T>,
    mut cursor: watch::Receiver<String>,
    news: Arc<Notify>,
) {
    let mut failures = 0u32;
    loop {
        let at = cursor.borrow_and_update().clone();
        match transport.pull(&at, 1, Some(LONG_POLL)).await {
            Ok(page) if page.changes.is_empty() => failures = 0,
            Ok(_) => {
                failures = 0;
                news.notify_one();
                let _ = tokio::time::timeout(Duration::from_secs(5), cursor.changed()).await;
            }
            Err(_) => {
                // The worker's own cycles report the error; back off here.
                failures += 1;
                tokio::time::sleep(RECONNECT.delay(failures, fastrand::f64())).await;
            }
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn log(report: &SyncReport) {
    if report.uploaded + report.downloaded + report.failed + report.conflicts > 0
        || report.mode != Mode::Online
    {
        tracing::info!(
            mode = ?report.mode,
            uploaded = report.uploaded,
            downloaded = report.downloaded,
            conflicts = report.conflicts,
            failed = report.failed,
            error = report.last_error.as_deref().unwrap_or(""),
            "sync"
        );
    }
}

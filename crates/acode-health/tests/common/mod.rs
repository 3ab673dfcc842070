//! Helpers shared by the health tests: a store on a real file, writes that
//! fill its outbox, and a registry of one check.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use acode_health::checks::queue::QueueSource;
use acode_health::{Check, CheckReport, Clock, LocalDb, ManualClock, Registry};
use acode_store::{EntryStatus, NewChat, OpenOptions, Store};
use tempfile::TempDir;

/// 2026-01-01T00:00:00Z, where manual clocks start.
pub const T0: i64 = 1_767_225_600_000;

/// A store on a real file in a fresh temporary directory.
pub fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("workspace.db"), &OpenOptions::default()).unwrap();
    (dir, store)
}

/// Creates `n` chats in one transaction: `n` captured changes.
pub fn write_chats(store: &mut Store, n: usize) {
    store
        .write(|tx| {
            for i in 0..n {
                tx.create_chat(&NewChat::new(format!("chat {i}")))?;
            }
            Ok(())
        })
        .unwrap();
}

/// A queue source over `db` that syncs, on a manual clock at `now`.
pub fn syncing(db: &LocalDb, now: i64) -> (QueueSource, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(now));
    let source = QueueSource {
        db: db.clone(),
        clock: clock.clone() as Arc<dyn Clock>,
        syncs: true,
    };
    (source, clock)
}

/// Runs one check through a registry (timeout, isolation) and returns its line.
pub async fn run_one(check: impl Check) -> CheckReport {
    let mut registry = Registry::new();
    registry.add(check);
    let report = registry.run().await;
    report.checks.into_iter().next().unwrap()
}

/// Fails the `n` oldest pending entries at `at`, as the engine does when
/// the server rejects them.
pub fn fail_oldest(store: &mut Store, n: usize, at: i64) {
    let seqs: Vec<i64> = store
        .read(|tx| tx.pending_window(0, n as u32))
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    store
        .write(|tx| {
            tx.settle(
                &seqs,
                EntryStatus::Failed,
                Some("ACODE-SYNC-005 invalid payload"),
                at,
            )
        })
        .unwrap();
}

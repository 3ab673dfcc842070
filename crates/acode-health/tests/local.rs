//! The local checks on real databases: `sqlite` and `schema`, and the
//! queue checks with a filled outbox, old changes and failed uploads.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use acode_health::checks::queue::{FailureRateCheck, LagCheck, OutboxCheck};
use acode_health::checks::sqlite::{SchemaCheck, SqliteCheck};
use acode_health::{Lines, LocalDb, Status};
use acode_store::{EntryStatus, OpenOptions, Store};
use common::{T0, run_one, syncing, temp_store, write_chats};

#[tokio::test]
async fn sqlite_is_healthy_degraded_while_another_writer_holds_the_lock_and_unhealthy_when_its_file_is_gone()
 {
    let (dir, store) = temp_store();
    let path = store.path().to_path_buf();
    let db = LocalDb::new(store);
    let ok = run_one(SqliteCheck::new(db.clone())).await;
    assert_eq!(ok.status, Status::Healthy, "{}", ok.message);
    assert_eq!(ok.data["write_locked"], false);

    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let locked = run_one(SqliteCheck::new(db.clone())).await;
    assert_eq!(locked.status, Status::Degraded, "{}", locked.message);
    assert!(locked.message.contains("write lock"), "{}", locked.message);
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        run_one(SqliteCheck::new(db.clone())).await.status,
        Status::Healthy
    );

    // The file is deleted under the open store (a cleanup gone wrong).
    drop(other);
    for file in ["workspace.db", "workspace.db-wal", "workspace.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    let gone = run_one(SqliteCheck::new(db)).await;
    assert_eq!(gone.status, Status::Unhealthy, "{}", gone.message);
    assert!(gone.message.contains("is gone"), "{}", gone.message);
}

#[tokio::test]
async fn schema_is_degraded_with_pending_migrations_and_unhealthy_when_newer() {
    let (_dir, store) = temp_store();
    let db = LocalDb::new(store);
    let ok = run_one(SchemaCheck::new(db.clone())).await;
    assert_eq!(ok.status, Status::Healthy, "{}", ok.message);
    assert_eq!(ok.data["version"], ok.data["latest"]);

    let old_dir = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        migrate: false,
        ..OpenOptions::default()
    };
    let mut old = Store::open(old_dir.path().join("old.db"), &options).unwrap();
    old.migrate_to(3).unwrap();
    let pending = run_one(SchemaCheck::new(LocalDb::new(old))).await;
    assert_eq!(pending.status, Status::Degraded, "{}", pending.message);
    assert_eq!(pending.data["version"], 3);
    assert!(
        pending.message.contains("acode db migrate"),
        "{}",
        pending.message
    );

    db.blocking(|s| {
        s.connection()
            .execute(
                "INSERT INTO acode_schema_history (version, name, applied_on, checksum)
                 VALUES (999, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
                [],
            )
            .unwrap()
    });
    let newer = run_one(SchemaCheck::new(db)).await;
    assert_eq!(newer.status, Status::Unhealthy, "{}", newer.message);
    assert!(
        newer.message.starts_with("ACODE-STORE-004"),
        "{}",
        newer.message
    );
}

#[tokio::test]
async fn outbox_depth_follows_a_filling_queue() {
    let (_dir, store) = temp_store();
    let db = LocalDb::new(store);
    let (source, _clock) = syncing(&db, T0);
    let lines = Lines::new(100, 1_000);
    let check = || OutboxCheck::new(source.clone(), lines);
    assert_eq!(run_one(check()).await.status, Status::Healthy);

    db.blocking(|s| write_chats(s, 99));
    let r = run_one(check()).await;
    assert_eq!(
        (r.status, r.data["pending"].as_i64()),
        (Status::Healthy, Some(99))
    );
    db.blocking(|s| write_chats(s, 1));
    assert_eq!(run_one(check()).await.status, Status::Degraded);
    db.blocking(|s| write_chats(s, 900));
    let r = run_one(check()).await;
    assert_eq!(
        (r.status, r.data["pending"].as_i64()),
        (Status::Unhealthy, Some(1_000))
    );
    assert!(
        r.message.contains("1000 change(s) waiting"),
        "{}",
        r.message
    );

    // Paused: asked for, so at most Degraded; not syncing at all: Healthy.
    db.blocking(|s| s.write(|tx| tx.set_paused(true)).unwrap());
    let paused = run_one(check()).await;
    assert_eq!(paused.status, Status::Degraded, "{}", paused.message);
    assert!(paused.message.contains("paused"), "{}", paused.message);
    let mut local_only = source.clone();
    local_only.syncs = false;
    let r = run_one(OutboxCheck::new(local_only, lines)).await;
    assert_eq!(r.status, Status::Healthy, "{}", r.message);
    assert!(r.message.contains("does not sync"), "{}", r.message);
}

#[tokio::test]
async fn sync_lag_is_the_age_of_the_oldest_pending_change() {
    let (_dir, store) = temp_store();
    let db = LocalDb::new(store);
    let now = db.blocking(|s| {
        write_chats(s, 3);
        s.read(|tx| tx.sync_counts(0))
            .unwrap()
            .oldest_pending_at
            .unwrap()
    });
    // The checks' clock starts when the changes were captured.
    let (source, clock) = syncing(&db, now);
    let lines = Lines::new(Duration::from_secs(30), Duration::from_secs(300));
    let check = || LagCheck::new(source.clone(), lines);
    assert_eq!(run_one(check()).await.status, Status::Healthy);
    clock.advance(Duration::from_secs(30));
    let r = run_one(check()).await;
    assert_eq!(r.status, Status::Degraded, "{}", r.message);
    assert_eq!(r.data["lag_seconds"].as_f64(), Some(30.0));
    clock.advance(Duration::from_secs(270));
    let r = run_one(check()).await;
    assert_eq!(r.status, Status::Unhealthy, "{}", r.message);
    assert!(
        r.message.contains("oldest change waiting 300.0s"),
        "{}",
        r.message
    );

    // Uploaded (settled), nothing waits: no lag at all.
    db.blocking(|s| {
        let seqs: Vec<i64> = s
            .read(|tx| tx.queue())
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        s.write(|tx| tx.settle(&seqs, EntryStatus::Synced, None, now))
            .unwrap();
    });
    let r = run_one(check()).await;
    assert_eq!(r.status, Status::Healthy, "{}", r.message);
    assert_eq!(r.message, "nothing waiting to upload");
}

/// Settles `failed` of the pending entries as failed and logs `uploaded`
/// changes as pushed, at `at`, as the engine does.
fn settle(store: &mut Store, failed: usize, uploaded: i64, at: i64) {
    common::fail_oldest(store, failed, at);
    store
        .write(|tx| tx.log_sync("push", uploaded, None, at))
        .unwrap();
}

#[tokio::test]
async fn failure_rate_counts_failed_against_settled_in_the_window() {
    let (_dir, store) = temp_store();
    let db = LocalDb::new(store);
    db.blocking(|s| write_chats(s, 40));
    let (source, clock) = syncing(&db, T0);
    let window = Duration::from_secs(15 * 60);
    let check = || FailureRateCheck::new(source.clone(), window, 20, Lines::new(0.05, 0.25));
    let r = run_one(check()).await;
    assert_eq!(
        (r.status, r.data["failed"].as_i64()),
        (Status::Healthy, Some(0))
    );

    // 1 failed of 10: a rate of 10 %, but too few settled to judge.
    db.blocking(|s| settle(s, 1, 9, T0));
    let r = run_one(check()).await;
    assert_eq!(r.status, Status::Healthy, "{}", r.message);
    assert!(r.message.contains("too few"), "{}", r.message);
    // 2 failed of 30: 6.7 %.
    db.blocking(|s| settle(s, 1, 19, T0));
    let r = run_one(check()).await;
    assert_eq!(r.status, Status::Degraded, "{}", r.message);
    assert_eq!(
        (r.data["failed"].as_i64(), r.data["uploaded"].as_i64()),
        (Some(2), Some(28))
    );
    // 12 failed of 40: 30 %.
    db.blocking(|s| settle(s, 10, 0, T0));
    assert_eq!(run_one(check()).await.status, Status::Unhealthy);

    // Past the window, those settles no longer count.
    clock.advance(window + Duration::from_millis(1));
    let r = run_one(check()).await;
    assert_eq!(
        (r.status, r.data["failed"].as_i64()),
        (Status::Healthy, Some(0))
    );
}

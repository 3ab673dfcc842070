//! Disk space (through an injected free-space source), the database file
//! and a WAL grown by writes that are never checkpointed.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use acode_health::checks::storage::{DiskCheck, FileSizeCheck, FixedSpace, Space, Statvfs};
use acode_health::{Lines, LocalDb, Status};
use common::{run_one, temp_store, write_chats};

const MB: u64 = 1024 * 1024;

#[tokio::test]
async fn disk_space_is_judged_by_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let lines = Lines::new(1_024 * MB, 100 * MB);
    let total = 100_000 * MB;
    let at = |free: u64| {
        DiskCheck::new(
            dir.path(),
            Arc::new(FixedSpace(Space { free, total })),
            lines,
        )
    };
    let r = run_one(at(50_000 * MB)).await;
    assert_eq!(r.status, Status::Healthy, "{}", r.message);
    assert_eq!(r.data["free_percent"].as_f64(), Some(50.0));
    assert_eq!(run_one(at(1_024 * MB)).await.status, Status::Degraded);
    let full = run_one(at(10 * MB)).await;
    assert_eq!(full.status, Status::Unhealthy, "{}", full.message);
    assert!(full.message.contains("10 MiB free"), "{}", full.message);
}

#[tokio::test]
async fn disk_space_of_the_real_filesystem_is_read_with_statvfs() {
    let dir = tempfile::tempdir().unwrap();
    // No disk has more than an exabyte free: the real figure is Degraded
    // against that line and Healthy against zero.
    let huge = Lines::new(u64::MAX / 2, 0);
    let r = run_one(DiskCheck::new(dir.path(), Arc::new(Statvfs), huge)).await;
    assert_eq!(r.status, Status::Degraded, "{}", r.message);
    let free = r.data["free_bytes"].as_u64().unwrap();
    let total = r.data["total_bytes"].as_u64().unwrap();
    assert!(free > 0 && free <= total, "{free} of {total}");
    let missing = DiskCheck::new(dir.path().join("nope"), Arc::new(Statvfs), huge);
    let r = run_one(missing).await;
    assert_eq!(r.status, Status::Unhealthy);
    assert!(r.message.contains("reading free space"), "{}", r.message);
}

#[tokio::test]
async fn database_size_grows_with_its_rows() {
    let (_dir, store) = temp_store();
    let db = LocalDb::new(store);
    let size = || std::fs::metadata(db.path()).unwrap().len();
    let start = size();
    let lines = Lines::new(start + 256 * 1024, start + 2 * MB);
    let check = || FileSizeCheck::database(db.path(), lines);
    assert_eq!(run_one(check()).await.status, Status::Healthy);
    let checkpoint = |db: &LocalDb| {
        db.blocking(|s| {
            s.connection()
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap()
        })
    };
    db.blocking(|s| write_chats(s, 2_000));
    checkpoint(&db);
    let r = run_one(check()).await;
    assert_eq!(
        r.status,
        Status::Degraded,
        "{} ({} bytes)",
        r.message,
        size()
    );
    db.blocking(|s| write_chats(s, 20_000));
    checkpoint(&db);
    let r = run_one(check()).await;
    assert_eq!(
        r.status,
        Status::Unhealthy,
        "{} ({} bytes)",
        r.message,
        size()
    );
}

#[tokio::test]
async fn a_wal_that_is_never_checkpointed_turns_degraded_then_unhealthy() {
    let (_dir, store) = temp_store();
    let db = LocalDb::new(store);
    // As if a reader held checkpoints off: nothing folds the WAL back.
    db.blocking(|s| {
        s.connection()
            .execute_batch("PRAGMA wal_autocheckpoint = 0")
            .unwrap()
    });
    let lines = Lines::new(MB, 4 * MB);
    let check = || FileSizeCheck::wal(db.wal_path(), lines);
    assert_eq!(run_one(check()).await.status, Status::Healthy);
    let wal = || std::fs::metadata(db.wal_path()).map_or(0, |m| m.len());
    while wal() < MB {
        db.blocking(|s| write_chats(s, 500));
    }
    let r = run_one(check()).await;
    assert_eq!(r.status, Status::Degraded, "{}", r.message);
    while wal() < 4 * MB {
        db.blocking(|s| write_chats(s, 500));
    }
    let r = run_one(check()).await;
    assert_eq!(r.status, Status::Unhealthy, "{}", r.message);
    assert_eq!(r.data["bytes"].as_u64(), Some(wal()));
    // A checkpoint folds it back.
    db.blocking(|s| {
        s.connection()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap()
    });
    assert_eq!(run_one(check()).await.status, Status::Healthy);
}

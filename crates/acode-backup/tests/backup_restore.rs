//! Backups taken under write load restore to one instant; the manifest
//! describes the file beside it; a missing or foreign database is not
//! backed up.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use acode_backup::files::manifest_path;
use acode_backup::{Manifest, backup, restore};
use acode_protocol::ErrorCode;
use acode_store::{NewChat, NewMessage, Role, Store};
use common::fixture::{TestResult, integrity, options, sha, write_seq};
use rusqlite::Connection;

/// A workspace database with some bulk, so a copy takes a while.
fn seeded_db(dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let path = dir.join("workspace.db");
    let mut store = Store::open(&path, &options())?;
    store.write(|tx| {
        let chat = tx.create_chat(&NewChat::new("bulk"))?;
        for i in 0..3000 {
            tx.add_message(&NewMessage::new(
                chat.id,
                Role::Assistant,
                format!("{i} {}", "x".repeat(400)),
            ))?;
        }
        Ok(())
    })?;
    Ok(path)
}

#[test]
fn a_backup_under_concurrent_writes_restores_one_instant() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = seeded_db(dir.path())?;
    let stop = Arc::new(AtomicBool::new(false));
    // `started` counts writes begun (raised before the commit), `done`
    // writes committed (raised after): every write the copy can hold was
    // started before it ended, every write committed before it began is in.
    let started = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel();
    let writer = {
        let (db, stop, started, done) = (db.clone(), stop.clone(), started.clone(), done.clone());
        std::thread::spawn(move || -> acode_store::Result<u64> {
            let mut store = Store::open(&db, &options())?;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                started.store(n + 1, Ordering::SeqCst);
                write_seq(&mut store, n)?;
                n += 1;
                done.store(n, Ordering::SeqCst);
                let _ = tx.send(n);
            }
            Ok(n)
        })
    };
    // Wait (on the writer's own reports) until it is well under way.
    while rx.recv()? < 20 {}
    let before = done.load(Ordering::SeqCst);
    let outcome = backup(&db, &dir.path().join("backups"), true)?;
    let after = started.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    let total = writer.join().map_err(|_| "writer panicked")??;
    eprintln!(
        "writes: {before} committed before the copy, {after} started by its end, {total} in all"
    );
    assert!(total >= after);

    let restored = dir.path().join("restored/workspace.db");
    let r = restore(&outcome.path, &restored)?;
    assert!(!r.replaced);
    assert_eq!(integrity(&restored), "ok");
    let conn = Connection::open(&restored)?;
    let mut stmt = conn.prepare(
        "SELECT c.title, m.content FROM chats c JOIN messages m ON m.chat_id = c.id
         WHERE c.title LIKE 'seq-%'",
    )?;
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let seqs: BTreeSet<u64> = rows
        .iter()
        .map(|(title, content)| {
            assert_eq!(title.strip_prefix("seq-"), Some(content.as_str()));
            content.parse().unwrap()
        })
        .collect();
    assert_eq!(seqs.len(), rows.len(), "one message per write");
    let k = seqs.len() as u64;
    // Exactly a prefix of the writer's sequence, cut between the writes
    // seen before and after the copy.
    assert_eq!(seqs, (0..k).collect::<BTreeSet<_>>());
    assert!(
        (before..=after).contains(&k),
        "{k} writes restored, {before}..={after} were committed around the copy"
    );
    let bulk: i64 = conn.query_row(
        "SELECT count(*) FROM messages m JOIN chats c ON c.id = m.chat_id WHERE c.title = 'bulk'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(bulk, 3000);
    drop(stmt);
    drop(conn);
    // The restored file opens as a workspace, with the same device.
    let store = Store::open(&restored, &options())?;
    assert_eq!(
        Some(store.device_id()),
        outcome.manifest.device_id.as_deref()
    );
    Ok(())
}

#[test]
fn the_manifest_describes_the_file_beside_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("w.db");
    let mut store = Store::open(&db, &options())?;
    store.write(|tx| tx.set_state("cursor", "c-42"))?;
    for compress in [true, false] {
        let out = backup(&db, &dir.path().join("b"), compress)?;
        let name = out.path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("acode-"));
        assert!(name.ends_with(if compress { ".db.gz" } else { ".db" }));
        assert_eq!(out.manifest_path, manifest_path(&out.path));
        let m = Manifest::read_beside(&out.path)?;
        assert_eq!(m, out.manifest);
        assert_eq!(m.file, name);
        assert_eq!(m.bytes, std::fs::metadata(&out.path)?.len());
        assert_eq!(m.sha256, sha(&out.path));
        assert_eq!(m.compressed, compress);
        assert_eq!(m.schema_version, acode_store::migrations::latest());
        assert_eq!(m.sync_cursor.as_deref(), Some("c-42"));
        assert_eq!(m.device_id.as_deref(), Some(store.device_id()));
        assert!(chrono::DateTime::parse_from_rfc3339(&m.created_at).is_ok());
    }
    // Only finished files are left: two backups, two manifests.
    assert_eq!(std::fs::read_dir(dir.path().join("b"))?.count(), 4);
    Ok(())
}

#[test]
fn backing_up_a_missing_or_foreign_database_writes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("b");
    let err = backup(&dir.path().join("none.db"), &out, true).unwrap_err();
    assert_eq!(err.code(), ErrorCode::StoreWorkspaceNotFound);
    let other = dir.path().join("other.db");
    Connection::open(&other)?.execute_batch("CREATE TABLE t (x);")?;
    let err = backup(&other, &out, true).unwrap_err();
    assert_eq!(err.code(), ErrorCode::StoreNotADatabase);
    let left = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0);
    Ok(())
}

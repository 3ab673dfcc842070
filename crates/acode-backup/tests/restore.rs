//! Restore refuses damaged, cut short, foreign or oversized backups and
//! targets in use, leaving the target as it was; it never replays a stale
//! WAL onto the restored file.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use acode_backup::files::manifest_path;
use acode_backup::{Manifest, restore};
use acode_protocol::ErrorCode;
use acode_store::Store;
use common::fixture::{
    Target, TestResult, a_backup, a_second_backup, code, integrity, options, sha, write_seq,
};
use rusqlite::Connection;

#[test]
fn a_flipped_byte_or_a_cut_file_is_refused_and_the_target_untouched() -> TestResult {
    for compress in [true, false] {
        let dir = tempfile::tempdir()?;
        let target = Target::new(dir.path());
        let good = a_backup(dir.path(), compress);
        let bytes = std::fs::read(&good)?;

        let flipped = good.with_file_name(format!(
            "acode-20200101T000000.000Z.db{}",
            if compress { ".gz" } else { "" }
        ));
        let mut damaged = bytes.clone();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 0x01;
        std::fs::write(&flipped, &damaged)?;
        std::fs::copy(manifest_path(&good), manifest_path(&flipped))?;
        assert_eq!(
            code(restore(&flipped, &target.path)),
            ErrorCode::BackupChecksum
        );
        target.assert_untouched();

        std::fs::write(&flipped, &bytes[..bytes.len() - 1])?;
        assert_eq!(
            code(restore(&flipped, &target.path)),
            ErrorCode::BackupChecksum
        );
        target.assert_untouched();

        // A damaged file whose manifest was rewritten to match it: caught by
        // the gzip stream or the database checksum inside.
        std::fs::write(&flipped, &damaged)?;
        let mut m = Manifest::read_beside(&good)?;
        m.sha256 = sha(&flipped);
        m.write_beside(&flipped)?;
        let c = code(restore(&flipped, &target.path));
        assert!(
            matches!(c, ErrorCode::BackupChecksum | ErrorCode::BackupInvalid),
            "{c}"
        );
        target.assert_untouched();

        // The intact backup restores over it.
        restore(&good, &target.path)?;
        assert_eq!(integrity(&target.path), "ok");
        let conn = Connection::open(&target.path)?;
        let n: i64 = conn.query_row("SELECT count(*) FROM chats", [], |r| r.get(0))?;
        assert_eq!(n, 50, "the target's own chat is replaced by the backup's");
    }
    Ok(())
}

#[test]
fn missing_unmanifested_and_foreign_files_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let target = Target::new(dir.path());

    let missing = dir.path().join("acode-20200101T000000.000Z.db.gz");
    assert_eq!(
        code(restore(&missing, &target.path)),
        ErrorCode::BackupNotFound
    );

    let good = a_backup(dir.path(), true);
    std::fs::remove_file(manifest_path(&good))?;
    assert_eq!(code(restore(&good, &target.path)), ErrorCode::BackupInvalid);
    target.assert_untouched();

    // Foreign files with manifests that match their bytes: plain text, and
    // an SQLite database that is not an acode workspace.
    let text = dir.path().join("notes.db");
    std::fs::write(
        &text,
        "not a database at all, long enough to be read as a header",
    )?;
    let other = dir.path().join("other.db");
    Connection::open(&other)?.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")?;
    for foreign in [&text, &other] {
        let (bytes, sha256) = acode_backup::files::hash_file(foreign)?;
        let m = Manifest {
            file: foreign.file_name().unwrap().to_string_lossy().into_owned(),
            sha256: sha256.clone(),
            bytes,
            compressed: false,
            db_sha256: sha256,
            db_bytes: bytes,
            ..Manifest::read_beside(&a_second_backup(dir.path()))?
        };
        m.write_beside(foreign)?;
        assert_eq!(
            code(restore(foreign, &target.path)),
            ErrorCode::BackupInvalid
        );
        target.assert_untouched();
    }

    std::fs::write(manifest_path(&text), "{\"format\": \"something else\"}")?;
    assert_eq!(code(restore(&text, &target.path)), ErrorCode::BackupInvalid);
    target.assert_untouched();
    Ok(())
}

/// A manifest rewritten to match a damaged database in every checksum is
/// still refused: the database itself is checked before it is used.
#[test]
fn a_damaged_database_with_a_matching_manifest_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let target = Target::new(dir.path());
    let good = a_backup(dir.path(), false);
    let bytes = std::fs::read(&good)?;
    let page = 4096;
    assert!(bytes.len() > 4 * page, "the backup is too small to cut");
    for (name, damaged) in [
        // Cut short by whole pages: the header's page count disagrees.
        (
            "acode-20200101T000000.000Z.db",
            bytes[..bytes.len() - 2 * page].to_vec(),
        ),
        // The second page (a b-tree page) overwritten with garbage.
        ("acode-20200101T000000.001Z.db", {
            let mut b = bytes.clone();
            b[page..2 * page].fill(0xA5);
            b
        }),
    ] {
        let bad = dir.path().join(name);
        std::fs::write(&bad, &damaged)?;
        let (n, sha256) = acode_backup::files::hash_file(&bad)?;
        let m = Manifest {
            file: name.to_owned(),
            sha256: sha256.clone(),
            bytes: n,
            db_sha256: sha256,
            db_bytes: n,
            ..Manifest::read_beside(&good)?
        };
        m.write_beside(&bad)?;
        assert_eq!(
            code(restore(&bad, &target.path)),
            ErrorCode::BackupInvalid,
            "{name}"
        );
        target.assert_untouched();
    }
    Ok(())
}

/// A gzip stream that expands past the size its manifest gives for the
/// database inside is refused (unpacking stops there) and changes nothing.
#[test]
fn a_stream_larger_than_its_manifest_says_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let target = Target::new(dir.path());
    let good = a_backup(dir.path(), true);
    let mut m = Manifest::read_beside(&good)?;
    m.db_bytes = 1024;
    m.write_beside(&good)?;
    assert_eq!(
        code(restore(&good, &target.path)),
        ErrorCode::BackupChecksum
    );
    target.assert_untouched();
    Ok(())
}

/// A target left by a crash, with committed changes still in its `-wal`:
/// the old log must not be replayed onto the restored file.
#[test]
fn a_restore_over_a_database_with_a_stale_wal_drops_that_wal() -> TestResult {
    let dir = tempfile::tempdir()?;
    let good = a_backup(dir.path(), true);
    let live = dir.path().join("live.db");
    let target = dir.path().join("crashed.db");
    let wal = |p: &Path| PathBuf::from(format!("{}-wal", p.display()));
    {
        let mut store = Store::open(&live, &options())?;
        store
            .connection()
            .execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        for n in 1000..1010 {
            write_seq(&mut store, n)?;
        }
        // Copied while open: the database file and a log with its changes.
        std::fs::copy(&live, &target)?;
        std::fs::copy(wal(&live), wal(&target))?;
    }
    assert!(
        std::fs::metadata(wal(&target))?.len() > 0,
        "no WAL to go stale"
    );

    let r = restore(&good, &target)?;
    assert!(r.replaced);
    assert!(
        !wal(&target).exists(),
        "the old WAL is still beside the target"
    );
    assert_eq!(integrity(&target), "ok");
    let store = Store::open(&target, &options())?;
    let titles: Vec<String> = store
        .connection()
        .prepare("SELECT title FROM chats ORDER BY title")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut want: Vec<String> = (0..50).map(|n| format!("seq-{n}")).collect();
    want.sort();
    assert_eq!(
        titles, want,
        "exactly the backup's chats, none from the old WAL"
    );
    Ok(())
}

/// A target another connection holds open (idle, no transaction: a running
/// worker between writes) is refused, and its data stays as it was.
#[test]
fn a_restore_over_a_database_in_use_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let good = a_backup(dir.path(), true);
    let target = dir.path().join("busy.db");
    let mut holder = Store::open(&target, &options())?;
    write_seq(&mut holder, 7)?;
    let err = restore(&good, &target)
        .err()
        .ok_or("the restore was accepted")?;
    assert_eq!(err.code(), ErrorCode::StoreBusy, "{err}");
    // The holder's connection still works and sees its own data only.
    write_seq(&mut holder, 8)?;
    let titles: Vec<String> = holder
        .connection()
        .prepare("SELECT title FROM chats ORDER BY title")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    assert_eq!(titles, ["seq-7", "seq-8"]);
    drop(holder);
    assert_eq!(integrity(&target), "ok");
    let stray: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
    // Once it is closed, the restore goes through.
    restore(&good, &target)?;
    assert_eq!(integrity(&target), "ok");
    Ok(())
}

//! Opening databases: migrations (numbered, checksummed, forward-only),
//! refusal of corrupt, foreign, newer or edited databases, and the
//! pre-migration backup.
#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

use acode_store::*;

fn code(e: StoreError) -> &'static str {
    e.code().code()
}

#[test]
fn a_fresh_database_has_every_migration_applied_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("w.db"), &OpenOptions::default()).unwrap();
    let status = store.schema_status().unwrap();
    assert!(status.pending.is_empty());
    let versions: Vec<i64> = status.applied.iter().map(|m| m.version).collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(status.version, migrations::latest());
    assert_eq!(store.device_id().len(), 26);
}

#[test]
fn opening_without_migrating_shows_pending_migrations_and_migrate_applies_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let mut store = open_unmigrated(&path);
    let status = store.schema_status().unwrap();
    assert_eq!(status.version, 0);
    assert_eq!(status.pending.len(), 7);
    let outcome = store.migrate(None).unwrap();
    assert_eq!(outcome.applied.len(), 7);
    assert!(
        outcome.backup.is_none(),
        "nothing to back up in an empty database"
    );
    assert!(store.schema_status().unwrap().pending.is_empty());
    store
        .write(|tx| tx.create_chat(&NewChat::new("works")))
        .unwrap();
}

/// A store opened without applying any migration.
fn open_unmigrated(path: &std::path::Path) -> Store {
    let opts = OpenOptions {
        migrate: false,
        ..Default::default()
    };
    Store::open(path, &opts).unwrap()
}

fn at_version_1(path: &std::path::Path) {
    let mut store = open_unmigrated(path);
    store.migrate_to(1).unwrap();
    store
        .connection()
        .execute(
            "INSERT INTO chats (id, title, privacy, created_at, updated_at)
             VALUES ('01JD3Q5M2K7Y8V3C4B5N6M7P8Q', 'old', 'full', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
            [],
        )
        .unwrap();
}

#[test]
fn an_upgrade_takes_a_backup_first_when_asked_and_runs_uncaptured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    at_version_1(&path);
    let backups = dir.path().join("backups");
    let opts = OpenOptions {
        backup_dir: Some(backups.clone()),
        ..Default::default()
    };
    let mut store = Store::open(&path, &opts).unwrap();
    let outcome = store.opened_with().clone();
    assert_eq!(
        outcome
            .applied
            .iter()
            .map(|m| m.version)
            .collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6, 7]
    );
    let backup = outcome.backup.expect("a pre-migration backup");
    assert!(backup.starts_with(&backups));
    // The backup is the database as it was: version 1, with its row.
    let old = rusqlite::Connection::open(&backup).unwrap();
    let (version, title): (i64, String) = old
        .query_row(
            "SELECT (SELECT max(version) FROM acode_schema_history), (SELECT title FROM chats)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((version, title.as_str()), (1, "old"));
    // The migration itself captured nothing; the existing row is intact.
    assert!(store.read(|tx| tx.outbox(&[], 10)).unwrap().is_empty());
    assert_eq!(
        store
            .read(|tx| tx.list::<Chat>(&ListQuery::default()))
            .unwrap()
            .items
            .len(),
        1
    );
}

#[test]
fn an_upgrade_takes_no_backup_when_not_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    at_version_1(&path);
    let store = Store::open(&path, &OpenOptions::default()).unwrap();
    assert_eq!(store.opened_with().applied.len(), 6);
    assert!(store.opened_with().backup.is_none());
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        files
            .iter()
            .all(|f| f.to_string_lossy().starts_with("w.db")),
        "{files:?}"
    );
}

#[test]
fn a_database_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    drop(Store::open(&path, &OpenOptions::default()).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO acode_schema_history (version, name, applied_on, checksum)
             VALUES (999, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
            [],
        )
        .unwrap();
    for migrate in [true, false] {
        let opts = OpenOptions {
            migrate,
            ..Default::default()
        };
        let err = Store::open(&path, &opts).err().expect("refused");
        assert_eq!(code(err), "ACODE-STORE-004");
    }
}

#[test]
fn a_database_whose_applied_migration_was_edited_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    drop(Store::open(&path, &OpenOptions::default()).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE acode_schema_history SET checksum = '12345' WHERE version = 2",
            [],
        )
        .unwrap();
    let err = Store::open(&path, &OpenOptions::default())
        .err()
        .expect("refused");
    assert_eq!(code(err), "ACODE-STORE-005");
}

#[test]
fn a_corrupt_or_foreign_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    let bytes: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, &bytes).unwrap();
    let text = dir.path().join("notes.db");
    std::fs::write(&text, "these are my notes, not a database\n".repeat(200)).unwrap();
    for path in [&garbage, &text] {
        let before = std::fs::read(path).unwrap();
        let err = Store::open(path, &OpenOptions::default())
            .err()
            .expect("refused");
        assert_eq!(code(err), "ACODE-STORE-003", "{}", path.display());
        assert_eq!(
            std::fs::read(path).unwrap(),
            before,
            "{} was changed",
            path.display()
        );
    }

    // A valid SQLite database of another application.
    let other = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5);")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&other).unwrap();
    let err = Store::open(&other, &OpenOptions::default())
        .err()
        .expect("refused");
    assert_eq!(code(err), "ACODE-STORE-003");
    assert_eq!(
        std::fs::read(&other).unwrap(),
        before,
        "not even its journal mode changed"
    );
    assert!(!dir.path().join("other.db-wal").exists());
    let tables: i64 = rusqlite::Connection::open(&other)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1, "no acode tables were added");
}

#[test]
fn a_truncated_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let mut store = Store::open(&path, &OpenOptions::default()).unwrap();
    store
        .write(|tx| {
            let c = tx.create_chat(&NewChat::new("c"))?;
            for i in 0..2000 {
                tx.add_message(&NewMessage::new(
                    c.id,
                    Role::User,
                    format!("message {i} {}", "x".repeat(200)),
                ))?;
            }
            Ok(())
        })
        .unwrap();
    store
        .connection()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    drop(store);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 3).unwrap();
    drop(f);
    let result = Store::open(&path, &OpenOptions::default()).and_then(|mut s| {
        s.read(|tx| {
            tx.list::<Message>(&ListQuery {
                limit: 1000,
                ..Default::default()
            })
        })?;
        let check: String = s
            .connection()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok(check)
    });
    match result {
        Err(e) => assert_eq!(code(e), "ACODE-STORE-003"),
        Ok(check) => panic!("a truncated database read without error (integrity: {check})"),
    }
}

#[test]
fn opening_without_create_never_leaves_a_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let opts = OpenOptions {
        create: false,
        migrate: false,
        ..Default::default()
    };
    let err = Store::open(&path, &opts).err().expect("refused");
    assert_eq!(code(err), "ACODE-STORE-008");
    assert!(!path.exists());
}

fn outbox_rows(store: &Store) -> Vec<Vec<rusqlite::types::Value>> {
    let conn = store.connection();
    let mut stmt = conn
        .prepare("SELECT * FROM sync_outbox ORDER BY seq")
        .unwrap();
    let width = stmt.column_count();
    stmt.query_map([], |r| {
        (0..width).map(|i| r.get(i)).collect::<Result<Vec<_>, _>>()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// V7 rebuilds sync_outbox (to make its CHECKs cheaper): every entry, in
/// every state, comes through as it was, and what went with the table comes
/// back.
#[test]
fn the_outbox_rebuild_carries_every_entry_over_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let mut store = open_unmigrated(&path);
    store.migrate_to(6).unwrap();
    store
        .write(|tx| {
            let c = tx.create_chat(&NewChat::new("before"))?;
            for i in 0..4 {
                tx.add_message(&NewMessage::new(c.id, Role::User, format!("m{i}")))?;
            }
            Ok(())
        })
        .unwrap();
    store
        .connection()
        .execute_batch(
            "UPDATE sync_outbox SET status = 'synced', settled_at = 5, payload = '{}' WHERE seq = 1;
             UPDATE sync_outbox SET status = 'in_flight', batch_key = '01JD3Q5M2K7Y8V3C4B5N6M7P8Q', base_version = 3 WHERE seq = 2;
             UPDATE sync_outbox SET status = 'failed', attempts = 2, next_retry_at = 9,
                                    last_error = 'refused' WHERE seq = 3;",
        )
        .unwrap();
    let before = outbox_rows(&store);
    assert_eq!(before.len(), 5);
    drop(store);

    let mut store = Store::open(&path, &OpenOptions::default()).unwrap();
    let applied: Vec<i64> = store
        .opened_with()
        .applied
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(applied, vec![7]);
    assert_eq!(outbox_rows(&store), before);

    // The local order continues after the old entries.
    let chat = store
        .write(|tx| tx.create_chat(&NewChat::new("after")))
        .unwrap();
    let after = store.read(|tx| tx.outbox(&[], 10)).unwrap();
    let newest = after.last().unwrap();
    assert_eq!((newest.entity_id, newest.seq), (chat.id, 6));

    // The CHECKs still refuse what they refused.
    let conn = store.connection();
    for bad in [
        "UPDATE sync_outbox SET status = 'done' WHERE seq = 1",
        "UPDATE sync_outbox SET op = 'upsert' WHERE seq = 1",
    ] {
        let err = conn.execute(bad, []).unwrap_err();
        assert!(
            err.to_string().contains("CHECK constraint failed"),
            "{bad}: {err}"
        );
    }
    // The partial indexes and the newest-entry guard came back.
    let objects: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE tbl_name = 'sync_outbox' AND type IN ('index', 'trigger')
             ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        objects,
        [
            "sync_outbox_failed",
            "sync_outbox_in_flight",
            "sync_outbox_keep_newest"
        ]
    );
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT seq FROM sync_outbox WHERE status = 'in_flight' AND batch_key = '01JD3Q5M2K7Y8V3C4B5N6M7P8Q'",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("sync_outbox_in_flight"), "{plan}");
    // The per-row state view reads the rebuilt table.
    let (status, error): (String, String) = conn
        .query_row(
            "SELECT status, last_error FROM sync_row_state WHERE entity_id = ?1",
            [before[2][3].clone()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap_or_else(|e| panic!("row state of a failed entry: {e}"));
    assert_eq!((status.as_str(), error.as_str()), ("failed", "refused"));
    // Pruning keeps the newest entry.
    assert_eq!(conn.execute("DELETE FROM sync_outbox", []).unwrap(), 5);
    assert_eq!(outbox_rows(&store).len(), 1);
}

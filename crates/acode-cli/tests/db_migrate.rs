//! `acode db migrate` on a workspace whose database has an older schema:
//! with `backup.before_migrate` on (the default) a copy of the database as
//! it was is taken first; with it off, none is.
#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

mod common;

use std::path::Path;

use acode_store::{OpenOptions, Store, migrations};
use common::{Ws, run};

const OLD_CHAT: &str = "01JD3Q5M2K7Y8V3C4B5N6M7P8Q";

/// A workspace whose database is at schema v1 with one chat.
fn old_workspace() -> Ws {
    let ws = Ws::new();
    let db = ws.agent("workspace.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let opts = OpenOptions {
        migrate: false,
        ..OpenOptions::default()
    };
    let mut store = Store::open(&db, &opts).unwrap();
    store.migrate_to(1).unwrap();
    store
        .connection()
        .execute(
            "INSERT INTO chats (id, title, privacy, created_at, updated_at)
             VALUES (?1, 'before the upgrade', 'full', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
            [OLD_CHAT],
        )
        .unwrap();
    drop(store);
    let status = ws.ok(&["db", "status"]);
    assert_eq!(status["schema_version"], 1);
    ws
}

/// Every migration after v1, which `db migrate` applies to the old schema.
fn after_v1() -> Vec<i64> {
    (2..=migrations::latest()).collect()
}

fn applied_versions(v: &serde_json::Value) -> Vec<i64> {
    v["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_i64().unwrap())
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn db_migrate_takes_a_backup_of_the_old_schema_first_when_before_migrate_is_on() {
    let ws = old_workspace();
    let v = ws.ok(&["db", "migrate"]);
    assert_eq!(applied_versions(&v), after_v1());
    let backup = Path::new(v["backup"].as_str().expect("a pre-migration backup")).to_path_buf();
    assert!(backup.starts_with(ws.agent("backups")), "{backup:?}");
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("pre-migrate-v1-"), "{name}");
    assert_eq!(files_in(&ws.agent("backups")), vec![name]);

    // The copy is the database as it was before the migration: v1, its row.
    let copy = rusqlite::Connection::open(&backup).unwrap();
    let (version, title): (i64, String) = copy
        .query_row(
            "SELECT (SELECT max(version) FROM acode_schema_history),
                    (SELECT title FROM chats WHERE id = ?1)",
            [OLD_CHAT],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((version, title.as_str()), (1, "before the upgrade"));

    // And the workspace itself is migrated, its row intact.
    assert_eq!(
        ws.ok(&["db", "status"])["schema_version"],
        migrations::latest()
    );
    let chat = ws.ok(&["chat", "show", OLD_CHAT]);
    assert_eq!(chat["title"], "before the upgrade");
}

#[test]
fn db_migrate_takes_no_backup_when_before_migrate_is_off() {
    let ws = old_workspace();
    let r = run(ws
        .cmd(&["db", "migrate"])
        .env("ACODE_BACKUP_BEFORE_MIGRATE", "false"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(applied_versions(&v), after_v1());
    assert!(v["backup"].is_null(), "{v}");
    assert!(files_in(&ws.agent("backups")).is_empty());
    assert_eq!(
        ws.ok(&["db", "status"])["schema_version"],
        migrations::latest()
    );
}

#[test]
fn db_migrate_with_nothing_pending_takes_no_backup() {
    let ws = Ws::new();
    let v = ws.ok(&["db", "migrate"]);
    assert!(applied_versions(&v).is_empty());
    assert!(v["backup"].is_null(), "{v}");
    assert!(files_in(&ws.agent("backups")).is_empty());
}

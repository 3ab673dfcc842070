//! `db backup`, `db restore`, `db prune-backups` and `export`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Ws, run};
use serde_json::Value;

/// The bytes of the database and its sidecars (None when absent).
fn db_files(ws: &Ws) -> Vec<Option<Vec<u8>>> {
    ["workspace.db", "workspace.db-wal", "workspace.db-shm"]
        .iter()
        .map(|f| std::fs::read(ws.agent(f)).ok())
        .collect()
}

fn chat_titles(ws: &Ws) -> Vec<String> {
    ws.ok(&["chat", "list"])["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn backup_then_restore_brings_the_data_back() {
    let ws = Ws::new();
    let chat = ws.new_chat("kept", "full");
    ws.ok(&["msg", "add", &chat, "hello, \"world\"\nü"]);
    let b = ws.ok(&["db", "backup"]);
    let path = PathBuf::from(b["path"].as_str().unwrap());
    assert!(path.starts_with(ws.agent("backups")), "{}", path.display());
    assert!(path.to_string_lossy().ends_with(".db.gz"));
    assert_eq!(
        b["bytes"].as_u64().unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
    assert_eq!(b["sha256"].as_str().unwrap().len(), 64);
    let manifest = format!("{}.manifest.json", path.display());
    assert!(Path::new(&manifest).is_file());

    ws.new_chat("added after the backup", "full");
    assert_eq!(chat_titles(&ws).len(), 2);
    let r = ws.ok(&["db", "restore", path.to_str().unwrap()]);
    assert_eq!(
        r["path"].as_str().unwrap(),
        ws.agent("workspace.db").to_str().unwrap()
    );
    assert_eq!(chat_titles(&ws), vec!["kept".to_owned()]);
    assert_eq!(
        ws.messages(&chat),
        vec![("user".into(), "hello, \"world\"\nü".into())]
    );

    let plain = ws.ok(&["db", "backup", "--no-compress", "--out", "elsewhere"]);
    let plain_path = plain["path"].as_str().unwrap();
    assert!(plain_path.ends_with(".db"), "{plain_path}");
    assert!(Path::new(plain_path).is_file());
}

#[test]
fn a_damaged_missing_or_foreign_backup_is_refused_and_changes_nothing() {
    let ws = Ws::new();
    ws.new_chat("mine", "full");
    let b = ws.ok(&["db", "backup"]);
    let path = PathBuf::from(b["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    ws.new_chat("after", "full");
    let before = db_files(&ws);

    let r = ws.fail(&["db", "restore", path.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert_eq!(r.error_code(), "ACODE-BACKUP-002", "{}", r.stdout);
    assert_eq!(db_files(&ws), before);

    let r = ws.fail(&["db", "restore", "no-such-backup.db.gz"]);
    assert_eq!(r.error_code(), "ACODE-BACKUP-004");
    assert_eq!(db_files(&ws), before);

    let foreign = ws.root().join("photo.db");
    std::fs::write(&foreign, "GIF89a not a database").unwrap();
    let r = ws.fail(&["db", "restore", foreign.to_str().unwrap()]);
    assert_eq!(r.error_code(), "ACODE-BACKUP-003");
    assert!(
        r.error_message().contains("manifest"),
        "{}",
        r.error_message()
    );
    assert_eq!(db_files(&ws), before);
    assert_eq!(chat_titles(&ws).len(), 2);
}

#[test]
fn prune_backups_keeps_the_newest_and_needs_a_rule() {
    let ws = Ws::new();
    let paths: Vec<String> = (0..3)
        .map(|_| {
            ws.ok(&["db", "backup"])["path"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let r = ws.fail(&["db", "prune-backups"]);
    assert_eq!(r.code, 2, "no rule is a usage error");
    assert_eq!(r.error_code(), "ACODE-USAGE-001");
    assert!(paths.iter().all(|p| Path::new(p).exists()));

    let p = ws.ok(&["db", "prune-backups", "--keep-last", "1"]);
    let mut removed: Vec<String> = p["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    removed.sort();
    let mut expected = paths.clone();
    expected.sort();
    let newest = expected.pop().unwrap();
    assert_eq!(removed, expected);
    assert!(Path::new(&newest).exists());
    let p = ws.ok(&["db", "prune-backups", "--keep-days", "30"]);
    assert_eq!(p["removed"], serde_json::json!([]));
}

#[test]
fn export_writes_every_format_and_respects_privacy() {
    let ws = Ws::new();
    let chat = ws.new_chat("shared", "full");
    let local = ws.new_chat("private", "local_only");
    ws.ok(&["msg", "add", &chat, "a, \"quoted\"\nline ü"]);
    ws.ok(&["msg", "add", &local, "stays here"]);

    // JSON to stdout: one array.
    let r = run(common::acode_in(ws.root()).args(["export", "messages", "--format", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["content"], "a, \"quoted\"\nline ü");

    let r = run(common::acode_in(ws.root()).args([
        "export",
        "messages",
        "--format",
        "json",
        "--include-local-only",
    ]));
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // CSV to a file, with --json reporting the count.
    let out = ws.root().join("msgs.csv");
    let e = ws.ok(&[
        "export",
        "messages",
        "--format",
        "csv",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(e["rows"], 1);
    let mut reader = csv::Reader::from_path(&out).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let content = header.iter().position(|h| h == "content").unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(&records[0][content], "a, \"quoted\"\nline ü");

    // SQL loads into a fresh SQLite.
    let sql_file = ws.root().join("chats.sql");
    ws.ok(&[
        "export",
        "conversations",
        "--format",
        "sql",
        "--out",
        sql_file.to_str().unwrap(),
    ]);
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(&std::fs::read_to_string(&sql_file).unwrap())
        .unwrap();
    let titles: Vec<String> = conn
        .prepare("SELECT title FROM chats")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(titles, vec!["shared".to_owned()]);
}

#[test]
fn export_refuses_bad_arguments_before_writing() {
    let ws = Ws::new();
    let out = ws.root().join("out.json");
    let r = ws.fail(&[
        "export",
        "messages",
        "--since",
        "last week",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.error_code(), "ACODE-STORE-002");
    assert!(
        r.error_message().contains("last week"),
        "{}",
        r.error_message()
    );
    let r = ws.fail(&[
        "export",
        "messages",
        "--chat",
        "nope",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.error_code(), "ACODE-STORE-002");
    let r = ws.fail(&[
        "export",
        "messages",
        "--chat",
        common::MISSING_ID,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.error_code(), "ACODE-STORE-001");
    // An output folder that does not exist: the export's own I/O error,
    // naming the user's path rather than a temporary one.
    let nowhere = ws.root().join("no-such-folder/out.json");
    let r = ws.fail(&["export", "messages", "--out", nowhere.to_str().unwrap()]);
    assert_eq!(r.error_code(), "ACODE-STORE-009");
    assert!(
        r.error_message().contains(nowhere.to_str().unwrap()),
        "{}",
        r.error_message()
    );
    let r = ws.fail(&["export", "runs", "--format", "xml"]);
    assert_eq!(r.error_code(), "ACODE-USAGE-001");
    assert!(!out.exists(), "a refused export left a file");
    let left: Vec<_> = std::fs::read_dir(ws.root())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from(".agent")]);
}

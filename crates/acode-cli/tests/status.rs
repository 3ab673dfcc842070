//! `db status`, `db migrate`, `sync status`, `demo`, the error codes.
#![allow(clippy::unwrap_used)]

mod common;

use acode_protocol::ErrorCode;
use common::{Ws, acode_in, run};

#[test]
fn db_status_reports_schema_files_and_rows() {
    let ws = Ws::new();
    let chat = ws.new_chat("c", "full");
    ws.ok(&["msg", "add", &chat, "m"]);
    let s = ws.ok(&["db", "status"]);
    let latest = s["latest_version"].as_i64().unwrap();
    assert!(latest >= 2);
    assert_eq!(s["schema_version"], latest);
    let applied: Vec<i64> = s["applied_migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_i64().unwrap())
        .collect();
    assert_eq!(applied, (1..=latest).collect::<Vec<_>>());
    assert_eq!(s["pending_migrations"].as_array().unwrap().len(), 0);
    let on_disk = std::fs::metadata(ws.agent("workspace.db")).unwrap().len();
    assert_eq!(s["db_bytes"].as_u64().unwrap(), on_disk);
    assert!(s["wal_bytes"].is_u64());
    let rows = &s["rows"];
    for table in [
        "chats",
        "messages",
        "sessions",
        "tasks",
        "steps",
        "tool_calls",
        "artifacts",
        "sync_outbox",
    ] {
        assert!(rows[table].is_i64(), "{table} missing from {rows}");
    }
    assert_eq!(
        (rows["chats"].as_i64(), rows["messages"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(rows["sync_outbox"], 2);
}

#[test]
fn db_migrate_on_an_up_to_date_database_applies_nothing() {
    let ws = Ws::new();
    let before = std::fs::read_dir(ws.agent("")).unwrap().count();
    let m = ws.ok(&["db", "migrate"]);
    assert_eq!(m["applied"].as_array().unwrap().len(), 0);
    assert!(m["backup"].is_null());
    assert!(!ws.agent("backups").exists(), "no backup for nothing to do");
    assert_eq!(std::fs::read_dir(ws.agent("")).unwrap().count(), before);
}

#[test]
fn sync_status_is_offline_and_counts_every_captured_change() {
    let ws = Ws::new();
    let full = ws.new_chat("synced", "full");
    let redacted = ws.new_chat("shape only", "redacted");
    let local = ws.new_chat("mine", "local_only");
    ws.ok(&["msg", "add", &full, "a"]);
    ws.ok(&["msg", "add", &redacted, "b"]);
    ws.ok(&["msg", "add", &local, "never captured"]);
    let captured = ws.rows()["sync_outbox"].as_i64().unwrap();
    assert_eq!(captured, 4);

    let s = ws.ok(&["sync", "status"]);
    assert_eq!(s["mode"], "offline");
    assert_eq!(s["reason"], "no remote configured (sync.remote.url)");
    assert_eq!(s["pending"], captured);
    for zero in ["failed", "conflicts", "synced_today", "downloaded_today"] {
        assert_eq!(s[zero], 0, "{zero}");
    }
    assert!(s["last_push_at"].is_null() && s["last_pull_at"].is_null());
    assert!(s["lag_seconds"].as_f64().unwrap() >= 0.0);

    let r = run(ws
        .cmd(&["sync", "status"])
        .env("ACODE_SYNC_REMOTE_URL", "https://sync.example.invalid"));
    let s = r.json();
    assert_eq!(
        (s["mode"].as_str(), s["reason"].as_str()),
        (
            Some("offline"),
            Some("not synced yet: run `acode sync now` or `acode sync run`")
        )
    );
    let r = run(ws
        .cmd(&["sync", "status"])
        .env("ACODE_SYNC_ENABLED", "false"));
    assert_eq!(r.json()["reason"], "sync disabled (sync.enabled is false)");

    let mut text = acode_in(ws.root());
    let r = run(text
        .arg("--workspace")
        .arg(ws.root())
        .args(["sync", "status"]));
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("offline") && r.stdout.contains("4 pending"),
        "{}",
        r.stdout
    );
}

#[test]
fn demo_builds_a_workspace_and_says_it_is_offline() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(acode_in(dir.path()).args(["demo", "--json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let d = r.json();
    assert_eq!(d["seeded"], true);
    let privacy: Vec<&str> = d["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["privacy"].as_str().unwrap())
        .collect();
    assert_eq!(privacy, ["full", "redacted", "local_only"]);
    assert_eq!(d["sync"]["mode"], "offline");
    assert!(d["sync"]["pending"].as_i64().unwrap() > 0);
    assert!(dir.path().join("acode-demo/.agent/workspace.db").is_file());

    let demo = dir.path().join("acode-demo");
    let runs = run(acode_in(dir.path())
        .arg("--workspace")
        .arg(&demo)
        .args(["runs", "list", "--json"]))
    .json();
    let counts = &runs["runs"][0]["counts"];
    assert_eq!(
        (
            counts["tasks"].as_i64(),
            counts["steps"].as_i64(),
            counts["tool_calls"].as_i64(),
            counts["artifacts"].as_i64()
        ),
        (Some(1), Some(1), Some(1), Some(1))
    );
    let id = runs["runs"][0]["id"].as_str().unwrap().to_owned();
    let shown = run(acode_in(dir.path())
        .arg("--workspace")
        .arg(&demo)
        .args(["runs", "show", &id, "--json"]))
    .json();
    let step = &shown["tasks"][0]["steps"][0];
    assert_eq!(step["tool_calls"][0]["tool"], "shell");
    assert_eq!(shown["artifacts"][0]["step_id"], step["id"]);

    // Again, in text: nothing added, still offline.
    let r = run(acode_in(dir.path()).arg("demo"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("offline"), "{}", r.stdout);
    let list = run(acode_in(dir.path())
        .arg("--workspace")
        .arg(&demo)
        .args(["chat", "list", "--json"]))
    .json();
    assert_eq!(list["chats"].as_array().unwrap().len(), 3);
}

#[test]
fn help_codes_lists_every_error_code() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["help", "codes", "--json"][..], &["codes", "--json"]] {
        let r = run(acode_in(dir.path()).args(args));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let listed: Vec<(String, String)> = r.json()["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["code"].as_str().unwrap().to_owned(),
                    c["summary"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let all: Vec<(String, String)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.code().to_owned(), c.summary().to_owned()))
            .collect();
        assert_eq!(listed, all);
    }
    let r = run(acode_in(dir.path()).args(["help", "codes"]));
    assert!(ErrorCode::ALL.iter().all(|c| r.stdout.contains(c.code())));
}

#[test]
fn readme_lists_every_error_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).unwrap_or_default();
    let missing: Vec<&str> = ErrorCode::ALL
        .iter()
        .map(|c| c.code())
        .filter(|code| !readme.contains(code))
        .collect();
    assert!(missing.is_empty(), "README.md lacks {missing:?}");
}

#[test]
fn db_status_on_a_missing_database_creates_nothing() {
    let ws = Ws::new();
    let db = ws.agent("workspace.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let r = run(&mut ws.cmd(&["db", "status"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let err: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(err["error"]["code"], "ACODE-STORE-008");
    assert!(!db.exists(), "db status created a database");
}

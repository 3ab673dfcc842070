//! Finding and creating workspaces, and refusing what is not one: missing,
//! corrupt, newer, or badly configured.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Ws, acode_in, run};

#[test]
fn init_creates_the_files_and_is_idempotent() {
    let ws = Ws::uninitialized();
    let first = ws.ok(&["init", "--device-name", "laptop"]);
    let root = std::fs::canonicalize(ws.root()).unwrap();
    assert_eq!(
        std::fs::canonicalize(first["workspace"].as_str().unwrap()).unwrap(),
        root
    );
    let device = first["device_id"].as_str().unwrap().to_owned();
    assert_eq!(device.len(), 26);
    assert_eq!(first["device_name"], "laptop");
    assert!(ws.agent("config.yml").is_file());
    assert!(ws.agent("workspace.db").is_file());
    let template = std::fs::read_to_string(ws.agent("config.yml")).unwrap();
    assert!(template.contains("batch_size: 50"), "{template}");

    let mine = "# my settings\nsync:\n  upload:\n    batch_size: 7\n";
    std::fs::write(ws.agent("config.yml"), mine).unwrap();
    let second = ws.ok(&["init"]);
    assert_eq!(second["device_id"], device.as_str());
    assert_eq!(second["device_name"], "laptop");
    assert_eq!(
        std::fs::read_to_string(ws.agent("config.yml")).unwrap(),
        mine
    );
}

#[test]
fn init_without_workspace_uses_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(acode_in(dir.path()).args(["init", "--json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(
        std::fs::canonicalize(r.json()["workspace"].as_str().unwrap()).unwrap(),
        root
    );
    assert!(dir.path().join(".agent/workspace.db").is_file());
}

#[test]
fn the_workspace_is_found_from_a_nested_directory_and_through_the_environment() {
    let ws = Ws::new();
    let chat = ws.new_chat("found me", "full");
    let nested = ws.root().join("src/deep/er");
    std::fs::create_dir_all(&nested).unwrap();

    let r = run(acode_in(&nested).args(["chat", "list", "--json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["chats"][0]["id"], chat.as_str());

    let elsewhere = tempfile::tempdir().unwrap();
    let r = run(acode_in(elsewhere.path())
        .env("ACODE_WORKSPACE", ws.root())
        .args(["chat", "list", "--json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["chats"][0]["id"], chat.as_str());
}

#[test]
fn outside_a_workspace_is_store_008() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(acode_in(dir.path()).args(["chat", "list", "--json"]));
    assert_eq!(r.code, 1);
    assert_eq!(r.error_code(), "ACODE-STORE-008");
    // A named directory that is not a workspace is refused too, in text form.
    let r = run(acode_in(dir.path())
        .arg("--workspace")
        .arg(dir.path())
        .args(["chat", "list"]));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("error[ACODE-STORE-008]: "),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join(".agent").exists());
}

#[test]
fn a_file_that_is_not_a_database_is_store_003_and_left_untouched() {
    for content in [
        b"just some notes, not a database\n".to_vec(),
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    ] {
        let ws = Ws::new();
        std::fs::remove_file(ws.agent("workspace.db")).unwrap();
        std::fs::write(ws.agent("workspace.db"), &content).unwrap();
        for args in [
            &["chat", "list"][..],
            &["db", "status"],
            &["msg", "add", common::MISSING_ID, "x"],
        ] {
            let r = ws.fail(args);
            assert_eq!(r.code, 1);
            assert_eq!(r.error_code(), "ACODE-STORE-003", "{args:?}: {}", r.stdout);
        }
        assert_eq!(std::fs::read(ws.agent("workspace.db")).unwrap(), content);
    }
}

#[test]
fn a_config_value_of_the_wrong_type_is_config_001_naming_the_key() {
    let ws = Ws::new();
    std::fs::write(
        ws.agent("config.yml"),
        "sync:\n  upload:\n    batch_size: lots\n",
    )
    .unwrap();
    let r = ws.fail(&["chat", "list"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.error_code(), "ACODE-CONFIG-001");
    assert!(
        r.error_message().contains("sync.upload.batch_size"),
        "{}",
        r.error_message()
    );

    let ws = Ws::new();
    let r = run(ws
        .cmd(&["chat", "list"])
        .env("ACODE_SYNC_UPLOAD_BATCH_SIZE", "abc"));
    assert_eq!(r.code, 1);
    assert_eq!(r.error_code(), "ACODE-CONFIG-001");
    let message = r.error_message();
    assert!(message.contains("sync.upload.batch_size"), "{message}");
    assert!(
        message.contains("ACODE_SYNC_UPLOAD_BATCH_SIZE"),
        "{message}"
    );
}

fn add_future_migration(ws: &Ws, applied_on: &str) {
    let conn = rusqlite::Connection::open(ws.agent("workspace.db")).unwrap();
    conn.execute(
        "INSERT INTO acode_schema_history(version,name,applied_on,checksum) VALUES(999,'future',?1,'1')",
        [applied_on],
    )
    .unwrap();
}

#[test]
fn a_newer_schema_is_store_004_for_every_command_including_db_status() {
    let ws = Ws::new();
    ws.new_chat("before the upgrade", "full");
    add_future_migration(&ws, "2030-01-01T00:00:00Z");
    for args in [
        &["chat", "list"][..],
        &["db", "status"],
        &["db", "migrate"],
        &["sync", "status"],
    ] {
        let r = ws.fail(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert_eq!(r.error_code(), "ACODE-STORE-004", "{args:?}");
    }
}

/// The history row as the task brief writes it: `applied_on` is a date,
/// not RFC 3339. refinery's rusqlite driver unwraps its parse of that
/// column, so today this panics inside acode-store (exit 101) instead of
/// refusing the database with ACODE-STORE-004.
#[test]
fn a_newer_schema_with_a_date_only_applied_on_is_refused_not_a_panic() {
    let ws = Ws::new();
    add_future_migration(&ws, "2030-01-01");
    for args in [&["chat", "list"][..], &["db", "status"]] {
        let r = ws.fail(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert_eq!(r.error_code(), "ACODE-STORE-004", "{args:?}");
    }
}

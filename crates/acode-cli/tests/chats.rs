//! `acode chat …`: the round trip, and bad input refused without a write.
#![allow(clippy::unwrap_used)]

mod common;

use common::{MISSING_ID, Ws, run};
use serde_json::Value;

fn chat<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list["chats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
}

#[test]
fn chats_round_trip_with_their_sync_status() {
    let ws = Ws::new();
    let synced = ws.new_chat("Planning", "full");
    let local = ws.new_chat("Diary", "local_only");

    let list = ws.ok(&["chat", "list"]);
    assert_eq!(list["chats"].as_array().unwrap().len(), 2);
    let c = chat(&list, &synced).unwrap();
    assert_eq!(
        (&c["title"], &c["privacy"], &c["sync_status"]),
        (
            &Value::from("Planning"),
            &Value::from("full"),
            &Value::from("pending")
        )
    );
    let c = chat(&list, &local).unwrap();
    assert_eq!(
        (&c["privacy"], &c["sync_status"]),
        (&Value::from("local_only"), &Value::from("local_only"))
    );

    ws.ok(&["msg", "add", &synced, "hello"]);
    let shown = ws.ok(&["chat", "show", &synced]);
    assert_eq!(shown["id"], synced.as_str());
    assert_eq!(shown["title"], "Planning");
    assert_eq!(shown["messages"].as_array().unwrap().len(), 1);
    assert_eq!(shown["messages"][0]["content"], "hello");

    let renamed = ws.ok(&["chat", "rename", &synced, "Planning Q3"]);
    assert_eq!(renamed["title"], "Planning Q3");
    let redacted = ws.ok(&["chat", "privacy", &synced, "redacted"]);
    assert_eq!(redacted["privacy"], "redacted");
    let list = ws.ok(&["chat", "list"]);
    let c = chat(&list, &synced).unwrap();
    assert_eq!(
        (&c["title"], &c["privacy"]),
        (&Value::from("Planning Q3"), &Value::from("redacted"))
    );

    let deleted = ws.ok(&["chat", "delete", &synced]);
    assert_eq!(deleted["deleted"], synced.as_str());
    let list = ws.ok(&["chat", "list"]);
    assert!(chat(&list, &synced).is_none());
    assert!(chat(&list, &local).is_some());
    assert_eq!(
        ws.fail(&["chat", "show", &synced]).error_code(),
        "ACODE-STORE-001"
    );
    assert_eq!(ws.rows()["messages"], 0, "the chat's messages went with it");
}

#[test]
fn an_empty_title_is_store_002_and_writes_nothing() {
    let ws = Ws::new();
    let id = ws.new_chat("kept", "full");
    let before = ws.rows();
    for args in [
        &["chat", "new", ""][..],
        &["chat", "new", "   "],
        &["chat", "rename", &id, ""],
    ] {
        let r = ws.fail(args);
        assert_eq!(r.code, 1);
        assert_eq!(r.error_code(), "ACODE-STORE-002", "{args:?}");
    }
    assert_eq!(ws.rows(), before);
    assert_eq!(ws.ok(&["chat", "show", &id])["title"], "kept");
}

#[test]
fn an_invalid_id_is_store_002_and_an_unknown_one_store_001() {
    let ws = Ws::new();
    for args in [
        &["chat", "show", "not-an-id"][..],
        &["chat", "delete", "01ARZ3NDEK'; DROP TABLE chats; --"],
        &["chat", "rename", "x", "title"],
        &["msg", "list", "123"],
        &["runs", "show", ""],
    ] {
        let r = ws.fail(args);
        assert_eq!(r.code, 1);
        assert_eq!(r.error_code(), "ACODE-STORE-002", "{args:?}");
    }
    for args in [
        &["chat", "delete", MISSING_ID][..],
        &["chat", "privacy", MISSING_ID, "full"],
        &["runs", "show", MISSING_ID],
    ] {
        let r = ws.fail(args);
        assert_eq!(r.code, 1);
        assert_eq!(r.error_code(), "ACODE-STORE-001", "{args:?}");
    }
    assert_eq!(ws.rows()["sync_outbox"], 0);
}

#[test]
fn an_invalid_privacy_value_is_a_usage_error() {
    let ws = Ws::new();
    let r = run(&mut ws.cmd(&["chat", "new", "t", "--privacy", "public"]));
    assert_eq!(r.code, 2);
    assert_eq!(r.error_code(), "ACODE-USAGE-001");
    assert!(
        r.error_message().contains("public"),
        "{}",
        r.error_message()
    );

    let mut cmd = common::acode_in(ws.root());
    cmd.arg("--workspace")
        .arg(ws.root())
        .args(["chat", "new", "t", "--privacy", "public"]);
    let r = run(&mut cmd);
    assert_eq!(r.code, 2);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.starts_with("error[ACODE-USAGE-001]: "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("possible values: full, redacted, local_only"),
        "{}",
        r.stderr
    );
    assert_eq!(ws.rows()["chats"], 0);
}

#[test]
fn help_and_version_exit_zero() {
    let ws = Ws::new();
    for args in [
        &["--help"][..],
        &["--version"],
        &["chat", "new", "--help"],
        &["help", "chat", "new"],
    ] {
        let mut cmd = common::acode_in(ws.root());
        let r = run(cmd.args(args));
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(
            r.stdout.contains("acode") || r.stdout.contains("Usage"),
            "{args:?}: {}",
            r.stdout
        );
    }
}

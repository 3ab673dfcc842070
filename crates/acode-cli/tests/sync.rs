//! `acode sync …` end to end: two workspaces syncing through a real
//! PostgreSQL (direct mode), an unreachable remote, and the foreground
//! worker stopped by SIGTERM.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use acode_testkit::TestDb;
use common::{Ws, run};
use serde_json::Value;

/// Runs `acode --json ARGS` in `ws` against `url`, expecting success.
fn synced(ws: &Ws, url: &str, args: &[&str]) -> Value {
    let r = run(ws.cmd(args).env("ACODE_SYNC_REMOTE_URL", url));
    assert_eq!(r.code, 0, "acode {args:?}: {}{}", r.stdout, r.stderr);
    r.json()
}

#[test]
fn two_workspaces_sync_through_postgres() {
    let db = TestDb::create();
    let url = db.url();
    let (a, b) = (Ws::new(), Ws::new());
    let chat = a.new_chat("shared plans", "full");
    a.ok(&["msg", "add", &chat, "hello from A"]);

    let now = synced(&a, &url, &["sync", "now"]);
    assert_eq!(
        (now["uploaded"].as_i64(), now["mode"].as_str()),
        (Some(2), Some("online"))
    );
    let status = synced(&a, &url, &["sync", "status"]);
    assert_eq!(
        (status["mode"].as_str(), status["pending"].as_i64()),
        (Some("online"), Some(0))
    );

    let now = synced(&b, &url, &["sync", "now"]);
    assert_eq!(now["downloaded"], 2);
    let list = b.ok(&["chat", "list"]);
    assert_eq!(list["chats"][0]["title"], "shared plans");
    assert_eq!(list["chats"][0]["sync_status"], "synced");
    let msgs = b.messages(&chat);
    assert_eq!(msgs[0].1, "hello from A");

    // A conflict: both rename; the later one wins and the loser is listed.
    a.ok(&["chat", "rename", &chat, "from A"]);
    b.ok(&["chat", "rename", &chat, "from B"]);
    synced(&a, &url, &["sync", "now"]);
    let now = synced(&b, &url, &["sync", "now"]);
    assert_eq!(now["conflicts"], 1);
    let conflicts = b.ok(&["sync", "conflicts"]);
    let c = &conflicts["conflicts"][0];
    assert_eq!(
        (c["entity"].as_str(), c["entity_id"].as_str()),
        (Some("chat"), Some(chat.as_str()))
    );
    assert!(std::path::Path::new(c["preserved_path"].as_str().unwrap()).exists());
    let id = c["id"].as_i64().unwrap().to_string();
    let shown = b.ok(&["sync", "conflicts", "--show", &id]);
    assert_eq!(shown["conflicts"][0]["loser"]["data"]["title"], "from A");
    assert_eq!(
        b.ok(&["sync", "conflicts", "--ack", &id])["acknowledged"],
        1
    );
    assert!(
        b.ok(&["sync", "conflicts"])["conflicts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        b.fail(&["sync", "conflicts", "--ack", "999"]).error_code(),
        "ACODE-STORE-001"
    );
}

#[test]
fn an_unreachable_remote_is_offline_and_keeps_everything() {
    let ws = Ws::new();
    ws.new_chat("kept", "full");
    // Nothing listens on port 1.
    let url = "postgres://postgres@127.0.0.1:1/nowhere?connect_timeout=2";
    let now = synced(&ws, url, &["sync", "now"]);
    assert_eq!(now["mode"], "offline");
    assert_eq!(now["uploaded"], 0);
    let status = synced(&ws, url, &["sync", "status"]);
    assert_eq!(
        (status["mode"].as_str(), status["pending"].as_i64()),
        (Some("offline"), Some(1))
    );
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("ACODE-SYNC-001"),
        "{status}"
    );
    let queue = ws.ok(&["sync", "queue"]);
    assert_eq!(
        queue["entries"][0]["retries"], 0,
        "no attempt spent while offline"
    );
}

#[test]
fn pause_resume_queue_and_retry_without_a_remote() {
    let ws = Ws::new();
    assert_eq!(ws.ok(&["sync", "pause"])["paused"], true);
    assert_eq!(ws.ok(&["sync", "status"])["mode"], "paused");
    ws.new_chat("queued", "full");
    let q = ws.ok(&["sync", "queue"]);
    assert_eq!(q["entries"].as_array().unwrap().len(), 1);
    assert_eq!(q["entries"][0]["status"], "pending");
    assert!(
        ws.ok(&["sync", "queue", "--errors"])["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(ws.ok(&["sync", "resume"])["paused"], false);
    assert!(
        ws.ok(&["sync", "retry"])["retried"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let now = ws.ok(&["sync", "now"]);
    assert_eq!(now["mode"], "offline");
    assert_eq!(
        ws.fail(&["sync", "retry", "not-an-id"]).error_code(),
        "ACODE-STORE-002"
    );
    let bad = run(ws
        .cmd(&["sync", "now"])
        .env("ACODE_SYNC_REMOTE_URL", "ftp://example"));
    assert_eq!(bad.code, 1);
    assert_eq!(bad.error_code(), "ACODE-CONFIG-001");
}

#[test]
fn the_worker_uploads_writes_from_other_processes_and_stops_on_sigterm() {
    let db = TestDb::create();
    let url = db.url();
    let ws = Ws::new();
    let worker = std::process::Command::new(env!("CARGO_BIN_EXE_acode"))
        .arg("--workspace")
        .arg(ws.root())
        .args(["sync", "run"])
        .env("ACODE_SYNC_REMOTE_URL", &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A write from another process: the worker notices it without waiting
    // for the 5 s poll.
    let chat = ws.new_chat("picked up by the worker", "full");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let arrived = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        loop {
            let found = client
                .query_opt("SELECT title FROM chats WHERE id = $1", &[&chat])
                .await
                .ok()
                .flatten()
                .map(|r| r.get::<_, String>(0));
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eq!(arrived.as_deref(), Some("picked up by the worker"));
    // `sync now` while the worker runs asks the worker, and gets its report.
    let other = ws.new_chat("asked for", "full");
    let asked = synced(&ws, &url, &["sync", "now"]);
    assert_eq!(asked["mode"], "online", "{asked}");
    let pending = ws.ok(&["sync", "status"])["pending"].as_i64().unwrap();
    assert_eq!(
        pending, 0,
        "{other} was uploaded by the time `sync now` returned"
    );

    let pid = worker.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = worker.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped"));
    // The lease was released: `sync now` works at once.
    assert_eq!(synced(&ws, &url, &["sync", "now"])["mode"], "online");
}

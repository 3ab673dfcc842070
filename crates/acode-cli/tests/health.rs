//! `acode health` end to end: every check's line in `--json`, the exit
//! code by status (0, 1, 2), PostgreSQL reached or not, Redis when
//! `REDIS_URL` is set, and a clear error when there is no workspace.
#![allow(clippy::unwrap_used)]

mod common;

use acode_testkit::TestDb;
use common::{Ws, run};

const LOCAL: [&str; 8] = [
    "sqlite",
    "schema",
    "outbox",
    "sync_lag",
    "failure_rate",
    "disk",
    "db_size",
    "wal_size",
];

fn names(v: &serde_json::Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_fresh_workspace_is_healthy() {
    let ws = Ws::new();
    let r = run(ws.cmd(&["health"]).env_remove("REDIS_URL"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["status"], "Healthy");
    assert_eq!(names(&v), LOCAL);
    for c in v["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "Healthy", "{c}");
        assert!(c["duration_ms"].as_f64().is_some(), "{c}");
        assert!(c["message"].as_str().is_some_and(|m| !m.is_empty()), "{c}");
        assert!(c["data"].is_object(), "{c}");
    }
    let mut text = common::acode_in(ws.root());
    text.arg("--workspace")
        .arg(ws.root())
        .arg("health")
        .env_remove("REDIS_URL");
    let r = run(&mut text);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("Health: Healthy\n"), "{}", r.stdout);
    assert!(r.stdout.contains("✓"), "{}", r.stdout);
}

#[test]
fn a_backed_up_queue_exits_1_and_an_unreachable_remote_exits_2() {
    let db = TestDb::create();
    let ws = Ws::new();
    for i in 0..3 {
        ws.new_chat(&format!("chat {i}"), "full");
    }
    let r = run(ws
        .cmd(&["health"])
        .env("ACODE_SYNC_REMOTE_URL", db.url())
        .env("ACODE_HEALTH_OUTBOX_PENDING_DEGRADED", "3")
        .env_remove("REDIS_URL"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["status"], "Degraded");
    let mut want: Vec<&str> = LOCAL.to_vec();
    want.extend(["postgres", "postgres_pool", "postgres_transactions"]);
    assert_eq!(names(&v), want);
    let outbox = &v["checks"][2];
    assert_eq!(
        (
            outbox["status"].as_str(),
            outbox["data"]["pending"].as_i64()
        ),
        (Some("Degraded"), Some(3))
    );
    assert_eq!(v["checks"][8]["status"], "Healthy", "{}", v["checks"][8]);

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = run(ws
        .cmd(&["health"])
        .env(
            "ACODE_SYNC_REMOTE_URL",
            db.url_via("127.0.0.1", closed.port()),
        )
        .env_remove("REDIS_URL"));
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["status"], "Unhealthy");
    let pg = &v["checks"][8];
    assert_eq!(pg["name"], "postgres");
    assert!(
        pg["message"]
            .as_str()
            .unwrap()
            .starts_with("ACODE-SYNC-001"),
        "{pg}"
    );
}

#[test]
fn redis_is_checked_when_redis_url_is_set() {
    let ws = Ws::new();
    let r = run(ws
        .cmd(&["health"])
        .env("REDIS_URL", "redis://127.0.0.1:6379"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(names(&v).last().map(String::as_str), Some("redis"));
    let r = run(ws.cmd(&["health"]).env("REDIS_URL", "redis://"));
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.error_code(), "ACODE-CONFIG-001");
    assert!(
        r.error_message().contains("REDIS_URL"),
        "{}",
        r.error_message()
    );
}

#[test]
fn no_workspace_is_a_clear_error_and_exit_2() {
    let ws = Ws::uninitialized();
    let r = run(&mut ws.cmd(&["health"]));
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.error_code(), "ACODE-STORE-008");
    let mut text = common::acode_in(ws.root());
    text.arg("--workspace").arg(ws.root()).arg("health");
    let r = run(&mut text);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with("error[ACODE-STORE-008]"),
        "{}",
        r.stderr
    );
}

//! `acode serve` and `acode admin` end to end, as processes: tenants and
//! device tokens, three server instances on one PostgreSQL behaving as
//! one (a long-poll on one wakes for a push on another), a worker seeing
//! another device's change through long-poll, and a graceful SIGTERM.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use acode_sync::{HttpTransport, Transport};
use acode_testkit::TestDb;
use common::{Ws, acode_in, run};
use serde_json::Value;

/// `acode --json admin ARGS --database-url URL`, expecting success.
fn admin(url: &str, args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let r = run(acode_in(dir.path())
        .arg("--json")
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", url));
    assert_eq!(r.code, 0, "admin {args:?}: {}{}", r.stdout, r.stderr);
    r.json()
}

/// A running `acode serve` on a free port.
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start(database_url: &str) -> Serve {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_acode"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", database_url)
            .env_remove("ACODE_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("acode sync server listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Serve { child, url }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A workspace configured for `server` with a new device token.
fn device_ws(db_url: &str, server: &str, tenant: &str) -> (Ws, String) {
    let device = admin(
        db_url,
        &["device", "add", "--tenant", tenant, "--name", "ws"],
    );
    let ws = Ws::new();
    let config = std::fs::read_to_string(ws.agent("config.yml")).unwrap();
    let token = device["token"].as_str().unwrap().to_string();
    let config = config
        .replacen(
            "# url: https://sync.example.com",
            &format!("url: \"{server}\""),
            1,
        )
        .replacen("# token: device-token", &format!("token: \"{token}\""), 1);
    std::fs::write(ws.agent("config.yml"), config).unwrap();
    (ws, token)
}

/// A plain HTTP GET of `path` on the server at `base` (`http://…`).
fn http_get(base: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let host = base.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// Waits until the server at `base` holds `n` long-polls open.
fn wait_for_long_polls(base: &str, n: u32) {
    let line = format!("acode_server_long_polls_waiting {n}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = http_get(base, "/metrics");
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never {n} long-polls waiting: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn titles(ws: &Ws) -> Vec<String> {
    let mut t: Vec<String> = ws.ok(&["chat", "list"])["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap().to_string())
        .collect();
    t.sort();
    t
}

#[test]
fn admin_manages_the_schema_tenants_and_device_tokens() {
    let db = TestDb::create();
    let url = db.url();
    let migrated = admin(&url, &["migrate"]);
    assert_eq!(
        migrated["applied"].as_array().unwrap().len() as i64,
        migrated["schema_version"].as_i64().unwrap()
    );
    assert!(
        admin(&url, &["migrate"])["applied"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(admin(&url, &["tenant", "add", "acme"])["created"], true);
    assert_eq!(admin(&url, &["tenant", "add", "acme"])["created"], false);
    let dev = admin(
        &url,
        &["device", "add", "--tenant", "acme", "--name", "laptop"],
    );
    let (id, token) = (dev["id"].as_str().unwrap(), dev["token"].as_str().unwrap());
    assert_eq!(dev["tenant"], "acme");
    assert!(token.starts_with("acd1.") && token.contains(id));
    // Only a hash of the token is stored.
    let stored = std::process::Command::new("psql")
        .args([
            &url,
            "-tAc",
            "SELECT encode(token_hash, 'hex') FROM sync_devices",
        ])
        .output()
        .unwrap();
    let stored = String::from_utf8_lossy(&stored.stdout).trim().to_string();
    assert_eq!(stored.len(), 64);
    assert!(!token.contains(&stored));
    let list = admin(&url, &["device", "list", "--tenant", "acme"]);
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["revoked_at"], Value::Null);
    admin(&url, &["device", "revoke", id]);
    assert!(admin(&url, &["device", "list"])[0]["revoked_at"].is_string());

    // Bad input: a clear code, nothing changed.
    let dir = tempfile::tempdir().unwrap();
    let fail = |args: &[&str], db: &str| {
        let r = run(acode_in(dir.path())
            .arg("--json")
            .arg("admin")
            .args(args)
            .env("DATABASE_URL", db));
        assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
        r.error_code()
    };
    assert_eq!(fail(&["device", "revoke", "nope"], &url), "ACODE-AUTH-003");
    assert_eq!(
        fail(&["device", "add", "--tenant", "ghost", "--name", "x"], &url),
        "ACODE-AUTH-003"
    );
    assert_eq!(fail(&["tenant", "add", " "], &url), "ACODE-USAGE-001");
    assert_eq!(fail(&["migrate"], "not a url"), "ACODE-CONFIG-001");
    assert_eq!(
        fail(
            &["migrate"],
            "postgres://postgres@127.0.0.1:1/x?connect_timeout=2"
        ),
        "ACODE-SYNC-001"
    );
    assert_eq!(
        admin(&url, &["device", "list"]).as_array().unwrap().len(),
        1
    );
}

#[test]
fn three_servers_on_one_database_behave_as_one() {
    let db = TestDb::create();
    let url = db.url();
    admin(&url, &["migrate"]);
    admin(&url, &["tenant", "add", "team"]);
    let servers: Vec<Serve> = (0..3).map(|_| Serve::start(&url)).collect();
    let devices: Vec<(Ws, String)> = servers
        .iter()
        .map(|s| device_ws(&url, &s.url, "team"))
        .collect();
    for (i, (ws, _)) in devices.iter().enumerate() {
        ws.new_chat(&format!("chat {i}a"), "full");
        ws.new_chat(&format!("chat {i}b"), "full");
        assert_eq!(ws.ok(&["sync", "now"])["uploaded"], 2);
    }
    for (ws, _) in &devices {
        ws.ok(&["sync", "now"]);
    }
    let expected: Vec<String> = (0..3)
        .flat_map(|i| [format!("chat {i}a"), format!("chat {i}b")])
        .collect();
    for (ws, _) in &devices {
        assert_eq!(titles(ws), expected);
        assert_eq!(ws.ok(&["sync", "status"])["pending"], 0);
    }

    // A long-poll held on instance 1 wakes for a push landing on instance 0.
    let watcher = HttpTransport::new(&servers[1].url, &devices[1].1, None).unwrap();
    let waiting = std::thread::spawn(move || {
        // The client's connections live on this thread's runtime.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let head = rt
            .block_on(watcher.pull("0", 1000, None))
            .unwrap()
            .next_cursor;
        let started = Instant::now();
        let page = rt
            .block_on(watcher.pull(&head, 10, Some(Duration::from_secs(30))))
            .unwrap();
        (page, started.elapsed())
    });
    // The push comes while the long-poll waits on instance 1.
    wait_for_long_polls(&servers[1].url, 1);
    devices[0].0.new_chat("late news", "full");
    devices[0].0.ok(&["sync", "now"]);
    let (page, took) = waiting.join().unwrap();
    assert_eq!(page.changes.len(), 1);
    assert_eq!(page.changes[0].data.as_ref().unwrap()["title"], "late news");
    assert!(took < Duration::from_secs(30), "woken, not timed out");
}

#[test]
fn a_worker_sees_another_devices_change_through_long_poll_and_serve_stops_on_sigterm() {
    let db = TestDb::create();
    let url = db.url();
    admin(&url, &["migrate"]);
    admin(&url, &["tenant", "add", "team"]);
    let server = Serve::start(&url);
    let (a, _) = device_ws(&url, &server.url, "team");
    let (b, _) = device_ws(&url, &server.url, "team");
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_acode"))
        .arg("--workspace")
        .arg(b.root())
        .args(["sync", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Let the worker's first round finish (its status turns online).
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.ok(&["sync", "status"])["last_pull_at"].is_null() {
        assert!(Instant::now() < deadline, "the worker never synced");
        std::thread::sleep(Duration::from_millis(50));
    }
    let id = a.new_chat("seen through long-poll", "full");
    let pushed = Instant::now();
    a.ok(&["sync", "now"]);
    // The download poll interval is 30 s: only the long-poll brings the
    // change sooner.
    let deadline = pushed + Duration::from_secs(10);
    loop {
        let list = b.ok(&["chat", "list"]);
        if list["chats"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str())
        {
            break;
        }
        assert!(Instant::now() < deadline, "not arrived 10 s after the push");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    assert!(worker.wait().unwrap().success());
    // `acode health` checks the sync server the workspace uses.
    let sync_server = |ws: &Ws| {
        let r = run(&mut ws.cmd(&["health"]));
        let report: Value = r.json();
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "sync_server")
            .cloned()
            .unwrap_or_else(|| panic!("no sync_server check: {report}"))
    };
    assert_eq!(sync_server(&a)["status"], "Healthy");

    // SIGTERM: a long-poll in flight is answered (200, no changes), and the
    // server exits 0. (A fresh instance: the stopped worker's own long-poll
    // may still be waiting on the first.)
    drop(server);
    let mut server = Serve::start(&url);
    let token = admin(&url, &["device", "add", "--tenant", "team", "--name", "w"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let base = server.url.clone();
    let waiting = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let t = HttpTransport::new(&base, &token, None).unwrap();
        let head = rt.block_on(t.pull("0", 1000, None)).unwrap().next_cursor;
        rt.block_on(t.pull(&head, 10, Some(Duration::from_secs(60))))
    });
    wait_for_long_polls(&server.url, 1);
    let stop = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let page = waiting.join().unwrap().unwrap();
    assert!(page.changes.is_empty());
    assert!(stop.elapsed() < Duration::from_secs(10));
    // With no server there, the check is Unhealthy (the workspace still works).
    let gone = Ws::new();
    let config = std::fs::read_to_string(gone.agent("config.yml"))
        .unwrap()
        .replacen(
            "# url: https://sync.example.com",
            &format!("url: \"{}\"", server.url),
            1,
        );
    std::fs::write(gone.agent("config.yml"), config).unwrap();
    let check = sync_server(&gone);
    assert_eq!(check["status"], "Unhealthy", "{check}");
}

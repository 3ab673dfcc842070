//! The sync server over real HTTP, on a fresh PostgreSQL database per test:
//! the examples and status codes of PROTOCOL.md, security (tokens, tenant
//! isolation, hostile input), the server's rules of DESIGN.md §15 (4, 8,
//! 9, 10, 14), long-poll, TLS and graceful shutdown.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use acode_protocol::{Id, SCHEMA_VERSION};
use acode_remote::Remote;
use acode_remote::auth::NewDevice;
use acode_server::{Server, ServerOptions, TlsFiles};
use acode_sync::Transport;
use acode_testkit::{Proxy, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Setup {
    db: TestDb,
    remote: Remote,
    server: Server,
    base: String,
    http: reqwest::Client,
}

impl Setup {
    async fn new() -> Setup {
        Setup::with(|_| {}).await
    }

    async fn with(adjust: impl FnOnce(&mut ServerOptions)) -> Setup {
        let db = TestDb::create();
        let remote = Remote::new(&db.url(), 2).unwrap();
        remote.migrate().await.unwrap();
        let mut opts = ServerOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: db.url(),
            max_body_bytes: 256 * 1024,
            max_changes: 100,
            pool_size: 8,
            ..ServerOptions::default()
        };
        adjust(&mut opts);
        let server = Server::start(opts).await.unwrap();
        let base = format!("http://{}", server.addr());
        Setup {
            db,
            remote,
            server,
            base,
            http: client(),
        }
    }

    async fn device(&self, tenant: &str) -> NewDevice {
        self.remote.add_tenant(tenant).await.unwrap();
        self.remote.add_device(tenant, "test").await.unwrap()
    }

    async fn pg(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    /// POSTs `body` (raw text) as a push with `key`; the status and JSON.
    async fn push_raw(&self, token: Option<&str>, key: &str, body: String) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}/v1/push", self.base))
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn push(&self, dev: &NewDevice, changes: Vec<Value>) -> (StatusCode, Value) {
        let body = json!({"policy": "last_write_wins", "changes": changes}).to_string();
        self.push_raw(Some(&dev.token), &Id::new().to_string(), body)
            .await
    }

    async fn pull(&self, dev: &NewDevice, query: &str) -> (StatusCode, Value) {
        let res = self
            .http
            .get(format!("{}/v1/pull?{query}", self.base))
            .bearer_auth(&dev.token)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The server still answers a plain, valid request.
    async fn still_serving(&self, dev: &NewDevice) {
        let (status, body) = self.pull(dev, "since=0&limit=1").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// An HTTP client (with the one TLS crypto provider of the build).
fn client() -> reqwest::Client {
    acode_server::install_crypto_provider();
    reqwest::Client::new()
}

fn hlc() -> String {
    format!(
        "{}-0000-test",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

fn chat(id: Id, base: i64, title: &str) -> Value {
    json!({"key": Id::new().to_string(), "entity": "chat", "id": id.to_string(), "op": "upsert",
           "base_version": base, "hlc": hlc(),
           "data": {"title": title, "privacy": "full", "created_at": "2026-11-22T01:02:03.123Z",
                    "updated_at": "2026-11-22T01:02:03.123Z"}})
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

// ---------------------------------------------------------------- protocol

/// The JSON examples of docs/PROTOCOL.md (the project's copy of the wire
/// contract), in order: push request, push answer, pull answer.
fn protocol_examples() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/PROTOCOL.md"
    ))
    .unwrap();
    text.split("```json")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_string())
        .collect()
}

/// The statuses of PROTOCOL.md's error table.
fn protocol_statuses() -> Vec<u16> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/PROTOCOL.md"
    ))
    .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter_map(|s| s.parse().ok())
        .collect()
}

#[tokio::test]
async fn protocol_md_push_and_pull_examples_hold() {
    let s = Setup::new().await;
    let dev = s.device("acme").await;
    let examples = protocol_examples();
    assert_eq!(examples.len(), 3, "push request, push answer, pull answer");

    // The push example as printed: its ids are elided ("01JD3Q4..."), so
    // each change parses as JSON but is invalid: a rejected result inside
    // a 200, one per change, in order.
    let (status, body) = s
        .push_raw(
            Some(&dev.token),
            &Id::new().to_string(),
            examples[0].clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (r, key) in results
        .iter()
        .zip(["01JD3Q5M2K7Y8V3C4B5N6M7P8Q", "01JD3Q5M2K7Y8V3C4B5N6M7P8R"])
    {
        assert_eq!(
            (r["status"].as_str(), r["key"].as_str(), r["code"].as_str()),
            (Some("rejected"), Some(key), Some("ACODE-SYNC-005"))
        );
    }

    // The same push with real ids: applied, and its answer has the fields
    // of the example's `applied` result; the example's answer itself names
    // exactly the fields each status carries.
    let mut request: Value = serde_json::from_str(&examples[0]).unwrap();
    let chat_id = Id::new();
    request["changes"][0]["id"] = json!(chat_id.to_string());
    request["changes"][0]["base_version"] = json!(0);
    request["changes"][0]["hlc"] = json!(hlc());
    request["changes"].as_array_mut().unwrap().truncate(1);
    let (status, body) = s
        .push_raw(
            Some(&dev.token),
            &Id::new().to_string(),
            request.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer_example: Value = serde_json::from_str(&examples[1]).unwrap();
    let fields = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let applied = &body["results"][0];
    assert_eq!(applied["status"], "applied");
    assert_eq!(fields(applied), fields(&answer_example["results"][0]));
    assert_eq!(fields(&body), fields(&answer_example));
    let by_status: Vec<(String, Vec<String>)> = answer_example["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap().to_string(), fields(r)))
        .collect();
    assert_eq!(
        by_status
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>(),
        ["applied", "duplicate", "conflict", "rejected"]
    );

    // A stale edit of the same chat: a conflict result with the example's
    // fields (a `loser` may be added, an optional field).
    let (_, body) = s.push(&dev, vec![chat(chat_id, 1, "newer")]).await;
    assert_eq!(body["results"][0]["status"], "applied");
    let (_, body) = s.push(&dev, vec![chat(chat_id, 1, "stale")]).await;
    let conflict = &body["results"][0];
    assert_eq!(conflict["status"], "conflict", "{body}");
    let mut conflict_fields = fields(conflict);
    conflict_fields.retain(|f| f != "loser");
    assert_eq!(conflict_fields, by_status[2].1);
    // A change rejected by the server: the example's rejected fields.
    let (_, body) = s
        .push(
            &dev,
            vec![
                json!({"key": Id::new().to_string(), "entity": "chat", "id": Id::new().to_string(),
                    "op": "upsert", "base_version": 5, "hlc": hlc(), "data": {"title": "x"}}),
            ],
        )
        .await;
    assert_eq!(body["results"][0]["status"], "rejected");
    assert_eq!(fields(&body["results"][0]), by_status[3].1);
    // A replayed batch key: duplicate results with the example's fields.
    let change = chat(Id::new(), 0, "once");
    let key = Id::new().to_string();
    let batch = json!({"policy": "last_write_wins", "changes": [change]}).to_string();
    let (_, first) = s.push_raw(Some(&dev.token), &key, batch.clone()).await;
    let (_, again) = s.push_raw(Some(&dev.token), &key, batch).await;
    assert_eq!(
        first, again,
        "a repeated key with the same body: the same answer"
    );
    let (_, dup) = s
        .push(
            &dev,
            vec![
                json!({"key": change["key"], "entity": "chat", "id": change["id"], "op": "upsert",
                   "base_version": 0, "hlc": change["hlc"], "data": change["data"]}),
            ],
        )
        .await;
    assert_eq!(dup["results"][0]["status"], "duplicate", "{dup}");
    assert_eq!(fields(&dup["results"][0]), by_status[1].1);

    // Pull: the example's page and change fields; the feed holds the
    // latest change per row, with its origin device.
    let (status, page) = s.pull(&dev, "since=0").await;
    assert_eq!(status, StatusCode::OK);
    let pull_example: Value = serde_json::from_str(&examples[2]).unwrap();
    assert_eq!(fields(&page), fields(&pull_example));
    let first = &page["changes"][0];
    assert_eq!(fields(first), fields(&pull_example["changes"][0]));
    assert_eq!(first["origin_device"], dev.id.as_str());
    let rows: Vec<&str> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let mut unique = rows.clone();
    unique.dedup();
    assert_eq!(rows.len(), unique.len(), "one entry per row");
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn every_status_code_of_protocol_md_is_answered_with_its_error_body() {
    let s = Setup::with(|o| o.max_waits_per_device = 1).await;
    let dev = s.device("acme").await;
    let mut seen = Vec::new();
    let mut check = |status: StatusCode, body: &Value, code: &str| {
        assert_eq!(error_code(body), code, "{status}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(body["error"]["retryable"].is_boolean());
        seen.push(status.as_u16());
    };

    // 400: not a push at all.
    let (st, body) = s
        .push_raw(Some(&dev.token), &Id::new().to_string(), "{not json".into())
        .await;
    check(st, &body, "ACODE-SYNC-005");
    // 401: no token, a bad one, a revoked one.
    let (st, body) = s.push_raw(None, &Id::new().to_string(), "{}".into()).await;
    check(st, &body, "ACODE-AUTH-001");
    // 403: the device's tenant is disabled.
    let other = s.device("disabled-co").await;
    s.pg()
        .await
        .execute(
            "UPDATE sync_tenants SET disabled = true WHERE name = 'disabled-co'",
            &[],
        )
        .await
        .unwrap();
    let (st, body) = s.pull(&other, "since=0").await;
    check(st, &body, "ACODE-AUTH-002");
    // 412: a newer client (retryable) and an older one (not).
    let res = s
        .http
        .get(format!("{}/v1/pull", s.base))
        .bearer_auth(&dev.token)
        .header("Acode-Schema", (SCHEMA_VERSION + 1).to_string())
        .send()
        .await
        .unwrap();
    let st = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["retryable"], true);
    check(st, &body, "ACODE-SYNC-006");
    let res = s
        .http
        .get(format!("{}/v1/pull", s.base))
        .bearer_auth(&dev.token)
        .header("Acode-Schema", "0")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["retryable"], false);
    // 422: a batch key reused with another body.
    let key = Id::new().to_string();
    let one = json!({"changes": [chat(Id::new(), 0, "a")]}).to_string();
    let two = json!({"changes": [chat(Id::new(), 0, "b")]}).to_string();
    assert_eq!(
        s.push_raw(Some(&dev.token), &key, one).await.0,
        StatusCode::OK
    );
    let (st, body) = s.push_raw(Some(&dev.token), &key, two).await;
    check(st, &body, "ACODE-SYNC-007");
    // 413: a body over the limit.
    let big = json!({"changes": [chat(Id::new(), 0, &"x".repeat(300 * 1024))]}).to_string();
    let (st, body) = s
        .push_raw(Some(&dev.token), &Id::new().to_string(), big)
        .await;
    check(st, &body, "ACODE-SYNC-005");
    // 429: one long-poll too many, with Retry-After.
    let waiting = {
        let (http, base, token) = (s.http.clone(), s.base.clone(), dev.token.clone());
        tokio::spawn(async move {
            http.get(format!("{base}/v1/pull?since=999999&wait=30"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    wait_for_metric(&s, "acode_server_long_polls_waiting", 1.0).await;
    let res = s
        .http
        .get(format!("{}/v1/pull?since=999999&wait=30", s.base))
        .bearer_auth(&dev.token)
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("retry-after"));
    let st = res.status();
    let body: Value = res.json().await.unwrap();
    check(st, &body, "ACODE-SYNC-002");
    // 410: a cursor behind purged tombstones.
    let (st, body) = expired_cursor(&s).await;
    check(st, &body, "ACODE-SYNC-008");
    // 5xx: PostgreSQL unreachable behind a running server.
    let (st, body) = with_database_down().await;
    check(st, &body, "ACODE-SYNC-001");
    assert_eq!(body["error"]["retryable"], true);

    seen.sort_unstable();
    seen.dedup();
    let mut table = protocol_statuses();
    table.sort_unstable();
    assert_eq!(table, [400, 401, 403, 412, 413, 422, 429]);
    // The table's statuses, and the pull section's 410.
    for status in table.into_iter().chain([410]) {
        assert!(seen.contains(&status), "{status} was never answered");
    }
    assert!(seen.iter().any(|s| *s >= 500), "a 5xx was answered");
    // The stop answers the waiting long-poll at once (graceful shutdown).
    s.server.stop().await.unwrap();
    assert_eq!(waiting.await.unwrap(), StatusCode::OK);
}

/// Waits until `/metrics` shows `name` at `value`.
async fn wait_for_metric(s: &Setup, name: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = s
            .http
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let now = text
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok());
        if now == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {value}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A device whose cursor is behind tombstones purged while it was away.
async fn expired_cursor(s: &Setup) -> (StatusCode, Value) {
    let (x, y) = (s.device("purge").await, s.device("purge").await);
    let (a, b) = (Id::new(), Id::new());
    s.push(&x, vec![chat(a, 0, "a"), chat(b, 0, "b")]).await;
    let (_, page) = s.pull(&y, "since=0&limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let delete = json!({"key": Id::new().to_string(), "entity": "chat", "id": b.to_string(),
                        "op": "delete", "base_version": 1, "hlc": hlc()});
    let (_, body) = s.push(&x, vec![delete]).await;
    assert_eq!(body["results"][0]["status"], "applied", "{body}");
    let (_, page) = s.pull(&x, "since=0").await;
    let end = page["next_cursor"].as_str().unwrap().to_string();
    s.pull(&x, &format!("since={end}")).await;
    let client = s.pg().await;
    client
        .execute(
            "UPDATE sync_devices SET last_seen_at = now() - interval '2 days' WHERE id = $1",
            &[&y.id],
        )
        .await
        .unwrap();
    let tenant: String = client
        .query_one("SELECT id FROM sync_tenants WHERE name = 'purge'", &[])
        .await
        .unwrap()
        .get(0);
    let purged = s
        .remote
        .purge_tombstones(&tenant, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(purged.removed, 1);
    s.pull(&y, &format!("since={cursor}")).await
}

/// A server whose way to its PostgreSQL goes through a proxy the test can
/// take down, and a device of it.
struct BehindProxy {
    _db: TestDb,
    proxy: Proxy,
    server: Server,
    dev: NewDevice,
}

async fn behind_proxy() -> BehindProxy {
    let db = TestDb::create();
    let remote = Remote::new(&db.url(), 1).unwrap();
    remote.migrate().await.unwrap();
    remote.add_tenant("t").await.unwrap();
    let dev = remote.add_device("t", "d").await.unwrap();
    let target = format!("{}:{}", db.host(), db.port()).parse().unwrap();
    let proxy = Proxy::start(target).await;
    let server = Server::start(ServerOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: db.url_via("127.0.0.1", proxy.addr().port()),
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    BehindProxy {
        _db: db,
        proxy,
        server,
        dev,
    }
}

/// A push to a server whose PostgreSQL has gone away.
async fn with_database_down() -> (StatusCode, Value) {
    let BehindProxy {
        _db,
        proxy,
        server,
        dev,
    } = behind_proxy().await;
    proxy.down();
    let res = client()
        .get(format!("http://{}/v1/pull", server.addr()))
        .bearer_auth(&dev.token)
        .send()
        .await
        .unwrap();
    let out = (res.status(), res.json().await.unwrap());
    server.stop().await.unwrap();
    out
}

// ---------------------------------------------------------------- security

#[tokio::test]
async fn no_bad_or_revoked_token_is_401_and_revocation_is_immediate() {
    let s = Setup::new().await;
    let dev = s.device("acme").await;
    assert_eq!(
        s.push(&dev, vec![chat(Id::new(), 0, "ok")]).await.0,
        StatusCode::OK
    );
    // The same token with its last hex digit changed.
    let last = if dev.token.ends_with('0') { "1" } else { "0" };
    let forged = format!("{}{last}", &dev.token[..dev.token.len() - 1]);
    let other = NewDevice {
        token: forged,
        ..dev.clone()
    };
    for token in [
        None,
        Some("garbage"),
        Some("Bearer x"),
        Some(other.token.as_str()),
    ] {
        let (st, body) = s
            .push_raw(token, &Id::new().to_string(), "{\"changes\": []}".into())
            .await;
        assert_eq!(
            (st, error_code(&body)),
            (StatusCode::UNAUTHORIZED, "ACODE-AUTH-001")
        );
    }
    s.remote.revoke_device(&dev.id).await.unwrap();
    let (st, body) = s.push(&dev, vec![chat(Id::new(), 0, "after")]).await;
    assert_eq!(
        (st, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "ACODE-AUTH-001")
    );
    assert_eq!(s.pull(&dev, "since=0").await.0, StatusCode::UNAUTHORIZED);
    let rows: i64 = s
        .pg()
        .await
        .query_one("SELECT count(*) FROM chats", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "nothing written after the revocation");
}

#[tokio::test]
async fn another_tenants_rows_cannot_be_read_or_touched() {
    let s = Setup::new().await;
    let a = s.device("tenant-a").await;
    let b = s.device("tenant-b").await;
    let secret = Id::new();
    s.push(&a, vec![chat(secret, 0, "a's secret")]).await;
    let client = s.pg().await;
    let snapshot = || async {
        client
            .query(
                "SELECT tenant_id, id, title, version, deleted FROM chats ORDER BY tenant_id, id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, Option<String>>(2),
                    r.get::<_, i64>(3),
                    r.get::<_, bool>(4),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = snapshot().await;
    let a_tenant: String = client
        .query_one("SELECT id FROM sync_tenants WHERE name = 'tenant-a'", &[])
        .await
        .unwrap()
        .get(0);

    // B guesses A's row id: an update, a delete, a message under it, a
    // payload naming A's tenant or other system columns.
    let attempts = vec![
        chat(secret, 1, "b overwrites"),
        json!({"key": Id::new().to_string(), "entity": "chat", "id": secret.to_string(),
               "op": "delete", "base_version": 1, "hlc": hlc()}),
        json!({"key": Id::new().to_string(), "entity": "message", "id": Id::new().to_string(),
               "op": "upsert", "base_version": 0, "hlc": hlc(),
               "data": {"chat_id": secret.to_string(), "role": "user", "content": "planted",
                        "privacy": "full", "created_at": "2026-11-22T01:02:03.123Z"}}),
        json!({"key": Id::new().to_string(), "entity": "chat", "id": Id::new().to_string(),
               "op": "upsert", "base_version": 0, "hlc": hlc(),
               "data": {"title": "t", "privacy": "full", "tenant_id": a_tenant}}),
        json!({"key": Id::new().to_string(), "entity": "chat", "id": Id::new().to_string(),
               "op": "upsert", "base_version": 0, "hlc": hlc(),
               "data": {"title": "t", "privacy": "full", "version": 99, "origin_device": a.id,
                        "deleted": true}}),
    ];
    let (st, body) = s.push(&b, attempts).await;
    assert_eq!(st, StatusCode::OK);
    let statuses: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    // The delete names a row B's tenant never had: a no-op (version 0).
    assert_eq!(
        statuses,
        ["rejected", "applied", "rejected", "rejected", "rejected"],
        "{body}"
    );
    assert_eq!(body["results"][1]["version"], 0);
    assert_eq!(body["results"][2]["code"], "ACODE-SYNC-009");

    // B creating a row with the same id makes B's own row; A's stays.
    let (_, body) = s.push(&b, vec![chat(secret, 0, "b's own")]).await;
    assert_eq!(body["results"][0]["status"], "applied");
    let after = snapshot().await;
    let a_rows = |rows: &Vec<(String, String, Option<String>, i64, bool)>| {
        rows.iter()
            .filter(|r| r.0 == a_tenant)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(a_rows(&after), a_rows(&before), "0 rows of A changed");
    let messages: i64 = client
        .query_one("SELECT count(*) FROM messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(messages, 0);

    // B's feed holds only B's row, A's only A's.
    let (_, page) = s.pull(&b, "since=0").await;
    let titles: Vec<&str> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["data"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["b's own"]);
    let (_, page) = s.pull(&a, "since=0").await;
    assert_eq!(page["changes"].as_array().unwrap().len(), 1);
    assert_eq!(page["changes"][0]["data"]["title"], "a's secret");
    s.still_serving(&a).await;
}

#[tokio::test]
async fn hostile_input_is_refused_alone_and_the_server_keeps_serving() {
    let s = Setup::new().await;
    let dev = s.device("acme").await;
    let key = || Id::new().to_string();
    // Malformed JSON, the wrong shape, a missing or bad Idempotency-Key.
    for body in ["{", "[]", "{\"changes\": 3}", "null", "\u{0}"] {
        let (st, _) = s.push_raw(Some(&dev.token), &key(), body.into()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body:?}");
        s.still_serving(&dev).await;
    }
    let (st, body) = s
        .push_raw(Some(&dev.token), "not-a-ulid", "{\"changes\": []}".into())
        .await;
    assert_eq!(
        (st, error_code(&body)),
        (StatusCode::BAD_REQUEST, "ACODE-SYNC-005")
    );
    // Too many changes: 413.
    let many: Vec<Value> = (0..101).map(|_| chat(Id::new(), 0, "x")).collect();
    let (st, _) = s.push(&dev, many).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    // Oversized: 413.
    let (st, _) = s
        .push(&dev, vec![chat(Id::new(), 0, &"y".repeat(400 * 1024))])
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    s.still_serving(&dev).await;

    // Wrong types, an unknown entity, a bad key, a bad op: each rejected
    // alone, next to a valid change that is applied.
    let sql = "'); DROP TABLE chats; --";
    let valid = Id::new();
    let changes = vec![
        json!({"key": key(), "entity": "chat", "id": Id::new().to_string(), "op": "upsert",
               "base_version": "three", "hlc": hlc(), "data": {"title": "x", "privacy": "full"}}),
        json!({"key": key(), "entity": "spaceship", "id": Id::new().to_string(), "op": "upsert",
               "base_version": 0, "hlc": hlc(), "data": {}}),
        json!({"key": "robert'); --", "entity": "chat", "id": Id::new().to_string(), "op": "upsert",
               "base_version": 0, "hlc": hlc(), "data": {"title": "x", "privacy": "full"}}),
        json!({"key": key(), "entity": "chat", "id": Id::new().to_string(), "op": "truncate",
               "base_version": 0, "hlc": hlc()}),
        json!({"key": key(), "entity": "chat", "id": Id::new().to_string(), "op": "upsert",
               "base_version": 0, "hlc": hlc(), "data": {"title": 42, "privacy": "full"}}),
        json!({"key": key(), "entity": "chat", "id": Id::new().to_string(), "op": "upsert",
               "base_version": 0, "hlc": hlc(), "data": {"title": "x", "privacy": "full", "nope": 1}}),
        chat(valid, 0, sql),
    ];
    let (st, body) = s.push(&dev, changes).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let statuses: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "rejected", "rejected", "rejected", "rejected", "rejected", "rejected", "applied"
        ],
        "{body}"
    );
    // SQL-looking text is stored verbatim, and the table is still there.
    let title: String = s
        .pg()
        .await
        .query_one(
            "SELECT title FROM chats WHERE id = $1",
            &[&valid.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(title, sql);
    // Bad pull parameters.
    for q in ["limit=x", "wait=-1", "since=abc", "since=1.2.3"] {
        let (st, _) = s.pull(&dev, q).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}");
    }
    // Unknown routes and methods.
    let res = s
        .http
        .get(format!("{}/v1/nothing", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    s.still_serving(&dev).await;
    let health = s
        .http
        .get(format!("{}/health", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

// ------------------------------------------------------------------- rules

#[tokio::test]
async fn rule_4_two_devices_pushing_the_same_row_at_once_over_http_lose_no_update() {
    let s = Setup::new().await;
    let (a, b) = (s.device("acme").await, s.device("acme").await);
    for _ in 0..5 {
        let id = Id::new();
        s.push(&a, vec![chat(id, 0, "base")]).await;
        let (ra, rb) = tokio::join!(
            s.push(&a, vec![chat(id, 1, "from a")]),
            s.push(&b, vec![chat(id, 1, "from b")])
        );
        let mut statuses = [
            ra.1["results"][0]["status"].as_str().unwrap().to_string(),
            rb.1["results"][0]["status"].as_str().unwrap().to_string(),
        ];
        statuses.sort();
        assert_eq!(statuses, ["applied", "conflict"]);
        let version: i64 = s
            .pg()
            .await
            .query_one(
                "SELECT version FROM chats WHERE id = $1",
                &[&id.to_string()],
            )
            .await
            .unwrap()
            .get(0);
        assert!(version >= 2, "one of them applied on top of the base");
    }
}

#[tokio::test]
async fn rule_8_a_key_replayed_with_another_payload_is_rejected_over_http() {
    let s = Setup::new().await;
    let dev = s.device("acme").await;
    let change = chat(Id::new(), 0, "first");
    let (_, body) = s.push(&dev, vec![change.clone()]).await;
    assert_eq!(body["results"][0]["status"], "applied");
    let mut other = change.clone();
    other["data"]["title"] = json!("another payload, same key");
    let (st, body) = s.push(&dev, vec![other]).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (
            body["results"][0]["status"].as_str(),
            body["results"][0]["code"].as_str()
        ),
        (Some("rejected"), Some("ACODE-SYNC-005"))
    );
    let title: String = s
        .pg()
        .await
        .query_one(
            "SELECT title FROM chats WHERE id = $1",
            &[&change["id"].as_str().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(title, "first");
}

#[tokio::test]
async fn rule_9_system_columns_and_foreign_parents_are_refused_over_http() {
    let s = Setup::new().await;
    let (a, b) = (s.device("a").await, s.device("b").await);
    let a_chat = Id::new();
    s.push(&a, vec![chat(a_chat, 0, "a")]).await;
    for column in [
        "tenant_id",
        "version",
        "deleted",
        "server_seq",
        "origin_device",
        "hlc",
    ] {
        let mut c = chat(Id::new(), 0, "x");
        c["data"][column] = json!("1");
        let (_, body) = s.push(&b, vec![c]).await;
        assert_eq!(body["results"][0]["status"], "rejected", "{column}: {body}");
    }
    let msg = json!({"key": Id::new().to_string(), "entity": "message", "id": Id::new().to_string(),
                     "op": "upsert", "base_version": 0, "hlc": hlc(),
                     "data": {"chat_id": a_chat.to_string(), "role": "user", "content": "x",
                              "privacy": "full", "created_at": "2026-11-22T01:02:03.123Z"}});
    let (_, body) = s.push(&b, vec![msg]).await;
    assert_eq!(body["results"][0]["code"], "ACODE-SYNC-009", "{body}");
}

#[tokio::test]
async fn rule_10_a_new_device_pulling_after_many_edits_gets_only_the_latest_over_http() {
    let s = Setup::new().await;
    let dev = s.device("acme").await;
    let id = Id::new();
    s.push(&dev, vec![chat(id, 0, "v1")]).await;
    for v in 1..20 {
        let (_, body) = s
            .push(&dev, vec![chat(id, v, &format!("v{}", v + 1))])
            .await;
        assert_eq!(body["results"][0]["status"], "applied");
    }
    let newcomer = s.device("acme").await;
    let (_, page) = s.pull(&newcomer, "since=0").await;
    let changes = page["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (
            changes[0]["version"].as_i64(),
            changes[0]["data"]["title"].as_str()
        ),
        (Some(20), Some("v20"))
    );
}

#[tokio::test]
async fn rule_14_a_newer_client_gets_a_clear_transient_error_and_unnamed_columns_keep_their_value()
{
    let s = Setup::new().await;
    let dev = s.device("acme").await;
    let res = s
        .http
        .post(format!("{}/v1/push", s.base))
        .bearer_auth(&dev.token)
        .header("Idempotency-Key", Id::new().to_string())
        .header("Acode-Schema", (SCHEMA_VERSION + 1).to_string())
        .body(json!({"changes": [chat(Id::new(), 0, "from the future")]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ACODE-SYNC-006");
    assert_eq!(body["error"]["retryable"], true);
    assert!(body["error"]["message"].as_str().unwrap().contains("newer"));
    let rows: i64 = s
        .pg()
        .await
        .query_one("SELECT count(*) FROM chats", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "nothing applied");
    // A change naming only the title keeps the other columns.
    let id = Id::new();
    s.push(&dev, vec![chat(id, 0, "t1")]).await;
    let only_title = json!({"key": Id::new().to_string(), "entity": "chat", "id": id.to_string(),
                            "op": "upsert", "base_version": 1, "hlc": hlc(),
                            "data": {"title": "t2"}});
    let (_, body) = s.push(&dev, vec![only_title]).await;
    assert_eq!(body["results"][0]["status"], "applied");
    let row = s
        .pg()
        .await
        .query_one(
            "SELECT title, privacy, created_at IS NOT NULL FROM chats WHERE id = $1",
            &[&id.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, bool>(2)
        ),
        ("t2".to_string(), "full".to_string(), true)
    );
}

// -------------------------------------------------------- long-poll, TLS

#[tokio::test]
async fn a_long_poll_wakes_when_a_push_lands() {
    let s = Setup::new().await;
    let (a, b) = (s.device("acme").await, s.device("acme").await);
    let (_, page) = s.pull(&b, "since=0").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (http, base, token) = (s.http.clone(), s.base.clone(), b.token.clone());
    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        let res = http
            .get(format!("{base}/v1/pull?since={cursor}&wait=30"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (res.json::<Value>().await.unwrap(), started.elapsed())
    });
    wait_for_metric(&s, "acode_server_long_polls_waiting", 1.0).await;
    s.push(&a, vec![chat(Id::new(), 0, "wake up")]).await;
    let (page, took) = waiting.await.unwrap();
    assert_eq!(page["changes"][0]["data"]["title"], "wake up");
    assert!(
        took < Duration::from_secs(30),
        "woken by the push, not the timeout"
    );
    // An empty wait ends at its deadline with no changes.
    let (st, page) = s
        .pull(
            &b,
            &format!("since={}&wait=1", page["next_cursor"].as_str().unwrap()),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(page["changes"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn tls_serves_https_to_a_client_that_trusts_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let s = Setup::with(|o| {
        o.tls = Some(TlsFiles {
            cert: cert_path.clone(),
            key: key_path.clone(),
        })
    })
    .await;
    assert!(s.server.is_tls());
    let dev = s.device("acme").await;
    let url = format!("https://localhost:{}", s.server.addr().port());
    let trusted = acode_sync_http(&url, &dev.token, Some(cert_path.to_str().unwrap()));
    let page = trusted.pull("0", 10, None).await.unwrap();
    assert!(page.changes.is_empty());
    // Without the certificate, the handshake fails: no connection at all.
    let untrusted = acode_sync_http(&url, &dev.token, None);
    let err = untrusted.pull("0", 10, None).await.unwrap_err();
    assert!(
        matches!(err, acode_sync::TransportError::Unreachable(_)),
        "{err:?}"
    );
    // Plain HTTP to the TLS port gets no answer either.
    let plain = acode_sync_http(
        &format!("http://127.0.0.1:{}", s.server.addr().port()),
        &dev.token,
        None,
    );
    assert!(plain.pull("0", 10, None).await.is_err());
    s.server.stop().await.unwrap();
}

fn acode_sync_http(url: &str, token: &str, ca: Option<&str>) -> acode_sync::HttpTransport {
    acode_sync::HttpTransport::new(url, token, ca).unwrap()
}

// ------------------------------------------------------- health, metrics

async fn scrape(s: &Setup) -> acode_testkit::prometheus::Samples {
    let res = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let kind = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    acode_testkit::prometheus::parse(&res.text().await.unwrap())
}

#[tokio::test]
async fn metrics_parse_and_move_with_the_traffic() {
    use acode_testkit::prometheus::get;
    let s = Setup::new().await;
    let dev = s.device("acme").await;
    let before = scrape(&s).await;
    let applied = |m: &acode_testkit::prometheus::Samples| {
        get(m, "acode_server_changes_total", &[("result", "applied")]).unwrap_or(0.0)
    };
    assert_eq!(applied(&before), 0.0);
    let id = Id::new();
    s.push(&dev, vec![chat(id, 0, "a"), chat(Id::new(), 0, "b")])
        .await;
    s.push(&dev, vec![chat(id, 0, "stale")]).await; // a conflict
    s.push(&dev, vec![chat(Id::new(), 7, "unknown")]).await; // rejected
    s.pull(&dev, "since=0").await;
    s.push_raw(None, &Id::new().to_string(), "{}".into()).await; // 401
    let after = scrape(&s).await;
    assert_eq!(applied(&after), 2.0);
    assert_eq!(get(&after, "acode_server_conflicts_total", &[]), Some(1.0));
    assert_eq!(
        get(
            &after,
            "acode_server_changes_total",
            &[("result", "rejected")]
        ),
        Some(1.0)
    );
    assert_eq!(
        get(
            &after,
            "acode_server_failures_total",
            &[("code", "ACODE-SYNC-005")]
        ),
        Some(1.0)
    );
    assert_eq!(
        get(
            &after,
            "acode_server_failures_total",
            &[("code", "ACODE-AUTH-001")]
        ),
        Some(1.0)
    );
    assert_eq!(
        get(&after, "acode_server_pulled_changes_total", &[]),
        Some(2.0)
    );
    assert_eq!(
        get(&after, "acode_server_push_latency_seconds_count", &[]),
        Some(3.0)
    );
    assert_eq!(
        get(
            &after,
            "acode_server_requests_total",
            &[("route", "push"), ("status", "200")]
        ),
        Some(3.0)
    );
    assert_eq!(
        get(
            &after,
            "acode_server_requests_total",
            &[("route", "push"), ("status", "401")]
        ),
        Some(1.0)
    );
    assert!(
        get(
            &after,
            "acode_server_pool_connections",
            &[("state", "idle")]
        )
        .unwrap()
            >= 1.0
    );
}

#[tokio::test]
async fn health_is_200_with_every_check_and_503_when_postgresql_is_gone() {
    let s = Setup::new().await;
    let res = s
        .http
        .get(format!("{}/health", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let names: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["postgres", "postgres_pool", "postgres_transactions"]
    );
    assert_eq!(body["status"], "Healthy");

    // The same server behind a proxy that goes down.
    let BehindProxy {
        _db, proxy, server, ..
    } = behind_proxy().await;
    proxy.down();
    let res = client()
        .get(format!("http://{}/health", server.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "Unhealthy");
    assert_eq!(body["checks"][0]["status"], "Unhealthy");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_server_purges_tombstones_every_device_has_pulled_past() {
    let s = Setup::with(|o| {
        o.purge_every = Some(Duration::from_millis(50));
        o.device_active_within = Duration::from_secs(3600);
    })
    .await;
    let dev = s.device("acme").await;
    let (gone, kept) = (Id::new(), Id::new());
    s.push(&dev, vec![chat(gone, 0, "gone"), chat(kept, 0, "kept")])
        .await;
    let delete = json!({"key": Id::new().to_string(), "entity": "chat", "id": gone.to_string(),
                        "op": "delete", "base_version": 1, "hlc": hlc()});
    s.push(&dev, vec![delete]).await;
    let client = s.pg().await;
    let tombstones = || async {
        client
            .query_one("SELECT count(*) FROM sync_changes WHERE op = 'delete'", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(tombstones().await, 1, "not purged before the device pulled");
    let (_, page) = s.pull(&dev, "since=0").await;
    s.pull(
        &dev,
        &format!("since={}", page["next_cursor"].as_str().unwrap()),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tombstones().await > 0 {
        assert!(Instant::now() < deadline, "the tombstone was never purged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The live row stays in the feed.
    let live: i64 = client
        .query_one("SELECT count(*) FROM sync_changes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 1);
    s.server.stop().await.unwrap();
}

#[tokio::test]
async fn the_http_transport_is_offline_when_the_servers_database_is_down_and_retries_odd_statuses()
{
    use acode_protocol::{Change, Entity, Op, Policy, PushRequest};
    use acode_sync::TransportError;
    let BehindProxy {
        _db,
        proxy,
        server,
        dev,
    } = behind_proxy().await;
    let request = PushRequest {
        device_oldest_unsettled: None,
        policy: Policy::default(),
        changes: vec![Change {
            key: Id::new(),
            entity: Entity::Chat,
            id: Id::new(),
            op: Op::Upsert,
            base_version: 0,
            hlc: hlc(),
            data: json!({"title": "t", "privacy": "full"})
                .as_object()
                .cloned(),
        }],
    };
    let base = format!("http://{}", server.addr());
    let net = acode_sync_http(&base, &dev.token, None);
    // PostgreSQL gone behind a running server: offline (rule 2), as with
    // the direct transport; no attempt is spent.
    proxy.down();
    let err = net.push(Id::new(), &request).await.unwrap_err();
    assert!(matches!(err, TransportError::Unreachable(_)), "{err:?}");
    proxy.up();
    assert!(net.push(Id::new(), &request).await.is_ok());
    // A status that is not the server's verdict on the batch (a wrong
    // path's 404, as a proxy answers during a deploy): transient.
    let lost = acode_sync_http(&format!("{base}/not-here"), &dev.token, None);
    let err = lost.push(Id::new(), &request).await.unwrap_err();
    assert!(matches!(err, TransportError::Transient { .. }), "{err:?}");
    // Error messages never carry the URL (it may hold credentials).
    let nowhere = acode_sync_http("http://user:secret@127.0.0.1:1", &dev.token, None);
    match nowhere.push(Id::new(), &request).await.unwrap_err() {
        TransportError::Unreachable(why) => assert!(!why.contains("secret"), "{why}"),
        other => panic!("{other:?}"),
    }
    server.stop().await.unwrap();
}

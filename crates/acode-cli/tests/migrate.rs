//! `acode migrate …` end to end: analyze, run, validate (exit 1 on a
//! mismatch, with a report file), check-record, checkpoints, jobs, clear
//! errors with stable codes, a run killed with SIGKILL 20 times that
//! resumes from its checkpoints, and tracked runs (`--track-changes`)
//! killed while the source changes that lose no change.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acode_testkit::TestDb;
use common::{Run, acode_in, run};
use serde_json::Value;

/// A small shop: customers, products with pictures, orders, order lines
/// (composite key), a table whose name has a space, a view.
fn shop(dir: &Path, orders: i64) -> PathBuf {
    let path = dir.join("shop.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        r#"
        BEGIN;
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, since DATE);
        CREATE TABLE products (sku TEXT PRIMARY KEY, title TEXT, picture BLOB, price NUMERIC(8,2)) WITHOUT ROWID;
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), at DATETIME);
        CREATE TABLE "order lines" (order_id INTEGER REFERENCES orders(id), line INTEGER, sku TEXT REFERENCES products(sku), qty INTEGER, PRIMARY KEY (order_id, line));
        CREATE VIEW totals AS SELECT order_id, sum(qty) FROM "order lines" GROUP BY order_id;
        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200)
          INSERT INTO customers SELECT i, 'Kundin ' || i || ' — ü', date('2020-01-01', '+' || i || ' days') FROM s;
        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 50)
          INSERT INTO products SELECT 'P' || printf('%03d', i), 'Produkt ' || i, randomblob(64), i * 1.5 FROM s;
        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {orders})
          INSERT INTO orders SELECT i, 1 + i % 200, datetime(1700000000 + i, 'unixepoch') FROM s;
        WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {orders} * 3 - 1)
          INSERT INTO "order lines" SELECT 1 + i / 3, 1 + i % 3, 'P' || printf('%03d', 1 + i % 50), 1 + i % 4 FROM s;
        COMMIT;"#
    ))
    .unwrap();
    path
}

fn acode(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = acode_in(dir);
    cmd.arg("--json").args(args);
    run(&mut cmd)
}

fn ok(dir: &Path, args: &[&str]) -> Value {
    let r = acode(dir, args);
    assert_eq!(r.code, 0, "acode {args:?}: {}{}", r.stdout, r.stderr);
    r.json()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn psql(url: &str, sql: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut out = String::new();
        for m in client.simple_query(sql).await.unwrap() {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                out.push_str(r.get(0).unwrap_or(""));
            }
        }
        out
    })
}

#[test]
fn analyze_run_validate_and_check_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = format!("sqlite:{}", shop(d, 1000).display());
    let db = TestDb::create();
    let url = db.url();
    let ends = ["--source", src.as_str(), "--target", url.as_str()];
    let with = |cmd: &[&str]| -> Vec<String> {
        cmd.iter()
            .chain(ends.iter())
            .map(|s| s.to_string())
            .collect()
    };

    let analysis = ok(d, &args(&with(&["migrate", "analyze"])));
    let tables = analysis["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 4);
    assert_eq!(analysis["skipped"][0]["name"], "totals");
    let lines = tables.iter().find(|t| t["table"] == "order lines").unwrap();
    assert_eq!(lines["missing"], 3000);
    assert_eq!(lines["key"], serde_json::json!(["order_id", "line"]));

    let first = ok(d, &args(&with(&["migrate", "run", "--batch-size", "500"])));
    assert_eq!(first["copied"], 200 + 50 + 1000 + 3000);
    let second = ok(d, &args(&with(&["migrate", "run"])));
    assert_eq!(second["copied"], 0);

    let report = d.join("report.md");
    let mut v = with(&["migrate", "validate"]);
    v.extend(["--report".to_owned(), report.display().to_string()]);
    let valid = ok(d, &args(&v));
    assert_eq!(valid["ok"], true);
    assert!(
        std::fs::read_to_string(&report)
            .unwrap()
            .contains("result: **equal**")
    );

    // A target row changed by hand: validate exits 1 and says where.
    psql(
        &url,
        "UPDATE \"order lines\" SET qty = 99 WHERE order_id = 10 AND line = 2",
    );
    let bad = acode(d, &args(&with(&["migrate", "validate"])));
    assert_eq!(bad.code, 1, "{}{}", bad.stdout, bad.stderr);
    let doc = bad.json();
    assert_eq!(doc["ok"], false);
    let t = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "order lines")
        .unwrap();
    assert_eq!(t["changed"], 1);

    let record = ok(
        d,
        &args(&with(&[
            "migrate",
            "check-record",
            "order lines",
            "[10, 2]",
        ])),
    );
    assert_eq!(record["equal"], false);
    let qty = record["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "qty")
        .unwrap();
    assert_eq!(qty["target"], 99);
    assert_eq!(qty["source"], 1);
    assert_eq!(qty["equal"], false);
    let line = record["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "line")
        .unwrap();
    assert_eq!((&line["source"], &line["target"]), (&2.into(), &2.into()));

    // Both reports are stored, in JSON and Markdown, under the ids they
    // carry.
    let stored = |id: &Value, what: &str| {
        psql(
            &url,
            &format!(
                "SELECT {what} FROM acode_migrate.migration_validation_reports WHERE id = {id}"
            ),
        )
    };
    assert_eq!(
        stored(&valid["report_id"], "ok::text || (report->>'ok')"),
        "truetrue"
    );
    assert_eq!(
        stored(&doc["report_id"], "ok::text || (report->>'ok')"),
        "falsefalse"
    );
    assert!(stored(&doc["report_id"], "markdown").contains("order lines"));
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM acode_migrate.migration_validation_reports"
        ),
        "2"
    );

    let status = ok(d, &["migrate", "checkpoint-status", "--target", &url]);
    let checkpoints = status["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), 4);
    assert!(
        checkpoints.iter().all(|c| c["status"] == "done"),
        "{status}"
    );
    let reset = ok(
        d,
        &[
            "migrate",
            "reset-checkpoint",
            "--target",
            &url,
            "--table",
            "orders",
        ],
    );
    assert_eq!(reset["removed"], 1);
    let status = ok(d, &["migrate", "checkpoint-status", "--target", &url]);
    let tables: Vec<&str> = status["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["table"].as_str().unwrap())
        .collect();
    assert_eq!(tables.len(), 3);
    assert!(!tables.contains(&"orders"), "{status}");
    // Text output works too.
    let mut text = acode_in(d);
    text.args(args(&with(&["migrate", "run"])));
    let r = run(&mut text);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Copied 1 rows"), "{}", r.stdout);
}

#[test]
fn uuid_map_from_the_command_line_is_stable_and_joins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = format!("sqlite:{}", shop(d, 300).display());
    let db = TestDb::create();
    let url = db.url();
    let mapped = [
        "migrate",
        "run",
        "--uuid-map",
        "customers.id",
        "--source",
        &src,
        "--target",
        &url,
    ];
    ok(d, &mapped);
    let ids = "SELECT string_agg(id::text, ',' ORDER BY id) FROM customers";
    let before = psql(&url, ids);
    assert_eq!(
        psql(
            &url,
            "SELECT min(pg_typeof(c.id)::text) || ' ' || count(*) FROM orders o JOIN customers c ON c.id = o.customer_id"
        ),
        "uuid 300"
    );
    let again = ok(d, &mapped);
    assert_eq!(again["copied"], 0);
    assert_eq!(psql(&url, ids), before);
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM acode_migrate.migration_mappings"
        ),
        "200"
    );
}

#[test]
fn bad_input_is_a_clear_error_with_a_stable_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let junk = d.join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let db = TestDb::create();
    let url = db.url();
    let r = acode(
        d,
        &[
            "migrate",
            "run",
            "--source",
            &format!("sqlite:{}", junk.display()),
            "--target",
            &url,
        ],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.error_code(), "ACODE-MIGRATE-001");
    // The file is left as it was, and nothing was written to the target.
    assert_eq!(std::fs::read(&junk).unwrap(), vec![b'x'; 4096]);
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'acode_migrate'"
        ),
        "0"
    );
    // A source that does not exist is not created.
    let missing = d.join("missing.db");
    let r = acode(
        d,
        &[
            "migrate",
            "analyze",
            "--source",
            &format!("sqlite:{}", missing.display()),
            "--target",
            &url,
        ],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.error_code(), "ACODE-MIGRATE-001");
    assert!(r.error_message().contains("no such file"), "{}", r.stderr);
    assert!(!missing.exists());

    let src = format!("sqlite:{}", shop(d, 10).display());
    let r = acode(
        d,
        &[
            "migrate",
            "analyze",
            "--source",
            &src,
            "--target",
            "postgres://postgres@127.0.0.1:1/none",
        ],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.error_code(), "ACODE-MIGRATE-002");

    psql(&url, "CREATE TABLE customers (id text PRIMARY KEY)");
    let r = acode(d, &["migrate", "run", "--source", &src, "--target", &url]);
    assert_eq!(r.error_code(), "ACODE-MIGRATE-003", "{}", r.stdout);
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "1"
    );

    let r = acode(
        d,
        &[
            "migrate",
            "run",
            "--source",
            &src,
            "--target",
            &url,
            "--uuid-map",
            "nope.id",
        ],
    );
    assert_eq!(r.error_code(), "ACODE-MIGRATE-006");

    let mut text = acode_in(d);
    text.args([
        "migrate",
        "run",
        "--source",
        &format!("sqlite:{}", junk.display()),
        "--target",
        &url,
    ]);
    let r = run(&mut text);
    assert!(
        r.stderr.starts_with("error[ACODE-MIGRATE-001]: "),
        "{}",
        r.stderr
    );
}

#[test]
fn jobs_are_created_run_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = format!("sqlite:{}", shop(d, 100).display());
    let db = TestDb::create();
    let url = db.url();
    let log = d.join("job.log");
    let created = ok(
        d,
        &[
            "migrate",
            "jobs",
            "create",
            "nightly",
            "--schedule",
            "0 3 * * *",
            "--source",
            &src,
            "--target",
            &url,
            "--log",
            &log.display().to_string(),
        ],
    );
    assert_eq!(created["jobs"][0]["name"], "nightly");
    assert_eq!(
        ok(d, &["migrate", "jobs", "list", "--target", &url])["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ran = ok(d, &["migrate", "jobs", "run", "nightly", "--target", &url]);
    assert_eq!(ran["status"], "ok");
    assert_eq!(ran["rows_inserted"], 200 + 50 + 100 + 300);
    let status = ok(
        d,
        &["migrate", "jobs", "status", "nightly", "--target", &url],
    );
    assert_eq!(status["history"].as_array().unwrap().len(), 1);
    assert!(status["next_run_at"].is_string());
    let events: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let line: Value = serde_json::from_str(l).unwrap();
            assert_eq!(line["job"], "nightly");
            line["event"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        events,
        ["start", "table", "table", "table", "table", "finish"]
    );
    let r = acode(d, &["migrate", "jobs", "status", "nope", "--target", &url]);
    assert_eq!(r.error_code(), "ACODE-MIGRATE-008");

    // The daemon runs a job on its schedule (every second here), writes
    // to the job's own log, and stops cleanly on SIGTERM.
    let often_log = d.join("often.log");
    ok(
        d,
        &[
            "migrate",
            "jobs",
            "create",
            "often",
            "--schedule",
            "* * * * * *",
            "--source",
            &src,
            "--target",
            &url,
            "--log",
            &often_log.display().to_string(),
        ],
    );
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_acode"))
        .args(["migrate", "jobs", "daemon", "--target", &url])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ran = loop {
        let status = ok(d, &["migrate", "jobs", "status", "often", "--target", &url]);
        let history = status["history"].as_array().unwrap().clone();
        if history.iter().any(|r| r["status"] == "ok") {
            break history;
        }
        assert!(daemon.try_wait().unwrap().is_none(), "the daemon exited");
        assert!(
            Instant::now() < deadline,
            "the schedule did not fire within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        ran.iter()
            .all(|r| r["status"] == "ok" && r["error"].is_null()),
        "{ran:?}"
    );
    let term = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = daemon.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let logged = std::fs::read_to_string(&often_log).unwrap();
    assert!(
        logged.lines().any(|l| l.contains("\"event\":\"finish\"")),
        "{logged}"
    );
    // The other job's log is its own.
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 6);
}

/// A table's checkpoint as the target holds it.
#[derive(Debug, PartialEq)]
struct Checkpoint {
    run_id: String,
    done: bool,
    chunks: i64,
    inserted: i64,
}

/// A connection to the target that reads the checkpoints while `acode`
/// runs (empty before the first run has made its control tables).
struct Watch {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Watch {
    fn new(url: &str) -> Watch {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
        });
        Watch { rt, client }
    }

    fn checkpoints(&self) -> std::collections::BTreeMap<String, Checkpoint> {
        let rows = self.rt.block_on(self.client.query(
            "SELECT table_name, run_id, status = 'done', chunks_done, rows_inserted
             FROM acode_migrate.migration_checkpoints",
            &[],
        ));
        rows.unwrap_or_default()
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    Checkpoint {
                        run_id: r.get(1),
                        done: r.get(2),
                        chunks: r.get(3),
                        inserted: r.get(4),
                    },
                )
            })
            .collect()
    }

    /// Chunks committed so far, a finished table counting as many.
    fn progress(&self) -> i64 {
        self.checkpoints()
            .values()
            .map(|c| c.chunks + if c.done { 1_000_000 } else { 0 })
            .sum()
    }

    /// Waits until no other session is connected to the database: a
    /// killed client's server sessions finish what it had sent (a chunk
    /// and its checkpoint commit together, or not at all), then go.
    fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let row = self.rt.block_on(self.client.query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()
                   AND backend_type = 'client backend'",
                &[],
            ));
            if row.unwrap().get::<_, i64>(0) == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the killed run's sessions stayed"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\""));
        let row = self.rt.block_on(self.client.query_one(&sql, &[])).unwrap();
        row.get(0)
    }
}

#[test]
fn a_run_killed_20_times_resumes_and_ends_equal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = format!("sqlite:{}", shop(d, 20_000).display());
    let db = TestDb::create();
    let url = db.url();
    let watch = Watch::new(&url);
    let args = [
        "migrate",
        "run",
        "--batch-size",
        "100",
        "--source",
        &src,
        "--target",
        &url,
    ];
    let mut before = watch.checkpoints();
    for kill in 0..20 {
        // Killed at a random moment once this start has committed a chunk
        // of its own: each kill interrupts a run that is copying.
        let mut child = Command::new(env!("CARGO_BIN_EXE_acode"))
            .args(args)
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let from = watch.progress();
        let deadline = Instant::now() + Duration::from_secs(60);
        while watch.progress() == from {
            assert!(
                child.try_wait().unwrap().is_none(),
                "start {kill} ended before it was killed: the source is too small"
            );
            assert!(Instant::now() < deadline, "start {kill} made no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..10)));
        assert!(
            child.try_wait().unwrap().is_none(),
            "start {kill} ended before it was killed: the source is too small"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        watch.settle();

        let now = watch.checkpoints();
        for (table, c) in &now {
            // A table holds exactly the rows of its committed chunks: none
            // of a chunk cut short, none twice.
            assert_eq!(
                watch.count(table),
                c.inserted,
                "{table} after kill {kill}: {c:?}"
            );
            // Resumed, not started over: the same run, never behind.
            if let Some(b) = before.get(table) {
                assert_eq!(b.run_id, c.run_id, "{table} after kill {kill}");
                assert!(
                    c.done || (!b.done && c.chunks >= b.chunks),
                    "{table} went back after kill {kill}: {b:?} → {c:?}"
                );
            }
        }
        before = now;
    }
    let last = ok(d, &["migrate", "run", "--source", &src, "--target", &url]);
    let tables = last["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 4);
    assert!(
        last["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .starts_with("continuing a run that was cut short")),
        "{last}"
    );
    assert!(tables.iter().any(|t| t["resumed"] == true), "{last}");
    let valid = ok(
        d,
        &["migrate", "validate", "--source", &src, "--target", &url],
    );
    assert_eq!(valid["ok"], true, "{valid}");
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM (SELECT order_id, line FROM \"order lines\" GROUP BY 1, 2 HAVING count(*) > 1) d"
        ),
        "0"
    );
    assert_eq!(psql(&url, "SELECT count(*) FROM \"order lines\""), "60000");
    assert_eq!(psql(&url, "SELECT count(*) FROM orders"), "20000");
}

/// Spawns `acode args` in `dir` and kills it with SIGKILL at a random
/// moment within `window_ms` unless it ended before; returns whether it
/// was killed.
fn run_and_maybe_kill(dir: &Path, args: &[&str], window_ms: std::ops::Range<u64>) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_acode"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_millis(fastrand::u64(window_ms));
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap(); // SIGKILL
    }
    child.wait().unwrap();
    killed
}

#[test]
fn tracked_runs_killed_while_the_source_changes_lose_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = shop(d, 8000);
    let src = format!("sqlite:{}", path.display());
    let db = TestDb::create();
    let url = db.url();
    let tracked = [
        "migrate",
        "run",
        "--track-changes",
        "--batch-size",
        "100",
        "--source",
        &src,
        "--target",
        &url,
    ];
    let first = ok(d, &tracked);
    assert!(
        first["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["incremental"] == false)
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut killed = 0;
    for round in 0..12 {
        conn.execute_batch(&format!(
            r#"BEGIN;
            UPDATE customers SET name = name || '·' WHERE id % 7 = {r7};
            UPDATE "order lines" SET qty = qty + 1 WHERE order_id % 5 = {r5};
            DELETE FROM "order lines" WHERE order_id % 97 = {round} AND line = 3;
            INSERT OR IGNORE INTO "order lines" (order_id, line, sku, qty)
              SELECT id, 4 + {round}, 'P001', 1 FROM orders WHERE id % 50 = {round};
            UPDATE "order lines" SET line = 40 + {round} WHERE order_id = 1 + {round} AND line = 1;
            UPDATE products SET title = 'Runde {round}' WHERE sku <= 'P010';
            COMMIT;"#,
            r7 = round % 7,
            r5 = round % 5,
        ))
        .unwrap();
        if run_and_maybe_kill(d, &tracked, 20..400) {
            killed += 1;
        }
    }
    assert!(killed > 0);
    let last = ok(d, &tracked);
    // Every cut-short run left a cursor the last one could continue from.
    let tables = last["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 4);
    assert!(tables.iter().all(|t| t["incremental"] == true), "{last}");
    let valid = ok(
        d,
        &["migrate", "validate", "--source", &src, "--target", &url],
    );
    assert_eq!(valid["ok"], true, "{valid}");
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM (SELECT order_id, line FROM \"order lines\" GROUP BY 1, 2 HAVING count(*) > 1) d"
        ),
        "0"
    );
    // A tracked run of a source that did not change writes nothing.
    let idle = ok(d, &tracked);
    assert_eq!(
        (idle["copied"].as_u64(), idle["deleted"].as_u64()),
        (Some(0), Some(0))
    );
    // Untracking removes the log from the source, and says so.
    let untracked = ok(d, &["migrate", "untrack", "--source", &src]);
    assert_eq!(untracked["tables"], 4);
    let left: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_\\_acode%' ESCAPE '\\'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    // A file that is not SQLite is refused and left as it was.
    let junk = d.join("junk.txt");
    std::fs::write(&junk, "not a database").unwrap();
    let refused = acode(
        d,
        &[
            "migrate",
            "untrack",
            "--source",
            &format!("sqlite:{}", junk.display()),
        ],
    );
    assert_eq!(refused.code, 1);
    assert_eq!(refused.error_code(), "ACODE-MIGRATE-001");
    assert_eq!(std::fs::read_to_string(&junk).unwrap(), "not a database");
}

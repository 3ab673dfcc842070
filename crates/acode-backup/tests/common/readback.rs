//! Reading an export back as rows (JSON objects, column name to string or
//! null): parsed from JSON or CSV, or loaded into a fresh SQLite or a fresh
//! PostgreSQL database (created for the call and dropped after it, so tests
//! run in parallel without seeing each other); and the rows the source
//! holds, read by the test's own SQL.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use acode_backup::export::{ExportFilter, ExportFormat, ExportKind, count, export};
use acode_store::Store;
use serde_json::{Map, Value, json};

/// Runs an export into a string, checking its row count against `count`.
pub fn run(store: &Store, kind: ExportKind, format: ExportFormat, filter: &ExportFilter) -> String {
    let mut out = Vec::new();
    let outcome = export(store, kind, format, filter, &mut out).unwrap();
    assert_eq!(outcome.rows, count(store, kind, filter).unwrap());
    String::from_utf8(out).unwrap()
}

pub fn all() -> ExportFilter {
    ExportFilter::default()
}

/// The rows the source holds, with privacy applied by this test's own
/// reading of the rules (not the export's SQL).
pub fn expected(store: &Store, kind: ExportKind, include_local_only: bool) -> Vec<Value> {
    let conn = store.connection();
    let rank = |p: &str| -> u8 {
        match p {
            "full" => 0,
            "redacted" => 1,
            _ => 2,
        }
    };
    let name = |r: u8| ["full", "redacted", "local_only"][r as usize];
    let rows: Vec<Value> = match kind {
        ExportKind::Conversations => {
            let mut stmt = conn
                .prepare("SELECT id, title, privacy, created_at, updated_at FROM chats")
                .unwrap();
            stmt.query_map([], |r| {
                let privacy: String = r.get(2)?;
                let title: String = r.get(1)?;
                Ok(json!({
                    "id": r.get::<_, String>(0)?,
                    "title": if privacy == "redacted" { Value::Null } else { title.into() },
                    "privacy": privacy,
                    "created_at": r.get::<_, String>(3)?,
                    "updated_at": r.get::<_, String>(4)?,
                }))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
        }
        ExportKind::Messages => {
            let mut stmt = conn
                .prepare(
                    "SELECT m.id, m.chat_id, m.role, m.content, m.privacy, c.privacy,
                            m.created_at, m.updated_at
                     FROM messages m JOIN chats c ON c.id = m.chat_id",
                )
                .unwrap();
            stmt.query_map([], |r| {
                let own: String = r.get(4)?;
                let chat: String = r.get(5)?;
                let eff = name(rank(&own).max(rank(&chat)));
                let content: String = r.get(3)?;
                Ok(json!({
                    "id": r.get::<_, String>(0)?,
                    "chat_id": r.get::<_, String>(1)?,
                    "role": r.get::<_, String>(2)?,
                    "content": if eff == "redacted" { Value::Null } else { content.into() },
                    "privacy": eff,
                    "created_at": r.get::<_, String>(6)?,
                    "updated_at": r.get::<_, String>(7)?,
                }))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
        }
        ExportKind::Runs => unreachable!("runs are checked by their properties"),
    };
    let mut rows: Vec<Value> = rows
        .into_iter()
        .filter(|r| include_local_only || r["privacy"] != "local_only")
        .collect();
    sort(&mut rows);
    rows
}

fn sort(rows: &mut [Value]) {
    rows.sort_by_key(|r| (r["entity"].to_string(), r["id"].to_string()));
}

pub fn from_json(text: &str) -> Vec<Value> {
    let mut rows: Vec<Value> = serde_json::from_str::<Value>(text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    sort(&mut rows);
    rows
}

pub fn from_csv(text: &str) -> Vec<Value> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let mut rows: Vec<Value> = reader
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            let obj: Map<String, Value> = header
                .iter()
                .zip(rec.iter())
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                .collect();
            Value::Object(obj)
        })
        .collect();
    sort(&mut rows);
    rows
}

/// CSV cannot tell NULL from empty: NULL reads back as "".
pub fn nulls_as_empty(rows: &[Value]) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            let obj = r.as_object().unwrap();
            Value::Object(
                obj.iter()
                    .map(|(k, v)| (k.clone(), if v.is_null() { json!("") } else { v.clone() }))
                    .collect(),
            )
        })
        .collect()
}

/// Loads an SQL export into a fresh database with the `sqlite3` command,
/// fed the file on its standard input as a user would, then reads the table
/// back.
pub fn via_sqlite(sql: &str, table: &str) -> Vec<Value> {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("loaded.db");
    let mut child = Command::new("sqlite3")
        .arg("-bail")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("this test needs the `sqlite3` command (Debian: apt install sqlite3): {e}")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sqlite3 refused the export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
    let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let mut rows: Vec<Value> = stmt
        .query_map([], |r| {
            let mut obj = Map::new();
            for (i, n) in names.iter().enumerate() {
                let v: Option<String> = r.get(i)?;
                obj.insert(n.clone(), v.map_or(Value::Null, Value::String));
            }
            Ok(Value::Object(obj))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    sort(&mut rows);
    rows
}

/// A fresh PostgreSQL database, dropped when this is dropped.
struct PgDb(String);

const START_PG: &str = "PostgreSQL must be running on 127.0.0.1:5432 (user postgres, trust auth) \
     for the SQL export test; start it with \
     `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`";

fn psql(db: &str, args: &[&str]) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", db])
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .env("PGCLIENTENCODING", "UTF8")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql ({e}): {START_PG}"));
    assert!(
        out.status.success(),
        "psql {args:?} failed: {}\n{START_PG}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl PgDb {
    fn new() -> PgDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        // Unique across processes (pid), runs (time) and threads (counter).
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("acode_export_{}_{nanos}_{n}", std::process::id());
        psql(
            "postgres",
            &[
                "-c",
                &format!("CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"),
            ],
        );
        PgDb(name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-X",
                "-q",
                "-c",
            ])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0))
            .output();
    }
}

/// Loads an SQL export into a fresh PostgreSQL and reads the table back.
pub fn via_postgres(sql: &str, table: &str) -> Vec<Value> {
    let db = PgDb::new();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), sql).unwrap();
    psql(&db.0, &["-f", &file.path().to_string_lossy()]);
    let text = psql(
        &db.0,
        &[
            "-A",
            "-t",
            "-c",
            &format!("SELECT coalesce(json_agg(t), '[]') FROM {table} t"),
        ],
    );
    from_json(text.trim())
}

//! A fresh PostgreSQL database per test.

use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

/// Where the test server is: `ACODE_TEST_PG_HOST` / `ACODE_TEST_PG_PORT`,
/// by default the machine's PostgreSQL at 127.0.0.1:5432 (trust auth).
fn server() -> (String, u16) {
    let host = std::env::var("ACODE_TEST_PG_HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("ACODE_TEST_PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    (host, port)
}

const PREFIX: &str = "acode_test_";
/// Databases of runs older than this are leftovers of a killed run.
const SWEEP_AFTER_SECS: u64 = 3600;

/// A database that exists for the life of one test.
pub struct TestDb {
    name: String,
    host: String,
    port: u16,
}

impl TestDb {
    /// Creates an empty database with a unique name. Panics, saying what to
    /// start, when PostgreSQL cannot be reached.
    pub fn create() -> TestDb {
        static SWEEP: Once = Once::new();
        let (host, port) = server();
        SWEEP.call_once(|| sweep(&host, port));
        let secs = now_secs();
        let name = format!("{PREFIX}{secs}_{}_{}", std::process::id(), unique_suffix());
        admin(&host, port, vec![format!("CREATE DATABASE {name}")]);
        TestDb { name, host, port }
    }

    /// A `postgres://` URL of the database.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@{}:{}/{}",
            self.host, self.port, self.name
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The same database reached through another host and port (a proxy).
    pub fn url_via(&self, host: &str, port: u16) -> String {
        format!("postgres://postgres@{host}:{port}/{}", self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(
            &self.host,
            self.port,
            vec![format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )],
        );
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Drops the test databases of earlier runs that are old enough to be
/// leftovers (a run killed before its tests could drop them).
fn sweep(host: &str, port: u16) {
    let names = admin(
        host,
        port,
        vec![format!(
            "SELECT datname FROM pg_database WHERE datname LIKE '{PREFIX}%'"
        )],
    );
    let cutoff = now_secs().saturating_sub(SWEEP_AFTER_SECS);
    let stale: Vec<String> = names
        .into_iter()
        .filter(|n| {
            n.strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok())
                .is_some_and(|secs| secs < cutoff)
        })
        .map(|n| format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"))
        .collect();
    if !stale.is_empty() {
        admin(host, port, stale);
    }
}

/// Runs statements on the `postgres` database from a thread of its own (so
/// it works from sync tests, async tests and `Drop`), returning the first
/// column of every row as text.
fn admin(host: &str, port: u16, statements: Vec<String>) -> Vec<String> {
    let config = format!("host={host} port={port} user=postgres dbname=postgres");
    let where_ = format!("{host}:{port}");
    let run = move || -> Result<Vec<String>, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&config, NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let driver = tokio::spawn(conn);
            let mut out = Vec::new();
            for sql in statements {
                for msg in client.simple_query(&sql).await.map_err(|e| e.to_string())? {
                    if let tokio_postgres::SimpleQueryMessage::Row(row) = msg {
                        out.extend(row.get(0).map(str::to_owned));
                    }
                }
            }
            drop(client);
            let _ = driver.await;
            Ok(out)
        })
    };
    match std::thread::spawn(run).join() {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => panic!(
            "PostgreSQL at {where_} (user postgres, trust auth) is needed by this test and failed: {e}\n\
             start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        ),
        Err(_) => panic!("the PostgreSQL admin thread panicked"),
    }
}

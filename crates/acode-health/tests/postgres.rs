//! The PostgreSQL checks against a real server: each test gets its own
//! database (TestDb), an outage is a proxy taken down, a long transaction
//! is a second connection left idle in a transaction holding a lock.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use acode_health::checks::postgres::{PgTarget, PoolCheck, PostgresCheck, TransactionsCheck};
use acode_health::{CheckReport, Lines, Status};
use acode_testkit::{Proxy, TestDb};
use common::run_one;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

fn target(url: &str) -> PgTarget {
    PgTarget::new(url, Duration::from_secs(5)).unwrap()
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Runs the check until `done` says yes, for at most 10 s.
async fn until(
    mut run: impl AsyncFnMut() -> CheckReport,
    done: impl Fn(&CheckReport) -> bool,
) -> CheckReport {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = run().await;
        if done(&r) || Instant::now() > deadline {
            return r;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn postgres_is_healthy_degraded_when_slow_and_unhealthy_when_unreachable() {
    let db = TestDb::create();
    let server: SocketAddr = format!("{}:{}", db.host(), db.port()).parse().unwrap();
    let proxy = Proxy::start(server).await;
    let url = db.url_via("127.0.0.1", proxy.addr().port());

    let ok = run_one(PostgresCheck::new(target(&url), Duration::from_secs(10))).await;
    assert_eq!(ok.status, Status::Healthy, "{}", ok.message);
    assert!(
        ok.data["server_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert!(ok.data["round_trip_ms"].as_f64().unwrap() > 0.0);

    // Any round trip is slower than zero.
    let slow = run_one(PostgresCheck::new(target(&url), Duration::ZERO)).await;
    assert_eq!(slow.status, Status::Degraded, "{}", slow.message);

    proxy.down();
    let down = run_one(PostgresCheck::new(target(&url), Duration::from_secs(10))).await;
    assert_eq!(down.status, Status::Unhealthy, "{}", down.message);
    assert!(
        down.message
            .starts_with("ACODE-SYNC-001 connecting to PostgreSQL at 127.0.0.1:"),
        "{}",
        down.message
    );
    assert!(
        down.message.contains("local writes go on"),
        "{}",
        down.message
    );

    // Nothing listens at all on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = db.url_via("127.0.0.1", closed.port());
    let r = run_one(PostgresCheck::new(target(&url), Duration::from_secs(10))).await;
    assert_eq!(r.status, Status::Unhealthy, "{}", r.message);
}

fn pool(url: &str, max: usize) -> Pool {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager).max_size(max).build().unwrap()
}

#[tokio::test]
async fn a_pool_is_judged_by_the_connections_in_use_and_the_callers_waiting() {
    let db = TestDb::create();
    let pool = pool(&db.url(), 2);
    let lines = Lines::new(0.5, 1.0);
    let check = || PoolCheck::deadpool(pool.clone(), lines);
    let idle = pool.get().await.unwrap();
    drop(idle);
    let r = run_one(check()).await;
    assert_eq!(
        (r.status, r.data["in_use"].as_i64()),
        (Status::Healthy, Some(0)),
        "{}",
        r.message
    );

    let first = pool.get().await.unwrap();
    let r = run_one(check()).await;
    assert_eq!(
        (r.status, r.data["in_use"].as_i64()),
        (Status::Degraded, Some(1)),
        "{}",
        r.message
    );
    let second = pool.get().await.unwrap();
    let r = run_one(check()).await;
    assert_eq!(r.status, Status::Unhealthy, "{}", r.message);

    // A caller now waits for a connection.
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    let r = until(async || run_one(check()).await, |r| r.data["waiting"] == 1).await;
    assert_eq!(
        (r.status, r.data["waiting"].as_i64()),
        (Status::Unhealthy, Some(1)),
        "{}",
        r.message
    );
    drop((first, second));
    waiter.await.unwrap().unwrap();
    let r = run_one(check()).await;
    assert_eq!(
        (r.status, r.data["waiting"].as_i64()),
        (Status::Healthy, Some(0)),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn server_connection_slots_count_every_client() {
    let db = TestDb::create();
    let pg = target(&db.url());
    let r = run_one(PoolCheck::server_slots(pg.clone(), Lines::new(0.8, 0.95))).await;
    assert_eq!(r.status, Status::Healthy, "{}", r.message);
    let (used, max) = (
        r.data["in_use"].as_i64().unwrap(),
        r.data["max"].as_i64().unwrap(),
    );
    assert!(used >= 1 && max > used, "{used} of {max}");
    // The check's own connection is one slot: over a line of one in a million.
    let tiny = 1e-6;
    let r = run_one(PoolCheck::server_slots(pg.clone(), Lines::new(tiny, 1.0))).await;
    assert_eq!(r.status, Status::Degraded, "{}", r.message);
    let r = run_one(PoolCheck::server_slots(pg, Lines::new(tiny, tiny))).await;
    assert_eq!(r.status, Status::Unhealthy, "{}", r.message);
}

#[tokio::test]
async fn a_transaction_left_open_with_its_locks_is_found() {
    let db = TestDb::create();
    let pg = target(&db.url());
    let hour = Duration::from_secs(3600);
    let check =
        |degraded, unhealthy| TransactionsCheck::new(pg.clone(), Lines::new(degraded, unhealthy));
    let r = run_one(check(Duration::ZERO, Duration::ZERO)).await;
    assert_eq!(r.status, Status::Healthy, "nothing open: {}", r.message);
    assert_eq!(r.message, "no open transaction on this database");

    let holder = connect(&db.url()).await;
    holder
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let r = run_one(check(hour, 2 * hour)).await;
    assert_eq!(r.status, Status::Healthy, "young enough: {}", r.message);
    assert_eq!(r.data["oldest_state"], "idle in transaction");
    assert!(
        r.data["oldest_locks_held"].as_i64().unwrap() >= 1,
        "{}",
        r.data
    );
    let r = run_one(check(Duration::ZERO, hour)).await;
    assert_eq!(r.status, Status::Degraded, "{}", r.message);
    let r = run_one(check(Duration::ZERO, Duration::ZERO)).await;
    assert_eq!(r.status, Status::Unhealthy, "{}", r.message);

    // Another session now waits for that lock.
    let blocked = connect(&db.url()).await;
    let waiting = tokio::spawn(async move {
        blocked
            .simple_query("SELECT count(*) FROM t")
            .await
            .map(drop)
    });
    let r = until(
        async || run_one(check(hour, 2 * hour)).await,
        |r| r.data["lock_waits"] == 1,
    )
    .await;
    assert_eq!(r.data["lock_waits"], 1, "{}", r.data);
    assert!(
        r.message.contains("1 session(s) waiting on a lock"),
        "{}",
        r.message
    );

    holder.batch_execute("COMMIT").await.unwrap();
    waiting.await.unwrap().unwrap();
    let r = run_one(check(Duration::ZERO, Duration::ZERO)).await;
    assert_eq!(r.status, Status::Healthy, "{}", r.message);
}

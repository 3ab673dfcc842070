//! The Redis check against the machine's Redis (127.0.0.1:6379, which CI
//! starts; `ACODE_TEST_REDIS_URL` points elsewhere) and a closed port.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use acode_health::Status;
use acode_health::checks::redis::RedisCheck;
use common::run_one;

fn url() -> String {
    std::env::var("ACODE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test]
async fn redis_answers_ping_is_degraded_when_slow_and_unhealthy_when_unreachable() {
    let ok = run_one(RedisCheck::new(&url(), Duration::from_secs(10)).unwrap()).await;
    assert_eq!(
        ok.status,
        Status::Healthy,
        "{} (start Redis: redis-server --daemonize yes --bind 127.0.0.1)",
        ok.message
    );
    assert!(ok.message.contains("answered PONG"), "{}", ok.message);

    let slow = run_one(RedisCheck::new(&url(), Duration::ZERO).unwrap()).await;
    assert_eq!(slow.status, Status::Degraded, "{}", slow.message);

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gone = format!("redis://127.0.0.1:{}", closed.port());
    let r = run_one(RedisCheck::new(&gone, Duration::from_secs(10)).unwrap()).await;
    assert_eq!(r.status, Status::Unhealthy, "{}", r.message);
    assert!(
        r.message.starts_with("connecting to Redis at 127.0.0.1:"),
        "{}",
        r.message
    );
}

#[test]
fn a_bad_redis_url_is_a_config_error() {
    let err = RedisCheck::new("http://nope", Duration::ZERO)
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("ACODE-CONFIG-001"), "{err}");
}

//! The registry: parallel runs under a timeout, isolation from panics and
//! errors, the cache by status, and the worst status on top.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use acode_health::{
    CacheTtl, Check, CheckError, CheckFuture, CheckResult, ManualClock, Registry, Status,
};
use serde_json::json;

/// What a test check does when run.
#[derive(Clone, Copy)]
enum Behaviour {
    Answer(Status),
    Hang,
    Panic,
    Fail,
}

struct TestCheck {
    name: &'static str,
    behaviour: Behaviour,
    runs: Arc<AtomicUsize>,
}

impl TestCheck {
    fn new(name: &'static str, behaviour: Behaviour) -> (Self, Arc<AtomicUsize>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let check = TestCheck {
            name,
            behaviour,
            runs: runs.clone(),
        };
        (check, runs)
    }
}

impl Check for TestCheck {
    fn name(&self) -> &str {
        self.name
    }

    fn run(&self) -> CheckFuture<'_> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let behaviour = self.behaviour;
        Box::pin(async move {
            match behaviour {
                Behaviour::Answer(status) => {
                    Ok(CheckResult::new(status, "as told", json!({"n": 1})))
                }
                // Never resolves: only the registry's timeout ends it.
                Behaviour::Hang => std::future::pending().await,
                Behaviour::Panic => panic!("boom in the check"),
                Behaviour::Fail => Err(CheckError::new("the part said no")),
            }
        })
    }
}

#[tokio::test]
async fn a_hanging_check_times_out_without_delaying_the_others() {
    let timeout = Duration::from_millis(300);
    let mut registry = Registry::new().with_timeout(timeout);
    registry
        .add(TestCheck::new("hang_a", Behaviour::Hang).0)
        .add(TestCheck::new("quick", Behaviour::Answer(Status::Healthy)).0)
        .add(TestCheck::new("hang_b", Behaviour::Hang).0)
        .add(TestCheck::new("hang_c", Behaviour::Hang).0);
    let start = Instant::now();
    let report = registry.run().await;
    let took = start.elapsed();
    // Run in parallel: about one timeout, not three.
    assert!(took >= timeout, "{took:?}");
    assert!(took < timeout * 2, "checks ran one after another: {took:?}");
    assert_eq!(report.status, Status::Unhealthy);
    for name in ["hang_a", "hang_b", "hang_c"] {
        let c = report.check(name).unwrap();
        assert_eq!(c.status, Status::Unhealthy);
        assert!(
            c.message.starts_with("ACODE-HEALTH-001 check"),
            "{}",
            c.message
        );
        assert!(c.message.contains("timed out after 0.3s"), "{}", c.message);
    }
    let quick = report.check("quick").unwrap();
    assert_eq!(quick.status, Status::Healthy);
    assert!(quick.duration_ms < 300.0, "{}", quick.duration_ms);
}

#[tokio::test]
async fn a_panicking_or_failing_check_is_reported_and_the_rest_run() {
    let mut registry = Registry::new();
    registry
        .add(TestCheck::new("panics", Behaviour::Panic).0)
        .add(TestCheck::new("fails", Behaviour::Fail).0)
        .add(TestCheck::new("fine", Behaviour::Answer(Status::Healthy)).0);
    let report = registry.run().await;
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["panics", "fails", "fine"], "in the order added");
    let panics = report.check("panics").unwrap();
    assert_eq!(panics.status, Status::Unhealthy);
    assert!(
        panics.message.contains("panicked: boom in the check"),
        "{}",
        panics.message
    );
    let fails = report.check("fails").unwrap();
    assert_eq!(fails.status, Status::Unhealthy);
    assert_eq!(
        fails.message,
        "ACODE-HEALTH-001 check fails: the part said no"
    );
    assert_eq!(report.check("fine").unwrap().status, Status::Healthy);
    // The registry still works after a panic.
    assert_eq!(registry.run().await.checks.len(), 3);
}

#[tokio::test]
async fn results_are_cached_for_a_time_that_depends_on_their_status() {
    let clock = Arc::new(ManualClock::new(common::T0));
    let mut registry = Registry::new().with_clock(clock.clone());
    let (healthy, healthy_runs) = TestCheck::new("healthy", Behaviour::Answer(Status::Healthy));
    let (degraded, degraded_runs) = TestCheck::new("degraded", Behaviour::Answer(Status::Degraded));
    let (unhealthy, unhealthy_runs) = TestCheck::new("unhealthy", Behaviour::Fail);
    registry.add(healthy).add(degraded).add(unhealthy);
    let runs =
        || [&healthy_runs, &degraded_runs, &unhealthy_runs].map(|r| r.load(Ordering::SeqCst));

    let first = registry.run().await;
    assert!(first.checks.iter().all(|c| !c.cached));
    let second = registry.run().await;
    assert_eq!(
        runs(),
        [1, 1, 1],
        "a second run within the TTL runs nothing"
    );
    assert!(second.checks.iter().all(|c| c.cached));
    assert_eq!(second.status, first.status);

    clock.advance(Duration::from_millis(4_999));
    registry.run().await;
    assert_eq!(runs(), [1, 1, 1]);
    clock.advance(Duration::from_millis(1)); // 5 s: Unhealthy expires.
    registry.run().await;
    assert_eq!(runs(), [1, 1, 2]);
    clock.advance(Duration::from_secs(5)); // 10 s: Degraded expires.
    registry.run().await;
    assert_eq!(runs(), [1, 2, 3]);
    clock.advance(Duration::from_secs(20)); // 30 s: Healthy expires.
    registry.run().await;
    assert_eq!(runs(), [2, 3, 4]);
}

#[tokio::test]
async fn the_ttls_can_be_set() {
    let clock = Arc::new(ManualClock::new(common::T0));
    let ttl = CacheTtl {
        healthy: Duration::from_secs(1),
        ..CacheTtl::default()
    };
    let mut registry = Registry::new().with_clock(clock.clone()).with_ttl(ttl);
    let (check, runs) = TestCheck::new("c", Behaviour::Answer(Status::Healthy));
    registry.add(check);
    registry.run().await;
    clock.advance(Duration::from_secs(1));
    registry.run().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_report_is_the_worst_status_and_maps_to_http() {
    let cases = [
        (vec![], Status::Healthy, 200),
        (vec![Status::Healthy, Status::Healthy], Status::Healthy, 200),
        (
            vec![Status::Healthy, Status::Degraded],
            Status::Degraded,
            200,
        ),
        (
            vec![Status::Degraded, Status::Unhealthy, Status::Healthy],
            Status::Unhealthy,
            503,
        ),
    ];
    let names = ["a", "b", "c"];
    for (statuses, want, http) in cases {
        let mut registry = Registry::new();
        for (status, name) in statuses.iter().zip(names) {
            registry.add(TestCheck::new(name, Behaviour::Answer(*status)).0);
        }
        let report = registry.run().await;
        assert_eq!(report.status, want);
        let (code, body) = report.http();
        assert_eq!(code, http);
        assert_eq!(body["status"], want.as_str());
        assert_eq!(body["checks"].as_array().unwrap().len(), statuses.len());
        if let Some(first) = body["checks"].as_array().unwrap().first() {
            for field in ["name", "status", "message", "duration_ms", "data"] {
                assert!(first.get(field).is_some(), "{field} missing: {first}");
            }
        }
    }
}

//! `/metrics`: the text is read back by a strict parser of the Prometheus
//! text format (0.0.4), and its figures follow the store and the reports.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use acode_health::metrics::Metrics;
use acode_health::{CheckReport, HealthReport, Status};
use acode_store::Store;
use acode_sync::{Mode, SyncReport};
use acode_testkit::prometheus::{Samples, get, parse};
use common::{T0, temp_store, write_chats};

fn scrape(metrics: &Metrics, store: &mut Store, now: i64) -> Samples {
    parse(&metrics.render_store(store, now).unwrap())
}

#[test]
fn the_parser_refuses_what_the_format_does_not_allow() {
    for bad in [
        "acode_x 1",
        "# TYPE acode_x gauge\nacode_x{a=\"1} 1",
        "# TYPE 1x gauge\n1x 1",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "{bad:?} accepted"
        );
    }
    let ok = parse("# TYPE acode_x gauge\nacode_x{a=\"q\\\"\",b=\"\"} 2.5\n");
    assert_eq!(ok.len(), 1);
}

#[test]
fn queue_gauges_follow_the_store() {
    let (_dir, mut store) = temp_store();
    let metrics = Metrics::new();
    let s = scrape(&metrics, &mut store, T0);
    assert_eq!(
        get(&s, "acode_queue_depth", &[("status", "pending")]),
        Some(0.0)
    );
    assert_eq!(get(&s, "acode_sync_lag_seconds", &[]), Some(0.0));
    assert!(get(&s, "acode_db_size_bytes", &[]).unwrap() > 0.0);

    write_chats(&mut store, 25);
    let oldest = store
        .read(|tx| tx.sync_counts(0))
        .unwrap()
        .oldest_pending_at
        .unwrap();
    let s = scrape(&metrics, &mut store, oldest + 42_000);
    assert_eq!(
        get(&s, "acode_queue_depth", &[("status", "pending")]),
        Some(25.0)
    );
    assert_eq!(get(&s, "acode_sync_lag_seconds", &[]), Some(42.0));
    assert!(get(&s, "acode_wal_size_bytes", &[]).unwrap() > 0.0);

    common::fail_oldest(&mut store, 3, oldest);
    let s = scrape(&metrics, &mut store, oldest);
    assert_eq!(
        get(&s, "acode_queue_depth", &[("status", "pending")]),
        Some(22.0)
    );
    assert_eq!(
        get(&s, "acode_queue_depth", &[("status", "failed")]),
        Some(3.0)
    );
    assert_eq!(
        get(&s, "acode_failed_entries", &[("code", "ACODE-SYNC-005")]),
        Some(3.0)
    );

    // Retried: the code fails nothing any more, and says so.
    store.write(|tx| tx.retry_failed(&[], false)).unwrap();
    let s = scrape(&metrics, &mut store, oldest);
    assert_eq!(
        get(&s, "acode_failed_entries", &[("code", "ACODE-SYNC-005")]),
        Some(0.0)
    );
    assert_eq!(
        get(&s, "acode_queue_depth", &[("status", "pending")]),
        Some(25.0)
    );
}

#[test]
fn counters_and_the_latency_histogram_follow_the_reports() {
    let (_dir, mut store) = temp_store();
    let metrics = Metrics::new();
    let report = SyncReport {
        uploaded: 5,
        downloaded: 7,
        conflicts: 1,
        failed: 2,
        batches: 1,
        last_error: Some("ACODE-SYNC-002 the batch failed".into()),
        ..SyncReport::default()
    };
    metrics.record_sync_report(&report);
    metrics.record_sync_report(&report);
    metrics.record_sync_report(&SyncReport {
        mode: Mode::Offline,
        last_error: Some("ACODE-SYNC-001 connection refused".into()),
        ..SyncReport::default()
    });
    for ms in [3, 15, 15, 400] {
        metrics.record_batch_latency(Duration::from_millis(ms));
    }
    let s = scrape(&metrics, &mut store, T0);
    assert_eq!(get(&s, "acode_pushed_changes_total", &[]), Some(10.0));
    assert_eq!(get(&s, "acode_pulled_changes_total", &[]), Some(14.0));
    assert_eq!(get(&s, "acode_conflicts_total", &[]), Some(2.0));
    assert_eq!(get(&s, "acode_push_batches_total", &[]), Some(2.0));
    assert_eq!(
        get(
            &s,
            "acode_sync_failures_total",
            &[("code", "ACODE-SYNC-002")]
        ),
        Some(4.0)
    );
    assert_eq!(
        get(
            &s,
            "acode_sync_failures_total",
            &[("code", "ACODE-SYNC-001")]
        ),
        Some(1.0)
    );
    let bucket = |le: &str| get(&s, "acode_batch_latency_seconds_bucket", &[("le", le)]);
    assert_eq!(bucket("0.0025"), Some(0.0));
    assert_eq!(bucket("0.005"), Some(1.0));
    assert_eq!(bucket("0.02"), Some(3.0));
    assert_eq!(bucket("0.5"), Some(4.0));
    assert_eq!(bucket("+Inf"), Some(4.0));
    assert_eq!(get(&s, "acode_batch_latency_seconds_count", &[]), Some(4.0));
    let sum = get(&s, "acode_batch_latency_seconds_sum", &[]).unwrap();
    assert!((sum - 0.433).abs() < 1e-9, "{sum}");
}

#[test]
fn each_checks_status_is_a_gauge() {
    let (_dir, mut store) = temp_store();
    let metrics = Metrics::new();
    let line = |name: &str, status| CheckReport {
        name: name.into(),
        status,
        message: String::new(),
        duration_ms: 0.0,
        data: serde_json::json!({}),
        cached: false,
    };
    let mut report = HealthReport {
        status: Status::Unhealthy,
        checks: vec![
            line("sqlite", Status::Healthy),
            line("postgres", Status::Unhealthy),
        ],
    };
    metrics.record_health(&report);
    let s = scrape(&metrics, &mut store, T0);
    assert_eq!(
        get(&s, "acode_health_status", &[("check", "sqlite")]),
        Some(0.0)
    );
    assert_eq!(
        get(&s, "acode_health_status", &[("check", "postgres")]),
        Some(2.0)
    );
    report.checks[1].status = Status::Degraded;
    metrics.record_health(&report);
    let s = scrape(&metrics, &mut store, T0);
    assert_eq!(
        get(&s, "acode_health_status", &[("check", "postgres")]),
        Some(1.0)
    );
}

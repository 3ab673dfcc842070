//! `/metrics`: the text is read back by a strict parser of the Prometheus
//! text format (0.0.4), and its figures follow the store and the reports.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use acode_health::metrics::Metrics;
use acode_health::{CheckReport, HealthReport, Status};
use acode_store::Store;
use acode_sync::{Mode, SyncReport};
use common::{T0, temp_store, write_chats};

/// (name, labels) → value, from a whole exposition; panics on anything the
/// format does not allow.
type Samples = HashMap<(String, BTreeMap<String, String>), f64>;

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    chars.next().is_some_and(ok_first)
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s.parse().unwrap_or_else(|_| panic!("bad value {s:?}")),
    }
}

/// `{a="x",b="y"}` → labels, and what follows the closing brace.
fn parse_labels(s: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').unwrap();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let eq = rest.find('=').unwrap();
        let name = &rest[..eq];
        assert!(is_name(name, false), "bad label name {name:?}");
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .expect("label value must be quoted");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().expect("unterminated label value") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().unwrap().1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("bad escape \\{c}"),
                },
                (_, c) => value.push(c),
            }
        };
        assert!(
            labels.insert(name.to_string(), value).is_none(),
            "label {name} twice"
        );
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse(text: &str) -> Samples {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Samples::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(is_name(name, true), "bad name {name:?}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                    );
                    assert!(
                        types.insert(name.into(), kind.into()).is_none(),
                        "TYPE {name} twice"
                    );
                }
                (Some("HELP"), Some(name), _) => assert!(is_name(name, true)),
                _ => {}
            }
            continue;
        }
        let split = line.find(['{', ' ']).unwrap();
        let name = &line[..split];
        assert!(is_name(name, true), "bad metric name in {line:?}");
        let (labels, rest) = if line[split..].starts_with('{') {
            parse_labels(&line[split..])
        } else {
            (BTreeMap::new(), &line[split..])
        };
        let mut fields = rest.trim_start().split(' ');
        let value = parse_value(fields.next().unwrap());
        assert!(
            fields.next().is_none_or(|ts| ts.parse::<i64>().is_ok()),
            "{line:?}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "{name} has no TYPE before it");
        assert!(
            samples.insert((name.into(), labels), value).is_none(),
            "{line:?} twice"
        );
    }
    samples
}

fn get(s: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s.get(&(name.to_string(), labels)).copied()
}

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

//! Jobs: a schedule fires, each run is recorded in `sync_run_history` and
//! logged as JSON lines, and the same job never runs twice at once.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use acode_migrate::Options;
use acode_migrate::jobs::{Jobs, lock_key};
use acode_testkit::TestDb;
use common::*;

#[test]
fn scheduled_jobs_run_record_history_and_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let path = order_system(dir.path());
    let rows = source_rows(&path) as i64;
    let db = TestDb::create();
    let url = db.url();
    let log = dir.path().join("logs").join("shop.log");
    let jobs = Jobs::new(&url).unwrap();
    rt().block_on(async {
        let job = jobs
            .create(
                "shop-sync",
                "* * * * * *",
                &source(&path),
                Options::default(),
                Some(&log),
            )
            .await
            .unwrap();
        assert_eq!(job.schedule, "* * * * * *");
        let bad = jobs
            .create(
                "x",
                "every minute",
                &source(&path),
                Options::default(),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(bad.code().code(), "ACODE-MIGRATE-006");
        let twice = jobs
            .create(
                "shop-sync",
                "* * * * *",
                &source(&path),
                Options::default(),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(twice.code().code(), "ACODE-MIGRATE-006");
        assert_eq!(jobs.list().await.unwrap().len(), 1);

        // Another holder of the job's lock (a run elsewhere): this run is skipped.
        let (holder, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        holder
            .execute("SELECT pg_advisory_lock($1)", &[&lock_key("shop-sync")])
            .await
            .unwrap();
        let busy = jobs.run("shop-sync").await.unwrap_err();
        assert_eq!(busy.code().code(), "ACODE-MIGRATE-007");
        let status = jobs.status("shop-sync", 10).await.unwrap();
        assert!(status.running);
        assert_eq!(status.history[0].status, "skipped");
        assert!(status.next_run_at.is_some());
        holder
            .execute("SELECT pg_advisory_unlock($1)", &[&lock_key("shop-sync")])
            .await
            .unwrap();

        // A run now copies everything.
        let first = jobs.run("shop-sync").await.unwrap();
        assert_eq!(first.rows_inserted, rows, "the first run copies everything");

        // A run the daemon starts is held up (another session locks a
        // table it reads) for longer than the schedule's second: the runs
        // it would start meanwhile find the job running and are skipped.
        holder
            .batch_execute("BEGIN; LOCK TABLE public.customers IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let count = |status: &str| {
            let jobs = jobs.clone();
            let status = status.to_owned();
            async move {
                jobs.status("shop-sync", 1000)
                    .await
                    .unwrap()
                    .history
                    .iter()
                    .filter(|r| r.status == status)
                    .count()
            }
        };
        let (skipped_before, ok_before) = (count("skipped").await, count("ok").await);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let daemon_jobs = jobs.clone();
        let daemon = tokio::spawn(async move {
            daemon_jobs
                .daemon(async {
                    let _ = stopped.await;
                })
                .await
        });
        let wait_for = |what: &'static str, status: &'static str, n: usize| async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while count(status).await < n {
                assert!(Instant::now() < deadline, "{what} within 60 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        wait_for("the daemon skipped a run", "skipped", skipped_before + 2).await;
        assert_eq!(count("ok").await, ok_before, "the held run cannot finish");
        holder.batch_execute("COMMIT").await.unwrap();
        wait_for("the held run and a later one finished", "ok", ok_before + 2).await;
        stop.send(()).unwrap();
        daemon.await.unwrap().unwrap();

        let status = jobs.status("shop-sync", 100).await.unwrap();
        assert!(!status.running);
        let mut history = status.history.clone();
        history.sort_by(|a, b| a.started_at.cmp(&b.started_at));
        let ok: Vec<_> = history.iter().filter(|r| r.status == "ok").collect();
        assert!(
            ok[1..]
                .iter()
                .all(|r| r.rows_inserted + r.rows_updated + r.rows_deleted == 0),
            "later runs copy nothing"
        );
        for pair in ok.windows(2) {
            assert!(
                pair[1].started_at >= pair[0].finished_at,
                "runs overlapped: {pair:?}"
            );
        }
        // The held run lasted over a second, and the daemon's skipped
        // runs started while it ran.
        let held = ok
            .iter()
            .find(|r| r.duration_ms >= 1000)
            .unwrap_or_else(|| panic!("no run was held: {ok:?}"));
        let daemon_skipped: Vec<_> = history
            .iter()
            .filter(|r| r.status == "skipped" && r.started_at > first.finished_at)
            .collect();
        assert!(daemon_skipped.len() >= 2, "{history:?}");
        assert!(
            daemon_skipped
                .iter()
                .all(|s| s.started_at >= held.started_at && s.started_at <= held.finished_at),
            "{history:?}"
        );
        assert!(ok.iter().all(|r| r.error.is_none()));

        // A failing run is recorded with its code.
        std::fs::remove_file(&path).unwrap();
        let failed = jobs.run("shop-sync").await.unwrap_err();
        assert_eq!(failed.code().code(), "ACODE-MIGRATE-001");
        let last = &jobs.status("shop-sync", 1).await.unwrap().history[0];
        assert_eq!(last.status, "failed");
        assert!(
            last.error
                .as_deref()
                .unwrap()
                .starts_with("ACODE-MIGRATE-001")
        );
    });

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert!(
        events.contains(&"skipped")
            && events.contains(&"start")
            && events.contains(&"finish")
            && events.contains(&"error")
    );
    assert!(
        lines
            .iter()
            .all(|l| l["job"] == "shop-sync" && l["ts"].is_string())
    );
}

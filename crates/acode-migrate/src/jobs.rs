//! Named incremental sync jobs: a source, options and a cron schedule,
//! stored in the target (`acode_migrate.synchronization_jobs`). Each run
//! is an ordinary [`Migrator::run`] (so only differences are copied),
//! recorded in `sync_run_history` with its counts, duration and error, and
//! logged as JSON lines to the job's log file.
//!
//! A job never runs twice at once: a run holds a PostgreSQL session
//! advisory lock derived from the job's name for its whole duration (on
//! every machine that reaches the target; released by the server if the
//! process dies). A run that finds the lock taken does nothing and is
//! recorded as `skipped`.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use chrono::{DateTime, Utc};
use croner::Cron;
use serde::Serialize;
use sha2::Digest;

use crate::error::{MigrateError, Result};
use crate::ops::{Migrator, Options, parse_source};
use crate::report::RunReport;
use crate::target::Target;

/// A job as stored.
#[derive(Clone, Debug, Serialize)]
pub struct Job {
    pub name: String,
    /// Cron: 5 fields, or 6 with seconds first (`*/10 * * * * *`).
    pub schedule: String,
    /// `sqlite:PATH`.
    pub source: String,
    pub options: Options,
    /// Where each run appends JSON lines.
    pub log_path: String,
    pub created_at: String,
}

/// One run of a job, as `sync_run_history` keeps it.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub job: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: i64,
    /// `ok`, `failed` or `skipped` (the job was already running).
    pub status: String,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_deleted: i64,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct JobStatus {
    pub job: Job,
    pub next_run_at: Option<String>,
    /// Whether a run holds the job's lock now.
    pub running: bool,
    /// Latest first.
    pub history: Vec<RunRecord>,
}

/// Parses a schedule (seconds optional).
pub fn parse_schedule(schedule: &str) -> Result<Cron> {
    Cron::from_str(schedule)
        .map_err(|e| MigrateError::invalid("schedule", format!("{schedule:?}: {e}")))
}

/// When a schedule fires next after `after`.
pub fn next_after(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

/// The advisory-lock key of a job (any process computes the same).
pub fn lock_key(name: &str) -> i64 {
    let d = sha2::Sha256::digest(format!("acode-migrate job\0{name}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

/// The jobs stored in one target database.
#[derive(Clone)]
pub struct Jobs {
    url: String,
    target: Target,
}

const HISTORY_COLUMNS: &str = "id, job_name, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
    to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), duration_ms, status,
    rows_inserted, rows_updated, rows_deleted, error";

fn history_row(r: &tokio_postgres::Row) -> RunRecord {
    RunRecord {
        id: r.get(0),
        job: r.get(1),
        started_at: r.get(2),
        finished_at: r.get(3),
        duration_ms: r.get(4),
        status: r.get(5),
        rows_inserted: r.get(6),
        rows_updated: r.get(7),
        rows_deleted: r.get(8),
        error: r.get(9),
    }
}

impl Jobs {
    pub fn new(target_url: &str) -> Result<Jobs> {
        Ok(Jobs {
            url: target_url.to_owned(),
            target: Target::new(target_url, "public")?,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        let mut client = self.target.client().await?;
        crate::control::ensure(&mut client).await?;
        Ok(client)
    }

    /// Stores a new job. The schedule and the source are checked now.
    pub async fn create(
        &self,
        name: &str,
        schedule: &str,
        source: &str,
        options: Options,
        log_path: Option<&Path>,
    ) -> Result<Job> {
        if name.trim().is_empty() {
            return Err(MigrateError::invalid("job name", "must not be empty"));
        }
        parse_schedule(schedule)?;
        let path = parse_source(source)?;
        let path = std::path::absolute(&path).unwrap_or(path);
        crate::schema::open_source(&path)?;
        let log = match log_path {
            Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.to_owned()),
            None => path.with_file_name(format!("acode-migrate-job-{}.log", sanitize(name))),
        };
        let client = self.client().await?;
        let source = format!("sqlite:{}", path.display());
        let opts = serde_json::to_value(&options).unwrap_or_default();
        let log_text = log.display().to_string();
        let n = client
            .execute(
                "INSERT INTO acode_migrate.synchronization_jobs (name, schedule, source, options, log_path)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                &[&name, &schedule, &source, &opts, &log_text],
            )
            .await
            .map_err(MigrateError::pg("storing the job"))?;
        if n == 0 {
            return Err(MigrateError::invalid(
                "job name",
                format!("a job named {name:?} exists already"),
            ));
        }
        self.get(name).await
    }

    pub async fn list(&self) -> Result<Vec<Job>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, schedule, source, options, log_path, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 FROM acode_migrate.synchronization_jobs ORDER BY name",
                &[],
            )
            .await
            .map_err(MigrateError::pg("reading jobs"))?;
        Ok(rows
            .iter()
            .map(|r| Job {
                name: r.get(0),
                schedule: r.get(1),
                source: r.get(2),
                options: serde_json::from_value(r.get::<_, serde_json::Value>(3))
                    .unwrap_or_default(),
                log_path: r.get(4),
                created_at: r.get(5),
            })
            .collect())
    }

    pub async fn get(&self, name: &str) -> Result<Job> {
        self.list()
            .await?
            .into_iter()
            .find(|j| j.name == name)
            .ok_or_else(|| MigrateError::NotFound {
                what: "job",
                name: name.to_owned(),
            })
    }

    /// The job, when it runs next, whether it runs now, its last runs.
    pub async fn status(&self, name: &str, history: i64) -> Result<JobStatus> {
        let job = self.get(name).await?;
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {HISTORY_COLUMNS} FROM acode_migrate.sync_run_history WHERE job_name = $1 ORDER BY id DESC LIMIT $2"),
                &[&name, &history],
            )
            .await
            .map_err(MigrateError::pg("reading run history"))?;
        let running: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                   AND ((classid::bigint << 32) | objid::bigint) = $1)",
                &[&lock_key(name)],
            )
            .await
            .map_err(MigrateError::pg("reading job locks"))?
            .get(0);
        let next = parse_schedule(&job.schedule)
            .ok()
            .and_then(|c| next_after(&c, Utc::now()))
            .map(|t| t.to_rfc3339());
        Ok(JobStatus {
            job,
            next_run_at: next,
            running,
            history: rows.iter().map(history_row).collect(),
        })
    }

    /// Runs a job now, unless it is running already (then
    /// [`MigrateError::JobBusy`], recorded as `skipped`). A failed run is
    /// recorded and logged, and its error returned.
    pub async fn run(&self, name: &str) -> Result<RunRecord> {
        let job = self.get(name).await?;
        let started_at = Utc::now();
        let started = Instant::now();
        // The lock's connection is not the pool's: concurrent runs must not
        // starve each other of the connections their work needs.
        let lock = self.target.dedicated().await?;
        let got: bool = lock
            .query_one("SELECT pg_try_advisory_lock($1)", &[&lock_key(name)])
            .await
            .map_err(MigrateError::pg("locking the job"))?
            .get(0);
        let mut log = JobLog::open(Path::new(&job.log_path), name);
        if !got {
            log.line(
                "skipped",
                serde_json::json!({ "reason": "already running" }),
            );
            self.record(
                name,
                started_at,
                started,
                "skipped",
                None,
                Some("already running"),
            )
            .await?;
            return Err(MigrateError::JobBusy(name.to_owned()));
        }
        log.line(
            "start",
            serde_json::json!({ "source": job.source, "schedule": job.schedule }),
        );
        let outcome = async {
            let m = Migrator::new(&job.source, &self.url)?;
            m.run(&job.options, &crate::NoProgress).await
        }
        .await;
        let record = match &outcome {
            Ok(report) => {
                for t in &report.tables {
                    log.line("table", serde_json::to_value(t).unwrap_or_default());
                }
                let r = self
                    .record(name, started_at, started, "ok", Some(report), None)
                    .await;
                log.line(
                    "finish",
                    serde_json::json!({ "status": "ok", "copied": report.copied, "deleted": report.deleted, "duration_ms": report.duration_ms }),
                );
                r
            }
            Err(e) => {
                let message = format!("{}: {e}", e.code());
                log.line("error", serde_json::json!({ "status": "failed", "code": e.code().code(), "message": e.to_string() }));
                self.record(name, started_at, started, "failed", None, Some(&message))
                    .await
            }
        };
        let _ = lock
            .execute("SELECT pg_advisory_unlock($1)", &[&lock_key(name)])
            .await;
        let record = record?;
        outcome.map(|_| record)
    }

    async fn record(
        &self,
        name: &str,
        started_at: DateTime<Utc>,
        started: Instant,
        status: &str,
        report: Option<&RunReport>,
        error: Option<&str>,
    ) -> Result<RunRecord> {
        let client = self.client().await?;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let sum =
            |f: fn(&crate::TableRun) -> u64| report.map_or(0, |r| n(r.tables.iter().map(f).sum()));
        let tables = report.map_or(serde_json::json!([]), |r| {
            serde_json::to_value(&r.tables).unwrap_or_default()
        });
        let duration = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO acode_migrate.sync_run_history
                       (job_name, started_at, finished_at, duration_ms, status, rows_inserted, rows_updated, rows_deleted, tables, error)
                     VALUES ($1, $2, now(), $3, $4, $5, $6, $7, $8, $9) RETURNING {HISTORY_COLUMNS}"
                ),
                &[
                    &name,
                    &started_at,
                    &duration,
                    &status,
                    &sum(|t| t.counts.inserted),
                    &sum(|t| t.counts.updated),
                    &sum(|t| t.counts.deleted),
                    &tables,
                    &error,
                ],
            )
            .await
            .map_err(MigrateError::pg("recording the run"))?;
        Ok(history_row(&row))
    }

    /// Runs every job on its schedule until `shutdown` completes, then
    /// waits for the runs under way. Jobs created meanwhile are picked up
    /// within seconds. A run that would overlap the same job's previous
    /// one is skipped (and recorded so).
    pub async fn daemon(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        const RELOAD: chrono::TimeDelta = chrono::TimeDelta::seconds(5);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut next: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut running = tokio::task::JoinSet::new();
        loop {
            let now = Utc::now();
            let jobs = match self.list().await {
                Ok(jobs) => jobs,
                Err(e) => {
                    // The target may be restarting: keep the schedule and
                    // the runs under way, and look again.
                    tracing::warn!("listing jobs failed, trying again: {e}");
                    tokio::select! {
                        () = tokio::time::sleep(RELOAD.to_std().unwrap_or_default()) => continue,
                        () = &mut shutdown => break,
                    }
                }
            };
            let mut crons = HashMap::new();
            for job in &jobs {
                match parse_schedule(&job.schedule) {
                    Ok(c) => {
                        if !next.contains_key(&job.name)
                            && let Some(t) = next_after(&c, now)
                        {
                            next.insert(job.name.clone(), t);
                        }
                        crons.insert(job.name.clone(), c);
                    }
                    Err(e) => tracing::warn!(job = %job.name, "{e}"),
                }
            }
            next.retain(|name, _| crons.contains_key(name));
            let wake = next
                .values()
                .min()
                .copied()
                .unwrap_or(now + RELOAD)
                .min(now + RELOAD);
            let wait = (wake - now).to_std().unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => break,
            }
            let now = Utc::now();
            for (name, at) in next.iter_mut() {
                if *at <= now {
                    let jobs = self.clone();
                    let job = name.clone();
                    running.spawn(async move {
                        match jobs.run(&job).await {
                            Ok(_) | Err(MigrateError::JobBusy(_)) => {}
                            Err(e) => tracing::warn!(job = %job, "run failed: {e}"),
                        }
                    });
                    if let Some(c) = crons.get(name)
                        && let Some(t) = next_after(c, now)
                    {
                        *at = t;
                    }
                }
            }
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
        Ok(())
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The JSON-lines log of one job run. Logging never fails a run: a log
/// that cannot be written is reported through tracing.
struct JobLog {
    file: Option<std::fs::File>,
    job: String,
    path: PathBuf,
}

impl JobLog {
    fn open(path: &Path, job: &str) -> JobLog {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        if let Err(e) = &file {
            tracing::warn!(path = %path.display(), "cannot open the job log: {e}");
        }
        JobLog {
            file: file.ok(),
            job: job.to_owned(),
            path: path.to_owned(),
        }
    }

    fn line(&mut self, event: &str, data: serde_json::Value) {
        let mut line =
            serde_json::json!({ "ts": Utc::now().to_rfc3339(), "job": self.job, "event": event });
        if let (Some(obj), serde_json::Value::Object(extra)) = (line.as_object_mut(), data) {
            obj.extend(extra);
        }
        if let Some(f) = &mut self.file
            && let Err(e) = writeln!(f, "{line}")
        {
            tracing::warn!(path = %self.path.display(), "cannot write the job log: {e}");
        }
    }
}

//! End-to-end upload: a device's pending outbox drained into PostgreSQL
//! through the direct transport (the same ingest the server runs), against
//! the raw rates of loading the same rows into PostgreSQL with multi-row
//! `INSERT … ON CONFLICT` in batches of the same size and with binary
//! `COPY`, measured in the same run (BENCH.md). Also: the latency of one
//! 50-change batch (push + settle), the cost of the conflict decision per
//! change, and peak memory as the queue grows.

use std::time::{Duration, Instant};

use acode_protocol::conflict::{Contender, Policy, decide};
use acode_protocol::{Hlc, Privacy};
use acode_store::{NewChat, OpenOptions, Store};
use acode_sync::upload::UploadOutcome;
use acode_sync::{EngineConfig, PostgresTransport, Transport};
use acode_testkit::TestDb;
use anyhow::Context;
use tokio_postgres::NoTls;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use crate::report::Row;

#[derive(clap::Args)]
pub struct Args {
    /// Queue sizes to drain.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u32, 100_000])]
    rows: Vec<u32>,
    /// Batch sizes to drain them with.
    #[arg(long, value_delimiter = ',', default_values_t = [50u32, 500])]
    batch: Vec<u32>,
}

pub fn run(args: &Args, quick: bool) -> anyhow::Result<Vec<Row>> {
    let (sizes, batches) = if quick {
        (vec![1_000, 3_000], vec![50, 500])
    } else {
        (args.rows.clone(), args.batch.clone())
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for &batch in &batches {
        for &n in &sizes {
            // Several runs where one is short (and noisy); one of the large.
            let runs = if quick || n > 10_000 { 1 } else { 3 };
            rows.extend(rt.block_on(drain_vs_references(n, batch, runs))?);
        }
    }
    rows.push(rt.block_on(batch_latency(if quick { 5 } else { 50 }))?);
    rows.push(conflict_decision(if quick { 100_000 } else { 10_000_000 }));
    Ok(rows)
}

fn ratio_row(
    figure: String,
    value: f64,
    unit: &'static str,
    reference: &str,
    reference_value: f64,
    target: String,
    meets: bool,
) -> Row {
    Row {
        figure,
        value,
        unit,
        reference: reference.into(),
        reference_value,
        ratio: value / reference_value,
        target,
        meets_target: meets,
    }
}

/// A device with `n` pending chats.
fn device(dir: &std::path::Path, n: u32) -> anyhow::Result<Store> {
    let mut store = Store::open(dir.join("device.db"), &OpenOptions::default())?;
    store.write(|tx| {
        for i in 0..n {
            tx.create_chat(&NewChat::new(format!(
                "chat number {i} with a realistic title"
            )))?;
        }
        Ok(())
    })?;
    Ok(store)
}

/// A transport that adds up the time its pushes take (the remote's share
/// of a drain; the rest is the device's).
struct Timed<T> {
    inner: T,
    pushing: std::sync::Mutex<Duration>,
}

impl<T: Transport> Transport for Timed<T> {
    async fn push(
        &self,
        key: acode_protocol::Id,
        request: &acode_protocol::PushRequest,
    ) -> Result<acode_protocol::PushResponse, acode_sync::TransportError> {
        let started = Instant::now();
        let answer = self.inner.push(key, request).await;
        *self.pushing.lock().unwrap_or_else(|p| p.into_inner()) += started.elapsed();
        answer
    }

    async fn pull(
        &self,
        cursor: &str,
        limit: u32,
        wait: Option<Duration>,
    ) -> Result<acode_protocol::PullPage, acode_sync::TransportError> {
        self.inner.pull(cursor, limit, wait).await
    }
}

/// One timed drain of `n` pending changes into a fresh database.
struct Drained {
    took: Duration,
    /// The part of `took` spent in pushes (the remote's share).
    pushing: Duration,
    /// Growth of the process's peak RSS during the drain, in KiB.
    rss_growth: u64,
    rss_before: u64,
}

async fn drain_once(n: u32, batch: u32) -> anyhow::Result<Drained> {
    let db = TestDb::create();
    let dir = tempfile::tempdir()?;
    let mut store = device(dir.path(), n)?;
    let direct = PostgresTransport::new(&db.url(), "bench", store.device_id())?;
    direct.remote().migrate().await?;
    let transport = Timed {
        inner: direct,
        pushing: std::sync::Mutex::new(Duration::ZERO),
    };
    let cfg = EngineConfig {
        batch_size: batch as usize,
        ..EngineConfig::default()
    };
    let lease = store
        .write(|tx| tx.acquire_lease("bench", cfg.now(), 3_600_000, |_| false))?
        .context("taking the lease")?;
    // Warm-up, untimed: the device registers and a pooled connection
    // opens (an empty pull); the server's dirty pages from the set-up (or
    // an earlier case) are written out.
    let cursor = store.read(|tx| tx.cursor())?;
    transport.pull(&cursor, 1, None).await?;
    let (client, conn) = tokio_postgres::connect(&db.url(), NoTls).await?;
    tokio::spawn(conn);
    client.batch_execute("CHECKPOINT").await?;
    *transport.pushing.lock().unwrap_or_else(|p| p.into_inner()) = Duration::ZERO;

    let rss_before = peak_rss_kib();
    let started = Instant::now();
    // Upload only (the download of the echoes is not part of a drain).
    let uploaded = drain_counted(&mut store, &transport, &cfg, lease.epoch).await?;
    let took = started.elapsed();
    anyhow::ensure!(uploaded == n as usize, "uploaded {uploaded} of {n}");
    let pushing = *transport.pushing.lock().unwrap_or_else(|p| p.into_inner());
    Ok(Drained {
        took,
        pushing,
        rss_growth: peak_rss_kib().saturating_sub(rss_before),
        rss_before,
    })
}

/// Drains `store` until idle; the changes uploaded. Anything but a clean
/// drain (a failed batch, offline) is an error.
pub(crate) async fn drain_counted<T: Transport>(
    store: &mut Store,
    transport: &T,
    cfg: &EngineConfig,
    epoch: i64,
) -> anyhow::Result<usize> {
    let mut uploaded = 0;
    let mut failed = None;
    let stopped =
        acode_sync::upload::drain(store, transport, cfg, epoch, |outcome| match outcome {
            UploadOutcome::Settled(c) => uploaded += c.uploaded,
            other => failed = failed.take().or_else(|| Some(other.clone())),
        })
        .await?;
    if let Some(other) = failed {
        anyhow::bail!("upload stopped: {other:?}");
    }
    anyhow::ensure!(
        stopped == UploadOutcome::Idle,
        "upload stopped: {stopped:?}"
    );
    Ok(uploaded)
}

/// `runs` drains of `n` (each on a fresh database and device), the median
/// reported, against the references measured once in the same run.
async fn drain_vs_references(n: u32, batch: u32, runs: usize) -> anyhow::Result<Vec<Row>> {
    let mut all = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        all.push(drain_once(n, batch).await?);
    }
    // Peak RSS is the process's high-water mark: the first drain shows the
    // growth, later ones only what they add beyond it.
    let rss_growth = all.iter().map(|d| d.rss_growth).max().unwrap_or(0);
    let rss_before = all.first().map_or(0, |d| d.rss_before);
    all.sort_by_key(|d| d.took);
    let Drained {
        took: drained,
        pushing,
        ..
    } = all.swap_remove(all.len() / 2);
    let db = TestDb::create();
    let rate = f64::from(n) / drained.as_secs_f64();

    let (client, conn) = tokio_postgres::connect(&db.url(), NoTls).await?;
    tokio::spawn(conn);
    let insert_rate = f64::from(n) / insert_reference(&client, n, batch).await?.as_secs_f64();
    let copy_rate = f64::from(n) / copy_reference(&client, n).await?.as_secs_f64();
    let figure = if runs > 1 {
        format!("drain {n} pending, batch {batch}, median of {runs}")
    } else {
        format!("drain {n} pending, batch {batch}")
    };
    let mut rows = vec![
        ratio_row(
            figure.clone(),
            rate,
            "changes/s",
            &format!("multi-row INSERT … ON CONFLICT, batches of {batch}"),
            insert_rate,
            if batch == 500 {
                "≥ 30,000/s and ≥ 0.30".into()
            } else {
                "-".into()
            },
            batch != 500 || (rate >= 30_000.0 && rate / insert_rate >= 0.30),
        ),
        ratio_row(
            figure,
            rate,
            "changes/s",
            "binary COPY",
            copy_rate,
            "-".into(),
            true,
        ),
    ];
    rows.push(ratio_row(
        format!("of which pushing (remote ingest), {n} pending, batch {batch}"),
        pushing.as_secs_f64() * 1000.0,
        "ms",
        "the whole drain",
        drained.as_secs_f64() * 1000.0,
        "-".into(),
        true,
    ));
    if n == 10_000 {
        rows.push(ratio_row(
            format!("10,000 pending drained, batch {batch}"),
            drained.as_secs_f64() * 1000.0,
            "ms",
            "target",
            500.0,
            // The targets are set at batch 500 (BENCH.md).
            if batch == 500 {
                "< 500 ms".into()
            } else {
                "-".into()
            },
            batch != 500 || drained < Duration::from_millis(500),
        ));
    }
    rows.push(ratio_row(
        format!("peak RSS growth draining {n}, batch {batch}"),
        rss_growth as f64 / 1024.0,
        "MiB",
        "peak RSS before",
        rss_before as f64 / 1024.0,
        "flat as the queue grows".into(),
        true,
    ));
    Ok(rows)
}

/// The same rows as the mirror would hold, `batch` rows per multi-row
/// `INSERT … ON CONFLICT DO UPDATE` statement.
async fn insert_reference(
    client: &tokio_postgres::Client,
    n: u32,
    batch: u32,
) -> anyhow::Result<Duration> {
    client
        .batch_execute(
            "CREATE TABLE ref_insert (tenant_id text, id text, title text, privacy text,
                 created_at timestamptz, updated_at timestamptz, version bigint, hlc text,
                 origin_device text, PRIMARY KEY (tenant_id, id))",
        )
        .await?;
    let rows: Vec<[String; 4]> = (0..n).map(reference_row).collect();
    let started = Instant::now();
    for chunk in rows.chunks(batch as usize) {
        let mut sql = String::from(
            "INSERT INTO ref_insert (tenant_id, id, title, privacy, created_at, updated_at, version, hlc, origin_device) VALUES ",
        );
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
        for (i, r) in chunk.iter().enumerate() {
            let b = i * 4;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('t', ${}, ${}, 'full', ${}::text::timestamptz, ${}::text::timestamptz, 1, ${}, 'dev')",
                b + 1,
                b + 2,
                b + 3,
                b + 3,
                b + 4
            ));
            params.extend([
                &r[0] as &(dyn tokio_postgres::types::ToSql + Sync),
                &r[1],
                &r[2],
                &r[3],
            ]);
        }
        sql.push_str(" ON CONFLICT (tenant_id, id) DO UPDATE SET title = excluded.title, version = ref_insert.version + 1");
        client.execute(sql.as_str(), &params).await?;
    }
    Ok(started.elapsed())
}

async fn copy_reference(client: &tokio_postgres::Client, n: u32) -> anyhow::Result<Duration> {
    client
        .batch_execute(
            "CREATE TABLE ref_copy (tenant_id text, id text, title text, privacy text,
                 created_at text, version bigint, hlc text, PRIMARY KEY (tenant_id, id))",
        )
        .await?;
    let rows: Vec<[String; 4]> = (0..n).map(reference_row).collect();
    let started = Instant::now();
    let sink = client
        .copy_in("COPY ref_copy FROM STDIN (FORMAT binary)")
        .await?;
    let types = [
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for r in &rows {
        writer
            .as_mut()
            .write(&[&"t", &r[0], &r[1], &"full", &r[2], &1i64, &r[3]])
            .await?;
    }
    writer.finish().await?;
    Ok(started.elapsed())
}

fn reference_row(i: u32) -> [String; 4] {
    let id = acode_protocol::Id::new().to_string();
    [
        id,
        format!("chat number {i} with a realistic title"),
        "2026-11-22T01:02:03.123Z".into(),
        format!("2026-11-22T01:02:03.123Z-0000-dev{i}"),
    ]
}

/// One 50-change batch pushed and settled (`upload_once`), repeated.
async fn batch_latency(runs: u32) -> anyhow::Result<Row> {
    let db = TestDb::create();
    let dir = tempfile::tempdir()?;
    let mut store = device(dir.path(), 0)?;
    let transport = PostgresTransport::new(&db.url(), "bench", store.device_id())?;
    transport.remote().migrate().await?;
    let cfg = EngineConfig::default();
    let lease = store
        .write(|tx| tx.acquire_lease("bench", cfg.now(), 3_600_000, |_| false))?
        .context("taking the lease")?;
    let mut times = Vec::new();
    for run in 0..runs + 3 {
        store.write(|tx| {
            for i in 0..50 {
                tx.create_chat(&NewChat::new(format!("run {run} chat {i}")))?;
            }
            Ok(())
        })?;
        let started = Instant::now();
        acode_sync::upload::upload_once(&mut store, &transport, &cfg, lease.epoch).await?;
        if run >= 3 {
            times.push(started.elapsed()); // the first three warm up
        }
    }
    times.sort();
    let p50 = times[times.len() / 2].as_secs_f64() * 1000.0;
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)].as_secs_f64() * 1000.0;
    Ok(ratio_row(
        format!("one 50-change batch, push + settle, p50 ({runs} runs)"),
        p50,
        "ms",
        "p99",
        p99,
        "< 20 ms".into(),
        p50 < 20.0,
    ))
}

/// The conflict decision alone, per change (the version check that
/// precedes it is part of the ingest measured above).
fn conflict_decision(n: u32) -> Row {
    let side = |millis: i64, deleted: bool| Contender {
        deleted,
        hlc: Hlc {
            millis,
            counter: 0,
            device: "device".into(),
        },
        privacy: Some(Privacy::Full),
    };
    let (a, b) = (side(1, false), side(2, false));
    let started = Instant::now();
    let mut local = 0u32;
    for i in 0..n {
        let policy = if i % 3 == 0 {
            Policy::LastWriteWins
        } else {
            Policy::RemoteWins
        };
        if decide(
            std::hint::black_box(policy),
            std::hint::black_box(&a),
            std::hint::black_box(&b),
        ) == acode_protocol::Winner::Local
        {
            local += 1;
        }
    }
    std::hint::black_box(local);
    let per = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    ratio_row(
        "conflict decision per change".into(),
        per,
        "µs",
        "target",
        10.0,
        "< 10 µs".into(),
        per < 10.0,
    )
}

/// Peak resident set size of this process so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

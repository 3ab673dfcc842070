//! The sync server (`acode serve`, in process, on the benchmark's own
//! PostgreSQL database):
//!
//! - delivery: a chat written on device A, pushed with `sync now`, until it
//!   is in device B's SQLite, B running the worker (long-poll), p50 and
//!   p99 over many writes; the reference is A's push alone, same run;
//! - push throughput: 20 devices draining their queues at once through
//!   HTTP, against the same 20 devices and data through the direct
//!   PostgreSQL transport, same run.

use std::path::Path;
use std::time::{Duration, Instant};

use acode_remote::Remote;
use acode_server::{Server, ServerOptions};
use acode_store::{NewChat, OpenOptions, Store};
use acode_sync::{EngineConfig, HttpTransport, PostgresTransport, SyncEngine, Transport};
use acode_testkit::TestDb;
use anyhow::Context;

use crate::report::Row;

#[derive(clap::Args)]
pub struct Args {
    /// Writes timed from device A to device B.
    #[arg(long, default_value_t = 200)]
    writes: u32,
    /// Concurrent pushing devices.
    #[arg(long, default_value_t = 20)]
    devices: u32,
    /// Pending changes per device.
    #[arg(long, default_value_t = 1000)]
    per_device: u32,
}

pub fn run(args: &Args, quick: bool) -> anyhow::Result<Vec<Row>> {
    let (writes, devices, per_device) = if quick {
        (10, 4, 50)
    } else {
        (args.writes, args.devices, args.per_device)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows = rt.block_on(delivery(writes))?;
    rows.push(rt.block_on(throughput(devices, per_device))?);
    Ok(rows)
}

/// A migrated database and a server on it.
async fn server(db: &TestDb) -> anyhow::Result<(Remote, Server)> {
    let remote = Remote::new(&db.url(), 2)?;
    remote.migrate().await?;
    remote.add_tenant("bench").await?;
    let server = Server::start(ServerOptions {
        listen: "127.0.0.1:0".parse()?,
        database_url: db.url(),
        pool_size: 16,
        ..ServerOptions::default()
    })
    .await?;
    Ok((remote, server))
}

async fn http_device(remote: &Remote, server: &Server) -> anyhow::Result<HttpTransport> {
    let device = remote.add_device("bench", "bench").await?;
    HttpTransport::new(&format!("http://{}", server.addr()), &device.token, None)
        .map_err(anyhow::Error::msg)
}

fn store(dir: &Path, name: &str) -> anyhow::Result<Store> {
    Ok(Store::open(dir.join(name), &OpenOptions::default())?)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn delivery(writes: u32) -> anyhow::Result<Vec<Row>> {
    let db = TestDb::create();
    let (remote, server) = server(&db).await?;
    let dir = tempfile::tempdir()?;
    let mut a = store(dir.path(), "a.db")?;
    let a_net = http_device(&remote, &server).await?;
    let b_net = http_device(&remote, &server).await?;
    let b = store(dir.path(), "b.db")?;
    let b_path = b.path().to_path_buf();
    let cfg = EngineConfig::default();
    let worker = SyncEngine::start(b, b_net, cfg.clone())?;
    let watch = rusqlite::Connection::open(&b_path)?;
    let arrived = |id: &str| -> anyhow::Result<bool> {
        Ok(
            watch.query_row("SELECT count(*) FROM chats WHERE id = ?1", [id], |r| {
                r.get::<_, i64>(0)
            })? > 0,
        )
    };
    let mut seen = Vec::with_capacity(writes as usize);
    let mut pushes = Vec::with_capacity(writes as usize);
    // Warm-up: connections, the worker's first round.
    for round in 0..writes + 3 {
        let chat = a.write(|tx| tx.create_chat(&NewChat::new(format!("delivered {round}"))))?;
        let id = chat.id.to_string();
        let written = Instant::now();
        acode_sync::sync_now(&mut a, &a_net, &cfg).await?;
        let pushed = written.elapsed();
        let deadline = written + Duration::from_secs(30);
        while !arrived(&id)? {
            anyhow::ensure!(Instant::now() < deadline, "chat {id} never reached B");
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        if round >= 3 {
            seen.push(written.elapsed());
            pushes.push(pushed);
        }
    }
    worker.stop().await?;
    server.stop().await?;
    seen.sort();
    pushes.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p99) = (percentile(&seen, 0.5), percentile(&seen, 0.99));
    let push50 = percentile(&pushes, 0.5);
    Ok(vec![
        Row {
            figure: format!(
                "A write → in B's SQLite via server + long-poll, p50 ({writes} writes)"
            ),
            value: ms(p50),
            unit: "ms",
            reference: "A's push (sync now) alone, p50".into(),
            reference_value: ms(push50),
            ratio: ms(p50) / ms(push50),
            target: "-".into(),
            meets_target: true,
        },
        Row {
            figure: format!(
                "A write → in B's SQLite via server + long-poll, p99 ({writes} writes)"
            ),
            value: ms(p99),
            unit: "ms",
            reference: "A's push (sync now) alone, p99".into(),
            reference_value: ms(percentile(&pushes, 0.99)),
            ratio: ms(p99) / ms(percentile(&pushes, 0.99)),
            target: "p99 < 1000 ms".into(),
            meets_target: p99 < Duration::from_secs(1),
        },
    ])
}

/// `devices` stores with `per_device` pending chats each.
fn devices(dir: &Path, devices: u32, per_device: u32) -> anyhow::Result<Vec<Store>> {
    (0..devices)
        .map(|d| {
            let mut s = store(dir, &format!("device{d}.db"))?;
            s.write(|tx| {
                for i in 0..per_device {
                    tx.create_chat(&NewChat::new(format!(
                        "device {d} chat {i} with a realistic title"
                    )))?;
                }
                Ok(())
            })?;
            Ok(s)
        })
        .collect()
}

/// Drains every store at once, each through its own transport; the
/// changes per second over the whole.
async fn drain_all<T: Transport + 'static>(stores: Vec<(Store, T)>) -> anyhow::Result<f64> {
    let cfg = EngineConfig::default();
    let total: usize = stores.len();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for (mut store, net) in stores {
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            let lease = store
                .write(|tx| tx.acquire_lease("bench", cfg.now(), 3_600_000, |_| false))?
                .context("taking the lease")?;
            let uploaded =
                crate::sync_drain::drain_counted(&mut store, &net, &cfg, lease.epoch).await?;
            anyhow::Ok(uploaded)
        }));
    }
    let mut uploaded = 0;
    for t in tasks {
        uploaded += t.await??;
    }
    Ok(uploaded as f64 / started.elapsed().as_secs_f64())
}

async fn throughput(n: u32, per_device: u32) -> anyhow::Result<Row> {
    // Through HTTP.
    let http_db = TestDb::create();
    let (remote, server) = server(&http_db).await?;
    let dir = tempfile::tempdir()?;
    let mut over_http = Vec::new();
    for s in devices(dir.path(), n, per_device)? {
        over_http.push((s, http_device(&remote, &server).await?));
    }
    let http_rate = drain_all(over_http).await?;
    server.stop().await?;
    // The same devices and data, direct.
    let direct_db = TestDb::create();
    Remote::new(&direct_db.url(), 1)?.migrate().await?;
    let dir = tempfile::tempdir()?;
    let mut direct = Vec::new();
    for s in devices(dir.path(), n, per_device)? {
        let t = PostgresTransport::new(&direct_db.url(), "bench", s.device_id())?;
        direct.push((s, t));
    }
    let direct_rate = drain_all(direct).await?;
    Ok(Row {
        figure: format!("{n} devices pushing at once through HTTP ({per_device} changes each)"),
        value: http_rate,
        unit: "changes/s",
        reference: "the same through the direct PostgreSQL transport".into(),
        reference_value: direct_rate,
        ratio: http_rate / direct_rate,
        target: "≥ 0.70".into(),
        meets_target: http_rate / direct_rate >= 0.70,
    })
}

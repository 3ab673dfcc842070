//! `acode serve`: the sync server (DESIGN.md §6, PROTOCOL.md).
//!
//! A thin HTTP layer over `acode-remote`, which holds every rule: a request
//! is authenticated by its device token ([`acode_remote::Remote::authenticate`],
//! no cache, so a revoked token stops working at once), checked for its
//! schema version, and handed to the same ingest and feed code the direct
//! transport runs. Instances keep no state of their own: PostgreSQL holds
//! it, and `LISTEN/NOTIFY` ([`acode_remote::FeedListener`]) wakes the
//! long-polls of every instance when a push lands on any of them.
//!
//! Routes: `POST /v1/push`, `GET /v1/pull` (`wait` long-poll), `GET
//! /health`, `GET /metrics`. Shutdown is graceful: the listener stops
//! accepting, waiting long-polls answer at once, and requests in flight
//! finish.

mod error;
mod ops;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acode_config::HealthConfig;
use acode_health::checks::postgres::{PgTarget, PoolCheck, PostgresCheck, TransactionsCheck};
use acode_health::checks::redis::RedisCheck;
use acode_health::metrics::Metrics;
use acode_health::{Registry, Thresholds};
use acode_protocol::ErrorCode;
use acode_remote::{FeedListener, Remote};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::ApiError;

/// How the server runs. `Default` gives the documented defaults with no
/// database; the CLI fills it from flags and `ACODE_SERVER_*`.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub database_url: String,
    pub redis_url: Option<String>,
    /// Largest request body; larger is 413.
    pub max_body_bytes: usize,
    /// Most changes in one push; more is 413.
    pub max_changes: usize,
    /// How long one call to PostgreSQL may take before the request answers
    /// 503 (retryable); a long-poll's wait comes on top.
    pub request_timeout: Duration,
    /// The longest `wait` a pull may ask for.
    pub max_wait: Duration,
    /// PostgreSQL connections of this instance.
    pub pool_size: usize,
    /// How often this instance purges tombstones every active device has
    /// pulled past (DESIGN.md §15 rule 10); `None`: never.
    pub purge_every: Option<Duration>,
    /// A device that has not pulled for this long no longer holds back
    /// the purge (it resyncs from zero when it returns).
    pub device_active_within: Duration,
    /// Long-polls one device may hold open at once on this instance; one
    /// more is 429 (a client bug should not tie up the server).
    pub max_waits_per_device: usize,
    /// Serve HTTPS with this certificate chain and key (PEM).
    pub tls: Option<TlsFiles>,
    pub health: HealthConfig,
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            database_url: String::new(),
            redis_url: None,
            max_body_bytes: 8 * 1024 * 1024,
            max_changes: 1000,
            request_timeout: Duration::from_secs(30),
            max_wait: Duration::from_secs(60),
            pool_size: 16,
            max_waits_per_device: 4,
            purge_every: Some(Duration::from_secs(3600)),
            device_active_within: Duration::from_secs(30 * 86_400),
            tls: None,
            health: HealthConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Config(String),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS certificate or key: {0}")]
    Tls(String),
    #[error("server stopped: {0}")]
    Serve(String),
}

impl ServerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ServerError::Config(_) | ServerError::Tls(_) => ErrorCode::ConfigInvalidValue,
            ServerError::Bind { .. } | ServerError::Serve(_) => ErrorCode::UsageInvalid,
        }
    }
}

/// What every handler shares.
pub(crate) struct App {
    pub remote: Remote,
    pub feed: FeedListener,
    pub metrics: Metrics,
    pub health: Registry,
    pub opts: ServerOptions,
    /// Flips to true when the server begins to stop.
    pub stopping: watch::Receiver<bool>,
    /// Long-polls waiting now, by device id.
    pub waiting: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Server {
    /// Binds, starts listening for feed notifications, and serves in the
    /// background. The server schema must exist (`acode admin migrate`).
    pub async fn start(opts: ServerOptions) -> Result<Server, ServerError> {
        let remote = Remote::new(&opts.database_url, opts.pool_size)
            .map_err(|e| ServerError::Config(format!("--database-url: {e}")))?;
        let health = health_registry(&opts, &remote)?;
        let feed = FeedListener::start(&remote);
        if !feed.ready(Duration::from_secs(5)).await {
            tracing::warn!(
                target = %remote.target(),
                "not yet listening for feed notifications: long-polls wake on their timeout until PostgreSQL is reachable"
            );
        }
        let (stop, stopping) = watch::channel(false);
        if let Some(every) = opts.purge_every {
            tokio::spawn(purge_loop(
                remote.clone(),
                every,
                opts.device_active_within,
                stopping.clone(),
            ));
        }
        let app = Arc::new(App {
            remote,
            feed,
            metrics: Metrics::new(),
            health,
            opts: opts.clone(),
            stopping: stopping.clone(),
            waiting: Default::default(),
        });
        let router = routes::router(app);
        let std_listener =
            std::net::TcpListener::bind(opts.listen).map_err(|source| ServerError::Bind {
                addr: opts.listen,
                source,
            })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|source| ServerError::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = std_listener
            .local_addr()
            .map_err(|source| ServerError::Bind {
                addr: opts.listen,
                source,
            })?;
        let task = match &opts.tls {
            None => {
                let listener =
                    tokio::net::TcpListener::from_std(std_listener).map_err(|source| {
                        ServerError::Bind {
                            addr: opts.listen,
                            source,
                        }
                    })?;
                let mut stopping = stopping;
                tokio::spawn(async move {
                    axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            let _ = stopping.wait_for(|s| *s).await;
                        })
                        .await
                        .map_err(|e| ServerError::Serve(e.to_string()))
                })
            }
            Some(files) => {
                let config = tls_config(files).await?;
                let handle = axum_server::Handle::new();
                let shutdown = handle.clone();
                let mut stopping = stopping;
                tokio::spawn(async move {
                    let _ = stopping.wait_for(|s| *s).await;
                    shutdown.graceful_shutdown(None);
                });
                tokio::spawn(async move {
                    axum_server::from_tcp_rustls(std_listener, config)
                        .map_err(|e| ServerError::Serve(e.to_string()))?
                        .handle(handle)
                        .serve(router.into_make_service())
                        .await
                        .map_err(|e| ServerError::Serve(e.to_string()))
                })
            }
        };
        tracing::info!(%addr, tls = opts.tls.is_some(), "acode sync server listening");
        Ok(Server {
            addr,
            tls: opts.tls.is_some(),
            stop,
            task,
        })
    }

    /// Where the server listens (with the port the system chose for `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Stops accepting, answers waiting long-polls, lets requests in
    /// flight finish, and returns when the last one has.
    pub async fn stop(self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(outcome) => outcome,
            Err(e) => Err(ServerError::Serve(e.to_string())),
        }
    }

    /// Runs until `signal` resolves, then stops gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), ServerError> {
        signal.await;
        tracing::info!("stopping: finishing requests in flight");
        self.stop().await
    }
}

/// Purges tombstones every `every` until the server stops. Safe on every
/// instance at once: each tenant's purge holds the tenant's lock.
async fn purge_loop(
    remote: Remote,
    every: Duration,
    active_within: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        match remote.purge_all_tombstones(active_within).await {
            Ok(removed) => tracing::info!(removed, "tombstones purged"),
            Err(e) => {
                tracing::warn!(error = %e, "purging tombstones failed; next try in {every:?}")
            }
        }
    }
}

async fn tls_config(
    files: &TlsFiles,
) -> Result<axum_server::tls_rustls::RustlsConfig, ServerError> {
    install_crypto_provider();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .map_err(|e| {
            ServerError::Tls(format!(
                "{} / {}: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })
}

/// Makes ring the process's TLS crypto provider (the one provider of the
/// whole build). Calling it again does nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The server's checks: PostgreSQL reachable and quick, its pool, long
/// transactions and lock waits, and Redis when configured.
fn health_registry(opts: &ServerOptions, remote: &Remote) -> Result<Registry, ServerError> {
    let t = Thresholds::from_config(&opts.health);
    let pg = PgTarget::new(&opts.database_url, t.timeout)
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let mut registry = Registry::new().with_timeout(t.timeout);
    registry
        .add(PostgresCheck::new(pg.clone(), t.slow_round_trip))
        .add(PoolCheck::deadpool(
            remote.connection_pool().clone(),
            t.pool_usage,
        ))
        .add(TransactionsCheck::new(pg, t.transaction));
    if let Some(url) = opts.redis_url.as_deref().filter(|u| !u.trim().is_empty()) {
        registry.add(
            RedisCheck::new(url, t.slow_round_trip)
                .map_err(|e| ServerError::Config(format!("--redis-url: {e}")))?,
        );
    }
    Ok(registry)
}

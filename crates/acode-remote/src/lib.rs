//! The PostgreSQL side of acode as a library, with no HTTP (DESIGN.md §5).
//!
//! A pushed batch is ingested in one PostgreSQL transaction under the
//! tenant's lock ([`ingest`]): idempotency ledger → version check → conflict
//! policy → mirror-table write → change-feed append. Devices read the
//! compacted feed by cursor ([`feed`]). The sync server (HTTP) and the
//! direct-PostgreSQL transport of `acode-sync` both run exactly this code.
//!
//! Trust: whoever holds the database credentials reaches every tenant. The
//! direct transport is therefore one trust boundary; isolation between
//! tenants is enforced here only for callers that go through [`Remote`]
//! with a [`Device`] (as the server does for each authenticated token).

pub mod auth;
mod cached;
mod change;
mod error;
mod fast;
pub mod feed;
pub mod ingest;
mod mirror;
pub mod notify;
mod schema;
pub mod tenants;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

pub use error::{RemoteError, Result};
pub use notify::{FeedEvent, FeedListener};
pub use schema::latest_version as latest_schema_version;
pub use tenants::Device;

/// A handle on the server database: a connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Remote {
    pool: Pool,
    target: String,
    /// Where the pool connects; the feed listener opens its own connection.
    config: tokio_postgres::Config,
}

/// How long a connection attempt may take before the remote counts as
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Remote {
    /// A pool for `url` (`postgres://…`). Connects lazily: nothing is sent
    /// until the first call.
    pub fn new(url: &str, max_connections: usize) -> Result<Remote> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| RemoteError::BadUrl(format!("{e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("acode");
        }
        let (pool, target) = pool(config.clone(), max_connections)
            .map_err(|e| RemoteError::BadUrl(e.to_string()))?;
        Ok(Remote {
            pool,
            target,
            config,
        })
    }

    /// Where the pool connects (host, port, database; never the password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The connection pool, for the health checks of a server.
    pub fn connection_pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| RemoteError::Unreachable {
            target: self.target.clone(),
            message: e.to_string(),
        })
    }

    /// Creates or upgrades the server schema. Safe to run from several
    /// processes at once (a session advisory lock serialises them).
    pub async fn migrate(&self) -> Result<Vec<String>> {
        let mut client = self.client().await?;
        schema::migrate(&mut client).await
    }
}

/// A lazy pool of at most `max_connections` for `config` (nothing is sent
/// before the first use), and where it connects, for messages: host, port
/// and database, never the password. Also used by the health checks.
pub fn pool(
    config: tokio_postgres::Config,
    max_connections: usize,
) -> std::result::Result<(Pool, String), deadpool_postgres::BuildError> {
    let target = describe(&config);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(max_connections.max(1))
        .build()?;
    Ok((pool, target))
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

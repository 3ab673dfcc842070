//! Statements through the connection's statement cache: each is parsed and
//! planned once per pooled connection, not once per batch, and costs one
//! round trip instead of two. The ingest transaction plans every
//! execution for its own parameters (`plan_cache_mode`, set with its
//! tenant lock). Cached statements outlive transactions: a pooler in
//! front of PostgreSQL must run in session mode.

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

pub(crate) async fn query(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query(&statement, params).await
}

pub(crate) async fn query_opt(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query_opt(&statement, params).await
}

pub(crate) async fn execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.execute(&statement, params).await
}

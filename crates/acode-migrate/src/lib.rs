//! Differential migration of any SQLite database into PostgreSQL
//! (DESIGN.md §11), and validation that both sides are equal.
//!
//! # What it does
//!
//! * **analyze** reads the source catalog ([`schema`]): tables, declared
//!   columns and types, primary and composite keys, foreign keys, indexes;
//!   views and virtual tables are listed as skipped. It measures what each
//!   column really holds ([`stats`]) and maps it to a PostgreSQL type, then
//!   compares every table with the target and reports per table: source
//!   rows, target rows, missing, changed, extra, and problems. The result
//!   is recorded in `acode_migrate.data_differentials`.
//! * **run** creates missing target tables (parents first, in one
//!   transaction), then copies only what differs, chunk by chunk
//!   ([`engine`]), with a checkpoint per table and chunk in
//!   `migration_checkpoints`; afterwards it adds the source's indexes and
//!   foreign keys to the tables it created.
//! * **validate** repeats the comparison without writing, adds full-row
//!   comparisons of a random sample of rows per table, and stores the
//!   report (JSON and Markdown) in `migration_validation_reports`.
//! * **run --track-changes** ([`track`]) keeps a change log in the source
//!   (triggers): once the target holds the source, a run reads only the
//!   rows the log names, and falls back to a full comparison whenever the
//!   log cannot be trusted.
//! * **jobs** ([`jobs`]) are named incremental runs on a cron schedule,
//!   each run recorded in `sync_run_history` and logged as JSON lines.
//!
//! # Choices
//!
//! * **The source is the truth.** A run makes each copied table equal to
//!   its source table: missing rows are inserted, changed rows
//!   overwritten, and target rows whose key is not in the source are
//!   *deleted*. Columns the target has and the source lacks are left alone.
//! * **Keys.** A table is keyed by its declared primary key (single or
//!   composite). A table without one is keyed by its rowid, kept in an
//!   extra target column `acode_rowid` (the rowid is SQLite's identity of
//!   the row; without it two equal rows could not be told apart).
//! * **Types.** INTEGER → `bigint`, REAL → `double precision`, TEXT →
//!   `text`, BLOB → `bytea`, BOOLEAN holding only 0/1 → `boolean`,
//!   NUMERIC/DECIMAL → `double precision` (SQLite stores them as integer
//!   or real), dates → kept in the form they are stored (text stays
//!   `text`, Unix times `bigint`). When values do not fit their declared
//!   type (`'abc'` in an INTEGER column, a blob in a TEXT column, text
//!   that is not UTF-8 or holds NUL), the column falls back to a type that
//!   holds every value without loss (`text`, or `bytea`) and analyze
//!   reports it as a problem. An existing target table's types rule: a
//!   value that does not fit one is an error (`ACODE-MIGRATE-004`) and its
//!   chunk is not written.
//! * **Checksums equal by construction.** Each row is hashed as SHA-256
//!   over a canonical encoding of its *target-typed* values ([`value`]);
//!   PostgreSQL computes the same bytes in SQL (validate), or reads them
//!   from a hidden column of the tables acode creates (run, analyze; see
//!   [`rowhash`]), so only 8-byte row hashes, and keys of the rows that
//!   differ, cross the network.
//! * **Order.** Key ranges are compared in byte order on both sides
//!   (SQLite `BINARY`, PostgreSQL `COLLATE "C"`; text key columns of
//!   created tables use it). A table whose key holds mixed types is
//!   compared as one chunk.
//! * **UUIDs.** `--uuid-map TABLE.COL` (a single-column integer primary
//!   key) stores `uuid`s derived from the legacy key (SHA-256 of table,
//!   column and key, as a version-8 UUID: the same in every run) in that
//!   column and in every foreign-key column that references it; each pair
//!   is kept in `migration_mappings`, which also bounds the chunks of
//!   that table by legacy key.
//! * **Foreign keys while copying.** The data connection asks for
//!   `session_replication_role = replica` (as PostgreSQL's own logical
//!   replication does), so rows and deletes may arrive in any order. Without
//!   the right to set it, tables are still copied parents first; deleting a
//!   parent whose children are still in the target then fails with the
//!   target's message. Foreign keys are added (deferrable) only where the
//!   source has no orphan rows; otherwise analyze and run report why not.
//! * **Room for updates.** Tables acode creates keep a tenth of each page
//!   free (`fillfactor = 90`), so that a later run's update of a row stays
//!   on its page (see [`target::FILLFACTOR`]).
//! * Control tables live in schema `acode_migrate` of the target, created
//!   by refinery migrations with their own history table.

pub mod checkpoint;
mod control;
pub mod engine;
pub mod error;
pub mod ident;
pub mod jobs;
mod ops;
pub mod plan;
mod report;
pub mod rowhash;
pub mod schema;
pub mod stats;
pub mod target;
pub mod track;
pub mod value;

pub use error::{MigrateError, Result};
pub use ops::*;
pub use report::*;

/// Receives progress of a run, per table (the CLI draws bars).
pub trait Progress: Send + Sync {
    fn table_started(&self, _table: &str, _rows: u64) {}
    fn rows_done(&self, _table: &str, _rows: u64) {}
    fn table_finished(&self, _table: &str) {}
}

/// Progress nobody watches.
pub struct NoProgress;

impl Progress for NoProgress {}

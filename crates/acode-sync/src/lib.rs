//! The acode sync engine (DESIGN.md §7, §8, §15).
//!
//! Upload: the outbox's due entries are planned into a batch ([`batcher`]:
//! one change per row, coalesced, parents first, within count and byte
//! limits), frozen, pushed through a [`Transport`], and settled in one local
//! transaction ([`upload`]). Download: pages of the remote feed are applied
//! with capture suppressed, conflicts decided by the same rule the server
//! uses, and the cursor saved in the same transaction ([`download`]).
//! [`engine`] runs the two, once (`sync now`) or as a worker.

pub mod batcher;
pub mod config;
pub mod download;
pub mod engine;
mod error;
pub mod http;
pub mod postgres;
pub mod remote;
pub mod retry;
pub mod status;
pub mod transport;
pub mod upload;
pub mod worker;

pub use config::EngineConfig;
pub use engine::{Mode, SyncReport, sync_now, sync_now_or_ask};
pub use error::SyncError;
pub use http::HttpTransport;
pub use postgres::PostgresTransport;
pub use remote::{RemoteTransport, transport_for};
pub use status::{SyncStatus, status};
pub use transport::{Transport, TransportError};
pub use worker::SyncEngine;

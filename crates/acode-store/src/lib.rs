//! The local SQLite store of an acode workspace.
//!
//! Apps write chats, messages and run records through [`Store::write`]; in
//! the same transaction, triggers capture each change into `sync_outbox`
//! with an idempotency key and an HLC timestamp; each row's sync state is
//! the `sync_row_state` view over the outbox and what the engine records
//! ([`Tx::row_state`]). The sync engine reads the outbox (rows' data redacted
//! at upload time, see [`Tx::payload`]) and applies remote changes with
//! capture suppressed ([`Store::apply_remote`]).

mod capture;
pub mod chats;
mod db;
pub mod error;
pub mod import;
pub mod messages;
pub mod migrations;
pub mod outbox;
pub mod payload;
pub mod record;
pub mod runs;
pub mod sync;
mod text_enum;
pub mod time;
mod tx;
pub mod validate;
pub mod workspace;

pub use chats::{Chat, ChatPatch, NewChat};
pub use db::{Durability, MigrationOutcome, OpenOptions, Store};
pub use error::{Result, StoreError};
pub use messages::{Message, MessagePatch, NewMessage, Role};
pub use outbox::{ChangeOp, EntryStatus, OutboxEntry, RowState, RowStatus, SyncCounts};
pub use payload::Payload;
pub use record::{ListQuery, Order, Page, Record};
pub use runs::*;
pub use tx::Tx;
pub use workspace::{Workspace, WorkspaceError};

pub use acode_protocol::{Entity, Id, Privacy};

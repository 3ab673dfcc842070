//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use acode_store::{ChangeOp, Entity, EntryStatus, Id, OpenOptions, Store};
use tempfile::TempDir;

/// A store on a real file in a fresh temporary directory.
pub fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        Store::open(dir.path().join("workspace.db"), &OpenOptions::default()).expect("open store");
    (dir, store)
}

/// The pending outbox entries as (entity, id, op), in local order.
pub fn entries(store: &mut Store) -> Vec<(Entity, Id, ChangeOp)> {
    store
        .read(|tx| tx.outbox(&[EntryStatus::Pending], 1_000_000))
        .expect("read outbox")
        .into_iter()
        .map(|e| (e.entity, e.entity_id, e.op))
        .collect()
}

/// Settles every entry (as the engine would after a push), so a test can
/// look at what one step adds.
pub fn clear_outbox(store: &mut Store) {
    store
        .connection()
        .execute("UPDATE sync_outbox SET status = 'synced'", [])
        .expect("clear outbox");
}

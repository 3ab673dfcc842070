//! `sync_row_state`: each row's sync status derived from its unsettled
//! outbox entries and from what the sync engine records in
//! `sync_row_remote`. The engine's settle steps are written here as the SQL
//! it will run.
#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

mod common;

use acode_store::*;
use common::temp_store;
use rusqlite::OptionalExtension;

/// The row's state from the API, checked against the `sync_row_state` view
/// (two readings of one rule: they must agree).
fn state(store: &mut Store, id: Id) -> Option<RowState> {
    let api = store.read(|tx| tx.row_state(Entity::Chat, id)).unwrap();
    let view = store
        .connection()
        .query_row(
            "SELECT local_version, server_version, status, last_error, updated_at
             FROM sync_row_state WHERE entity = 'chat' AND entity_id = ?1",
            [id.to_string()],
            |r| {
                Ok(RowState {
                    entity: Entity::Chat,
                    entity_id: id,
                    local_version: r.get(0)?,
                    server_version: r.get(1)?,
                    status: r.get::<_, String>(2)?.parse().unwrap(),
                    last_error: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            },
        )
        .optional()
        .unwrap();
    assert_eq!(api, view, "the API and the view disagree");
    api
}

fn last_seq(store: &mut Store, id: Id) -> i64 {
    store
        .read(|tx| tx.outbox_for_row(Entity::Chat, id))
        .unwrap()
        .last()
        .unwrap()
        .seq
}

/// What the engine does when the server acknowledges every entry of a row.
fn settle(store: &mut Store, id: Id, server_version: i64, status: &str, error: Option<&str>) {
    let conn = store.connection();
    let seq = conn
        .query_row(
            "SELECT max(seq) FROM sync_outbox WHERE entity_id = ?1",
            [id.to_string()],
            |r| r.get::<_, i64>(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE sync_outbox SET status = 'synced', settled_at = 1 WHERE entity_id = ?1 AND status = 'pending'",
        [id.to_string()],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO sync_row_remote (entity, entity_id, server_version, status, last_error, settled_seq, updated_at)
         VALUES ('chat', ?1, ?2, ?3, ?4, ?5, 1)
         ON CONFLICT (entity, entity_id) DO UPDATE SET server_version = excluded.server_version,
             status = excluded.status, last_error = excluded.last_error, settled_seq = excluded.settled_seq",
        (id.to_string(), server_version, status, error, seq),
    )
    .unwrap();
}

#[test]
fn a_captured_row_is_pending_until_settled_then_takes_the_remote_state() {
    let (_dir, mut store) = temp_store();
    let c = store
        .write(|tx| tx.create_chat(&NewChat::new("c")))
        .unwrap();
    let s = state(&mut store, c.id).unwrap();
    assert_eq!(
        (s.status, s.server_version, s.local_version),
        (RowStatus::Pending, 0, last_seq(&mut store, c.id))
    );

    settle(&mut store, c.id, 1, "synced", None);
    let s = state(&mut store, c.id).unwrap();
    assert_eq!((s.status, s.server_version), (RowStatus::Synced, 1));

    // A new local change makes it pending again, keeping the server version.
    store
        .write(|tx| {
            tx.update_chat(
                c.id,
                &ChatPatch {
                    title: Some("c2".into()),
                    privacy: None,
                },
            )
        })
        .unwrap();
    let s = state(&mut store, c.id).unwrap();
    assert_eq!(
        (s.status, s.server_version, s.local_version),
        (RowStatus::Pending, 1, last_seq(&mut store, c.id))
    );

    settle(&mut store, c.id, 2, "conflict", None);
    assert_eq!(state(&mut store, c.id).unwrap().status, RowStatus::Conflict);
    // A conflict stays visible over newer local changes until it is seen.
    store
        .write(|tx| {
            tx.update_chat(
                c.id,
                &ChatPatch {
                    title: Some("c3".into()),
                    privacy: None,
                },
            )
        })
        .unwrap();
    assert_eq!(state(&mut store, c.id).unwrap().status, RowStatus::Conflict);
}

#[test]
fn a_failed_latest_change_shows_failed_and_a_newer_change_supersedes_it() {
    let (_dir, mut store) = temp_store();
    let c = store
        .write(|tx| tx.create_chat(&NewChat::new("c")))
        .unwrap();
    store
        .connection()
        .execute(
            "UPDATE sync_outbox SET status = 'failed', last_error = 'ACODE-SYNC-005 title too long' WHERE entity_id = ?1",
            [c.id.to_string()],
        )
        .unwrap();
    let s = state(&mut store, c.id).unwrap();
    assert_eq!(s.status, RowStatus::Failed);
    assert_eq!(
        s.last_error.as_deref(),
        Some("ACODE-SYNC-005 title too long")
    );

    store
        .write(|tx| {
            tx.update_chat(
                c.id,
                &ChatPatch {
                    title: Some("shorter".into()),
                    privacy: None,
                },
            )
        })
        .unwrap();
    let s = state(&mut store, c.id).unwrap();
    assert_eq!(
        (s.status, s.last_error),
        (RowStatus::Pending, None),
        "rule 3: the newer change supersedes"
    );
}

#[test]
fn rows_that_never_left_the_device_have_no_state() {
    let (_dir, mut store) = temp_store();
    let c = store
        .write(|tx| tx.create_chat(&NewChat::new("mine").privacy(Privacy::LocalOnly)))
        .unwrap();
    assert_eq!(state(&mut store, c.id), None);
    let remote = store
        .apply_remote(|tx| tx.create_chat(&NewChat::new("theirs")))
        .unwrap();
    assert_eq!(
        state(&mut store, remote.id),
        None,
        "until the engine records it"
    );
}

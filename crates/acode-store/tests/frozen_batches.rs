//! Frozen batches in the upload queue (DESIGN.md §15 rule 1) when more than
//! one is in flight: which one goes next, which rows a new batch must skip,
//! and a second connection for the engine's work beside a push.
#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

mod common;

use std::collections::HashSet;

use acode_protocol::{Change, Op};
use acode_store::sync::queue::{FrozenBatch, FrozenChange};
use acode_store::*;
use common::temp_store;

/// Freezes the pending entry of each of `chats` into one batch.
fn freeze(store: &mut Store, chats: &[Id]) -> Id {
    let key = Id::new();
    store
        .write(|tx| {
            let changes: Vec<(FrozenChange, String)> = tx
                .queue()?
                .into_iter()
                .filter(|e| chats.contains(&e.entity_id))
                .map(|e| {
                    let change = Change {
                        key: e.key,
                        entity: e.entity,
                        id: e.entity_id,
                        op: Op::Upsert,
                        base_version: 0,
                        hlc: e.hlc,
                        data: None,
                    };
                    let json = serde_json::to_string(&change).unwrap();
                    (
                        FrozenChange {
                            change,
                            seqs: vec![e.seq],
                        },
                        json,
                    )
                })
                .collect();
            tx.freeze_batch(key, &changes)
        })
        .unwrap();
    key
}

fn next(store: &mut Store, now: i64, skip: Option<Id>) -> Option<FrozenBatch> {
    store.read(|tx| tx.frozen_batch(now, skip)).unwrap()
}

fn chat(store: &mut Store, title: &str) -> Id {
    store
        .write(|tx| tx.create_chat(&NewChat::new(title)))
        .unwrap()
        .id
}

#[test]
fn the_oldest_due_batch_goes_first_and_a_waiting_one_holds_up_only_itself() {
    let (_dir, mut store) = temp_store();
    let (a, b, c) = (
        chat(&mut store, "a"),
        chat(&mut store, "b"),
        chat(&mut store, "c"),
    );
    // Frozen out of order: the batch holding the older entry goes first.
    let second = freeze(&mut store, &[b]);
    let first = freeze(&mut store, &[a]);
    let now = 1_000;
    assert_eq!(next(&mut store, now, None).unwrap().key, first);
    // The batch being pushed is skipped: the other one is next.
    let other = next(&mut store, now, Some(first)).unwrap();
    assert_eq!(other.key, second);
    assert_eq!(other.changes.len(), 1);
    assert_eq!(other.changes[0].change.id, b);
    assert_eq!(next(&mut store, now, Some(second)).unwrap().key, first);

    // The first batch backs off: the second goes meanwhile.
    let seqs: Vec<i64> = next(&mut store, now, None).unwrap().changes[0].seqs.clone();
    store
        .write(|tx| tx.retry_later(&seqs, 1, now + 500, "ACODE-SYNC-002 test"))
        .unwrap();
    assert_eq!(next(&mut store, now, None).unwrap().key, second);
    assert!(next(&mut store, now, Some(second)).is_none());
    assert_eq!(
        store.read(|tx| tx.next_retry_at()).unwrap(),
        Some(now + 500)
    );
    // Its time comes: it is the oldest again.
    let again = next(&mut store, now + 500, None).unwrap();
    assert_eq!((again.key, again.attempts), (first, 1));

    // Both batches' rows are in flight; the third row is still pending.
    let in_flight = store.read(|tx| tx.rows_in_flight()).unwrap();
    assert_eq!(
        in_flight,
        HashSet::from([(Entity::Chat, a), (Entity::Chat, b)])
    );
    assert!(store.read(|tx| tx.has_pending()).unwrap());
    freeze(&mut store, &[c]);
    assert!(!store.read(|tx| tx.has_pending()).unwrap());
}

#[test]
fn a_second_connection_sees_and_captures_like_the_first() {
    let (_dir, mut store) = temp_store();
    let mut side = store.reopen().unwrap().expect("a file store reopens");
    assert_eq!(side.device_id(), store.device_id());
    let id = chat(&mut side, "written on the second connection");
    // Captured there as on the first, and visible to it.
    assert_eq!(
        common::entries(&mut store),
        vec![(Entity::Chat, id, ChangeOp::Create)]
    );
    assert_eq!(
        store.read(|tx| tx.get::<Chat>(id)).unwrap().title,
        "written on the second connection"
    );
    // An in-memory database has no second connection.
    assert!(Store::open_in_memory().unwrap().reopen().unwrap().is_none());
}

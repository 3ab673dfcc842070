//! No write escapes capture: REPLACE, id or parent changes, children written
//! before their parents, and pruning that would rewind the local sequence.
#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

mod common;

use acode_store::*;
use common::{clear_outbox, entries, temp_store};

#[test]
fn insert_or_replace_is_captured_as_the_delete_and_insert_it_is() {
    let (_dir, mut store) = temp_store();
    let (c, m) = store
        .write(|tx| {
            let c = tx.create_chat(&NewChat::new("c"))?;
            let m = tx.add_message(&NewMessage::new(c.id, Role::User, "secret"))?;
            Ok((c, m))
        })
        .unwrap();
    clear_outbox(&mut store);
    // Replacing a synced message by a local-only one withdraws it remotely.
    store
        .write(|tx| {
            tx.connection().execute(
                "INSERT OR REPLACE INTO messages (id, chat_id, role, content, privacy, created_at, updated_at)
                 SELECT id, chat_id, role, 'gone', 'local_only', created_at, updated_at FROM messages WHERE id = ?1",
                [m.id.to_string()],
            )?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        entries(&mut store),
        vec![(Entity::Message, m.id, ChangeOp::Delete)]
    );
    clear_outbox(&mut store);
    // Replacing a chat deletes it (and, by cascade, its messages) and
    // creates it anew.
    store
        .write(|tx| {
            tx.connection().execute(
                "INSERT OR REPLACE INTO chats (id, title, privacy, created_at, updated_at)
                 SELECT id, 'replaced', 'full', created_at, updated_at FROM chats WHERE id = ?1",
                [c.id.to_string()],
            )?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        entries(&mut store),
        vec![
            (Entity::Chat, c.id, ChangeOp::Delete),
            (Entity::Chat, c.id, ChangeOp::Create)
        ]
    );
}

#[test]
fn ids_and_parents_cannot_change() {
    let (_dir, mut store) = temp_store();
    let (a, b, m, s, t) = store
        .write(|tx| {
            let a = tx.create_chat(&NewChat::new("a"))?;
            let b = tx.create_chat(&NewChat::new("b"))?;
            let m = tx.add_message(&NewMessage::new(a.id, Role::User, "x"))?;
            let s = tx.create_session(&NewSession::new("s"))?;
            let t = tx.create_task(&NewTask {
                id: None,
                session_id: s.id,
                title: "t".into(),
                status: RunStatus::Running,
            })?;
            Ok((a, b, m, s, t))
        })
        .unwrap();
    clear_outbox(&mut store);
    let other = store
        .write(|tx| tx.create_session(&NewSession::new("other")))
        .unwrap();
    clear_outbox(&mut store);
    let attempts = [
        ("UPDATE chats SET id = ?2 WHERE id = ?1", a.id, Id::new()),
        ("UPDATE messages SET chat_id = ?2 WHERE id = ?1", m.id, b.id),
        ("UPDATE messages SET id = ?2 WHERE id = ?1", m.id, Id::new()),
        ("UPDATE sessions SET id = ?2 WHERE id = ?1", s.id, Id::new()),
        (
            "UPDATE tasks SET session_id = ?2 WHERE id = ?1",
            t.id,
            other.id,
        ),
    ];
    for (sql, id, to) in attempts {
        let err = store
            .write(|tx| {
                tx.connection()
                    .execute(sql, [id.to_string(), to.to_string()])?;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(err.code().code(), "ACODE-STORE-002", "{sql}: {err}");
        assert!(err.to_string().contains("cannot change"), "{err}");
    }
    assert!(entries(&mut store).is_empty());
    assert_eq!(
        store.read(|tx| tx.get::<Message>(m.id)).unwrap().chat_id,
        a.id
    );
}

/// A child of every kind, written (under deferred foreign keys) before a
/// parent that does not exist yet: its inherited level cannot be known, so
/// it cannot be captured right.
const CHILDREN_FIRST: &[(&str, &str)] = &[
    (
        "message",
        "INSERT INTO messages (id, chat_id, role, content, privacy, created_at, updated_at)
         VALUES (?1, ?2, 'user', 'early', 'full', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
    ),
    (
        "task",
        "INSERT INTO tasks (id, session_id, title, status, created_at, updated_at)
         VALUES (?1, ?2, 'early', 'pending', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
    ),
    (
        "step",
        "INSERT INTO steps (id, task_id, kind, status, created_at, updated_at)
         VALUES (?1, ?2, 'early', 'pending', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
    ),
    (
        "tool call",
        "INSERT INTO tool_calls (id, step_id, tool, arguments, status, created_at, updated_at)
         VALUES (?1, ?2, 'early', '{}', 'pending', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
    ),
    (
        "artifact",
        "INSERT INTO artifacts (id, session_id, name, media_type, body, created_at, updated_at)
         VALUES (?1, ?2, 'early', 'text/plain', '', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
    ),
];

#[test]
fn a_child_written_before_its_parent_is_refused_not_left_uncaptured() {
    for (kind, sql) in CHILDREN_FIRST {
        let (_dir, mut store) = temp_store();
        let err = store
            .write(|tx| {
                let conn = tx.connection();
                conn.execute_batch("PRAGMA defer_foreign_keys = ON")?;
                conn.execute(sql, [Id::new().to_string(), Id::new().to_string()])?;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(err.code().code(), "ACODE-STORE-002", "{kind}: {err}");
        assert!(
            err.to_string()
                .contains("write parents before their children"),
            "{kind}: {err}"
        );
        assert!(entries(&mut store).is_empty(), "{kind}");
        let rows: i64 = store
            .connection()
            .query_row(
                "SELECT (SELECT count(*) FROM chats) + (SELECT count(*) FROM messages)
                      + (SELECT count(*) FROM sessions) + (SELECT count(*) FROM tasks)
                      + (SELECT count(*) FROM steps) + (SELECT count(*) FROM tool_calls)
                      + (SELECT count(*) FROM artifacts)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 0, "{kind}");
    }
}

/// A local-only message is never captured, whatever its chat's level: it may
/// come before its chat, and only the chat is captured.
#[test]
fn a_local_only_message_may_precede_its_chat() {
    let (_dir, mut store) = temp_store();
    let chat = Id::new();
    store
        .write(|tx| {
            let conn = tx.connection();
            conn.execute_batch("PRAGMA defer_foreign_keys = ON")?;
            conn.execute(
                "INSERT INTO messages (id, chat_id, role, content, privacy, created_at, updated_at)
                 VALUES (?1, ?2, 'user', 'early', 'local_only', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
                [Id::new().to_string(), chat.to_string()],
            )?;
            conn.execute(
                "INSERT INTO chats (id, title, privacy, created_at, updated_at)
                 VALUES (?1, 'late', 'full', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
                [chat.to_string()],
            )?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        entries(&mut store),
        vec![(Entity::Chat, chat, ChangeOp::Create)]
    );
}

#[test]
fn rule_12_pruning_never_rewinds_the_sequence_or_the_clock() {
    let (_dir, mut store) = temp_store();
    for i in 0..3 {
        store
            .write(|tx| tx.create_chat(&NewChat::new(format!("c{i}"))))
            .unwrap();
    }
    let before = store.read(|tx| tx.outbox(&[], 10)).unwrap();
    let newest = before.last().unwrap().clone();
    // The engine prunes settled entries: the newest one stays.
    let deleted = store
        .connection()
        .execute("DELETE FROM sync_outbox", [])
        .unwrap();
    assert_eq!(deleted, 2);
    let left = store.read(|tx| tx.outbox(&[], 10)).unwrap();
    assert_eq!(left, vec![newest.clone()]);
    // A new process on the same file continues after it.
    let path = store.path().to_path_buf();
    drop(store);
    let mut reopened = Store::open(&path, &OpenOptions::default()).unwrap();
    reopened
        .write(|tx| tx.create_chat(&NewChat::new("after")))
        .unwrap();
    let all = reopened.read(|tx| tx.outbox(&[], 10)).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].seq, newest.seq + 1);
    let (old, new): (acode_protocol::Hlc, acode_protocol::Hlc) =
        (newest.hlc.parse().unwrap(), all[1].hlc.parse().unwrap());
    assert!(new > old);
}

#[test]
fn dropping_a_store_inside_a_raw_transaction_rolls_it_back_safely() {
    let (dir, store) = temp_store();
    store.connection().execute_batch("BEGIN").unwrap();
    store
        .connection()
        .execute(
            "INSERT INTO chats (id, title, privacy, created_at, updated_at)
             VALUES (?1, 'unfinished', 'full', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
            [Id::new().to_string()],
        )
        .unwrap();
    drop(store);
    let mut store = Store::open(dir.path().join("workspace.db"), &OpenOptions::default()).unwrap();
    let chats = store
        .read(|tx| tx.list::<Chat>(&ListQuery::default()))
        .unwrap();
    assert!(chats.items.is_empty());
    assert!(store.read(|tx| tx.outbox(&[], 10)).unwrap().is_empty());
}

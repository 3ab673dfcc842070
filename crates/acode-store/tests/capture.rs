#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing
//! Change capture is exact (DESIGN.md §4, §15 rules 7, 11, 12): one entry per
//! data change, in the same transaction, never for local-only rows, never
//! for applied remote changes, never bypassed by a foreign connection.

mod common;

use acode_store::*;
use common::{clear_outbox, entries, temp_store};

fn chat(store: &mut Store, title: &str, privacy: Privacy) -> Chat {
    store
        .write(|tx| tx.create_chat(&NewChat::new(title).privacy(privacy)))
        .unwrap()
}

fn msg(store: &mut Store, chat: Id, text: &str, privacy: Privacy) -> Message {
    store
        .write(|tx| tx.add_message(&NewMessage::new(chat, Role::User, text).privacy(privacy)))
        .unwrap()
}

/// A session with one task, step, tool call and artifact (of the step).
fn run(store: &mut Store, privacy: Privacy) -> (Session, Task, Step, ToolCall, Artifact) {
    store
        .write(|tx| {
            let mut new = NewSession::new("fix the build");
            new.privacy = privacy;
            let s = tx.create_session(&new)?;
            let t = tx.create_task(&NewTask {
                id: None,
                session_id: s.id,
                title: "find the error".into(),
                status: RunStatus::Running,
            })?;
            let st = tx.create_step(&NewStep {
                id: None,
                task_id: t.id,
                kind: "shell".into(),
                status: RunStatus::Running,
                input: Some("cargo build".into()),
            })?;
            let c = tx.create_tool_call(&NewToolCall {
                id: None,
                step_id: st.id,
                tool: "bash".into(),
                arguments: r#"{"cmd":"cargo build"}"#.into(),
                status: RunStatus::Running,
            })?;
            let a = tx.create_artifact(&NewArtifact {
                id: None,
                session_id: s.id,
                step_id: Some(st.id),
                name: "build.log".into(),
                media_type: "text/plain".into(),
                body: "error[E0308]".into(),
            })?;
            Ok((s, t, st, c, a))
        })
        .unwrap()
}

#[test]
fn insert_update_delete_of_chats_and_messages_are_captured_once_each() {
    let (_dir, mut store) = temp_store();
    let c = chat(&mut store, "auth", Privacy::Full);
    let m = msg(&mut store, c.id, "hello", Privacy::Full);
    store
        .write(|tx| {
            tx.update_chat(
                c.id,
                &ChatPatch {
                    title: Some("auth v2".into()),
                    privacy: None,
                },
            )?;
            tx.update_message(
                m.id,
                &MessagePatch {
                    content: Some("hi".into()),
                    privacy: None,
                },
            )?;
            tx.delete::<Message>(m.id)?;
            tx.delete::<Chat>(c.id)
        })
        .unwrap();
    use ChangeOp::*;
    assert_eq!(
        entries(&mut store),
        vec![
            (Entity::Chat, c.id, Create),
            (Entity::Message, m.id, Create),
            (Entity::Chat, c.id, Update),
            (Entity::Message, m.id, Update),
            (Entity::Message, m.id, Delete),
            (Entity::Chat, c.id, Delete),
        ]
    );
    let outbox = store
        .read(|tx| tx.outbox_for_row(Entity::Chat, c.id))
        .unwrap();
    assert_eq!(outbox.len(), 3);
    let state = store
        .read(|tx| tx.row_state(Entity::Chat, c.id))
        .unwrap()
        .unwrap();
    assert_eq!(
        (state.local_version, state.server_version, state.status),
        (outbox[2].seq, 0, RowStatus::Pending),
        "local_version is the seq of the row's latest change"
    );
}

/// One edit of each run record under a session: a task, a step and a tool
/// call through the typed API, an artifact by SQL (it has no update call).
fn edit_run_records(
    tx: &Tx<'_>,
    t: &Task,
    st: &Step,
    c: &ToolCall,
    a: &Artifact,
) -> acode_store::Result<()> {
    tx.update_task(
        t.id,
        &TaskPatch {
            status: Some(RunStatus::Succeeded),
            ..Default::default()
        },
    )?;
    tx.update_step(
        st.id,
        &StepPatch {
            output: Some("ok".into()),
            ..Default::default()
        },
    )?;
    tx.update_tool_call(
        c.id,
        &ToolCallPatch {
            result: Some("0".into()),
            ..Default::default()
        },
    )?;
    tx.connection().execute(
        "UPDATE artifacts SET body = 'fixed' WHERE id = ?1",
        [a.id.to_string()],
    )?;
    Ok(())
}

#[test]
fn insert_update_delete_of_every_run_record_are_captured_once_each() {
    let (_dir, mut store) = temp_store();
    let (s, t, st, c, a) = run(&mut store, Privacy::Full);
    use ChangeOp::*;
    assert_eq!(
        entries(&mut store),
        vec![
            (Entity::Session, s.id, Create),
            (Entity::Task, t.id, Create),
            (Entity::Step, st.id, Create),
            (Entity::ToolCall, c.id, Create),
            (Entity::Artifact, a.id, Create),
        ]
    );
    clear_outbox(&mut store);
    store
        .write(|tx| {
            tx.update_session(
                s.id,
                &SessionPatch {
                    status: Some(RunStatus::Succeeded),
                    ..Default::default()
                },
            )?;
            edit_run_records(tx, &t, &st, &c, &a)
        })
        .unwrap();
    assert_eq!(
        entries(&mut store),
        vec![
            (Entity::Session, s.id, Update),
            (Entity::Task, t.id, Update),
            (Entity::Step, st.id, Update),
            (Entity::ToolCall, c.id, Update),
            (Entity::Artifact, a.id, Update),
        ]
    );
    clear_outbox(&mut store);
    // Deleted one by one, children first: each is a change of its own.
    store
        .write(|tx| {
            tx.delete::<Artifact>(a.id)?;
            tx.delete::<ToolCall>(c.id)?;
            tx.delete::<Step>(st.id)?;
            tx.delete::<Task>(t.id)?;
            tx.delete::<Session>(s.id)
        })
        .unwrap();
    assert_eq!(
        entries(&mut store),
        vec![
            (Entity::Artifact, a.id, Delete),
            (Entity::ToolCall, c.id, Delete),
            (Entity::Step, st.id, Delete),
            (Entity::Task, t.id, Delete),
            (Entity::Session, s.id, Delete),
        ]
    );
}

#[test]
fn a_cascaded_delete_is_captured_as_the_parent_delete_alone() {
    let (_dir, mut store) = temp_store();
    let c = chat(&mut store, "c", Privacy::Full);
    msg(&mut store, c.id, "one", Privacy::Full);
    msg(&mut store, c.id, "two", Privacy::Full);
    let (s, ..) = run(&mut store, Privacy::Full);
    clear_outbox(&mut store);
    store
        .write(|tx| {
            tx.delete::<Chat>(c.id)?;
            tx.delete::<Session>(s.id)
        })
        .unwrap();
    assert_eq!(
        entries(&mut store),
        vec![
            (Entity::Chat, c.id, ChangeOp::Delete),
            (Entity::Session, s.id, ChangeOp::Delete)
        ]
    );
    let left: i64 = store
        .connection()
        .query_row(
            "SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM tool_calls)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "children are deleted with their parent");
}

#[test]
fn a_transaction_of_many_writes_commits_all_entries_in_order() {
    let (_dir, mut store) = temp_store();
    let ids = store
        .write(|tx| {
            let c = tx.create_chat(&NewChat::new("bulk"))?;
            let mut ids = vec![c.id];
            for i in 0..500 {
                ids.push(
                    tx.add_message(&NewMessage::new(c.id, Role::Assistant, format!("m{i}")))?
                        .id,
                );
            }
            Ok(ids)
        })
        .unwrap();
    let got: Vec<Id> = entries(&mut store)
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    assert_eq!(got, ids);
    let seqs: Vec<i64> = store
        .read(|tx| tx.outbox(&[], 10_000))
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_rolled_back_transaction_leaves_no_entries_and_no_rows() {
    let (_dir, mut store) = temp_store();
    let err = store
        .write(|tx| {
            let c = tx.create_chat(&NewChat::new("doomed"))?;
            tx.add_message(&NewMessage::new(c.id, Role::User, "gone"))?;
            tx.create_chat(&NewChat::new(""))
        })
        .unwrap_err();
    assert_eq!(err.code().code(), "ACODE-STORE-002");
    assert!(entries(&mut store).is_empty());
    let chats = store
        .read(|tx| tx.list::<Chat>(&ListQuery::default()))
        .unwrap();
    assert!(chats.items.is_empty());
    let states: i64 = store
        .connection()
        .query_row("SELECT count(*) FROM sync_row_state", [], |r| r.get(0))
        .unwrap();
    assert_eq!(states, 0);
}

#[test]
fn local_only_rows_are_never_captured() {
    let (_dir, mut store) = temp_store();
    let c = chat(&mut store, "private", Privacy::LocalOnly);
    let m = msg(&mut store, c.id, "secret", Privacy::Full);
    let c2 = chat(&mut store, "shared", Privacy::Full);
    let m2 = msg(&mut store, c2.id, "mine only", Privacy::LocalOnly);
    let (s, t, st, tc, a) = run(&mut store, Privacy::LocalOnly);
    clear_outbox(&mut store);
    store
        .write(|tx| {
            // Everything under a local-only session inherits its level.
            edit_run_records(tx, &t, &st, &tc, &a)?;
            tx.update_chat(
                c.id,
                &ChatPatch {
                    title: Some("still private".into()),
                    privacy: None,
                },
            )?;
            tx.update_message(
                m.id,
                &MessagePatch {
                    content: Some("x".into()),
                    privacy: None,
                },
            )?;
            tx.update_message(
                m2.id,
                &MessagePatch {
                    content: Some("y".into()),
                    privacy: None,
                },
            )?;
            tx.update_session(
                s.id,
                &SessionPatch {
                    title: Some("t".into()),
                    ..Default::default()
                },
            )?;
            tx.delete::<Message>(m2.id)?;
            tx.delete::<Chat>(c.id)?;
            tx.delete::<Session>(s.id)
        })
        .unwrap();
    assert!(entries(&mut store).is_empty());
    let states: i64 = store
        .connection()
        .query_row(
            "SELECT count(*) FROM sync_row_state WHERE entity_id IN (?1, ?2, ?3)",
            [c.id.to_string(), m.id.to_string(), m2.id.to_string()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(states, 0);
}

#[test]
fn redacted_rows_are_captured_and_their_payload_has_no_content() {
    let (_dir, mut store) = temp_store();
    let c = chat(&mut store, "secret plans", Privacy::Redacted);
    let m = msg(&mut store, c.id, "the password is hunter2", Privacy::Full);
    let (s, t, st, call, a) = run(&mut store, Privacy::Redacted);
    assert_eq!(entries(&mut store).len(), 7);
    store
        .read(|tx| {
            let p = tx.payload(Entity::Chat, c.id)?.unwrap();
            assert_eq!(p.data["title"], serde_json::Value::Null);
            assert_eq!(p.data["privacy"], "redacted");
            let p = tx.payload(Entity::Message, m.id)?.unwrap();
            assert_eq!(p.data["content"], serde_json::Value::Null);
            assert_eq!(p.data["chat_id"], c.id.to_string());
            assert_eq!(p.data["privacy"], "full", "the message's own level");
            assert_eq!(p.privacy, Privacy::Redacted, "the effective level");
            for (e, id) in [
                (Entity::Session, s.id),
                (Entity::Task, t.id),
                (Entity::Step, st.id),
                (Entity::ToolCall, call.id),
                (Entity::Artifact, a.id),
            ] {
                let p = tx.payload(e, id)?.unwrap();
                assert_eq!(p.privacy, Privacy::Redacted);
                for col in e.content_columns() {
                    assert_eq!(p.data[*col], serde_json::Value::Null, "{e}.{col}");
                }
            }
            Ok(())
        })
        .unwrap();
}

/// An update that names the privacy column without changing it is an
/// ordinary update: captured once, as an update, with nothing for the
/// descendants (the privacy-change triggers fire but find no change).
#[test]
fn an_update_that_sets_privacy_to_what_it_was_is_captured_once_as_an_update() {
    let (_dir, mut store) = temp_store();
    let c = chat(&mut store, "c", Privacy::Full);
    let m = msg(&mut store, c.id, "m", Privacy::Redacted);
    let (s, ..) = run(&mut store, Privacy::Redacted);
    clear_outbox(&mut store);
    store
        .write(|tx| {
            let conn = tx.connection();
            conn.execute(
                "UPDATE chats SET privacy = privacy, title = 'same' WHERE id = ?1",
                [c.id.to_string()],
            )?;
            conn.execute(
                "UPDATE messages SET privacy = 'redacted' WHERE id = ?1",
                [m.id.to_string()],
            )?;
            tx.update_session(
                s.id,
                &SessionPatch {
                    privacy: Some(Privacy::Redacted),
                    ..Default::default()
                },
            )?;
            Ok(())
        })
        .unwrap();
    use ChangeOp::Update;
    assert_eq!(
        entries(&mut store),
        vec![
            (Entity::Chat, c.id, Update),
            (Entity::Message, m.id, Update),
            (Entity::Session, s.id, Update),
        ]
    );
}

#[test]
fn every_privacy_change_of_a_chat_is_captured_with_the_right_op() {
    use ChangeOp::*;
    use Privacy::*;
    let cases = [
        (Full, Redacted, Some(Update)),
        (Redacted, Full, Some(Update)),
        (Full, LocalOnly, Some(Delete)),
        (Redacted, LocalOnly, Some(Delete)),
        (LocalOnly, Full, Some(Create)),
        (LocalOnly, Redacted, Some(Create)),
        (LocalOnly, LocalOnly, None),
        (Full, Full, Some(Update)),
    ];
    for (from, to, expected) in cases {
        let (_dir, mut store) = temp_store();
        let c = chat(&mut store, "c", from);
        clear_outbox(&mut store);
        store
            .write(|tx| {
                tx.update_chat(
                    c.id,
                    &ChatPatch {
                        title: None,
                        privacy: Some(to),
                    },
                )
            })
            .unwrap();
        let want: Vec<_> = expected
            .into_iter()
            .map(|op| (Entity::Chat, c.id, op))
            .collect();
        assert_eq!(entries(&mut store), want, "{from} -> {to}");
    }
}

#[test]
fn a_chat_privacy_change_reaches_its_messages_in_the_same_transaction() {
    let (_dir, mut store) = temp_store();
    let c = chat(&mut store, "c", Privacy::Full);
    let full = msg(&mut store, c.id, "a", Privacy::Full);
    let red = msg(&mut store, c.id, "b", Privacy::Redacted);
    let local = msg(&mut store, c.id, "c", Privacy::LocalOnly);
    let other = chat(&mut store, "other", Privacy::Full);
    msg(&mut store, other.id, "untouched", Privacy::Full);
    use ChangeOp::*;
    let step = |store: &mut Store, to: Privacy| {
        clear_outbox(store);
        store
            .write(|tx| {
                tx.update_chat(
                    c.id,
                    &ChatPatch {
                        title: None,
                        privacy: Some(to),
                    },
                )
            })
            .unwrap();
        entries(store)
    };
    // full -> redacted: the full message's effective level changes; the
    // redacted one's does not; the local-only one stays out.
    assert_eq!(
        step(&mut store, Privacy::Redacted),
        vec![
            (Entity::Chat, c.id, Update),
            (Entity::Message, full.id, Update)
        ]
    );
    // redacted -> local_only: both synced messages are withdrawn.
    assert_eq!(
        step(&mut store, Privacy::LocalOnly),
        vec![
            (Entity::Chat, c.id, Delete),
            (Entity::Message, full.id, Delete),
            (Entity::Message, red.id, Delete)
        ]
    );
    // local_only -> full: they come back; the local-only message never does.
    assert_eq!(
        step(&mut store, Privacy::Full),
        vec![
            (Entity::Chat, c.id, Create),
            (Entity::Message, full.id, Create),
            (Entity::Message, red.id, Create)
        ]
    );
    assert!(!entries(&mut store).iter().any(|(_, id, _)| *id == local.id));
}

#[test]
fn a_message_privacy_change_is_captured_by_its_effective_level() {
    let (_dir, mut store) = temp_store();
    let c = chat(&mut store, "c", Privacy::Redacted);
    let m = msg(&mut store, c.id, "a", Privacy::Full);
    use ChangeOp::*;
    let mut set = |p: Privacy| {
        clear_outbox(&mut store);
        store
            .write(|tx| {
                tx.update_message(
                    m.id,
                    &MessagePatch {
                        content: None,
                        privacy: Some(p),
                    },
                )
            })
            .unwrap();
        entries(&mut store)
    };
    assert_eq!(
        set(Privacy::Redacted),
        vec![(Entity::Message, m.id, Update)]
    );
    assert_eq!(
        set(Privacy::LocalOnly),
        vec![(Entity::Message, m.id, Delete)]
    );
    assert_eq!(set(Privacy::LocalOnly), vec![]);
    assert_eq!(set(Privacy::Full), vec![(Entity::Message, m.id, Create)]);
}

#[test]
fn a_session_privacy_change_reaches_every_run_record_under_it() {
    let (_dir, mut store) = temp_store();
    let (s, t, st, c, a) = run(&mut store, Privacy::Full);
    clear_outbox(&mut store);
    store
        .write(|tx| {
            tx.update_session(
                s.id,
                &SessionPatch {
                    privacy: Some(Privacy::LocalOnly),
                    ..Default::default()
                },
            )
        })
        .unwrap();
    use ChangeOp::*;
    assert_eq!(
        entries(&mut store),
        vec![
            (Entity::Session, s.id, Delete),
            (Entity::Task, t.id, Delete),
            (Entity::Step, st.id, Delete),
            (Entity::ToolCall, c.id, Delete),
            (Entity::Artifact, a.id, Delete),
        ]
    );
    clear_outbox(&mut store);
    store
        .write(|tx| {
            tx.update_session(
                s.id,
                &SessionPatch {
                    privacy: Some(Privacy::Redacted),
                    ..Default::default()
                },
            )
        })
        .unwrap();
    assert_eq!(
        entries(&mut store),
        vec![
            (Entity::Session, s.id, Create),
            (Entity::Task, t.id, Create),
            (Entity::Step, st.id, Create),
            (Entity::ToolCall, c.id, Create),
            (Entity::Artifact, a.id, Create),
        ]
    );
}

#[test]
fn writes_in_applying_mode_are_not_captured() {
    let (_dir, mut store) = temp_store();
    let c = store
        .apply_remote(|tx| {
            let c = tx.create_chat(&NewChat::new("from another device"))?;
            tx.add_message(&NewMessage::new(c.id, Role::User, "remote"))?;
            tx.update_chat(
                c.id,
                &ChatPatch {
                    title: None,
                    privacy: Some(Privacy::Redacted),
                },
            )?;
            Ok(c)
        })
        .unwrap();
    assert!(entries(&mut store).is_empty());
    assert!(store.is_capturing(), "the flag ends with its transaction");
    // The next ordinary write is captured.
    store
        .write(|tx| {
            tx.update_chat(
                c.id,
                &ChatPatch {
                    title: Some("mine".into()),
                    privacy: None,
                },
            )
        })
        .unwrap();
    assert_eq!(
        entries(&mut store),
        vec![(Entity::Chat, c.id, ChangeOp::Update)]
    );
}

#[test]
fn rule_11_a_write_after_a_failed_apply_is_captured() {
    let (_dir, mut store) = temp_store();
    let failed = store.apply_remote(|tx| {
        tx.create_chat(&NewChat::new("half applied"))?;
        Err::<(), _>(StoreError::invalid("data", "unappliable remote change"))
    });
    assert!(failed.is_err());
    assert!(store.is_capturing(), "the rollback hook cleared the flag");
    let c = chat(&mut store, "after", Privacy::Full);
    assert_eq!(
        entries(&mut store),
        vec![(Entity::Chat, c.id, ChangeOp::Create)]
    );
    let chats = store
        .read(|tx| tx.list::<Chat>(&ListQuery::default()))
        .unwrap();
    assert_eq!(chats.items.len(), 1, "the failed apply left nothing");
}

#[test]
fn rule_11_a_panicking_apply_does_not_leave_capture_off() {
    let (_dir, mut store) = temp_store();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = store.apply_remote(|tx| -> Result<()> {
            tx.create_chat(&NewChat::new("x"))?;
            panic!("bug in an applier");
        });
    }));
    assert!(result.is_err());
    assert!(store.is_capturing());
    let c = chat(&mut store, "after", Privacy::Full);
    assert_eq!(
        entries(&mut store),
        vec![(Entity::Chat, c.id, ChangeOp::Create)]
    );
}

#[test]
fn rule_11_a_connection_not_opened_by_acode_cannot_write_uncaptured() {
    let (dir, mut store) = temp_store();
    let c = chat(&mut store, "c", Privacy::Full);
    let foreign = rusqlite::Connection::open(dir.path().join("workspace.db")).unwrap();
    let statements = [
        "INSERT INTO chats (id, title, privacy, created_at, updated_at)
         VALUES ('01JD3Q5M2K7Y8V3C4B5N6M7P8Q', 'sneaky', 'full', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
        "UPDATE chats SET title = 'renamed behind our back'",
        "DELETE FROM chats",
        "INSERT INTO messages (id, chat_id, role, content, privacy, created_at, updated_at)
         SELECT '01JD3Q5M2K7Y8V3C4B5N6M7P8R', id, 'user', 'x', 'local_only', created_at, created_at FROM chats",
    ];
    for sql in statements {
        let err = foreign.execute(sql, []).unwrap_err();
        assert!(
            err.to_string().contains("no such function: acode_"),
            "{sql}: {err}"
        );
    }
    // Reading is fine, and nothing changed.
    let title: String = foreign
        .query_row("SELECT title FROM chats", [], |r| r.get(0))
        .unwrap();
    assert_eq!(title, "c");
    assert_eq!(
        entries(&mut store),
        vec![(Entity::Chat, c.id, ChangeOp::Create)]
    );
}

#[test]
fn rule_12_the_outbox_is_ordered_by_local_sequence_and_hlcs_only_grow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workspace.db");
    let mut a = Store::open(&path, &OpenOptions::default()).unwrap();
    let mut b = Store::open(&path, &OpenOptions::default()).unwrap();
    // Two handles, each with its own key generator and clock, interleaved.
    let mut ids = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { &mut a } else { &mut b };
        ids.push(
            s.write(|tx| tx.create_chat(&NewChat::new(format!("c{i}"))))
                .unwrap()
                .id,
        );
    }
    // A pulled change from a device whose clock runs an hour ahead raises the floor.
    let ahead = acode_protocol::Hlc {
        millis: chrono::Utc::now().timestamp_millis() + 3_600_000,
        counter: 3,
        device: "other".into(),
    };
    a.apply_remote(|tx| tx.set_state("hlc_floor", &ahead.to_string()))
        .unwrap();
    ids.push(
        b.write(|tx| tx.create_chat(&NewChat::new("after pull")))
            .unwrap()
            .id,
    );

    let outbox = a.read(|tx| tx.outbox(&[], 100)).unwrap();
    let got: Vec<Id> = outbox.iter().map(|e| e.entity_id).collect();
    assert_eq!(got, ids, "commit order");
    let hlcs: Vec<acode_protocol::Hlc> = outbox.iter().map(|e| e.hlc.parse().unwrap()).collect();
    assert!(hlcs.windows(2).all(|w| w[0] < w[1]), "{hlcs:?}");
    assert!(hlcs.last().unwrap() > &ahead);
    assert!(outbox.iter().all(|e| e.hlc.ends_with(a.device_id())));
}

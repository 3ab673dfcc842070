//! The typed entity API: validation that changes nothing on bad input,
//! filters, ordering and cursor pagination.
#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

mod common;

use acode_store::*;
use common::{entries, temp_store};

fn counts(store: &mut Store) -> (i64, i64, i64) {
    store
        .connection()
        .query_row(
            "SELECT (SELECT count(*) FROM chats), (SELECT count(*) FROM messages), (SELECT count(*) FROM sync_outbox)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

#[test]
fn bad_input_gets_a_clear_code_and_changes_nothing() {
    let (_dir, mut store) = temp_store();
    let c = store
        .write(|tx| tx.create_chat(&NewChat::new("kept")))
        .unwrap();
    let before = counts(&mut store);
    let unknown = Id::new();
    let cases: Vec<(&str, Result<()>)> = vec![
        (
            "ACODE-STORE-001",
            store.write(|tx| {
                tx.add_message(&NewMessage::new(unknown, Role::User, "x"))
                    .map(drop)
            }),
        ),
        (
            "ACODE-STORE-001",
            store.write(|tx| tx.update_chat(unknown, &ChatPatch::default()).map(drop)),
        ),
        (
            "ACODE-STORE-001",
            store.write(|tx| tx.delete::<Chat>(unknown)),
        ),
        (
            "ACODE-STORE-001",
            store.read(|tx| tx.get::<Message>(unknown).map(drop)),
        ),
        (
            "ACODE-STORE-002",
            store.write(|tx| tx.create_chat(&NewChat::new("")).map(drop)),
        ),
        (
            "ACODE-STORE-002",
            store.write(|tx| tx.create_chat(&NewChat::new("   ")).map(drop)),
        ),
        (
            "ACODE-STORE-002",
            store.write(|tx| tx.create_chat(&NewChat::new("a\0b")).map(drop)),
        ),
        (
            "ACODE-STORE-002",
            store.write(|tx| tx.create_chat(&NewChat::new("t".repeat(1001))).map(drop)),
        ),
        (
            "ACODE-STORE-002",
            store.write(|tx| {
                tx.add_message(&NewMessage::new(c.id, Role::User, "nul\0inside"))
                    .map(drop)
            }),
        ),
        (
            "ACODE-STORE-002",
            store.write(|tx| {
                tx.update_chat(
                    c.id,
                    &ChatPatch {
                        title: Some(String::new()),
                        privacy: None,
                    },
                )
                .map(drop)
            }),
        ),
        (
            "ACODE-STORE-002",
            store.read(|tx| {
                tx.list::<Chat>(&ListQuery {
                    cursor: Some("garbage".into()),
                    ..Default::default()
                })
                .map(drop)
            }),
        ),
        (
            "ACODE-STORE-002",
            store.read(|tx| {
                tx.list::<Chat>(&ListQuery {
                    status: Some(RunStatus::Running),
                    ..Default::default()
                })
                .map(drop)
            }),
        ),
    ];
    for (want, got) in cases {
        let err = got.expect_err(want);
        assert_eq!(err.code().code(), want, "{err}");
    }
    assert_eq!(counts(&mut store), before);
    assert_eq!(store.read(|tx| tx.get::<Chat>(c.id)).unwrap().title, "kept");
    // Parse errors of user-typed values are errors too, never panics.
    assert!("public".parse::<Privacy>().is_err());
    assert!("robot".parse::<Role>().is_err());
    assert!("01JD3Q4'; DROP TABLE chats;--".parse::<Id>().is_err());
}

#[test]
fn text_is_stored_verbatim() {
    let (_dir, mut store) = temp_store();
    let weird = "Robert'); DROP TABLE chats;-- \"quotes\", commas\nnewlines, ünïcödé 漢字 🚀";
    let c = store
        .write(|tx| tx.create_chat(&NewChat::new(weird)))
        .unwrap();
    let m = store
        .write(|tx| tx.add_message(&NewMessage::new(c.id, Role::Tool, weird)))
        .unwrap();
    store
        .read(|tx| {
            assert_eq!(tx.get::<Chat>(c.id)?.title, weird);
            assert_eq!(tx.get::<Message>(m.id)?.content, weird);
            Ok(())
        })
        .unwrap();
}

#[test]
fn lists_filter_sort_and_page_without_gaps_or_repeats() {
    let (_dir, mut store) = temp_store();
    let (c, other) = store
        .write(|tx| {
            Ok((
                tx.create_chat(&NewChat::new("a"))?,
                tx.create_chat(&NewChat::new("b"))?,
            ))
        })
        .unwrap();
    let ids: Vec<Id> = store
        .write(|tx| {
            let mut ids = Vec::new();
            for i in 0..250 {
                let p = if i % 10 == 0 {
                    Privacy::Redacted
                } else {
                    Privacy::Full
                };
                ids.push(
                    tx.add_message(&NewMessage::new(c.id, Role::User, format!("{i}")).privacy(p))?
                        .id,
                );
                tx.add_message(&NewMessage::new(other.id, Role::User, "noise"))?;
            }
            Ok(ids)
        })
        .unwrap();
    for order in [Order::Asc, Order::Desc] {
        let mut got = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page: Page<Message> = store
                .read(|tx| {
                    tx.list(&ListQuery {
                        parent: Some(c.id),
                        order,
                        cursor: cursor.clone(),
                        limit: 40,
                        ..Default::default()
                    })
                })
                .unwrap();
            pages += 1;
            got.extend(page.items.iter().map(|m| m.id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut want = ids.clone();
        if order == Order::Desc {
            want.reverse();
        }
        assert_eq!(got, want, "{order:?}");
        assert_eq!(pages, 7);
    }
    let redacted: Page<Message> = store
        .read(|tx| {
            tx.list(&ListQuery {
                parent: Some(c.id),
                privacy: Some(Privacy::Redacted),
                limit: 1000,
                ..Default::default()
            })
        })
        .unwrap();
    assert_eq!(redacted.items.len(), 25);
    let future = time::now() + chrono::Duration::hours(1);
    let none: Page<Message> = store
        .read(|tx| {
            tx.list(&ListQuery {
                since: Some(future),
                ..Default::default()
            })
        })
        .unwrap();
    assert!(none.items.is_empty());
    let all_before: Page<Message> = store
        .read(|tx| {
            tx.list(&ListQuery {
                until: Some(future),
                limit: 1000,
                ..Default::default()
            })
        })
        .unwrap();
    assert_eq!(all_before.items.len(), 500);
}

#[test]
fn run_records_list_by_parent_and_status() {
    let (_dir, mut store) = temp_store();
    let s = store
        .write(|tx| tx.create_session(&NewSession::new("run")))
        .unwrap();
    store
        .write(|tx| {
            for (i, status) in [
                RunStatus::Succeeded,
                RunStatus::Failed,
                RunStatus::Succeeded,
            ]
            .into_iter()
            .enumerate()
            {
                tx.create_task(&NewTask {
                    id: None,
                    session_id: s.id,
                    title: format!("t{i}"),
                    status,
                })?;
            }
            Ok(())
        })
        .unwrap();
    let ok: Page<Task> = store
        .read(|tx| {
            tx.list(&ListQuery {
                parent: Some(s.id),
                status: Some(RunStatus::Succeeded),
                ..Default::default()
            })
        })
        .unwrap();
    assert_eq!(
        ok.items
            .iter()
            .map(|t| t.title.as_str())
            .collect::<Vec<_>>(),
        vec!["t0", "t2"]
    );
    let done = store
        .write(|tx| {
            tx.update_session(
                s.id,
                &SessionPatch {
                    status: Some(RunStatus::Succeeded),
                    ..Default::default()
                },
            )
        })
        .unwrap();
    assert!(done.ended_at.is_some());
    // An artifact must name a step of its own session.
    let other = store
        .write(|tx| tx.create_session(&NewSession::new("other")))
        .unwrap();
    let step = store
        .write(|tx| {
            let t = tx.create_task(&NewTask {
                id: None,
                session_id: other.id,
                title: "t".into(),
                status: RunStatus::Running,
            })?;
            tx.create_step(&NewStep {
                id: None,
                task_id: t.id,
                kind: "k".into(),
                status: RunStatus::Running,
                input: None,
            })
        })
        .unwrap();
    let before = entries(&mut store).len();
    let err = store
        .write(|tx| {
            tx.create_artifact(&NewArtifact {
                id: None,
                session_id: s.id,
                step_id: Some(step.id),
                name: "x".into(),
                media_type: "text/plain".into(),
                body: String::new(),
            })
        })
        .unwrap_err();
    assert_eq!(err.code().code(), "ACODE-STORE-002");
    assert_eq!(entries(&mut store).len(), before);
}

//! Capture against a model: random transactions over chats and messages —
//! creates, edits, deletes, every privacy transition, some rolled back,
//! some applied as remote changes — must leave exactly the outbox entries a
//! plain model of the capture rules predicts, in order, and the same data.
#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

mod common;

use std::collections::BTreeMap;

use acode_store::*;
use common::{entries, temp_store};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

#[derive(Clone, Debug)]
enum Op {
    CreateChat(Privacy),
    AddMessage(usize, Privacy),
    RenameChat(usize),
    SetChatPrivacy(usize, Privacy),
    SetMessagePrivacy(usize, Privacy),
    EditMessage(usize),
    DeleteMessage(usize),
    DeleteChat(usize),
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Commit,
    RollBack,
    Remote,
}

fn privacy() -> impl Strategy<Value = Privacy> {
    prop_oneof![
        Just(Privacy::Full),
        Just(Privacy::Redacted),
        Just(Privacy::LocalOnly)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => privacy().prop_map(Op::CreateChat),
        3 => (any::<usize>(), privacy()).prop_map(|(i, p)| Op::AddMessage(i, p)),
        1 => any::<usize>().prop_map(Op::RenameChat),
        2 => (any::<usize>(), privacy()).prop_map(|(i, p)| Op::SetChatPrivacy(i, p)),
        2 => (any::<usize>(), privacy()).prop_map(|(i, p)| Op::SetMessagePrivacy(i, p)),
        1 => any::<usize>().prop_map(Op::EditMessage),
        1 => any::<usize>().prop_map(Op::DeleteMessage),
        1 => any::<usize>().prop_map(Op::DeleteChat),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![6 => Just(Mode::Commit), 1 => Just(Mode::RollBack), 1 => Just(Mode::Remote)]
}

/// The model: chats and messages with their own privacy levels.
#[derive(Clone, Default)]
struct World {
    chats: BTreeMap<Id, Privacy>,
    messages: BTreeMap<Id, (Id, Privacy)>,
}

fn change(before: Privacy, after: Privacy) -> Option<ChangeOp> {
    match (before, after) {
        (Privacy::LocalOnly, Privacy::LocalOnly) => None,
        (_, Privacy::LocalOnly) => Some(ChangeOp::Delete),
        (Privacy::LocalOnly, _) => Some(ChangeOp::Create),
        _ => Some(ChangeOp::Update),
    }
}

fn pick<T: Copy>(keys: impl Iterator<Item = T>, i: usize) -> Option<T> {
    let keys: Vec<T> = keys.collect();
    (!keys.is_empty()).then(|| keys[i % keys.len()])
}

type Expected = Vec<(Entity, Id, ChangeOp)>;

/// Runs one op on the store and the model; returns what capture should add.
fn apply(tx: &Tx<'_>, w: &mut World, op: &Op) -> Result<Expected> {
    let mut out = Vec::new();
    match *op {
        Op::CreateChat(p) => {
            let c = tx.create_chat(&NewChat::new("chat").privacy(p))?;
            w.chats.insert(c.id, p);
            out.extend(change(Privacy::LocalOnly, p).map(|op| (Entity::Chat, c.id, op)));
        }
        Op::AddMessage(i, p) => {
            if let Some(chat) = pick(w.chats.keys().copied(), i) {
                let m = tx.add_message(&NewMessage::new(chat, Role::User, "hi").privacy(p))?;
                w.messages.insert(m.id, (chat, p));
                let eff = p.stricter(w.chats[&chat]);
                out.extend(change(Privacy::LocalOnly, eff).map(|op| (Entity::Message, m.id, op)));
            }
        }
        Op::RenameChat(i) => {
            if let Some(chat) = pick(w.chats.keys().copied(), i) {
                tx.update_chat(
                    chat,
                    &ChatPatch {
                        title: Some("renamed".into()),
                        privacy: None,
                    },
                )?;
                let p = w.chats[&chat];
                if p != Privacy::LocalOnly {
                    out.push((Entity::Chat, chat, ChangeOp::Update));
                }
            }
        }
        Op::SetChatPrivacy(i, new) => {
            if let Some(chat) = pick(w.chats.keys().copied(), i) {
                tx.update_chat(
                    chat,
                    &ChatPatch {
                        title: None,
                        privacy: Some(new),
                    },
                )?;
                let old = w.chats[&chat];
                out.extend(change(old, new).map(|op| (Entity::Chat, chat, op)));
                if old != new {
                    for (m, (c, own)) in &w.messages {
                        let (before, after) = (own.stricter(old), own.stricter(new));
                        if *c == chat && before != after {
                            out.extend(change(before, after).map(|op| (Entity::Message, *m, op)));
                        }
                    }
                }
                w.chats.insert(chat, new);
            }
        }
        Op::SetMessagePrivacy(i, new) => {
            if let Some(m) = pick(w.messages.keys().copied(), i) {
                tx.update_message(
                    m,
                    &MessagePatch {
                        content: None,
                        privacy: Some(new),
                    },
                )?;
                let (chat, own) = w.messages[&m];
                let cp = w.chats[&chat];
                out.extend(
                    change(own.stricter(cp), new.stricter(cp)).map(|op| (Entity::Message, m, op)),
                );
                w.messages.insert(m, (chat, new));
            }
        }
        Op::EditMessage(i) => {
            if let Some(m) = pick(w.messages.keys().copied(), i) {
                tx.update_message(
                    m,
                    &MessagePatch {
                        content: Some("edited".into()),
                        privacy: None,
                    },
                )?;
                let (chat, own) = w.messages[&m];
                if own.stricter(w.chats[&chat]) != Privacy::LocalOnly {
                    out.push((Entity::Message, m, ChangeOp::Update));
                }
            }
        }
        Op::DeleteMessage(i) => {
            if let Some(m) = pick(w.messages.keys().copied(), i) {
                tx.delete::<Message>(m)?;
                let (chat, own) = w.messages.remove(&m).unwrap();
                if own.stricter(w.chats[&chat]) != Privacy::LocalOnly {
                    out.push((Entity::Message, m, ChangeOp::Delete));
                }
            }
        }
        Op::DeleteChat(i) => {
            if let Some(chat) = pick(w.chats.keys().copied(), i) {
                tx.delete::<Chat>(chat)?;
                let p = w.chats.remove(&chat).unwrap();
                w.messages.retain(|_, (c, _)| *c != chat);
                if p != Privacy::LocalOnly {
                    out.push((Entity::Chat, chat, ChangeOp::Delete));
                }
            }
        }
    }
    Ok(out)
}

fn stored(store: &mut Store) -> World {
    store
        .read(|tx| {
            let mut w = World::default();
            for c in tx
                .list::<Chat>(&ListQuery {
                    limit: 1000,
                    ..Default::default()
                })?
                .items
            {
                w.chats.insert(c.id, c.privacy);
            }
            for m in tx
                .list::<Message>(&ListQuery {
                    limit: 1000,
                    ..Default::default()
                })?
                .items
            {
                w.messages.insert(m.id, (m.chat_id, m.privacy));
            }
            Ok(w)
        })
        .unwrap()
}

proptest! {
    #![proptest_config(Config {
        cases: 48,
        rng_seed: RngSeed::Fixed(0xacde_2026),
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn capture_matches_the_model(txs in proptest::collection::vec((mode(), proptest::collection::vec(op(), 1..8)), 1..25)) {
        let (_dir, mut store) = temp_store();
        let mut world = World::default();
        let mut expected: Expected = Vec::new();
        for (mode, ops) in &txs {
            let mut next = world.clone();
            let run = |tx: &Tx<'_>| {
                let mut added = Vec::new();
                for op in ops {
                    added.extend(apply(tx, &mut next, op)?);
                }
                match mode {
                    Mode::RollBack => Err(StoreError::invalid("test", "roll back")),
                    _ => Ok(added),
                }
            };
            let result = match mode {
                Mode::Remote => store.apply_remote(run),
                _ => store.write(run),
            };
            match (mode, result) {
                (Mode::Commit, Ok(added)) => {
                    expected.extend(added);
                    world = next;
                }
                (Mode::Remote, Ok(_)) => world = next,
                (Mode::RollBack, Err(_)) => {}
                (_, other) => prop_assert!(false, "unexpected outcome {other:?}"),
            }
        }
        prop_assert_eq!(entries(&mut store), expected);
        let got = stored(&mut store);
        prop_assert_eq!(got.chats, world.chats);
        prop_assert_eq!(got.messages, world.messages);
    }
}

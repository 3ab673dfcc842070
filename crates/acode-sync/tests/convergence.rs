//! Convergence property test: three devices, random interleavings of
//! creates, updates, deletes, privacy changes and syncs (fixed seed). After
//! a final sync round every device and PostgreSQL hold the same data, no
//! change is left unsettled, and every conflict has its preserved loser.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use acode_store::{EntryStatus, Id, MessagePatch, Privacy};
use acode_testkit::TestDb;
use common::{Dev, Fault, pg};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

#[derive(Clone, Debug)]
enum Step {
    NewChat(usize),
    Rename(usize, usize, u8),
    Delete(usize, usize),
    Message(usize, usize),
    EditMessage(usize, usize, u8),
    Privacy(usize, usize, Privacy),
    Sync(usize),
    /// A sync whose push is applied and whose answer is lost.
    LostReply(usize),
    /// Tombstones purged behind every device.
    Purge,
}

fn step() -> impl Strategy<Value = Step> {
    let dev = 0..3usize;
    let pick = 0..8usize;
    let level = prop_oneof![
        Just(Privacy::Full),
        Just(Privacy::Redacted),
        Just(Privacy::LocalOnly)
    ];
    prop_oneof![
        2 => dev.clone().prop_map(Step::NewChat),
        3 => (dev.clone(), pick.clone(), any::<u8>()).prop_map(|(d, c, t)| Step::Rename(d, c, t)),
        1 => (dev.clone(), pick.clone()).prop_map(|(d, c)| Step::Delete(d, c)),
        3 => (dev.clone(), pick.clone()).prop_map(|(d, c)| Step::Message(d, c)),
        2 => (dev.clone(), pick.clone(), any::<u8>()).prop_map(|(d, m, t)| Step::EditMessage(d, m, t)),
        2 => (dev.clone(), pick.clone(), level).prop_map(|(d, c, l)| Step::Privacy(d, c, l)),
        4 => dev.clone().prop_map(Step::Sync),
        1 => dev.prop_map(Step::LostReply),
        1 => Just(Step::Purge),
    ]
}

/// The shared view of a device: chats (id → privacy, title if full) and
/// messages (id → chat, own privacy, content if effectively full), without
/// what is local_only there.
type View = (
    BTreeMap<String, (String, Option<String>)>,
    BTreeMap<String, (String, String, Option<String>)>,
);

fn device_view(dev: &mut Dev) -> View {
    let conn = dev.store.connection();
    let mut chats = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT id, privacy, title FROM chats WHERE privacy != 'local_only'")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (id, privacy, title) = row.unwrap();
        let title = (privacy == "full").then_some(title);
        chats.insert(id, (privacy, title));
    }
    let mut messages = BTreeMap::new();
    let mut stmt = conn
        .prepare(
            "SELECT m.id, m.chat_id, m.privacy, acode_stricter(m.privacy, c.privacy), m.content
             FROM messages m JOIN chats c ON c.id = m.chat_id
             WHERE acode_stricter(m.privacy, c.privacy) != 'local_only'",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (id, chat, own, effective, content) = row.unwrap();
        messages.insert(id, (chat, own, (effective == "full").then_some(content)));
    }
    (chats, messages)
}

async fn server_view(db: &TestDb) -> View {
    let client = pg(db).await;
    let mut chats = BTreeMap::new();
    for r in client
        .query(
            "SELECT id, privacy, title FROM chats WHERE NOT deleted",
            &[],
        )
        .await
        .unwrap()
    {
        let privacy: String = r.get(1);
        let title: Option<String> = r.get(2);
        chats.insert(
            r.get(0),
            (privacy.clone(), title.filter(|_| privacy == "full")),
        );
    }
    let mut messages = BTreeMap::new();
    let rows = client
        .query(
            "SELECT m.id, m.chat_id, m.privacy, m.content, c.privacy FROM messages m
             JOIN chats c ON c.tenant_id = m.tenant_id AND c.id = m.chat_id WHERE NOT m.deleted",
            &[],
        )
        .await
        .unwrap();
    for r in rows {
        let own: String = r.get(2);
        let chat_level: String = r.get(4);
        let full = own == "full" && chat_level == "full";
        let content: Option<String> = r.get(3);
        messages.insert(r.get(0), (r.get(1), own, content.filter(|_| full)));
    }
    (chats, messages)
}

/// The `i`-th row (modulo) of a table on this device, if it has any.
fn pick(dev: &mut Dev, table: &str, i: usize) -> Option<Id> {
    let conn = dev.store.connection();
    let ids: Vec<String> = conn
        .prepare(&format!("SELECT id FROM {table} ORDER BY id"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    ids.get(i % ids.len().max(1)).map(|id| id.parse().unwrap())
}

async fn play(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let db = TestDb::create();
    let mut devs = [Dev::new(&db), Dev::new(&db), Dev::new(&db)];
    let mut n = 0u32;
    for s in steps {
        n += 1;
        match s {
            Step::NewChat(d) => {
                devs[d].chat(&format!("chat {n}"));
            }
            Step::Rename(d, c, t) => {
                if let Some(id) = pick(&mut devs[d], "chats", c) {
                    devs[d].rename(id, &format!("title {t} by {d}"));
                }
            }
            Step::Delete(d, c) => {
                if let Some(id) = pick(&mut devs[d], "chats", c) {
                    devs[d].delete_chat(id);
                }
            }
            Step::Message(d, c) => {
                if let Some(id) = pick(&mut devs[d], "chats", c) {
                    devs[d].message(id, &format!("message {n} from {d}"));
                }
            }
            Step::EditMessage(d, m, t) => {
                if let Some(id) = pick(&mut devs[d], "messages", m) {
                    let patch = MessagePatch {
                        content: Some(format!("edit {t} by {d}")),
                        ..MessagePatch::default()
                    };
                    devs[d]
                        .store
                        .write(|tx| tx.update_message(id, &patch))
                        .unwrap();
                }
            }
            Step::Privacy(d, c, level) => {
                if let Some(id) = pick(&mut devs[d], "chats", c) {
                    devs[d].set_privacy(id, level);
                }
            }
            Step::Sync(d) => {
                devs[d].sync().await;
            }
            Step::LostReply(d) => {
                devs[d].net.set(Fault::LoseReply);
                devs[d].sync().await;
                devs[d].net.set(Fault::None);
                devs[d].advance(std::time::Duration::from_secs(600));
            }
            Step::Purge => {
                devs[0].remote.migrate().await.unwrap();
                let client = pg(&db).await;
                let tenant = client
                    .query_opt("SELECT id FROM sync_tenants WHERE name = 'default'", &[])
                    .await
                    .unwrap();
                if let Some(row) = tenant {
                    let tenant: String = row.get(0);
                    devs[0]
                        .remote
                        .purge_tombstones(&tenant, std::time::Duration::from_secs(3600))
                        .await
                        .unwrap();
                }
            }
        }
    }
    for _ in 0..3 {
        for d in devs.iter_mut() {
            d.sync().await;
        }
    }
    let server = server_view(&db).await;
    for (i, d) in devs.iter_mut().enumerate() {
        let view = device_view(d);
        prop_assert_eq!(&view.0, &server.0, "chats of device {}", i);
        prop_assert_eq!(&view.1, &server.1, "messages of device {}", i);
        // Nothing waits; a failed entry is only one whose row is gone here
        // (e.g. a message written into a chat deleted elsewhere).
        for e in d.queue() {
            prop_assert_eq!(
                e.status,
                EntryStatus::Failed,
                "device {} left {:?} unsettled",
                i,
                e
            );
            let gone = match e.entity {
                acode_store::Entity::Chat => d.get_chat(e.entity_id).is_none(),
                _ => d.get_message(e.entity_id).is_none(),
            };
            prop_assert!(
                gone,
                "device {} has a failed entry for a live row: {:?}",
                i,
                e
            );
        }
        for c in d.conflicts() {
            prop_assert!(!c.loser.is_null(), "conflict {} has its loser", c.id);
            let path = c.preserved_path.clone().unwrap();
            prop_assert!(std::path::Path::new(&path).exists(), "{} was written", path);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: 24,
        rng_seed: RngSeed::Fixed(0xacde_5eed),
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn three_devices_converge(steps in proptest::collection::vec(step(), 10..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(play(steps))?;
    }
}

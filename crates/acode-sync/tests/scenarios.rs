//! The five user scenarios of the sync engine, against a real PostgreSQL
//! (a fresh database per test).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use acode_store::EntryStatus;
use acode_sync::Mode;
use acode_testkit::TestDb;
use common::{Dev, Fault, pg, pg_chat, pg_count};

#[tokio::test]
async fn written_offline_arrives_once_connected() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    dev.net.set(Fault::Unreachable);
    let chat = dev.chat("Feature: Auth");
    let msg = dev.message(chat, "hello");

    let offline = dev.sync().await;
    assert_eq!(offline.mode, Mode::Offline);
    assert_eq!(offline.uploaded, 0);
    assert_eq!(
        dev.count(EntryStatus::InFlight),
        2,
        "frozen, waiting to be sent"
    );

    dev.net.set(Fault::None);
    let online = dev.sync().await;
    assert_eq!(online.mode, Mode::Online);
    assert_eq!(online.uploaded, 2);
    assert!(dev.queue().is_empty());

    let client = pg(&db).await;
    let (title, privacy, version, deleted) = pg_chat(&client, chat).await.unwrap();
    assert_eq!(
        (title.as_deref(), privacy.as_str(), version, deleted),
        (Some("Feature: Auth"), "full", 1, false)
    );
    let content: String = client
        .query_one(
            "SELECT content FROM messages WHERE id = $1",
            &[&msg.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(content, "hello");
    // Through the sync server, the device is one `admin device add` made:
    // it authenticated with a token.
    let has_token: bool = client
        .query_one(
            "SELECT token_hash IS NOT NULL FROM sync_devices WHERE id = $1",
            &[&dev.device_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(has_token, common::over_http());
}

#[tokio::test]
async fn failing_remote_retries_with_growing_delays_then_drains() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    let chat = dev.chat("retry me");
    dev.net.set(Fault::Transient);
    let mut delays = Vec::new();
    for attempt in 1..=3 {
        let before = (dev.cfg.clock)();
        let report = dev.sync().await;
        assert!(report.last_error.is_some());
        let q = dev.queue();
        assert_eq!(q[0].attempts, attempt);
        delays.push(q[0].next_retry_at.unwrap() - before);
        // Not due yet: a second run sends nothing.
        let pushes = dev.net.pushes.load(std::sync::atomic::Ordering::SeqCst);
        dev.sync().await;
        assert_eq!(
            dev.net.pushes.load(std::sync::atomic::Ordering::SeqCst),
            pushes
        );
        dev.advance(Duration::from_secs(600));
    }
    assert!(
        delays.windows(2).all(|w| w[1] >= w[0]),
        "delays grow: {delays:?}"
    );
    assert!(delays[0] >= 500 && delays[2] >= 2000, "{delays:?}");

    dev.net.set(Fault::None);
    let report = dev.sync().await;
    assert_eq!(report.uploaded, 1);
    assert!(dev.queue().is_empty());
    assert_eq!(pg_chat(&pg(&db).await, chat).await.unwrap().2, 1);
}

#[tokio::test]
async fn a_hundred_quick_writes_leave_in_batches_of_at_most_fifty() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    for i in 0..100 {
        dev.chat(&format!("chat {i}"));
    }
    let report = dev.sync().await;
    assert_eq!(report.uploaded, 100);
    assert_eq!(report.batches, 2);
    assert_eq!(*dev.net.batch_sizes.lock().unwrap(), vec![50, 50]);
    let client = pg(&db).await;
    assert_eq!(pg_count(&client, "SELECT count(*) FROM chats").await, 100);
    assert_eq!(
        pg_count(&client, "SELECT count(*) FROM sync_push_batches").await,
        2
    );
}

#[tokio::test]
async fn the_same_chat_renamed_on_two_devices_converges_and_keeps_the_loser() {
    let db = TestDb::create();
    let mut a = Dev::new(&db);
    let mut b = Dev::new(&db);
    let chat = a.chat("original");
    a.sync().await;
    b.sync().await;
    assert_eq!(b.get_chat(chat).unwrap().title, "original");

    a.rename(chat, "from A");
    b.rename(chat, "from B"); // later: wins under last_write_wins
    assert_eq!(a.sync().await.uploaded, 1);
    let report = b.sync().await;
    assert_eq!(report.conflicts, 1);
    a.sync().await;

    assert_eq!(a.get_chat(chat).unwrap().title, "from B");
    assert_eq!(b.get_chat(chat).unwrap().title, "from B");
    let client = pg(&db).await;
    let (title, _, version, _) = pg_chat(&client, chat).await.unwrap();
    assert_eq!((title.as_deref(), version), (Some("from B"), 3));

    // The losing version is kept, in the database and as a file.
    let conflicts = b.conflicts();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].resolution, "local_applied");
    assert_eq!(conflicts[0].loser["data"]["title"], "from A");
    let path = conflicts[0].preserved_path.clone().unwrap();
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(kept["data"]["title"], "from A");
    assert!(path.ends_with(&format!("chat_{chat}_v2.json")), "{path}");
    let state = b
        .store
        .read(|tx| tx.row_state(acode_store::Entity::Chat, chat))
        .unwrap()
        .unwrap();
    assert_eq!(state.status, acode_store::RowStatus::Conflict);
    assert_eq!(
        pg_count(&client, "SELECT count(*) FROM sync_conflict_log").await,
        1
    );
}

#[tokio::test]
async fn remote_wins_keeps_the_server_row_and_preserves_the_local_edit() {
    let db = TestDb::create();
    let mut a = Dev::new(&db);
    let mut b = Dev::new(&db);
    b.cfg.policy = acode_protocol::Policy::RemoteWins;
    let chat = a.chat("original");
    a.sync().await;
    b.sync().await;
    a.rename(chat, "from A");
    a.sync().await;
    b.rename(chat, "from B");
    b.sync().await;
    a.sync().await;
    assert_eq!(b.get_chat(chat).unwrap().title, "from A");
    assert_eq!(a.get_chat(chat).unwrap().title, "from A");
    let conflicts = b.conflicts();
    assert_eq!(conflicts[0].resolution, "remote_kept");
    assert_eq!(conflicts[0].loser["data"]["title"], "from B");
    assert!(
        b.queue().is_empty(),
        "the losing entry is settled, not retried"
    );
}

#[tokio::test]
async fn pause_write_resume_drains() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    dev.store.write(|tx| tx.set_paused(true)).unwrap();
    let chat = dev.chat("while paused");
    let report = dev.sync().await;
    assert_eq!(report.mode, Mode::Paused);
    assert_eq!(dev.count(EntryStatus::Pending), 1);
    assert_eq!(dev.net.pushes.load(std::sync::atomic::Ordering::SeqCst), 0);

    dev.store.write(|tx| tx.set_paused(false)).unwrap();
    let report = dev.sync().await;
    assert_eq!((report.mode, report.uploaded), (Mode::Online, 1));
    assert!(dev.queue().is_empty());
    assert!(pg_chat(&pg(&db).await, chat).await.is_some());
}

//! The rules of DESIGN.md §15 that concern the engine, one test (or more)
//! named after each, on devices syncing through a real PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use acode_protocol::{Change, Entity, Id, Op, Policy, Privacy, PushRequest};
use acode_store::{EntryStatus, RowStatus};
use acode_sync::Mode;
use acode_testkit::TestDb;
use common::{Dev, Fault, pg, pg_chat, pg_count};
use serde_json::json;

#[tokio::test]
async fn rule_1_a_lost_reply_then_a_new_edit_of_the_row_still_reaches_postgres() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    let chat = dev.chat("v1");
    dev.net.set(Fault::LoseReply);
    let report = dev.sync().await;
    assert_eq!(report.uploaded, 0, "the answer never came");
    assert_eq!(dev.count(EntryStatus::InFlight), 1);

    // A new edit while the first change is unacknowledged: it waits for
    // that answer instead of being swallowed as a "duplicate".
    dev.rename(chat, "v2");
    dev.advance(Duration::from_secs(600));
    dev.net.set(Fault::None);
    let report = dev.sync().await;
    assert_eq!(
        report.uploaded, 2,
        "the frozen batch (duplicate), then the new edit"
    );
    assert!(dev.queue().is_empty());
    let client = pg(&db).await;
    let (title, _, version, _) = pg_chat(&client, chat).await.unwrap();
    assert_eq!((title.as_deref(), version), (Some("v2"), 2));
    // The new edit was planned only once the first change was answered
    // (the next batch is frozen while the resend is pushed): it went up on
    // version 1, not as a rival of its own row.
    assert!(dev.conflicts().is_empty());
    assert_eq!(
        pg_count(&client, "SELECT count(*) FROM sync_conflict_log").await,
        0
    );
    // The resend was exactly the frozen batch, under its key.
    let keys = dev.net.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0], keys[1]);
    assert_ne!(keys[1], keys[2]);
}

#[tokio::test]
async fn rule_2_an_outage_of_a_minute_costs_no_attempts_and_all_drains_after() {
    let db = TestDb::create();
    let (proxy, mut dev) = Dev::proxied(&db).await;
    let first = dev.chat("before the outage");
    dev.sync().await;
    proxy.down();
    let mut written = vec![];
    for i in 0..6 {
        written.push(dev.chat(&format!("during the outage {i}")));
        let report = dev.sync().await;
        assert_eq!(report.mode, Mode::Offline);
        assert!(report.last_error.unwrap().contains("ACODE-SYNC-001"));
        dev.advance(Duration::from_secs(10));
    }
    assert!(
        dev.queue()
            .iter()
            .all(|e| e.attempts == 0 && e.status != EntryStatus::Failed)
    );
    proxy.up();
    let report = dev.sync().await;
    assert_eq!(report.mode, Mode::Online);
    assert_eq!(report.uploaded, 6);
    let client = pg(&db).await;
    for id in written.into_iter().chain([first]) {
        assert!(pg_chat(&client, id).await.is_some());
    }
}

#[tokio::test]
async fn rule_3_a_message_sent_before_its_chat_could_be_waits_then_both_arrive() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    let chat = dev.chat("parent");
    dev.net.set(Fault::Transient);
    dev.sync().await; // the chat's batch backs off
    dev.net.set(Fault::None);
    let msg = dev.message(chat, "child");
    let report = dev.sync().await;
    assert_eq!(report.uploaded, 0, "the message waits for its chat");
    assert_eq!(report.failed, 0, "and is not sent to be rejected");
    dev.advance(Duration::from_secs(600));
    let report = dev.sync().await;
    assert_eq!(report.uploaded, 2);
    let client = pg(&db).await;
    assert_eq!(
        pg_count(
            &client,
            &format!("SELECT count(*) FROM messages WHERE id = '{msg}'")
        )
        .await,
        1
    );
}

#[tokio::test]
async fn rule_3_a_change_larger_than_the_byte_limit_goes_alone() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    dev.cfg.batch_bytes_max = 2_000;
    let chat = dev.chat("small");
    dev.message(chat, &"x".repeat(5_000));
    dev.message(chat, "small too");
    dev.sync().await;
    let sizes = dev.net.batch_sizes.lock().unwrap().clone();
    assert_eq!(
        sizes,
        vec![1, 1, 1],
        "chat, the big message alone, then the rest"
    );
    assert!(dev.queue().is_empty());
}

#[tokio::test]
async fn rule_3_a_newer_change_supersedes_a_failed_one() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    dev.cfg.retry.max_attempts = 1;
    let chat = dev.chat("first");
    dev.net.set(Fault::Transient);
    dev.sync().await;
    assert_eq!(dev.count(EntryStatus::Failed), 1);
    dev.net.set(Fault::None);
    dev.rename(chat, "second");
    let report = dev.sync().await;
    assert_eq!(report.uploaded, 1);
    assert!(
        dev.queue().is_empty(),
        "the failed entry settled with the newer one"
    );
    assert_eq!(
        pg_chat(&pg(&db).await, chat).await.unwrap().0.as_deref(),
        Some("second")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_4_two_devices_pushing_the_same_row_at_once_lose_no_update() {
    let db = TestDb::create();
    let mut a = Dev::new(&db);
    let mut b = Dev::new(&db);
    let chat = a.chat("original");
    a.sync().await;
    b.sync().await;
    a.rename(chat, "from A");
    b.rename(chat, "from B");
    let (ra, rb) = tokio::join!(
        acode_sync::sync_now(&mut a.store, &a.net, &a.cfg),
        acode_sync::sync_now(&mut b.store, &b.net, &b.cfg)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.conflicts + rb.conflicts, 1, "one applied, one conflict");
    a.sync().await;
    b.sync().await;
    let client = pg(&db).await;
    let (title, _, _, _) = pg_chat(&client, chat).await.unwrap();
    let title = title.unwrap();
    assert_eq!(a.get_chat(chat).unwrap().title, title);
    assert_eq!(b.get_chat(chat).unwrap().title, title);
    // The other edit is not lost: it is the preserved loser.
    let loser = if title == "from A" {
        "from B"
    } else {
        "from A"
    };
    let logged = pg_count(
        &client,
        &format!("SELECT count(*) FROM sync_conflict_log WHERE winner::text LIKE '%{loser}%' OR loser::text LIKE '%{loser}%'"),
    )
    .await;
    assert_eq!(logged, 1);
}

#[tokio::test]
async fn rule_5_a_devices_own_change_coming_back_is_not_a_conflict() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    let chat = dev.chat("mine");
    dev.sync().await;
    dev.rename(chat, "still mine");
    dev.sync().await;
    // Pull everything again from the start: all of it is this device's.
    dev.store.write(|tx| tx.reset_cursor()).unwrap();
    let report = dev.sync().await;
    assert_eq!(report.conflicts, 0);
    assert!(dev.conflicts().is_empty());
    let state = dev
        .store
        .read(|tx| tx.row_state(Entity::Chat, chat))
        .unwrap()
        .unwrap();
    assert_eq!((state.status, state.server_version), (RowStatus::Synced, 2));
}

#[tokio::test]
async fn rule_6_a_delete_beats_a_concurrent_update_and_takes_the_children() {
    let db = TestDb::create();
    let mut a = Dev::new(&db);
    let mut b = Dev::new(&db);
    let chat = a.chat("doomed");
    let msg = a.message(chat, "child");
    a.sync().await;
    b.sync().await;
    assert!(b.get_message(msg).is_some());

    a.delete_chat(chat);
    b.rename(chat, "renamed meanwhile"); // later, but a delete wins anyway
    a.sync().await;
    b.sync().await;
    a.sync().await;
    assert!(b.get_chat(chat).is_none(), "no resurrection");
    assert!(
        b.get_message(msg).is_none(),
        "children go with their parent"
    );
    assert!(a.get_chat(chat).is_none());
    let client = pg(&db).await;
    let (title, _, _, deleted) = pg_chat(&client, chat).await.unwrap();
    assert!(deleted && title.is_none());
    assert_eq!(
        pg_count(&client, "SELECT count(*) FROM messages WHERE NOT deleted").await,
        0
    );
    // A new device receives nothing of them.
    let mut c = Dev::new(&db);
    c.sync().await;
    assert!(c.get_chat(chat).is_none() && c.get_message(msg).is_none());
    assert_eq!(b.conflicts()[0].loser["data"]["title"], "renamed meanwhile");
}

#[tokio::test]
async fn rule_7_a_chat_made_redacted_leaves_no_content_remotely_and_takes_none_locally() {
    let db = TestDb::create();
    let mut a = Dev::new(&db);
    let mut b = Dev::new(&db);
    let chat = a.chat("secret plans");
    let msg = a.message(chat, "the password is hunter2");
    a.sync().await;
    b.sync().await;
    let b_msg = b.message(chat, "written on B");
    b.sync().await;

    a.set_privacy(chat, Privacy::Redacted);
    a.sync().await;
    let client = pg(&db).await;
    let (title, privacy, _, _) = pg_chat(&client, chat).await.unwrap();
    assert_eq!((title, privacy.as_str()), (None, "redacted"));
    assert_eq!(
        pg_count(
            &client,
            "SELECT count(*) FROM messages WHERE content IS NOT NULL"
        )
        .await,
        0
    );
    let leaked = pg_count(
        &client,
        "SELECT count(*) FROM sync_changes WHERE data::text LIKE '%hunter2%' OR data::text LIKE '%secret plans%' OR data::text LIKE '%written on B%'",
    )
    .await;
    assert_eq!(leaked, 0, "the feed serves no withdrawn content");

    // B learns the chat is redacted and loses none of its own content.
    b.sync().await;
    let on_b = b.get_chat(chat).unwrap();
    assert_eq!(
        (on_b.title.as_str(), on_b.privacy),
        ("secret plans", Privacy::Redacted)
    );
    assert_eq!(b.get_message(b_msg).unwrap().content, "written on B");
    assert_eq!(
        b.get_message(msg).unwrap().content,
        "the password is hunter2"
    );
    // A new device gets the rows without their content.
    let mut c = Dev::new(&db);
    c.sync().await;
    assert_eq!(c.get_chat(chat).unwrap().title, "(redacted)");
    assert_eq!(c.get_message(msg).unwrap().content, "");
}

#[tokio::test]
async fn rule_7_a_privacy_downgrade_racing_a_later_rename_keeps_the_stricter_level() {
    let db = TestDb::create();
    let mut a = Dev::new(&db);
    let mut b = Dev::new(&db);
    let chat = a.chat("open");
    a.sync().await;
    b.sync().await;
    a.set_privacy(chat, Privacy::Redacted);
    b.rename(chat, "renamed later"); // the later edit wins the content...
    a.sync().await;
    b.sync().await;
    a.sync().await;
    // ...but not the level: the stricter one stays.
    let client = pg(&db).await;
    let (title, privacy, _, _) = pg_chat(&client, chat).await.unwrap();
    assert_eq!((title, privacy.as_str()), (None, "redacted"));
    assert_eq!(a.get_chat(chat).unwrap().privacy, Privacy::Redacted);
    assert_eq!(b.get_chat(chat).unwrap().privacy, Privacy::Redacted);
}

#[tokio::test]
async fn rule_12_a_pulled_hlc_moves_the_local_clock_past_it() {
    let db = TestDb::create();
    let mut a = Dev::new(&db);
    let mut b = Dev::new(&db);
    let chat = a.chat("shared");
    a.sync().await;
    // Another device stamps its change 50 s ahead of everyone's clock (the
    // server accepts up to 60 s).
    let ahead = (chrono::Utc::now() + chrono::Duration::seconds(50))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let future_hlc = format!("{ahead}-0000-zz-other-device");
    let remote = acode_remote::Remote::new(&db.url(), 1).unwrap();
    let other = remote
        .register_device("default", "zz-other-device", "other")
        .await
        .unwrap();
    let change = Change {
        key: Id::new(),
        entity: Entity::Chat,
        id: chat,
        op: Op::Upsert,
        base_version: 1,
        hlc: future_hlc.clone(),
        data: json!({"title": "from the future"}).as_object().cloned(),
    };
    let req = PushRequest {
        device_oldest_unsettled: None,
        policy: Policy::LastWriteWins,
        changes: vec![change],
    };
    remote.push(&other, Id::new(), &req).await.unwrap();
    b.sync().await;
    b.rename(chat, "after it");
    let entry = b.queue().pop().unwrap();
    assert!(entry.hlc > future_hlc, "{} > {future_hlc}", entry.hlc);
}

#[tokio::test]
async fn rule_13_one_worker_at_a_time_and_a_fenced_one_writes_nothing() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    let now = (dev.cfg.clock)();
    dev.store
        .write(|tx| tx.acquire_lease("worker-1", now, 30_000, |_| false))
        .unwrap()
        .unwrap();
    let err = acode_sync::sync_now(&mut dev.store, &dev.net, &dev.cfg)
        .await
        .unwrap_err();
    assert!(
        matches!(err, acode_sync::SyncError::LeaseHeld(ref who) if who == "worker-1"),
        "{err}"
    );

    // The lease expires; a new holder gets a new epoch; the old one is fenced.
    let old = dev.store.read(|tx| tx.lease()).unwrap().unwrap().epoch;
    dev.store
        .write(|tx| tx.acquire_lease("worker-2", now + 31_000, 30_000, |_| false))
        .unwrap()
        .unwrap();
    dev.chat("written meanwhile");
    let fenced = acode_sync::upload::upload_once(&mut dev.store, &dev.net, &dev.cfg, old).await;
    assert!(matches!(
        fenced,
        Err(acode_sync::SyncError::Store(
            acode_store::StoreError::Fenced(_)
        ))
    ));
    assert_eq!(dev.net.pushes.load(Ordering::SeqCst), 0);
    assert_eq!(
        dev.count(EntryStatus::Pending),
        1,
        "nothing was frozen or sent"
    );

    // The cursor never moves back.
    dev.store.write(|tx| tx.advance_cursor("50")).unwrap();
    dev.store.write(|tx| tx.advance_cursor("7")).unwrap();
    assert_eq!(dev.store.read(|tx| tx.cursor()).unwrap(), "50");
}

#[tokio::test]
async fn rule_15_an_unappliable_pulled_change_is_set_aside_and_the_cursor_advances() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    let remote = acode_remote::Remote::new(&db.url(), 1).unwrap();
    remote.migrate().await.unwrap();
    let other = remote
        .register_device("default", "other-device", "other")
        .await
        .unwrap();
    let mk = |title: &str| Change {
        key: Id::new(),
        entity: Entity::Chat,
        id: Id::new(),
        op: Op::Upsert,
        base_version: 0,
        hlc: format!(
            "{}-0000-other-device",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
        data: json!({"title": title, "privacy": "full", "created_at": "2026-11-22T01:02:03.123Z",
                     "updated_at": "2026-11-22T01:02:03.123Z"})
        .as_object()
        .cloned(),
    };
    // PostgreSQL takes an empty title; the local schema refuses it.
    let (bad, good) = (mk(""), mk("fine"));
    let req = PushRequest {
        device_oldest_unsettled: None,
        policy: Policy::LastWriteWins,
        changes: vec![bad.clone(), good.clone()],
    };
    let answer = remote.push(&other, Id::new(), &req).await.unwrap();
    let last_seq = match &answer.results[1] {
        acode_protocol::ItemResult::Applied { seq, .. } => *seq,
        other => panic!("{other:?}"),
    };
    let report = dev.sync().await;
    assert_eq!(report.downloaded, 1);
    assert!(dev.get_chat(good.id).is_some());
    assert!(dev.get_chat(bad.id).is_none());
    let inbox = dev.store.read(|tx| tx.inbox()).unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(
        (inbox[0].change.id, inbox[0].status.as_str()),
        (bad.id, "error")
    );
    assert!(
        inbox[0].error.as_deref().unwrap().contains("ACODE-STORE"),
        "{:?}",
        inbox[0].error
    );
    assert_eq!(
        dev.store.read(|tx| tx.cursor()).unwrap(),
        last_seq.to_string()
    );
}

#[tokio::test]
async fn max_retries_fail_with_sync_004_and_sync_retry_brings_them_back() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    let chat = dev.chat("unlucky");
    dev.net.set(Fault::Transient);
    for _ in 0..5 {
        dev.sync().await;
        dev.advance(Duration::from_secs(600));
    }
    let q = dev.queue();
    assert_eq!(q[0].status, EntryStatus::Failed);
    assert!(
        q[0].last_error
            .as_deref()
            .unwrap()
            .starts_with("ACODE-SYNC-004"),
        "{:?}",
        q[0].last_error
    );
    assert_eq!(dev.net.pushes.load(Ordering::SeqCst), 5);

    dev.net.set(Fault::None);
    assert_eq!(dev.sync().await.uploaded, 0, "failed entries stay failed");
    let retried = dev.store.write(|tx| tx.retry_failed(&[], false)).unwrap();
    assert_eq!(retried.len(), 1);
    assert_ne!(retried[0].0, retried[0].1, "a fresh key");
    assert_eq!(dev.sync().await.uploaded, 1);
    assert!(pg_chat(&pg(&db).await, chat).await.is_some());
}

#[tokio::test]
async fn a_rejected_entry_fails_at_once_and_does_not_hold_up_the_others() {
    let db = TestDb::create();
    let mut a = Dev::new(&db);
    let mut b = Dev::new(&db);
    let chat = a.chat("shared");
    a.sync().await;
    b.sync().await;
    a.delete_chat(chat);
    a.sync().await;
    // B has not heard of the delete: its new message is refused by the
    // server (parent gone), its other chat goes through in the same batch.
    let msg = b.message(chat, "too late");
    let other = b.chat("unrelated");
    let report = b.sync().await;
    assert_eq!((report.uploaded, report.failed), (1, 1));
    assert_eq!(
        b.net.pushes.load(Ordering::SeqCst),
        1,
        "one batch for both, no retries"
    );
    let failed: Vec<_> = b
        .queue()
        .into_iter()
        .filter(|e| e.status == EntryStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].entity_id, msg);
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("ACODE-SYNC-009")
    );
    assert!(pg_chat(&pg(&db).await, other).await.is_some());
    assert!(b.get_chat(chat).is_none(), "the delete arrived after");
}

#[tokio::test]
async fn a_batch_that_fails_does_not_stop_the_batches_behind_it() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    dev.cfg.batch_size = 2;
    let chats: Vec<Id> = (0..6).map(|i| dev.chat(&format!("chat {i}"))).collect();
    dev.net.set(Fault::TransientOnce);
    let report = dev.sync().await;
    // The first batch waits for its retry; the two behind it went up in
    // the same round (each frozen while the one before was pushed).
    assert_eq!((report.uploaded, report.failed), (4, 0), "{report:?}");
    assert_eq!(dev.net.pushes.load(Ordering::SeqCst), 3);
    let waiting: Vec<_> = dev
        .queue()
        .into_iter()
        .map(|e| (e.entity_id, e.attempts))
        .collect();
    assert_eq!(waiting, vec![(chats[0], 1), (chats[1], 1)]);
    // A row written while that batch waits goes up without waiting for it.
    let later = dev.chat("written while a batch waits");
    let report = dev.sync().await;
    assert_eq!(report.uploaded, 1, "{report:?}");
    assert!(pg_chat(&pg(&db).await, later).await.is_some());
    assert_eq!(dev.queue().len(), 2);
    dev.advance(Duration::from_secs(600));
    let report = dev.sync().await;
    assert_eq!(report.uploaded, 2);
    assert!(dev.queue().is_empty());
    let client = pg(&db).await;
    for id in chats {
        assert!(pg_chat(&client, id).await.is_some());
    }
}

#[tokio::test]
async fn rule_1_a_resent_batch_is_the_same_batch_even_when_rows_interleave() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    // Entries interleave: chat A, chat B, chat A again (coalesced into A's
    // change, whose first entry comes before B's).
    let a = dev.chat("a");
    let b = dev.chat("b");
    dev.rename(a, "a2");
    let m = dev.message(b, "child of b");
    dev.net.set(Fault::LoseReply);
    dev.sync().await;
    dev.net.set(Fault::None);
    dev.advance(Duration::from_secs(600));
    let report = dev.sync().await;
    assert_eq!((report.uploaded, report.failed), (3, 0), "{report:?}");
    let keys = dev.net.keys.lock().unwrap().clone();
    assert_eq!(keys[0], keys[1], "the same batch key");
    assert!(dev.queue().is_empty());
    let client = pg(&db).await;
    assert_eq!(pg_chat(&client, a).await.unwrap().0.as_deref(), Some("a2"));
    assert_eq!(
        pg_count(
            &client,
            &format!("SELECT count(*) FROM messages WHERE id = '{m}'")
        )
        .await,
        1
    );
    assert_eq!(
        pg_count(&client, "SELECT count(*) FROM sync_conflict_log").await,
        0
    );
}

#[tokio::test]
async fn rule_10_a_device_behind_purged_tombstones_resyncs_from_zero() {
    let db = TestDb::create();
    let mut a = Dev::new(&db);
    let mut b = Dev::new(&db);
    let gone = a.chat("deleted while B is away");
    let kept = a.chat("renamed while B is away");
    let private = a.chat("made local_only on B");
    a.sync().await;
    b.sync().await;
    b.set_privacy(private, Privacy::LocalOnly);
    b.sync().await; // withdrawn from the server by B itself
    a.delete_chat(gone);
    a.rename(kept, "renamed");
    a.sync().await;
    a.sync().await; // A has now pulled past its own changes
    // B is away long enough to count as inactive; the tombstone is purged.
    let client = pg(&db).await;
    let b_id = b.device_id.clone();
    client
        .execute(
            "UPDATE sync_devices SET last_seen_at = now() - interval '2 days' WHERE id = $1",
            &[&b_id],
        )
        .await
        .unwrap();
    let tenant: String = client
        .query_one("SELECT id FROM sync_tenants WHERE name = 'default'", &[])
        .await
        .unwrap()
        .get(0);
    let purged = a
        .remote
        .purge_tombstones(&tenant, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(purged.removed, 2, "the deleted chat and the withdrawn one");

    // B comes back with a change of its own: it resyncs, drops the row
    // deleted meanwhile, takes the rename, and its own change goes up.
    let mine = b.chat("written by B while away");
    let report = b.sync().await;
    assert_eq!(report.mode, Mode::Online, "{report:?}");
    b.sync().await;
    assert!(b.get_chat(gone).is_none(), "deleted remotely while away");
    assert_eq!(b.get_chat(kept).unwrap().title, "renamed");
    assert!(b.get_chat(mine).is_some());
    assert!(pg_chat(&client, mine).await.is_some());
    assert!(
        b.get_chat(private).is_some(),
        "a local_only row survives the resync"
    );
    assert!(!b.store.read(|tx| tx.resyncing()).unwrap());
}

/// Also rule 1 with batches overlapping: the new edit is not planned while
/// the answer to the row's change in flight (a conflict) is unknown.
#[tokio::test]
async fn a_conflict_won_while_the_row_was_edited_again_keeps_the_newer_edit() {
    let db = TestDb::create();
    let mut a = Dev::new(&db);
    let mut b = Dev::new(&db);
    let chat = a.chat("original");
    a.sync().await;
    b.sync().await;
    a.rename(chat, "from A");
    a.sync().await;
    b.rename(chat, "B, first"); // later than A's: B wins the conflict...
    b.net.set(Fault::LoseReply); // ...but its answer is lost
    b.sync().await;
    b.rename(chat, "B, second"); // and B edits again before it learns
    b.net.set(Fault::None);
    b.advance(Duration::from_secs(600));
    b.sync().await;
    b.sync().await;
    a.sync().await;
    assert_eq!(b.get_chat(chat).unwrap().title, "B, second");
    assert_eq!(a.get_chat(chat).unwrap().title, "B, second");
    assert_eq!(
        pg_chat(&pg(&db).await, chat).await.unwrap().0.as_deref(),
        Some("B, second")
    );
}

#[tokio::test]
async fn children_waiting_for_a_failed_parent_do_not_hold_up_other_rows() {
    let db = TestDb::create();
    let mut dev = Dev::new(&db);
    dev.cfg.retry.max_attempts = 1;
    let stuck = dev.chat("its create fails");
    dev.net.set(Fault::Transient);
    dev.sync().await;
    dev.net.set(Fault::None);
    assert_eq!(dev.count(EntryStatus::Failed), 1);
    // More waiting children than one planning window holds.
    dev.store
        .write(|tx| {
            for i in 0..260 {
                tx.add_message(&acode_store::NewMessage::new(
                    stuck,
                    acode_store::Role::User,
                    format!("waiting {i}"),
                ))?;
            }
            Ok(())
        })
        .unwrap();
    let other = dev.chat("unrelated");
    let report = dev.sync().await;
    assert_eq!(report.uploaded, 1, "{report:?}");
    assert!(pg_chat(&pg(&db).await, other).await.is_some());
    // Once the parent is retried, its children follow.
    dev.store.write(|tx| tx.retry_failed(&[], true)).unwrap();
    let report = dev.sync().await;
    assert_eq!(report.uploaded, 261);
}

#[tokio::test]
async fn rule_7_children_sent_by_a_device_that_missed_the_redaction_lose_their_content_on_the_server()
 {
    let db = TestDb::create();
    let mut a = Dev::new(&db);
    let mut b = Dev::new(&db);
    let chat = a.chat("soon redacted");
    a.sync().await;
    b.sync().await;
    a.set_privacy(chat, Privacy::Redacted);
    a.sync().await;
    // B has not pulled the redaction: it writes with content, and pushes
    // before it pulls.
    let msg = b.message(chat, "written by B, unaware");
    b.sync().await;
    let client = pg(&db).await;
    let content: Option<String> = client
        .query_one(
            "SELECT content FROM messages WHERE id = $1",
            &[&msg.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(content, None);
    let leaked = pg_count(
        &client,
        "SELECT count(*) FROM sync_changes WHERE data::text LIKE '%unaware%'",
    )
    .await;
    assert_eq!(leaked, 0);
    assert_eq!(
        b.get_message(msg).unwrap().content,
        "written by B, unaware",
        "B keeps its own"
    );
}

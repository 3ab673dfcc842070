//! The PostgreSQL side on its own: idempotency, per-change validation,
//! tenant isolation, clocks and the no-skipped-change guarantee, against a
//! real PostgreSQL (a fresh database per test).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use acode_protocol::{Change, Entity, Id, ItemResult, Op, Policy, PushRequest};
use acode_remote::{Device, Remote};
use acode_testkit::TestDb;
use serde_json::json;

async fn setup(db: &TestDb) -> (Remote, Device) {
    let remote = Remote::new(&db.url(), 8).unwrap();
    remote.migrate().await.unwrap();
    let device = remote
        .register_device("acme", &Id::new().to_string(), "laptop")
        .await
        .unwrap();
    (remote, device)
}

fn hlc(device: &Device) -> String {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!("{now}-0000-{}", device.device_id)
}

fn chat(device: &Device, id: Id, base: i64, title: &str) -> Change {
    Change {
        key: Id::new(),
        entity: Entity::Chat,
        id,
        op: Op::Upsert,
        base_version: base,
        hlc: hlc(device),
        data: json!({"title": title, "privacy": "full", "created_at": "2026-11-22T01:02:03.123Z",
                     "updated_at": "2026-11-22T01:02:03.123Z"})
        .as_object()
        .cloned(),
    }
}

fn batch(changes: Vec<Change>) -> PushRequest {
    PushRequest {
        device_oldest_unsettled: None,
        policy: Policy::LastWriteWins,
        changes,
    }
}

fn status(r: &ItemResult) -> &'static str {
    match r {
        ItemResult::Applied { .. } => "applied",
        ItemResult::Duplicate { .. } => "duplicate",
        ItemResult::Conflict { .. } => "conflict",
        ItemResult::Rejected { .. } => "rejected",
    }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn the_same_batch_pushed_twice_applies_once_and_gets_the_same_answer() {
    let db = TestDb::create();
    let (remote, dev) = setup(&db).await;
    let req = batch(vec![
        chat(&dev, Id::new(), 0, "one"),
        chat(&dev, Id::new(), 0, "two"),
    ]);
    let key = Id::new();
    let first = remote.push(&dev, key, &req).await.unwrap();
    let again = remote.push(&dev, key, &req).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(count(&db, "SELECT count(*) FROM chats").await, 2);
    assert_eq!(count(&db, "SELECT count(*) FROM sync_changes").await, 2);

    // The same changes under a new batch key (a resend after a lost reply
    // through another path): each is a duplicate, nothing is applied again.
    let replay = remote.push(&dev, Id::new(), &req).await.unwrap();
    assert!(
        replay.results.iter().all(|r| status(r) == "duplicate"),
        "{replay:?}"
    );
    assert_eq!(count(&db, "SELECT max(version) FROM chats").await, 1);
}

#[tokio::test]
async fn rule_8_a_key_reused_with_another_payload_is_refused() {
    let db = TestDb::create();
    let (remote, dev) = setup(&db).await;
    let id = Id::new();
    let original = chat(&dev, id, 0, "original");
    let key = Id::new();
    remote
        .push(&dev, key, &batch(vec![original.clone()]))
        .await
        .unwrap();

    let mut forged = original.clone();
    forged.data = chat(&dev, id, 0, "forged").data;
    let err = remote
        .push(&dev, key, &batch(vec![forged.clone()]))
        .await
        .unwrap_err();
    assert_eq!(
        err.code().code(),
        "ACODE-SYNC-007",
        "same batch key, other body"
    );

    let answer = remote
        .push(&dev, Id::new(), &batch(vec![forged]))
        .await
        .unwrap();
    match &answer.results[0] {
        ItemResult::Rejected { code, .. } => assert_eq!(code, "ACODE-SYNC-005"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM chats WHERE title = 'original'").await,
        1
    );
}

#[tokio::test]
async fn rule_8_the_ledger_is_pruned_below_the_oldest_unsettled_key_not_by_age() {
    let db = TestDb::create();
    let (remote, dev) = setup(&db).await;
    let changes: Vec<Change> = (0..4)
        .map(|i| chat(&dev, Id::new(), 0, &format!("c{i}")))
        .collect();
    remote
        .push(&dev, Id::new(), &batch(changes.clone()))
        .await
        .unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM sync_idempotency").await, 4);
    let mut next = batch(vec![chat(&dev, Id::new(), 0, "later")]);
    next.device_oldest_unsettled = Some(changes[2].key);
    remote.push(&dev, Id::new(), &next).await.unwrap();
    // Keys below the oldest unsettled one are gone; the rest stay.
    assert_eq!(count(&db, "SELECT count(*) FROM sync_idempotency").await, 3);
}

#[tokio::test]
async fn rule_4_a_bad_change_is_rejected_alone() {
    let db = TestDb::create();
    let (remote, dev) = setup(&db).await;
    let good = chat(&dev, Id::new(), 0, "good");
    let mut wrong_type = chat(&dev, Id::new(), 0, "x");
    wrong_type
        .data
        .as_mut()
        .unwrap()
        .insert("title".into(), json!(42));
    let mut bad_time = chat(&dev, Id::new(), 0, "x");
    bad_time
        .data
        .as_mut()
        .unwrap()
        .insert("created_at".into(), json!("yesterday"));
    let mut nul = chat(&dev, Id::new(), 0, "x");
    nul.data
        .as_mut()
        .unwrap()
        .insert("title".into(), json!("a\u{0}b"));
    let also_good = chat(&dev, Id::new(), 0, "also good");
    let answer = remote
        .push(
            &dev,
            Id::new(),
            &batch(vec![good, wrong_type, bad_time, nul, also_good]),
        )
        .await
        .unwrap();
    let got: Vec<&str> = answer.results.iter().map(status).collect();
    assert_eq!(
        got,
        vec!["applied", "rejected", "rejected", "rejected", "applied"]
    );
    assert_eq!(count(&db, "SELECT count(*) FROM chats").await, 2);
}

#[tokio::test]
async fn rule_6_an_update_to_a_row_the_server_does_not_have_is_rejected() {
    let db = TestDb::create();
    let (remote, dev) = setup(&db).await;
    let answer = remote
        .push(
            &dev,
            Id::new(),
            &batch(vec![chat(&dev, Id::new(), 3, "ghost")]),
        )
        .await
        .unwrap();
    assert_eq!(status(&answer.results[0]), "rejected");
    let orphan = Change {
        key: Id::new(),
        entity: Entity::Message,
        id: Id::new(),
        op: Op::Upsert,
        base_version: 0,
        hlc: hlc(&dev),
        data: json!({"chat_id": Id::new().to_string(), "role": "user", "content": "hi", "privacy": "full",
                     "created_at": "2026-11-22T01:02:03.123Z"}).as_object().cloned(),
    };
    let answer = remote
        .push(&dev, Id::new(), &batch(vec![orphan]))
        .await
        .unwrap();
    match &answer.results[0] {
        ItemResult::Rejected { code, .. } => assert_eq!(code, "ACODE-SYNC-009"),
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 0);
}

#[tokio::test]
async fn rule_9_system_columns_and_other_tenants_rows_are_out_of_reach() {
    let db = TestDb::create();
    let (remote, dev) = setup(&db).await;
    let other = remote
        .register_device("globex", &Id::new().to_string(), "desk")
        .await
        .unwrap();
    let theirs = Id::new();
    remote
        .push(
            &other,
            Id::new(),
            &batch(vec![chat(&other, theirs, 0, "theirs")]),
        )
        .await
        .unwrap();

    for col in [
        "tenant_id",
        "version",
        "deleted",
        "origin_device",
        "server_seq",
    ] {
        let mut c = chat(&dev, Id::new(), 0, "sneaky");
        c.data.as_mut().unwrap().insert(col.into(), json!("x"));
        let answer = remote.push(&dev, Id::new(), &batch(vec![c])).await.unwrap();
        assert_eq!(status(&answer.results[0]), "rejected", "{col}");
    }
    // A guessed id of another tenant's row: an update is refused, a create
    // makes a separate row of this tenant, the other row is untouched.
    let answer = remote
        .push(
            &dev,
            Id::new(),
            &batch(vec![chat(&dev, theirs, 1, "hijack")]),
        )
        .await
        .unwrap();
    assert_eq!(status(&answer.results[0]), "rejected");
    remote
        .push(&dev, Id::new(), &batch(vec![chat(&dev, theirs, 0, "mine")]))
        .await
        .unwrap();
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM chats WHERE title = 'theirs' AND version = 1"
        )
        .await,
        1
    );
    let page = remote.pull(&dev, "0", 100).await.unwrap();
    assert!(
        page.changes
            .iter()
            .all(|c| c.origin_device == dev.device_id)
    );
    let theirs_page = remote.pull(&other, "0", 100).await.unwrap();
    assert_eq!(theirs_page.changes.len(), 1);
    assert_eq!(
        theirs_page.changes[0].data.as_ref().unwrap()["title"],
        "theirs"
    );
}

#[tokio::test]
async fn rule_12_an_hlc_from_the_future_is_clamped_to_the_server_clock() {
    let db = TestDb::create();
    let (remote, dev) = setup(&db).await;
    let mut c = chat(&dev, Id::new(), 0, "time traveller");
    c.hlc = format!("2099-01-01T00:00:00.000Z-0000-{}", dev.device_id);
    remote.push(&dev, Id::new(), &batch(vec![c])).await.unwrap();
    let page = remote.pull(&dev, "0", 10).await.unwrap();
    let limit = chrono::Utc::now() + chrono::Duration::seconds(61);
    let stored = &page.changes[0].hlc;
    assert!(
        stored.as_str()
            < limit
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .as_str(),
        "{stored}"
    );
}

#[tokio::test]
async fn rule_10_the_feed_keeps_only_the_latest_entry_of_a_row() {
    let db = TestDb::create();
    let (remote, dev) = setup(&db).await;
    let id = Id::new();
    for v in 0..20 {
        remote
            .push(
                &dev,
                Id::new(),
                &batch(vec![chat(&dev, id, v, &format!("title {v}"))]),
            )
            .await
            .unwrap();
    }
    let page = remote.pull(&dev, "0", 100).await.unwrap();
    assert_eq!(page.changes.len(), 1);
    assert_eq!(page.changes[0].version, 20);
    assert_eq!(page.changes[0].data.as_ref().unwrap()["title"], "title 19");
    assert_eq!(count(&db, "SELECT count(*) FROM sync_changes").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_change_is_skipped_by_a_puller_racing_concurrent_pushers() {
    let db = TestDb::create();
    let (remote, _) = setup(&db).await;
    const PUSHERS: usize = 4;
    const BATCHES: usize = 25;
    const PER_BATCH: usize = 5;
    let mut tasks = Vec::new();
    for _ in 0..PUSHERS {
        let remote = remote.clone();
        let dev = remote
            .register_device("acme", &Id::new().to_string(), "pusher")
            .await
            .unwrap();
        tasks.push(tokio::spawn(async move {
            for _ in 0..BATCHES {
                let changes = (0..PER_BATCH)
                    .map(|_| chat(&dev, Id::new(), 0, "c"))
                    .collect();
                remote.push(&dev, Id::new(), &batch(changes)).await.unwrap();
            }
        }));
    }
    let reader = remote
        .register_device("acme", &Id::new().to_string(), "reader")
        .await
        .unwrap();
    let total = PUSHERS * BATCHES * PER_BATCH;
    let mut seen: HashSet<String> = HashSet::new();
    let mut cursor = "0".to_string();
    let mut last_seq = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < total {
        assert!(
            std::time::Instant::now() < deadline,
            "saw {} of {total}",
            seen.len()
        );
        let page = remote.pull(&reader, &cursor, 7).await.unwrap();
        for c in &page.changes {
            assert!(c.seq > last_seq, "sequence numbers only grow");
            last_seq = c.seq;
            assert!(seen.insert(c.id.to_string()), "{} delivered twice", c.id);
        }
        cursor = page.next_cursor;
        if page.changes.is_empty() {
            tokio::task::yield_now().await;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rest = remote.pull(&reader, &cursor, 1000).await.unwrap();
    assert!(rest.changes.is_empty(), "nothing beyond what was seen");
    assert_eq!(seen.len(), total);
}

#[tokio::test]
async fn rule_10_tombstones_are_purged_only_behind_every_active_device() {
    let db = TestDb::create();
    let (remote, writer) = setup(&db).await;
    let reader = remote
        .register_device("acme", &Id::new().to_string(), "reader")
        .await
        .unwrap();
    let away = remote
        .register_device("acme", &Id::new().to_string(), "away")
        .await
        .unwrap();
    let (doomed, kept) = (Id::new(), Id::new());
    remote
        .push(
            &writer,
            Id::new(),
            &batch(vec![
                chat(&writer, doomed, 0, "doomed"),
                chat(&writer, kept, 0, "kept"),
            ]),
        )
        .await
        .unwrap();
    // The away device pulls once, then goes quiet.
    let away_cursor = remote.pull(&away, "0", 100).await.unwrap().next_cursor;
    remote.pull(&away, &away_cursor, 100).await.unwrap();
    let delete = Change {
        op: Op::Delete,
        data: None,
        ..chat(&writer, doomed, 1, "x")
    };
    remote
        .push(&writer, Id::new(), &batch(vec![delete]))
        .await
        .unwrap();
    let page = remote.pull(&reader, "0", 100).await.unwrap();
    assert!(
        page.changes
            .iter()
            .any(|c| c.id == doomed && c.op == Op::Delete)
    );

    // The reader has pulled to the end only once it pulls again.
    let purged = remote
        .purge_tombstones(&writer.tenant_id, std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        purged.removed, 0,
        "the away device has not pulled past the tombstone"
    );

    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute(
            "UPDATE sync_devices SET last_seen_at = now() - interval '2 days' WHERE id = $1",
            &[&away.device_id],
        )
        .await
        .unwrap();
    remote.pull(&reader, &page.next_cursor, 100).await.unwrap();
    let purged = remote
        .purge_tombstones(&writer.tenant_id, std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(purged.removed, 1);
    let fresh = remote.pull(&reader, "0", 100).await.unwrap();
    assert_eq!(
        fresh.changes.len(),
        1,
        "a new device gets current state only"
    );
    assert_eq!(fresh.changes[0].id, kept);
    // A device reading from 0 a page at a time, through rows older than
    // the horizon, is never told its cursor expired.
    let newcomer = remote
        .register_device("acme", &Id::new().to_string(), "new")
        .await
        .unwrap();
    let more: Vec<Change> = (0..5)
        .map(|i| chat(&writer, Id::new(), 0, &format!("more {i}")))
        .collect();
    remote.push(&writer, Id::new(), &batch(more)).await.unwrap();
    let (mut cursor, mut got) = ("0".to_string(), 0);
    loop {
        let page = remote.pull(&newcomer, &cursor, 1).await.unwrap();
        got += page.changes.len();
        cursor = page.next_cursor;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(got, 6);

    // The away device's cursor is behind purged tombstones: it must resync.
    let err = remote.pull(&away, &away_cursor, 100).await.unwrap_err();
    assert_eq!(err.code().code(), "ACODE-SYNC-008");
    assert!(remote.pull(&away, "0", 100).await.is_ok());
}

#[tokio::test]
async fn a_key_twice_in_one_batch_is_rejected_once_and_the_rest_applies() {
    let db = TestDb::create();
    let (remote, dev) = setup(&db).await;
    let first = chat(&dev, Id::new(), 0, "first");
    let mut twin = chat(&dev, Id::new(), 0, "twin");
    twin.key = first.key;
    let answer = remote
        .push(&dev, Id::new(), &batch(vec![first, twin]))
        .await
        .unwrap();
    let got: Vec<&str> = answer.results.iter().map(status).collect();
    assert_eq!(got, vec!["applied", "rejected"]);
    assert_eq!(count(&db, "SELECT count(*) FROM chats").await, 1);
}

#[tokio::test]
async fn times_are_stored_and_served_in_one_form_whatever_the_offset_sent() {
    let db = TestDb::create();
    let (remote, dev) = setup(&db).await;
    let mut c = chat(&dev, Id::new(), 0, "offset");
    c.data
        .as_mut()
        .unwrap()
        .insert("created_at".into(), json!("2026-11-22T03:02:03.1234+02:00"));
    remote.push(&dev, Id::new(), &batch(vec![c])).await.unwrap();
    let page = remote.pull(&dev, "0", 10).await.unwrap();
    assert_eq!(
        page.changes[0].data.as_ref().unwrap()["created_at"],
        "2026-11-22T01:02:03.123Z"
    );
}

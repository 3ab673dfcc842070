//! Crash test of the sync engine: two workers (`acode sync run`) — one
//! uploading, one downloading — are killed with SIGKILL at random moments,
//! 20 times, while the uploading device keeps writing. Nothing is lost,
//! nothing is applied twice, the downloader's cursor never moves back.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use acode_store::{ChatPatch, NewChat, OpenOptions, Store};
use acode_testkit::TestDb;
use common::{Ws, run};

const ROUNDS: usize = 20;

fn worker(ws: &Ws, url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_acode"))
        .arg("--workspace")
        .arg(ws.root())
        .args(["sync", "run"])
        .env("ACODE_SYNC_REMOTE_URL", url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn store(ws: &Ws) -> Store {
    Store::open(ws.agent("workspace.db"), &OpenOptions::default()).unwrap()
}

fn cursor(ws: &Ws) -> i64 {
    store(ws).read(|tx| tx.cursor()).unwrap().parse().unwrap()
}

/// id → title of every chat in a workspace.
fn chats(ws: &Ws) -> BTreeMap<String, String> {
    let s = store(ws);
    let mut stmt = s
        .connection()
        .prepare("SELECT id, title FROM chats")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn workers_killed_at_random_moments_lose_nothing_and_apply_nothing_twice() {
    let db = TestDb::create();
    let url = db.url();
    let (a, b) = (Ws::new(), Ws::new());
    let mut rng = fastrand::Rng::with_seed(0xacde_c4a5);
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    // Local changes per row: a row's server version can only be higher if
    // a change was applied twice.
    let mut edits: BTreeMap<String, i64> = BTreeMap::new();
    let mut last_cursor = 0;
    let mut writer = store(&a);
    for round in 0..ROUNDS {
        let (mut up, mut down) = (worker(&a, &url), worker(&b, &url));
        // Writes land while the workers run: new chats and renames of old
        // ones, in transactions of a few rows.
        for t in 0..rng.usize(5..40) {
            writer
                .write(|tx| {
                    for i in 0..rng.usize(1..6) {
                        let c = tx.create_chat(&NewChat::new(format!("r{round} t{t} c{i}")))?;
                        edits.insert(c.id.to_string(), 1);
                        expected.insert(c.id.to_string(), c.title);
                    }
                    if !expected.is_empty() {
                        let n = rng.usize(0..expected.len());
                        let (id, _) = expected
                            .iter()
                            .nth(n)
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .unwrap();
                        let title = format!("renamed r{round} t{t}");
                        tx.update_chat(
                            id.parse().unwrap(),
                            &ChatPatch {
                                title: Some(title.clone()),
                                ..ChatPatch::default()
                            },
                        )?;
                        *edits.entry(id.clone()).or_default() += 1;
                        expected.insert(id, title);
                    }
                    Ok(())
                })
                .unwrap();
        }
        // The kill point: a random moment into the workers' run.
        std::thread::sleep(Duration::from_millis(rng.u64(20..400)));
        kill9(&mut up);
        kill9(&mut down);

        // Nothing written is lost: every row is still here, and every
        // change of it is either settled or still queued.
        assert_eq!(chats(&a), expected, "round {round}: the writer's rows");
        let c = cursor(&b);
        assert!(
            c >= last_cursor,
            "round {round}: cursor moved back from {last_cursor} to {c}"
        );
        last_cursor = c;
    }
    // Let both finish, then compare all three.
    for ws in [&a, &b, &a, &b] {
        let r = run(ws.cmd(&["sync", "now"]).env("ACODE_SYNC_REMOTE_URL", &url));
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
    assert_eq!(
        chats(&b),
        expected,
        "the downloader has every row, once, as last written"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let rows = client
            .query("SELECT id, title FROM chats WHERE NOT deleted", &[])
            .await
            .unwrap();
        let server: BTreeMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(server, expected, "PostgreSQL has every row as last written");
        // One writer: a change applied twice would have met its own newer
        // version and shown up as a conflict.
        for r in client
            .query("SELECT id, version FROM chats", &[])
            .await
            .unwrap()
        {
            let (id, version): (String, i64) = (r.get(0), r.get(1));
            assert!(
                version <= edits[&id],
                "{id} at version {version} after {} local changes",
                edits[&id]
            );
        }
        let conflicts: i64 = client
            .query_one("SELECT count(*) FROM sync_conflict_log", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(conflicts, 0, "nothing was applied twice");
        let feed: i64 = client
            .query_one("SELECT count(*) FROM sync_changes", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(feed as usize, expected.len(), "one feed entry per row");
    });
    let pending = store(&a).read(|tx| tx.queue()).unwrap();
    assert!(pending.is_empty(), "{pending:?}");
}

//! Crash safety of capture: a writer killed with SIGKILL at random points,
//! many times over, leaves a database that passes `PRAGMA integrity_check`,
//! holds exactly the transactions that committed, and whose outbox has one
//! entry per committed row change and none without one.
//!
//! The test binary runs itself as the writer (env `ACODE_CRASH_CHILD`): the
//! writer applies a deterministic schedule of transactions, so after each
//! kill the parent replays the same number of transactions into a fresh
//! database and compares both, row for row and entry for entry.
#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acode_store::*;
use ulid::Ulid;

const CHILD_ENV: &str = "ACODE_CRASH_CHILD";
const KILLS: usize = 20;

fn id(i: u64, k: u64) -> Id {
    Id::from_ulid(Ulid::from_parts(1_700_000_000_000 + i, u128::from(k)))
}

fn level(n: u64) -> Privacy {
    Privacy::ALL[(n % 3) as usize]
}

/// Transaction `i` of the schedule: creates, updates, deletes and privacy
/// changes across chats, messages and run records.
fn step(store: &mut Store, i: u64) -> Result<()> {
    store.write(|tx| {
        tx.create_chat(&NewChat {
            id: Some(id(i, 0)),
            title: format!("c{i}"),
            privacy: level(i),
        })?;
        for k in 1..=2 {
            let mut m = NewMessage::new(id(i, 0), Role::User, format!("m{i}.{k}"));
            m.id = Some(id(i, k));
            m.privacy = level(i + k);
            tx.add_message(&m)?;
        }
        if i >= 1 {
            tx.update_chat(
                id(i - 1, 0),
                &ChatPatch {
                    title: Some(format!("c{}r", i - 1)),
                    privacy: None,
                },
            )?;
        }
        if i >= 2 {
            tx.delete::<Message>(id(i - 2, 1))?;
        }
        if i >= 3 && i.is_multiple_of(4) {
            tx.update_chat(
                id(i - 3, 0),
                &ChatPatch {
                    title: None,
                    privacy: Some(level(i / 4)),
                },
            )?;
        }
        if i.is_multiple_of(5) {
            let mut s = NewSession::new(format!("s{i}"));
            s.id = Some(id(i, 10));
            s.privacy = level(i / 5);
            tx.create_session(&s)?;
            tx.create_task(&NewTask {
                id: Some(id(i, 11)),
                session_id: id(i, 10),
                title: "t".into(),
                status: RunStatus::Running,
            })?;
            if i >= 10 {
                tx.update_session(
                    id(i - 10, 10),
                    &SessionPatch {
                        privacy: Some(level(i)),
                        ..Default::default()
                    },
                )?;
                tx.delete::<Task>(id(i - 5, 11))?;
            }
        }
        Ok(())
    })
}

fn committed(store: &mut Store) -> u64 {
    store
        .connection()
        .query_row("SELECT count(*) FROM chats", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

/// Everything that must match between the crashed and the reference database.
fn snapshot(store: &mut Store) -> (Vec<String>, Vec<(String, String, String)>) {
    let conn = store.connection();
    let mut rows = Vec::new();
    for sql in [
        "SELECT id || '|' || title || '|' || privacy FROM chats ORDER BY id",
        "SELECT id || '|' || chat_id || '|' || content || '|' || privacy FROM messages ORDER BY id",
        "SELECT id || '|' || title || '|' || privacy FROM sessions ORDER BY id",
        "SELECT id || '|' || session_id FROM tasks ORDER BY id",
        "SELECT entity || '|' || entity_id || '|' || local_version || '|' || status FROM sync_row_state ORDER BY 1",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let got: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        rows.extend(got);
    }
    let mut stmt = conn
        .prepare("SELECT entity, entity_id, op FROM sync_outbox ORDER BY seq")
        .unwrap();
    let outbox = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    (rows, outbox)
}

fn run_child(path: &Path) -> ! {
    let mut store = Store::open(path, &OpenOptions::default()).unwrap();
    let mut i = committed(&mut store);
    loop {
        step(&mut store, i).unwrap();
        println!("committed {i}");
        i += 1;
    }
}

#[test]
fn sigkilled_writers_leave_every_committed_change_captured() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        run_child(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap();
    let mut seed: u64 = 0x5eed_acde;
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "sigkilled_writers_leave_every_committed_change_captured",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it commit a few transactions (a varying number), then kill it
        // wherever it is: inside a transaction, in a commit, between two.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait_for = 3 + (seed >> 33) % 25;
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        for line in lines {
            if line.unwrap().starts_with("committed ") {
                seen += 1;
                if seen >= wait_for {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: the writer made no progress"
            );
        }
        assert_eq!(seen, wait_for, "round {round}: the writer stopped early");
        child.kill().unwrap();
        child.wait().unwrap();

        let mut crashed = Store::open(&path, &OpenOptions::default()).unwrap();
        let check: String = crashed
            .connection()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
        let fk: i64 = crashed
            .connection()
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(fk, 0, "round {round}: dangling foreign keys");

        let n = committed(&mut crashed);
        let mut reference = Store::open(
            dir.path().join(format!("ref{round}.db")),
            &OpenOptions::default(),
        )
        .unwrap();
        for i in 0..n {
            step(&mut reference, i).unwrap();
        }
        let (rows, outbox) = snapshot(&mut crashed);
        let (want_rows, want_outbox) = snapshot(&mut reference);
        assert_eq!(
            rows, want_rows,
            "round {round}: rows after {n} transactions"
        );
        assert_eq!(
            outbox, want_outbox,
            "round {round}: outbox after {n} transactions"
        );
        assert!(!outbox.is_empty());
        drop(reference);
        std::fs::remove_file(dir.path().join(format!("ref{round}.db"))).unwrap();
    }
}

//! Crash safety of capture: a writer killed with SIGKILL at random points,
//! many times over, leaves a database that passes `PRAGMA integrity_check`,
//! holds exactly the transactions that committed, and whose outbox has one
//! entry per committed row change and none without one.
//!
//! The test binary runs itself as the writer (env `ACODE_CRASH_CHILD`): the
//! writer applies a deterministic schedule of transactions, so after each
//! kill the parent replays the same number of transactions into a fresh
//! database and compares both, row for row and entry for entry. Independently
//! of that replay, the crashed database must also satisfy the capture
//! invariants checked in plain SQL by [`assert_capture_invariants`].
#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use acode_store::*;
use ulid::Ulid;

const CHILD_ENV: &str = "ACODE_CRASH_CHILD";
const KILLS: usize = 20;
/// How long one round may take to see its commits before the writer counts
/// as stuck.
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);

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

/// The effective privacy of every chat, message, session and task, computed
/// from the schema alone: chats and sessions have their own level, a message
/// the stricter of its own and its chat's (full < redacted < local_only), a
/// task its session's.
const EFFECTIVE_PRIVACY: &str = "
    rank(level, r) AS (
        VALUES ('full', 0), ('redacted', 1), ('local_only', 2)
    ),
    effective(entity, entity_id, privacy) AS (
        SELECT 'chat', id, privacy FROM chats
        UNION ALL
        SELECT 'message', m.id,
               CASE WHEN mr.r >= cr.r THEN m.privacy ELSE c.privacy END
        FROM messages m
        JOIN chats c ON c.id = m.chat_id
        JOIN rank mr ON mr.level = m.privacy
        JOIN rank cr ON cr.level = c.privacy
        UNION ALL
        SELECT 'session', id, privacy FROM sessions
        UNION ALL
        SELECT 'task', t.id, s.privacy FROM tasks t JOIN sessions s ON s.id = t.session_id
    )";

/// The latest outbox entry (max `seq`) of every (entity, entity_id).
const LATEST_ENTRY: &str = "
    latest(entity, entity_id, seq, op) AS (
        SELECT o.entity, o.entity_id, o.seq, o.op
        FROM sync_outbox o
        JOIN (SELECT entity, entity_id, max(seq) AS seq
              FROM sync_outbox GROUP BY entity, entity_id) m
          ON m.seq = o.seq
    )";

/// Runs a query that lists violations, one description per row.
fn violations(conn: &rusqlite::Connection, select: &str) -> Vec<String> {
    let sql = format!("WITH {EFFECTIVE_PRIVACY}, {LATEST_ENTRY} {select}");
    let mut stmt = conn.prepare(&sql).unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Checks capture against the data, independently of the schedule and of
/// the code under test (no replay, no acode SQL functions):
///
/// - (a) every chat, message, session and task that is not effectively
///   local-only has an outbox entry, and its latest entry is no delete;
/// - (b) every (entity, entity_id) whose latest entry is no delete exists
///   and is not effectively local-only;
/// - (c) every row that is effectively local-only has no entry or its latest
///   entry is a delete.
///
/// Nothing is assumed about the outbox beyond what capture guarantees: it
/// may hold older entries than this run's (only the latest entry of each row
/// is looked at), and entries may be pruned as long as the latest stays.
///
/// Cascades would need a wider rule (a message deleted with its chat, or a
/// task with its session, leaves its last entry a create or an update: the
/// parent's delete covers it). The schedule never produces one: chats and
/// sessions are never deleted, messages and tasks only directly. Any entry
/// of another entity (steps, tool calls, artifacts are never written here)
/// fails (b), as its row is not among the four tables looked at.
fn assert_capture_invariants(conn: &rusqlite::Connection, round: usize) {
    // (a)
    let uncaptured = violations(
        conn,
        "SELECT e.entity || ' ' || e.entity_id || ' (effective privacy ' || e.privacy || '): '
                || CASE WHEN l.seq IS NULL THEN 'no outbox entry'
                        ELSE 'latest outbox entry (seq ' || l.seq || ') is a delete' END
         FROM effective e
         LEFT JOIN latest l ON l.entity = e.entity AND l.entity_id = e.entity_id
         WHERE e.privacy != 'local_only' AND (l.seq IS NULL OR l.op = 'delete')
         ORDER BY e.entity, e.entity_id",
    );
    assert!(
        uncaptured.is_empty(),
        "round {round}: (a) synced rows whose existence the outbox does not capture:\n{}",
        uncaptured.join("\n")
    );
    // (b)
    let phantom = violations(
        conn,
        "SELECT l.entity || ' ' || l.entity_id || ': latest outbox entry (seq ' || l.seq
                || ') is a ' || l.op || ', but '
                || CASE WHEN e.entity_id IS NULL THEN 'no such row exists'
                        ELSE 'its effective privacy is local_only' END
         FROM latest l
         LEFT JOIN effective e ON e.entity = l.entity AND e.entity_id = l.entity_id
         WHERE l.op != 'delete' AND (e.entity_id IS NULL OR e.privacy = 'local_only')
         ORDER BY l.entity, l.entity_id",
    );
    assert!(
        phantom.is_empty(),
        "round {round}: (b) outbox entries for rows that must not be synced:\n{}",
        phantom.join("\n")
    );
    // (c)
    let leaked = violations(
        conn,
        "SELECT e.entity || ' ' || e.entity_id || ' (effective privacy local_only): latest outbox entry (seq '
                || l.seq || ') is a ' || l.op || ', not a delete'
         FROM effective e
         JOIN latest l ON l.entity = e.entity AND l.entity_id = e.entity_id
         WHERE e.privacy = 'local_only' AND l.op != 'delete'
         ORDER BY e.entity, e.entity_id",
    );
    assert!(
        leaked.is_empty(),
        "round {round}: (c) local-only rows left synced by the outbox:\n{}",
        leaked.join("\n")
    );
}

/// Waits for the writer to report `wait_for` commits on its stdout (lines
/// read by another thread and sent over `lines`). A writer that is stuck,
/// silent or gone fails the round, killed, instead of hanging the test.
fn wait_for_commits(
    child: &mut Child,
    lines: &mpsc::Receiver<String>,
    wait_for: u64,
    round: usize,
) {
    let deadline = Instant::now() + ROUND_TIMEOUT;
    let mut seen = 0;
    while seen < wait_for {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if line.starts_with("committed ") {
                    seen += 1;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!(
                    "round {round}: the writer reported {seen} of {wait_for} commits \
                     in {ROUND_TIMEOUT:?}; killed it as stuck"
                );
            }
            Err(RecvTimeoutError::Disconnected) => {
                // The writer closed its stdout: it exited (or is exiting).
                let _ = child.kill();
                let status = child.wait().unwrap();
                panic!(
                    "round {round}: the writer stopped after {seen} of {wait_for} commits \
                     ({status})"
                );
            }
        }
    }
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
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        wait_for_commits(&mut child, &rx, wait_for, round);
        child.kill().unwrap();
        child.wait().unwrap();
        // The pipe's only writer is dead: the reader sees its end.
        drop(rx);
        reader.join().unwrap();

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
        assert_capture_invariants(crashed.connection(), round);

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

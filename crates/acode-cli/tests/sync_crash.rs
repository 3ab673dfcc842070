//! Crash tests of the sync engine: two workers (`acode sync run`) — one
//! uploading, one downloading — are killed with SIGKILL at random moments,
//! 20 times, while the uploading device keeps writing; in the second test
//! they sync through `acode serve`, which is killed with them. Nothing is
//! lost, nothing is applied twice, the downloader's cursor never moves
//! back.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use acode_store::{ChatPatch, NewChat, OpenOptions, Store};
use acode_testkit::TestDb;
use common::{Ws, run};

const ROUNDS: usize = 20;

/// How a device reaches the remote: the URL, and its token for a server.
struct Remote {
    url: String,
    token: Option<String>,
}

impl Remote {
    fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("ACODE_SYNC_REMOTE_URL", &self.url);
        if let Some(t) = &self.token {
            cmd.env("ACODE_SYNC_REMOTE_TOKEN", t);
        }
        cmd
    }
}

fn worker(ws: &Ws, remote: &Remote) -> Child {
    remote
        .apply(
            Command::new(env!("CARGO_BIN_EXE_acode"))
                .arg("--workspace")
                .arg(ws.root())
                .args(["sync", "run"])
                // Small batches: a kill often finds two of them in flight
                // (one pushed while the next is frozen).
                .env("ACODE_SYNC_UPLOAD_BATCH_SIZE", "5"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `acode serve` on `port` of 127.0.0.1, once it listens.
fn serve(database_url: &str, port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_acode"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", database_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("listening"), "{line:?}");
    child
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A device token of tenant `crash`.
fn token(database_url: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let admin = |args: &[&str]| {
        let r = run(common::acode_in(dir.path())
            .arg("--json")
            .arg("admin")
            .args(args)
            .env("DATABASE_URL", database_url));
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        r.json()
    };
    admin(&["migrate"]);
    admin(&["tenant", "add", "crash"]);
    admin(&["device", "add", "--tenant", "crash", "--name", "d"])["token"]
        .as_str()
        .unwrap()
        .to_string()
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
    let direct = Remote {
        url: url.clone(),
        token: None,
    };
    crash_rounds(&url, &direct, &direct, None);
}

#[test]
fn server_and_workers_killed_at_random_moments_lose_nothing_and_apply_nothing_twice() {
    let db = TestDb::create();
    let url = db.url();
    let port = free_port();
    let server_url = format!("http://127.0.0.1:{port}");
    let (ta, tb) = (token(&url), token(&url));
    let a = Remote {
        url: server_url.clone(),
        token: Some(ta),
    };
    let b = Remote {
        url: server_url,
        token: Some(tb),
    };
    crash_rounds(&url, &a, &b, Some(port));
}

/// The rounds of writes and kills; `server_port`: a sync server runs
/// there during each round and is killed with the workers.
fn crash_rounds(url: &str, to_a: &Remote, to_b: &Remote, server_port: Option<u16>) {
    let (a, b) = (Ws::new(), Ws::new());
    let mut rng = fastrand::Rng::with_seed(0xacde_c4a5);
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    // Local changes per row: a row's server version can only be higher if
    // a change was applied twice.
    let mut edits: BTreeMap<String, i64> = BTreeMap::new();
    let mut last_cursor = 0;
    let mut writer = store(&a);
    for round in 0..ROUNDS {
        let mut server = server_port.map(|port| serve(url, port));
        let (mut up, mut down) = (worker(&a, to_a), worker(&b, to_b));
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
        if let Some(server) = server.as_mut() {
            kill9(server);
        }
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
    let mut server = server_port.map(|port| serve(url, port));
    for (ws, remote) in [(&a, to_a), (&b, to_b), (&a, to_a), (&b, to_b)] {
        let mut cmd = ws.cmd(&["sync", "now"]);
        let cmd = cmd.env("ACODE_SYNC_REMOTE_URL", &remote.url);
        if let Some(t) = &remote.token {
            cmd.env("ACODE_SYNC_REMOTE_TOKEN", t);
        }
        let r = run(cmd);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_eq!(r.json()["mode"], "online", "{}", r.stdout);
    }
    if let Some(server) = server.as_mut() {
        kill9(server);
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
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
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

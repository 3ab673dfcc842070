//! Workspace databases, backups and restore targets for the backup and
//! restore tests.

use std::path::{Path, PathBuf};

use acode_backup::{BackupError, backup};
use acode_protocol::ErrorCode;
use acode_store::{Durability, NewChat, NewMessage, OpenOptions, Role, Store};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn options() -> OpenOptions {
    OpenOptions {
        durability: Durability::Normal,
        ..OpenOptions::default()
    }
}

/// One write = one transaction: a chat `seq-<n>` with one message `<n>`.
pub fn write_seq(store: &mut Store, n: u64) -> acode_store::Result<()> {
    store.write(|tx| {
        let chat = tx.create_chat(&NewChat::new(format!("seq-{n}")))?;
        tx.add_message(&NewMessage::new(chat.id, Role::User, n.to_string()))?;
        Ok(())
    })
}

pub fn sha(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    format!("{:x}", Sha256::digest(&bytes))
}

pub fn integrity(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// A target with data of its own (and a WAL), and its bytes.
pub struct Target {
    pub path: PathBuf,
    files: Vec<(PathBuf, Option<String>)>,
}

impl Target {
    pub fn new(dir: &Path) -> Target {
        let path = dir.join("target.db");
        let mut store = Store::open(&path, &options()).unwrap();
        write_seq(&mut store, 7).unwrap();
        drop(store);
        let mut t = Target {
            path,
            files: Vec::new(),
        };
        t.files = t.snapshot();
        t
    }

    pub fn snapshot(&self) -> Vec<(PathBuf, Option<String>)> {
        ["", "-wal", "-shm"]
            .iter()
            .map(|s| {
                let p = PathBuf::from(format!("{}{s}", self.path.display()));
                let h = p.exists().then(|| sha(&p));
                (p, h)
            })
            .collect()
    }

    pub fn assert_untouched(&self) {
        assert_eq!(self.snapshot(), self.files, "the target changed");
        let dir = self.path.parent().unwrap();
        let stray: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("partial"))
            .collect();
        assert!(stray.is_empty(), "temporary files left: {stray:?}");
    }
}

pub fn a_backup(dir: &Path, compress: bool) -> PathBuf {
    let src = dir.join("src.db");
    let mut store = Store::open(&src, &options()).unwrap();
    for n in 0..50 {
        write_seq(&mut store, n).unwrap();
    }
    drop(store);
    backup(&src, &dir.join("backups"), compress).unwrap().path
}

pub fn code(r: Result<acode_backup::RestoreOutcome, BackupError>) -> ErrorCode {
    match r {
        Ok(_) => panic!("the restore was accepted"),
        Err(e) => e.code(),
    }
}

pub fn a_second_backup(dir: &Path) -> PathBuf {
    let src = dir.join("second.db");
    drop(Store::open(&src, &options()).unwrap());
    backup(&src, &dir.join("second"), false).unwrap().path
}

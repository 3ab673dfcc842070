//! Devices, a fault-injecting wrapper around the real transport, and
//! PostgreSQL inspection, shared by the engine's integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use acode_protocol::{ErrorCode, Id, PullPage, PushRequest, PushResponse};
use acode_store::{
    Chat, ChatPatch, EntryStatus, Message, NewChat, NewMessage, OpenOptions, Privacy, Role, Store,
};
use acode_sync::{EngineConfig, PostgresTransport, SyncReport, Transport, TransportError};
use acode_testkit::TestDb;
use tempfile::TempDir;
use tokio_postgres::NoTls;

/// What the wrapper does to the next calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Nothing reaches the remote.
    Unreachable,
    /// The remote answers 5xx-like, without applying anything.
    Transient,
    /// The push is applied, and its answer is lost on the way back.
    LoseReply,
}

/// The real transport, with faults injected around it.
pub struct Faulty<T> {
    pub inner: T,
    fault: Mutex<Fault>,
    pub pushes: AtomicUsize,
    /// The number of changes in each push that reached the remote.
    pub batch_sizes: Mutex<Vec<usize>>,
    /// The batch key of each push that reached the remote.
    pub keys: Mutex<Vec<Id>>,
}

impl<T: Transport> Faulty<T> {
    pub fn new(inner: T) -> Self {
        Faulty {
            inner,
            fault: Mutex::new(Fault::None),
            pushes: AtomicUsize::new(0),
            batch_sizes: Mutex::new(Vec::new()),
            keys: Mutex::new(Vec::new()),
        }
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap()
    }
}

impl<T: Transport> Transport for Faulty<T> {
    async fn push(&self, key: Id, req: &PushRequest) -> Result<PushResponse, TransportError> {
        match self.fault() {
            Fault::Unreachable => Err(TransportError::Unreachable(
                "connection refused (test)".into(),
            )),
            Fault::Transient => {
                self.pushes.fetch_add(1, Ordering::SeqCst);
                Err(TransportError::Transient {
                    code: ErrorCode::SyncBatchFailed,
                    message: "server error (test)".into(),
                    retry_after: None,
                })
            }
            fault => {
                self.pushes.fetch_add(1, Ordering::SeqCst);
                self.batch_sizes.lock().unwrap().push(req.changes.len());
                self.keys.lock().unwrap().push(key);
                let answer = self.inner.push(key, req).await?;
                if fault == Fault::LoseReply {
                    return Err(TransportError::Transient {
                        code: ErrorCode::SyncConnectionFailed,
                        message: "connection reset after sending (test)".into(),
                        retry_after: None,
                    });
                }
                Ok(answer)
            }
        }
    }

    async fn pull(
        &self,
        cursor: &str,
        limit: u32,
        wait: Option<Duration>,
    ) -> Result<PullPage, TransportError> {
        match self.fault() {
            Fault::Unreachable => Err(TransportError::Unreachable(
                "connection refused (test)".into(),
            )),
            Fault::Transient => Err(TransportError::Transient {
                code: ErrorCode::SyncBatchFailed,
                message: "server error (test)".into(),
                retry_after: None,
            }),
            _ => self.inner.pull(cursor, limit, wait).await,
        }
    }
}

/// One device: its own workspace database, engine settings, a clock the
/// test can move forward, and a transport to the test's PostgreSQL.
pub struct Dev {
    pub store: Store,
    pub cfg: EngineConfig,
    pub net: Faulty<PostgresTransport>,
    pub skew: Arc<AtomicI64>,
    pub dir: TempDir,
}

impl Dev {
    pub fn new(db: &TestDb) -> Dev {
        Dev::with_url(&db.url())
    }

    pub fn with_url(url: &str) -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("workspace.db"), &OpenOptions::default()).unwrap();
        let skew = Arc::new(AtomicI64::new(0));
        let s = skew.clone();
        let cfg = EngineConfig {
            conflicts_dir: Some(dir.path().join("conflicts")),
            clock: Arc::new(move || {
                chrono::Utc::now().timestamp_millis() + s.load(Ordering::SeqCst)
            }),
            ..EngineConfig::default()
        };
        let net = Faulty::new(PostgresTransport::new(url, "default", store.device_id()).unwrap());
        Dev {
            store,
            cfg,
            net,
            skew,
            dir,
        }
    }

    /// Moves this device's engine clock forward (backoff waits pass).
    pub fn advance(&self, by: Duration) {
        self.skew.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    pub async fn sync(&mut self) -> SyncReport {
        acode_sync::sync_now(&mut self.store, &self.net, &self.cfg)
            .await
            .unwrap()
    }

    pub fn chat(&mut self, title: &str) -> Id {
        self.store
            .write(|tx| tx.create_chat(&NewChat::new(title)))
            .unwrap()
            .id
    }

    pub fn chat_with(&mut self, title: &str, privacy: Privacy) -> Id {
        self.store
            .write(|tx| tx.create_chat(&NewChat::new(title).privacy(privacy)))
            .unwrap()
            .id
    }

    pub fn rename(&mut self, id: Id, title: &str) {
        let patch = ChatPatch {
            title: Some(title.into()),
            ..ChatPatch::default()
        };
        self.store.write(|tx| tx.update_chat(id, &patch)).unwrap();
    }

    pub fn set_privacy(&mut self, id: Id, privacy: Privacy) {
        let patch = ChatPatch {
            privacy: Some(privacy),
            ..ChatPatch::default()
        };
        self.store.write(|tx| tx.update_chat(id, &patch)).unwrap();
    }

    pub fn message(&mut self, chat: Id, text: &str) -> Id {
        self.store
            .write(|tx| tx.add_message(&NewMessage::new(chat, Role::User, text)))
            .unwrap()
            .id
    }

    pub fn get_chat(&mut self, id: Id) -> Option<Chat> {
        self.store.read(|tx| tx.find::<Chat>(id)).unwrap()
    }

    pub fn get_message(&mut self, id: Id) -> Option<Message> {
        self.store.read(|tx| tx.find::<Message>(id)).unwrap()
    }

    pub fn delete_chat(&mut self, id: Id) {
        self.store.write(|tx| tx.delete::<Chat>(id)).unwrap();
    }

    /// (status, attempts, next_retry_at, last_error) of every entry not yet
    /// settled, in order.
    pub fn queue(&mut self) -> Vec<acode_store::OutboxEntry> {
        self.store.read(|tx| tx.queue()).unwrap()
    }

    pub fn count(&mut self, status: EntryStatus) -> usize {
        self.queue().iter().filter(|e| e.status == status).count()
    }

    pub fn conflicts(&mut self) -> Vec<acode_store::sync::conflicts::ConflictRecord> {
        self.store.read(|tx| tx.conflicts(true)).unwrap()
    }
}

/// A plain connection to the test database, to look at what arrived.
pub async fn pg(db: &TestDb) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// The chat as PostgreSQL has it: (title, privacy, version, deleted).
pub async fn pg_chat(
    client: &tokio_postgres::Client,
    id: Id,
) -> Option<(Option<String>, String, i64, bool)> {
    client
        .query_opt(
            "SELECT title, privacy, version, deleted FROM chats WHERE id = $1",
            &[&id.to_string()],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
}

pub async fn pg_count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

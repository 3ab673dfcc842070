//! Devices, a fault-injecting wrapper around the real transport, and
//! PostgreSQL inspection, shared by the engine's integration tests.
//!
//! A test target whose name ends in `_http` (e.g. `scenarios_http`, the
//! same file as `scenarios`) runs its devices through a real `acode serve`
//! started on the test's database; any other runs them on the direct
//! PostgreSQL transport.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use acode_protocol::{ErrorCode, Id, PullPage, PushRequest, PushResponse};
use acode_remote::Remote;
use acode_store::{
    Chat, ChatPatch, EntryStatus, Message, NewChat, NewMessage, OpenOptions, Privacy, Role, Store,
};
use acode_sync::{
    EngineConfig, HttpTransport, PostgresTransport, RemoteTransport, SyncReport, Transport,
    TransportError,
};
use acode_testkit::{Proxy, TestDb};
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
    /// The next push fails as `Transient` does; the ones after go through.
    TransientOnce,
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
    fn long_polls(&self) -> bool {
        self.inner.long_polls()
    }

    async fn push(&self, key: Id, req: &PushRequest) -> Result<PushResponse, TransportError> {
        match self.fault() {
            Fault::Unreachable => Err(TransportError::Unreachable(
                "connection refused (test)".into(),
            )),
            Fault::Transient | Fault::TransientOnce => {
                self.pushes.fetch_add(1, Ordering::SeqCst);
                if self.fault() == Fault::TransientOnce {
                    self.set(Fault::None);
                }
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
            Fault::Transient | Fault::TransientOnce => Err(TransportError::Transient {
                code: ErrorCode::SyncBatchFailed,
                message: "server error (test)".into(),
                retry_after: None,
            }),
            _ => self.inner.pull(cursor, limit, wait).await,
        }
    }
}

/// Whether this test target runs its devices through the sync server.
pub fn over_http() -> bool {
    env!("CARGO_CRATE_NAME").ends_with("_http")
}

/// Runs `f` to completion on a runtime of its own, on another thread: for
/// set-up from a synchronous function called inside a test's runtime.
pub fn blocking<T: Send + 'static, F>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
    .join()
    .unwrap()
}

/// An `acode serve` on the test's database, on a thread and runtime of its
/// own; stopped (gracefully) when the last device using it is dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(database_url: &str) -> TestServer {
        let url = database_url.to_string();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                Remote::new(&url, 1).unwrap().migrate().await.unwrap();
                let server = acode_server::Server::start(acode_server::ServerOptions {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    database_url: url,
                    pool_size: 8,
                    ..Default::default()
                })
                .await
                .unwrap();
                addr_tx.send(server.addr()).unwrap();
                let _ = stopped.await;
                server.stop().await.unwrap();
            });
        });
        let addr = addr_rx.recv().expect("the test server did not start");
        TestServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The server of `database_url`, started by the first device to ask.
    pub fn shared(database_url: &str) -> Arc<TestServer> {
        static SERVERS: Mutex<Vec<(String, Weak<TestServer>)>> = Mutex::new(Vec::new());
        let mut servers = SERVERS.lock().unwrap();
        servers.retain(|(_, s)| s.strong_count() > 0);
        if let Some(server) = servers
            .iter()
            .find(|(url, _)| url == database_url)
            .and_then(|(_, s)| s.upgrade())
        {
            return server;
        }
        let server = Arc::new(TestServer::start(database_url));
        servers.push((database_url.to_string(), Arc::downgrade(&server)));
        server
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A new device of tenant `default` with its token, as `acode admin
/// device add` makes one.
pub fn new_device(database_url: &str) -> acode_remote::auth::NewDevice {
    let url = database_url.to_string();
    blocking(move || async move {
        let remote = Remote::new(&url, 1).unwrap();
        remote.add_tenant("default").await.unwrap();
        remote.add_device("default", "test device").await.unwrap()
    })
}

/// One device: its own workspace database, engine settings, a clock the
/// test can move forward, and a transport to the test's remote (the
/// database directly, or a sync server on it; see [`over_http`]).
pub struct Dev {
    pub store: Store,
    pub cfg: EngineConfig,
    pub net: Faulty<RemoteTransport>,
    pub skew: Arc<AtomicI64>,
    pub dir: TempDir,
    /// The server database, for what tests do behind the devices' backs.
    pub remote: Remote,
    /// The id the remote knows this device by.
    pub device_id: String,
    /// The sync server this device talks to, over HTTP.
    pub server: Option<Arc<TestServer>>,
}

impl Dev {
    pub fn new(db: &TestDb) -> Dev {
        if over_http() {
            let server = TestServer::shared(&db.url());
            let url = format!("http://{}", server.addr);
            Dev::build(&db.url(), Some(server), |_, remote_id| {
                RemoteTransport::Http(HttpTransport::new(&url, remote_id, None).unwrap())
            })
        } else {
            Dev::with_url(&db.url())
        }
    }

    /// A device on the direct transport to `url`.
    pub fn with_url(url: &str) -> Dev {
        let u = url.to_string();
        Dev::build(url, None, move |store, _| {
            let direct = PostgresTransport::new(&u, "default", store.device_id()).unwrap();
            RemoteTransport::Postgres(Box::new(direct))
        })
    }

    /// A device whose path to the remote goes through a proxy the test can
    /// cut: to PostgreSQL (direct), or to the sync server (HTTP).
    pub async fn proxied(db: &TestDb) -> (Proxy, Dev) {
        if over_http() {
            let server = TestServer::shared(&db.url());
            let proxy = Proxy::start(server.addr).await;
            let url = format!("http://{}", proxy.addr());
            let dev = Dev::build(&db.url(), Some(server), |_, token| {
                RemoteTransport::Http(HttpTransport::new(&url, token, None).unwrap())
            });
            (proxy, dev)
        } else {
            let target: SocketAddr = format!("{}:{}", db.host(), db.port()).parse().unwrap();
            let proxy = Proxy::start(target).await;
            let dev = Dev::with_url(&db.url_via("127.0.0.1", proxy.addr().port()));
            (proxy, dev)
        }
    }

    /// `transport(store, token)`: the token is empty on the direct transport.
    fn build(
        database_url: &str,
        server: Option<Arc<TestServer>>,
        transport: impl FnOnce(&Store, &str) -> RemoteTransport,
    ) -> Dev {
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
        let (device_id, token) = if server.is_some() {
            let d = new_device(database_url);
            (d.id, d.token)
        } else {
            (store.device_id().to_string(), String::new())
        };
        let net = Faulty::new(transport(&store, &token));
        Dev {
            store,
            cfg,
            net,
            skew,
            dir,
            remote: Remote::new(database_url, 2).unwrap(),
            device_id,
            server,
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

//! Wake-ups when a tenant's feed grows, across server instances (DESIGN.md
//! §6, §13): an ingest that wrote something sends `NOTIFY acode_feed,
//! '<tenant id>'` in its transaction, so it is delivered at commit, and
//! each server keeps one connection that `LISTEN`s and fans the tenant ids
//! out to its long-polls.
//!
//! A notification can be missed only while the listening connection is
//! down; after every (re)connect the listener announces [`FeedEvent::All`],
//! so waiters re-read the feed instead of sleeping through a change.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::Remote;

/// The channel ingest notifies on; the payload is the tenant id.
pub const FEED_CHANNEL: &str = "acode_feed";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedEvent {
    /// The feed of this tenant (by id) has grown.
    Tenant(Arc<str>),
    /// Notifications may have been missed: every waiter should look.
    All,
}

impl FeedEvent {
    /// Whether a waiter on `tenant_id` should re-read the feed.
    pub fn concerns(&self, tenant_id: &str) -> bool {
        match self {
            FeedEvent::Tenant(t) => &**t == tenant_id,
            FeedEvent::All => true,
        }
    }
}

/// The listening connection of one server, and the fan-out to its
/// waiters. Dropping it stops listening.
pub struct FeedListener {
    events: broadcast::Sender<FeedEvent>,
    listening: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

/// How long to wait before reconnecting, at most.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl FeedListener {
    /// Starts listening on the database of `remote`, reconnecting for as
    /// long as the listener lives.
    pub fn start(remote: &Remote) -> FeedListener {
        let (events, _) = broadcast::channel(1024);
        let (ready, listening) = watch::channel(false);
        let config = remote.config.clone();
        let target = remote.target().to_string();
        let tx = events.clone();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(50);
            loop {
                match listen_once(&config, &tx, &ready).await {
                    Ok(()) => backoff = Duration::from_millis(50),
                    Err(e) => {
                        tracing::warn!(target = %target, error = %e, "feed listener: connection lost");
                    }
                }
                let _ = ready.send(false);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        FeedListener {
            events,
            listening,
            task,
        }
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FeedEvent> {
        self.events.subscribe()
    }

    /// Waits until the connection is listening, at most `timeout`; false
    /// when it is not by then.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let mut listening = self.listening.clone();
        tokio::time::timeout(timeout, listening.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the connection is listening now.
    pub fn is_listening(&self) -> bool {
        *self.listening.borrow()
    }
}

impl Drop for FeedListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection's life: LISTEN, announce `All`, forward notifications
/// until the connection ends.
async fn listen_once(
    config: &tokio_postgres::Config,
    events: &broadcast::Sender<FeedEvent>,
    ready: &watch::Sender<bool>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if notes_tx.send(Ok(n.payload().to_string())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = notes_tx.send(Err(e));
                    return;
                }
            }
        }
    });
    let listened = client
        .batch_execute(&format!("LISTEN {FEED_CHANNEL}"))
        .await;
    if let Err(e) = listened {
        driver.abort();
        return Err(e);
    }
    let _ = ready.send(true);
    let _ = events.send(FeedEvent::All);
    let outcome = loop {
        match notes.recv().await {
            Some(Ok(tenant)) => {
                let _ = events.send(FeedEvent::Tenant(tenant.into()));
            }
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        }
    };
    drop(client);
    driver.abort();
    outcome
}

//! The local database as the checks share it: one [`Store`] behind a
//! mutex, used from a blocking thread so a slow disk or a busy lock never
//! stalls the runtime (and the registry's timeout still fires).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use acode_store::Store;

use crate::check::CheckError;

#[derive(Clone)]
pub struct LocalDb {
    store: Arc<Mutex<Store>>,
    path: PathBuf,
}

impl LocalDb {
    pub fn new(store: Store) -> Self {
        let path = store.path().to_path_buf();
        LocalDb {
            store: Arc::new(Mutex::new(store)),
            path,
        }
    }

    /// The database file (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The WAL file beside the database.
    pub fn wal_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push("-wal");
        PathBuf::from(name)
    }

    /// Runs `f` on the store from a blocking thread.
    pub async fn with<T, F>(&self, f: F) -> Result<T, CheckError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, CheckError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            // A check that panicked while holding the store only read from
            // it: the store is still whole.
            let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut store)
        })
        .await
        .map_err(|e| CheckError::new(format!("local database: {e}")))?
    }

    /// Runs `f` on the store in the calling thread (for metrics, which
    /// are rendered synchronously).
    pub fn blocking<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut store)
    }
}

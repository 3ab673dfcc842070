//! Opening a workspace database and running transactions on it.
//!
//! Every connection is set up the same way: WAL, foreign keys, the chosen
//! durability, a busy timeout, the capture functions and the hooks that end
//! "applying" mode with its transaction. Writes go through [`Store::write`]
//! (captured) or [`Store::apply_remote`] (not captured: remote changes).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::Tx;
use crate::capture::{self, CaptureState};
use crate::error::{Result, StoreError, classify};
use crate::migrations::{self, HISTORY_TABLE, MigrationInfo, SchemaStatus};

/// How hard a commit waits for the disk (`store.durability`): `Full` is
/// `PRAGMA synchronous = FULL`, `Normal` may lose the last commits on power
/// loss but never corrupts.
pub use acode_config::Durability;

#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub durability: Durability,
    /// Apply pending migrations on open. Off for read-only inspection
    /// (`acode db status`), which must show them as pending.
    pub migrate: bool,
    /// Where to copy the database before applying migrations to an existing
    /// schema (`backup.before_migrate`); `None` takes no copy.
    pub backup_dir: Option<PathBuf>,
    pub busy_timeout: Duration,
    /// Create the file when it does not exist. Off for inspection, which
    /// must not leave an empty database behind.
    pub create: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            durability: Durability::Full,
            migrate: true,
            backup_dir: None,
            busy_timeout: Duration::from_secs(5),
            create: true,
        }
    }
}

/// What opening (or `migrate`) did to the schema.
#[derive(Clone, Debug, Default)]
pub struct MigrationOutcome {
    pub applied: Vec<MigrationInfo>,
    pub backup: Option<PathBuf>,
}

/// One open workspace database.
pub struct Store {
    conn: Connection,
    capture: Arc<CaptureState>,
    path: PathBuf,
    device_id: String,
    opened_with: MigrationOutcome,
    /// How it was opened, for [`Store::reopen`]; `None` in memory.
    options: Option<OpenOptions>,
}

impl Store {
    /// Opens the database at `path`, creating it if `options.create`.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        if !options.create && !path.exists() {
            return Err(StoreError::WorkspaceNotFound(format!(
                "{shown} (the database file is missing)"
            )));
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        if options.create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| classify(e, &shown))?;
        let mut store = Self::setup(conn, path, options)?;
        store.options = Some(options.clone());
        Ok(store)
    }

    /// A private in-memory database, for tests and tools.
    pub fn open_in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory()?;
        Self::setup(conn, PathBuf::from(":memory:"), &OpenOptions::default())
    }

    fn setup(mut conn: Connection, path: PathBuf, options: &OpenOptions) -> Result<Store> {
        let shown = path.display().to_string();
        let cl = |e| classify(e, &shown);
        conn.busy_timeout(options.busy_timeout).map_err(cl)?;
        // The first read of the file, before anything is written to it: a
        // non-SQLite or corrupt file fails here, another application's
        // database is refused here, both left as they were.
        refuse_foreign_database(&conn, &shown)?;
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(cl)?;
        let sync = match options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync).map_err(cl)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(cl)?;
        // The rows an INSERT OR REPLACE deletes fire the delete triggers only
        // with this on; without it a REPLACE would change data uncaptured.
        conn.pragma_update(None, "recursive_triggers", "ON")
            .map_err(cl)?;
        // A statement that fires capture triggers keeps a statement journal
        // (to undo itself alone on error); in memory it costs no file I/O.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(cl)?;
        // 32 MiB of page cache: a large transaction (an import) stays in
        // memory instead of spilling pages to the WAL before its commit.
        conn.pragma_update(None, "cache_size", -32_768)
            .map_err(cl)?;

        let capture = CaptureState::new();
        capture::install(&mut conn, &capture).map_err(cl)?;

        let mut store = Store {
            conn,
            capture,
            path,
            device_id: String::new(),
            opened_with: MigrationOutcome::default(),
            options: None,
        };
        let status = store.schema_status()?;
        if options.migrate && !status.pending.is_empty() {
            store.opened_with = store.apply_migrations(&status, options.backup_dir.as_deref())?;
        }
        // Up to date now, either as found or just migrated.
        if status.pending.is_empty() || options.migrate {
            store.load_device()?;
        }
        Ok(store)
    }

    /// A second connection to this database, set up as this one is (its
    /// schema is not migrated again): for work run on another thread beside
    /// this connection. `None` for an in-memory database, which has no
    /// second connection.
    pub fn reopen(&self) -> Result<Option<Store>> {
        let Some(options) = &self.options else {
            return Ok(None);
        };
        let options = OpenOptions {
            migrate: false,
            create: false,
            backup_dir: None,
            ..options.clone()
        };
        Store::open(&self.path, &options).map(Some)
    }

    /// Applies pending migrations (after a backup into `backup_dir`, when
    /// given and the database already had a schema).
    pub fn migrate(&mut self, backup_dir: Option<&Path>) -> Result<MigrationOutcome> {
        let status = self.schema_status()?;
        if status.pending.is_empty() {
            return Ok(MigrationOutcome::default());
        }
        let outcome = self.apply_migrations(&status, backup_dir)?;
        self.load_device()?;
        Ok(outcome)
    }

    fn apply_migrations(
        &mut self,
        status: &SchemaStatus,
        backup_dir: Option<&Path>,
    ) -> Result<MigrationOutcome> {
        let backup = match backup_dir {
            Some(dir) if status.version > 0 => Some(self.backup_before_migrate(dir, status)?),
            _ => None,
        };
        let _uncaptured = self.capture.migrating();
        let applied = migrations::apply(&mut self.conn)?;
        Ok(MigrationOutcome { applied, backup })
    }

    fn backup_before_migrate(&self, dir: &Path, status: &SchemaStatus) -> Result<PathBuf> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backup(format!("creating {}: {e}", dir.display())))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let file = dir.join(format!("pre-migrate-v{}-{stamp}.db", status.version));
        let target = file.to_string_lossy().into_owned();
        self.conn
            .execute("VACUUM INTO ?1", [&target])
            .map_err(|e| StoreError::Backup(format!("writing {target}: {e}")))?;
        Ok(file)
    }

    fn load_device(&mut self) -> Result<()> {
        let fresh = ulid::Ulid::generate().to_string();
        self.conn.execute(
            "INSERT INTO sync_state (key, value) VALUES ('device_id', ?1)
             ON CONFLICT (key) DO NOTHING",
            [&fresh],
        )?;
        self.device_id = self.conn.query_row(
            "SELECT value FROM sync_state WHERE key = 'device_id'",
            [],
            |r| r.get(0),
        )?;
        self.capture.set_device(&self.device_id);
        Ok(())
    }

    /// Applied and pending migrations; refuses a modified or newer schema.
    pub fn schema_status(&mut self) -> Result<SchemaStatus> {
        migrations::status(&mut self.conn)
    }

    /// What opening this store migrated, and the backup it took first.
    pub fn opened_with(&self) -> &MigrationOutcome {
        &self.opened_with
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This device's id (a ULID created with the database).
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The underlying connection, for reads and diagnostics. Writes through
    /// it are captured like any other.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Runs `f` in one write transaction; every data change in it is captured.
    pub fn write<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.run(TransactionBehavior::Immediate, false, f)
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    pub fn read<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.run(TransactionBehavior::Deferred, false, f)
    }

    /// Runs `f` in one write transaction with capture suppressed: for changes
    /// that came from the remote. The flag is cleared by the commit and
    /// rollback hooks, so it cannot leak into a later write.
    pub fn apply_remote<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.run(TransactionBehavior::Immediate, true, f)
    }

    fn run<T>(
        &mut self,
        behavior: TransactionBehavior,
        applying: bool,
        f: impl FnOnce(&Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        let shown = self.path.display().to_string();
        let tx = self
            .conn
            .transaction_with_behavior(behavior)
            .map_err(|e| classify(e, &shown))?;
        if applying {
            self.capture.set_applying(true);
        }
        let out = f(&Tx::new(&tx)).map_err(|e| match e {
            StoreError::Sqlite(e) => classify(e, &shown),
            other => other,
        })?;
        tx.commit().map_err(|e| classify(e, &shown))?;
        Ok(out)
    }

    /// Applies migrations up to `version` only: for tests of upgrades from
    /// an older schema.
    #[doc(hidden)]
    pub fn migrate_to(&mut self, version: i64) -> Result<()> {
        let _uncaptured = self.capture.migrating();
        migrations::apply_to(&mut self.conn, version).map(|_| ())
    }

    /// Whether a write now would be captured (false only inside `apply_remote`).
    pub fn is_capturing(&self) -> bool {
        self.capture.capturing()
    }
}

impl Drop for Store {
    /// Ends an open transaction (one begun with raw SQL on `connection()`)
    /// and removes the hooks before the connection closes: closing rolls back
    /// an open transaction, and the rollback hook must not run once the
    /// connection has released it.
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let _ = self.conn.commit_hook(None::<fn() -> bool>);
        let _ = self.conn.rollback_hook(None::<fn()>);
    }
}

/// A SQLite file that has tables but no acode history is someone else's
/// database: refuse it rather than adding our tables to it.
fn refuse_foreign_database(conn: &Connection, shown: &str) -> Result<()> {
    let has_history: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [HISTORY_TABLE],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| classify(e, shown))?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| classify(e, shown))?;
    if has_history.is_none() && tables > 0 {
        return Err(StoreError::NotADatabase {
            path: shown.to_string(),
            detail: "an SQLite database, but not an acode workspace".into(),
        });
    }
    Ok(())
}

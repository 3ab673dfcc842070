//! A workspace: a directory holding `.agent/`, where an app keeps its local
//! database, its configuration and the files sync leaves beside them.
//!
//! ```text
//! <root>/.agent/config.yml     settings (acode_config), written by `init`
//! <root>/.agent/workspace.db   the local store (plus -wal/-shm)
//! <root>/.agent/backups/       copies taken before schema migrations
//! <root>/.agent/conflicts/     losing versions kept by conflict resolution
//! ```
//!
//! Every `acode` command starts here: it finds the workspace
//! ([`Workspace::discover`]), reads its config and opens its store with the
//! settings the config names ([`Workspace::open`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use acode_config::{Config, ConfigError};
use acode_protocol::ErrorCode;

use crate::db::{OpenOptions, Store};
use crate::error::StoreError;
use crate::validate;

/// The folder that marks a workspace root.
pub const AGENT_DIR: &str = ".agent";

/// The `sync_state` key holding the name given to `acode init --device-name`.
pub const DEVICE_NAME_KEY: &str = "device_name";

/// Errors of the steps that need both the config and the store.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl WorkspaceError {
    /// The public code of the underlying error.
    pub fn code(&self) -> ErrorCode {
        match self {
            WorkspaceError::Store(e) => e.code(),
            WorkspaceError::Config(e) => e.code(),
        }
    }
}

/// A workspace root (a directory containing `.agent/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// Finds the workspace: `explicit` (`--workspace DIR`), else `env_var`
    /// (`ACODE_WORKSPACE`), else the nearest directory at or above `cwd`
    /// that contains `.agent/`. A named directory without `.agent/` is not
    /// searched above: it is ACODE-STORE-008 like finding none.
    pub fn discover(
        explicit: Option<&Path>,
        env_var: Option<PathBuf>,
        cwd: &Path,
    ) -> Result<Workspace, StoreError> {
        let named = explicit.map(Path::to_path_buf).or(env_var);
        if let Some(dir) = named {
            let root = cwd.join(dir);
            return if root.join(AGENT_DIR).is_dir() {
                Ok(Workspace { root })
            } else {
                Err(StoreError::WorkspaceNotFound(root.display().to_string()))
            };
        }
        cwd.ancestors()
            .find(|dir| dir.join(AGENT_DIR).is_dir())
            .map(|root| Workspace {
                root: root.to_path_buf(),
            })
            .ok_or_else(|| StoreError::WorkspaceNotFound(cwd.display().to_string()))
    }

    /// Makes `dir` a workspace, or opens the one already there: creates
    /// `.agent/`, writes the commented default `config.yml` unless a config
    /// exists (the user's is never overwritten), then opens the database,
    /// creating or migrating it. `device_name`, when given, is stored in
    /// `sync_state` under [`DEVICE_NAME_KEY`].
    pub fn init(
        dir: &Path,
        device_name: Option<&str>,
    ) -> Result<(Workspace, Store), WorkspaceError> {
        if let Some(name) = device_name {
            validate::title("device name", name)?;
        }
        let ws = Workspace {
            root: dir.to_path_buf(),
        };
        let agent = ws.agent_dir();
        std::fs::create_dir_all(&agent)
            .map_err(|e| io(format!("creating {}", agent.display()), e))?;
        write_new(&ws.config_path(), &Config::template())?;
        let (_, mut store) = ws.open(true)?;
        if let Some(name) = device_name {
            store.write(|tx| tx.set_state(DEVICE_NAME_KEY, name))?;
        }
        Ok((ws, store))
    }

    /// The workspace's configuration: defaults ← `config.yml` ← `ACODE_*`.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::load_from_env_and_file(Some(&self.config_path()))
    }

    /// Opens the database with the durability `config` names. With
    /// `migrate`, pending migrations are applied, after a copy into
    /// `.agent/backups/` when `backup.before_migrate` is on.
    pub fn open_store(&self, config: &Config, migrate: bool) -> Result<Store, StoreError> {
        Store::open(self.db_path(), &self.open_options(config, migrate))
    }

    /// [`Workspace::config`] then [`Workspace::open_store`].
    pub fn open(&self, migrate: bool) -> Result<(Config, Store), WorkspaceError> {
        let config = self.config()?;
        let store = self.open_store(&config, migrate)?;
        Ok((config, store))
    }

    /// The options [`Workspace::open_store`] uses. Only an open that may
    /// migrate may also create the database; inspection (`db status`) never
    /// leaves an empty one behind.
    pub fn open_options(&self, config: &Config, migrate: bool) -> OpenOptions {
        OpenOptions {
            durability: config.store.durability,
            migrate,
            create: migrate,
            backup_dir: self.migrate_backup_dir(config),
            ..OpenOptions::default()
        }
    }

    /// Where a pre-migration copy goes, or `None` when the config says to
    /// take none.
    pub fn migrate_backup_dir(&self, config: &Config) -> Option<PathBuf> {
        config.backup.before_migrate.then(|| self.backups_dir())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn agent_dir(&self) -> PathBuf {
        self.root.join(AGENT_DIR)
    }

    pub fn config_path(&self) -> PathBuf {
        self.agent_dir().join("config.yml")
    }

    pub fn db_path(&self) -> PathBuf {
        self.agent_dir().join("workspace.db")
    }

    /// The database's write-ahead log, beside it.
    pub fn wal_path(&self) -> PathBuf {
        self.agent_dir().join("workspace.db-wal")
    }

    pub fn backups_dir(&self) -> PathBuf {
        self.agent_dir().join("backups")
    }

    pub fn conflicts_dir(&self) -> PathBuf {
        self.agent_dir().join("conflicts")
    }
}

/// Writes `text` to `path` unless the file exists (checked atomically).
fn write_new(path: &Path, text: &str) -> Result<(), StoreError> {
    let context = || format!("writing {}", path.display());
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io(context(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(context(), e)),
    }
}

fn io(context: String, source: std::io::Error) -> StoreError {
    StoreError::Io { context, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn init_creates_the_layout_and_is_idempotent() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (ws, store) = Workspace::init(dir.path(), Some("laptop"))?;
        let device = store.device_id().to_string();
        drop(store);
        assert!(ws.config_path().is_file());
        assert!(ws.db_path().is_file());
        assert_eq!(
            std::fs::read_to_string(ws.config_path())?,
            Config::template()
        );

        std::fs::write(ws.config_path(), "# mine\nsync:\n  enabled: false\n")?;
        let (_, mut store) = Workspace::init(dir.path(), None)?;
        assert_eq!(store.device_id(), device);
        assert_eq!(
            std::fs::read_to_string(ws.config_path())?,
            "# mine\nsync:\n  enabled: false\n"
        );
        let name = store.read(|tx| tx.state(DEVICE_NAME_KEY))?;
        assert_eq!(name.as_deref(), Some("laptop"));
        Ok(())
    }

    #[test]
    fn init_refuses_an_empty_device_name_before_writing() -> TestResult {
        let dir = tempfile::tempdir()?;
        let err = Workspace::init(dir.path(), Some("  "))
            .err()
            .ok_or("accepted")?;
        assert_eq!(err.code(), ErrorCode::StoreInvalidInput);
        assert!(!dir.path().join(AGENT_DIR).exists());
        Ok(())
    }

    #[test]
    fn discover_prefers_explicit_then_env_then_the_nearest_parent() -> TestResult {
        let outer = tempfile::tempdir()?;
        let other = tempfile::tempdir()?;
        Workspace::init(outer.path(), None)?;
        Workspace::init(other.path(), None)?;
        let nested = outer.path().join("a/b");
        std::fs::create_dir_all(&nested)?;

        let found = Workspace::discover(None, None, &nested)?;
        assert_eq!(found.root(), outer.path());
        let found = Workspace::discover(None, Some(other.path().into()), &nested)?;
        assert_eq!(found.root(), other.path());
        let found = Workspace::discover(Some(outer.path()), Some(other.path().into()), &nested)?;
        assert_eq!(found.root(), outer.path());
        Ok(())
    }

    #[test]
    fn discover_refuses_a_named_directory_without_agent_dir() -> TestResult {
        let ws = tempfile::tempdir()?;
        Workspace::init(ws.path(), None)?;
        let plain = ws.path().join("plain");
        std::fs::create_dir_all(&plain)?;
        // Named explicitly: not searched above, even inside a workspace.
        let err = Workspace::discover(Some(&plain), None, ws.path())
            .err()
            .ok_or("found")?;
        assert_eq!(err.code(), ErrorCode::StoreWorkspaceNotFound);
        let err = Workspace::discover(None, Some(plain), ws.path())
            .err()
            .ok_or("found")?;
        assert_eq!(err.code(), ErrorCode::StoreWorkspaceNotFound);
        Ok(())
    }

    #[test]
    fn open_takes_settings_from_the_config() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (ws, store) = Workspace::init(dir.path(), None)?;
        drop(store);
        std::fs::write(ws.config_path(), "backup:\n  before_migrate: false\n")?;
        let config = ws.config()?;
        assert_eq!(ws.migrate_backup_dir(&config), None);
        assert_eq!(
            ws.migrate_backup_dir(&Config::default()),
            Some(ws.backups_dir())
        );
        let store = ws.open_store(&config, false)?;
        assert_eq!(store.path(), ws.db_path());
        Ok(())
    }

    #[test]
    fn a_bad_config_is_a_config_error() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (ws, store) = Workspace::init(dir.path(), None)?;
        drop(store);
        std::fs::write(ws.config_path(), "store:\n  durability: sometimes\n")?;
        let err = ws.open(true).err().ok_or("opened")?;
        assert_eq!(err.code(), ErrorCode::ConfigInvalidValue);
        Ok(())
    }
}

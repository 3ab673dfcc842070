//! Typed configuration of an acode workspace (`.agent/config.yml`).
//!
//! - [`model`]: the [`Config`] structs and their defaults.
//! - [`keys`]: the one list of every leaf key, its env var and doc.
//! - `load`: defaults ← YAML file ← `ACODE_*` env vars, then validation.
//! - `validate`: range and cross-field checks.
//! - `template`: the commented file `acode init` writes.
//! - [`error`]: [`ConfigError`] and its ACODE-CONFIG-00x codes.

pub mod error;
pub mod keys;
mod load;
pub mod model;
mod template;
mod validate;

pub use error::{ConfigError, Origin};
pub use keys::{KeyInfo, KeyKind};
pub use model::{
    BackupConfig, Config, ConflictConfig, ConflictPolicy, DownloadConfig, Durability, HealthConfig,
    ParseEnumError, RemoteConfig, RetryConfig, StoreConfig, SyncConfig, UploadConfig,
};

impl Config {
    /// Every leaf key with its environment variable and one-line doc; the
    /// single list used by environment overrides and the template.
    pub fn keys() -> &'static [KeyInfo] {
        keys::KEYS
    }
}

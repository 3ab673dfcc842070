//! Errors from loading or validating the configuration, each mapped to one
//! stable public code (ACODE-CONFIG-00x).
//!
//! Messages name the full dotted key and where the value came from, so a user
//! can find the line (or the environment variable) to fix.

use std::fmt;
use std::path::PathBuf;

use acode_protocol::ErrorCode;

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The YAML file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("reading config file {}: {source}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },

    /// The file is not valid YAML, or its top level is not a mapping.
    #[error("parsing config file {}: not valid YAML: {reason}", .path.display())]
    InvalidYaml {
        /// The file.
        path: PathBuf,
        /// The parser's explanation (with line and column where known).
        reason: String,
    },

    /// A key that the configuration does not have (usually a typo).
    #[error("{}unknown config key `{key}`{}", prefix(.origin), known_suffix(.known))]
    UnknownKey {
        /// The full dotted key, e.g. `sync.upload.batchsize`.
        key: String,
        /// Where it was written.
        origin: Option<Origin>,
        /// The keys valid at that level, to help spot the typo.
        known: Vec<String>,
    },

    /// A value of the wrong type, out of range, or otherwise unusable.
    #[error(
        "{}invalid value {}for config key `{key}`: expected {expected}",
        prefix(.origin),
        value_part(.value)
    )]
    InvalidValue {
        /// The full dotted key, e.g. `sync.upload.batch_size`.
        key: String,
        /// The rejected value, when it can be shown.
        value: Option<String>,
        /// What a valid value looks like.
        expected: String,
        /// Where it came from, when known.
        origin: Option<Origin>,
    },
}

impl ConfigError {
    /// The stable public code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ConfigError::Unreadable { .. } | ConfigError::InvalidYaml { .. } => {
                ErrorCode::ConfigUnreadable
            }
            ConfigError::UnknownKey { .. } => ErrorCode::ConfigUnknownKey,
            ConfigError::InvalidValue { .. } => ErrorCode::ConfigInvalidValue,
        }
    }

    /// The dotted key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::InvalidValue { key, .. } => {
                Some(key)
            }
            ConfigError::Unreadable { .. } | ConfigError::InvalidYaml { .. } => None,
        }
    }

    /// Builds an invalid-value error with no origin yet (validation runs on
    /// a finished [`crate::Config`]; the loader fills the origin in).
    pub(crate) fn invalid(key: &str, value: impl fmt::Display, expected: &str) -> Self {
        ConfigError::InvalidValue {
            key: key.to_owned(),
            value: Some(value.to_string()),
            expected: expected.to_owned(),
            origin: None,
        }
    }
}

fn prefix(origin: &Option<Origin>) -> String {
    origin
        .as_ref()
        .map(|o| format!("{o}: "))
        .unwrap_or_default()
}

fn value_part(value: &Option<String>) -> String {
    value
        .as_ref()
        .map(|v| format!("{v:?} "))
        .unwrap_or_default()
}

fn known_suffix(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!(" (known keys here: {})", known.join(", "))
    }
}

//! Privacy levels: what of a row may leave the device.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Ordered from least to most strict, so `max` is "the stricter of".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Privacy {
    /// Synced as is.
    Full,
    /// Synced with its content columns emptied (see [`crate::Entity::content_columns`]).
    Redacted,
    /// Never leaves the device; making a synced row local-only deletes it remotely.
    LocalOnly,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid privacy level {0:?}: expected full, redacted or local_only")]
pub struct ParsePrivacyError(pub String);

impl Privacy {
    pub const ALL: [Privacy; 3] = [Privacy::Full, Privacy::Redacted, Privacy::LocalOnly];

    pub fn as_str(self) -> &'static str {
        match self {
            Privacy::Full => "full",
            Privacy::Redacted => "redacted",
            Privacy::LocalOnly => "local_only",
        }
    }

    /// The effective level of a row under a parent: the stricter of the two.
    pub fn stricter(self, other: Privacy) -> Privacy {
        self.max(other)
    }

    pub fn is_synced(self) -> bool {
        self != Privacy::LocalOnly
    }
}

impl fmt::Display for Privacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Privacy {
    type Err = ParsePrivacyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Privacy::Full),
            "redacted" => Ok(Privacy::Redacted),
            "local_only" => Ok(Privacy::LocalOnly),
            other => Err(ParsePrivacyError(other.chars().take(64).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stricter_is_the_max() {
        assert_eq!(Privacy::Full.stricter(Privacy::Redacted), Privacy::Redacted);
        assert_eq!(
            Privacy::LocalOnly.stricter(Privacy::Full),
            Privacy::LocalOnly
        );
        assert_eq!(
            Privacy::Redacted.stricter(Privacy::Redacted),
            Privacy::Redacted
        );
    }

    #[test]
    fn parses_only_known_levels() {
        for p in Privacy::ALL {
            assert_eq!(p.as_str().parse::<Privacy>(), Ok(p));
        }
        assert!("public".parse::<Privacy>().is_err());
        assert!("FULL".parse::<Privacy>().is_err());
    }
}

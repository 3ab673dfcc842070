//! Row ids and change keys: both ULIDs, written as 26-character strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// The id of a synced row. ULIDs sort by creation time, which keeps index
/// inserts at the right edge of the B-tree on both SQLite and PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Id(Ulid);

/// The idempotency key of one captured change (or of one pushed batch).
pub type ChangeKey = Id;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {0:?}: expected a 26-character ULID")]
pub struct ParseIdError(pub String);

impl Id {
    pub fn new() -> Self {
        Id(Ulid::generate())
    }

    pub fn from_ulid(ulid: Ulid) -> Self {
        Id(ulid)
    }

    pub fn ulid(self) -> Ulid {
        self.0
    }
}

impl Default for Id {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Id {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ulid::from_string(s)
            .map(Id)
            .map_err(|_| ParseIdError(s.chars().take(64).collect()))
    }
}

impl TryFrom<String> for Id {
    type Error = ParseIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Id> for String {
    fn from(id: Id) -> String {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let id = Id::new();
        assert_eq!(id.to_string().parse::<Id>(), Ok(id));
        assert!("not-an-id".parse::<Id>().is_err());
        assert!("".parse::<Id>().is_err());
        assert!("01JD3Q4'; DROP TABLE chats; --".parse::<Id>().is_err());
    }
}

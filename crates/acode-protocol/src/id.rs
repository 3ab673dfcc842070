//! Row ids and change keys: both ULIDs, written as 26-character strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use std::sync::{Mutex, PoisonError};

use ulid::{Generator, Ulid};

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
    /// A new id, greater than every id made before in this process (ULIDs of
    /// one millisecond are otherwise in random order, and rows created in
    /// one millisecond would list out of creation order).
    pub fn new() -> Self {
        static GENERATOR: Mutex<Generator> = Mutex::new(Generator::new());
        let mut generator = GENERATOR.lock().unwrap_or_else(PoisonError::into_inner);
        Id(match generator.generate() {
            Ok(ulid) => ulid,
            Err(overflow) => overflow.commit_overflow_increment(),
        })
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
    fn new_ids_only_grow() {
        let ids: Vec<Id> = (0..10_000).map(|_| Id::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let id = Id::new();
        assert_eq!(id.to_string().parse::<Id>(), Ok(id));
        assert!("not-an-id".parse::<Id>().is_err());
        assert!("".parse::<Id>().is_err());
        assert!("01JD3Q4'; DROP TABLE chats; --".parse::<Id>().is_err());
    }
}

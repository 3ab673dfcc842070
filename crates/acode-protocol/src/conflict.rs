//! The conflict rule (DESIGN.md §8, §15 rules 6 and 7), one pure function
//! used by both sides: the server when a pushed change meets a newer row,
//! and a device when a pulled change meets a pending local edit. Using the
//! same function is what makes every path give the same answer.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Hlc, Privacy};

/// How a conflict is decided when neither side is a delete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The later HLC wins; equal times are broken by the device id in it.
    #[default]
    LastWriteWins,
    /// The pushing (or pending local) change wins.
    LocalWins,
    /// The row as the server (or the pulled change) has it wins.
    RemoteWins,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::LastWriteWins => "last_write_wins",
            Policy::LocalWins => "local_wins",
            Policy::RemoteWins => "remote_wins",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown conflict policy {0:?} (expected last_write_wins, local_wins or remote_wins)")]
pub struct ParsePolicyError(pub String);

impl FromStr for Policy {
    type Err = ParsePolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "last_write_wins" => Ok(Policy::LastWriteWins),
            "local_wins" => Ok(Policy::LocalWins),
            "remote_wins" => Ok(Policy::RemoteWins),
            _ => Err(ParsePolicyError(s.chars().take(40).collect())),
        }
    }
}

/// One side of a conflict: what it did and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contender {
    pub deleted: bool,
    pub hlc: Hlc,
    /// The row's effective level on this side (None for a delete).
    pub privacy: Option<Privacy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Winner {
    Local,
    Remote,
}

/// Decides a conflict between a local change (the pusher's, or a device's
/// pending edit) and the remote one (the server's row, or a pulled change).
/// A delete beats an update under every policy (no resurrection).
pub fn decide(policy: Policy, local: &Contender, remote: &Contender) -> Winner {
    match (local.deleted, remote.deleted) {
        (true, false) => Winner::Local,
        (false, true) | (true, true) => Winner::Remote,
        (false, false) => match policy {
            Policy::LocalWins => Winner::Local,
            Policy::RemoteWins => Winner::Remote,
            Policy::LastWriteWins if local.hlc > remote.hlc => Winner::Local,
            Policy::LastWriteWins => Winner::Remote,
        },
    }
}

/// The privacy level of the resolved row: in any conflict the stricter
/// level wins (rule 7), whichever side's content won.
pub fn merged_privacy(local: &Contender, remote: &Contender) -> Option<Privacy> {
    match (local.privacy, remote.privacy) {
        (Some(a), Some(b)) => Some(a.stricter(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(deleted: bool, millis: i64, device: &str, privacy: Privacy) -> Contender {
        Contender {
            deleted,
            hlc: Hlc {
                millis,
                counter: 0,
                device: device.into(),
            },
            privacy: (!deleted).then_some(privacy),
        }
    }

    #[test]
    fn last_write_wins_by_hlc_then_device() {
        let early = side(false, 1, "b", Privacy::Full);
        let late = side(false, 2, "a", Privacy::Full);
        assert_eq!(decide(Policy::LastWriteWins, &late, &early), Winner::Local);
        assert_eq!(decide(Policy::LastWriteWins, &early, &late), Winner::Remote);
        let tie_a = side(false, 5, "a", Privacy::Full);
        let tie_b = side(false, 5, "b", Privacy::Full);
        assert_eq!(decide(Policy::LastWriteWins, &tie_b, &tie_a), Winner::Local);
        assert_eq!(
            decide(Policy::LastWriteWins, &tie_a, &tie_b),
            Winner::Remote
        );
    }

    #[test]
    fn fixed_policies_ignore_time() {
        let early = side(false, 1, "a", Privacy::Full);
        let late = side(false, 9, "b", Privacy::Full);
        assert_eq!(decide(Policy::LocalWins, &early, &late), Winner::Local);
        assert_eq!(decide(Policy::RemoteWins, &late, &early), Winner::Remote);
    }

    #[test]
    fn a_delete_beats_an_update_under_every_policy() {
        for policy in [Policy::LastWriteWins, Policy::LocalWins, Policy::RemoteWins] {
            let update = side(false, 9, "a", Privacy::Full);
            let delete = side(true, 1, "b", Privacy::Full);
            assert_eq!(decide(policy, &delete, &update), Winner::Local, "{policy}");
            assert_eq!(decide(policy, &update, &delete), Winner::Remote, "{policy}");
        }
    }

    #[test]
    fn the_stricter_privacy_survives_either_winner() {
        let redacted = side(false, 1, "a", Privacy::Redacted);
        let full = side(false, 2, "b", Privacy::Full);
        assert_eq!(merged_privacy(&full, &redacted), Some(Privacy::Redacted));
        assert_eq!(merged_privacy(&redacted, &full), Some(Privacy::Redacted));
    }

    #[test]
    fn policies_parse_and_print() {
        for p in [Policy::LastWriteWins, Policy::LocalWins, Policy::RemoteWins] {
            assert_eq!(p.as_str().parse::<Policy>(), Ok(p));
        }
        assert!("newest".parse::<Policy>().is_err());
    }
}

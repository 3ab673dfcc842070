//! Hybrid logical clocks (DESIGN.md §8, §15 rule 12).
//!
//! An HLC is wall-clock milliseconds, a counter for events within one
//! millisecond, and the device id that broke the tie. Its text form
//! (`2026-11-22T01:02:03.123Z-0001-<device>`) sorts like the value, so both
//! databases can compare HLCs as plain strings.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};

const COUNTER_MAX: u16 = 9999;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hlc {
    pub millis: i64,
    pub counter: u16,
    pub device: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hybrid logical clock {0:?}")]
pub struct ParseHlcError(pub String);

impl Ord for Hlc {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.millis, self.counter, &self.device).cmp(&(other.millis, other.counter, &other.device))
    }
}

impl PartialOrd for Hlc {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = DateTime::<Utc>::from_timestamp_millis(self.millis)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        write!(f, "{time}-{:04}-{}", self.counter, self.device)
    }
}

impl FromStr for Hlc {
    type Err = ParseHlcError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseHlcError(s.chars().take(80).collect());
        // The time part is fixed-width (24 characters), then "-NNNN-device".
        let (time, rest) = s.split_at_checked(24).ok_or_else(err)?;
        let millis = DateTime::parse_from_rfc3339(time)
            .map_err(|_| err())?
            .timestamp_millis();
        let rest = rest.strip_prefix('-').ok_or_else(err)?;
        let (counter, device) = rest.split_once('-').ok_or_else(err)?;
        if counter.len() != 4 || device.is_empty() {
            return Err(err());
        }
        let counter = counter.parse().map_err(|_| err())?;
        Ok(Hlc {
            millis,
            counter,
            device: device.to_string(),
        })
    }
}

/// The clock of one device. Pure: the caller supplies the wall clock and any
/// persisted floors, so the rules are testable without time passing.
#[derive(Clone, Debug)]
pub struct HlcClock {
    device: String,
    last: Option<(i64, u16)>,
}

impl HlcClock {
    pub fn new(device: impl Into<String>) -> Self {
        HlcClock {
            device: device.into(),
            last: None,
        }
    }

    /// Moves the clock past `seen` (a persisted or pulled HLC) without
    /// issuing a timestamp: the next [`HlcClock::tick`] is greater than it.
    pub fn observe(&mut self, seen: &Hlc) {
        let seen = (seen.millis, seen.counter);
        if self.last.is_none_or(|last| seen > last) {
            self.last = Some(seen);
        }
    }

    /// The next timestamp: later than every one issued or observed, and never
    /// behind the wall clock.
    pub fn tick(&mut self, now_millis: i64) -> Hlc {
        let (millis, counter) = match self.last {
            Some((m, c)) if m >= now_millis => {
                if c >= COUNTER_MAX {
                    (m + 1, 0)
                } else {
                    (m, c + 1)
                }
            }
            _ => (now_millis, 0),
        };
        self.last = Some((millis, counter));
        Hlc {
            millis,
            counter,
            device: self.device.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_form_round_trips() {
        let h = Hlc {
            millis: 1_795_000_000_123,
            counter: 7,
            device: "01JD3Q4ABCDEF".into(),
        };
        let s = h.to_string();
        assert_eq!(s.len(), 24 + 1 + 4 + 1 + 13);
        assert_eq!(s.parse::<Hlc>(), Ok(h));
        assert!("2026-11-22T01:02:03Z-1-x".parse::<Hlc>().is_err());
        assert!("".parse::<Hlc>().is_err());
    }

    #[test]
    fn clock_goes_forward_when_the_wall_clock_goes_back() {
        let mut c = HlcClock::new("d");
        let a = c.tick(1000);
        let b = c.tick(900);
        let d = c.tick(1000);
        assert!(a < b && b < d);
        assert_eq!(b.millis, 1000);
    }

    #[test]
    fn observe_moves_past_a_remote_clock() {
        let mut c = HlcClock::new("a");
        let remote: Hlc = "2030-01-01T00:00:00.000Z-0005-b".parse().unwrap();
        c.observe(&remote);
        let next = c.tick(0);
        assert!(next > remote);
        assert_eq!((next.millis, next.counter), (remote.millis, 6));
    }

    #[test]
    fn counter_overflow_moves_to_next_millisecond() {
        let mut c = HlcClock::new("a");
        c.observe(&Hlc {
            millis: 5,
            counter: COUNTER_MAX,
            device: "x".into(),
        });
        let next = c.tick(5);
        assert_eq!((next.millis, next.counter), (6, 0));
    }

    proptest! {
        #[test]
        fn ticks_are_strictly_increasing_and_sort_as_text(
            nows in proptest::collection::vec(0i64..4_000_000_000_000, 1..50)
        ) {
            let mut c = HlcClock::new("dev");
            let mut prev: Option<Hlc> = None;
            for now in nows {
                let h = c.tick(now);
                if let Some(p) = &prev {
                    prop_assert!(*p < h);
                    prop_assert!(p.to_string() < h.to_string());
                }
                prev = Some(h);
            }
        }
    }
}

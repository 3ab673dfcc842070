//! The SQL functions the capture triggers call, registered on every
//! connection the library opens (DESIGN.md §4, §15 rules 11 and 12).
//!
//! A connection without them cannot write to a synced table: its triggers
//! fail with "no such function", so no write escapes capture.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use acode_protocol::{Hlc, HlcClock, Privacy};
use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use ulid::Generator;

/// Per-connection capture switches and clocks.
#[derive(Debug)]
pub(crate) struct CaptureState {
    /// Set while the engine applies remote changes; cleared by the commit and
    /// rollback hooks, so it can never outlive its transaction.
    applying: AtomicBool,
    /// Set while schema migrations (and their backfills) run.
    migrating: AtomicBool,
    clock: Mutex<Clock>,
    keys: Mutex<Generator>,
}

/// The connection's HLC clock and, per argument of `acode_hlc`, the text it
/// last observed there. The clock only moves forward, so a floor whose text
/// is unchanged since it was observed (the usual case: the last entry is the
/// one this connection just made, the remote floor moves only on a pull)
/// needs no parsing again.
#[derive(Debug)]
struct Clock {
    hlc: HlcClock,
    seen: [String; 2],
}

impl Clock {
    fn new(device: &str) -> Self {
        Clock {
            hlc: HlcClock::new(device),
            seen: [String::new(), String::new()],
        }
    }
}

impl CaptureState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(CaptureState {
            applying: AtomicBool::new(false),
            migrating: AtomicBool::new(false),
            clock: Mutex::new(Clock::new("")),
            keys: Mutex::new(Generator::new()),
        })
    }

    pub(crate) fn capturing(&self) -> bool {
        !self.applying.load(Ordering::SeqCst) && !self.migrating.load(Ordering::SeqCst)
    }

    pub(crate) fn set_applying(&self, on: bool) {
        self.applying.store(on, Ordering::SeqCst);
    }

    /// Suppresses capture until the returned guard is dropped, even by a
    /// panic: for schema migrations and their backfills.
    pub(crate) fn migrating(&self) -> MigratingGuard<'_> {
        self.migrating.store(true, Ordering::SeqCst);
        MigratingGuard(self)
    }

    pub(crate) fn set_device(&self, device: &str) {
        let mut clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        *clock = Clock::new(device);
    }

    /// The next HLC, past both floors (the last entry's HLC and the remote
    /// floor, as text; one that does not parse is ignored) and past every
    /// HLC issued before.
    pub(crate) fn next_hlc(&self, floors: [Option<&str>; 2]) -> String {
        let mut clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        let Clock { hlc, seen } = &mut *clock;
        for (text, seen) in floors.into_iter().zip(seen.iter_mut()) {
            let Some(text) = text else { continue };
            if text == seen.as_str() {
                continue;
            }
            if let Ok(floor) = text.parse::<Hlc>() {
                hlc.observe(&floor);
            }
            seen.clear();
            seen.push_str(text);
        }
        let issued = hlc.tick(now_millis()).to_string();
        // The next entry's first floor is this one.
        seen[0].clear();
        seen[0].push_str(&issued);
        issued
    }

    pub(crate) fn next_key(&self) -> ulid::Ulid {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        match keys.generate() {
            Ok(key) => key,
            Err(overflow) => overflow.commit_overflow_increment(),
        }
    }
}

pub(crate) struct MigratingGuard<'a>(&'a CaptureState);

impl Drop for MigratingGuard<'_> {
    fn drop(&mut self) {
        self.0.migrating.store(false, Ordering::SeqCst);
    }
}

pub(crate) fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Registers the capture functions and the hooks that clear the applying
/// flag at the end of every transaction.
pub(crate) fn install(conn: &mut Connection, state: &Arc<CaptureState>) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8;
    let pure = flags | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS;

    let s = Arc::clone(state);
    conn.create_scalar_function("acode_capture", 0, flags, move |_| {
        Ok(i64::from(s.capturing()))
    })?;

    let s = Arc::clone(state);
    conn.create_scalar_function("acode_key", 0, flags, move |_| Ok(s.next_key().to_string()))?;

    let s = Arc::clone(state);
    conn.create_scalar_function("acode_hlc", 2, flags, move |ctx| {
        Ok(s.next_hlc([text_arg(ctx, 0), text_arg(ctx, 1)]))
    })?;

    conn.create_scalar_function("acode_now", 0, flags, |_| Ok(now_millis()))?;

    conn.create_scalar_function("acode_stricter", 2, pure, |ctx| {
        Ok(match (privacy_arg(ctx, 0), privacy_arg(ctx, 1)) {
            (Some(a), Some(b)) => Some(a.stricter(b).as_str()),
            _ => None,
        })
    })?;

    conn.create_scalar_function("acode_op", 2, pure, |ctx| {
        let before = privacy_arg(ctx, 0);
        let after = privacy_arg(ctx, 1);
        Ok(match (before, after) {
            (_, Some(Privacy::LocalOnly)) => "delete",
            (Some(Privacy::LocalOnly), _) => "create",
            _ => "update",
        })
    })?;

    conn.create_scalar_function("acode_present", 1, pure, |ctx| match ctx.get_raw(0) {
        ValueRef::Null => Err(rusqlite::Error::UserFunctionError(
            "acode: the parent of this row does not exist: write parents before their children"
                .into(),
        )),
        _ => Ok(text_arg(ctx, 0).map(str::to_owned)),
    })?;

    let s = Arc::clone(state);
    conn.commit_hook(Some(move || {
        s.set_applying(false);
        false
    }))?;
    let s = Arc::clone(state);
    conn.rollback_hook(Some(move || s.set_applying(false)))?;
    Ok(())
}

fn text_arg<'a>(ctx: &'a Context<'_>, i: usize) -> Option<&'a str> {
    match ctx.get_raw(i) {
        ValueRef::Text(t) => std::str::from_utf8(t).ok(),
        _ => None,
    }
}

fn privacy_arg(ctx: &Context<'_>, i: usize) -> Option<Privacy> {
    text_arg(ctx, i).and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AHEAD: &str = "2999-01-01T00:00:00.000Z-0005-remote";

    fn parsed(text: &str) -> Hlc {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn each_hlc_passes_the_last_one_and_both_floors() {
        let state = CaptureState::new();
        state.set_device("dev");
        let first = state.next_hlc([None, None]);
        let second = state.next_hlc([Some(&first), None]);
        assert!(parsed(&second) > parsed(&first));
        // A remote floor ahead of the wall clock is passed...
        let third = state.next_hlc([Some(&second), Some(AHEAD)]);
        assert!(parsed(&third) > parsed(AHEAD), "{third}");
        // ...and stays passed while it is unchanged (not parsed again).
        let fourth = state.next_hlc([Some(&third), Some(AHEAD)]);
        assert!(parsed(&fourth) > parsed(&third), "{fourth}");
        // A last entry made by another connection, further ahead, is passed.
        let other = "2999-06-01T00:00:00.000Z-0000-other";
        let fifth = state.next_hlc([Some(other), Some(AHEAD)]);
        assert!(parsed(&fifth) > parsed(other), "{fifth}");
        assert!(fifth.ends_with("-dev"), "{fifth}");
    }

    #[test]
    fn a_floor_that_does_not_parse_is_ignored() {
        let state = CaptureState::new();
        state.set_device("dev");
        let issued = state.next_hlc([Some("not an hlc"), Some("")]);
        assert!(parsed(&issued).millis <= now_millis());
    }

    #[test]
    fn a_new_device_clock_observes_a_floor_seen_before_again() {
        let state = CaptureState::new();
        state.set_device("first");
        state.next_hlc([Some(AHEAD), None]);
        // The clock restarts for the real device id: the same floor text
        // must be observed again, not skipped as already seen.
        state.set_device("dev");
        let issued = state.next_hlc([Some(AHEAD), None]);
        assert!(parsed(&issued) > parsed(AHEAD), "{issued}");
    }
}

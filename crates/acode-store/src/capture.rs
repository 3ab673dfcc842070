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
    clock: Mutex<HlcClock>,
    keys: Mutex<Generator>,
}

impl CaptureState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(CaptureState {
            applying: AtomicBool::new(false),
            migrating: AtomicBool::new(false),
            clock: Mutex::new(HlcClock::new("")),
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
        *clock = HlcClock::new(device);
    }

    pub(crate) fn next_hlc(&self, floors: &[Option<Hlc>]) -> Hlc {
        let mut clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        for floor in floors.iter().flatten() {
            clock.observe(floor);
        }
        clock.tick(now_millis())
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
        let floors = [hlc_arg(ctx, 0), hlc_arg(ctx, 1)];
        Ok(s.next_hlc(&floors).to_string())
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

fn hlc_arg(ctx: &Context<'_>, i: usize) -> Option<Hlc> {
    text_arg(ctx, i).and_then(|s| s.parse().ok())
}

fn privacy_arg(ctx: &Context<'_>, i: usize) -> Option<Privacy> {
    text_arg(ctx, i).and_then(|s| s.parse().ok())
}

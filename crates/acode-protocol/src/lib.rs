//! Wire and domain types shared by every part of acode, with no I/O.
//!
//! The data flow (`store → sync → remote`) speaks these types: an [`Id`] names
//! a row, an [`Entity`] names its table, a [`Privacy`] level decides what may
//! leave the device, an [`Hlc`] orders changes across devices, and
//! [`ErrorCode`] is the one table of stable public error codes.

mod codes;
pub mod conflict;
mod entity;
mod hlc;
mod id;
mod privacy;
mod wire;

pub use codes::ErrorCode;
pub use conflict::{Contender, Policy, Winner};
pub use entity::{Entity, ParseEntityError};
pub use hlc::{Hlc, HlcClock, ParseHlcError};
pub use id::{ChangeKey, Id, ParseIdError};
pub use privacy::{ParsePrivacyError, Privacy};
pub use wire::{
    Change, ItemResult, Op, PullChange, PullPage, PushRequest, PushResponse, Resolution,
    SCHEMA_VERSION,
};

//! Helpers shared by this crate's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

pub mod fixture;
pub mod readback;

//! The checks, one file per part they look at.

pub mod postgres;
pub mod queue;
pub mod redis;
pub mod server;
pub mod sqlite;
pub mod storage;

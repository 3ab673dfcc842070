//! Test support shared by the crates that talk to PostgreSQL.
//!
//! [`TestDb`] gives each test its own fresh database on the local
//! PostgreSQL and drops it when the test ends; databases left behind by a
//! killed run are swept by the next one. [`Proxy`] sits between a client and
//! PostgreSQL and can refuse or cut connections, so outage tests use the real
//! server, not a mock. Everything here panics with a message saying what to
//! start when PostgreSQL is not there: a test never skips.

mod pg;
pub mod prometheus;
mod proxy;

pub use pg::TestDb;
pub use proxy::Proxy;

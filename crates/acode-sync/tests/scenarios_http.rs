//! The five user scenarios (`scenarios.rs`), with every device syncing
//! through a real `acode serve` over HTTP instead of the direct transport.

#[path = "scenarios.rs"]
mod scenarios;

//! The engine's rules (`rules.rs`), with every device syncing through a
//! real `acode serve` over HTTP instead of the direct transport.

#[path = "rules.rs"]
mod rules;

//! The convergence property (`convergence.rs`), with every device syncing
//! through a real `acode serve` over HTTP instead of the direct transport.

#[path = "convergence.rs"]
mod convergence;

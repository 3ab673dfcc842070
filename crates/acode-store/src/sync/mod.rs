//! What the sync engine reads and writes in the local database: the
//! upload queue (frozen batches and their settlement), the inbox of pulled
//! changes (applied with capture suppressed), the conflict store, and the
//! engine's state (cursor, pause, lease). The decisions — what goes in a
//! batch, who wins a conflict, when to retry — are made by `acode-sync`;
//! this module only carries them out, in the transactions it is given.

pub mod conflicts;
pub mod inbox;
pub mod queue;
pub mod resync;
pub mod state;

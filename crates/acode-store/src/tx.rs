//! [`Tx`]: one open transaction, through which every read and write goes.
//! The entity modules add their methods to it.

use rusqlite::Connection;

pub struct Tx<'c> {
    pub(crate) conn: &'c Connection,
}

impl<'c> Tx<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Tx { conn }
    }

    /// The transaction's connection, for queries the typed API lacks.
    pub fn connection(&self) -> &Connection {
        self.conn
    }
}

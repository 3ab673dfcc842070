//! The one table of stable public error codes (DESIGN.md §14).
//!
//! Every error that reaches a user maps to exactly one of these: the CLI
//! prints `error[ACODE-…]`, the server answers with the HTTP status below,
//! and README lists the same table (a test keeps them equal).

macro_rules! codes {
    ($( $variant:ident = $code:literal, $status:literal, $retryable:literal, $summary:literal; )*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( $variant, )* }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The stable public code, e.g. `ACODE-SYNC-004`.
            pub fn code(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code, )* }
            }

            /// One line saying what went wrong.
            pub fn summary(self) -> &'static str {
                match self { $( ErrorCode::$variant => $summary, )* }
            }

            /// The HTTP status the server answers with.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }

            /// Whether the same request may succeed later without a change.
            pub fn is_transient(self) -> bool {
                match self { $( ErrorCode::$variant => $retryable, )* }
            }
        }
    };
}

codes! {
    UsageInvalid = "ACODE-USAGE-001", 400, false, "invalid command-line usage";
    ConfigInvalidValue = "ACODE-CONFIG-001", 400, false, "a configuration value is invalid (the message names the key)";
    ConfigUnreadable = "ACODE-CONFIG-002", 400, false, "the configuration file cannot be read or is not valid YAML";
    ConfigUnknownKey = "ACODE-CONFIG-003", 400, false, "the configuration names an unknown key";
    StoreNotFound = "ACODE-STORE-001", 404, false, "no such row (or its parent does not exist)";
    StoreInvalidInput = "ACODE-STORE-002", 400, false, "invalid input: empty or too long text, NUL bytes, a bad id, role, status or privacy value";
    StoreNotADatabase = "ACODE-STORE-003", 500, false, "the database file is not an SQLite database or is corrupt";
    StoreSchemaTooNew = "ACODE-STORE-004", 500, false, "the database was written by a newer acode (its schema is ahead of this binary)";
    StoreMigrationModified = "ACODE-STORE-005", 500, false, "an applied migration differs from the one in this binary (edited after it was applied)";
    StoreCaptureUnavailable = "ACODE-STORE-006", 500, false, "the connection cannot capture changes (not opened by acode): the write was refused";
    StoreBusy = "ACODE-STORE-007", 503, true, "the database is locked by another writer; try again";
    StoreWorkspaceNotFound = "ACODE-STORE-008", 404, false, "no acode workspace here (run `acode init`, or pass --workspace)";
    StoreIo = "ACODE-STORE-009", 500, true, "the database could not be read or written (I/O error or full disk)";
    StoreMigrationFailed = "ACODE-STORE-010", 500, false, "a schema migration failed; nothing of it was applied";
    StoreInternal = "ACODE-STORE-011", 500, false, "unexpected database error (a bug, or a database changed by hand); nothing was written";
    SyncConnectionFailed = "ACODE-SYNC-001", 503, true, "connection to the remote failed";
    SyncBatchFailed = "ACODE-SYNC-002", 500, true, "a batch failed on the remote";
    SyncConflict = "ACODE-SYNC-003", 409, false, "conflict detected";
    SyncMaxRetries = "ACODE-SYNC-004", 500, false, "max retries exceeded";
    SyncInvalidPayload = "ACODE-SYNC-005", 400, false, "invalid payload";
    SyncSchemaMismatch = "ACODE-SYNC-006", 412, true, "schema version mismatch";
    SyncKeyReused = "ACODE-SYNC-007", 422, false, "idempotency key reused with another payload";
    SyncCursorExpired = "ACODE-SYNC-008", 410, false, "cursor expired: resync from zero";
    SyncParentUnknown = "ACODE-SYNC-009", 400, false, "the parent row is unknown to the server";
    AuthInvalidToken = "ACODE-AUTH-001", 401, false, "missing, invalid or revoked device token";
    AuthForbidden = "ACODE-AUTH-002", 403, false, "the device may not do this";
    AuthNotFound = "ACODE-AUTH-003", 404, false, "no such tenant or device";
    MigrateSourceUnreadable = "ACODE-MIGRATE-001", 400, false, "the migration source is not a readable SQLite database (missing, not SQLite, corrupt, or a read failed)";
    MigrateTargetUnreachable = "ACODE-MIGRATE-002", 503, true, "the migration target PostgreSQL cannot be reached";
    MigrateIncompatibleTarget = "ACODE-MIGRATE-003", 409, false, "an existing target table does not fit the source table (columns, types or key); nothing was written";
    MigrateValueMisfit = "ACODE-MIGRATE-004", 422, false, "a source value does not fit the type of its target column; its chunk was not written";
    MigrateValidationFailed = "ACODE-MIGRATE-005", 409, false, "validation found differences between source and target";
    MigrateInvalid = "ACODE-MIGRATE-006", 400, false, "invalid migration argument: unknown table, bad --uuid-map, key, schedule, source or target";
    MigrateJobBusy = "ACODE-MIGRATE-007", 409, true, "the sync job is already running; this run was not started";
    MigrateNotFound = "ACODE-MIGRATE-008", 404, false, "no such migration job or record";
    MigrateTargetFailed = "ACODE-MIGRATE-009", 500, true, "a statement on the migration target failed; its transaction was rolled back";
    MigrateUnsupportedSource = "ACODE-MIGRATE-010", 422, false, "the source schema cannot be migrated as is (the message says why)";
    MigrateIo = "ACODE-MIGRATE-011", 500, true, "a migration report or job log could not be written";
    HealthCheckFailed = "ACODE-HEALTH-001", 503, true, "a health check could not give an answer: it failed, panicked or timed out (the message names the check)";
    BackupFailed = "ACODE-BACKUP-001", 500, true, "a backup could not be written";
    BackupChecksum = "ACODE-BACKUP-002", 400, false, "the backup does not match its manifest (checksum or size): corrupt or truncated; nothing was restored";
    BackupInvalid = "ACODE-BACKUP-003", 400, false, "not an acode backup (no manifest, or not an acode database inside); nothing was restored";
    BackupNotFound = "ACODE-BACKUP-004", 404, false, "no such backup file";
    BackupToolUnavailable = "ACODE-BACKUP-005", 500, false, "pg_dump is missing or older than the server: install the PostgreSQL client tools (Debian: postgresql-client) of the server's major version or newer";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.code()), "duplicate {}", c.code());
            let parts: Vec<_> = c.code().split('-').collect();
            assert_eq!(parts.len(), 3, "{}", c.code());
            assert_eq!(parts[0], "ACODE");
            assert_eq!(parts[2].len(), 3);
            assert!((400..600).contains(&c.http_status()));
        }
    }
}

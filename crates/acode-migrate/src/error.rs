//! The errors of analysis, copy, validation and jobs, each mapped to one
//! stable public code in the `ACODE-MIGRATE-0xx` range (see [`MigrateError::code`]).

use acode_protocol::ErrorCode;

pub type Result<T, E = MigrateError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source cannot be opened or read as an SQLite database: missing
    /// file, not SQLite, corrupt, or a read that failed half-way.
    #[error("{path}: not a readable SQLite database ({detail})")]
    SourceUnreadable { path: String, detail: String },

    /// The target PostgreSQL could not be reached (refused, DNS, timeout).
    #[error("target {target} unreachable: {message}")]
    TargetUnreachable { target: String, message: String },

    /// A target table exists with a shape the source does not fit (missing
    /// column, incompatible type, no unique key on the key columns). Found
    /// before anything is written.
    #[error("table {table}: the existing target table does not fit the source: {detail}")]
    IncompatibleTarget { table: String, detail: String },

    /// A source value does not fit the type of its target column (e.g.
    /// `'abc'` in a column that maps to `bigint`). Nothing of its chunk was
    /// written.
    #[error("table {table}, column {column}, key {key}: {detail}")]
    ValueMisfit {
        table: String,
        column: String,
        key: String,
        detail: String,
    },

    /// `validate` found a difference between source and target.
    #[error("validation found differences in {0} table(s)")]
    ValidationFailed(usize),

    /// A bad argument: an unknown table, a malformed `--uuid-map`, key or
    /// cron schedule, a bad source or target name.
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },

    /// The job is running elsewhere (its lock is held); this run was not
    /// started.
    #[error("job {0} is already running")]
    JobBusy(String),

    #[error("{what} {name}: not found")]
    NotFound { what: &'static str, name: String },

    /// A statement on the target failed; the transaction it belonged to was
    /// rolled back.
    #[error("{context}: {message}")]
    Target { context: String, message: String },

    /// The source schema cannot be migrated as is (the message says why).
    #[error("table {table}: {detail}")]
    UnsupportedSource { table: String, detail: String },

    /// Writing a report or a job log failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl MigrateError {
    /// The stable public code (ACODE-MIGRATE-0xx), with its HTTP status,
    /// retryability and summary in acode-protocol's table.
    pub fn code(&self) -> ErrorCode {
        match self {
            MigrateError::SourceUnreadable { .. } => ErrorCode::MigrateSourceUnreadable,
            MigrateError::TargetUnreachable { .. } => ErrorCode::MigrateTargetUnreachable,
            MigrateError::IncompatibleTarget { .. } => ErrorCode::MigrateIncompatibleTarget,
            MigrateError::ValueMisfit { .. } => ErrorCode::MigrateValueMisfit,
            MigrateError::ValidationFailed(_) => ErrorCode::MigrateValidationFailed,
            MigrateError::Invalid { .. } => ErrorCode::MigrateInvalid,
            MigrateError::JobBusy(_) => ErrorCode::MigrateJobBusy,
            MigrateError::NotFound { .. } => ErrorCode::MigrateNotFound,
            MigrateError::Target { .. } => ErrorCode::MigrateTargetFailed,
            MigrateError::UnsupportedSource { .. } => ErrorCode::MigrateUnsupportedSource,
            MigrateError::Io { .. } => ErrorCode::MigrateIo,
        }
    }

    /// Whether the same call may succeed later without a change.
    pub fn is_transient(&self) -> bool {
        self.code().is_transient()
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        MigrateError::Invalid {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn source(path: &str, detail: impl ToString) -> Self {
        MigrateError::SourceUnreadable {
            path: path.to_owned(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        MigrateError::Io {
            context: context.into(),
            source,
        }
    }

    /// A closure turning a PostgreSQL error into [`MigrateError::Target`]
    /// (or [`MigrateError::TargetUnreachable`] when the connection is gone).
    pub(crate) fn pg(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |e| pg_error(context, &e)
    }
}

/// An error's message followed by its causes ("error connecting to
/// server: Connection refused (os error 111)"): a pool's or driver's own
/// message alone rarely says what went wrong.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

pub(crate) fn pg_error(context: String, e: &tokio_postgres::Error) -> MigrateError {
    let message = match e.as_db_error() {
        Some(db) => {
            let mut m = db.message().to_owned();
            if let Some(detail) = db.detail() {
                m.push_str(" (");
                m.push_str(detail);
                m.push(')');
            }
            m
        }
        None => with_causes(e),
    };
    if e.as_db_error().is_none() && e.is_closed() {
        return MigrateError::TargetUnreachable {
            target: context,
            message,
        };
    }
    MigrateError::Target { context, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_own_migrate_code() {
        let io = || std::io::Error::other("x");
        let errors = [
            MigrateError::source("p", "x"),
            MigrateError::TargetUnreachable {
                target: "t".into(),
                message: "m".into(),
            },
            MigrateError::IncompatibleTarget {
                table: "t".into(),
                detail: "d".into(),
            },
            MigrateError::ValueMisfit {
                table: "t".into(),
                column: "c".into(),
                key: "k".into(),
                detail: "d".into(),
            },
            MigrateError::ValidationFailed(1),
            MigrateError::invalid("w", "d"),
            MigrateError::JobBusy("x".into()),
            MigrateError::NotFound {
                what: "job",
                name: "n".into(),
            },
            MigrateError::Target {
                context: "c".into(),
                message: "m".into(),
            },
            MigrateError::UnsupportedSource {
                table: "t".into(),
                detail: "d".into(),
            },
            MigrateError::io("c", io()),
        ];
        for (i, e) in errors.iter().enumerate() {
            assert_eq!(e.code().code(), format!("ACODE-MIGRATE-{:03}", i + 1));
        }
        assert!(MigrateError::JobBusy("x".into()).is_transient());
    }
}

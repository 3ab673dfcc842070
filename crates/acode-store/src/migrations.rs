//! Forward-only, numbered, checksummed schema migrations embedded in the
//! binary (`migrations/V<n>__<name>.sql`), applied through refinery.
//!
//! All pending migrations run in one transaction with capture suppressed, so
//! a crash leaves the schema as it was or fully migrated. An applied
//! migration whose checksum differs from the embedded one, or one this binary
//! does not know (a newer schema), is refused before anything runs.

use std::collections::BTreeMap;

use refinery::Migration;
use rusqlite::Connection;

use crate::error::{Result, StoreError};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// refinery's bookkeeping table, named for acode.
pub const HISTORY_TABLE: &str = "acode_schema_history";

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MigrationInfo {
    pub version: i64,
    pub name: String,
    /// When it was applied (RFC 3339), for applied migrations.
    pub applied_on: Option<String>,
}

/// Shown as refinery names its files: `V2__change_capture`.
impl std::fmt::Display for MigrationInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "V{}__{}", self.version, self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SchemaStatus {
    /// The highest applied migration (0 for an empty database).
    pub version: i64,
    /// The highest migration this binary knows.
    pub latest: i64,
    pub applied: Vec<MigrationInfo>,
    pub pending: Vec<MigrationInfo>,
}

fn runner() -> refinery::Runner {
    let mut runner = embedded::migrations::runner()
        .set_grouped(true)
        .set_abort_divergent(true)
        .set_abort_missing(true);
    runner.set_migration_table_name(HISTORY_TABLE);
    runner
}

fn info(m: &Migration) -> MigrationInfo {
    MigrationInfo {
        version: i64::from(m.version()),
        name: m.name().to_string(),
        applied_on: m.applied_on().map(|t| t.to_string()),
    }
}

fn migration_error(e: refinery::Error) -> StoreError {
    match e.kind() {
        refinery::error::Kind::DivergentVersion(applied, _) => {
            StoreError::MigrationModified(applied.to_string())
        }
        refinery::error::Kind::MissingVersion(applied) => StoreError::SchemaTooNew {
            found: applied.to_string(),
            known: latest().to_string(),
        },
        _ => StoreError::MigrationFailed(e.to_string()),
    }
}

/// The highest migration version this binary carries.
pub fn latest() -> i64 {
    runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Compares the database's applied migrations with the embedded ones,
/// refusing a modified or unknown applied migration.
pub(crate) fn status(conn: &mut Connection) -> Result<SchemaStatus> {
    let runner = runner();
    let embedded: BTreeMap<i64, &Migration> = runner
        .get_migrations()
        .iter()
        .map(|m| (i64::from(m.version()), m))
        .collect();
    let has_history = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [HISTORY_TABLE],
            |r| r.get::<_, i64>(0),
        )
        .map_err(StoreError::Sqlite)?
        > 0;
    // Read the history ourselves: refinery panics on a row it cannot parse,
    // and a database from elsewhere may hold anything.
    let applied = if has_history {
        history(conn)?
    } else {
        Vec::new()
    };
    let latest_known = embedded.keys().max().copied().unwrap_or(0);
    for (m, checksum) in &applied {
        match embedded.get(&m.version) {
            None => {
                return Err(StoreError::SchemaTooNew {
                    found: m.to_string(),
                    known: latest_known.to_string(),
                });
            }
            Some(e) if e.checksum().to_string() != *checksum || e.name() != m.name => {
                return Err(StoreError::MigrationModified(m.to_string()));
            }
            Some(_) => {}
        }
        let parsable = m
            .applied_on
            .as_deref()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok());
        if !parsable {
            return Err(StoreError::MigrationModified(format!(
                "{m} (its applied_on is not a time)"
            )));
        }
    }
    let applied: Vec<MigrationInfo> = applied.into_iter().map(|(m, _)| m).collect();
    let applied_versions: Vec<i64> = applied.iter().map(|m| m.version).collect();
    let pending = embedded
        .iter()
        .filter(|(v, _)| !applied_versions.contains(v))
        .map(|(_, m)| info(m))
        .collect();
    Ok(SchemaStatus {
        version: applied_versions.iter().max().copied().unwrap_or(0),
        latest: latest_known,
        applied,
        pending,
    })
}

/// The applied migrations as recorded, with their checksums as text.
fn history(conn: &Connection) -> Result<Vec<(MigrationInfo, String)>> {
    let sql = format!(
        "SELECT CAST(version AS TEXT), CAST(name AS TEXT), CAST(applied_on AS TEXT), CAST(checksum AS TEXT)
         FROM {HISTORY_TABLE} ORDER BY version"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (version, name, applied_on, checksum) = row?;
        let version = version
            .as_deref()
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| StoreError::MigrationModified(format!("history row {version:?}")))?;
        let info = MigrationInfo {
            version,
            name: name.unwrap_or_default(),
            applied_on,
        };
        out.push((info, checksum.unwrap_or_default()));
    }
    Ok(out)
}

/// Applies every pending migration in one transaction.
pub(crate) fn apply(conn: &mut Connection) -> Result<Vec<MigrationInfo>> {
    let report = runner().run(conn).map_err(migration_error)?;
    Ok(report.applied_migrations().iter().map(info).collect())
}

/// Applies pending migrations up to `version`.
pub(crate) fn apply_to(conn: &mut Connection, version: i64) -> Result<Vec<MigrationInfo>> {
    let target = i32::try_from(version)
        .map_err(|_| StoreError::MigrationFailed(format!("no migration {version}")))?;
    let report = runner()
        .set_target(refinery::Target::Version(target))
        .run(conn)
        .map_err(migration_error)?;
    Ok(report.applied_migrations().iter().map(info).collect())
}

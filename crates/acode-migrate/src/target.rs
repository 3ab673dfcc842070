//! The target PostgreSQL: the connection pool, what an existing table
//! looks like, and the DDL of tables acode creates.

use deadpool_postgres::{Object, Pool};
use tokio_postgres::Config;

use crate::error::{MigrateError, Result};
use crate::ident::quote;
use crate::value::Kind;

/// Comment on every table acode creates: later runs add its indexes and
/// foreign keys only to such tables, never to tables a user made.
pub const CREATED_COMMENT: &str = "created by acode migrate";
/// Comment on a table acode created whose first load is not finished yet
/// (no primary key, indexes or foreign keys yet); replaced by
/// [`CREATED_COMMENT`] when the key is added.
pub const LOADING_COMMENT: &str = "created by acode migrate; first load not finished";

/// How long a connection attempt may take before the target counts as
/// unreachable.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A handle on the target database. Cheap to clone.
#[derive(Clone)]
pub struct Target {
    pool: Pool,
    /// For connections of their own, outside the pool.
    config: Config,
    /// host:port/database, for messages (never the password).
    pub desc: String,
    /// The schema migrated tables live in (`public` by default).
    pub schema: String,
}

impl Target {
    /// A lazy pool for a `postgres://` URL: nothing is sent before the
    /// first use.
    pub fn new(url: &str, schema: &str) -> Result<Target> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(MigrateError::invalid(
                "target",
                format!("{url:?} is not a postgres:// URL"),
            ));
        }
        let mut config: Config = url
            .parse()
            .map_err(|e| MigrateError::invalid("target", format!("{e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("acode-migrate");
        }
        let (pool, desc) = acode_remote::pool(config.clone(), 4)
            .map_err(|e| MigrateError::invalid("target", e.to_string()))?;
        Ok(Target {
            pool,
            config,
            desc,
            schema: schema.to_owned(),
        })
    }

    /// A connection of its own, outside the pool (e.g. to hold a job's
    /// session lock for a whole run without taking a pooled connection
    /// that run needs); closed when dropped.
    pub async fn dedicated(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) =
            self.config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| MigrateError::TargetUnreachable {
                    target: self.desc.clone(),
                    message: crate::error::with_causes(&e),
                })?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// A connection; [`MigrateError::TargetUnreachable`] when there is none.
    pub async fn client(&self) -> Result<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| MigrateError::TargetUnreachable {
                target: self.desc.clone(),
                message: crate::error::with_causes(&e),
            })
    }

    /// `"schema"."table"`.
    pub fn qualified(&self, table: &str) -> String {
        crate::ident::qualified(&self.schema, table)
    }
}

/// One column of an existing target table.
#[derive(Clone, Debug)]
pub struct ExistingColumn {
    pub name: String,
    pub typname: String,
    pub kind: Option<Kind>,
    pub not_null: bool,
    pub has_default: bool,
}

/// An existing target table.
#[derive(Clone, Debug)]
pub struct Existing {
    pub columns: Vec<ExistingColumn>,
    /// Column sets of its unique indexes (plain, not partial).
    pub unique_keys: Vec<Vec<String>>,
    pub created_by_acode: bool,
    /// Created by acode, first load not finished.
    pub loading: bool,
    /// Names of its constraints and indexes.
    pub constraints: Vec<String>,
    /// Names of its constraints not yet validated (`NOT VALID`).
    pub unvalidated: Vec<String>,
    /// Its user-defined triggers (to check the row-hash triggers).
    pub triggers: Vec<crate::rowhash::ExistingTrigger>,
}

impl Existing {
    pub fn column(&self, name: &str) -> Option<&ExistingColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn has_unique_key(&self, cols: &[String]) -> bool {
        let mut want: Vec<&String> = cols.iter().collect();
        want.sort();
        self.unique_keys.iter().any(|k| {
            let mut have: Vec<&String> = k.iter().collect();
            have.sort();
            have == want
        })
    }
}

/// The table `schema.name` as it exists, or `None`.
pub async fn existing(client: &Object, schema: &str, name: &str) -> Result<Option<Existing>> {
    let qualified = crate::ident::qualified(schema, name);
    // Each query names the table itself, so all five go out at once, typed
    // (no prepare first): one round trip, not ten.
    let query = |sql: &'static str| {
        let qualified = &qualified;
        async move {
            client
                .query_typed(sql, &[(qualified, tokio_postgres::types::Type::TEXT)])
                .await
        }
    };
    let (head, columns, unique_keys, named, triggers) = tokio::try_join!(
        query("SELECT to_regclass($1)::oid, obj_description(to_regclass($1), 'pg_class')"),
        query(
            "SELECT a.attname::text, t.typname::text, a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        ),
        query(
            "SELECT array_agg(a.attname::text) FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
             WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
             GROUP BY i.indexrelid"
        ),
        // Constraints and indexes by name; a constraint added `NOT VALID`
        // and not yet validated is listed in `unvalidated` too.
        query(
            "SELECT conname::text, convalidated FROM pg_constraint WHERE conrelid = to_regclass($1)
             UNION ALL SELECT c.relname::text, true FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = to_regclass($1)"
        ),
        query(
            "SELECT t.tgname::text, t.tgenabled::text, p.proname::text, p.prosrc
             FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
             WHERE t.tgrelid = to_regclass($1) AND NOT t.tgisinternal"
        ),
    )
    .map_err(MigrateError::pg(format!(
        "reading the shape of target table {name}"
    )))?;
    let Some(head) = head
        .first()
        .filter(|r| r.get::<_, Option<u32>>(0).is_some())
    else {
        return Ok(None);
    };
    let comment: Option<String> = head.get(1);
    let columns = columns
        .into_iter()
        .map(|r| {
            let typname: String = r.get(1);
            ExistingColumn {
                name: r.get(0),
                kind: Kind::from_typname(&typname),
                typname,
                not_null: r.get(2),
                has_default: r.get(3),
            }
        })
        .collect();
    let unique_keys = unique_keys
        .into_iter()
        .map(|r| r.get::<_, Vec<String>>(0))
        .collect();
    let named: Vec<(String, bool)> = named
        .into_iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1)))
        .collect();
    let unvalidated = named
        .iter()
        .filter(|(_, valid)| !valid)
        .map(|(n, _)| n.clone())
        .collect();
    let constraints = named.into_iter().map(|(n, _)| n).collect();
    let triggers = triggers
        .into_iter()
        .map(|r| crate::rowhash::ExistingTrigger {
            name: r.get(0),
            enabled: r.get(1),
            function: r.get(2),
            source: r.get(3),
        })
        .collect();
    let loading = comment.as_deref() == Some(LOADING_COMMENT);
    Ok(Some(Existing {
        columns,
        unique_keys,
        created_by_acode: loading || comment.as_deref() == Some(CREATED_COMMENT),
        loading,
        constraints,
        unvalidated,
        triggers,
    }))
}

/// A name PostgreSQL keeps as is (≤ 63 bytes), else a short stable one
/// derived from it.
pub fn pg_name(prefix: &str, wanted: &str) -> String {
    if wanted.len() <= crate::ident::PG_MAX_IDENT && !wanted.starts_with("sqlite_") {
        return wanted.to_owned();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(wanted.as_bytes());
    format!("{prefix}_{}", crate::value::hex(&digest[..8]))
}

/// `CREATE TABLE` of a plan's columns, keyed by `key`. Text key columns
/// use the byte-order collation so key ranges sort as in SQLite. Without
/// `primary_key` the key is added after the first load
/// ([`primary_key_sql`]); `hash_column` adds the hidden row-hash column.
pub fn create_table_sql(
    qualified: &str,
    columns: &[(String, Kind, bool)],
    key: &[String],
    primary_key: bool,
    hash_column: bool,
) -> String {
    let mut parts: Vec<String> = columns
        .iter()
        .map(|(name, kind, not_null)| {
            let mut def = format!("{} {}", quote(name), kind.ddl());
            if kind.is_texty() && key.contains(name) {
                def.push_str(" COLLATE \"C\"");
            }
            if *not_null {
                def.push_str(" NOT NULL");
            }
            def
        })
        .collect();
    if hash_column {
        parts.push(format!("{} bigint", quote(crate::rowhash::COLUMN)));
    }
    if primary_key {
        let key: Vec<String> = key.iter().map(|k| quote(k)).collect();
        parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    format!(
        "CREATE TABLE {qualified} (\n  {}\n) WITH (fillfactor = {FILLFACTOR})",
        parts.join(",\n  ")
    )
}

/// How full a first load packs the pages of a table acode creates. The
/// room left lets a later run's update of a row stay on the row's page
/// (a HOT update: no new index entry, one page written instead of
/// three), which makes the re-run after 1 % changed about a third faster
/// for about a tenth more table pages.
pub const FILLFACTOR: u8 = 90;

/// Adds the primary key a table was created without.
pub fn primary_key_sql(qualified: &str, key: &[String]) -> String {
    let key: Vec<String> = key.iter().map(|k| quote(k)).collect();
    format!(
        "ALTER TABLE {qualified} ADD PRIMARY KEY ({})",
        key.join(", ")
    )
}

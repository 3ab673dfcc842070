//! The row hash kept in a hidden column of the tables acode creates.
//!
//! Comparing a chunk needs the hash of every target row in it. Computed in
//! SQL ([`TablePlan::hash_value_sql`]) that costs a SHA-256 over every row
//! on every run; so each table acode creates has a hidden column
//! [`COLUMN`] holding the row's hash (the same 8 bytes, as a `bigint`).
//! acode's own writes fill it with the hash they already computed on the
//! source side, and mark themselves with the transaction-local setting
//! [`SETTING`]; every other writer's `INSERT` and `UPDATE` goes through a
//! trigger that recomputes it with the very SQL expression validate uses,
//! enabled `ALWAYS` so that writers in `session_replication_role =
//! replica` are seen too. A re-run then reads stored hashes
//! (`COALESCE`d with the computed one, should a row hold none), while
//! validate keeps hashing the real values.
//!
//! A run checks that the triggers are in place, enabled, and run the
//! function it would create; when not (dropped, disabled, or created for
//! other column types), it puts them back and rehashes every row before
//! trusting the column.
//!
//! During a table's first load the insert trigger is left out (a `BEFORE
//! INSERT` row trigger makes PostgreSQL's `COPY` insert row by row), as
//! are its primary key, indexes and foreign keys: the update trigger is
//! there from the start, and rows others insert meanwhile hold no hash
//! (`NULL`, computed when read). See [`crate::engine`] for that load.

use deadpool_postgres::Object;

use crate::error::{MigrateError, Result};
use crate::ident::quote;
use crate::plan::TablePlan;

/// The hidden column.
pub const COLUMN: &str = "__acode_row_hash";
/// Set to `on` (`SET LOCAL`) by acode's own writes, which write the hash
/// themselves; the triggers skip them.
pub const SETTING: &str = "acode.loading";
/// The triggers' names sort after the usual ones: PostgreSQL fires a
/// table's `BEFORE` row triggers in name order, and the hash must cover
/// the row as other triggers (a `set_updated_at`, say) leave it.
pub const UPDATE_TRIGGER: &str = "zz_acode_row_hash_update";
pub const INSERT_TRIGGER: &str = "zz_acode_row_hash_insert";
/// Dollar-quote tag of the trigger function's body.
const TAG: &str = "$acode_row_hash$";

/// The statement acode's writes start their transaction with.
pub const MARK_OWN_WRITES: &str = "SET LOCAL acode.loading = 'on'";

/// The trigger function's name (unqualified, as the catalog shows it).
fn function_name(plan: &TablePlan) -> String {
    crate::target::pg_name("acode_rh", &format!("acode_row_hash_{}", plan.name()))
}

/// The trigger function's name, in the table's schema.
pub fn function(plan: &TablePlan) -> String {
    crate::ident::qualified(&plan.schema, &function_name(plan))
}

/// The trigger function's body (`pg_proc.prosrc`).
pub fn function_body(plan: &TablePlan) -> String {
    format!(
        "\nBEGIN\n  NEW.{} := {};\n  RETURN NEW;\nEND\n",
        quote(COLUMN),
        plan.hash_value_sql("NEW.")
    )
}

/// Whether the table's hash can be kept by a trigger (its body must not
/// hold the dollar-quote tag, which only odd column names could bring).
pub fn possible(plan: &TablePlan) -> bool {
    !function_body(plan).contains(TAG) && plan.table.column(COLUMN).is_none()
}

/// Creates (or replaces) the function and the triggers: the update
/// trigger always, the insert trigger when `insert`.
pub fn install_sql(plan: &TablePlan, insert: bool) -> String {
    let f = function(plan);
    let t = &plan.qualified;
    let mut sql = format!(
        "CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS {TAG}{}{TAG};\n",
        function_body(plan)
    );
    let mut triggers = vec![(UPDATE_TRIGGER, "UPDATE")];
    if insert {
        triggers.push((INSERT_TRIGGER, "INSERT"));
    }
    for (name, event) in triggers {
        let name = quote(name);
        sql.push_str(&format!(
            "DROP TRIGGER IF EXISTS {name} ON {t};
             CREATE TRIGGER {name} BEFORE {event} ON {t} FOR EACH ROW
               WHEN (current_setting('{SETTING}', true) IS DISTINCT FROM 'on') EXECUTE FUNCTION {f}();
             ALTER TABLE {t} ENABLE ALWAYS TRIGGER {name};\n"
        ));
    }
    sql
}

/// Recomputes every row's hash (after the triggers were found missing or
/// changed).
pub fn rehash_sql(plan: &TablePlan) -> String {
    format!(
        "UPDATE {0} AS t SET {1} = {2} WHERE {1} IS DISTINCT FROM {2}",
        plan.qualified,
        quote(COLUMN),
        plan.hash_value_sql("t.")
    )
}

/// One trigger of an existing table, as the catalog has it.
#[derive(Clone, Debug)]
pub struct ExistingTrigger {
    pub name: String,
    /// `pg_trigger.tgenabled`: `A` fires always.
    pub enabled: String,
    /// The function's name and body.
    pub function: String,
    pub source: String,
}

/// Whether `triggers` keep the hash of `plan`'s rows: both triggers (the
/// update trigger alone during a first load), enabled always, running the
/// function this version of acode creates.
pub fn kept(plan: &TablePlan, triggers: &[ExistingTrigger]) -> bool {
    let body = function_body(plan);
    let want_fn = function_name(plan);
    let ok = |name: &str| {
        triggers.iter().any(|t| {
            t.name == name && t.enabled == "A" && t.function == want_fn && t.source == body
        })
    };
    ok(UPDATE_TRIGGER) && (plan.loading || ok(INSERT_TRIGGER))
}

/// Puts the function and triggers back and recomputes every row's hash,
/// in one transaction; then the column can be trusted again.
pub async fn repair(client: &mut Object, plan: &mut TablePlan) -> Result<()> {
    let name = plan.name().to_owned();
    let sql = format!(
        "{MARK_OWN_WRITES};\n{}{};",
        install_sql(plan, !plan.loading),
        rehash_sql(plan)
    );
    let ctx = || format!("restoring the row-hash trigger of {name}");
    let tx = client
        .transaction()
        .await
        .map_err(MigrateError::pg(ctx()))?;
    tx.batch_execute(&sql)
        .await
        .map_err(MigrateError::pg(ctx()))?;
    tx.commit().await.map_err(MigrateError::pg(ctx()))?;
    plan.hash_kept = true;
    Ok(())
}

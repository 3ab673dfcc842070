//! The results of analyze, run, validate and check-record, as plain data
//! (`Serialize`): the CLI prints them, the control tables store them.

use serde::Serialize;

use crate::engine::Counts;
use crate::plan::PlanColumn;
use crate::schema::Skipped;

#[derive(Clone, Debug, Serialize)]
pub struct TableAnalysis {
    pub table: String,
    pub key: Vec<String>,
    pub target_exists: bool,
    pub columns: Vec<PlanColumn>,
    pub source_rows: u64,
    /// `None` when the table could not be compared (see `problems`).
    pub target_rows: Option<u64>,
    pub missing: Option<u64>,
    pub changed: Option<u64>,
    pub extra: Option<u64>,
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AnalyzeReport {
    pub source: String,
    pub target: String,
    /// In foreign-key order.
    pub tables: Vec<TableAnalysis>,
    pub skipped: Vec<Skipped>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct TableRun {
    pub table: String,
    /// The target table was created by this run.
    pub created: bool,
    #[serde(flatten)]
    pub counts: Counts,
    pub notes: Vec<String>,
}

impl TableRun {
    /// Rows written: inserted plus updated.
    pub fn copied(&self) -> u64 {
        self.counts.inserted + self.counts.updated
    }
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct RunReport {
    pub source: String,
    pub target: String,
    pub tables: Vec<TableRun>,
    pub notes: Vec<String>,
    pub copied: u64,
    pub deleted: u64,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TableValidation {
    pub table: String,
    pub ok: bool,
    pub source_rows: u64,
    pub target_rows: u64,
    pub chunks: u64,
    pub chunks_differing: u64,
    pub missing: u64,
    pub changed: u64,
    pub extra: u64,
    /// Rows compared value by value.
    pub sampled: u64,
    pub sample_mismatches: Vec<String>,
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValidationReport {
    pub ok: bool,
    pub source: String,
    pub target: String,
    pub created_at: String,
    pub tables: Vec<TableValidation>,
    /// Id of the row in `acode_migrate.migration_validation_reports`.
    pub report_id: i64,
}

impl ValidationReport {
    pub fn mismatched_tables(&self) -> usize {
        self.tables.iter().filter(|t| !t.ok).count()
    }

    /// Writes the report to `path`: JSON when the name ends in `.json`,
    /// else Markdown.
    pub fn write_to(&self, path: &std::path::Path) -> crate::Result<()> {
        let text = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            serde_json::to_string_pretty(self).unwrap_or_default()
        } else {
            self.to_markdown()
        };
        std::fs::write(path, text).map_err(|e| {
            crate::MigrateError::io(format!("writing the report to {}", path.display()), e)
        })
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        md.push_str("# Migration validation\n\n");
        md.push_str(&format!(
            "- source: `{}`\n- target: `{}`\n- at: {}\n- result: **{}**\n\n",
            self.source,
            self.target,
            self.created_at,
            if self.ok { "equal" } else { "MISMATCH" }
        ));
        md.push_str("| table | ok | source rows | target rows | chunks (differing) | missing | changed | extra | sampled |\n");
        md.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for t in &self.tables {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} |\n",
                t.table.replace('|', "\\|"),
                if t.ok { "✓" } else { "✗" },
                t.source_rows,
                t.target_rows,
                t.chunks,
                t.chunks_differing,
                t.missing,
                t.changed,
                t.extra,
                t.sampled
            ));
        }
        let notes: Vec<String> = self
            .tables
            .iter()
            .flat_map(|t| {
                t.problems
                    .iter()
                    .chain(t.sample_mismatches.iter())
                    .map(move |p| format!("- {}: {p}\n", t.table))
            })
            .collect();
        if !notes.is_empty() {
            md.push_str("\n## Findings\n\n");
            md.extend(notes);
        }
        md
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RecordColumn {
    pub column: String,
    pub source: serde_json::Value,
    pub target: serde_json::Value,
    pub equal: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecordView {
    pub table: String,
    pub key: String,
    pub in_source: bool,
    pub in_target: bool,
    pub equal: bool,
    pub columns: Vec<RecordColumn>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckpointRow {
    pub table: String,
    pub source: String,
    pub status: String,
    pub last_key: Option<String>,
    pub chunks_done: i64,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_deleted: i64,
    pub updated_at: String,
}

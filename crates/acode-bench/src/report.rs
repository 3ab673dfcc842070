//! The one output shape of every benchmark: figure, value, reference,
//! reference value, ratio, target.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Row {
    pub figure: String,
    pub value: f64,
    pub unit: &'static str,
    pub reference: String,
    pub reference_value: f64,
    /// value / reference_value.
    pub ratio: f64,
    pub target: String,
    /// Whether the ratio (or value) meets the target; informative only, a
    /// benchmark never fails on timing.
    pub meets_target: bool,
}

pub fn print(rows: &[Row], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header([
        "figure",
        "value",
        "reference",
        "ref. value",
        "ratio",
        "target",
        "met",
    ]);
    for r in rows {
        table.add_row([
            r.figure.clone(),
            format!("{:.1} {}", r.value, r.unit),
            r.reference.clone(),
            format!("{:.1} {}", r.reference_value, r.unit),
            format!("{:.2}", r.ratio),
            r.target.clone(),
            if r.meets_target { "yes" } else { "no" }.to_string(),
        ]);
    }
    println!("{table}");
    Ok(())
}

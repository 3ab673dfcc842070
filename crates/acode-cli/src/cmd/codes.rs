//! `acode help codes` / `acode codes`: the table of public error codes.

use std::fmt;

use acode_protocol::ErrorCode;
use serde::Serialize;

use super::Ctx;
use crate::output;

#[derive(Serialize)]
struct Codes {
    codes: Vec<CodeRow>,
}

#[derive(Serialize)]
struct CodeRow {
    code: &'static str,
    summary: &'static str,
}

impl fmt::Display for Codes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table = output::table(["Code", "Meaning"]);
        for c in &self.codes {
            table.add_row([c.code, c.summary]);
        }
        f.write_str(&output::render(&table))
    }
}

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let codes = ErrorCode::ALL
        .iter()
        .map(|c| CodeRow {
            code: c.code(),
            summary: c.summary(),
        })
        .collect();
    ctx.print(&Codes { codes })
}

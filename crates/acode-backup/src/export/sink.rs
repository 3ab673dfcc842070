//! Writing exported rows in one of the three formats, one row at a time.
//! Every value is text or NULL (the store keeps times as RFC 3339 text).

use std::io::{self, Write};

use super::ExportFormat;

pub enum Sink<'w> {
    Json {
        out: &'w mut dyn Write,
        columns: Vec<String>,
        first: bool,
    },
    Csv(Box<csv::Writer<&'w mut dyn Write>>),
    Sql {
        out: &'w mut dyn Write,
        insert: String,
    },
}

impl<'w> Sink<'w> {
    pub fn new(format: ExportFormat, out: &'w mut dyn Write) -> Sink<'w> {
        match format {
            ExportFormat::Json => Sink::Json {
                out,
                columns: Vec::new(),
                first: true,
            },
            ExportFormat::Csv => Sink::Csv(Box::new(csv::Writer::from_writer(out))),
            ExportFormat::Sql => Sink::Sql {
                out,
                insert: String::new(),
            },
        }
    }

    pub fn begin(&mut self, table: &str, columns: &[&str]) -> io::Result<()> {
        match self {
            Sink::Json {
                out, columns: c, ..
            } => {
                *c = columns.iter().map(|name| json_string(name)).collect();
                out.write_all(b"[")
            }
            Sink::Csv(w) => w.write_record(columns).map_err(csv_error),
            Sink::Sql { out, insert } => {
                *insert = format!("INSERT INTO {table} ({}) VALUES (", columns.join(", "));
                writeln!(out, "-- acode export: table {table}")?;
                writeln!(out, "BEGIN;")?;
                writeln!(out, "{}", create_table(table, columns))
            }
        }
    }

    pub fn row(&mut self, values: &[Option<String>]) -> io::Result<()> {
        match self {
            Sink::Json {
                out,
                columns,
                first,
            } => {
                out.write_all(if *first { b"\n{" } else { b",\n{" })?;
                *first = false;
                for (i, (name, value)) in columns.iter().zip(values).enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(name.as_bytes())?;
                    out.write_all(b":")?;
                    match value {
                        Some(v) => out.write_all(json_string(v).as_bytes())?,
                        None => out.write_all(b"null")?,
                    }
                }
                out.write_all(b"}")
            }
            Sink::Csv(w) => w
                .write_record(values.iter().map(|v| v.as_deref().unwrap_or("")))
                .map_err(csv_error),
            Sink::Sql { out, insert } => {
                out.write_all(insert.as_bytes())?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b", ")?;
                    }
                    match value {
                        Some(v) => out.write_all(sql_literal(v).as_bytes())?,
                        None => out.write_all(b"NULL")?,
                    }
                }
                out.write_all(b");\n")
            }
        }
    }

    pub fn end(&mut self) -> io::Result<()> {
        match self {
            Sink::Json { out, first, .. } => out.write_all(if *first { b"]\n" } else { b"\n]\n" }),
            Sink::Csv(w) => w.flush(),
            Sink::Sql { out, .. } => out.write_all(b"COMMIT;\n"),
        }
    }
}

/// `CREATE TABLE IF NOT EXISTS` with every column TEXT: the common type of
/// SQLite and PostgreSQL for what the store keeps. Run records are keyed by
/// (entity, id), the others by id.
fn create_table(table: &str, columns: &[&str]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| {
            if *c == "id" && table != "run_records" {
                format!("    {c} TEXT PRIMARY KEY")
            } else {
                format!("    {c} TEXT")
            }
        })
        .collect();
    let key = if table == "run_records" {
        ",\n    PRIMARY KEY (entity, id)"
    } else {
        ""
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (\n{}{key}\n);",
        cols.join(",\n")
    )
}

/// A standard SQL string literal: single quotes doubled, nothing else
/// escaped (no backslash escapes, which PostgreSQL's standard strings and
/// SQLite both take literally). Newlines and any Unicode stay as they are.
/// A carriage return right before a newline ends the literal and the rest
/// is concatenated (`'a\r' || '\nb'`): the `sqlite3` shell's line reader
/// drops a CR that ends a line, so no line of the file may end with one.
pub fn sql_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\'' {
            out.push('\'');
        }
        out.push(ch);
        if ch == '\r' && chars.peek() == Some(&'\n') {
            out.push_str("' || '");
        }
    }
    out.push('\'');
    out
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

fn csv_error(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_quotes_and_keep_backslashes() {
        assert_eq!(sql_literal("it's"), "'it''s'");
        assert_eq!(sql_literal(r"a\'b"), r"'a\''b'");
        assert_eq!(sql_literal("line\nnext, ü"), "'line\nnext, ü'");
        assert_eq!(sql_literal("a\r\nb\rc"), "'a\r' || '\nb\rc'");
    }

    #[test]
    fn an_empty_json_export_is_an_empty_array() -> io::Result<()> {
        let mut buf = Vec::new();
        {
            let mut sink = Sink::new(ExportFormat::Json, &mut buf);
            sink.begin("chats", &["id"])?;
            sink.end()?;
        }
        let v: serde_json::Value = serde_json::from_slice(&buf).map_err(io::Error::other)?;
        assert_eq!(v, serde_json::json!([]));
        Ok(())
    }
}

//! Printing: a command's result as text (its `Display`) or as one JSON
//! document (its `Serialize`), and failures as `error[ACODE-…]: message`
//! or `{"error":{"code","message"}}`.

use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;

use acode_config::ConfigError;
use acode_protocol::ErrorCode;
use acode_store::{StoreError, WorkspaceError};
use comfy_table::{Cell, Table, presets};
use serde::Serialize;

/// Prints a result on stdout. A closed pipe (`acode chat list | head`) is
/// not an error.
pub fn print<T: Serialize + Display>(view: &T, json: bool) -> anyhow::Result<()> {
    let text = if json {
        serde_json::to_string_pretty(view)?
    } else {
        view.to_string()
    };
    write_stdout(&text)?;
    Ok(())
}

/// Prints a failure and returns exit code 1.
pub fn error(err: &anyhow::Error, json: bool) -> ExitCode {
    if let Some(usage) = err.downcast_ref::<clap::Error>() {
        return usage_error(usage, json);
    }
    report(code_of(err), &message_of(err), json);
    ExitCode::from(1)
}

/// Prints a clap error (or the help and version text clap reports as
/// errors) and returns clap's exit code: 0 for help, 2 for usage errors.
pub fn usage_error(err: &clap::Error, json: bool) -> ExitCode {
    let code = err.exit_code();
    if code == 0 {
        // --help and --version: clap's text is the output.
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let rendered = err.render().to_string();
    let message = clap_message(&rendered);
    if json {
        let _ = write_stdout(&error_json(ErrorCode::UsageInvalid, &message));
    } else {
        // The stable first line, then clap's hints (possible values, usage).
        eprintln!("error[{}]: {message}", ErrorCode::UsageInvalid);
        let hints: Vec<&str> = rendered
            .lines()
            .skip_while(|l| !l.trim().is_empty())
            .skip(1)
            .collect();
        let hints = hints.join("\n");
        if !hints.trim().is_empty() {
            eprintln!("{hints}");
        }
    }
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

fn report(code: ErrorCode, message: &str, json: bool) {
    if json {
        let _ = write_stdout(&error_json(code, message));
    } else {
        eprintln!("error[{code}]: {message}");
    }
}

fn error_json(code: ErrorCode, message: &str) -> String {
    serde_json::json!({ "error": { "code": code.code(), "message": message } }).to_string()
}

/// The public code of the first error in the chain that has one; anything
/// else (writing the output, a bug) counts as an I/O failure.
fn code_of(err: &anyhow::Error) -> ErrorCode {
    err.chain()
        .find_map(|cause| {
            if let Some(e) = cause.downcast_ref::<StoreError>() {
                Some(e.code())
            } else if let Some(e) = cause.downcast_ref::<acode_backup::BackupError>() {
                Some(e.code())
            } else if let Some(e) = cause.downcast_ref::<acode_sync::SyncError>() {
                Some(e.code())
            } else if let Some(e) = cause.downcast_ref::<ConfigError>() {
                Some(e.code())
            } else if let Some(e) = cause.downcast_ref::<acode_remote::RemoteError>() {
                Some(e.code())
            } else if let Some(e) = cause.downcast_ref::<acode_server::ServerError>() {
                Some(e.code())
            } else if let Some(e) = cause.downcast_ref::<acode_migrate::MigrateError>() {
                Some(e.code())
            } else {
                cause.downcast_ref::<WorkspaceError>().map(|e| e.code())
            }
        })
        .unwrap_or(ErrorCode::StoreIo)
}

/// The error and its causes, context first, each cause said once (typed
/// errors already include their source in their message).
fn message_of(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    message
}

/// clap's first paragraph on one line, without its `error: ` tag.
fn clap_message(rendered: &str) -> String {
    let first: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = first.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_owned()
}

fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// A borderless table with a header, for lists.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_header(header.map(Cell::new));
    table
}

/// A table as text, without the padding at the end of each line.
pub fn render(table: &Table) -> String {
    let lines: Vec<String> = table.lines().map(|l| l.trim_end().to_owned()).collect();
    lines.join("\n")
}

/// A one-line preview of a long text, for tables.
pub fn preview(text: &str, max_chars: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut out: String = line.chars().take(max_chars).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// How long ago an RFC 3339 time was, roughly ("12s ago"); the text as is
/// if it is not one.
pub fn ago(rfc3339: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let secs = (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
            match secs {
                0..60 => format!("{secs}s ago"),
                60..3600 => format!("{}m ago", secs / 60),
                3600..86400 => format!("{}h ago", secs / 3600),
                _ => format!("{}d ago", secs / 86400),
            }
        }
        Err(_) => rfc3339.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_each_cause_once() {
        let inner = StoreError::invalid("title", "must not be empty");
        let err = anyhow::Error::new(inner).context("renaming chat 01J");
        assert_eq!(
            message_of(&err),
            "renaming chat 01J: invalid title: must not be empty"
        );
        assert_eq!(code_of(&err), ErrorCode::StoreInvalidInput);
        let io = StoreError::Io {
            context: "reading x".into(),
            source: std::io::Error::other("gone"),
        };
        assert_eq!(message_of(&anyhow::Error::new(io)), "reading x: gone");
    }

    #[test]
    fn clap_messages_are_one_line() {
        let rendered = "error: invalid value 'public' for '--privacy <PRIVACY>'\n  [possible values: full, redacted, local_only]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_message(rendered),
            "invalid value 'public' for '--privacy <PRIVACY>' [possible values: full, redacted, local_only]"
        );
    }

    #[test]
    fn previews_cut_long_and_multi_line_text() {
        assert_eq!(preview("short", 10), "short");
        assert_eq!(preview("abcdef", 3), "abc…");
        assert_eq!(preview("one\ntwo", 10), "one…");
    }

    #[test]
    fn ages_are_rough() {
        let now = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:10:00Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default();
        assert_eq!(ago("2025-01-01T00:09:48Z", now), "12s ago");
        assert_eq!(ago("2025-01-01T00:00:00Z", now), "10m ago");
        assert_eq!(ago("yesterday", now), "yesterday");
    }
}

//! Values at the edges of what an export must carry: several megabytes in
//! one value, and a NUL character (which SQL text cannot hold).
#![allow(clippy::unwrap_used)]

mod common;

use acode_backup::export::{ExportFormat, ExportKind, export};
use acode_protocol::ErrorCode;
use acode_store::{NewChat, NewMessage, Role, Store};
use common::readback::{
    all, expected, from_csv, from_json, nulls_as_empty, run, via_postgres, via_sqlite,
};

/// A value of several megabytes, full of quotes, separators and non-ASCII,
/// loads back whole into SQLite and PostgreSQL and parses back from JSON
/// and CSV.
#[test]
fn very_long_values_survive_every_format() {
    let long = "ü漢'\"\n,;\\ -- ".repeat(200_000);
    let mut store = Store::open_in_memory().unwrap();
    store
        .write(|tx| {
            let chat = tx.create_chat(&NewChat::new("long"))?;
            tx.add_message(&NewMessage::new(chat.id, Role::User, long.as_str()))?;
            Ok(())
        })
        .unwrap();
    let want = expected(&store, ExportKind::Messages, false);
    assert_eq!(want.len(), 1);
    assert_eq!(want[0]["content"], long.as_str());
    let sql = run(&store, ExportKind::Messages, ExportFormat::Sql, &all());
    assert_eq!(via_sqlite(&sql, "messages"), want);
    assert_eq!(via_postgres(&sql, "messages"), want);
    let json_rows = from_json(&run(
        &store,
        ExportKind::Messages,
        ExportFormat::Json,
        &all(),
    ));
    assert_eq!(json_rows, want);
    let csv_rows = from_csv(&run(
        &store,
        ExportKind::Messages,
        ExportFormat::Csv,
        &all(),
    ));
    assert_eq!(csv_rows, nulls_as_empty(&want));
}

/// A NUL character cannot be carried by SQL text (PostgreSQL refuses it,
/// SQLite stops reading the script at it): the SQL export refuses the row
/// by name instead of writing a file that loads back different. JSON and
/// CSV carry it. (The store refuses NUL on write; the database may still
/// hold one written by another tool, planted here with plain SQL.)
#[test]
fn a_nul_character_is_carried_by_json_and_csv_and_refused_by_sql() {
    let text = "before\0after";
    let mut store = Store::open_in_memory().unwrap();
    let id = store
        .write(|tx| {
            let chat = tx.create_chat(&NewChat::new("nul"))?;
            Ok(tx
                .add_message(&NewMessage::new(chat.id, Role::User, "placeholder"))?
                .id)
        })
        .unwrap();
    let planted = store
        .connection()
        .execute(
            "UPDATE messages SET content = ?1 WHERE id = ?2",
            rusqlite::params![text, id.to_string()],
        )
        .unwrap();
    assert_eq!(planted, 1);
    let want = expected(&store, ExportKind::Messages, false);
    assert_eq!(want[0]["content"], text);
    let json_rows = from_json(&run(
        &store,
        ExportKind::Messages,
        ExportFormat::Json,
        &all(),
    ));
    assert_eq!(json_rows, want);
    let csv_rows = from_csv(&run(
        &store,
        ExportKind::Messages,
        ExportFormat::Csv,
        &all(),
    ));
    assert_eq!(csv_rows, nulls_as_empty(&want));

    let mut out = Vec::new();
    let err = export(
        &store,
        ExportKind::Messages,
        ExportFormat::Sql,
        &all(),
        &mut out,
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StoreInvalidInput);
    let message = err.to_string();
    assert!(message.contains(&id.to_string()), "{message}");
    assert!(message.contains("content"), "{message}");
}

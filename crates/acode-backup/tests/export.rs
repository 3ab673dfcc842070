//! Exports read back to the source's rows: JSON and CSV parsed, SQL loaded
//! into a fresh SQLite and a fresh PostgreSQL; privacy applied.
#![allow(clippy::unwrap_used)]

mod common;

use acode_backup::export;
use acode_backup::export::{ExportFilter, ExportFormat, ExportKind, parse_since};
use acode_protocol::ErrorCode;
use acode_store::{
    NewArtifact, NewChat, NewMessage, NewSession, NewStep, NewTask, NewToolCall, Privacy, Role,
    RunStatus, Store,
};
use common::readback::{
    all, expected, from_csv, from_json, nulls_as_empty, run, via_postgres, via_sqlite,
};
use serde_json::{Value, json};

/// Message texts; their privacy cycles full, redacted, local-only.
const TRICKY: &[&str] = &[
    "it's \"quoted\", with commas, and a\nnewline\r\nand CRLF",
    "-- not a comment; DROP TABLE chats;",
    " leading and trailing spaces ",
    "",
    "redacted, so never seen",
    "local, so never seen",
    "ü漢字 🚀 — non-ASCII, backslash \\ and \\' and '' and ;",
];

fn fixture() -> Store {
    let mut store = Store::open_in_memory().unwrap();
    store
        .write(|tx| {
            let full = tx.create_chat(&NewChat::new("Full: 'a', \"b\"\nü -- not a comment;"))?;
            for (i, text) in TRICKY.iter().enumerate() {
                let mut m = NewMessage::new(full.id, Role::User, *text);
                m.privacy = [Privacy::Full, Privacy::Redacted, Privacy::LocalOnly][i % 3];
                tx.add_message(&m)?;
            }
            let red = tx.create_chat(&NewChat::new("secret title").privacy(Privacy::Redacted))?;
            tx.add_message(&NewMessage::new(red.id, Role::Assistant, "secret text"))?;
            let local = tx.create_chat(&NewChat::new("mine").privacy(Privacy::LocalOnly))?;
            tx.add_message(&NewMessage::new(local.id, Role::User, "never exported"))?;
            for (title, privacy) in [
                ("run full", Privacy::Full),
                ("run redacted", Privacy::Redacted),
                ("run local", Privacy::LocalOnly),
            ] {
                let mut s = NewSession::new(title);
                s.privacy = privacy;
                let s = tx.create_session(&s)?;
                let t = tx.create_task(&NewTask {
                    id: None,
                    session_id: s.id,
                    title: format!("{title} task"),
                    status: RunStatus::Running,
                })?;
                let st = tx.create_step(&NewStep {
                    id: None,
                    task_id: t.id,
                    kind: "edit".into(),
                    status: RunStatus::Running,
                    input: Some(TRICKY[0].into()),
                })?;
                tx.create_tool_call(&NewToolCall {
                    id: None,
                    step_id: st.id,
                    tool: "shell".into(),
                    arguments: "{\"cmd\": \"echo 'hi'\"}".into(),
                    status: RunStatus::Succeeded,
                })?;
                tx.create_artifact(&NewArtifact {
                    id: None,
                    session_id: s.id,
                    step_id: Some(st.id),
                    name: "diff.patch".into(),
                    media_type: "text/x-diff".into(),
                    body: TRICKY[6].into(),
                })?;
            }
            Ok(())
        })
        .unwrap();
    store
}

#[test]
fn conversations_and_messages_read_back_from_every_format() {
    let store = fixture();
    for kind in [ExportKind::Conversations, ExportKind::Messages] {
        let want = expected(&store, kind, false);
        assert!(want.len() >= 2, "{kind:?}: fixture too small");
        let (table, _) = match kind {
            ExportKind::Conversations => ("chats", ()),
            _ => ("messages", ()),
        };
        assert_eq!(
            from_json(&run(&store, kind, ExportFormat::Json, &all())),
            want,
            "{kind:?} json"
        );
        assert_eq!(
            from_csv(&run(&store, kind, ExportFormat::Csv, &all())),
            nulls_as_empty(&want),
            "{kind:?} csv"
        );
        let sql = run(&store, kind, ExportFormat::Sql, &all());
        assert_eq!(via_sqlite(&sql, table), want, "{kind:?} sqlite");
        assert_eq!(via_postgres(&sql, table), want, "{kind:?} postgres");
    }
}

#[test]
fn local_only_rows_are_left_out_unless_asked_for_and_redacted_rows_are_emptied() {
    let store = fixture();
    let msgs = from_json(&run(
        &store,
        ExportKind::Messages,
        ExportFormat::Json,
        &all(),
    ));
    let contents: Vec<&Value> = msgs.iter().map(|m| &m["content"]).collect();
    assert!(!contents.contains(&&json!("never exported")));
    assert!(!contents.contains(&&json!("secret text")));
    assert!(msgs.iter().all(|m| m["privacy"] != "local_only"));
    assert!(
        msgs.iter()
            .filter(|m| m["privacy"] == "redacted")
            .all(|m| m["content"].is_null())
    );
    assert!(contents.contains(&&json!(TRICKY[0])));

    let everything = ExportFilter {
        include_local_only: true,
        ..all()
    };
    let msgs = from_json(&run(
        &store,
        ExportKind::Messages,
        ExportFormat::Json,
        &everything,
    ));
    assert_eq!(msgs, expected(&store, ExportKind::Messages, true));
    assert!(msgs.iter().any(|m| m["content"] == "never exported"));
    let chats = from_json(&run(
        &store,
        ExportKind::Conversations,
        ExportFormat::Json,
        &everything,
    ));
    assert_eq!(chats.len(), 3);
}

#[test]
fn runs_export_every_record_with_its_sessions_privacy() {
    let store = fixture();
    let json_text = run(&store, ExportKind::Runs, ExportFormat::Json, &all());
    let rows = from_json(&json_text);
    // Two sessions exported (the local-only one is not), five records each.
    assert_eq!(rows.len(), 10);
    for entity in ["session", "task", "step", "tool_call", "artifact"] {
        assert_eq!(
            rows.iter().filter(|r| r["entity"] == entity).count(),
            2,
            "{entity}"
        );
    }
    assert!(rows.iter().all(|r| r["privacy"] != "local_only"));
    for r in &rows {
        let redacted = r["privacy"] == "redacted";
        match r["entity"].as_str().unwrap() {
            "step" => assert_eq!(r["input"].is_null(), redacted),
            "tool_call" => {
                assert_eq!(r["name"], "shell");
                assert_eq!(r["input"].is_null(), redacted);
            }
            "artifact" => {
                assert_eq!(r["name"].is_null(), redacted);
                assert_eq!(r["output"].is_null(), redacted);
                assert_eq!(r["media_type"], "text/x-diff");
            }
            "session" | "task" => assert_eq!(r["name"].is_null(), redacted),
            other => panic!("unexpected entity {other}"),
        }
    }
    let full_step = rows
        .iter()
        .find(|r| r["entity"] == "step" && r["privacy"] == "full")
        .unwrap();
    assert_eq!(full_step["input"], TRICKY[0]);

    let sql = run(&store, ExportKind::Runs, ExportFormat::Sql, &all());
    assert_eq!(via_sqlite(&sql, "run_records"), rows);
    assert_eq!(via_postgres(&sql, "run_records"), rows);
    let csv_rows = from_csv(&run(&store, ExportKind::Runs, ExportFormat::Csv, &all()));
    assert_eq!(csv_rows, nulls_as_empty(&rows));

    let everything = ExportFilter {
        include_local_only: true,
        ..all()
    };
    let rows = from_json(&run(
        &store,
        ExportKind::Runs,
        ExportFormat::Json,
        &everything,
    ));
    assert_eq!(rows.len(), 15);
}

#[test]
fn chat_and_since_filters_select_rows() {
    let store = fixture();
    let chats = from_json(&run(
        &store,
        ExportKind::Conversations,
        ExportFormat::Json,
        &all(),
    ));
    let first: acode_store::Id = chats
        .iter()
        .find(|c| c["privacy"] == "full")
        .and_then(|c| c["id"].as_str())
        .unwrap()
        .parse()
        .unwrap();
    let only = ExportFilter {
        chat: Some(first),
        ..all()
    };
    let msgs = from_json(&run(
        &store,
        ExportKind::Messages,
        ExportFormat::Json,
        &only,
    ));
    assert_eq!(
        msgs.len(),
        5,
        "the full chat's messages that are not local-only"
    );
    assert!(msgs.iter().all(|m| m["chat_id"] == first.to_string()));
    let one = from_json(&run(
        &store,
        ExportKind::Conversations,
        ExportFormat::Json,
        &only,
    ));
    assert_eq!(one.len(), 1);

    // Since a time after every row: nothing; since the epoch: everything.
    let later = ExportFilter {
        since: Some(parse_since("2999-01-01T00:00:00Z").unwrap()),
        ..all()
    };
    assert_eq!(
        run(&store, ExportKind::Messages, ExportFormat::Json, &later),
        "[]\n"
    );
    let earlier = ExportFilter {
        since: Some(parse_since("1970-01-01T00:00:00+02:00").unwrap()),
        ..all()
    };
    assert_eq!(
        from_json(&run(
            &store,
            ExportKind::Messages,
            ExportFormat::Json,
            &earlier
        )),
        expected(&store, ExportKind::Messages, false)
    );
}

#[test]
fn bad_filters_are_clear_errors() {
    let store = fixture();
    let err = parse_since("yesterday").unwrap_err();
    assert_eq!(err.code(), ErrorCode::StoreInvalidInput);
    assert!(err.to_string().contains("yesterday"), "{err}");

    let missing = ExportFilter {
        chat: Some("01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        ..all()
    };
    let mut out = Vec::new();
    let err = export(
        &store,
        ExportKind::Messages,
        ExportFormat::Csv,
        &missing,
        &mut out,
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StoreNotFound);
    let err = export(
        &store,
        ExportKind::Runs,
        ExportFormat::Csv,
        &missing,
        &mut out,
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StoreInvalidInput);
    assert!(out.is_empty(), "nothing is written for a refused export");
}

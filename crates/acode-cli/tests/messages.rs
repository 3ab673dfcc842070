//! `acode msg …`: adding, listing and importing messages; an import is all
//! or nothing.
#![allow(clippy::unwrap_used)]

mod common;

use common::{MISSING_ID, Ws, run};

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(r, c)| (r.to_string(), c.to_string()))
        .collect()
}

#[test]
fn messages_are_added_and_listed_in_order() {
    let ws = Ws::new();
    let chat = ws.new_chat("c", "full");
    let first = ws.ok(&["msg", "add", &chat, "question?"]);
    assert_eq!(first["id"].as_str().unwrap().len(), 26);
    ws.ok(&["msg", "add", &chat, "answer.", "--role", "assistant"]);

    let list = ws.ok(&["msg", "list", &chat]);
    let msgs = list["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["id"], first["id"]);
    assert_eq!(msgs[0]["chat_id"], chat.as_str());
    assert_eq!(msgs[0]["sync_status"], "pending");
    assert_eq!(
        ws.messages(&chat),
        pairs(&[("user", "question?"), ("assistant", "answer.")])
    );

    let local = ws.new_chat("private", "local_only");
    ws.ok(&["msg", "add", &local, "secret"]);
    assert_eq!(
        ws.ok(&["msg", "list", &local])["messages"][0]["sync_status"],
        "local_only"
    );
}

#[test]
fn import_reads_plain_and_json_lines_from_a_file() {
    let ws = Ws::new();
    let chat = ws.new_chat("imported", "full");
    let file = ws.root().join("chat.txt");
    std::fs::write(
        &file,
        "first plain line\r\n\n{\"role\":\"assistant\",\"content\":\"a reply\\nover two lines\"}\n   \n{\"role\":\"system\",\"content\":\"be brief\"}\nlast: {not json at the start}\n",
    )
    .unwrap();
    let r = ws.ok(&["msg", "import", &chat, file.to_str().unwrap()]);
    assert_eq!(r["imported"], 4);
    assert_eq!(
        ws.messages(&chat),
        pairs(&[
            ("user", "first plain line"),
            ("assistant", "a reply\nover two lines"),
            ("system", "be brief"),
            ("user", "last: {not json at the start}"),
        ])
    );
    assert_eq!(
        ws.rows()["sync_outbox"],
        5,
        "one change per message plus the chat"
    );
}

#[test]
fn import_reads_standard_input() {
    let ws = Ws::new();
    let chat = ws.new_chat("piped", "full");
    let r = run(ws
        .cmd(&["msg", "import", &chat, "-"])
        .write_stdin("one\n{\"role\":\"tool\",\"content\":\"{}\"}\nthree"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["imported"], 3);
    let r = run(ws.cmd(&["msg", "import", &chat]).write_stdin("four\n"));
    assert_eq!(r.json()["imported"], 1);
    assert_eq!(
        ws.messages(&chat),
        pairs(&[
            ("user", "one"),
            ("tool", "{}"),
            ("user", "three"),
            ("user", "four")
        ])
    );
}

fn refused_import(content: &[u8], line: usize) {
    let ws = Ws::new();
    let chat = ws.new_chat("c", "full");
    ws.ok(&["msg", "add", &chat, "already here"]);
    let before = ws.rows();
    let file = ws.root().join("bad.txt");
    std::fs::write(&file, content).unwrap();
    let r = ws.fail(&["msg", "import", &chat, file.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert_eq!(r.error_code(), "ACODE-STORE-002");
    assert!(
        r.error_message().contains(&format!("line {line}")),
        "{}",
        r.error_message()
    );
    assert_eq!(ws.rows(), before, "nothing written");
    assert_eq!(ws.messages(&chat), pairs(&[("user", "already here")]));
}

#[test]
fn an_import_with_one_bad_json_line_writes_nothing() {
    refused_import(
        b"fine\n{\"role\":\"user\",\"content\":\"fine too\"}\n{\"role\": \"user\", \"content\": \n",
        3,
    );
}

#[test]
fn an_import_with_a_bad_role_writes_nothing() {
    refused_import(b"fine\n\n{\"role\":\"robot\",\"content\":\"beep\"}\n", 3);
}

#[test]
fn nul_bytes_in_imported_text_write_nothing() {
    refused_import(b"fine\nbad\0line\n", 2);
    refused_import(
        b"fine\n{\"role\":\"user\",\"content\":\"bad \\u0000\"}\n",
        2,
    );
}

#[test]
fn a_message_for_an_unknown_chat_is_store_001_and_changes_nothing() {
    let ws = Ws::new();
    let chat = ws.new_chat("c", "full");
    ws.ok(&["msg", "add", &chat, "hi"]);
    let before = ws.rows();
    assert_eq!(before["messages"], 1);
    assert_eq!(before["sync_outbox"], 2);

    let r = ws.fail(&["msg", "add", MISSING_ID, "lost"]);
    assert_eq!((r.code, r.error_code().as_str()), (1, "ACODE-STORE-001"));
    assert!(
        r.error_message().contains(MISSING_ID),
        "{}",
        r.error_message()
    );
    let r = run(ws
        .cmd(&["msg", "import", MISSING_ID, "-"])
        .write_stdin("lost\n"));
    assert_eq!((r.code, r.error_code().as_str()), (1, "ACODE-STORE-001"));
    assert_eq!(
        ws.fail(&["msg", "list", MISSING_ID]).error_code(),
        "ACODE-STORE-001"
    );
    assert_eq!(
        ws.fail(&["msg", "add", "nope", "x"]).error_code(),
        "ACODE-STORE-002"
    );
    assert_eq!(ws.rows(), before);
}

//! Databases for the benchmarks: a workspace database filled with chats
//! and messages at bulk speed (capture triggers dropped: the rows are the
//! data under test, not writes under test), and peak memory from
//! `/proc/self/status`.

use std::path::Path;

use crate::report::Row;
use acode_store::{Id, OpenOptions, Store};

/// Drops the change-capture triggers of `store`'s database.
pub fn drop_capture_triggers(store: &Store) -> anyhow::Result<()> {
    let conn = store.connection();
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%_capture_%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(!names.is_empty(), "no capture triggers found");
    for name in names {
        // Trigger names come from our own schema, never from input.
        conn.execute_batch(&format!("DROP TRIGGER \"{name}\""))?;
    }
    Ok(())
}

/// A new workspace database at `path` with `rows` messages in chats of
/// `per_chat` messages, each message's text made by `content(i)`. The WAL
/// is folded into the file before it returns.
pub fn messages_db(
    path: &Path,
    rows: u64,
    per_chat: u64,
    mut content: impl FnMut(u64) -> String,
) -> anyhow::Result<Store> {
    let store = Store::open(path, &OpenOptions::default())?;
    drop_capture_triggers(&store)?;
    let conn = store.connection();
    let tx = conn.unchecked_transaction()?;
    {
        let mut chat_stmt = tx.prepare(
            "INSERT INTO chats (id, title, privacy, created_at, updated_at)
             VALUES (?1, ?2, 'full', ?3, ?3)",
        )?;
        let mut msg_stmt = tx.prepare(
            "INSERT INTO messages (id, chat_id, role, content, privacy, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'full', ?5, ?5)",
        )?;
        let now = acode_store::time::format(&acode_store::time::now());
        let mut chat = String::new();
        for i in 0..rows {
            if i % per_chat.max(1) == 0 {
                chat = Id::new().to_string();
                chat_stmt.execute((&chat, format!("chat {i}"), &now))?;
            }
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            msg_stmt.execute((Id::new().to_string(), &chat, role, content(i), &now))?;
        }
    }
    tx.commit()?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(store)
}

/// The process's peak RSS (VmHWM) in MiB, if the system says.
pub fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// A line of `/proc/self/status` in MiB (`VmHWM:`, `RssAnon:`…), if the
/// system says.
pub fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A peak-memory figure (MiB) against the same at a smaller size: flat
/// (≤ 1.2 ×) is the target unless `no_target` says why there is none.
pub fn memory_row(
    figure: String,
    big: f64,
    reference: String,
    little: f64,
    no_target: Option<&str>,
) -> Row {
    let ratio = big / little;
    Row {
        figure,
        value: big,
        unit: "MiB",
        reference,
        reference_value: little,
        ratio,
        target: no_target.unwrap_or("≤ 1.2 (flat: streamed)").to_owned(),
        meets_target: no_target.is_some() || ratio <= 1.2,
    }
}

/// The median of some measurements (not empty).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

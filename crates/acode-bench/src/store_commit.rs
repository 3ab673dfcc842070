//! Local write cost of change capture.
//!
//! Two databases with the same schema, one with the capture triggers and
//! one with them dropped (the reference: "the same table, triggers off").
//! Latency: single-row commits (inserts, then edits) alternate between the
//! two, so disk noise hits both alike; p50/p99 at durability full and normal. Bulk: the same rows in
//! one transaction through the typed API with capture, against a plain
//! prepared INSERT without triggers (BENCH.md's reference), median of several
//! rounds.

use std::time::{Duration, Instant};

use acode_store::{Durability, Id, MessagePatch, NewChat, NewMessage, OpenOptions, Role, Store};
use anyhow::Context;

use crate::fixture::drop_capture_triggers;
use crate::report::Row;

#[derive(clap::Args)]
pub struct Args {
    /// Single-row commits measured per database and durability.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    commits: u32,
    /// Rows of the bulk transaction.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    rows: u32,
    /// Bulk rounds (each writer once per round); the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
}

const CONTENT: &str = "a message of about two hundred bytes, like a short chat turn between a person and an assistant; \
                       it carries enough text to be a realistic row without dominating the cost of the write itself.";

fn open(
    dir: &std::path::Path,
    name: &str,
    durability: Durability,
    capture: bool,
) -> anyhow::Result<(Store, Id)> {
    let opts = OpenOptions {
        durability,
        ..Default::default()
    };
    let mut store =
        Store::open(dir.join(name), &opts).with_context(|| format!("opening {name}"))?;
    if !capture {
        drop_capture_triggers(&store)?;
    }
    let chat = store.write(|tx| tx.create_chat(&NewChat::new("bench")))?.id;
    Ok((store, chat))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1e6
}

/// A single-row commit of one message, timed; returns the message's id.
fn insert(store: &mut Store, chat: Id) -> anyhow::Result<(Duration, Id)> {
    let start = Instant::now();
    let id = store
        .write(|tx| tx.add_message(&NewMessage::new(chat, Role::User, CONTENT)))?
        .id;
    Ok((start.elapsed(), id))
}

/// A single-row commit editing one message's content, timed.
fn update(store: &mut Store, id: Id, round: usize) -> anyhow::Result<Duration> {
    let patch = MessagePatch {
        content: Some(format!("{CONTENT} (edit {round})")),
        privacy: None,
    };
    let start = Instant::now();
    store.write(|tx| tx.update_message(id, &patch))?;
    Ok(start.elapsed())
}

/// p50 and p99 of one kind of single-row commit, captured against the same
/// commit with the triggers off; `limit` is the p50 ratio's target, if it
/// has one.
fn latency_rows(
    kind: &str,
    tag: &str,
    limit: Option<f64>,
    mut with: Vec<Duration>,
    mut without: Vec<Duration>,
) -> Vec<Row> {
    with.sort();
    without.sort();
    let runs = with.len();
    let mut rows = Vec::new();
    for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
        let (v, r) = (percentile(&with, p), percentile(&without, p));
        let limit = limit.filter(|_| p == 0.5);
        let target = match limit {
            Some(limit) => format!("≤ {limit}× and ≤ 1000 µs"),
            None => "—".to_string(),
        };
        rows.push(Row {
            figure: format!("single-row {kind} {name}, captured, durability {tag} ({runs} runs)"),
            value: v,
            unit: "µs",
            reference: format!("same {kind}, triggers off, {tag}"),
            reference_value: r,
            ratio: v / r,
            target,
            meets_target: limit.is_none_or(|limit| v / r <= limit && v <= 1000.0),
        });
    }
    rows
}

/// Single-row commits alternating between the captured and the plain
/// database: inserts of new messages, then edits of messages spread over
/// those inserted.
fn latency(
    dir: &std::path::Path,
    durability: Durability,
    commits: usize,
) -> anyhow::Result<Vec<Row>> {
    let tag = durability.as_str();
    let (mut captured, c1) = open(dir, &format!("lat-cap-{tag}.db"), durability, true)?;
    let (mut plain, c2) = open(dir, &format!("lat-plain-{tag}.db"), durability, false)?;
    for _ in 0..commits / 10 + 10 {
        insert(&mut captured, c1)?;
        insert(&mut plain, c2)?;
    }
    let (mut with, mut without) = (Vec::with_capacity(commits), Vec::with_capacity(commits));
    let mut ids = Vec::with_capacity(commits);
    for _ in 0..commits {
        let (t, id1) = insert(&mut captured, c1)?;
        with.push(t);
        let (t, id2) = insert(&mut plain, c2)?;
        without.push(t);
        ids.push((id1, id2));
    }
    let (mut edit_with, mut edit_without) =
        (Vec::with_capacity(commits), Vec::with_capacity(commits));
    for round in 0..commits {
        // A stride coprime with most counts: edits land all over the table.
        let (id1, id2) = ids[round * 7919 % ids.len()];
        edit_with.push(update(&mut captured, id1, round)?);
        edit_without.push(update(&mut plain, id2, round)?);
    }
    let limit = match durability {
        Durability::Full => 1.15,
        Durability::Normal => 1.5,
    };
    // BENCH.md's target is read on the insert: a new message is the write
    // an app makes most. An edit is reported beside it: it rewrites one page
    // in place, so the outbox page capture adds weighs more (BENCHMARKS.md).
    let mut rows = latency_rows("insert", tag, Some(limit), with, without);
    rows.extend(latency_rows("update", tag, None, edit_with, edit_without));
    Ok(rows)
}

/// The three bulk writers: the typed API with capture, the typed API with
/// the triggers dropped, and a plain prepared INSERT with the triggers
/// dropped (BENCH.md's reference).
#[derive(Clone, Copy)]
enum Writer {
    Captured,
    ApiPlain,
    Plain,
}

const WRITERS: [Writer; 3] = [Writer::Captured, Writer::ApiPlain, Writer::Plain];

/// One writer's rows/s for `rows` messages in one transaction, into a new
/// database.
fn bulk_rate(dir: &std::path::Path, writer: Writer, rows: usize) -> anyhow::Result<f64> {
    let (name, capture) = match writer {
        Writer::Captured => ("bulk-cap.db", true),
        Writer::ApiPlain => ("bulk-api-plain.db", false),
        Writer::Plain => ("bulk-plain.db", false),
    };
    let (mut store, chat) = open(dir, name, Durability::Full, capture)?;
    let start = Instant::now();
    match writer {
        Writer::Captured | Writer::ApiPlain => store.write(|tx| {
            for _ in 0..rows {
                tx.add_message(&NewMessage::new(chat, Role::Assistant, CONTENT))?;
            }
            Ok(())
        })?,
        Writer::Plain => store.write(|tx| {
            let mut stmt = tx.connection().prepare(
                "INSERT INTO messages (id, chat_id, role, content, privacy, created_at, updated_at)
                 VALUES (?1, ?2, 'assistant', ?3, 'full', ?4, ?4)",
            )?;
            let chat = chat.to_string();
            let now = acode_store::time::format(&acode_store::time::now());
            for _ in 0..rows {
                stmt.execute((Id::new().to_string(), &chat, CONTENT, &now))?;
            }
            Ok(())
        })?,
    }
    let rate = rows as f64 / start.elapsed().as_secs_f64();
    if capture {
        let outbox: i64 =
            store
                .connection()
                .query_row("SELECT count(*) FROM sync_outbox", [], |r| r.get(0))?;
        anyhow::ensure!(
            outbox as usize == rows + 1,
            "expected {} outbox entries, found {outbox}",
            rows + 1
        );
    }
    Ok(rate)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Bulk rates, median of `rounds`: each round on new databases, after one
/// warm-up round of a tenth of the rows, the writers in an order that
/// rotates so none is always first.
fn bulk(dir: &std::path::Path, rows: usize, rounds: usize) -> anyhow::Result<Vec<Row>> {
    let mut rates: [Vec<f64>; 3] = Default::default();
    for round in 0..=rounds {
        let round_dir = dir.join(format!("bulk-{round}"));
        std::fs::create_dir(&round_dir)?;
        for k in 0..WRITERS.len() {
            let which = (round + k) % WRITERS.len();
            if round == 0 {
                bulk_rate(&round_dir, WRITERS[which], rows.div_ceil(10))?;
            } else {
                rates[which].push(bulk_rate(&round_dir, WRITERS[which], rows)?);
            }
        }
        std::fs::remove_dir_all(&round_dir)?;
    }
    let [captured_rate, api_plain_rate, plain_rate] = rates.map(median);
    let figure =
        format!("bulk insert, typed API with capture ({rows} rows, one tx, median of {rounds})");
    Ok(vec![
        Row {
            figure: figure.clone(),
            value: captured_rate,
            unit: "rows/s",
            reference: "plain prepared INSERT, triggers off".into(),
            reference_value: plain_rate,
            ratio: captured_rate / plain_rate,
            target: "≥ 0.40".into(),
            meets_target: captured_rate / plain_rate >= 0.40,
        },
        Row {
            figure,
            value: captured_rate,
            unit: "rows/s",
            reference: "typed API, triggers off".into(),
            reference_value: api_plain_rate,
            ratio: captured_rate / api_plain_rate,
            target: "— (capture's share)".into(),
            meets_target: true,
        },
    ])
}

pub fn run(args: &Args, quick: bool) -> anyhow::Result<Vec<Row>> {
    let (commits, rows, rounds) = if quick {
        (50, 2_000, 1)
    } else {
        (
            args.commits as usize,
            args.rows as usize,
            args.rounds as usize,
        )
    };
    let dir = tempfile::tempdir()?;
    let mut out = Vec::new();
    out.extend(latency(dir.path(), Durability::Full, commits)?);
    out.extend(latency(dir.path(), Durability::Normal, commits)?);
    out.extend(bulk(dir.path(), rows, rounds)?);
    Ok(out)
}

//! The generated database of 1,000,000 rows: analyze, run, validate; a
//! second run copies nothing; after 1 % of the rows change and some are
//! deleted and added, the next run copies exactly those.
#![allow(clippy::unwrap_used)]

mod common;

use acode_migrate::{Migrator, Options};
use acode_testkit::TestDb;
use common::*;

const SCALE: f64 = 1.0;

#[test]
fn a_million_rows_are_copied_then_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let path = generated(dir.path(), SCALE);
    let rows = source_rows(&path);
    assert!(rows >= (1_000_000.0 * SCALE) as u64, "{rows} rows");
    eprintln!("generated {rows} rows in {:?}", t0.elapsed());
    let db = TestDb::create();
    let url = db.url();
    let m = Migrator::new(&source(&path), &url).unwrap();
    let opts = Options::default();

    let t = std::time::Instant::now();
    let analysis = rt().block_on(m.analyze(&opts)).unwrap();
    eprintln!("analyze {:?}", t.elapsed());
    assert_eq!(
        analysis
            .tables
            .iter()
            .map(|t| t.missing.unwrap())
            .sum::<u64>(),
        rows
    );
    assert_eq!(analysis.skipped.len(), 1, "the view");

    let t = std::time::Instant::now();
    let first = run(&m, &opts);
    eprintln!("run {:?}", t.elapsed());
    assert_eq!(first.copied, rows);
    let t = std::time::Instant::now();
    let report = validate(&m, &opts);
    eprintln!("validate {:?}", t.elapsed());
    assert!(report.ok, "{}", report.to_markdown());

    // Identifiers and values arrived as they are.
    assert_eq!(
        pg_one(&url, "SELECT count(*) FROM \"Order\"\"Items\""),
        (rows_of(&path, "Order\"Items")).to_string()
    );
    assert_eq!(
        pg_one(
            &url,
            "SELECT \"Full Name\" FROM \"Customer Accounts\" WHERE id = 6"
        ),
        "日本語 名前 6"
    );
    assert_eq!(
        pg_one(
            &url,
            "SELECT \"select\" FROM \"Customer Accounts\" WHERE id = 5"
        ),
        "50000000000"
    );
    assert_eq!(
        pg_one(
            &url,
            "SELECT balance FROM \"Customer Accounts\" WHERE id = 12"
        ),
        "1.7976931348623157e+308"
    );
    assert_eq!(
        pg_one(
            &url,
            "SELECT count(*) FROM events WHERE n > 9007199254740993"
        ),
        rows_where(&path, "events", "n > 9007199254740993").to_string()
    );
    assert_eq!(
        pg_one(
            &url,
            "SELECT count(*) FROM \"Tags\" WHERE \"MixedCase \"\"quoted\"\"\" IS NULL"
        ),
        rows_where(&path, "Tags", "\"MixedCase \"\"quoted\"\"\" IS NULL").to_string()
    );

    let t = std::time::Instant::now();
    let second = run(&m, &opts);
    eprintln!("second run {:?}", t.elapsed());
    assert_eq!((second.copied, second.deleted), (0, 0));

    // 1 % of the rows changed, some deleted, some added; each table's
    // counts must be exactly those.
    let mut changes = Changes::open(&path);
    use Change::*;
    changes.apply(
        "Order\"Items",
        Updated,
        "UPDATE \"Order\"\"Items\" SET qty = qty + 1 WHERE (order_id * 4 + line) % 100 = 7",
    );
    changes.apply(
        "Customer Accounts",
        Updated,
        "UPDATE \"Customer Accounts\" SET avatar = randomblob(3), \"Full Name\" = 'geändert ' || id WHERE id % 100 = 3",
    );
    changes.apply(
        "orders",
        Updated,
        "UPDATE orders SET note = 'changed 🔁', total = -0.5 WHERE id % 100 = 1",
    );
    changes.apply(
        "events",
        Updated,
        "UPDATE events SET kind = 'changed' WHERE rowid % 100 = 11",
    );
    changes.apply(
        "Tags",
        Updated,
        "UPDATE \"Tags\" SET \"MixedCase \"\"quoted\"\"\" = 'changed' WHERE substr(\"Name\", 5, 5) % 100 = 42",
    );
    changes.apply(
        "Order\"Items",
        Deleted,
        "DELETE FROM \"Order\"\"Items\" WHERE order_id % 1000 = 5 AND line = 2",
    );
    changes.apply(
        "events",
        Deleted,
        "DELETE FROM events WHERE rowid % 1000 = 17",
    );
    changes.apply(
        "Tags",
        Inserted,
        "INSERT INTO \"Tags\" VALUES ('zz new tag ✨', NULL), ('', 'empty key')",
    );
    changes.apply(
        "events",
        Inserted,
        "INSERT INTO events (kind, n) SELECT 'added', value FROM (SELECT 1 AS value UNION ALL SELECT 2)",
    );
    let changed = changes.updated();
    assert!(changed * 100 >= rows, "1 % changed: {changed} of {rows}");

    let t = std::time::Instant::now();
    let third = run(&m, &opts);
    eprintln!("re-run after changes {:?}", t.elapsed());
    changes.assert_reported(&third);
    let report = validate(&m, &opts);
    assert!(report.ok, "{}", report.to_markdown());
}

fn rows_of(path: &std::path::Path, table: &str) -> i64 {
    rows_where(path, table, "1")
}

fn rows_where(path: &std::path::Path, table: &str, cond: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        &format!(
            "SELECT count(*) FROM \"{}\" WHERE {cond}",
            table.replace('"', "\"\"")
        ),
        [],
        |r| r.get(0),
    )
    .unwrap()
}

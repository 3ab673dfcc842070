//! The realistic hand-made shop schema: analyze, run, validate, a second
//! run that copies nothing, then 1 % changed, some deleted, some added.
#![allow(clippy::unwrap_used)]

mod common;

use acode_migrate::{Migrator, Options};
use acode_testkit::TestDb;
use common::*;

#[test]
fn order_system_is_migrated_and_kept_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = order_system(dir.path());
    let db = TestDb::create();
    let m = Migrator::new(&source(&path), &db.url()).unwrap();
    let opts = Options {
        batch_size: 1000,
        ..Options::default()
    };

    let analysis = rt().block_on(m.analyze(&opts)).unwrap();
    let names: Vec<&str> = analysis.tables.iter().map(|t| t.table.as_str()).collect();
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("customers") < pos("orders") && pos("orders") < pos("order_lines"));
    assert!(pos("products") < pos("order_lines") && pos("categories") < pos("products"));
    assert!(names.contains(&"order notes"));
    let skipped: Vec<&str> = analysis.skipped.iter().map(|s| s.name.as_str()).collect();
    assert!(skipped.contains(&"order_totals") && skipped.contains(&"customers with orders"));
    let customers = &analysis.tables[pos("customers")];
    assert_eq!(customers.missing, Some(2000));
    let signed_up = customers
        .columns
        .iter()
        .find(|c| c.name == "signed_up")
        .unwrap();
    assert_eq!(signed_up.kind.ddl(), "text");
    assert!(
        signed_up.problem.is_some(),
        "dates stored as text and numbers are reported"
    );
    let products = &analysis.tables[pos("products")];
    let kind = |t: &acode_migrate::TableAnalysis, c: &str| {
        t.columns.iter().find(|x| x.name == c).unwrap().kind.ddl()
    };
    assert_eq!(kind(products, "discontinued"), "boolean");
    assert_eq!(kind(products, "unit_price"), "double precision");
    assert_eq!(kind(products, "added_on"), "text");
    assert_eq!(
        kind(&analysis.tables[pos("categories")], "picture"),
        "bytea"
    );
    assert_eq!(
        pg_one(
            &db.url(),
            "SELECT count(*) FROM acode_migrate.data_differentials"
        ),
        analysis.tables.len().to_string()
    );

    let first = run(&m, &opts);
    let total: u64 = first.tables.iter().map(|t| t.counts.inserted).sum();
    assert_eq!(total, source_rows(&path));
    assert!(first.tables.iter().all(|t| t.created));
    let report = validate(&m, &opts);
    assert!(report.ok, "{}", report.to_markdown());
    assert_eq!(
        pg_one(&db.url(), "SELECT count(*) FROM \"order notes\""),
        "500"
    );
    // Foreign keys and indexes of the source exist on the created tables.
    let fks = pg_one(
        &db.url(),
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace",
    );
    assert_eq!(
        fks,
        "6",
        "{:?}",
        first.tables.iter().map(|t| &t.notes).collect::<Vec<_>>()
    );
    assert_eq!(
        pg_one(
            &db.url(),
            "SELECT count(*) FROM pg_indexes WHERE indexname IN ('orders_by_customer', 'lines_by_product')"
        ),
        "2"
    );
    assert_eq!(
        pg_one(
            &db.url(),
            "SELECT count(*) FROM orders o JOIN order_lines l USING (order_id) JOIN products p USING (product_id)"
        ),
        "18000"
    );

    let second = run(&m, &opts);
    assert_eq!((second.copied, second.deleted), (0, 0));

    // 1 % of the rows changed, some deleted, some added.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let changed = conn.execute("UPDATE customers SET email = 'new-' || email WHERE customer_id % 100 = 0", []).unwrap()
        + conn.execute("UPDATE order_lines SET quantity = quantity + 1 WHERE (order_id * 3 + line_no) % 100 = 0", []).unwrap();
    let deleted = conn
        .execute("DELETE FROM \"order notes\" WHERE rowid % 50 = 1", [])
        .unwrap()
        + conn
            .execute("DELETE FROM order_lines WHERE order_id = 6000", [])
            .unwrap();
    let added = conn
        .execute(
            "INSERT INTO categories (name, parent_id, picture) VALUES ('Neu — ☕', 2, x'00ff00ff')",
            [],
        )
        .unwrap()
        + conn
            .execute("INSERT INTO \"order notes\" VALUES (1, 1, 'später')", [])
            .unwrap();
    drop(conn);
    let third = run(&m, &opts);
    let sum = |f: fn(&acode_migrate::TableRun) -> u64| third.tables.iter().map(f).sum::<u64>();
    assert_eq!(sum(|t| t.counts.updated), changed as u64);
    assert_eq!(sum(|t| t.counts.deleted), deleted as u64);
    assert_eq!(sum(|t| t.counts.inserted), added as u64);
    let report = validate(&m, &opts);
    assert!(report.ok, "{}", report.to_markdown());

    let record = rt()
        .block_on(m.check_record("order_lines", "[1, 2]"))
        .unwrap();
    assert!(record.in_source && record.in_target && record.equal);
    let missing = rt()
        .block_on(m.check_record("customers", "999999"))
        .unwrap_err();
    assert_eq!(missing.code().code(), "ACODE-MIGRATE-008");
}

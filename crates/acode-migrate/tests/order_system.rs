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
    assert_eq!(
        pg_one(
            &db.url(),
            "SELECT concat_ws(' ', source_rows, target_rows, missing, changed, extra,
                              jsonb_array_length(mapping), mapping @> '[{\"name\": \"signed_up\"}]')
             FROM acode_migrate.data_differentials WHERE table_name = 'customers'"
        ),
        "2000 0 2000 0 0 7 t"
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

    // 1 % of the rows changed (every table has some), some deleted, some
    // added; each table's counts must be exactly those.
    let mut changes = Changes::open(&path);
    use Change::*;
    changes.apply(
        "customers",
        Updated,
        "UPDATE customers SET email = 'new-' || email WHERE customer_id % 100 = 0",
    );
    changes.apply(
        "orders",
        Updated,
        "UPDATE orders SET status = 'cancelled' WHERE order_id % 100 = 0",
    );
    changes.apply(
        "order_lines",
        Updated,
        "UPDATE order_lines SET quantity = quantity + 1 WHERE (order_id * 3 + line_no) % 100 = 0",
    );
    changes.apply(
        "products",
        Updated,
        "UPDATE products SET unit_price = unit_price + 1 WHERE product_id % 100 = 0",
    );
    changes.apply(
        "categories",
        Updated,
        "UPDATE categories SET picture = x'0102' WHERE name = 'Tea'",
    );
    changes.apply(
        "order notes",
        Updated,
        "UPDATE \"order notes\" SET \"Note Text\" = 'geändert' WHERE rowid % 100 = 0",
    );
    changes.apply(
        "order notes",
        Deleted,
        "DELETE FROM \"order notes\" WHERE rowid % 50 = 1",
    );
    changes.apply(
        "order_lines",
        Deleted,
        "DELETE FROM order_lines WHERE order_id = 6000",
    );
    changes.apply(
        "categories",
        Inserted,
        "INSERT INTO categories (name, parent_id, picture) VALUES ('Neu — ☕', 2, x'00ff00ff')",
    );
    changes.apply(
        "order notes",
        Inserted,
        "INSERT INTO \"order notes\" VALUES (1, 1, 'später')",
    );
    let changed = changes.updated();
    assert!(changed * 100 >= total, "{changed} of {total} rows changed");
    let third = run(&m, &opts);
    changes.assert_reported(&third);
    assert_eq!(third.tables.len(), 6);
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

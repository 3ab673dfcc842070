//! `--uuid-map TABLE.COL`: legacy integer keys become UUIDs, the same in
//! every run and every target, recorded in `migration_mappings`, and the
//! foreign keys that reference them still join.
#![allow(clippy::unwrap_used)]

mod common;

use acode_migrate::{Migrator, Options};
use acode_testkit::TestDb;
use common::*;

fn uuids(url: &str) -> Vec<Vec<Option<String>>> {
    pg(
        url,
        "SELECT legacy_key::text, uuid::text FROM acode_migrate.migration_mappings ORDER BY legacy_key",
    )
}

#[test]
fn legacy_keys_map_to_stable_uuids_and_foreign_keys_still_join() {
    let dir = tempfile::tempdir().unwrap();
    let path = order_system(dir.path());
    let db = TestDb::create();
    let url = db.url();
    let opts = Options {
        uuid_maps: vec!["customers.customer_id".into()],
        batch_size: 500,
        ..Options::default()
    };
    let m = Migrator::new(&source(&path), &url).unwrap();
    let first = run(&m, &opts);
    assert_eq!(first.copied, source_rows(&path));
    let ty = |t: &str, c: &str| {
        pg_one(
            &url,
            &format!(
                "SELECT data_type FROM information_schema.columns WHERE table_name = '{t}' AND column_name = '{c}'"
            ),
        )
    };
    assert_eq!(ty("customers", "customer_id"), "uuid");
    assert_eq!(ty("orders", "customer_id"), "uuid");
    assert_eq!(
        pg_one(
            &url,
            "SELECT count(*) FROM orders o JOIN customers c USING (customer_id)"
        ),
        "6000"
    );
    assert_eq!(
        pg_one(
            &url,
            "SELECT c.contact_name FROM orders o JOIN customers c USING (customer_id) WHERE o.order_id = 1"
        ),
        "José Núñez 32"
    );
    let mapped = uuids(&url);
    assert_eq!(mapped.len(), 2000);
    assert_eq!(
        pg_one(
            &url,
            "SELECT count(*) FROM customers c JOIN acode_migrate.migration_mappings m ON m.uuid = c.customer_id"
        ),
        "2000"
    );

    // Later runs (without repeating the option) copy nothing and keep the UUIDs.
    let again = run(&m, &Options::default());
    assert_eq!((again.copied, again.deleted), (0, 0));
    assert_eq!(uuids(&url), mapped);
    let report = validate(&m, &Options::default());
    assert!(report.ok, "{}", report.to_markdown());

    // Changes, deletes and additions of mapped rows.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE customers SET email = 'changed@x' WHERE customer_id = 5;
         DELETE FROM order_lines WHERE order_id IN (SELECT order_id FROM orders WHERE customer_id = 7);
         DELETE FROM \"order notes\" WHERE order_id IN (SELECT order_id FROM orders WHERE customer_id = 7);
         DELETE FROM orders WHERE customer_id = 7;
         DELETE FROM customers WHERE customer_id = 7;
         INSERT INTO customers (customer_id, contact_name) VALUES (5000, 'Neu');
         INSERT INTO orders VALUES (9000, 5000, '2024-01-01 00:00:00', NULL, 'new');",
    )
    .unwrap();
    drop(conn);
    let third = run(&m, &Options::default());
    let table = |n: &str| {
        third
            .tables
            .iter()
            .find(|t| t.table == n)
            .unwrap()
            .counts
            .clone()
    };
    assert_eq!(
        (
            table("customers").inserted,
            table("customers").updated,
            table("customers").deleted
        ),
        (1, 1, 1)
    );
    assert_eq!(table("orders").inserted, 1);
    let report = validate(&m, &Options::default());
    assert!(report.ok, "{}", report.to_markdown());
    assert_eq!(
        pg_one(
            &url,
            "SELECT c.contact_name FROM orders o JOIN customers c USING (customer_id) WHERE o.order_id = 9000"
        ),
        "Neu"
    );
    let record = rt().block_on(m.check_record("customers", "5")).unwrap();
    assert!(record.equal, "{record:?}");

    // Another target gets the same UUIDs.
    let other = TestDb::create();
    run(&Migrator::new(&source(&path), &other.url()).unwrap(), &opts);
    let a = pg(
        &url,
        "SELECT customer_id::text FROM customers ORDER BY contact_name, customer_id",
    );
    let b = pg(
        &other.url(),
        "SELECT customer_id::text FROM customers ORDER BY contact_name, customer_id",
    );
    assert_eq!(a, b);
}

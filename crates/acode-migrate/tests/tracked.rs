//! Runs with change tracking (`track_changes`): once the target holds the
//! source, a run reads only the rows the source's change log names and
//! copies exactly what changed; whenever the log cannot be trusted (it
//! was removed, a trigger was dropped, another target pruned it, the file
//! went back to an older copy, the checkpoint was reset) the run compares
//! in full instead. Writes made while a run reads are caught by the next.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use acode_migrate::{Migrator, Options, RunReport};
use acode_testkit::TestDb;
use common::*;

fn tracked() -> Options {
    Options {
        track_changes: true,
        batch_size: 7,
        ..Options::default()
    }
}

fn sum(r: &RunReport) -> (u64, u64, u64) {
    (
        r.tables.iter().map(|t| t.counts.inserted).sum(),
        r.tables.iter().map(|t| t.counts.updated).sum(),
        r.tables.iter().map(|t| t.counts.deleted).sum(),
    )
}

fn incremental(r: &RunReport) -> Vec<&str> {
    r.tables
        .iter()
        .filter(|t| t.counts.incremental)
        .map(|t| t.table.as_str())
        .collect()
}

fn sqlite(path: &Path, sql: &str) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

fn logged(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM __acode_changes", [], |r| r.get(0))
        .unwrap()
}

const TRACKED: [&str; 5] = [
    "categories",
    "customers",
    "order_lines",
    "orders",
    "products",
];

#[test]
fn a_tracked_rerun_reads_and_copies_exactly_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = order_system(dir.path());
    let db = TestDb::create();
    let url = db.url();
    let m = Migrator::new(&source(&path), &url).unwrap();
    let opts = Options {
        uuid_maps: vec!["customers.customer_id".into()],
        ..tracked()
    };

    let first = run(&m, &opts);
    assert!(incremental(&first).is_empty());
    assert!(
        first
            .notes
            .iter()
            .any(|n| n.contains("rowid") && n.contains("order notes")),
        "{:?}",
        first.notes
    );
    // The change log is the source's, never copied or reported.
    assert_eq!(
        pg_one(
            &url,
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_\\_acode%'"
        ),
        "0"
    );
    let analysis = rt().block_on(m.analyze(&opts)).unwrap();
    assert!(
        analysis
            .tables
            .iter()
            .all(|t| !t.table.starts_with("__acode"))
    );

    let second = run(&m, &opts);
    let mut inc = incremental(&second);
    inc.sort_unstable();
    assert_eq!(inc, TRACKED);
    assert_eq!((second.copied, second.deleted), (0, 0));

    sqlite(
        &path,
        "UPDATE customers SET loyalty_points = coalesce(loyalty_points, 0) + 1 WHERE customer_id % 50 = 0;
         UPDATE customers SET email = 'first' WHERE customer_id = 1;
         UPDATE customers SET email = 'second' WHERE customer_id = 1;
         UPDATE products SET name = name WHERE product_id <= 10;
         UPDATE orders SET shipped_at = '2026-12-01 10:00:00' WHERE order_id % 500 = 0;
         DELETE FROM order_lines WHERE order_id % 1000 = 7 AND line_no = 2;
         INSERT INTO order_lines VALUES (1, 4, 5, 1, 9.99), (2, 4, 5, 2, 1.5);
         UPDATE order_lines SET line_no = 9 WHERE order_id = 3 AND line_no = 1;
         INSERT INTO categories (name) VALUES ('Neu ✨');
         INSERT INTO customers (customer_id, contact_name) VALUES (99999, 'kurz');
         DELETE FROM customers WHERE customer_id = 99999;
         BEGIN; UPDATE customers SET email = 'rolled back'; ROLLBACK;
         UPDATE \"order notes\" SET \"Note Text\" = 'neu' WHERE rowid <= 3;",
    );
    let third = run(&m, &opts);
    // 40 + 1 customers, 12 orders (shipped by the source's own trigger),
    // 3 notes; 2 lines and 1 moved line and a category in; 6 lines and
    // the moved line's old key out. Nothing for the rows written back as
    // they were, added and deleted again, or rolled back.
    assert_eq!(sum(&third), (4, 56, 7), "{third:#?}");
    let mut inc = incremental(&third);
    inc.sort_unstable();
    assert_eq!(inc, TRACKED);
    assert!(!table(&third, "order notes").counts.incremental);
    let customers = table(&third, "customers");
    assert_eq!(customers.counts.updated, 41);
    assert!(
        customers.counts.source_rows < 50,
        "only the changed rows are read: {:?}",
        customers.counts
    );
    assert_eq!(
        pg_one(&url, "SELECT status FROM orders WHERE order_id = 500"),
        "shipped"
    );
    // Foreign keys mapped to UUIDs still join.
    assert_eq!(
        pg_one(
            &url,
            "SELECT count(*) FROM orders o JOIN customers c USING (customer_id)"
        ),
        "6000"
    );
    assert_valid(&m, &opts);
    // What the target holds, the source's log no longer keeps.
    assert_eq!(logged(&path), 0);
}

#[test]
fn an_untrustworthy_change_log_means_a_full_compare() {
    let dir = tempfile::tempdir().unwrap();
    let path = order_system(dir.path());
    let db = TestDb::create();
    let url = db.url();
    let m = Migrator::new(&source(&path), &url).unwrap();
    let opts = tracked();
    run(&m, &opts);

    // Removed: writes meanwhile are not logged.
    assert_eq!(acode_migrate::untrack(&source(&path)).unwrap(), 5);
    sqlite(
        &path,
        "UPDATE customers SET phone = 'untracked' WHERE customer_id <= 5",
    );
    let after_untrack = run(&m, &opts);
    assert!(incremental(&after_untrack).is_empty());
    assert_eq!(sum(&after_untrack), (0, 5, 0));

    // A trigger dropped by hand: put back with a new generation.
    let tid: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT tid FROM __acode_tracking WHERE tbl = 'customers'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    sqlite(
        &path,
        &format!(
            "DROP TRIGGER \"__acode_track_{tid}_u\";
             UPDATE customers SET phone = 'unlogged' WHERE customer_id <= 4;"
        ),
    );
    let after_drop = run(&m, &opts);
    assert!(!table(&after_drop, "customers").counts.incremental);
    assert!(table(&after_drop, "orders").counts.incremental);
    assert_eq!(sum(&after_drop), (0, 4, 0));

    // A second target of the same source: the first one prunes what the
    // second has not read yet.
    let db2 = TestDb::create();
    let m2 = Migrator::new(&source(&path), &db2.url()).unwrap();
    run(&m2, &opts);
    sqlite(
        &path,
        "UPDATE orders SET status = 'paid' WHERE order_id <= 3",
    );
    let one = run(&m, &opts);
    assert!(table(&one, "orders").counts.incremental);
    assert_eq!(table(&one, "orders").counts.updated, 2);
    sqlite(
        &path,
        "UPDATE orders SET status = 'cancelled' WHERE order_id = 10",
    );
    let two = run(&m2, &opts);
    assert!(
        !table(&two, "orders").counts.incremental,
        "pruned below its cursor"
    );
    assert_eq!(table(&two, "orders").counts.updated, 3);
    assert!(table(&two, "customers").counts.incremental);
    assert_valid(&m2, &opts);

    // The file put back to an older copy: its log is behind the cursor.
    let copy = dir.path().join("older.sqlite3");
    std::fs::copy(&path, &copy).unwrap();
    sqlite(
        &path,
        "UPDATE products SET sku = sku || '-x' WHERE product_id <= 2",
    );
    assert_eq!(table(&run(&m, &opts), "products").counts.updated, 2);
    std::fs::copy(&copy, &path).unwrap();
    let back = run(&m, &opts);
    assert!(!table(&back, "products").counts.incremental);
    assert_eq!(table(&back, "products").counts.updated, 2);

    // A reset checkpoint forgets the cursor.
    pg(
        &url,
        "UPDATE products SET name = 'edited in the target' WHERE product_id = 9",
    );
    let reset = rt().block_on(m.reset_checkpoint(Some("products"))).unwrap();
    assert!(reset >= 1);
    let full = run(&m, &opts);
    assert!(!table(&full, "products").counts.incremental);
    assert_eq!(table(&full, "products").counts.updated, 1);
    assert_valid(&m, &opts);
    let last = run(&m, &opts);
    let mut inc = incremental(&last);
    inc.sort_unstable();
    assert_eq!(inc, TRACKED);
}

#[test]
fn writes_during_a_tracked_run_are_caught_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = order_system(dir.path());
    sqlite(&path, "PRAGMA journal_mode = WAL");
    let db = TestDb::create();
    let m = Migrator::new(&source(&path), &db.url()).unwrap();
    let opts = tracked();
    run(&m, &opts);
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            for i in 0..300_i64 {
                conn.execute(
                    "UPDATE customers SET loyalty_points = ?1 WHERE customer_id = ?2",
                    [i, 1 + (i * 7) % 2000],
                )
                .unwrap();
                conn.execute("DELETE FROM order_lines WHERE order_id = ?1", [1 + i])
                    .unwrap();
                conn.execute(
                    "INSERT INTO categories (name) VALUES (?1)",
                    [format!("während {i}")],
                )
                .unwrap();
            }
        })
    };
    // Runs while the writer writes; whatever they miss stays logged.
    let mut runs = 0;
    while !writer.is_finished() || runs == 0 {
        run(&m, &opts);
        runs += 1;
    }
    writer.join().unwrap();
    let last = run(&m, &opts);
    let mut inc = incremental(&last);
    inc.sort_unstable();
    assert_eq!(inc, TRACKED);
    assert_valid(&m, &opts);
}

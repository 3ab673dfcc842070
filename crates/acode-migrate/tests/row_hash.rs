//! The row hash kept in a hidden column of the tables acode creates: a
//! re-run reads it instead of hashing every target row, so it must stay
//! right when others write to the target (also in replica mode), and a
//! run puts its trigger back when someone disabled it.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use acode_migrate::{Migrator, Options};
use acode_testkit::TestDb;
use common::*;

/// An order-system source, a fresh target, and a migrator between them.
struct Setup {
    path: PathBuf,
    url: String,
    m: Migrator,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let path = order_system(dir.path());
        let db = TestDb::create();
        let url = db.url();
        let m = Migrator::new(&source(&path), &url).unwrap();
        Setup {
            path,
            url,
            m,
            _db: db,
            _dir: dir,
        }
    }
}

#[test]
fn rows_changed_in_the_target_by_others_are_found_and_fixed() {
    let s = Setup::new();
    let (path, url, m) = (&s.path, &s.url, &s.m);
    let opts = Options {
        batch_size: 700,
        ..Options::default()
    };
    let first = run(m, &opts);
    assert_eq!(first.copied, source_rows(path));
    // Loaded, then keyed and marked as done; every row has its hash.
    assert_eq!(
        pg_one(
            url,
            "SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND connamespace = 'public'::regnamespace"
        ),
        "6"
    );
    assert_eq!(
        pg_one(
            url,
            "SELECT count(*) FROM customers WHERE __acode_row_hash IS NULL"
        ),
        "0"
    );
    assert_eq!(
        pg_one(
            url,
            "SELECT count(DISTINCT obj_description(c.oid, 'pg_class')) FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
        ),
        "1"
    );

    // Others write: an update, one in replica mode, an insert, a delete.
    pg(
        url,
        "UPDATE customers SET email = 'changed@outside' WHERE customer_id = 5;
         SET session_replication_role = replica;
         UPDATE orders SET status = 'cancelled' WHERE order_id = 3;
         RESET session_replication_role;
         INSERT INTO customers (customer_id, contact_name) VALUES (99999, 'outsider');
         DELETE FROM order_lines WHERE order_id = 7 AND line_no = 1;",
    );
    let again = run(m, &opts);
    let sum = |f: fn(&acode_migrate::TableRun) -> u64| again.tables.iter().map(f).sum::<u64>();
    assert_eq!(sum(|t| t.counts.updated), 2, "{again:?}");
    assert_eq!(sum(|t| t.counts.deleted), 1);
    assert_eq!(sum(|t| t.counts.inserted), 1);
    assert_valid(m, &opts);
    assert_eq!(
        pg_one(url, "SELECT email FROM customers WHERE customer_id = 5"),
        "c5@shop.example"
    );

    // The hidden column is no user data: not in check-record, not in the
    // analysis.
    let record = rt().block_on(m.check_record("customers", "5")).unwrap();
    assert!(record.equal);
    assert!(
        record
            .columns
            .iter()
            .all(|c| c.column != "__acode_row_hash")
    );
    let analysis = rt().block_on(m.analyze(&opts)).unwrap();
    for t in &analysis.tables {
        assert!(t.columns.iter().all(|c| c.name != "__acode_row_hash"));
        assert_eq!((t.missing, t.changed, t.extra), (Some(0), Some(0), Some(0)));
    }

    // A disabled trigger misses a write; the next run sees the trigger is
    // off, puts it back, rehashes, and so still finds the change.
    pg(
        url,
        "ALTER TABLE customers DISABLE TRIGGER zz_acode_row_hash_update;
         UPDATE customers SET email = 'unseen@outside' WHERE customer_id = 6;",
    );
    let third = run(m, &opts);
    let customers = table(&third, "customers");
    assert_eq!(customers.counts.updated, 1);
    assert_eq!(
        pg_one(
            url,
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'zz_acode_row_hash_update' AND tgrelid = 'customers'::regclass"
        ),
        "A"
    );
    assert_valid(m, &opts);
}

#[test]
fn an_unfinished_first_load_is_loaded_again_without_duplicates() {
    let s = Setup::new();
    let (url, m) = (&s.url, &s.m);
    let opts = Options {
        batch_size: 1000,
        ..Options::default()
    };
    run(m, &opts);
    // As a run killed during the first load of order_lines leaves it: no
    // key yet, some rows, a checkpoint from another run; plus a row another
    // writer added meanwhile.
    pg(
        url,
        "ALTER TABLE order_lines DROP CONSTRAINT order_lines_pkey CASCADE;
         DROP TRIGGER zz_acode_row_hash_insert ON order_lines;
         COMMENT ON TABLE order_lines IS 'created by acode migrate; first load not finished';
         DELETE FROM order_lines WHERE order_id > 3000;
         INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price) VALUES (5000, 1, 1, 1, 1.0);",
    );
    let again = run(m, &opts);
    assert!(again.tables.iter().all(|t| t.counts.deleted == 0));
    assert_eq!(pg_one(url, "SELECT count(*) FROM order_lines"), "18000");
    assert_eq!(
        pg_one(
            url,
            "SELECT obj_description('order_lines'::regclass, 'pg_class')"
        ),
        "created by acode migrate"
    );
    assert_eq!(
        pg_one(
            url,
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'order_lines'::regclass AND contype = 'p'"
        ),
        "1"
    );
    assert_valid(m, &opts);
}

#[test]
fn the_hash_covers_what_other_before_triggers_leave_in_the_row() {
    let s = Setup::new();
    let (url, m) = (&s.url, &s.m);
    let opts = Options::default();
    run(m, &opts);
    // A user's trigger that rewrites the row (its name sorts before
    // acode's): an update that sets the email to what it was leaves it
    // upper-cased, unlike the source.
    pg(
        url,
        "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN NEW.email := upper(NEW.email); RETURN NEW; END $$;
         CREATE TRIGGER normalize_email BEFORE UPDATE ON customers
           FOR EACH ROW EXECUTE FUNCTION shout();
         UPDATE customers SET email = email WHERE customer_id = 7;",
    );
    assert_eq!(
        pg_one(url, "SELECT email FROM customers WHERE customer_id = 7"),
        "C7@SHOP.EXAMPLE"
    );
    let again = run(m, &opts);
    let customers = table(&again, "customers");
    assert_eq!(customers.counts.updated, 1, "{again:?}");
    // acode's own write runs in replica mode: the user's trigger leaves it.
    assert_eq!(
        pg_one(url, "SELECT email FROM customers WHERE customer_id = 7"),
        "c7@shop.example"
    );
    assert_valid(m, &opts);

    // A stale hash while acode's trigger is off: the next run repairs the
    // trigger and rehashes, also in replica mode (the user's trigger
    // does not rewrite the rows the rehash touches).
    pg(
        url,
        "ALTER TABLE customers DISABLE TRIGGER zz_acode_row_hash_update;
         ALTER TABLE customers DISABLE TRIGGER normalize_email;
         UPDATE customers SET __acode_row_hash = 0 WHERE customer_id = 9;
         ALTER TABLE customers ENABLE TRIGGER normalize_email;",
    );
    run(m, &opts);
    assert_eq!(
        pg_one(url, "SELECT email FROM customers WHERE customer_id = 9"),
        "c9@shop.example"
    );
    assert_valid(m, &opts);
}

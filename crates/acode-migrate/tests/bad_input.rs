//! Bad input gives a clear error with a stable code and writes nothing;
//! values that do not fit their declared type are reported and copied
//! without loss.
#![allow(clippy::unwrap_used)]

mod common;

use acode_migrate::{Migrator, Options};
use acode_testkit::TestDb;
use common::*;

fn public_tables(url: &str) -> String {
    pg_one(
        url,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    )
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "this is not a database, just some text that is long enough to have a header page.\n"
            .repeat(20),
    )
    .unwrap();
    let db = TestDb::create();
    let m = Migrator::new(&source(&path), &db.url()).unwrap();
    let err = rt()
        .block_on(m.run(&Options::default(), &acode_migrate::NoProgress))
        .unwrap_err();
    assert_eq!(err.code().code(), "ACODE-MIGRATE-001", "{err}");
    assert!(
        err.to_string().contains("not a readable SQLite database"),
        "{err}"
    );
    let missing = Migrator::new(&source(&dir.path().join("nope.db")), &db.url()).unwrap();
    let err = rt()
        .block_on(missing.analyze(&Options::default()))
        .unwrap_err();
    assert_eq!(err.code().code(), "ACODE-MIGRATE-001");
    assert_eq!(
        pg_one(
            &db.url(),
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'acode_migrate'"
        ),
        "0"
    );
}

#[test]
fn an_unreachable_target_is_a_clear_transient_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = order_system(dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // nothing listens there now
    let m = Migrator::new(
        &source(&path),
        &format!("postgres://postgres@127.0.0.1:{port}/x"),
    )
    .unwrap();
    let err = rt()
        .block_on(m.run(&Options::default(), &acode_migrate::NoProgress))
        .unwrap_err();
    assert_eq!(err.code().code(), "ACODE-MIGRATE-002", "{err}");
    assert!(err.is_transient());
    // The message names the target (without a password) and the cause.
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    // Nothing was written to the source either.
    let untouched: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_\\_acode%' ESCAPE '\\'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(untouched, 0);
    let bad = Migrator::new(&source(&path), "mysql://x").err().unwrap();
    assert_eq!(bad.code().code(), "ACODE-MIGRATE-006");
}

#[test]
fn an_incompatible_existing_table_is_refused_and_nothing_is_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = order_system(dir.path());
    let db = TestDb::create();
    let url = db.url();
    // An orders table someone made by hand, of another shape.
    pg(
        &url,
        "CREATE TABLE orders (order_id integer PRIMARY KEY, customer_id integer, ordered_at timestamptz, status text)",
    );
    let m = Migrator::new(&source(&path), &url).unwrap();
    let err = rt()
        .block_on(m.run(&Options::default(), &acode_migrate::NoProgress))
        .unwrap_err();
    assert_eq!(err.code().code(), "ACODE-MIGRATE-003", "{err}");
    assert!(err.to_string().contains("orders"), "{err}");
    assert_eq!(public_tables(&url), "1", "no other table was created");
    assert_eq!(pg_one(&url, "SELECT count(*) FROM orders"), "0");
    // analyze says the same, as a problem of that table.
    let analysis = rt().block_on(m.analyze(&Options::default())).unwrap();
    let orders = analysis
        .tables
        .iter()
        .find(|t| t.table == "orders")
        .unwrap();
    assert!(
        orders
            .problems
            .iter()
            .any(|p| p.contains("ordered_at") || p.contains("shipped_at")),
        "{:?}",
        orders.problems
    );
    assert_eq!(orders.missing, None);
}

#[test]
fn loose_values_and_odd_identifiers_are_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loose.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        r#"CREATE TABLE "Weird ""Table"" Name" (
               "id" INTEGER PRIMARY KEY,
               "amount" INTEGER,
               "label" TEXT,
               "when" DATE,
               "order" REAL,
               "Group" BOOLEAN,
               untyped
           );
           INSERT INTO "Weird ""Table"" Name" VALUES
               (1, 10, 'ok', '2024-01-02', 1.5, 1, 'text'),
               (2, 'abc', 'Ünïcødé ✓ 👩‍👩‍👧', 1704153600, -0.0, 0, 42),
               (3, NULL, x'00ff', NULL, 1e308, NULL, x'01'),
               (4, 9223372036854775807, NULL, 2460311.5, -1e-300, 1, NULL),
               (5, -9223372036854775808, CAST(x'61ff62' AS TEXT), '2024-01-02T03:04:05Z', 4.9e-324, 0, 2.5),
               (6, 9e999, 'inf', 0, 9e999, 0, 9e999),
               (7, -9e999, '-inf', 1.25, -9e999, 1, -9e999);
           CREATE TABLE "key words" ("select" TEXT, "from" TEXT, PRIMARY KEY ("select", "from"));
           INSERT INTO "key words" VALUES ('a', 'b'), ('A', 'b'), ('ä', ''), ('', 'z');"#,
    )
    .unwrap();
    drop(conn);
    let db = TestDb::create();
    let m = Migrator::new(&source(&path), &db.url()).unwrap();
    let analysis = rt().block_on(m.analyze(&Options::default())).unwrap();
    let weird = &analysis
        .tables
        .iter()
        .find(|t| t.table == "Weird \"Table\" Name")
        .unwrap();
    let col = |n: &str| weird.columns.iter().find(|c| c.name == n).unwrap();
    assert_eq!(col("amount").kind.ddl(), "text");
    assert!(
        col("amount")
            .problem
            .as_deref()
            .unwrap()
            .contains("1 text value")
    );
    assert_eq!(
        col("label").kind.ddl(),
        "bytea",
        "a blob and invalid UTF-8 in a TEXT column"
    );
    assert!(col("label").problem.is_some());
    assert_eq!(col("when").kind.ddl(), "text");
    assert_eq!(col("order").kind.ddl(), "double precision");
    assert_eq!(col("Group").kind.ddl(), "boolean");
    assert_eq!(col("untyped").kind.ddl(), "bytea");
    assert!(weird.problems.len() >= 3, "{:?}", weird.problems);

    let first = run(&m, &Options::default());
    assert_eq!(first.copied, 11);
    let report = validate(&m, &Options::default());
    assert!(report.ok, "{}", report.to_markdown());
    assert_eq!(run(&m, &Options::default()).copied, 0);
    assert_eq!(
        pg_one(
            &db.url(),
            "SELECT amount FROM \"Weird \"\"Table\"\" Name\" WHERE id = 4"
        ),
        "9223372036854775807"
    );
    assert_eq!(
        pg_one(
            &db.url(),
            "SELECT encode(label, 'hex') FROM \"Weird \"\"Table\"\" Name\" WHERE id = 5"
        ),
        "61ff62"
    );
    // REAL edge values keep their values, infinities included, in REAL,
    // text and untyped columns (SQLite keeps neither NaN, read back as
    // NULL, nor the sign of -0.0).
    let reals = pg_one(
        &db.url(),
        "SELECT string_agg(concat_ws(' ', id, \"order\"::text, amount, encode(untyped, 'escape')), '; ' ORDER BY id)
         FROM \"Weird \"\"Table\"\" Name\" WHERE id IN (2, 5, 6, 7)",
    );
    assert_eq!(
        reals,
        "2 0 abc 42; 5 5e-324 -9223372036854775808 2.5; \
         6 Infinity Infinity Infinity; 7 -Infinity -Infinity -Infinity"
    );
    let record = rt()
        .block_on(m.check_record("key words", r#"["", "z"]"#))
        .unwrap();
    assert!(record.equal && record.in_target);
}

#[test]
fn integer_ids_in_an_existing_text_key_column_lose_no_row() {
    // 2 < 10 in SQLite, "2" > "10" in the target: ranges of the key do not
    // line up, so the table must not be compared range by range.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ids.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25)
         INSERT INTO items SELECT i, 'item ' || i FROM n;",
    )
    .unwrap();
    drop(conn);
    let db = TestDb::create();
    pg(
        &db.url(),
        "CREATE TABLE items (id text PRIMARY KEY, name text NOT NULL)",
    );
    let m = Migrator::new(&source(&path), &db.url()).unwrap();
    let opts = Options {
        batch_size: 10,
        ..Options::default()
    };
    for _ in 0..2 {
        run(&m, &opts);
        assert_eq!(pg_one(&db.url(), "SELECT count(*) FROM items"), "25");
    }
    assert!(validate(&m, &opts).ok);
    assert_eq!(
        pg_one(&db.url(), "SELECT name FROM items WHERE id = '3'"),
        "item 3"
    );
}

/// The control tables' history is checked on every use: read at once when
/// it lists exactly this binary's migrations, and otherwise by refinery,
/// which refuses a history whose applied migration differs.
#[test]
fn a_changed_control_history_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .unwrap();
    let db = TestDb::create();
    let m = Migrator::new(&source(&path), &db.url()).unwrap();
    rt().block_on(m.checkpoint_status()).unwrap();
    rt().block_on(m.checkpoint_status()).unwrap();
    pg(
        &db.url(),
        "UPDATE acode_migrate.schema_history SET checksum = '1' WHERE version = 1",
    );
    let err = rt().block_on(m.checkpoint_status()).unwrap_err();
    assert!(err.to_string().contains("control tables"), "{err}");
}

#[test]
fn a_source_left_by_a_killed_writer_is_read() {
    // A writer killed in the middle of a transaction leaves a hot
    // journal (rollback mode) or a WAL without a usable index (WAL mode):
    // the first to open the file must roll back or rebuild, which a
    // read-only connection cannot do by itself. Copying the files while
    // the writer holds them gives both states.
    let dir = tempfile::tempdir().unwrap();
    for (mode, side) in [("DELETE", "-journal"), ("WAL", "-wal")] {
        let live = dir.path().join(format!("live-{mode}.db"));
        let writer = rusqlite::Connection::open(&live).unwrap();
        writer
            .execute_batch(&format!(
                "PRAGMA journal_mode = {mode}; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
                 WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 500)
                 INSERT INTO t SELECT i, 'v' || i FROM s;
                 PRAGMA cache_size = 2;
                 BEGIN;
                 UPDATE t SET v = v || ' changed, never committed' || randomblob(200);"
            ))
            .unwrap();
        let crashed = dir.path().join(format!("crashed-{mode}.db"));
        std::fs::copy(&live, &crashed).unwrap();
        let mut copy_side = crashed.clone().into_os_string();
        copy_side.push(side);
        let mut live_side = live.clone().into_os_string();
        live_side.push(side);
        std::fs::copy(&live_side, &copy_side).unwrap();
        drop(writer);
        assert!(std::fs::metadata(&copy_side).unwrap().len() > 0, "{mode}");

        let db = TestDb::create();
        let m = Migrator::new(&source(&crashed), &db.url()).unwrap();
        let first = run(&m, &Options::default());
        assert_eq!(first.copied, 500, "{mode}");
        assert!(validate(&m, &Options::default()).ok, "{mode}");
        assert_eq!(
            pg_one(
                &db.url(),
                "SELECT count(*) FROM t WHERE v LIKE '%never committed%'"
            ),
            "0",
            "{mode}: only committed rows"
        );
    }
}

//! Source databases for the migration tests, built by SQL in SQLite itself
//! (recursive CTEs), and helpers to look at the target.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use acode_migrate::{Migrator, NoProgress, Options, RunReport, TableRun, ValidationReport};
use rusqlite::Connection;

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn source(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

pub fn run(m: &Migrator, opts: &Options) -> RunReport {
    rt().block_on(m.run(opts, &NoProgress)).unwrap()
}

pub fn validate(m: &Migrator, opts: &Options) -> ValidationReport {
    rt().block_on(m.validate(opts)).unwrap()
}

/// Validates, and fails with the report when anything differs.
pub fn assert_valid(m: &Migrator, opts: &Options) {
    let report = validate(m, opts);
    assert!(report.ok, "{}", report.to_markdown());
}

/// One table's part of a run.
pub fn table<'a>(report: &'a RunReport, name: &str) -> &'a TableRun {
    report.tables.iter().find(|t| t.table == name).unwrap()
}

/// Runs `sql` on the target, returning each row's columns as text.
pub fn pg(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    rt().block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(conn);
        let mut out = Vec::new();
        for msg in client.simple_query(sql).await.unwrap() {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = msg {
                out.push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect());
            }
        }
        drop(client);
        let _ = driver.await;
        out
    })
}

pub fn pg_one(url: &str, sql: &str) -> String {
    pg(url, sql)[0][0].clone().unwrap_or_default()
}

/// The generated database: 5 tables (FKs, a composite key, a WITHOUT
/// ROWID table, a table with no key), NULLs, BLOBs, Unicode, odd
/// identifiers, integers beyond 32 bits, REAL edge values, dates as text
/// and numbers. `scale` 1 gives 1,000,000 rows in all.
pub fn generated(dir: &Path, scale: f64) -> PathBuf {
    let path = dir.join("generated.db");
    let conn = Connection::open(&path).unwrap();
    let n = |rows: f64| ((rows * scale) as i64).max(10);
    let (customers, orders, items_per_order, tags, events) =
        (n(50_000.0), n(150_000.0), 4, n(1_000.0), n(199_000.0));
    conn.execute_batch(&format!(
        r#"
        PRAGMA journal_mode = WAL;
        BEGIN;
        CREATE TABLE "Customer Accounts" (
            id INTEGER PRIMARY KEY,
            "Full Name" TEXT NOT NULL,
            email VARCHAR(200),
            balance REAL,
            created DATETIME,
            "select" INTEGER,
            avatar BLOB,
            active BOOLEAN
        );
        CREATE TABLE "Tags" ("Name" TEXT PRIMARY KEY, "MixedCase ""quoted""" TEXT) WITHOUT ROWID;
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER REFERENCES "customer accounts"(id),
            "placed at" INTEGER,
            total DECIMAL(12,2),
            note TEXT,
            tag TEXT REFERENCES tags("name")
        );
        CREATE TABLE "Order""Items" (
            order_id INTEGER NOT NULL REFERENCES orders(id),
            line INTEGER NOT NULL,
            sku TEXT,
            qty INTEGER,
            price REAL,
            PRIMARY KEY (order_id, line)
        );
        CREATE INDEX "items by sku" ON "Order""Items"(sku);
        CREATE TABLE events (kind TEXT, payload BLOB, n INTEGER, at REAL);
        CREATE VIEW "big orders" AS SELECT * FROM orders WHERE total > 100;

        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {customers})
        INSERT INTO "Customer Accounts"
        SELECT i,
               CASE i % 5 WHEN 0 THEN 'Zoë Ångström ' WHEN 1 THEN '日本語 名前 ' WHEN 2 THEN 'emoji 🚀🎉 ' WHEN 3 THEN 'quote '' "dq" ' ELSE 'plain ' END || i,
               CASE WHEN i % 7 = 0 THEN NULL ELSE 'user' || i || '@example.com' END,
               CASE i % 11 WHEN 0 THEN 0.0 WHEN 1 THEN 1.7976931348623157e308 WHEN 2 THEN -2.2250738585072014e-308 WHEN 3 THEN 4.9e-324 WHEN 4 THEN NULL ELSE i * 1.25 END,
               CASE WHEN i % 3 = 0 THEN datetime(1600000000 + i * 60, 'unixepoch') ELSE date(1600000000 + i * 86400, 'unixepoch') END,
               i * 10000000000,
               CASE WHEN i % 4 = 0 THEN NULL ELSE randomblob(16 + i % 48) END,
               i % 2
        FROM s;

        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {tags})
        INSERT INTO "Tags" SELECT 'tag ' || printf('%05d', i) || CASE i % 3 WHEN 0 THEN ' ü' ELSE '' END, CASE WHEN i % 2 = 0 THEN NULL ELSE 'Mixed ' || i END FROM s;

        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {orders})
        INSERT INTO orders
        SELECT i, 1 + (i * 7919) % {customers}, 1600000000 + i, round((i % 1000) * 1.37, 2),
               CASE WHEN i % 5 = 0 THEN NULL ELSE 'note ✓ ' || i END,
               CASE WHEN i % 9 = 0 THEN NULL ELSE 'tag ' || printf('%05d', 1 + i % {tags}) || CASE (1 + i % {tags}) % 3 WHEN 0 THEN ' ü' ELSE '' END END
        FROM s;

        WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {orders} * {items_per_order} - 1)
        INSERT INTO "Order""Items"
        SELECT 1 + i / {items_per_order}, 1 + i % {items_per_order}, 'SKU-' || (i % 5000), 1 + i % 9, (i % 300) * 0.5 FROM s;

        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {events})
        INSERT INTO events
        SELECT CASE i % 3 WHEN 0 THEN 'click' WHEN 1 THEN 'view' ELSE NULL END,
               CASE WHEN i % 2 = 0 THEN randomblob(8) ELSE NULL END,
               CASE WHEN i % 2 = 0 THEN 9007199254740993 + i ELSE -i END,
               2459000.5 + i / 86400.0
        FROM s;
        COMMIT;
        "#
    ))
    .unwrap();
    path
}

/// Rows in all tables of a source.
pub fn source_rows(path: &Path) -> u64 {
    let conn = Connection::open(path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables
        .iter()
        .map(|t| {
            conn.query_row(
                &format!("SELECT count(*) FROM \"{}\"", t.replace('"', "\"\"")),
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as u64
        })
        .sum()
}

/// A hand-made schema of the kind shops have: categories with pictures,
/// products, customers, orders, order lines, a table whose name has a
/// space, views, an index, a trigger, dates in several forms.
pub fn order_system(dir: &Path) -> PathBuf {
    let path = dir.join("shop.sqlite3");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        r#"
        PRAGMA foreign_keys = ON;
        BEGIN;
        CREATE TABLE categories (
            category_id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            parent_id INTEGER REFERENCES categories(category_id),
            picture BLOB
        );
        CREATE TABLE products (
            product_id INTEGER PRIMARY KEY,
            sku TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            category_id INTEGER NOT NULL REFERENCES categories(category_id),
            unit_price NUMERIC(10,2) NOT NULL,
            discontinued BOOLEAN NOT NULL DEFAULT 0,
            added_on DATE
        );
        CREATE TABLE customers (
            customer_id INTEGER PRIMARY KEY,
            company TEXT,
            contact_name TEXT NOT NULL,
            email TEXT,
            phone TEXT,
            signed_up TIMESTAMP,
            loyalty_points INTEGER
        );
        CREATE TABLE orders (
            order_id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(customer_id),
            ordered_at DATETIME NOT NULL,
            shipped_at DATETIME,
            status TEXT NOT NULL CHECK (status IN ('new', 'paid', 'shipped', 'cancelled'))
        );
        CREATE TABLE order_lines (
            order_id INTEGER NOT NULL REFERENCES orders(order_id) ON DELETE CASCADE,
            line_no INTEGER NOT NULL,
            product_id INTEGER NOT NULL REFERENCES products(product_id),
            quantity INTEGER NOT NULL,
            unit_price REAL NOT NULL,
            PRIMARY KEY (order_id, line_no)
        ) WITHOUT ROWID;
        CREATE TABLE "order notes" (
            order_id INTEGER REFERENCES orders(order_id),
            written_at INTEGER,
            "Note Text" TEXT
        );
        CREATE INDEX orders_by_customer ON orders(customer_id, ordered_at);
        CREATE INDEX lines_by_product ON order_lines(product_id);
        CREATE VIEW order_totals AS
            SELECT o.order_id, sum(l.quantity * l.unit_price) AS total FROM orders o JOIN order_lines l USING (order_id) GROUP BY o.order_id;
        CREATE VIEW "customers with orders" AS SELECT DISTINCT c.* FROM customers c JOIN orders o USING (customer_id);
        CREATE TRIGGER orders_shipped AFTER UPDATE OF shipped_at ON orders BEGIN UPDATE orders SET status = 'shipped' WHERE order_id = NEW.order_id; END;

        INSERT INTO categories (name, parent_id, picture) VALUES
            ('Beverages', NULL, x'89504e470d0a1a0a0000000d49484452'),
            ('Coffee', 1, x'ffd8ffe000104a464946'),
            ('Tea', 1, NULL),
            ('Süßwaren', NULL, x'474946383961'),
            ('Bücher & Medien', NULL, randomblob(2048));

        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 300)
        INSERT INTO products SELECT i, 'SKU-' || printf('%04d', i), 'Product ' || i || CASE i % 4 WHEN 0 THEN ' — déluxe' ELSE '' END,
            1 + i % 5, round(1 + (i % 97) * 0.73, 2), i % 10 = 0, date('2020-01-01', '+' || i || ' days') FROM s;

        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 2000)
        INSERT INTO customers SELECT i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'Company ' || i || ' GmbH' END,
            CASE i % 4 WHEN 0 THEN 'José Núñez' WHEN 1 THEN 'Анна Каренина' WHEN 2 THEN '李小龍' ELSE 'O''Brien' END || ' ' || i,
            'c' || i || '@shop.example', CASE WHEN i % 5 = 0 THEN NULL ELSE '+49 30 ' || (1000000 + i) END,
            CASE i % 3 WHEN 0 THEN '2021-03-04T05:06:07Z' WHEN 1 THEN 1614834367 + i ELSE '2021-03-04 05:06:07.123' END,
            CASE WHEN i % 7 = 0 THEN NULL ELSE i * 13 END FROM s;

        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 6000)
        INSERT INTO orders SELECT i, 1 + (i * 31) % 2000, datetime(1614834367 + i * 3600, 'unixepoch'),
            CASE WHEN i % 4 = 0 THEN NULL ELSE datetime(1614834367 + i * 3600 + 86400, 'unixepoch') END,
            CASE i % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' ELSE 'shipped' END FROM s;

        WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 6000 * 3 - 1)
        INSERT INTO order_lines SELECT 1 + i / 3, 1 + i % 3, 1 + (i * 17) % 300, 1 + i % 5, round(1 + (i % 97) * 0.73, 2) FROM s;

        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 500)
        INSERT INTO "order notes" SELECT 1 + i * 7, 1614834367 + i, 'Bitte klingeln 🔔 #' || i FROM s;
        COMMIT;
        "#,
    )
    .unwrap();
    path
}

/// What a change to the source does to a table's rows.
#[derive(Clone, Copy)]
pub enum Change {
    Updated,
    Deleted,
    Inserted,
}

/// Changes made to a source, and what a run must report for them, table
/// by table.
pub struct Changes {
    conn: Connection,
    /// Per table: rows updated, deleted, inserted.
    expected: std::collections::BTreeMap<String, [u64; 3]>,
}

impl Changes {
    pub fn open(path: &Path) -> Changes {
        Changes {
            conn: Connection::open(path).unwrap(),
            expected: std::collections::BTreeMap::new(),
        }
    }

    /// Runs `sql`, which makes `change` to rows of `table`.
    pub fn apply(&mut self, table: &str, change: Change, sql: &str) {
        let n = self.conn.execute(sql, []).unwrap() as u64;
        self.expected.entry(table.to_owned()).or_default()[change as usize] += n;
    }

    /// Rows updated in all.
    pub fn updated(&self) -> u64 {
        self.expected
            .values()
            .map(|c| c[Change::Updated as usize])
            .sum()
    }

    /// Every table of `report` wrote exactly the rows changed in it, and
    /// every changed table is there.
    pub fn assert_reported(&self, report: &RunReport) {
        for t in &report.tables {
            let want = self.expected.get(&t.table).copied().unwrap_or_default();
            assert_eq!(
                [t.counts.updated, t.counts.deleted, t.counts.inserted],
                want,
                "{}",
                t.table
            );
        }
        assert!(
            self.expected
                .keys()
                .all(|k| report.tables.iter().any(|t| &t.table == k))
        );
    }
}

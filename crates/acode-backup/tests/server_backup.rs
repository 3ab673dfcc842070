//! Backups of the server database with `pg_dump`: a backup restored with
//! `pg_restore` into another database holds the same rows; a missing, too
//! old or failing `pg_dump` leaves nothing behind and says why; retention
//! removes old server backups only, never the one just written.
#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use acode_backup::server::conn::Server;
use acode_backup::{PgDump, Retention, ServerManifest, backup_server, backup_server_at, files};
use acode_protocol::ErrorCode;
use acode_testkit::TestDb;
use chrono::{Duration, Utc};

/// Runs SQL statements on `url`; the first column of every row, as text.
fn sql(url: &str, statements: &[&str]) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(conn);
        let mut out = Vec::new();
        for s in statements {
            for msg in client.simple_query(s).await.unwrap() {
                if let tokio_postgres::SimpleQueryMessage::Row(row) = msg {
                    out.push(row.get(0).unwrap_or("NULL").to_owned());
                }
            }
        }
        drop(client);
        driver.await.unwrap().unwrap();
        out
    })
}

/// A database with the server schema, two tenants, three devices and 300
/// mirrored chats (titles with quotes, newlines and non-ASCII text).
fn seeded() -> TestDb {
    let db = TestDb::create();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let remote = acode_remote::Remote::new(&db.url(), 1).unwrap();
        remote.migrate().await.unwrap();
        for (tenant, device) in [("acme", "dev-a"), ("acme", "dev-b"), ("globex", "dev-c")] {
            remote
                .register_device(tenant, device, &format!("{device} laptop"))
                .await
                .unwrap();
        }
    });
    sql(
        &db.url(),
        &[
            "INSERT INTO chats (tenant_id, id, title, privacy, created_at, updated_at,
                              version, hlc, origin_device, server_seq)
           SELECT t.id, 'chat-' || n, 'it''s chat ' || n || E'\nmit Ümlaut', 'full',
                  now(), now(), 1, 'hlc-' || n, 'dev-a', n
           FROM generate_series(1, 300) AS n, sync_tenants t WHERE t.name = 'acme'",
        ],
    );
    db
}

/// Per table: row count and a digest of every row's text, plus the list of
/// tables.
fn fingerprint(url: &str) -> Vec<String> {
    let mut out = sql(
        url,
        &[
            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables
           WHERE schemaname = 'public'",
        ],
    );
    for table in [
        "sync_tenants",
        "sync_devices",
        "chats",
        "acode_server_schema_history",
    ] {
        out.extend(sql(
            url,
            &[&format!(
                "SELECT '{table} ' || count(*) || ' ' ||
                        coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-')
                 FROM {table} t"
            )],
        ));
    }
    out
}

fn system_pg_dump() -> PgDump {
    PgDump::find(std::env::var_os("PATH").as_deref()).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_server_backup_restores_into_another_database_with_the_same_rows() {
    let source = seeded();
    let out = tempfile::tempdir().unwrap();
    let pg_dump = system_pg_dump();
    let done = backup_server(&source.url(), out.path(), &pg_dump, None).unwrap();

    // Named like the local backups, with a manifest that checks out.
    let name = done
        .path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(files::parse_server_backup_name(&name).is_some(), "{name}");
    assert_eq!(
        names(out.path()),
        vec![name.clone(), format!("{name}.manifest.json")]
    );
    let manifest = ServerManifest::verify(&done.path).unwrap();
    assert_eq!(manifest, done.manifest);
    assert_eq!(manifest.bytes, std::fs::metadata(&done.path).unwrap().len());
    let latest = sql(
        &source.url(),
        &["SELECT max(version) FROM acode_server_schema_history"],
    );
    assert_eq!(
        manifest.schema_version.map(|v| v.to_string()),
        Some(latest[0].clone())
    );
    assert_eq!(manifest.dump_format, "custom");
    assert_eq!(manifest.pg_dump_version, pg_dump.version);
    let server_num = sql(&source.url(), &["SHOW server_version_num"]);
    assert_eq!(manifest.server_version_num.to_string(), server_num[0]);
    assert_eq!(
        manifest.database,
        format!("{}:{}/{}", source.host(), source.port(), source.name())
    );
    assert!(std::fs::read(&done.path).unwrap().starts_with(b"PGDMP"));

    // Restored with pg_restore into a fresh database: the same tables and rows.
    let target = TestDb::create();
    let restored = Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(target.url())
        .arg(&done.path)
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let (before, after) = (fingerprint(&source.url()), fingerprint(&target.url()));
    assert_eq!(before, after);
    assert!(
        after.iter().any(|t| t.starts_with("chats 300 ")),
        "{after:?}"
    );
    assert!(
        after.iter().any(|t| t.starts_with("sync_devices 3 ")),
        "{after:?}"
    );
}

#[test]
fn a_database_without_the_server_schema_has_no_schema_version() {
    let db = TestDb::create();
    let out = tempfile::tempdir().unwrap();
    let done = backup_server(&db.url(), out.path(), &system_pg_dump(), None).unwrap();
    assert_eq!(done.manifest.schema_version, None);
    assert!(done.bytes > 0);
}

#[test]
fn a_missing_pg_dump_is_backup_005_and_names_the_package() {
    let empty = tempfile::tempdir().unwrap();
    let path: OsString = empty.path().into();
    let err = PgDump::find(Some(&path)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::BackupToolUnavailable);
    assert!(!err.is_transient());
    let message = err.to_string();
    assert!(message.contains("pg_dump is not installed"), "{message}");
    assert!(message.contains("postgresql-client"), "{message}");
}

/// A stand-in `pg_dump` in a folder of its own: prints `version` for
/// `--version`; otherwise records that it ran and runs `body`.
fn fake_pg_dump(version: &str, body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pg_dump");
    let marker = dir.path().join("ran");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) {version}'; exit 0; fi\n\
             touch '{}'\n{body}\n",
            marker.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (dir, marker)
}

#[test]
fn a_pg_dump_older_than_the_server_is_refused_before_it_runs() {
    let db = TestDb::create();
    let (tools, marker) = fake_pg_dump("9.6.24", "exit 0");
    let pg_dump = PgDump::find(Some(tools.path().as_os_str())).unwrap();
    assert_eq!(pg_dump.version, "9.6.24");
    let out = tempfile::tempdir().unwrap();
    let err = backup_server(&db.url(), out.path(), &pg_dump, None).unwrap_err();
    assert_eq!(err.code(), ErrorCode::BackupToolUnavailable);
    let message = err.to_string();
    assert!(
        message.contains("9.6.24") && message.contains("older than the server"),
        "{message}"
    );
    assert!(message.contains("postgresql-client"), "{message}");
    assert!(!marker.exists(), "the old pg_dump was run");
    assert!(names(out.path()).is_empty());
}

#[test]
fn a_failing_pg_dump_is_backup_001_with_its_message_and_leaves_no_file() {
    let db = TestDb::create();
    let (tools, marker) = fake_pg_dump(
        "99.0",
        "printf 'PGDMP half an archive'\necho 'pg_dump: error: boom' >&2\nexit 1",
    );
    let pg_dump = PgDump::find(Some(tools.path().as_os_str())).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = backup_server(&db.url(), out.path(), &pg_dump, None).unwrap_err();
    assert!(marker.exists(), "the fake pg_dump did not run");
    assert_eq!(err.code(), ErrorCode::BackupFailed);
    assert!(err.to_string().contains("pg_dump: error: boom"), "{err}");
    assert_eq!(
        names(out.path()),
        Vec::<String>::new(),
        "a partial file was left"
    );
}

#[test]
fn an_unreachable_server_is_backup_001() {
    // A port nothing listens on, on this machine only.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let out = tempfile::tempdir().unwrap();
    let url = format!("postgres://postgres:hunter2@127.0.0.1:{port}/nowhere");
    let err = backup_server(&url, out.path(), &system_pg_dump(), None).unwrap_err();
    assert_eq!(err.code(), ErrorCode::BackupFailed);
    assert!(err.is_transient());
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(names(out.path()).is_empty());
}

/// A finished-looking server backup (file + manifest) taken `days_ago`.
fn old_server_backup(dir: &Path, now: chrono::DateTime<Utc>, days_ago: i64) -> PathBuf {
    let path = dir.join(files::server_backup_name(now - Duration::days(days_ago)));
    std::fs::write(&path, b"PGDMP").unwrap();
    std::fs::write(files::manifest_path(&path), b"{}").unwrap();
    path
}

#[test]
fn retention_removes_old_server_backups_only_and_never_the_new_one() {
    let db = TestDb::create();
    let out = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let ten = old_server_backup(out.path(), now, 10);
    let five = old_server_backup(out.path(), now, 5);
    let one = old_server_backup(out.path(), now, 1);
    // A local backup and a file of the user's: never a server backup.
    let local = out
        .path()
        .join(files::backup_name(now - Duration::days(30), true));
    std::fs::write(&local, b"x").unwrap();
    std::fs::write(files::manifest_path(&local), b"{}").unwrap();
    std::fs::write(out.path().join("notes.txt"), b"mine").unwrap();
    let pg_dump = system_pg_dump();

    // No rule at all is refused before anything is dumped.
    let none = Retention::default();
    let err = backup_server_at(&db.url(), out.path(), &pg_dump, Some(none), now).unwrap_err();
    assert_eq!(err.code(), ErrorCode::StoreInvalidInput);
    assert_eq!(names(out.path()).len(), 9);

    let keep_two = Retention {
        keep_last: Some(2),
        keep_days: None,
    };
    let first = backup_server_at(&db.url(), out.path(), &pg_dump, Some(keep_two), now).unwrap();
    assert_eq!(first.pruned, vec![five.clone(), ten.clone()]);
    for gone in [&five, &ten] {
        assert!(!gone.exists() && !files::manifest_path(gone).exists());
    }
    assert!(one.exists() && first.path.exists() && local.exists());

    // Keep nothing older than "now": only the backup just written stays.
    let later = now + Duration::seconds(1);
    let today = Retention {
        keep_days: Some(0),
        keep_last: None,
    };
    let second = backup_server_at(&db.url(), out.path(), &pg_dump, Some(today), later).unwrap();
    let mut pruned = second.pruned.clone();
    pruned.sort();
    let mut expected = vec![one.clone(), first.path.clone()];
    expected.sort();
    assert_eq!(pruned, expected);
    let second_name = second
        .path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let local_name = local.file_name().unwrap().to_string_lossy().into_owned();
    let mut expected_names = vec![
        second_name.clone(),
        format!("{second_name}.manifest.json"),
        local_name.clone(),
        format!("{local_name}.manifest.json"),
        "notes.txt".to_owned(),
    ];
    expected_names.sort();
    assert_eq!(names(out.path()), expected_names);
    ServerManifest::verify(&second.path).unwrap();
}

#[test]
fn the_url_given_to_pg_dump_carries_no_password() {
    let server = Server::parse("postgres://postgres:hunter2@127.0.0.1:5432/x").unwrap();
    assert!(!server.conninfo().contains("hunter2"));
}

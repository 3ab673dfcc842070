//! `acode admin backup`: a pg_dump archive of the server database with its
//! manifest, the URL from `--database-url` or `DATABASE_URL`, retention, and
//! a clear error when pg_dump is missing.
#![allow(clippy::unwrap_used)] // test code: a failure is the test failing

mod common;

use std::path::Path;
use std::process::Command as StdCommand;

use acode_testkit::TestDb;
use common::{Run, acode_in, run};

/// A database with the acode server schema and one tenant.
fn server_db() -> TestDb {
    let db = TestDb::create();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let remote = acode_remote::Remote::new(&db.url(), 1).unwrap();
        remote.migrate().await.unwrap();
        remote.ensure_tenant("acme").await.unwrap();
    });
    db
}

/// `acode --json admin backup ARGS…` in `cwd`, with no `DATABASE_URL` from
/// the caller's environment.
fn admin_backup(cwd: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = acode_in(cwd);
    cmd.env_remove("DATABASE_URL")
        .args(["--json", "admin", "backup"])
        .args(args);
    cmd
}

fn ok(cmd: &mut assert_cmd::Command) -> serde_json::Value {
    let r = run(cmd);
    assert_eq!(r.code, 0, "failed: {}{}", r.stdout, r.stderr);
    r.json()
}

fn pgdump_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pgdump"))
        .collect();
    names.sort();
    names
}

#[test]
fn admin_backup_writes_a_pg_dump_archive_with_its_manifest() {
    let db = server_db();
    let cwd = tempfile::tempdir().unwrap();
    let out = cwd.path().join("server-backups");
    let mut cmd = admin_backup(cwd.path(), &["--out", out.to_str().unwrap()]);
    cmd.env("DATABASE_URL", db.url());
    let v = ok(&mut cmd);

    let path = Path::new(v["path"].as_str().unwrap()).to_path_buf();
    assert!(path.starts_with(&out), "{path:?}");
    assert_eq!(v["schema_version"], acode_remote::latest_schema_version());
    assert_eq!(v["bytes"], std::fs::metadata(&path).unwrap().len());
    assert_eq!(v["removed"].as_array().map(Vec::len), Some(0));
    assert!(v["pg_dump_version"].as_str().is_some_and(|s| !s.is_empty()));
    let manifest = acode_backup::ServerManifest::verify(&path).unwrap();
    assert_eq!(v["sha256"], manifest.sha256.as_str());
    assert_eq!(v["manifest"], format!("{}.manifest.json", path.display()));

    // pg_restore reads it, and it holds the server schema.
    let listed = StdCommand::new("pg_restore")
        .arg("--list")
        .arg(&path)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let toc = String::from_utf8_lossy(&listed.stdout);
    for table in [
        "sync_tenants",
        "sync_devices",
        "acode_server_schema_history",
    ] {
        assert!(
            toc.contains(&format!("TABLE public {table}")),
            "{table}: {toc}"
        );
    }
}

#[test]
fn admin_backup_applies_retention_and_defaults_to_acode_backups_here() {
    let db = TestDb::create();
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    let mut removed = Vec::new();
    for _ in 0..3 {
        let v = ok(&mut admin_backup(
            cwd.path(),
            &["--database-url", &url, "--keep-last", "2"],
        ));
        assert!(v["schema_version"].is_null(), "no server schema here: {v}");
        removed.push(v["removed"].as_array().unwrap().len());
    }
    assert_eq!(removed, vec![0, 0, 1]);
    let dir = cwd.path().join("acode-backups");
    assert_eq!(pgdump_files(&dir).len(), 2);

    let r = run(&mut admin_backup(
        cwd.path(),
        &["--database-url", &url, "--keep-last", "0"],
    ));
    assert_eq!(
        r.code, 2,
        "keep-last 0 would remove the new backup: {}",
        r.stdout
    );
}

#[test]
fn admin_backup_without_pg_dump_is_backup_005_naming_the_package() {
    let cwd = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let url = "postgres://postgres@127.0.0.1:5432/unused";
    let mut cmd = admin_backup(cwd.path(), &["--database-url", url]);
    cmd.env("PATH", empty_path.path());
    let r = run(&mut cmd);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.error_code(), "ACODE-BACKUP-005");
    assert!(
        r.error_message().contains("pg_dump is not installed"),
        "{}",
        r.stdout
    );
    assert!(
        r.error_message().contains("postgresql-client"),
        "{}",
        r.stdout
    );
    assert!(!cwd.path().join("acode-backups").exists());

    // The same in text: the stable first line on stderr.
    let mut cmd = acode_in(cwd.path());
    cmd.env_remove("DATABASE_URL")
        .env("PATH", empty_path.path())
        .args(["admin", "backup", "--database-url", url]);
    let r: Run = run(&mut cmd);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("error[ACODE-BACKUP-005]: pg_dump is not installed"),
        "{}",
        r.stderr
    );
}

#[test]
fn admin_backup_needs_a_database_url() {
    let cwd = tempfile::tempdir().unwrap();
    let r = run(&mut admin_backup(cwd.path(), &[]));
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.error_code(), "ACODE-USAGE-001");
    assert!(r.error_message().contains("--database-url"), "{}", r.stdout);
}

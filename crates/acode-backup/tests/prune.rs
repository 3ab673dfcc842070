//! Retention by age and count, with the backups' times set by the test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use acode_backup::files::manifest_path;
use acode_backup::prune::list;
use acode_backup::{Retention, backup_at, prune};
use acode_protocol::ErrorCode;
use acode_store::{OpenOptions, Store};
use chrono::{DateTime, Duration, Utc};

const AGES_DAYS: [i64; 6] = [0, 1, 3, 10, 20, 40];

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-01T12:00:00.000Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A folder with one backup per age in [`AGES_DAYS`] (newest first), and
/// files retention must never touch.
struct Folder {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    backups: Vec<PathBuf>,
    others: Vec<PathBuf>,
}

fn folder() -> Folder {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    drop(Store::open(&db, &OpenOptions::default()).unwrap());
    let dir = tmp.path().join("backups");
    let backups = AGES_DAYS
        .iter()
        .map(|d| {
            let at = now() - Duration::days(*d) - Duration::minutes(1);
            backup_at(&db, &dir, d % 2 == 0, at).unwrap().path
        })
        .collect();
    let others = [
        "pre-migrate-v1-20200101T000000.000Z.db",
        "acode-20200101T000000.000Z.db.gz",
        ".acode-20200101T000000.000Z.db.gz.123.partial",
        "acode-20190101T000000.000Z.db.manifest.json",
        "notes.txt",
    ]
    .iter()
    .map(|name| {
        let p = dir.join(name);
        std::fs::write(&p, "keep me").unwrap();
        p
    })
    .collect();
    Folder {
        _tmp: tmp,
        dir,
        backups,
        others,
    }
}

fn check(f: &Folder, removed: &[PathBuf], expect_removed_ages: &[i64]) {
    let expected: Vec<PathBuf> = AGES_DAYS
        .iter()
        .zip(&f.backups)
        .filter(|(age, _)| expect_removed_ages.contains(age))
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(removed, expected.as_slice());
    for (age, path) in AGES_DAYS.iter().zip(&f.backups) {
        let gone = expect_removed_ages.contains(age);
        assert_eq!(!path.exists(), gone, "{}", path.display());
        assert_eq!(!manifest_path(path).exists(), gone);
    }
    for other in &f.others {
        assert!(other.exists(), "{} was removed", other.display());
    }
}

fn rules(keep_days: Option<u32>, keep_last: Option<usize>) -> Retention {
    Retention {
        keep_days,
        keep_last,
    }
}

#[test]
fn only_finished_backups_are_listed_newest_first() {
    let f = folder();
    let listed: Vec<PathBuf> = list(&f.dir).unwrap().into_iter().map(|b| b.path).collect();
    assert_eq!(listed, f.backups);
    assert!(
        list(Path::new("/nonexistent/acode/backups"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn keep_last_keeps_the_newest() {
    let f = folder();
    let removed = prune(&f.dir, rules(None, Some(2)), now()).unwrap();
    check(&f, &removed, &[3, 10, 20, 40]);
    // Pruning again with the same rule removes nothing more.
    assert!(
        prune(&f.dir, rules(None, Some(2)), now())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn keep_days_keeps_the_recent() {
    let f = folder();
    let removed = prune(&f.dir, rules(Some(7), None), now()).unwrap();
    check(&f, &removed, &[10, 20, 40]);
}

#[test]
fn a_backup_is_kept_when_either_rule_keeps_it() {
    let f = folder();
    let removed = prune(&f.dir, rules(Some(2), Some(4)), now()).unwrap();
    check(&f, &removed, &[20, 40]);
}

#[test]
fn keep_last_zero_removes_every_backup_and_nothing_else() {
    let f = folder();
    let removed = prune(&f.dir, rules(None, Some(0)), now()).unwrap();
    check(&f, &removed, &AGES_DAYS);
}

#[test]
fn no_rule_is_refused_and_removes_nothing() {
    let f = folder();
    let err = prune(&f.dir, rules(None, None), now()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::StoreInvalidInput);
    check(&f, &[], &[]);
}

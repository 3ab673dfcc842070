//! Retention: which backups of a folder to keep, by age and by count.
//!
//! Only finished backups count: a file named like a backup
//! (`acode-<time>.db[.gz]`, or `acode-server-<time>.pgdump` for the server
//! database's) with its manifest beside it; the two kinds are listed and
//! pruned apart. Anything else in the folder (pre-migration copies, partial
//! files, the user's own files) is never listed, never counted and never
//! removed. A backup's time is the
//! one in its name, so retention needs no clock but the `now` it is given.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::error::{BackupError, Result};
use crate::files;

/// The retention rules; a backup is kept when any rule keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep backups taken less than this many days before `now`.
    pub keep_days: Option<u32>,
    /// Keep this many of the newest backups.
    pub keep_last: Option<usize>,
}

/// One finished backup in a folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFile {
    pub path: PathBuf,
    pub taken_at: DateTime<Utc>,
    pub compressed: bool,
}

/// The finished backups in `dir`, newest first. A missing folder has none.
pub fn list(dir: &Path) -> Result<Vec<BackupFile>> {
    list_named(dir, parse)
}

/// The finished server backups (`acode admin backup`) in `dir`, newest
/// first. Local backups in the same folder are not among them.
pub fn list_server(dir: &Path) -> Result<Vec<BackupFile>> {
    list_named(dir, |name| {
        files::parse_server_backup_name(name.to_str()?).map(|at| (at, true))
    })
}

/// The files of `dir` whose name `parse` reads as a backup's (its time and
/// compression) and that have a manifest beside them.
fn list_named(
    dir: &Path,
    parse: impl Fn(&std::ffi::OsStr) -> Option<(DateTime<Utc>, bool)>,
) -> Result<Vec<BackupFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackupError::io(format!("listing {}", dir.display()), e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| BackupError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some((taken_at, compressed)) = parse(&name) else {
            continue;
        };
        let path = entry.path();
        if path.is_file() && files::manifest_path(&path).is_file() {
            found.push(BackupFile {
                path,
                taken_at,
                compressed,
            });
        }
    }
    found.sort_by(|a, b| b.taken_at.cmp(&a.taken_at).then(b.path.cmp(&a.path)));
    Ok(found)
}

fn parse(name: &std::ffi::OsStr) -> Option<(DateTime<Utc>, bool)> {
    files::parse_backup_name(name.to_str()?)
}

/// Which of `backups` (newest first) the rules remove.
pub fn select(backups: &[BackupFile], rules: Retention, now: DateTime<Utc>) -> Vec<PathBuf> {
    let cutoff = rules
        .keep_days
        .map(|d| now - chrono::Duration::days(i64::from(d)));
    backups
        .iter()
        .enumerate()
        .filter(|(rank, b)| {
            let kept_by_count = rules.keep_last.is_some_and(|n| *rank < n);
            let kept_by_age = cutoff.is_some_and(|c| b.taken_at >= c);
            !kept_by_count && !kept_by_age
        })
        .map(|(_, b)| b.path.clone())
        .collect()
}

/// Removes the backups of `dir` that no rule keeps, each with its
/// manifest, and returns their paths. At least one rule is required:
/// with none, everything would go.
pub fn prune(dir: &Path, rules: Retention, now: DateTime<Utc>) -> Result<Vec<PathBuf>> {
    require_a_rule(rules)?;
    let doomed = select(&list(dir)?, rules, now);
    remove(&doomed)?;
    Ok(doomed)
}

/// Removes each backup with its manifest (the backup first: a manifest
/// alone is never listed as a backup).
pub(crate) fn remove(doomed: &[PathBuf]) -> Result<()> {
    for path in doomed {
        files::remove_if_exists(path)?;
        files::remove_if_exists(&files::manifest_path(path))?;
    }
    Ok(())
}

/// Checks that at least one rule is given: with none, everything would go.
pub(crate) fn require_a_rule(rules: Retention) -> Result<()> {
    if rules.keep_days.is_none() && rules.keep_last.is_none() {
        return Err(BackupError::invalid(
            "retention",
            "give --keep-days or --keep-last (or both)",
        ));
    }
    Ok(())
}

//! Backups of the server database (`acode admin backup`, DESIGN.md §10):
//! `pg_dump` in custom format (`-Fc`: compressed, restorable with
//! `pg_restore`, one consistent snapshot of the database), with the same
//! discipline as the local backups.
//!
//! The flow: find `pg_dump` and its version ([`tool`]); read the server's
//! version and acode schema version over one connection ([`conn`]); refuse
//! a `pg_dump` older than the server; stream the archive from `pg_dump`'s
//! stdout into a hidden partial file while hashing it; fsync and rename it
//! to `acode-server-<UTC time>.pgdump`; write the manifest last
//! ([`manifest`]); then, when asked, apply retention to the server backups
//! of the folder, never to the one just written. A failure at any step
//! leaves no file that a listing takes for a finished backup.

pub mod conn;
pub mod manifest;
pub mod tool;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::{BackupError, Result};
use crate::files::{self, AtomicFile, Hashing};
use crate::prune::{self, Retention};
use conn::Server;
use manifest::{SERVER_FORMAT, SERVER_FORMAT_VERSION, ServerManifest};
use tool::PgDump;

/// How much of `pg_dump`'s stderr a failure message keeps (its end).
const STDERR_KEPT: usize = 2000;

/// What a server backup wrote, and what retention removed after it.
#[derive(Clone, Debug)]
pub struct ServerBackupOutcome {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    pub manifest_path: PathBuf,
    pub manifest: ServerManifest,
    /// Older server backups removed by the retention rules, if any given.
    pub pruned: Vec<PathBuf>,
}

/// Backs up the database at `url` into `out_dir` (created if missing) with
/// `pg_dump`, then applies `retention` to the folder's server backups.
pub fn backup_server(
    url: &str,
    out_dir: &Path,
    pg_dump: &PgDump,
    retention: Option<Retention>,
) -> Result<ServerBackupOutcome> {
    backup_server_at(url, out_dir, pg_dump, retention, Utc::now())
}

/// [`backup_server`] with the time that names the file (and that retention
/// counts from) given by the caller.
pub fn backup_server_at(
    url: &str,
    out_dir: &Path,
    pg_dump: &PgDump,
    retention: Option<Retention>,
    now: DateTime<Utc>,
) -> Result<ServerBackupOutcome> {
    if let Some(rules) = retention {
        prune::require_a_rule(rules)?;
    }
    let server = Server::parse(url)?;
    let facts = server.facts()?;
    pg_dump.check_can_dump(facts.major, &facts.version)?;

    std::fs::create_dir_all(out_dir)
        .map_err(|e| BackupError::io(format!("creating {}", out_dir.display()), e))?;
    let (path, at) = files::free_name(out_dir, now, files::server_backup_name);
    let (bytes, sha256) = dump(&server, pg_dump, &path)?;

    let manifest = ServerManifest {
        format: SERVER_FORMAT.to_owned(),
        format_version: SERVER_FORMAT_VERSION,
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: sha256.clone(),
        bytes,
        dump_format: "custom".to_owned(),
        database: server.describe(),
        schema_version: facts.schema_version,
        server_version: facts.version,
        server_version_num: facts.version_num,
        pg_dump_version: pg_dump.version.clone(),
        created_at: at.to_rfc3339_opts(SecondsFormat::Millis, true),
    };
    if let Err(e) = manifest.write_beside(&path) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }

    let pruned = match retention {
        Some(rules) => {
            let doomed: Vec<PathBuf> = prune::select(&prune::list_server(out_dir)?, rules, now)
                .into_iter()
                .filter(|p| *p != path)
                .collect();
            prune::remove(&doomed)?;
            doomed
        }
        None => Vec::new(),
    };
    Ok(ServerBackupOutcome {
        manifest_path: files::manifest_path(&path),
        path,
        bytes,
        sha256,
        manifest,
        pruned,
    })
}

/// Runs `pg_dump -Fc` and streams its output into `path` (atomically),
/// returning the archive's size and SHA-256.
fn dump(server: &Server, pg_dump: &PgDump, path: &Path) -> Result<(u64, String)> {
    let what = || format!("pg_dump of {}", server.describe());
    let mut cmd = Command::new(&pg_dump.path);
    cmd.args(["--format=custom", "--no-password", "--dbname"])
        .arg(server.conninfo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(password) = server.password() {
        cmd.env("PGPASSWORD", String::from_utf8_lossy(password).as_ref());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| BackupError::io(format!("starting {}", pg_dump.path.display()), e))?;
    // stderr is drained beside stdout, so a chatty pg_dump never blocks.
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    });

    let mut out = Hashing::new(AtomicFile::create(path)?);
    let copied = match child.stdout.take() {
        Some(mut stdout) => files::copy(&mut stdout, &mut out),
        None => Err(std::io::Error::other("pg_dump's output was not captured")),
    };
    if copied.is_err() {
        let _ = child.kill();
    }
    let status = child.wait();
    let stderr = errors.join().unwrap_or_default();
    copied.map_err(|e| BackupError::io(format!("writing {}", path.display()), e))?;
    let status = status.map_err(|e| BackupError::io(format!("waiting for {}", what()), e))?;
    if !status.success() {
        // `out` is dropped uncommitted: the partial file is removed.
        return Err(BackupError::server(
            format!("{} failed ({status})", what()),
            tail(stderr.trim(), STDERR_KEPT),
        ));
    }
    let (file, bytes, sha256) = out.finish();
    file.commit()?;
    Ok((bytes, sha256))
}

/// The last `max` bytes of `text` (at a character boundary).
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_the_end_of_stderr() {
        assert_eq!(tail("short", 100), "short");
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ééé", 3), "é");
    }
}

//! The file side of backups: names that carry their time, atomic writes
//! (temporary file, fsync, rename, fsync of the directory) so a crash never
//! leaves a file that looks complete, and SHA-256 while streaming.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use sha2::{Digest, Sha256};

use crate::error::{BackupError, Result};

const PREFIX: &str = "acode-";
const STAMP: &str = "%Y%m%dT%H%M%S%.3fZ";
/// The suffix of a backup's manifest, after the backup's own name.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// `acode-20250101T120000.123Z.db.gz` (or `.db` when not compressed).
pub fn backup_name(at: DateTime<Utc>, compressed: bool) -> String {
    let ext = if compressed { "db.gz" } else { "db" };
    format!("{PREFIX}{}.{ext}", at.format(STAMP))
}

/// The time and compression a backup's name says; `None` for any other name.
pub fn parse_backup_name(name: &str) -> Option<(DateTime<Utc>, bool)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (stamp, compressed) = match rest.strip_suffix(".db.gz") {
        Some(stamp) => (stamp, true),
        None => (rest.strip_suffix(".db")?, false),
    };
    Some((parse_stamp(stamp)?, compressed))
}

/// `acode-server-20250101T120000.123Z.pgdump`: a `pg_dump` custom-format
/// archive of the server database (compressed by pg_dump itself).
pub fn server_backup_name(at: DateTime<Utc>) -> String {
    format!("{SERVER_PREFIX}{}{SERVER_EXT}", at.format(STAMP))
}

/// The time a server backup's name says; `None` for any other name.
pub fn parse_server_backup_name(name: &str) -> Option<DateTime<Utc>> {
    parse_stamp(name.strip_prefix(SERVER_PREFIX)?.strip_suffix(SERVER_EXT)?)
}

const SERVER_PREFIX: &str = "acode-server-";
const SERVER_EXT: &str = ".pgdump";

fn parse_stamp(stamp: &str) -> Option<DateTime<Utc>> {
    // Fixed width: 8 digits, T, 6 digits, '.', 3 digits, Z.
    if stamp.len() != 20 {
        return None;
    }
    let at = NaiveDateTime::parse_from_str(stamp, STAMP).ok()?;
    Some(at.and_utc())
}

/// A name in `dir` not taken yet: `name(now)`, the time moved on by a
/// millisecond while a file (or its manifest) of that name exists.
pub fn free_name(
    dir: &Path,
    now: DateTime<Utc>,
    name: impl Fn(DateTime<Utc>) -> String,
) -> (PathBuf, DateTime<Utc>) {
    let mut at = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    loop {
        let path = dir.join(name(at));
        if !path.exists() && !manifest_path(&path).exists() {
            return (path, at);
        }
        at += chrono::Duration::milliseconds(1);
    }
}

/// Where a backup's manifest is: beside it, `<file>.manifest.json`.
pub fn manifest_path(backup: &Path) -> PathBuf {
    let mut name = backup.file_name().unwrap_or_default().to_os_string();
    name.push(MANIFEST_SUFFIX);
    backup.with_file_name(name)
}

/// A temporary sibling of `path`, hidden and named so that no backup
/// listing or prune ever takes it for a finished file.
pub fn partial_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.partial", std::process::id()))
}

/// Removes a file if it exists.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::io(format!("removing {}", path.display()), e)),
    }
}

/// Flushes a file's data to disk.
pub fn fsync(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| BackupError::io(format!("syncing {}", path.display()), e))
}

/// Renames `from` over `to` and makes the rename durable.
pub fn commit_rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| {
        BackupError::io(
            format!("renaming {} to {}", from.display(), to.display()),
            e,
        )
    })?;
    sync_dir(to)
}

/// Flushes the directory holding `path`, so a rename in it survives a crash.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Directories cannot be opened for fsync on every platform; where they
    // can (Unix), a failure is real.
    if cfg!(unix) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BackupError::io(format!("syncing {}", dir.display()), e))?;
    }
    Ok(())
}

/// A file being written under a temporary name: [`AtomicFile::commit`]
/// syncs and renames it into place; dropping it uncommitted removes it.
pub struct AtomicFile {
    temp: PathBuf,
    target: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<AtomicFile> {
        let temp = partial_path(target);
        let file = File::create(&temp)
            .map_err(|e| BackupError::io(format!("creating {}", temp.display()), e))?;
        Ok(AtomicFile {
            temp,
            target: target.to_path_buf(),
            file: Some(file),
        })
    }

    /// Syncs the data, then renames the file to its final name.
    pub fn commit(mut self) -> Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()
                .map_err(|e| BackupError::io(format!("syncing {}", self.temp.display()), e))?;
        }
        commit_rename(&self.temp, &self.target)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("file already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// A writer that counts and hashes what passes through it.
pub struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// How many bytes have passed through so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The inner writer, the byte count and the hex SHA-256.
    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex(&self.hasher.finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The size and hex SHA-256 of a file, read as a stream.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let context = || format!("reading {}", path.display());
    let mut file = File::open(path).map_err(|e| BackupError::io(context(), e))?;
    let mut sink = Hashing::new(io::sink());
    copy(&mut file, &mut sink).map_err(|e| BackupError::io(context(), e))?;
    let (_, bytes, sha) = sink.finish();
    Ok((bytes, sha))
}

/// `io::copy` with a 64 KiB buffer.
pub fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_time_and_parse_back() {
        let at = DateTime::from_timestamp_millis(1_735_732_800_123).unwrap_or_default();
        let name = backup_name(at, true);
        assert_eq!(name, "acode-20250101T120000.123Z.db.gz");
        assert_eq!(parse_backup_name(&name), Some((at, true)));
        assert_eq!(
            parse_backup_name("acode-20250101T120000.123Z.db"),
            Some((at, false))
        );
        assert_eq!(
            server_backup_name(at),
            "acode-server-20250101T120000.123Z.pgdump"
        );
        assert_eq!(parse_server_backup_name(&server_backup_name(at)), Some(at));
        assert_eq!(parse_backup_name(&server_backup_name(at)), None);
        assert_eq!(parse_server_backup_name(&name), None);
        assert_eq!(
            parse_server_backup_name("acode-server-20250101T120000.123Z.pgdump.manifest.json"),
            None
        );
        for other in [
            "acode-20250101T120000Z.db.gz",
            "acode-20250101T120000.123Z.db.gz.manifest.json",
            "pre-migrate-v1-20250101T120000.123Z.db",
            ".acode-20250101T120000.123Z.db.gz.1.partial",
            "acode-2025010XT120000.123Z.db",
        ] {
            assert_eq!(parse_backup_name(other), None, "{other}");
        }
    }

    #[test]
    fn manifests_and_partials_sit_beside_their_file() {
        let file = Path::new("/b/acode-20250101T120000.123Z.db.gz");
        assert_eq!(
            manifest_path(file),
            Path::new("/b/acode-20250101T120000.123Z.db.gz.manifest.json")
        );
        let partial = partial_path(file);
        assert_eq!(partial.parent(), Some(Path::new("/b")));
        assert!(
            partial
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        );
    }

    #[test]
    fn an_uncommitted_atomic_file_leaves_nothing() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| BackupError::io("tempdir", e))?;
        let target = dir.path().join("x");
        {
            let mut f = AtomicFile::create(&target)?;
            f.write_all(b"half").map_err(|e| BackupError::io("w", e))?;
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).map(|d| d.count()).ok(),
            Some(0)
        );
        let mut f = AtomicFile::create(&target)?;
        f.write_all(b"whole").map_err(|e| BackupError::io("w", e))?;
        f.commit()?;
        assert_eq!(std::fs::read(&target).ok().as_deref(), Some(&b"whole"[..]));
        assert_eq!(hash_file(&target)?.0, 5);
        Ok(())
    }
}

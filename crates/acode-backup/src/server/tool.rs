//! Finding `pg_dump` and knowing whether it can dump a given server.
//!
//! `pg_dump` refuses (or, for some objects, silently misses) a server of a
//! newer major version than its own, so its version is read once, with
//! `--version`, and compared with the server's `server_version_num` before
//! anything is dumped. Parsing and comparing are plain functions.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{BackupError, Result};

/// What to install when `pg_dump` is missing or too old.
const INSTALL: &str = "install the PostgreSQL client tools of the server's major version or \
                       newer (Debian/Ubuntu: apt-get install postgresql-client)";

/// A PostgreSQL major version: `15` is `(15, 0)`; before 10 the major
/// version had two parts, so 9.6 is `(9, 6)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PgMajor(pub u32, pub u32);

impl PgMajor {
    /// From `server_version_num` (`150020` is 15.20, `90624` is 9.6.24).
    pub fn from_version_num(num: i64) -> Option<PgMajor> {
        let num = u32::try_from(num).ok()?;
        match num {
            100_000.. => Some(PgMajor(num / 10_000, 0)),
            10_000.. => Some(PgMajor(num / 10_000, (num / 100) % 100)),
            _ => None,
        }
    }

    /// From a version text such as `15.20`, `9.6.24` or `17beta1`.
    pub fn from_version_text(text: &str) -> Option<PgMajor> {
        let mut parts = text.split('.').map(leading_number);
        let first = parts.next()??;
        if first >= 10 {
            return Some(PgMajor(first, 0));
        }
        Some(PgMajor(first, parts.next().flatten()?))
    }
}

impl fmt::Display for PgMajor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgMajor(major, 0) if *major >= 10 => write!(f, "{major}"),
            PgMajor(major, minor) => write!(f, "{major}.{minor}"),
        }
    }
}

fn leading_number(text: &str) -> Option<u32> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The version out of `pg_dump --version`, e.g. `15.20` from
/// `pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)`.
pub fn parse_version_output(output: &str) -> Option<String> {
    let line = output.lines().next()?;
    let rest = line.split_once(')').map_or(line, |(_, rest)| rest);
    let version = rest.split_whitespace().next()?;
    PgMajor::from_version_text(version)?;
    Some(version.to_owned())
}

/// A `pg_dump` found on the search path, with its version.
#[derive(Clone, Debug)]
pub struct PgDump {
    pub path: PathBuf,
    /// As it prints it (`15.20`).
    pub version: String,
    pub major: PgMajor,
}

impl PgDump {
    /// Looks for `pg_dump` in the directories of `search_path` (a `PATH`
    /// value: the caller passes its own, so tests can pass another) and
    /// asks it for its version.
    pub fn find(search_path: Option<&OsStr>) -> Result<PgDump> {
        let Some(path) = search_path.and_then(|p| find_executable("pg_dump", p)) else {
            return Err(BackupError::ToolUnavailable(format!(
                "pg_dump is not installed (not found on PATH): {INSTALL}"
            )));
        };
        let output = Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| BackupError::io(format!("running {} --version", path.display()), e))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let version = parse_version_output(&text)
            .filter(|_| output.status.success())
            .ok_or_else(|| {
                BackupError::ToolUnavailable(format!(
                    "{} --version printed {:?}, not a PostgreSQL version: {INSTALL}",
                    path.display(),
                    text.trim()
                ))
            })?;
        let major = PgMajor::from_version_text(&version).unwrap_or(PgMajor(0, 0));
        Ok(PgDump {
            path,
            version,
            major,
        })
    }

    /// Refuses a server newer than this `pg_dump`.
    pub fn check_can_dump(&self, server: PgMajor, server_version: &str) -> Result<()> {
        check_versions(self.major, &self.version, server, server_version)
    }
}

/// A `pg_dump` of major version `tool` can dump a server of `server` when
/// it is not older.
pub fn check_versions(
    tool: PgMajor,
    tool_version: &str,
    server: PgMajor,
    server_version: &str,
) -> Result<()> {
    if tool >= server {
        return Ok(());
    }
    Err(BackupError::ToolUnavailable(format!(
        "pg_dump {tool_version} (major {tool}) is older than the server \
         (PostgreSQL {server_version}, major {server}) and cannot dump it: {INSTALL}"
    )))
}

/// The first `dir/name` of `search_path` that is an executable file.
fn find_executable(name: &str, search_path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_come_from_the_version_number_and_text_alike() {
        assert_eq!(PgMajor::from_version_num(150_020), Some(PgMajor(15, 0)));
        assert_eq!(PgMajor::from_version_num(170_000), Some(PgMajor(17, 0)));
        assert_eq!(PgMajor::from_version_num(90_624), Some(PgMajor(9, 6)));
        assert_eq!(PgMajor::from_version_num(-1), None);
        assert_eq!(PgMajor::from_version_text("15.20"), Some(PgMajor(15, 0)));
        assert_eq!(PgMajor::from_version_text("17beta1"), Some(PgMajor(17, 0)));
        assert_eq!(PgMajor::from_version_text("9.6.24"), Some(PgMajor(9, 6)));
        assert_eq!(PgMajor::from_version_text("devel"), None);
        assert_eq!(PgMajor(9, 6).to_string(), "9.6");
        assert_eq!(PgMajor(16, 0).to_string(), "16");
    }

    #[test]
    fn the_version_is_read_from_pg_dump_output() {
        let debian = "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n";
        assert_eq!(parse_version_output(debian).as_deref(), Some("15.20"));
        assert_eq!(
            parse_version_output("pg_dump (PostgreSQL) 9.6.24\n").as_deref(),
            Some("9.6.24")
        );
        assert_eq!(
            parse_version_output("pg_dump (PostgreSQL) 18devel").as_deref(),
            Some("18devel")
        );
        assert_eq!(parse_version_output("command not found"), None);
        assert_eq!(parse_version_output(""), None);
    }

    #[test]
    fn an_older_pg_dump_is_refused_naming_both_versions() {
        assert!(check_versions(PgMajor(15, 0), "15.2", PgMajor(15, 0), "15.20").is_ok());
        assert!(check_versions(PgMajor(16, 0), "16.1", PgMajor(9, 6), "9.6.24").is_ok());
        let err = check_versions(PgMajor(14, 0), "14.9", PgMajor(15, 0), "15.20")
            .err()
            .map(|e| (e.code(), e.to_string()));
        let Some((code, message)) = err else {
            panic!("pg_dump 14 accepted for server 15");
        };
        assert_eq!(code, acode_protocol::ErrorCode::BackupToolUnavailable);
        assert!(
            message.contains("14.9") && message.contains("15.20"),
            "{message}"
        );
        assert!(message.contains("postgresql-client"), "{message}");
        assert!(check_versions(PgMajor(9, 5), "9.5.1", PgMajor(9, 6), "9.6.0").is_err());
    }

    #[test]
    fn a_search_path_without_pg_dump_says_what_to_install() {
        let empty = std::env::temp_dir().join("acode-no-such-dir-for-pg-dump");
        let err = PgDump::find(Some(empty.as_os_str())).err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("postgresql-client"), "{message}");
        assert!(PgDump::find(None).is_err());
    }
}

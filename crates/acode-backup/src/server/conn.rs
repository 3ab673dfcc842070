//! The server database as `pg_dump` and our own queries reach it.
//!
//! The `postgres://` URL is parsed once. `pg_dump` gets it back as a libpq
//! key/value string without the password, which travels in `PGPASSWORD`
//! instead: a command line is visible to every user of the machine (`ps`).
//! The facts the manifest records (server version, schema version) are read
//! over one short tokio-postgres connection.

use std::time::Duration;

use tokio_postgres::NoTls;
use tokio_postgres::config::{Config, Host, SslMode};

use super::tool::PgMajor;
use crate::error::{BackupError, Result};

/// How long connecting may take when the URL says nothing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The history table of the server schema (acode-remote's migrations).
const SERVER_HISTORY_TABLE: &str = "acode_server_schema_history";

/// A parsed database URL.
#[derive(Clone, Debug)]
pub struct Server {
    config: Config,
}

/// What the server says about itself and its acode schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFacts {
    /// `SHOW server_version` (`15.20 (Debian 15.20-0+deb12u1)`).
    pub version: String,
    /// `SHOW server_version_num` (`150020`).
    pub version_num: i64,
    pub major: PgMajor,
    /// The highest applied server migration; `None` when the database has
    /// no acode server schema.
    pub schema_version: Option<i64>,
}

impl Server {
    /// Parses `url` (`postgres://…` or a key/value string). A bad one is
    /// an invalid argument; the message never repeats the URL (it may hold
    /// a password).
    pub fn parse(url: &str) -> Result<Server> {
        let mut config: Config = url
            .parse()
            .map_err(|e| BackupError::invalid("database URL", format!("{e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("acode-backup");
        }
        Ok(Server { config })
    }

    /// `host:port/database`, for messages and the manifest (no user, no
    /// password).
    pub fn describe(&self) -> String {
        let host = self.config.get_hosts().first().map_or_else(
            || "localhost".to_owned(),
            |h| match h {
                Host::Tcp(h) => h.clone(),
                Host::Unix(p) => p.display().to_string(),
            },
        );
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self.config.get_dbname().unwrap_or("postgres");
        format!("{host}:{port}/{db}")
    }

    /// The libpq connection string for `pg_dump --dbname`, without the
    /// password.
    pub fn conninfo(&self) -> String {
        let c = &self.config;
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(h) => h.clone(),
                Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        if !hosts.is_empty() {
            pairs.push(("host", hosts.join(",")));
        }
        let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
        if !ports.is_empty() {
            pairs.push(("port", ports.join(",")));
        }
        if let Some(user) = c.get_user() {
            pairs.push(("user", user.to_owned()));
        }
        if let Some(db) = c.get_dbname() {
            pairs.push(("dbname", db.to_owned()));
        }
        if let Some(options) = c.get_options() {
            pairs.push(("options", options.to_owned()));
        }
        if let Some(name) = c.get_application_name() {
            pairs.push(("application_name", name.to_owned()));
        }
        if let Some(timeout) = c.get_connect_timeout() {
            pairs.push(("connect_timeout", timeout.as_secs().max(1).to_string()));
        }
        let ssl = match c.get_ssl_mode() {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            _ => "prefer",
        };
        pairs.push(("sslmode", ssl.to_owned()));
        let parts: Vec<String> = pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", quote(&v)))
            .collect();
        parts.join(" ")
    }

    /// The password of the URL, for `PGPASSWORD`.
    pub fn password(&self) -> Option<&[u8]> {
        self.config.get_password()
    }

    /// Connects once and reads the server's version and the acode server
    /// schema version.
    pub fn facts(&self) -> Result<ServerFacts> {
        let context = || format!("reading the server version of {}", self.describe());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BackupError::io("starting a runtime", e))?;
        runtime
            .block_on(self.read_facts())
            .map_err(|e| BackupError::server(context(), e))
    }

    async fn read_facts(&self) -> std::result::Result<ServerFacts, String> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let driver = tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT current_setting('server_version'),
                        current_setting('server_version_num')::bigint,
                        to_regclass($1) IS NOT NULL",
                &[&SERVER_HISTORY_TABLE],
            )
            .await
            .map_err(|e| e.to_string())?;
        let (version, version_num, has_schema): (String, i64, bool) =
            (row.get(0), row.get(1), row.get(2));
        let schema_version = if has_schema {
            // The table name is our own constant, never input.
            let sql = format!("SELECT max(version)::bigint FROM {SERVER_HISTORY_TABLE}");
            let row = client
                .query_one(&sql, &[])
                .await
                .map_err(|e| e.to_string())?;
            row.get::<_, Option<i64>>(0)
        } else {
            None
        };
        drop(client);
        let _ = driver.await;
        let major = PgMajor::from_version_num(version_num)
            .ok_or_else(|| format!("unexpected server_version_num {version_num}"))?;
        Ok(ServerFacts {
            version,
            version_num,
            major,
            schema_version,
        })
    }
}

/// A libpq connection-string value: quoted, with `\` and `'` escaped.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_dump_gets_everything_but_the_password() -> Result<()> {
        let s = Server::parse("postgres://bob:s3cr%27t@db.example:6543/acode?sslmode=disable")?;
        let info = s.conninfo();
        assert_eq!(
            info,
            "host='db.example' port='6543' user='bob' dbname='acode' \
             application_name='acode-backup' connect_timeout='10' sslmode='disable'"
        );
        assert!(!info.contains("s3cr"));
        assert_eq!(s.password(), Some(&b"s3cr't"[..]));
        assert_eq!(s.describe(), "db.example:6543/acode");
        Ok(())
    }

    #[test]
    fn values_are_quoted_for_libpq() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote(r"o'k\x"), r"'o\'k\\x'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn a_bad_url_is_invalid_input_without_echoing_it() {
        let err = Server::parse("postgres://u:pw@host:notaport/db").err();
        let message = err.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(!message.contains("pw@"), "{message}");
        assert_eq!(
            err.map(|e| e.code()),
            Some(acode_protocol::ErrorCode::StoreInvalidInput)
        );
    }
}

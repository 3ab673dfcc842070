//! The command line, as clap structs. Values that clap can check (privacy
//! levels, roles) are checked here and are usage errors; ids and texts are
//! checked by the store and are ACODE-STORE-002.

use std::ffi::OsString;
use std::path::PathBuf;

use acode_store::{Privacy, Role};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// acode: an offline-first store for chats and agent runs, synced later.
#[derive(Debug, Parser)]
#[command(
    name = "acode",
    version,
    disable_help_subcommand = true,
    after_help = "Diagnostics: set ACODE_LOG (e.g. ACODE_LOG=debug). Error codes: `acode help codes`."
)]
pub struct Cli {
    /// The workspace directory [default: $ACODE_WORKSPACE, else the nearest
    /// directory at or above the current one that contains `.agent/`]
    #[arg(long, global = true, value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    /// Print one JSON document instead of text
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a workspace (`.agent/config.yml`, `.agent/workspace.db`); idempotent
    Init(InitArgs),
    /// Chats: a titled conversation with a privacy level
    #[command(subcommand)]
    Chat(ChatCommand),
    /// Messages of a chat
    #[command(subcommand)]
    Msg(MsgCommand),
    /// Agent runs: sessions with their tasks, steps, tool calls and artifacts
    #[command(subcommand)]
    Runs(RunsCommand),
    /// The local database: schema and size
    #[command(subcommand)]
    Db(DbCommand),
    /// Synchronisation with the remote
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Run every health check; exit 0 Healthy, 1 Degraded, 2 Unhealthy
    Health,
    /// Export conversations, messages or runs as JSON, CSV or SQL (streamed)
    Export(ExportArgs),
    /// Differential migration of any SQLite database into PostgreSQL
    #[command(subcommand)]
    Migrate(crate::cmd::migrate::MigrateCommand),
    /// Run the sync server (`POST /v1/push`, `GET /v1/pull`, `/health`,
    /// `/metrics`) until SIGINT or SIGTERM
    Serve(ServeArgs),
    /// Server administration: the PostgreSQL database of the sync server
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Create a demo workspace with sample chats and a run
    Demo(DemoArgs),
    /// Print help for a command, or `help codes` for the error codes
    Help {
        /// A command path (`chat new`), or `codes`
        topic: Vec<String>,
    },
    /// Print the table of error codes
    Codes,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// A name for this device, shown to other devices
    #[arg(long, value_name = "N")]
    pub device_name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ChatCommand {
    /// Create a chat
    New {
        title: String,
        #[arg(long, value_enum, default_value_t = PrivacyArg::Full)]
        privacy: PrivacyArg,
    },
    /// List chats
    List,
    /// Show a chat with its messages
    Show { id: String },
    /// Change a chat's title
    Rename { id: String, title: String },
    /// Delete a chat and its messages
    Delete { id: String },
    /// Change a chat's privacy level (its messages follow)
    Privacy {
        id: String,
        #[arg(value_enum)]
        level: PrivacyArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum MsgCommand {
    /// Add a message to a chat
    Add {
        chat_id: String,
        text: String,
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
    },
    /// List a chat's messages, oldest first
    List { chat_id: String },
    /// Import messages in one transaction: each line is plain text (a user
    /// message) or a JSON object with `role` and `content`
    Import {
        chat_id: String,
        /// The file to read; `-` or nothing reads standard input
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List run sessions with their sizes
    List,
    /// Show a session with its tasks, steps, tool calls and artifacts
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Schema version, applied and pending migrations, file sizes, row counts
    Status,
    /// Apply pending migrations (after a backup when `backup.before_migrate` is on)
    Migrate,
    /// Consistent online backup: gzip file plus a manifest with its SHA-256
    Backup {
        /// The folder to write to [default: .agent/backups]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Write the plain SQLite file instead of gzip
        #[arg(long)]
        no_compress: bool,
    },
    /// Replace the database with a backup, after verifying it (a corrupt
    /// or foreign file is refused and nothing changes)
    Restore { file: PathBuf },
    /// Remove old backups; one kept by either rule stays
    #[command(group = clap::ArgGroup::new("rule").required(true).multiple(true))]
    PruneBackups {
        /// Keep backups taken in the last N days
        #[arg(long, value_name = "N", group = "rule")]
        keep_days: Option<u32>,
        /// Keep the newest N backups
        #[arg(long, value_name = "N", group = "rule")]
        keep_last: Option<usize>,
        /// The backups folder [default: .agent/backups]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Mode, queue and today's counts
    Status,
    /// Upload every due entry and download until caught up, now
    Now,
    /// Failed entries back to pending (by entry key or row id; all when none given)
    Retry {
        /// Also send entries that are waiting out a retry delay
        #[arg(long)]
        force: bool,
        ids: Vec<String>,
    },
    /// Stop syncing; changes keep queueing locally (a running worker obeys)
    Pause,
    /// Sync again after `sync pause`
    Resume,
    /// Pending and failed outbox entries
    Queue {
        /// Only failed entries, and pulled changes that could not be applied
        #[arg(long)]
        errors: bool,
    },
    /// Conflicts and where each losing version is kept
    Conflicts {
        /// Show one conflict with its losing version
        #[arg(long, value_name = "ID", conflicts_with_all = ["ack", "all"])]
        show: Option<i64>,
        /// Mark one conflict as seen
        #[arg(long, value_name = "ID", conflicts_with = "all")]
        ack: Option<i64>,
        /// Mark every conflict as seen
        #[arg(long)]
        all: bool,
    },
    /// Run the sync worker in the foreground until SIGINT or SIGTERM
    Run,
}

/// `acode admin …`: commands on the server database, not on a workspace.
/// Each takes the database as [`DatabaseArgs`].
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create or upgrade the server schema (safe to run while servers run)
    Migrate(DatabaseArgs),
    /// Tenants: the isolated groups of devices that share data
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Devices and their tokens
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Back up the server database with pg_dump (custom format), with a
    /// manifest (SHA-256, versions) and optional retention
    Backup(AdminBackupArgs),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (an existing one of that name is kept as it is)
    Add {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The tenant's name
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Add a device to a tenant and print its token, once (only its hash is kept)
    Add {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The tenant (created with `admin tenant add`)
        #[arg(long, value_name = "NAME")]
        tenant: String,
        /// A name for the device, shown in `device list`
        #[arg(long, value_name = "N")]
        name: String,
    },
    /// List devices, oldest first
    List {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Only the devices of this tenant
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
    },
    /// Revoke a device: its token stops working at once
    Revoke {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The device id (from `device add` or `device list`)
        id: String,
    },
}

/// `acode serve`. Settings come from flags or `ACODE_SERVER_*`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on
    #[arg(
        long,
        value_name = "ADDR",
        env = "ACODE_SERVER_LISTEN",
        default_value = "127.0.0.1:8787"
    )]
    pub listen: std::net::SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Redis, checked by `/health` when set
    #[arg(long, value_name = "URL", env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key
    #[arg(
        long,
        value_name = "FILE",
        env = "ACODE_SERVER_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(
        long,
        value_name = "FILE",
        env = "ACODE_SERVER_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Largest request body in bytes (larger is 413)
    #[arg(long, value_name = "N", env = "ACODE_SERVER_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most changes in one push (more is 413)
    #[arg(long, value_name = "N", env = "ACODE_SERVER_MAX_CHANGES", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_changes: u32,
    /// Seconds a call to PostgreSQL may take before the request answers 503
    #[arg(long, value_name = "S", env = "ACODE_SERVER_REQUEST_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_seconds: u64,
    /// PostgreSQL connections of this instance
    #[arg(long, value_name = "N", env = "ACODE_SERVER_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub pool_size: u32,
    /// Long-polls one device may hold open at once (one more is 429)
    #[arg(long, value_name = "N", env = "ACODE_SERVER_MAX_WAITS_PER_DEVICE", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_waits_per_device: u32,
    /// Seconds between purges of tombstones every active device has pulled past (0: never)
    #[arg(
        long,
        value_name = "S",
        env = "ACODE_SERVER_PURGE_EVERY_SECONDS",
        default_value_t = 3600
    )]
    pub purge_every_seconds: u64,
    /// Days without a pull after which a device no longer holds back the purge (it resyncs when back)
    #[arg(long, value_name = "D", env = "ACODE_SERVER_DEVICE_ACTIVE_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub device_active_days: u64,
}

/// The server database of an `admin` command.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The server database (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`)
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct AdminBackupArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The folder to write to (created if missing)
    #[arg(long, value_name = "DIR", default_value = "acode-backups")]
    pub out: PathBuf,
    /// After the backup, remove server backups in DIR older than N days
    /// (one kept by either rule stays; the new one always stays)
    #[arg(long, value_name = "N")]
    pub keep_days: Option<u32>,
    /// After the backup, keep only the newest N server backups in DIR
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_last: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the demo workspace
    #[arg(long, value_name = "DIR", default_value = "acode-demo")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(value_enum)]
    pub what: ExportWhat,
    #[arg(long, value_enum, default_value_t = ExportFormatArg::Json)]
    pub format: ExportFormatArg,
    /// Only this chat (conversations) or its messages
    #[arg(long, value_name = "ID")]
    pub chat: Option<String>,
    /// Only rows created at or after this time (RFC 3339)
    #[arg(long, value_name = "RFC3339")]
    pub since: Option<String>,
    /// Write to FILE (complete or not at all) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also export rows whose privacy is local_only
    #[arg(long)]
    pub include_local_only: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportWhat {
    Conversations,
    Messages,
    Runs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormatArg {
    Json,
    Csv,
    Sql,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PrivacyArg {
    Full,
    Redacted,
    #[value(name = "local_only")]
    LocalOnly,
}

impl From<PrivacyArg> for Privacy {
    fn from(p: PrivacyArg) -> Privacy {
        match p {
            PrivacyArg::Full => Privacy::Full,
            PrivacyArg::Redacted => Privacy::Redacted,
            PrivacyArg::LocalOnly => Privacy::LocalOnly,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    User,
    Assistant,
    System,
    Tool,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::User => Role::User,
            RoleArg::Assistant => Role::Assistant,
            RoleArg::System => Role::System,
            RoleArg::Tool => Role::Tool,
        }
    }
}

/// Parses the process arguments.
pub fn parse() -> Result<Cli, clap::Error> {
    Cli::try_parse()
}

/// Whether `--json` was asked for, read from the raw arguments so that a
/// usage error can still be reported as JSON.
pub fn json_requested(args: impl IntoIterator<Item = OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn json_is_found_before_a_double_dash_only() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(json_requested(args(&["acode", "chat", "list", "--json"])));
        assert!(!json_requested(args(&[
            "acode", "msg", "add", "X", "--", "--json"
        ])));
        assert!(!json_requested(args(&["--json"])));
    }

    #[test]
    fn privacy_values_are_the_stores_names() {
        for p in PrivacyArg::value_variants() {
            let name = p.to_possible_value().map(|v| v.get_name().to_owned());
            assert_eq!(name.as_deref(), Some(Privacy::from(*p).as_str()));
        }
    }
}

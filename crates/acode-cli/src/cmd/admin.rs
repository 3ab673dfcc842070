//! `acode admin …`: commands on the server database (no workspace needed).
//! `migrate`, `tenant` and `device` call `acode_remote` (the schema, then
//! tenants and device tokens: a token is printed once and only its hash is
//! stored). `admin backup` is a thin call into `acode_backup::server`: it
//! finds `pg_dump` on this process's `PATH`, dumps, and prints what was
//! written and what retention removed.

use std::fmt;
use std::path::PathBuf;

use acode_backup::{PgDump, Retention, backup_server};
use acode_remote::Remote;
use acode_remote::auth::{DeviceInfo, NewDevice, Tenant};
use serde::Serialize;

use super::Ctx;
use crate::cli::{AdminBackupArgs, AdminCommand, DatabaseArgs, DeviceCommand, TenantCommand};

pub fn run(ctx: &Ctx, cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Backup(args) => run_backup(ctx, args),
        AdminCommand::Migrate(db) => {
            let applied = on_server(&db, |r| async move { r.migrate().await })?;
            ctx.print(&Migrated {
                applied,
                schema_version: acode_remote::latest_schema_version(),
            })
        }
        AdminCommand::Tenant(TenantCommand::Add { database, name }) => {
            let tenant = on_server(&database, |r| async move { r.add_tenant(&name).await })?;
            ctx.print(&TenantView(tenant))
        }
        AdminCommand::Device(DeviceCommand::Add {
            database,
            tenant,
            name,
        }) => {
            let device = on_server(
                &database,
                |r| async move { r.add_device(&tenant, &name).await },
            )?;
            ctx.print(&NewDeviceView(device))
        }
        AdminCommand::Device(DeviceCommand::List { database, tenant }) => {
            let devices = on_server(&database, |r| async move {
                r.list_devices(tenant.as_deref()).await
            })?;
            ctx.print(&DevicesView(devices))
        }
        AdminCommand::Device(DeviceCommand::Revoke { database, id }) => {
            let shown = id.clone();
            on_server(&database, |r| async move { r.revoke_device(&id).await })?;
            ctx.print(&Revoked { id: shown })
        }
    }
}

/// Runs one call against the server database on a small runtime.
fn on_server<T, F, Fut>(db: &DatabaseArgs, call: F) -> anyhow::Result<T>
where
    F: FnOnce(Remote) -> Fut,
    Fut: Future<Output = acode_remote::Result<T>>,
{
    let remote = Remote::new(&db.database_url, 1)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(call(remote))?)
}

#[derive(Serialize)]
struct Migrated {
    applied: Vec<String>,
    schema_version: i64,
}

impl fmt::Display for Migrated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() {
            write!(f, "Server schema is up to date (v{})", self.schema_version)
        } else {
            write!(
                f,
                "Server schema migrated to v{}: {}",
                self.schema_version,
                self.applied.join(", ")
            )
        }
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct TenantView(Tenant);

impl fmt::Display for TenantView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.0;
        let what = if t.created {
            "created"
        } else {
            "exists already"
        };
        write!(f, "Tenant {} {what} (id {})", t.name, t.id)
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct NewDeviceView(NewDevice);

impl fmt::Display for NewDeviceView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        writeln!(
            f,
            "Device {} added to tenant {} (id {})",
            d.name, d.tenant, d.id
        )?;
        writeln!(f, "Token (shown once; only its hash is kept):")?;
        writeln!(f, "  {}", d.token)?;
        write!(
            f,
            "Give it to the device as sync.remote.token (or ACODE_SYNC_REMOTE_TOKEN)."
        )
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct DevicesView(Vec<DeviceInfo>);

impl fmt::Display for DevicesView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "No devices.");
        }
        let mut table =
            crate::output::table(["ID", "TENANT", "NAME", "TOKEN", "LAST SEEN", "REVOKED"]);
        for d in &self.0 {
            table.add_row(vec![
                d.id.clone(),
                d.tenant.clone(),
                d.name.clone(),
                (if d.has_token { "yes" } else { "direct" }).to_string(),
                d.last_seen_at.clone().unwrap_or_else(|| "never".into()),
                d.revoked_at.clone().unwrap_or_default(),
            ]);
        }
        write!(f, "{table}")
    }
}

#[derive(Serialize)]
struct Revoked {
    id: String,
}

impl fmt::Display for Revoked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device {} revoked: its token no longer works", self.id)
    }
}

#[derive(Serialize)]
struct ServerBackedUp {
    path: PathBuf,
    bytes: u64,
    sha256: String,
    manifest: PathBuf,
    database: String,
    /// `null` when the database has no acode server schema.
    schema_version: Option<i64>,
    server_version: String,
    pg_dump_version: String,
    /// Older server backups removed by `--keep-days` / `--keep-last`.
    removed: Vec<PathBuf>,
}

impl fmt::Display for ServerBackedUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Server backup written: {}", self.path.display())?;
        let schema = self
            .schema_version
            .map_or_else(|| "no acode schema".to_owned(), |v| format!("schema v{v}"));
        writeln!(
            f,
            "  {} bytes (pg_dump {}, custom format) of {}, {schema}",
            self.bytes, self.pg_dump_version, self.database
        )?;
        writeln!(f, "  server   PostgreSQL {}", self.server_version)?;
        writeln!(f, "  sha256   {}", self.sha256)?;
        write!(f, "  manifest {}", self.manifest.display())?;
        if !self.removed.is_empty() {
            write!(f, "\nRemoved {} older backup(s):", self.removed.len())?;
            for path in &self.removed {
                write!(f, "\n  {}", path.display())?;
            }
        }
        Ok(())
    }
}

/// `acode admin backup --database-url URL [--out DIR] [--keep-days N]
/// [--keep-last N]`.
fn run_backup(ctx: &Ctx, args: AdminBackupArgs) -> anyhow::Result<()> {
    let pg_dump = PgDump::find(std::env::var_os("PATH").as_deref())?;
    // Shown and reported as an absolute path, wherever it was named from.
    let dir = std::path::absolute(&args.out).unwrap_or(args.out);
    let retention = (args.keep_days.is_some() || args.keep_last.is_some()).then(|| Retention {
        keep_days: args.keep_days,
        keep_last: args
            .keep_last
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    });
    let done = backup_server(&args.database.database_url, &dir, &pg_dump, retention)?;
    ctx.print(&ServerBackedUp {
        path: done.path,
        bytes: done.bytes,
        sha256: done.sha256,
        manifest: done.manifest_path,
        database: done.manifest.database,
        schema_version: done.manifest.schema_version,
        server_version: done.manifest.server_version,
        pg_dump_version: done.manifest.pg_dump_version,
        removed: done.pruned,
    })
}

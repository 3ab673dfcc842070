//! `acode serve`: migrates the server schema (under its lock, so several
//! instances may start at once), then runs the sync server until SIGINT or
//! SIGTERM and stops gracefully.

use std::time::Duration;

use acode_server::{Server, ServerOptions, TlsFiles};

use crate::cli::ServeArgs;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let opts = ServerOptions {
        listen: args.listen,
        database_url: args.database.database_url,
        redis_url: args.redis_url,
        max_body_bytes: args.max_body_bytes,
        max_changes: args.max_changes as usize,
        request_timeout: Duration::from_secs(args.request_timeout_seconds),
        pool_size: args.pool_size as usize,
        max_waits_per_device: args.max_waits_per_device as usize,
        purge_every: (args.purge_every_seconds > 0)
            .then(|| Duration::from_secs(args.purge_every_seconds)),
        device_active_within: Duration::from_secs(args.device_active_days.saturating_mul(86_400)),
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| TlsFiles { cert, key }),
        ..ServerOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let remote = acode_remote::Remote::new(&opts.database_url, 1)?;
        remote.migrate().await?;
        drop(remote);
        let server = Server::start(opts).await?;
        let scheme = if server.is_tls() { "https" } else { "http" };
        // The one line scripts wait for: where to connect.
        println!(
            "acode sync server listening on {scheme}://{}",
            server.addr()
        );
        server.run_until(super::shutdown_signal()).await?;
        eprintln!("acode sync server stopped");
        Ok(())
    })
}

//! `acode`: the command line of an acode workspace. Parses the arguments,
//! sets up tracing, runs one command from the library and prints its result
//! (text, or one JSON document with `--json`). Exit codes: 0 success,
//! 1 failure, 2 usage error.

mod cli;
mod cmd;
mod output;
mod progress;

use std::process::ExitCode;

fn main() -> ExitCode {
    let json = cli::json_requested(std::env::args_os());
    let args = match cli::parse() {
        Ok(args) => args,
        Err(e) => return output::usage_error(&e, json),
    };
    init_tracing();
    match cmd::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => output::error(&e, json),
    }
}

/// Diagnostics go to stderr, filtered by `ACODE_LOG` (e.g. `debug`,
/// `acode_store=trace`); warnings and errors only by default.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ACODE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Fails only if a subscriber is already set, which then keeps working.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

//! jobrun: fan a heavy containerised job out over many configurations.
//!
//! The pipeline, one module each: config → plan → image → target (engine) → watch.
//! See docs/ARCHITECTURE.md.

mod agent;
mod arn;
mod aws;
mod claim;
mod cli;
mod commands;
mod config;
mod cost;
mod dispatch;
mod engine;
mod error;
mod image;
mod infra;
mod init;
mod layout;
mod notify;
mod outputs;
mod plan;
mod quota;
mod record;
mod registry;
mod report;
mod resources;
mod reuse;
mod schedule;
mod state;
mod store;
mod tls;
mod ui;
mod usage;
mod watch;
mod wire;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let filter = match cli.verbose {
        0 => "jobrun=warn",
        1 => "jobrun=debug,info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JOBRUN_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log sent to a file or a pipe stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    // Kept in every build: `jobrun build` reads it from a binary it is handed (see
    // image::agent::Mark), and the linker would drop an unreferenced static.
    std::hint::black_box(image::agent::MARK);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(error::Exit::Environment.code());
        }
    };
    let result = runtime.block_on(commands::run(cli, &matches));
    runtime.shutdown_background();
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::from(failure.exit.code())
        }
    }
}

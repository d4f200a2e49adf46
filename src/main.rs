//! jobrun: fan a heavy containerised job out over many configurations.
//!
//! The pipeline, one module each: config → plan → image → target (engine) → watch.
//! See docs/ARCHITECTURE.md.

// What both sides of the wire agree on lives in its own crate (crates/wire); its modules keep
// their names here.
use jobrun_wire::{arn, layout, record, resources, wire};
// The task side (a task's folders and what it used) is the slim agent's crate; the CLI reuses it.
use jobrun_agent::{outputs, usage};
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
mod notify;
mod plan;
mod quota;
mod registry;
mod report;
mod reuse;
mod schedule;
mod state;
mod store;
mod tls;
mod ui;
mod watch;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Inside a task (`jobrun agent`, `jobrun task -- …`): the slim agent's own parser and code,
    // so this jobrun and `jobrun-agent` read a task definition alike.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if matches!(
        args.first().and_then(|a| a.to_str()),
        Some("agent" | "task")
    ) {
        return jobrun_agent::main(args);
    }
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
    // image::agent::check), and the linker would drop an unreferenced static.
    std::hint::black_box(wire::MARK);
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

//! The slim jobrun that goes into images: what runs inside a task, and nothing else. `jobrun
//! agent` takes tasks from the job's queue (queue mode); `jobrun task -- COMMAND…` runs one
//! direct-mode task. Both run the job's command as a child, measure what it used, keep its
//! checkpoint folder, upload its output folder and write its receipt or result under the run's
//! S3 prefix (`jobrun_wire::wire`).
//!
//! It is S3, SQS, serde, chrono and tokio: no EC2, IAM, ECR, ECS, Scheduler or Auto Scaling
//! SDK, no Docker engine client, web server, terminal UI, compression or templates (its
//! `deny.toml` and a test keep it so), plain HTTP/1 to the ECS agent endpoint (`endpoint`) and
//! lexopt for its two commands (`args`). The CLI hands `jobrun agent` / `jobrun task` to
//! [`main`] here, so the full jobrun and this one behave alike in an image; the schedules'
//! dispatcher and the driver stay on the full jobrun (they submit and watch runs: all of the
//! CLI's AWS side).
//!
//! `outputs` (a task's folders, read without following links or opening special files, and
//! moved to and from S3) and `usage` (the cgroup meter) are here because the task side owns
//! them; the CLI reuses them for the local engine and for `results --download`.

pub mod agent;
mod args;
pub mod endpoint;
pub mod outputs;
pub mod usage;

use jobrun_wire::exit::Exit;
use std::ffi::OsString;
use std::process::ExitCode;

/// The names the moved modules use: the AWS crate's S3 calls and the wire crate's record.
mod aws {
    pub use jobrun_aws::s3::*;
    pub use jobrun_aws::{Aws, AwsError, op, retrying};
}
use jobrun_wire::{record, wire};

/// Runs `agent …` or `task …` (the arguments after the program's name) to its end: the exit
/// code to leave with. A failure is one `error:` line and one `hint:` line on stderr.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let invocation = match args::parse(args) {
        Ok(i) => i,
        Err(usage) => return fail(Exit::Usage, &usage.message, &usage.hint),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            let hint = "the container may be out of memory or threads";
            return fail(
                Exit::Environment,
                &format!("cannot start the async runtime: {e}"),
                hint,
            );
        }
    };
    let result = runtime.block_on(async {
        match invocation {
            args::Invocation::Agent(a) => agent::run(a).await,
            args::Invocation::Task(t) => match agent::direct::run(t).await {
                Ok(never) => match never {},
                Err(e) => Err(e),
            },
            args::Invocation::Help(text) => {
                println!("{text}");
                Ok(())
            }
            args::Invocation::Version => {
                println!(
                    "jobrun-agent {} (wire format {})",
                    env!("CARGO_PKG_VERSION"),
                    jobrun_wire::wire::WIRE
                );
                Ok(())
            }
        }
    });
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (exit, hint) = e.class();
            fail(exit, &e.to_string(), hint)
        }
    }
}

fn fail(exit: Exit, message: &str, hint: &str) -> ExitCode {
    eprintln!("error: {message}");
    if !hint.is_empty() {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(exit.code())
}

impl agent::AgentError {
    /// Its exit code and the hint printed under it.
    fn class(&self) -> (Exit, &'static str) {
        use agent::AgentError as E;
        use jobrun_aws::AwsError as A;
        match self {
            E::Argv(_) => (
                Exit::Usage,
                "e.g. JOBRUN_ENTRYPOINT='[\"/usr/bin/python3\", \"main.py\"]'",
            ),
            E::Signals(_) => (Exit::Environment, "is this a Unix system?"),
            E::Aws(A::NoRegion | A::NoCredentials(_)) => (
                Exit::Environment,
                "in ECS the task role's credentials and AWS_REGION come from the task; elsewhere set AWS_REGION and credentials",
            ),
            E::Aws(_) => (
                Exit::Environment,
                "check the task role's permissions and that the task can reach S3 and SQS",
            ),
        }
    }
}

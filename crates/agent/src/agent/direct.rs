//! `jobrun task`: how a direct-mode ECS task runs, when the job's image carries jobrun (the
//! task definition's entrypoint is `jobrun task --`, its command the task's own).
//!
//! It makes the attempt's folders (for the reduce, the map tasks' outputs downloaded first; for
//! a later attempt the checkpoint folder restored), runs the image's entrypoint + the command
//! as a child with `JOBRUN_OUTPUT_DIR` and `JOBRUN_CHECKPOINT_DIR` set and the container's
//! output as its own, keeping the checkpoint folder every `JOBRUN_CHECKPOINT_EVERY`, measuring
//! what the container uses, hands SIGTERM (StopTask, Spot) on to it, then keeps the checkpoint,
//! uploads the output folder and writes the attempt's receipt (`wire::Receipt`) under the run's prefix,
//! before the task stops: so the dispatcher, seeing the task stopped, finds the result. It exits
//! with the command's exit code; a failure of its own (folders, upload) that left no receipt
//! exits `wire::NO_RECEIPT`.

use super::AgentError;
use super::outputs::Target;
use crate::record::Stage;
use crate::wire::{NO_RECEIPT, Receipt, receipt_key};
use std::collections::BTreeMap;
use tokio::signal::unix::{SignalKind, signal};

/// What `jobrun task` is told (flags, else the task definition's environment; `args.rs`).
#[derive(Debug)]
pub struct TaskArgs {
    /// The job's bucket, where the run's outputs go.
    pub bucket: String,
    /// The image's entrypoint, as a JSON array, put before the command.
    pub entrypoint: String,
    /// The command when the task gives none, as a JSON array.
    pub default_command: String,
    pub job: String,
    pub run_id: String,
    pub index: usize,
    pub attempt: u32,
    pub stage: String,
    /// The task's command (after `--`).
    pub command: Vec<String>,
}

/// Where the container's own cgroup is mounted (cgroup namespaces: Fargate, Docker).
const CGROUP: &str = "/sys/fs/cgroup";

fn say(line: &str) {
    eprintln!("jobrun task: {line}");
}

/// Runs the task and exits with its code (this process's exit code is the task's).
pub async fn run(args: TaskArgs) -> Result<std::convert::Infallible, AgentError> {
    let argv = argv(&args)?;
    let stage = match args.stage.as_str() {
        "reduce" => Stage::Reduce,
        _ => Stage::Map,
    };
    let aws = crate::aws::Aws::load(None, None).await?;
    let s3 = aws.s3();
    let target = Target {
        s3: &s3,
        bucket: &args.bucket,
        job: &args.job,
        run_id: args.run_id.clone(),
        index: args.index.to_string(),
        stage,
    };
    let key = receipt_key(&args.job, &args.run_id, args.index, args.attempt);
    let folders = match target.prepare().await {
        Ok(f) => f,
        Err(why) => {
            say(&format!("cannot make the task's folders: {why}"));
            let receipt = Receipt {
                upload_error: Some(format!("its folders could not be made: {why}")),
                ..Receipt::default()
            };
            std::process::exit(deliver(&s3, &args.bucket, &key, &receipt, 1).await);
        }
    };
    let mut env = BTreeMap::new();
    folders.env(&mut env);
    let restored = target.restore_checkpoint(&folders, args.attempt).await;
    match &restored {
        Ok(0) => {}
        Ok(n) => say(&format!("{n} checkpoint files restored")),
        Err(e) => say(e),
    }
    let mut meter = crate::usage::Meter::start(std::path::Path::new(CGROUP));
    let code = {
        let keeping = keep_every(&target, &folders, checkpoint_every());
        tokio::pin!(keeping);
        let child = run_child(&argv, &env, &mut meter);
        tokio::select! {
            code = child => code?,
            _ = &mut keeping => unreachable!("keeping the checkpoint never ends"),
        }
    };
    // Kept however the job ended (a Spot interruption's SIGTERM too: ECS waits up to the
    // task definition's stopTimeout, 120 s, before it kills the container).
    let kept = target.keep_checkpoint(&folders).await;
    let usage = Some(meter.stop()).filter(|m| !m.is_empty());
    let mut receipt = target.upload(&folders).await;
    receipt.usage = usage;
    receipt.checkpoint = Target::checkpoint_note(restored, kept);
    if let Some(e) = &receipt.upload_error {
        say(&format!("the outputs could not be uploaded: {e}"));
    } else {
        say(&format!(
            "{} output files ({} bytes) uploaded",
            receipt.files, receipt.bytes
        ));
    }
    std::process::exit(deliver(&s3, &args.bucket, &key, &receipt, code).await)
}

/// `JOBRUN_CHECKPOINT_EVERY` (a duration), else every 10 minutes.
fn checkpoint_every() -> std::time::Duration {
    std::env::var("JOBRUN_CHECKPOINT_EVERY")
        .ok()
        .and_then(|v| jobrun_wire::durations::parse_duration(&v).ok())
        .unwrap_or(crate::wire::CHECKPOINT_EVERY)
}

/// Keeps the checkpoint folder every `every` while the job runs (never returns).
async fn keep_every(
    target: &Target<'_>,
    folders: &super::outputs::Folders,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        if let Err(e) = target.keep_checkpoint(folders).await {
            say(&e);
        }
    }
}

/// The image's entrypoint and the task's command (or the default one).
fn argv(args: &TaskArgs) -> Result<Vec<String>, AgentError> {
    let mut argv: Vec<String> =
        serde_json::from_str(&args.entrypoint).map_err(|_| AgentError::Argv("--entrypoint"))?;
    let default: Vec<String> = serde_json::from_str(&args.default_command)
        .map_err(|_| AgentError::Argv("--default-command"))?;
    argv.extend(if args.command.is_empty() {
        default
    } else {
        args.command.clone()
    });
    Ok(argv)
}

/// Writes the receipt; the exit code to leave with (`NO_RECEIPT` when it could not be written).
async fn deliver(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    receipt: &Receipt,
    code: i32,
) -> i32 {
    let body = serde_json::to_vec(receipt).expect("receipts serialise");
    match crate::aws::put_json(s3, bucket, key, body).await {
        Ok(()) => code,
        Err(e) => {
            say(&format!("cannot write the attempt's receipt: {e}"));
            NO_RECEIPT
        }
    }
}

/// The command as a child with this process's output; SIGTERM and SIGINT are passed on, and
/// the container's memory is sampled each second. Its exit code (128 + the signal for a
/// killed child, as shells say).
async fn run_child(
    argv: &[String],
    env: &BTreeMap<String, String>,
    meter: &mut crate::usage::Meter,
) -> Result<i32, AgentError> {
    let Some((program, rest)) = argv.split_first() else {
        say("there is no command to run");
        return Ok(127);
    };
    let mut child = match tokio::process::Command::new(program)
        .args(rest)
        .envs(env)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            say(&format!("cannot start {program}: {e}"));
            return Ok(127);
        }
    };
    let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AgentError::Signals)?;
    let pid = child.id().map(|p| p as i32);
    let pass_on = |sig: i32| {
        if let Some(pid) = pid {
            // SAFETY: kill(2) on the child's pid.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    };
    let mut each_second = tokio::time::interval(std::time::Duration::from_secs(1));
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = term.recv() => pass_on(libc::SIGTERM),
            _ = int.recv() => pass_on(libc::SIGINT),
            _ = each_second.tick() => meter.sample(),
        }
    };
    use std::os::unix::process::ExitStatusExt;
    Ok(match status {
        Ok(s) => s.code().or(s.signal().map(|n| 128 + n)).unwrap_or(1),
        Err(e) => {
            say(&format!("lost the command: {e}"));
            1
        }
    })
}

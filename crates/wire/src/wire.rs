//! What crosses the wire between jobrun and the jobrun inside a task: the S3 layout of a run
//! (`s3://<bucket>/jobs/<job>/runs/<run>/`, a folder `layout` places: the record copy, large
//! configurations, results and the cancel marker), the queue message one task travels as, and
//! the result record an agent writes.
//! Dispatch writes and reads these, and `jobrun agent` reads and writes them from the other side;
//! keeping them here means neither borrows the other's module.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub use crate::record::Stage;

/// The version of what crosses the wire (this module's layout and records). The jobrun in a
/// task must speak the same one as the jobrun that dispatches: `jobrun build` reads it from a
/// binary's mark (`image::agent::MARK`) before putting it into an image.
pub const WIRE: u32 = 1;

/// The mark the full jobrun carries (kept by a reference in its `main`): the wire format it
/// speaks ([`WIRE`]) and its version, readable from the bytes of a binary for any
/// architecture. A full jobrun can be every in-AWS jobrun: a task's, a queue worker's, the
/// schedules' dispatcher and the driver.
pub const MARK: &str = concat!(
    "\0jobrun-in-aws:wire=1:version=",
    env!("CARGO_PKG_VERSION"),
    "\0"
);

/// The mark of the slim agent (`jobrun-agent`): the same, and `role=agent`. It runs tasks and
/// queue workers only, so `jobrun build` puts it into job images, never into the dispatcher's.
pub const MARK_AGENT: &str = concat!(
    "\0jobrun-in-aws:wire=1:version=",
    env!("CARGO_PKG_VERSION"),
    ":role=agent\0"
);

/// The run's folder in the job's bucket (where the bucket's other folders are: `layout`).
pub use crate::layout::run_prefix;

/// The record's copy in the job's bucket.
pub fn record_key(job: &str, run_id: &str) -> String {
    format!("{}run.json", run_prefix(job, run_id))
}

/// A task's configuration too large to travel with the task.
pub fn config_key(job: &str, run_id: &str, index: usize) -> String {
    format!("{}configs/{index}.json", run_prefix(job, run_id))
}
/// Where a task's output folder goes: `outputs/<index>/` for a map task, `reduce/` for the
/// reduce.
pub fn output_prefix(
    job: &str,
    run_id: &str,
    index: impl std::fmt::Display,
    stage: Stage,
) -> String {
    match stage {
        Stage::Map => format!("{}{index}/", inputs_prefix(job, run_id)),
        Stage::Reduce => format!("{}reduce/", run_prefix(job, run_id)),
    }
}

/// Every map task's output folder, together: what the reduce reads.
pub fn inputs_prefix(job: &str, run_id: &str) -> String {
    format!("{}outputs/", run_prefix(job, run_id))
}

/// Where a task's checkpoint folder is kept between its attempts (`JOBRUN_CHECKPOINT_DIR`):
/// `checkpoints/<index>/`, restored before each later attempt starts.
pub fn checkpoint_prefix(job: &str, run_id: &str, index: impl std::fmt::Display) -> String {
    format!("{}checkpoints/{index}/", run_prefix(job, run_id))
}

/// How often the jobrun in a task keeps the checkpoint folder while the job runs (it also does
/// when the job ends or is told to stop): `JOBRUN_CHECKPOINT_EVERY`, default 10 minutes.
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// The exit code of a direct-mode attempt whose outputs could not be handled and whose receipt
/// could not be written either (the dispatcher then says so instead of "exit code 125").
pub const NO_RECEIPT: i32 = 125;

/// What the jobrun inside a direct-mode task says about an attempt's outputs.
pub fn receipt_key(job: &str, run_id: &str, index: usize, attempt: u32) -> String {
    format!("{}receipts/{index}-{attempt}.json", run_prefix(job, run_id))
}

/// An attempt's outputs as the jobrun inside the task left them: how much went up, the result
/// (or why there is none), and a failed upload's reason.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Receipt {
    pub files: u64,
    pub bytes: u64,
    /// Links and special files in the output folder, not uploaded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_error: Option<String>,
    /// What the attempt used, measured from its container's cgroup (`usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::usage::Measured>,
    /// Its checkpoint folder: how many files it began with (restored from the attempt before)
    /// and kept at its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointNote>,
}

/// What an attempt did with its checkpoint folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CheckpointNote {
    pub restored: u64,
    pub kept: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Receipt {
    /// The result as a task record keeps it.
    pub fn result(&self) -> Option<Result<Value, String>> {
        match (&self.result, &self.result_error) {
            (Some(v), _) => Some(Ok(v.clone())),
            (None, Some(e)) => Some(Err(e.clone())),
            (None, None) => None,
        }
    }
}

/// The container jobrun's task definitions run the job in.
pub const CONTAINER: &str = "job";
/// The awslogs stream prefix of jobrun's task definitions: a task's stream is
/// `<prefix>/<container>/<task id>`.
pub const LOG_STREAM_PREFIX: &str = "jobrun";

/// Where a Fargate task's log is: `cloudwatch:<group>:<stream>`, as dispatch records it and the
/// agent writes it into results.
pub fn log_pointer(group: &str, task_arn: &str) -> String {
    let task_id = task_id(task_arn);
    format!("cloudwatch:{group}:{LOG_STREAM_PREFIX}/{CONTAINER}/{task_id}")
}

/// A task ARN's last part, its id (`…:task/<cluster>/<id>`).
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

/// `(group, stream)` of a log pointer.
pub fn parse_log_pointer(p: &str) -> Option<(&str, &str)> {
    p.strip_prefix("cloudwatch:")?.split_once(':')
}

/// SQS's limit for one message, and for the payload of one batch.
pub const MESSAGE_LIMIT: usize = 1024 * 1024;
/// The largest configuration passed in `JOBRUN_CONFIG` (Linux takes at most 128 KiB per
/// environment string); larger ones go by S3 pointer even when they fit a message.
pub const CONFIG_ENV_LIMIT: usize = 100 * 1024;

/// One task, as a message in the job's queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskMessage {
    /// The message format's version.
    pub jobrun: u32,
    pub job: String,
    pub run_id: String,
    pub index: usize,
    pub count: usize,
    /// A map task, or the run's reduce (whose inputs the agent downloads first).
    #[serde(default, skip_serializing_if = "Stage::is_map")]
    pub stage: Stage,
    /// The attempt of the first delivery; each redelivery is the next attempt.
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// `s3://bucket/key` of a configuration too large for a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_url: Option<String>,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "succeeded" => Some(Outcome::Succeeded),
            "failed" => Some(Outcome::Failed),
            "cancelled" => Some(Outcome::Cancelled),
            _ => None,
        }
    }
}

/// What an agent writes when it is done with one delivery of a message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskResult {
    pub run_id: String,
    pub index: usize,
    pub attempt: u32,
    pub outcome: Outcome,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    /// No redelivery follows: the task succeeded, was cancelled, or failed for the last time
    /// (its message goes to the dead-letter queue).
    #[serde(rename = "final")]
    pub is_final: bool,
    pub receive_count: u32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `cloudwatch:<group>:<stream>` of the worker that ran it, when known.
    pub log: Option<String>,
    #[serde(default)]
    pub log_tail: Vec<String>,
    /// The worker: its ECS task ARN, or its host name.
    pub worker: String,
    /// For tasks from S3 events: the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_object: Option<String>,
    /// The task's outputs, as uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Receipt>,
}

pub fn results_prefix(job: &str, run_id: &str) -> String {
    format!("{}results/", run_prefix(job, run_id))
}

/// `…/results/<index>/<attempt>-<outcome>.json`: the outcome is in the key, so one listing
/// says which tasks are done.
pub fn result_key(job: &str, run_id: &str, index: &str, attempt: u32, outcome: Outcome) -> String {
    format!(
        "{}{index}/{attempt}-{}.json",
        results_prefix(job, run_id),
        outcome.as_str()
    )
}

/// `<index>/<attempt>-<outcome>.json` (a key with its results prefix taken off).
pub fn parse_result_key(rest: &str) -> Option<(usize, u32, Outcome)> {
    let (index, file) = rest.split_once('/')?;
    let (attempt, outcome) = file.strip_suffix(".json")?.split_once('-')?;
    Some((
        index.parse().ok()?,
        attempt.parse().ok()?,
        Outcome::parse(outcome)?,
    ))
}

/// The object whose presence tells agents that the run is cancelled.
pub fn cancel_key(job: &str, run_id: &str) -> String {
    format!("{}cancel", run_prefix(job, run_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_pointers_round_trip() {
        let p = log_pointer("/jobrun/wc", "arn:aws:ecs:us-east-1:1:task/c/abc123");
        assert_eq!(p, "cloudwatch:/jobrun/wc:jobrun/job/abc123");
        assert_eq!(
            parse_log_pointer(&p),
            Some(("/jobrun/wc", "jobrun/job/abc123"))
        );
    }

    #[test]
    fn result_keys_round_trip() {
        let k = result_key("wc", "r1", "12", 3, Outcome::Failed);
        assert_eq!(k, "jobs/wc/runs/r1/results/12/3-failed.json");
        let rest = k.strip_prefix(&results_prefix("wc", "r1")).unwrap();
        assert_eq!(parse_result_key(rest), Some((12, 3, Outcome::Failed)));
        assert_eq!(parse_result_key("12/3-odd.json"), None);
        assert_eq!(parse_result_key("x/3-failed.json"), None);
    }
}

//! `jobrun.toml` as written: one struct per section, parsed strictly (unknown keys are errors),
//! and parse errors turned into `file:line: key: message`. Nothing here applies a default or
//! checks a value against another; `resolve` does that.

use super::ConfigError;
use super::job::{
    CapacityKind, CostSpec, DispatchMode, Driver, Goal, NotifyEvent, Overlap, PolicyStatement,
    ReduceWhen, RetryExitCodes, TargetKind, parse_duration,
};
use crate::resources::{MemoryMib, Vcpu};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A command as written in `jobrun.toml`: an argv array, or a string run by `/bin/sh -c`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum CommandSpec {
    Argv(Vec<String>),
    Shell(String),
}

impl CommandSpec {
    pub fn argv(&self) -> Vec<String> {
        match self {
            CommandSpec::Argv(v) => v.clone(),
            CommandSpec::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub job: JobSection,
    #[serde(default)]
    pub image: ImageSection,
    #[serde(default)]
    pub resources: ResourcesSection,
    #[serde(default)]
    pub run: RunSection,
    #[serde(default)]
    pub ecr: EcrSection,
    #[serde(default)]
    pub ecs: EcsSection,
    #[serde(default)]
    pub aws: AwsSection,
    #[serde(default)]
    pub queue: QueueSection,
    #[serde(default)]
    pub schedule: ScheduleSection,
    #[serde(default)]
    pub notify: NotifySection,
    pub reduce: Option<ReduceSection>,
    /// `[cost]` (checked by `resolve`).
    #[serde(default)]
    pub cost: CostSpec,
    #[serde(default)]
    pub results: ResultsSection,
}

/// `[results]`: which result key decides who won, and which way.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResultsSection {
    pub metric: Option<String>,
    pub goal: Option<Goal>,
    /// Configuration keys whose values are repeats, not choices (`["seed"]`): results that
    /// differ only in them are one configuration, judged by their mean.
    #[serde(default)]
    pub group: Vec<String>,
}

/// `[reduce]`: a task run once after the map tasks, reading their outputs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReduceSection {
    pub command: CommandSpec,
    /// A local image to run the reduce in (default: the job's image; local target only).
    pub image: Option<String>,
    /// "all-succeeded" (default) or "always".
    pub when: Option<ReduceWhen>,
}

/// `[notify]`: who hears how a run went.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// A URL that gets a JSON POST (Slack's incoming webhooks read its `text`).
    pub webhook: Option<String>,
    /// An SNS topic ARN to publish to.
    pub sns_topic: Option<String>,
    /// Which events: "failure", "success", "start", "skipped" (default failure and success).
    pub on: Option<Vec<NotifyEvent>>,
}

/// `[schedule]`: how unattended submits behave.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// While another run of the job is active: "allow", "skip" or "replace" (default: skip
    /// with `submit --key`, else allow).
    pub overlap: Option<Overlap>,
}

/// `[queue]`: queue mode (`[ecs] mode = "queue"`): an SQS queue feeding an autoscaled service.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QueueSection {
    /// Receives before a message goes to the dead-letter queue (default 3).
    pub max_receive_count: Option<u32>,
    /// The most workers the service scales out to (default 10).
    pub max_workers: Option<u32>,
    /// A worker with nothing to do for this long exits (default 15m: about when target
    /// tracking scales a drained service in, so the service does not restart idle workers).
    #[serde(default, with = "opt_duration")]
    pub idle_exit: Option<Duration>,
    /// The queue's visibility timeout (default: the job's timeout plus 5 minutes, at most 12h);
    /// the agent extends it while a task runs.
    #[serde(default, with = "opt_duration")]
    pub visibility: Option<Duration>,
    /// `s3://bucket/prefix/`: every object created there becomes one task.
    pub s3_trigger: Option<String>,
    /// SendMessageBatch calls in flight at once (default 16).
    pub send_concurrency: Option<usize>,
    /// Moved to `[image] agent`; read only to say so.
    pub agent_binaries: Option<toml::Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AwsSection {
    pub region: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EcsSection {
    pub cluster: Option<String>,
    pub subnets: Option<Vec<String>>,
    pub security_groups: Option<Vec<String>>,
    pub assign_public_ip: Option<bool>,
    pub log_retention_days: Option<i32>,
    pub bucket: Option<String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Customer-managed KMS keys (ARNs) the secrets are encrypted with.
    #[serde(default)]
    pub secrets_kms_keys: Vec<String>,
    #[serde(default)]
    pub task_policy: Vec<PolicyStatement>,
    /// "spot" (default: Fargate Spot, on-demand when Spot has no capacity) or "on-demand".
    pub capacity: Option<CapacityKind>,
    /// The first N tasks of a run go on on-demand Fargate whatever `capacity` says.
    pub on_demand_base: Option<usize>,
    /// Fall back to on-demand when Spot has no capacity (default true).
    pub spot_fallback: Option<bool>,
    /// RunTask calls per second (AWS: 20, burst and sustained).
    pub run_task_rate: Option<u32>,
    /// Fargate task launches: burst, then per second (AWS: 100, then 20).
    pub launch_burst: Option<u32>,
    pub launch_rate: Option<u32>,
    /// DescribeTasks calls per second jobrun allows itself while watching (AWS: 20 sustained).
    pub describe_rate: Option<u32>,
    /// S3 prefixes (`s3://bucket/prefix/`) the task role may read: what `submit --from-s3` lists.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// "direct" (default: one RunTask per task) or "queue" (SQS + autoscaled workers).
    pub mode: Option<DispatchMode>,
    /// "aws" (default: the run goes on in AWS without this machine) or "here".
    pub driver: Option<Driver>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EcrSection {
    pub repository_prefix: Option<String>,
    pub keep_images: Option<u32>,
    pub scan_on_push: Option<bool>,
    pub registry_endpoint: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JobSection {
    pub name: String,
    pub target: Option<TargetKind>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ImageSection {
    pub dockerfile: Option<PathBuf>,
    pub context: Option<PathBuf>,
    pub platform: Option<String>,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    pub pre_build: Option<String>,
    pub registry: Option<String>,
    /// The jobrun to put into ECS images: an agent image reference, or a static Linux jobrun
    /// per architecture (`{ amd64 = "PATH", arm64 = "PATH" }`).
    pub agent: Option<AgentValue>,
    /// How `push` compresses layers: zstd (ECS jobs pushing to ECR) or gzip (the default
    /// for other registries, which every runtime pulls).
    pub compression: Option<crate::registry::Compression>,
}

/// `[image] agent` as written.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum AgentValue {
    Image(String),
    Files(BTreeMap<String, PathBuf>),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSection {
    pub cpu: Option<Vcpu>,
    pub memory: Option<MemoryMib>,
    pub ephemeral_storage: Option<u32>,
    /// How far a retry after an out-of-memory kill may grow a task (default: twice `memory`).
    pub max_memory: Option<MemoryMib>,
    /// GPUs per task (none: 0).
    pub gpu: Option<u32>,
    /// Which GPU (`l4`, `a10g`, `t4`, …: EC2's accelerator names).
    pub gpu_type: Option<String>,
    /// EC2 instance types a task may run on (`g6.xlarge`, `g6.*`).
    #[serde(default)]
    pub instance_types: Vec<String>,
    /// How long an idle Managed Instance waits for the next task before it is retired.
    #[serde(default, with = "opt_duration")]
    pub instance_idle: Option<Duration>,
    /// `"auto"`: each run's size is learned from the job's last measured run.
    pub size: Option<super::job::SizeRule>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    pub command: Option<CommandSpec>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, with = "opt_duration")]
    pub timeout: Option<Duration>,
    pub max_attempts: Option<u32>,
    pub concurrency: Option<usize>,
    pub retry_exit_codes: Option<RetryExitCodes>,
    /// `false`: an ECS job's tasks keep no outputs, so its image needs no jobrun.
    pub outputs: Option<bool>,
    /// `true`: every submit reuses earlier runs' tasks with the same key (`submit --reuse`).
    pub reuse: Option<bool>,
    /// How often the jobrun in an ECS task keeps `JOBRUN_CHECKPOINT_DIR` while the job runs.
    #[serde(default, with = "opt_duration")]
    pub checkpoint_every: Option<Duration>,
}

mod opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

/// Turns a toml error into `file:line: key: message`, naming the dotted key the error points at.
pub(super) fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let (line, key) = match e.span() {
        Some(span) => {
            let line_idx = text[..span.start.min(text.len())].matches('\n').count();
            (line_idx + 1, key_at(text, line_idx))
        }
        None => (1, None),
    };
    let message = e.message().trim().replace('\n', " ");
    ConfigError::Parse {
        path: path.to_path_buf(),
        line,
        key: key.map(|k| format!("{k}: ")).unwrap_or_default(),
        message,
    }
}

/// The dotted key on a given line: the nearest `[table]` header above it plus the line's own key.
fn key_at(text: &str, line_idx: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line_idx)?.trim();
    let header = |l: &str| {
        let l = l.trim();
        (l.starts_with('[') && l.ends_with(']'))
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    };
    if let Some(h) = header(here) {
        return Some(h);
    }
    let own = here
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())?;
    let table = lines[..line_idx].iter().rev().find_map(|l| header(l));
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{own}"),
        _ => own,
    })
}

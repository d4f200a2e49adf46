//! The settings a run record keeps, owned by the record: these are schema 1 of `run.json`,
//! which other machines and later jobrun versions read back from S3 and the state folder, so
//! their spelling changes only with the schema (the golden record in `testdata/` must read
//! back unchanged). `config` resolves a job file into them and `cost` prices with them; neither
//! owns them, so a field renamed in either cannot change the records silently.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityKind {
    Spot,
    OnDemand,
}

/// Where ECS tasks get their capacity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Capacity {
    pub kind: CapacityKind,
    pub on_demand_base: usize,
    pub spot_fallback: bool,
}

/// AWS's published limits that dispatch and watch pace themselves to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rates {
    pub run_task_rate: u32,
    pub launch_burst: u32,
    pub launch_rate: u32,
    pub describe_rate: u32,
}

/// What a run tells `[notify]` about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    /// The run ended and not every task succeeded (failed or cancelled).
    Failure,
    /// The run ended and every task succeeded.
    Success,
    /// The run was made.
    Start,
    /// A submit started nothing (overlap = skip).
    Skipped,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Failure => "failure",
            NotifyEvent::Success => "success",
            NotifyEvent::Start => "start",
            NotifyEvent::Skipped => "skipped",
        }
    }
}

/// Where a run's events go, kept in the run's record so whoever ends the run (an attached
/// submit, a background driver, `watch` on another machine) can send them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns_topic: Option<String>,
    pub on: Vec<NotifyEvent>,
    /// The AWS profile of `[aws]` the topic is published with (`AWS_PROFILE` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl NotifySpec {
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.on.contains(&event)
    }
}

/// What a sweep is run for: the result key that decides which configuration won, and whether
/// smaller or larger wins (`[results] metric` / `goal`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// A key of the tasks' results (`loss`, or `eval.loss` for a nested one).
    pub metric: String,
    #[serde(default)]
    pub goal: Goal,
    /// Configuration keys that are repeats (`seed`): tasks that differ only in them are one
    /// configuration, judged by the mean of their values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<String>,
}

impl Objective {
    /// The objective a user names: `metric` as typed (`loss`, or `result.loss` as `results`
    /// shows the column), smaller wins unless `goal` says otherwise, no group.
    pub fn named(metric: &str, goal: Option<Goal>) -> Objective {
        Objective {
            metric: metric.strip_prefix("result.").unwrap_or(metric).to_string(),
            goal: goal.unwrap_or_default(),
            group: vec![],
        }
    }
}

/// `[results] group` / `--group` keys as configuration keys (`config.seed` is `seed`), each
/// a non-empty key named once.
pub fn group_keys(keys: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = vec![];
    for k in keys.iter().flat_map(|k| k.split(',')) {
        let k = k.trim();
        let k = k.strip_prefix("config.").unwrap_or(k);
        if k.is_empty() || k.starts_with('.') || k.ends_with('.') {
            return Err(format!(
                "results.group holds configuration keys, e.g. [\"seed\"]; `{k}` is none"
            ));
        }
        if !out.iter().any(|o| o == k) {
            out.push(k.to_string());
        }
    }
    Ok(out)
}

/// Whether the smallest or the largest value of the metric wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    #[default]
    Minimize,
    Maximize,
}

/// When a run's reduce task runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReduceWhen {
    /// Once every map task has succeeded (else it is skipped, and `retry --failed` brings it back).
    #[default]
    AllSucceeded,
    /// Once every map task has ended, whatever their outcome.
    Always,
}

/// Which failed exits earn another attempt: any failure, or only these exit codes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RetryExitCodes {
    /// `"any"`
    Any(AnyWord),
    Codes(Vec<i64>),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum AnyWord {
    Any,
}

impl Default for RetryExitCodes {
    fn default() -> Self {
        RetryExitCodes::Any(AnyWord::Any)
    }
}

impl RetryExitCodes {
    pub fn none() -> Self {
        RetryExitCodes::Codes(vec![])
    }
    pub fn is_any(&self) -> bool {
        matches!(self, RetryExitCodes::Any(_))
    }
    pub fn allows(&self, code: i64) -> bool {
        match self {
            RetryExitCodes::Any(_) => true,
            RetryExitCodes::Codes(c) => c.contains(&code),
        }
    }
}

/// The prices a run is costed with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Prices {
    pub vcpu_hour: f64,
    pub gb_hour: f64,
    /// Per GB-hour of ephemeral storage beyond 20 GB.
    pub storage_gb_hour: f64,
    /// Per hour of a public IPv4 address (records from before: 0, as they were costed).
    #[serde(default)]
    pub public_ipv4_hour: f64,
    /// The Spot discount assumed: a range (low, high), or one value twice.
    pub spot_discount: (f64, f64),
    /// Where the prices come from, for people ("us-east-1 prices of 2026-11-01, arm").
    pub source: String,
    /// On ECS Managed Instances: the instance type the tasks are priced on (the price above is
    /// a task's share of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstancePrice>,
}

/// The EC2 instance a Managed Instances run is priced on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstancePrice {
    /// `g6.xlarge`.
    pub kind: String,
    /// On-demand, with the management fee, USD per hour.
    pub hour: f64,
    /// How many of the run's tasks one instance holds at once.
    pub tasks: u32,
    /// The instance's vCPUs, which EC2's vCPU quotas count.
    pub vcpu: u32,
}

/// One attempt as Fargate bills it: the seconds from image pull (or start) to stop, and
/// whether it ran on Spot.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Bill {
    pub attempt: u32,
    pub secs: f64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spot: bool,
    /// The size it ran at, when not the run's (a retry after an out-of-memory kill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<TaskSize>,
    /// What it used (its peak memory, its CPU time), where it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::usage::Measured>,
}

/// How long a run's tasks were expected to take when it was submitted (the median of an
/// earlier run's successful tasks), so its end can say how far that was off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Expected {
    pub median_secs: f64,
    /// "run <id> (<n> tasks, same image)".
    pub from: String,
}

/// A run's size learned from an earlier run (`[resources] size = "auto"`): which run, its
/// highest measured peak, and the size the job configures (its task definition's).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LearnedSize {
    pub from_run: String,
    pub peak_mib: f64,
    pub configured: TaskSize,
    /// Tasks sized by their own configuration's peaks (the same key ran there) rather than
    /// the run's.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub by_task: usize,
}

fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

/// A task size other than the run's: what an out-of-memory retry runs at.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct TaskSize {
    pub cpu: f64,
    pub memory_mib: u32,
}

impl TaskSize {
    /// Its vCPU in ECS's CPU units (1 vCPU = 1024).
    pub fn cpu_units(self) -> u32 {
        (self.cpu * 1024.0).round() as u32
    }
}

impl std::fmt::Display for TaskSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let memory = crate::resources::MemoryMib(self.memory_mib);
        write!(f, "{} vCPU / {memory}", self.cpu)
    }
}

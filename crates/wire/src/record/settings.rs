//! A run's settings: what the job said (and submit learned) when the run was made, kept in
//! its record so every machine that watches it later acts the same way.

use super::schema::{self, NotifySpec, Objective, Prices, ReduceWhen, RetryExitCodes};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSettings {
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub concurrency: usize,
    pub cpu: f64,
    pub memory_mib: u32,
    /// How far an out-of-memory retry may grow a task (`[resources] max_memory`; records of
    /// older jobruns: twice `memory_mib`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_mib: Option<u32>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Which non-zero exits are retried within `max_attempts` (interruptions always are).
    #[serde(default)]
    pub retry_exit_codes: RetryExitCodes,
    /// `[notify]` as it was at submit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifySpec>,
    /// `[reduce]` as it was at submit (the reduce task itself is the run's last task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduce: Option<ReduceSettings>,
    /// Ephemeral storage per task, GiB.
    #[serde(default = "default_storage")]
    pub storage_gb: u32,
    /// Its tasks have public IPv4 addresses, which AWS bills (records from before: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public_ipv4: bool,
    /// The Fargate prices the run is costed with (records from before: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<Prices>,
    /// Fired by a schedule: a dispatcher task ran alongside it for as long as it took.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dispatched: bool,
    /// `[results]`: the metric whose best value names the winning configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<Objective>,
    /// `[resources] gpu`: GPUs per task (a local task gets the engine's GPUs).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpu: u32,
    /// `[resources] size = "auto"`: the size above (`cpu`, `memory_mib`) was learned from an
    /// earlier run's measured peaks, not the one the job's task definition has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<schema::LearnedSize>,
    /// What its tasks were expected to take, learned from an earlier run (none: nothing to
    /// learn from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<schema::Expected>,
    /// `[run] checkpoint_every`, seconds (none: the jobrun in the task's own 10 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every_secs: Option<u64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn default_storage() -> u32 {
    20
}

/// When the run's reduce task runs, and in which image when not the run's own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReduceSettings {
    pub when: ReduceWhen,
    /// The engine's id of `reduce.image` (local runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

//! The resolved job: every setting with its default applied and its value checked, as the
//! commands use it. Also the value types and rules shared by the file, the flags and the
//! environment (durations, S3 URLs, job names, platforms).

pub use super::arch::Arch;
pub use crate::record::schema::{
    Capacity, CapacityKind, Goal, NotifyEvent, NotifySpec, Objective, Rates, ReduceWhen,
    RetryExitCodes,
};
use crate::resources::{MemoryMib, Vcpu};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The local Docker engine (no AWS account needed).
    #[default]
    Local,
    /// AWS Fargate (images are built for linux/arm64 and pushed to ECR by default).
    Ecs,
}

/// How ECS tasks are started: one RunTask per task, or through the job's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DispatchMode {
    #[default]
    Direct,
    Queue,
}

/// Where an ECS run is driven (retries, waits, timeouts, the reduce, the end's notice): by
/// jobrun's driver in AWS (the job's dispatcher task, kept by its ECS service), or by a jobrun
/// on the machine that submitted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    #[default]
    Aws,
    Here,
}

/// Queue mode's settings, validated.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueueSpec {
    pub max_receive_count: u32,
    pub max_workers: u32,
    #[serde(with = "secs")]
    pub idle_exit: Duration,
    #[serde(with = "secs")]
    pub visibility: Duration,
    /// `(bucket, prefix)` whose ObjectCreated events feed the queue.
    pub s3_trigger: Option<(String, String)>,
    pub send_concurrency: usize,
}

/// An IAM statement the job's own code needs (e.g. reading another bucket), added to the task role.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyStatement {
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// The AWS side of a job (`jobrun up`): what to reuse and what to make.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EcsSpec {
    /// An existing cluster to use (never deleted by `down`); `None`: jobrun makes `jobrun-<job>`.
    pub cluster: Option<String>,
    /// Configured subnets; `None`: the default VPC's subnets.
    pub subnets: Option<Vec<String>>,
    /// Configured security groups; `None`: an egress-only group jobrun makes.
    pub security_groups: Option<Vec<String>>,
    pub assign_public_ip: bool,
    pub log_retention_days: i32,
    /// An existing bucket to use (never deleted by `down`); `None`: jobrun makes one.
    pub bucket: Option<String>,
    /// Environment name → Secrets Manager ARN, SSM parameter ARN, or SSM parameter name (`/…`).
    pub secrets: BTreeMap<String, String>,
    /// KMS keys (ARNs) the execution role may decrypt the secrets with.
    pub secrets_kms_keys: Vec<String>,
    pub task_policy: Vec<PolicyStatement>,
    pub capacity: Capacity,
    pub rates: Rates,
    /// `(bucket, prefix)` pairs the task role may read.
    pub inputs: Vec<(String, String)>,
    pub mode: DispatchMode,
    /// Who drives a run: the driver in AWS (default) or this machine.
    pub driver: Driver,
    pub queue: QueueSpec,
}

/// `s3://bucket/prefix` → `(bucket, prefix)`.
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("`{url}` is not an s3://bucket/prefix URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !valid {
        return Err(format!("`{url}`: `{bucket}` is not a valid bucket name"));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct AwsSpec {
    pub region: Option<String>,
    pub profile: Option<String>,
}

pub use jobrun_wire::durations::parse_duration;

/// What a submit does while another run of the job is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// Start anyway.
    Allow,
    /// Start nothing; say which run is active (exit 0).
    Skip,
    /// Cancel the active run, then start.
    Replace,
}

/// `[cost]`: the prices to use instead of the table's (USD per hour), and a limit per run. The
/// file's section and the job's setting alike: `resolve` only checks it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CostSpec {
    pub vcpu_hour: Option<f64>,
    pub gb_hour: Option<f64>,
    pub storage_gb_hour: Option<f64>,
    /// The Spot discount to assume (0.7 = 70 % off on-demand) instead of the table's range.
    pub spot_discount: Option<f64>,
    /// A run whose estimate is above this many dollars is refused.
    pub max_per_run: Option<f64>,
}

/// `[reduce]`: one task after the map tasks, with their outputs as its inputs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReduceSpec {
    pub command: Vec<String>,
    /// Another local image to reduce in (default: the job's image).
    pub image: Option<String>,
    pub when: ReduceWhen,
}

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub name: String,
    /// The folder that holds `jobrun.toml`; relative paths in the file are relative to it.
    pub dir: PathBuf,
    pub file: PathBuf,
    pub target: TargetKind,
    pub image: ImageSpec,
    pub resources: Resources,
    pub run: RunSpec,
    pub ecs: EcsSpec,
    pub aws: AwsSpec,
    /// `[schedule] overlap`, when set.
    pub overlap: Option<Overlap>,
    /// `[notify]`, when it names a webhook or a topic.
    pub notify: Option<NotifySpec>,
    /// `[reduce]`, when the job has one.
    pub reduce: Option<ReduceSpec>,
    /// `[cost]`.
    pub cost: CostSpec,
    /// `[results]`: what decides which configuration won, when the job says.
    pub results: Option<Objective>,
}

impl Job {
    /// The ECR repository the job's image goes to (`<repository_prefix>/<job>`), when its
    /// registry is ECR: what `push` makes and `down` removes.
    pub fn ecr_repository(&self) -> Option<String> {
        match &self.image.registry {
            RegistrySpec::Ecr {
                repository_prefix, ..
            } => Some(ecr_repository_name(repository_prefix, &self.name)),
            _ => None,
        }
    }
}

/// `<repository_prefix>/<job>`: the one spelling of a job's ECR repository.
pub fn ecr_repository_name(repository_prefix: &str, job: &str) -> String {
    format!("{}/{job}", repository_prefix.trim_matches('/'))
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageSpec {
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    pub platform: Platform,
    pub build_args: BTreeMap<String, String>,
    pub pre_build: Option<String>,
    /// Where `push` sends the image.
    pub registry: RegistrySpec,
    /// Where `build` takes the jobrun it puts into ECS images.
    #[serde(skip_serializing_if = "crate::image::agent::AgentSpec::is_default")]
    pub agent: crate::image::agent::AgentSpec,
    /// How `push` compresses the layers (and so which manifest it writes).
    pub compression: crate::registry::Compression,
}

/// Where images are pushed: ECR (the default for the ecs target), any OCI registry
/// (`host[:port]/namespace`), or nowhere yet.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RegistrySpec {
    None,
    Ecr {
        /// The repository is `<repository_prefix>/<job>`.
        repository_prefix: String,
        /// The lifecycle policy of a repository jobrun creates keeps this many images.
        keep_images: u32,
        scan_on_push: bool,
        /// Push through this registry host instead of the endpoint ECR's token names (a
        /// pull-through proxy or a private endpoint; the tests use a loopback registry).
        registry_endpoint: Option<String>,
    },
    Oci {
        host: String,
        /// The path under the host; the repository is `<namespace>/<job>`.
        namespace: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    pub cpu: Vcpu,
    pub memory: MemoryMib,
    /// GiB, when the job asks for more than the 20 every Fargate task has.
    pub ephemeral_storage: Option<u32>,
    /// The largest memory an out-of-memory retry may run a task at (a Fargate size).
    pub max_memory: MemoryMib,
    /// GPUs per task: locally the engine's GPUs; on ECS, Managed Instances (Fargate has none).
    #[serde(skip_serializing_if = "is_zero")]
    pub gpu: u32,
    /// The GPU asked for, as EC2 names accelerators (`l4`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// The EC2 instance types a task may run on (ECS Managed Instances).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instance_types: Vec<String>,
    /// How long an idle Managed Instance is kept for the next task (ECS: `scaleInAfter`).
    #[serde(with = "secs")]
    pub instance_idle: Duration,
    /// `auto`: a run's size is the smallest Fargate size above the job's last measured peaks
    /// (cpu and memory above are the first run's, and the task definition's).
    #[serde(skip_serializing_if = "SizeRule::is_fixed")]
    pub size: SizeRule,
}

/// How a run's task size is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeRule {
    /// `cpu` and `memory` as configured.
    #[default]
    Fixed,
    /// Learned from the last run's measured peaks, with a margin.
    Auto,
}

impl SizeRule {
    pub fn is_fixed(&self) -> bool {
        *self == SizeRule::Fixed
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Resources {
    /// Whether the job needs machines Fargate does not have (a GPU, an instance type): on ECS,
    /// Managed Instances.
    pub fn beyond_fargate(&self) -> bool {
        self.gpu > 0 || !self.instance_types.is_empty()
    }
}

impl Job {
    /// Whether the job's tasks run on ECS Managed Instances (EC2 instances ECS launches and
    /// retires) rather than Fargate: an ECS job that needs a GPU or names instance types.
    pub fn managed_instances(&self) -> bool {
        self.target == TargetKind::Ecs && self.resources.beyond_fargate()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSpec {
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    #[serde(with = "secs")]
    pub timeout: Duration,
    pub max_attempts: u32,
    pub concurrency: usize,
    pub retry_exit_codes: RetryExitCodes,
    /// Whether an ECS job's tasks keep their outputs (through the jobrun in the image).
    pub outputs: bool,
    /// Whether a submit reuses earlier runs' tasks with the same key by default.
    pub reuse: bool,
    /// How often the jobrun in an ECS task keeps the checkpoint folder (none: every 10
    /// minutes, and when the job ends or is told to stop).
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub checkpoint_every: Option<Duration>,
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// `linux/<arch>`, as Docker and OCI spell platforms: Fargate runs Linux only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Platform {
    pub arch: Arch,
}

impl From<Platform> for String {
    fn from(p: Platform) -> String {
        p.to_string()
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Self::OS, self.arch)
    }
}

impl Platform {
    pub const OS: &'static str = "linux";

    /// `linux/ARCH[/variant]`, ARCH in Docker's or Rust's spelling.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let arch = match parts.as_slice() {
            ["linux", a] | ["linux", a, _] => *a,
            _ => return Err(format!("platform `{s}` is not of the form linux/ARCH")),
        };
        match Arch::parse(arch) {
            Some(arch) => Ok(Platform { arch }),
            None => Err(format!(
                "platform `{s}`: architecture `{arch}` is not supported (use amd64 or arm64)"
            )),
        }
    }

    /// The machine jobrun runs on, as a Docker platform.
    pub fn host() -> Self {
        Arch::host().into()
    }
}

impl From<Arch> for Platform {
    fn from(arch: Arch) -> Platform {
        Platform { arch }
    }
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Job names become image names, container labels and AWS resource names: keep them to what all accept.
pub fn validate_job_name(name: &str) -> Result<(), String> {
    // Every name jobrun makes from it must pass its service's rule (`infra::Names::check`):
    // ECR repositories take lowercase words joined by single separators, SQS and ECS take no
    // '.', and 40 leaves room in IAM's 64 characters for `jobrun-<name>-execution`.
    let word = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    if name.len() <= 40 && name.split(['-', '_']).all(word) {
        Ok(())
    } else {
        Err(format!(
            "job.name `{name}` must be 1-40 characters: words of a-z and 0-9 joined by single '-' or '_' (no separator at either end), as ECR, SQS, ECS and IAM names allow"
        ))
    }
}

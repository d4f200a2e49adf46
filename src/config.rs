//! `jobrun.toml`: the job's settings, layered as environment (`JOBRUN_*`) < file < flags.
//!
//! The file is parsed strictly (unknown keys and type errors name the key, file and line), then the
//! [`Overrides`] (one clap struct, filled from flags or from the environment) are laid over it and
//! everything resolves into a [`Job`], validated (Fargate cpu/memory table included) before any
//! command touches the engine.

use crate::resources::{MemoryMib, Vcpu, validate_fargate};
use clap::parser::ValueSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const FILE_NAME: &str = "jobrun.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no {FILE_NAME} in {0}")]
    NotFound(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}{message}")]
    Parse {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

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

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Local => "local",
            TargetKind::Ecs => "ecs",
        }
    }
}

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

// ----- the file, as written -------------------------------------------------------------------

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
    /// Paths of prebuilt agent binaries by architecture (`amd64`, `arm64`), for images whose
    /// platform is not this machine's; default: this jobrun itself for its own architecture.
    #[serde(default)]
    pub agent_binaries: BTreeMap<String, PathBuf>,
}

/// How ECS tasks are started: one RunTask per task, or through the job's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DispatchMode {
    #[default]
    Direct,
    Queue,
}

/// Queue mode's settings, validated.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueueSpec {
    pub max_receive_count: u32,
    pub max_workers: u32,
    pub idle_exit: Duration,
    pub visibility: Duration,
    /// `(bucket, prefix)` whose ObjectCreated events feed the queue.
    pub s3_trigger: Option<(String, String)>,
    pub send_concurrency: usize,
    pub agent_binaries: BTreeMap<String, PathBuf>,
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
}

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
    pub task_policy: Vec<PolicyStatement>,
    pub capacity: Capacity,
    pub rates: Rates,
    /// `(bucket, prefix)` pairs the task role may read.
    pub inputs: Vec<(String, String)>,
    pub mode: DispatchMode,
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

/// CloudWatch Logs' allowed retention periods, in days.
const LOG_RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

fn validate_ecs(section: &EcsSection) -> Result<EcsSpec, String> {
    let log_retention_days = section.log_retention_days.unwrap_or(7);
    if !LOG_RETENTION_DAYS.contains(&log_retention_days) {
        return Err(format!(
            "ecs.log_retention_days = {log_retention_days} is not one CloudWatch allows ({})",
            LOG_RETENTION_DAYS.map(|d| d.to_string()).join(", ")
        ));
    }
    for (name, value) in &section.secrets {
        let arn = value.starts_with("arn:aws:secretsmanager:")
            || (value.starts_with("arn:aws:ssm:") && value.contains(":parameter/"));
        let parameter = value.starts_with('/')
            && value.len() > 1
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c));
        if !(arn || parameter) {
            return Err(format!(
                "ecs.secrets.{name} must be a Secrets Manager ARN, an SSM parameter ARN or an SSM parameter name starting with '/' (never the secret itself)"
            ));
        }
    }
    for st in &section.task_policy {
        if st.actions.is_empty() || st.resources.is_empty() {
            return Err("ecs.task_policy: every statement needs actions and resources".into());
        }
        if let Some(a) = st
            .actions
            .iter()
            .find(|a| a.contains('*') || !a.contains(':'))
        {
            return Err(format!(
                "ecs.task_policy: action `{a}` must be one service:Action, without `*`"
            ));
        }
    }
    let rate = |v: Option<u32>, default: u32, key: &str| match v {
        Some(0) => Err(format!("ecs.{key} must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    let rates = Rates {
        run_task_rate: rate(section.run_task_rate, 20, "run_task_rate")?,
        launch_burst: rate(section.launch_burst, 100, "launch_burst")?,
        launch_rate: rate(section.launch_rate, 20, "launch_rate")?,
        describe_rate: rate(section.describe_rate, 20, "describe_rate")?,
    };
    let inputs = section
        .inputs
        .iter()
        .map(|u| parse_s3_url(u).map_err(|m| format!("ecs.inputs: {m}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EcsSpec {
        capacity: Capacity {
            kind: section.capacity.unwrap_or(CapacityKind::Spot),
            on_demand_base: section.on_demand_base.unwrap_or(0),
            spot_fallback: section.spot_fallback.unwrap_or(true),
        },
        rates,
        inputs,
        cluster: section.cluster.clone(),
        subnets: section.subnets.clone(),
        security_groups: section.security_groups.clone(),
        assign_public_ip: section
            .assign_public_ip
            .unwrap_or(section.subnets.is_none()),
        log_retention_days,
        bucket: section.bucket.clone(),
        secrets: section.secrets.clone(),
        task_policy: section.task_policy.clone(),
        mode: section.mode.unwrap_or_default(),
        queue: QueueSpec {
            max_receive_count: 3,
            max_workers: 10,
            idle_exit: Duration::from_secs(900),
            visibility: Duration::from_secs(300),
            s3_trigger: None,
            send_concurrency: 16,
            agent_binaries: BTreeMap::new(),
        },
    })
}

/// SQS allows visibility timeouts up to 12 hours.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

fn validate_queue(q: &QueueSection, timeout: Duration) -> Result<QueueSpec, String> {
    let max_receive_count = q.max_receive_count.unwrap_or(3);
    if !(1..=1000).contains(&max_receive_count) {
        return Err("queue.max_receive_count must be between 1 and 1000".into());
    }
    let max_workers = q.max_workers.unwrap_or(10);
    if max_workers == 0 {
        return Err("queue.max_workers must be at least 1".into());
    }
    let visibility = q
        .visibility
        .unwrap_or_else(|| (timeout + Duration::from_secs(300)).min(MAX_VISIBILITY));
    if visibility < Duration::from_secs(2) || visibility > MAX_VISIBILITY {
        return Err("queue.visibility must be between 2s and 12h".into());
    }
    let s3_trigger = q
        .s3_trigger
        .as_deref()
        .map(|u| parse_s3_url(u).map_err(|m| format!("queue.s3_trigger: {m}")))
        .transpose()?;
    for arch in q.agent_binaries.keys() {
        if arch != "amd64" && arch != "arm64" {
            return Err(format!(
                "queue.agent_binaries: `{arch}` is not an architecture (amd64, arm64)"
            ));
        }
    }
    Ok(QueueSpec {
        max_receive_count,
        max_workers,
        idle_exit: q.idle_exit.unwrap_or(Duration::from_secs(900)),
        visibility,
        s3_trigger,
        send_concurrency: q.send_concurrency.unwrap_or(16).clamp(1, 256),
        agent_binaries: q.agent_binaries.clone(),
    })
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
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSection {
    pub cpu: Option<Vcpu>,
    pub memory: Option<MemoryMib>,
    pub ephemeral_storage: Option<u32>,
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
    pub retry_exit_codes: Option<crate::record::RetryExitCodes>,
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

/// The longest timeout or interval jobrun takes.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); examples: \"90s\", \"30m\", \"1h\""))
        .and_then(|d| {
            if d.is_zero() {
                Err("a duration must be more than zero".into())
            } else if d > MAX_DURATION {
                Err(format!("`{s}` is longer than the 30 days jobrun allows"))
            } else {
                Ok(d)
            }
        })
}

// ----- overrides: the same settings from flags or from JOBRUN_* --------------------------------

/// Settings that flags (and `JOBRUN_*` environment variables) can override. The environment only
/// fills what the file leaves out; flags win over both.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Where tasks run
    #[arg(long, env = "JOBRUN_TARGET", value_enum, help_heading = "Job settings")]
    pub target: Option<TargetKind>,
    /// Tasks that run at the same time (local target; default: number of CPUs)
    #[arg(
        long,
        env = "JOBRUN_CONCURRENCY",
        value_name = "N",
        help_heading = "Job settings"
    )]
    pub concurrency: Option<usize>,
    /// Per-task timeout, e.g. 90s, 30m, 1h (default 1h)
    #[arg(long, env = "JOBRUN_TIMEOUT", value_parser = parse_duration, value_name = "DURATION", help_heading = "Job settings")]
    pub timeout: Option<Duration>,
    /// Attempts per task before it counts as failed (default 1: no retry)
    #[arg(
        long,
        env = "JOBRUN_MAX_ATTEMPTS",
        value_name = "N",
        help_heading = "Job settings"
    )]
    pub max_attempts: Option<u32>,
    /// vCPU per task (Fargate sizes: 0.25, 0.5, 1, 2, 4, 8, 16)
    #[arg(long, env = "JOBRUN_CPU", value_parser = Vcpu::parse, help_heading = "Job settings")]
    pub cpu: Option<Vcpu>,
    /// Memory per task, e.g. 2GB (must pair with --cpu as on Fargate)
    #[arg(long, env = "JOBRUN_MEMORY", value_parser = MemoryMib::parse, help_heading = "Job settings")]
    pub memory: Option<MemoryMib>,
    /// Image platform, e.g. linux/amd64 or linux/arm64 (default: the host's for the local target)
    #[arg(long, env = "JOBRUN_PLATFORM", help_heading = "Job settings")]
    pub platform: Option<String>,
    /// ECS dispatch: `direct` (one RunTask per task) or `queue` (SQS + autoscaled workers)
    #[arg(long, env = "JOBRUN_MODE", value_enum, help_heading = "Job settings")]
    pub mode: Option<DispatchMode>,
}

macro_rules! split_by_source {
    ($self:ident, $m:ident, $env:ident, $flags:ident: $($f:ident),*) => {
        $(
            match $m.and_then(|m| m.value_source(stringify!($f))) {
                Some(ValueSource::EnvVariable) => $env.$f = $self.$f.clone(),
                Some(_) => $flags.$f = $self.$f.clone(),
                None => {}
            }
        )*
    };
}

impl Overrides {
    /// Splits parsed overrides into (from the environment, from flags) using clap's record of
    /// where each value came from. Without matches everything counts as a flag.
    pub fn split(&self, matches: Option<&clap::ArgMatches>) -> (Overrides, Overrides) {
        let Some(m) = matches else {
            return (Overrides::default(), self.clone());
        };
        let (mut env, mut flags) = (Overrides::default(), Overrides::default());
        let m = Some(m);
        split_by_source!(self, m, env, flags: target, concurrency, timeout, max_attempts, cpu, memory, platform, mode);
        (env, flags)
    }
}

// ----- the resolved job --------------------------------------------------------------------------

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

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Resources {
    pub cpu: Vcpu,
    pub memory: MemoryMib,
    /// GiB
    pub ephemeral_storage: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSpec {
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    #[serde(with = "secs")]
    pub timeout: Duration,
    pub max_attempts: u32,
    pub concurrency: usize,
    pub retry_exit_codes: crate::record::RetryExitCodes,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// `os/arch[/variant]`, as Docker and OCI spell platforms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

impl From<Platform> for String {
    fn from(p: Platform) -> String {
        p.to_string()
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

impl Platform {
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let arch = match parts.as_slice() {
            ["linux", a] | ["linux", a, _] => *a,
            _ => return Err(format!("platform `{s}` is not of the form linux/ARCH")),
        };
        let arch = match arch {
            "amd64" | "x86_64" => "amd64",
            "arm64" | "aarch64" => "arm64",
            other => {
                return Err(format!(
                    "platform `{s}`: architecture `{other}` is not supported (use amd64 or arm64)"
                ));
            }
        };
        Ok(Platform {
            os: "linux".into(),
            arch: arch.into(),
        })
    }

    /// The machine jobrun runs on, as a Docker platform.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "aarch64" => "arm64",
            _ => "amd64",
        };
        Platform {
            os: "linux".into(),
            arch: arch.into(),
        }
    }
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Finds the job file: `--file`, or `jobrun.toml` in the current folder.
pub fn locate(file: Option<&Path>) -> Result<PathBuf, ConfigError> {
    let path = match file {
        Some(p) => p.to_path_buf(),
        None => std::env::current_dir()
            .map_err(|source| ConfigError::Read {
                path: ".".into(),
                source,
            })?
            .join(FILE_NAME),
    };
    if path.is_file() {
        Ok(std::path::absolute(&path).unwrap_or(path))
    } else if file.is_none() {
        Err(ConfigError::NotFound(
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        ))
    } else {
        Err(ConfigError::Read {
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            path,
        })
    }
}

/// Reads and resolves a job: file < environment-less defaults, then `env` below and `flags` above the file.
pub fn load(path: &Path, env: &Overrides, flags: &Overrides) -> Result<Job, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: FileConfig = toml::from_str(&text).map_err(|e| parse_error(path, &text, &e))?;
    resolve(path, file, env, flags)
}

fn resolve(
    path: &Path,
    file: FileConfig,
    env: &Overrides,
    flags: &Overrides,
) -> Result<Job, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let name = file.job.name.clone();
    validate_job_name(&name).map_err(invalid)?;

    let target = flags
        .target
        .or(file.job.target)
        .or(env.target)
        .unwrap_or_default();
    let cpu = flags
        .cpu
        .or(file.resources.cpu)
        .or(env.cpu)
        .unwrap_or(Vcpu(1024));
    let memory = flags
        .memory
        .or(file.resources.memory)
        .or(env.memory)
        .unwrap_or(MemoryMib(2048));
    let ephemeral_storage = file.resources.ephemeral_storage.unwrap_or(21);
    validate_fargate(cpu, memory, ephemeral_storage)
        .map_err(|m| invalid(format!("resources: {m}")))?;

    let platform_text = flags
        .platform
        .clone()
        .or(file.image.platform.clone())
        .or(env.platform.clone());
    let platform = match platform_text {
        Some(p) => Platform::parse(&p).map_err(|m| invalid(format!("image.platform: {m}")))?,
        None => match target {
            TargetKind::Local => Platform::host(),
            // Fargate on Graviton (+ Spot) is the cheap path.
            TargetKind::Ecs => Platform::parse("linux/arm64").expect("valid"),
        },
    };
    let registry = match (file.image.registry.as_deref().map(str::trim), target) {
        (Some("ecr"), _) | (None, TargetKind::Ecs) => RegistrySpec::Ecr {
            repository_prefix: file
                .ecr
                .repository_prefix
                .clone()
                .unwrap_or_else(|| "jobrun".into()),
            keep_images: match file.ecr.keep_images {
                Some(0) => return Err(invalid("ecr.keep_images must be at least 1".into())),
                Some(n) => n,
                None => 20,
            },
            scan_on_push: file.ecr.scan_on_push.unwrap_or(true),
            registry_endpoint: file.ecr.registry_endpoint.clone(),
        },
        (Some(url), _) => {
            let url = url
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            let (host, namespace) = url.split_once('/').unwrap_or((url, ""));
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(invalid(format!(
                    "image.registry `{url}` is not of the form host[:port]/namespace"
                )));
            }
            RegistrySpec::Oci {
                host: host.to_string(),
                namespace: namespace.to_string(),
            }
        }
        (None, TargetKind::Local) => RegistrySpec::None,
    };

    let concurrency = flags
        .concurrency
        .or(file.run.concurrency)
        .or(env.concurrency)
        .unwrap_or_else(|| match target {
            TargetKind::Local => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            // Fargate's own quotas (vCPUs per account) are the limit that matters there.
            TargetKind::Ecs => 1000,
        });
    if concurrency == 0 {
        return Err(invalid("run.concurrency must be at least 1".into()));
    }
    let max_attempts = flags
        .max_attempts
        .or(file.run.max_attempts)
        .or(env.max_attempts)
        // On Fargate a Spot interruption or a failed start is retried: three attempts by default.
        .unwrap_or(match target {
            TargetKind::Local => 1,
            TargetKind::Ecs => 3,
        });
    if max_attempts == 0 {
        return Err(invalid("run.max_attempts must be at least 1".into()));
    }
    let timeout = flags
        .timeout
        .or(file.run.timeout)
        .or(env.timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let command = file.run.command.as_ref().map(CommandSpec::argv);
    if command.as_ref().is_some_and(|c| c.is_empty()) {
        return Err(invalid("run.command is empty".into()));
    }
    for key in file.run.env.keys().chain(file.image.build_args.keys()) {
        if key.is_empty() || key.contains('=') {
            return Err(invalid(format!("`{key}` is not a valid variable name")));
        }
    }

    let mut ecs = validate_ecs(&file.ecs).map_err(invalid)?;
    ecs.queue = validate_queue(&file.queue, timeout).map_err(invalid)?;
    ecs.mode = flags
        .mode
        .or(file.ecs.mode)
        .or(env.mode)
        .unwrap_or_default();
    // SQS keeps a taken message invisible for at most 12 hours from its receipt, heartbeat or
    // not: a longer task would be delivered to a second worker while the first still runs.
    if ecs.mode == DispatchMode::Queue && timeout > MAX_VISIBILITY - Duration::from_secs(300) {
        return Err(invalid(
            "run.timeout can be at most 11h55m in queue mode (SQS hides a message from other workers for 12 hours at most); use mode = \"direct\" for longer tasks".into(),
        ));
    }
    let aws = AwsSpec {
        region: file.aws.region.clone(),
        profile: file.aws.profile.clone(),
    };
    let rel = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };
    let context = rel(file.image.context.as_deref().unwrap_or(Path::new(".")));
    let dockerfile = match &file.image.dockerfile {
        Some(p) => rel(p),
        None => context.join("Dockerfile"),
    };

    Ok(Job {
        name,
        file: path.to_path_buf(),
        target,
        image: ImageSpec {
            dockerfile,
            context,
            platform,
            build_args: file.image.build_args,
            pre_build: file.image.pre_build,
            registry,
        },
        resources: Resources {
            cpu,
            memory,
            ephemeral_storage,
        },
        run: RunSpec {
            command,
            env: file.run.env,
            timeout,
            max_attempts,
            concurrency,
            // Locally every failure is retried within max_attempts (default 1: none); on Fargate
            // interruptions are, and a non-zero exit only when the user lists it.
            retry_exit_codes: file.run.retry_exit_codes.clone().unwrap_or(match target {
                TargetKind::Local => crate::record::RetryExitCodes::default(),
                TargetKind::Ecs => crate::record::RetryExitCodes::none(),
            }),
        },
        ecs,
        aws,
        dir,
    })
}

/// Job names become image names, container labels and AWS resource names: keep them to what all accept.
pub fn validate_job_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        // 40: `jobrun-<name>-execution` must fit IAM's 64-character role names.
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "job.name `{name}` must be 1–40 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
        ))
    }
}

/// Turns a toml error into `file:line: key: message`, naming the dotted key the error points at.
fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, env: &Overrides, flags: &Overrides) -> Result<Job, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, text).unwrap();
        load(&path, env, flags)
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let job = load_str(
            "[job]\nname = \"wc\"\n",
            &Overrides::default(),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(job.name, "wc");
        assert_eq!(job.run.max_attempts, 1);
        assert_eq!(job.run.timeout, DEFAULT_TIMEOUT);
        assert_eq!(job.resources.cpu, Vcpu(1024));
        assert_eq!(job.image.platform, Platform::host());
        assert!(job.image.dockerfile.ends_with("Dockerfile"));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = load_str(
            "[job]\nname = \"wc\"\n\n[run]\nconcurency = 3\n",
            &Overrides::default(),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("jobrun.toml:5: run.concurency: unknown field `concurency`"),
            "{e}"
        );
    }

    #[test]
    fn type_error_names_key_and_line() {
        let e = load_str(
            "[job]\nname = \"wc\"\n[run]\nmax_attempts = \"three\"\n",
            &Overrides::default(),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(":4: run.max_attempts: invalid type"), "{e}");
    }

    #[test]
    fn layering_env_below_file_below_flags() {
        let text = "[job]\nname = \"wc\"\n[run]\nconcurrency = 3\n";
        let env = Overrides {
            concurrency: Some(7),
            max_attempts: Some(4),
            ..Default::default()
        };
        let job = load_str(text, &env, &Overrides::default()).unwrap();
        assert_eq!(job.run.concurrency, 3, "file beats environment");
        assert_eq!(
            job.run.max_attempts, 4,
            "environment fills what the file leaves out"
        );
        let flags = Overrides {
            concurrency: Some(9),
            ..Default::default()
        };
        let job = load_str(text, &env, &flags).unwrap();
        assert_eq!(job.run.concurrency, 9, "flags beat the file");
    }

    #[test]
    fn invalid_pair_is_refused() {
        let e = load_str(
            "[job]\nname = \"wc\"\n[resources]\ncpu = 0.25\nmemory = \"4GB\"\n",
            &Overrides::default(),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not valid with cpu = 0.25"), "{e}");
    }

    #[test]
    fn ecs_target_defaults_to_arm64_and_ecr() {
        let job = load_str(
            "[job]\nname = \"wc\"\ntarget = \"ecs\"\n",
            &Overrides::default(),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(job.image.platform.to_string(), "linux/arm64");
        assert!(matches!(
            job.image.registry,
            RegistrySpec::Ecr {
                keep_images: 20,
                ..
            }
        ));
        let job = load_str(
            "[job]\nname = \"wc\"\n[image]\nregistry = \"127.0.0.1:5000/team/ml\"\n",
            &Overrides::default(),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            job.image.registry,
            RegistrySpec::Oci {
                host: "127.0.0.1:5000".into(),
                namespace: "team/ml".into()
            }
        );
    }

    #[test]
    fn bad_job_name() {
        assert!(validate_job_name("Word Count").is_err());
        assert!(validate_job_name("wordcount-2").is_ok());
    }
}

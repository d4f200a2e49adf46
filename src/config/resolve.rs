//! From the file as written to the resolved [`Job`]: the layers are environment (`JOBRUN_*`) <
//! file < flags, laid by one rule ([`layered`]); then defaults (which depend on the target), and
//! every check, the Fargate cpu/memory table included, before any command touches the engine.

use super::ConfigError;
use super::file::*;
use super::job::*;
use super::rules::Rule;
use crate::arn::Arn;
use crate::image::agent::AgentSpec;
use crate::resources::{MemoryMib, Vcpu, validate_fargate};
use clap::parser::ValueSource;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// CloudWatch Logs' allowed retention periods, in days.
const LOG_RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Configured names against their service's rule, and the secrets' references (never values).
fn validate_names_and_secrets(section: &EcsSection) -> Result<(), String> {
    for (name, value) in &section.secrets {
        let arn = Arn::parse(value).is_some_and(|a| {
            (a.service == "secretsmanager" && a.resource.starts_with("secret:"))
                || (a.service == "ssm" && a.resource.starts_with("parameter/"))
        });
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
    if let Some(key) = section.secrets_kms_keys.iter().find(|k| {
        !Arn::parse(k).is_some_and(|a| a.service == "kms" && a.resource.starts_with("key/"))
    }) {
        return Err(format!(
            "ecs.secrets_kms_keys: `{key}` is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID; IAM matches no alias)"
        ));
    }
    let configured = [
        ("ecs.cluster", &section.cluster, Rule::Ecs),
        ("ecs.bucket", &section.bucket, Rule::S3Bucket),
    ];
    for (key, value, rule) in configured {
        if let Some(v) = value {
            rule.check(v)
                .map_err(|broken| format!("{key} = \"{v}\" would be refused: {broken}"))?;
        }
    }
    Ok(())
}

fn validate_ecs(
    section: &EcsSection,
    queue: &QueueSection,
    mode: DispatchMode,
    timeout: Duration,
) -> Result<EcsSpec, String> {
    // SQS keeps a taken message invisible for at most 12 hours from its receipt, heartbeat or
    // not: a longer task would be delivered to a second worker while the first still runs.
    if mode == DispatchMode::Queue && timeout > MAX_VISIBILITY - Duration::from_secs(300) {
        return Err(
            "run.timeout can be at most 11h55m in queue mode (SQS hides a message from other workers for 12 hours at most); use mode = \"direct\" for longer tasks".into(),
        );
    }
    let log_retention_days = section.log_retention_days.unwrap_or(7);
    if !LOG_RETENTION_DAYS.contains(&log_retention_days) {
        return Err(format!(
            "ecs.log_retention_days = {log_retention_days} is not one CloudWatch allows ({})",
            LOG_RETENTION_DAYS.map(|d| d.to_string()).join(", ")
        ));
    }
    validate_names_and_secrets(section)?;
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
        secrets_kms_keys: section.secrets_kms_keys.clone(),
        task_policy: section.task_policy.clone(),
        mode,
        driver: Driver::default(),
        queue: validate_queue(queue, timeout)?,
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
    if q.agent_binaries.is_some() {
        return Err(
            "queue.agent_binaries is now [image] agent = { arm64 = \"PATH\" } (a static jobrun per architecture)"
                .into(),
        );
    }
    Ok(QueueSpec {
        max_receive_count,
        max_workers,
        idle_exit: q.idle_exit.unwrap_or(Duration::from_secs(900)),
        visibility,
        s3_trigger,
        send_concurrency: q.send_concurrency.unwrap_or(16).clamp(1, 256),
    })
}

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
    /// ECS: who drives the run: `aws` (jobrun's driver task in AWS: the run goes on when this
    /// machine sleeps) or `here` (this machine's jobrun, in the background)
    #[arg(long, env = "JOBRUN_DRIVER", value_enum, help_heading = "Job settings")]
    pub driver: Option<Driver>,
    /// The result key that names the winner (`[results] metric`, e.g. loss)
    #[arg(
        long,
        env = "JOBRUN_METRIC",
        value_name = "KEY",
        help_heading = "Job settings"
    )]
    pub metric: Option<String>,
    /// Whether the smallest or the largest value of the metric wins (`[results] goal`)
    #[arg(long, env = "JOBRUN_GOAL", value_enum, help_heading = "Job settings")]
    pub goal: Option<Goal>,
}

/// Moves each named field of `$self` to `$env` or `$flags` by where clap found it. The fields
/// must be all of `Overrides`: the pattern below has no `..`, so a new field left out of the
/// list is a compile error, not a setting silently dropped.
macro_rules! split_by_source {
    ($self:ident, $m:ident, $env:ident, $flags:ident: $($f:ident),*) => {
        let Overrides { $($f: _),* } = $self;
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
        split_by_source!(self, m, env, flags: target, concurrency, timeout, max_attempts, cpu, memory, platform, mode, driver, metric, goal);
        (env, flags)
    }
}

/// env < file < flags: the one layering rule for every setting that all three can give.
fn layered<T: Clone>(flag: &Option<T>, file: &Option<T>, env: &Option<T>) -> Option<T> {
    flag.clone()
        .or_else(|| file.clone())
        .or_else(|| env.clone())
}

pub(super) fn resolve(
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
    let target = layered(&flags.target, &file.job.target, &env.target).unwrap_or_default();
    let resources = resources(&file.resources, target, env, flags).map_err(invalid)?;
    let image = image(&file, &dir, target, resources.gpu > 0, env, flags).map_err(invalid)?;
    let run = run(&file, target, env, flags).map_err(invalid)?;
    let mode = layered(&flags.mode, &file.ecs.mode, &env.mode).unwrap_or_default();
    let mut ecs = validate_ecs(&file.ecs, &file.queue, mode, run.timeout).map_err(invalid)?;
    ecs.driver = layered(&flags.driver, &file.ecs.driver, &env.driver).unwrap_or_default();
    Ok(Job {
        name,
        file: path.to_path_buf(),
        target,
        image,
        resources,
        run,
        ecs,
        aws: AwsSpec {
            region: file.aws.region.clone(),
            profile: file.aws.profile.clone(),
        },
        overlap: file.schedule.overlap,
        notify: notify(&file.notify, file.aws.profile.as_deref()).map_err(invalid)?,
        reduce: reduce(file.reduce.as_ref(), target).map_err(invalid)?,
        cost: cost(&file.cost).map_err(invalid)?,
        results: objective(
            layered(&flags.metric, &file.results.metric, &env.metric),
            layered(&flags.goal, &file.results.goal, &env.goal),
            &file.results.group,
        )
        .map_err(invalid)?,
        dir,
    })
}

/// `[results]`: a metric (a result key), its goal and the keys that are repeats; a goal or a
/// group alone says nothing.
fn objective(
    metric: Option<String>,
    goal: Option<Goal>,
    group: &[String],
) -> Result<Option<Objective>, String> {
    let group = crate::record::schema::group_keys(group)?;
    match (&metric, goal) {
        (None, None) if group.is_empty() => Ok(None),
        (None, _) if !group.is_empty() => Err(
            "results.group needs results.metric: the result key whose mean decides who won".into(),
        ),
        (None, _) => Err("results.goal needs results.metric: the result key it is about".into()),
        (Some(m), _) if m.trim().is_empty() || m.trim() != m => {
            Err("results.metric is a key of the tasks' result.json, e.g. \"loss\"".into())
        }
        (Some(metric), goal) => Ok(Some(Objective {
            group,
            ..Objective::named(metric, goal)
        })),
    }
}

/// `[cost]`: prices are positive, the Spot discount a fraction.
fn cost(section: &CostSpec) -> Result<CostSpec, String> {
    for (key, value) in [
        ("cost.vcpu_hour", section.vcpu_hour),
        ("cost.gb_hour", section.gb_hour),
        ("cost.storage_gb_hour", section.storage_gb_hour),
        ("cost.max_per_run", section.max_per_run),
    ] {
        if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
            return Err(format!("{key} must be a number of dollars, 0 or more"));
        }
    }
    if section
        .spot_discount
        .is_some_and(|d| !(0.0..1.0).contains(&d))
    {
        return Err("cost.spot_discount is a fraction off on-demand, from 0 up to (not including) 1 (0.7 = 70 % off)".into());
    }
    Ok(section.clone())
}

/// `[reduce]`: a command (never empty); another image only where jobrun can run one.
fn reduce(
    section: Option<&ReduceSection>,
    target: TargetKind,
) -> Result<Option<ReduceSpec>, String> {
    let Some(section) = section else {
        return Ok(None);
    };
    let command = section.command.argv();
    if command.is_empty() {
        return Err("reduce.command is empty".into());
    }
    if section.image.is_some() && target == TargetKind::Ecs {
        return Err("reduce.image works on the local target only: on ECS the reduce runs in the job's image (give it the reduce's code too)".into());
    }
    Ok(Some(ReduceSpec {
        command,
        image: section.image.clone(),
        when: section.when.unwrap_or_default(),
    }))
}

/// `[notify]`: a webhook URL (http or https) and/or an SNS topic ARN, and the events.
fn notify(section: &NotifySection, profile: Option<&str>) -> Result<Option<NotifySpec>, String> {
    if let Some(url) = &section.webhook
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        // The URL may carry a secret token: it is never repeated in an error.
        return Err("notify.webhook must be an http:// or https:// URL".into());
    }
    if let Some(topic) = &section.sns_topic
        && !Arn::parse(topic).is_some_and(|a| a.service == "sns" && !a.region.is_empty())
    {
        return Err(format!(
            "notify.sns_topic `{topic}` is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
        ));
    }
    if section.webhook.is_none() && section.sns_topic.is_none() {
        return match section.on {
            Some(_) => Err("notify.on needs notify.webhook or notify.sns_topic".into()),
            None => Ok(None),
        };
    }
    Ok(Some(NotifySpec {
        webhook: section.webhook.clone(),
        sns_topic: section.sns_topic.clone(),
        on: section
            .on
            .clone()
            .unwrap_or_else(|| vec![NotifyEvent::Failure, NotifyEvent::Success]),
        profile: profile.map(str::to_string),
    }))
}

fn resources(
    file: &ResourcesSection,
    target: TargetKind,
    env: &Overrides,
    flags: &Overrides,
) -> Result<Resources, String> {
    let cpu = layered(&flags.cpu, &file.cpu, &env.cpu).unwrap_or(Vcpu(1024));
    let memory = layered(&flags.memory, &file.memory, &env.memory).unwrap_or(MemoryMib(2048));
    // Unset, Fargate's own 20 GiB, which every task gets free (Fargate pricing); a set size is
    // 21-200 GiB and the GiB beyond 20 are billed.
    let ephemeral_storage = file.ephemeral_storage;
    let machines = super::machines::machines(file)?;
    // On ECS Managed Instances a task takes any size its instance holds; elsewhere sizes are
    // Fargate's (a local job is tried before it goes there).
    let instances =
        target == TargetKind::Ecs && (machines.gpu > 0 || !machines.instance_types.is_empty());
    match instances {
        true => super::machines::check_instance_size(cpu, memory, ephemeral_storage)?,
        false => validate_fargate(cpu, memory, ephemeral_storage)
            .map_err(|m| format!("resources: {m}"))?,
    }
    let max_memory = match file.max_memory {
        None => MemoryMib(memory.0.saturating_mul(2)),
        Some(m) if !crate::resources::is_fargate_memory(m) => {
            return Err(format!(
                "resources.max_memory = {m} is not a Fargate memory size (0.5GB, 1GB, 2GB, … 120GB: the ECS task size table)"
            ));
        }
        Some(m) if m.0 < memory.0 => {
            return Err(format!(
                "resources.max_memory = {m} is less than memory = {memory}"
            ));
        }
        Some(m) => m,
    };
    Ok(Resources {
        cpu,
        memory,
        ephemeral_storage,
        max_memory,
        gpu: machines.gpu,
        gpu_type: machines.gpu_type,
        instance_types: machines.instance_types,
        instance_idle: machines.instance_idle,
        size: match (file.size.unwrap_or_default(), instances) {
            (super::job::SizeRule::Auto, true) => {
                return Err("resources.size = \"auto\" learns a Fargate size; a job with a GPU or instance types runs on Managed Instances, sized by its cpu and memory".into());
            }
            (rule, _) => rule,
        },
    })
}

fn image(
    file: &FileConfig,
    dir: &Path,
    target: TargetKind,
    gpu: bool,
    env: &Overrides,
    flags: &Overrides,
) -> Result<ImageSpec, String> {
    let platform = match layered(&flags.platform, &file.image.platform, &env.platform) {
        Some(p) => Platform::parse(&p).map_err(|m| format!("image.platform: {m}"))?,
        None => match target {
            TargetKind::Local => Platform::host(),
            // GPU instances are x86_64 (g4dn, g5, g6, g6e, p4d, p5; only g5g is Graviton).
            TargetKind::Ecs if gpu => Arch::Amd64.into(),
            // Fargate on Graviton (+ Spot) is the cheap path.
            TargetKind::Ecs => Arch::Arm64.into(),
        },
    };
    for key in file.image.build_args.keys() {
        valid_variable(key)?;
    }
    // Lexically normalised (`a/./b` → `a/b`, `a/x/../b` → `a/b`), as `jobrun config` shows them.
    let rel = |p: &Path| {
        use std::path::Component;
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        };
        let mut clean = std::path::PathBuf::new();
        for c in joined.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir if clean.file_name().is_some() => {
                    clean.pop();
                }
                other => clean.push(other),
            }
        }
        clean
    };
    let context = rel(file.image.context.as_deref().unwrap_or(Path::new(".")));
    let dockerfile = match &file.image.dockerfile {
        Some(p) => rel(p),
        None => context.join("Dockerfile"),
    };
    let registry = registry(file, target)?;
    Ok(ImageSpec {
        compression: compression(file, target, &registry),
        registry,
        dockerfile,
        context,
        platform,
        build_args: file.image.build_args.clone(),
        pre_build: file.image.pre_build.clone(),
        agent: agent(file, &rel)?,
    })
}

/// `[image] compression`, else zstd for an ECS job pushing to ECR (Fargate pulls it, and
/// starts sooner) and gzip for any other registry (a runtime that cannot pull zstd must not be
/// broken by a default).
fn compression(
    file: &FileConfig,
    target: TargetKind,
    registry: &RegistrySpec,
) -> crate::registry::Compression {
    use crate::registry::Compression;
    file.image.compression.unwrap_or(match (target, registry) {
        (TargetKind::Ecs, RegistrySpec::Ecr { .. }) => Compression::Zstd,
        _ => Compression::Gzip,
    })
}

/// `[image] agent`: an agent image reference, or files by architecture (relative to the job
/// folder).
fn agent(file: &FileConfig, rel: &dyn Fn(&Path) -> PathBuf) -> Result<AgentSpec, String> {
    use super::file::AgentValue;
    Ok(match &file.image.agent {
        None => AgentSpec::Default,
        Some(AgentValue::Image(r)) => {
            crate::image::agent::pull::Reference::parse(r)
                .map_err(|m| format!("image.agent: {m}"))?;
            AgentSpec::Image(r.trim().to_string())
        }
        Some(AgentValue::Files(files)) => {
            if files.is_empty() {
                return Err(
                    "image.agent names no file (use { amd64 = \"PATH\", arm64 = \"PATH\" })".into(),
                );
            }
            let mut by_arch = std::collections::BTreeMap::new();
            for (arch, path) in files {
                let arch = arch
                    .parse::<Arch>()
                    .map_err(|m| format!("image.agent: {m}"))?;
                by_arch.insert(arch, rel(path));
            }
            AgentSpec::Files(by_arch)
        }
    })
}

/// `ecr.repository_prefix` (default `jobrun`), in words ECR accepts.
fn repository_prefix(file: &FileConfig) -> Result<String, String> {
    let prefix = file.ecr.repository_prefix.as_deref().unwrap_or("jobrun");
    let sample = ecr_repository_name(prefix, "job");
    Rule::EcrRepository.check(&sample).map_err(|broken| {
        format!("ecr.repository_prefix = \"{prefix}\" would be refused: {broken}")
    })?;
    Ok(prefix.to_string())
}

/// Where `push` sends the image: ECR (the default on ECS), another registry, or nowhere.
fn registry(file: &FileConfig, target: TargetKind) -> Result<RegistrySpec, String> {
    Ok(
        match (file.image.registry.as_deref().map(str::trim), target) {
            (Some("ecr"), _) | (None, TargetKind::Ecs) => RegistrySpec::Ecr {
                repository_prefix: repository_prefix(file)?,
                keep_images: match file.ecr.keep_images {
                    Some(0) => return Err("ecr.keep_images must be at least 1".into()),
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
                    return Err(format!(
                        "image.registry `{url}` is not of the form host[:port]/namespace"
                    ));
                }
                RegistrySpec::Oci {
                    host: host.to_string(),
                    namespace: namespace.to_string(),
                }
            }
            (None, TargetKind::Local) => RegistrySpec::None,
        },
    )
}

fn run(
    file: &FileConfig,
    target: TargetKind,
    env: &Overrides,
    flags: &Overrides,
) -> Result<RunSpec, String> {
    let concurrency = layered(&flags.concurrency, &file.run.concurrency, &env.concurrency)
        .unwrap_or_else(|| match target {
            TargetKind::Local => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            // Fargate's own quotas (vCPUs per account) are the limit that matters there.
            TargetKind::Ecs => 1000,
        });
    if concurrency == 0 {
        return Err("run.concurrency must be at least 1".into());
    }
    let max_attempts = layered(
        &flags.max_attempts,
        &file.run.max_attempts,
        &env.max_attempts,
    )
    // On Fargate a Spot interruption or a failed start is retried: three attempts by default.
    .unwrap_or(match target {
        TargetKind::Local => 1,
        TargetKind::Ecs => 3,
    });
    if max_attempts == 0 {
        return Err("run.max_attempts must be at least 1".into());
    }
    let timeout =
        layered(&flags.timeout, &file.run.timeout, &env.timeout).unwrap_or(DEFAULT_TIMEOUT);
    let command = file.run.command.as_ref().map(CommandSpec::argv);
    if command.as_ref().is_some_and(|c| c.is_empty()) {
        return Err("run.command is empty".into());
    }
    for (key, value) in &file.run.env {
        valid_variable(key)?;
        // An environment string ends at its first NUL: the engine and ECS cannot carry one.
        if value.contains('\0') {
            return Err(format!(
                "run.env.{key} holds a NUL byte, which no environment variable can carry"
            ));
        }
    }
    Ok(RunSpec {
        command,
        env: file.run.env.clone(),
        timeout,
        max_attempts,
        concurrency,
        // Locally every failure is retried within max_attempts (default 1: none); on Fargate
        // interruptions are, and a non-zero exit only when the user lists it.
        retry_exit_codes: file.run.retry_exit_codes.clone().unwrap_or(match target {
            TargetKind::Local => RetryExitCodes::default(),
            TargetKind::Ecs => RetryExitCodes::none(),
        }),
        outputs: file.run.outputs.unwrap_or(true),
        reuse: file.run.reuse.unwrap_or(false),
        checkpoint_every: file.run.checkpoint_every,
    })
}

fn valid_variable(key: &str) -> Result<(), String> {
    if key.is_empty() || key.contains('=') || key.contains('\0') {
        return Err(format!(
            "`{}` is not a valid variable name",
            key.escape_debug()
        ));
    }
    Ok(())
}

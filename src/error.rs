//! What the user sees when something goes wrong: one line, a hint, and a documented exit code.
//!
//! Modules raise their own typed errors (`thiserror`); `main` turns each into a [`Failure`], which
//! knows its [`Exit`] class and a hint. Nothing below `main` prints errors or picks exit codes.

use std::fmt;

pub use jobrun_wire::exit::Exit;

/// An error as it is reported at the top: one line of message, an optional hint, an exit class.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
            hint: None,
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }
    pub fn env(message: impl Into<String>) -> Self {
        Self::new(Exit::Environment, message)
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the inner error carried.
        let one_line = self
            .message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        // A message may quote a task's data (a configuration, a file name): shown, not obeyed.
        write!(f, "error: {}", crate::ui::printable(&one_line, ""))?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {}", crate::ui::printable(hint, ""))?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

// ----- how each module's errors are reported -------------------------------------------------

use crate::aws::AwsError;
use crate::config::ConfigError;
use crate::dispatch::DispatchError;
use crate::engine::EngineError;
use crate::image::ImageError;
use crate::image::ecr::EcrError;
use crate::image::push::PushError;
use crate::infra::InfraError;
use crate::init::InitError;
use crate::plan::PlanError;
use crate::registry::RegistryError;
use crate::store::StoreError;

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        let hint = match &e {
            ConfigError::NotFound(_) => {
                "run `jobrun init --template shell .` to create one, or pass --file PATH"
            }
            ConfigError::Read { .. } => "check the path given with --file or JOBRUN_FILE",
            ConfigError::Parse { .. } => "see the keys in README.md (jobrun.toml reference)",
            ConfigError::Invalid { .. } => {
                "fix the value in jobrun.toml (or the flag / JOBRUN_* variable that set it)"
            }
        };
        Failure::usage(e.to_string()).hint(hint)
    }
}

impl From<PlanError> for Failure {
    fn from(e: PlanError) -> Self {
        let hint = match &e {
            PlanError::Read { .. } => {
                "--configs takes a number or a readable .jsonl, .json or .csv file"
            }
            PlanError::BadLine { .. } => "fix that line; nothing was started",
            PlanError::Invalid(_) => {
                "see `jobrun submit --help` for --configs, --matrix and {placeholders}"
            }
            PlanError::TooMany(_) => {
                "check the count (a typo?), or split the sweep into runs of at most 10000 tasks"
            }
            PlanError::Aws(_) => "check the bucket and prefix (`aws s3 ls`) and your AWS access",
            PlanError::S3Url(_) => "e.g. --from-s3 s3://my-bucket/inputs/",
            PlanError::NotAnInput(url) => {
                return Failure::usage(e.to_string()).hint(format!(
                    "add inputs = [\"{url}\"] under [ecs] in jobrun.toml and run `jobrun up`"
                ));
            }
            PlanError::NoObjects(_) => "check the bucket and prefix (`aws s3 ls`)",
        };
        Failure::usage(e.to_string()).hint(hint)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Io { .. } => {
                Failure::env(e.to_string()).hint("set JOBRUN_STATE_DIR to a writable folder")
            }
            StoreError::Corrupt { .. } => Failure::env(e.to_string())
                .hint("it may come from another version of jobrun: use that one, or move the run's folder away"),
            _ => Failure::usage(e.to_string()).hint("`jobrun runs --all` lists the runs there are"),
        }
    }
}

impl From<crate::reuse::ReuseError> for Failure {
    fn from(e: crate::reuse::ReuseError) -> Self {
        use crate::reuse::ReuseError;
        match e {
            ReuseError::Store(e) => e.into(),
            ReuseError::Aws(e) => e.into(),
            ReuseError::NoSuchRun { .. } => Failure::usage(e.to_string())
                .hint("`jobrun runs` lists the job's runs; `--reuse` alone looks in all of them"),
            ReuseError::OtherJob { .. } => Failure::usage(e.to_string())
                .hint("name a run of this job, or give `--reuse` alone to look in all of them"),
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        let hint = match &e {
            EngineError::Connect { host, .. } => format!(
                "is the Docker engine running and reachable at {host}? set DOCKER_HOST to use another one"
            ),
            _ => {
                "check the Docker engine (`docker info`); run again with -v for details".to_string()
            }
        };
        Failure::env(e.to_string()).hint(hint)
    }
}

impl From<ImageError> for Failure {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Engine(e) => e.into(),
            ImageError::DockerfileMissing(_) => Failure::usage(e.to_string())
                .hint("set image.dockerfile in jobrun.toml, or create the Dockerfile"),
            ImageError::Context(_) => {
                Failure::usage(e.to_string()).hint("fix .dockerignore or image.context")
            }
            ImageError::NotBuilt(_) => Failure::usage(e.to_string())
                .hint("run `jobrun build` first, or `jobrun submit --build`"),
            // POSIX sh exits 127 when a command is not found ("sh: 1: go: not found" above).
            ImageError::PreBuild { code: Some(127), .. } => {
                Failure::new(Exit::BuildFailed, e.to_string()).hint(
                    "exit status 127 is the shell's \"command not found\": the pre-build needs a program this machine lacks (the go template needs Go, https://go.dev/dl/; the rust template cargo); its name is in the output above",
                )
            }
            ImageError::PreBuild { .. } | ImageError::PreBuildSpawn { .. } => {
                Failure::new(Exit::BuildFailed, e.to_string())
                    .hint("its output is above; run it by hand in the job folder to see why")
            }
            ImageError::WrongPlatform { .. } => Failure::new(Exit::BuildFailed, e.to_string()).hint(
                "a base image that exists only for another architecture? compile on the host for the target and COPY (see README, Templates)",
            ),
            ImageError::BaseUnreachable { ref image, .. } => {
                Failure::new(Exit::BuildFailed, e.to_string()).hint(format!(
                    "`docker pull {image}` on a machine with access, then `docker save {image} | gzip > image.tgz` there and `docker load < image.tgz` here"
                ))
            }
            ImageError::Step { .. } => Failure::new(Exit::BuildFailed, e.to_string())
                .hint("fix that Dockerfile step; the build output is above"),
            ImageError::NoAgent { ref arch, .. } => Failure::usage(e.to_string()).hint(format!(
                "set [image] agent = {{ {arch} = \"PATH\" }} to a static Linux jobrun (`just agent-{arch}` builds one), or [image] agent = \"REGISTRY/REPO:TAG\" to an agent image; or [run] outputs = false (direct mode) to run without outputs"
            )),
            ImageError::BadAgent { .. } | ImageError::AgentBinary { .. } => {
                Failure::usage(e.to_string()).hint(
                    "check [image] agent in jobrun.toml (a static Linux jobrun of this version per architecture, or an agent image)",
                )
            }
            ImageError::AgentImage { ref source, .. } => {
                let hint = "check the reference and that this machine can reach the registry (JOBRUN_AGENT_IMAGE, [image] agent); an offline machine can use [image] agent = { ARCH = \"PATH\" }";
                match source.is_transient() {
                    true => Failure::env(e.to_string()).hint(hint),
                    false => Failure::usage(e.to_string()).hint(hint),
                }
            }
        }
    }
}

impl From<DispatchError> for Failure {
    fn from(e: DispatchError) -> Self {
        match e {
            DispatchError::Engine(e) => e.into(),
            DispatchError::Store(e) => e.into(),
            DispatchError::StateFile { .. } => {
                Failure::env(e.to_string()).hint("check the state directory (JOBRUN_STATE_DIR)")
            }
            DispatchError::Process { .. } => Failure::env(e.to_string())
                .hint("the run goes on without this jobrun: `jobrun watch RUN` picks it up again"),
            DispatchError::Remote(e) => e.into(),
        }
    }
}

impl From<crate::dispatch::remote::RemoteError> for Failure {
    fn from(e: crate::dispatch::remote::RemoteError) -> Self {
        use crate::dispatch::remote::RemoteError;
        match e {
            // The job's bucket is gone (`jobrun down` here or on another machine): its AWS
            // side has to be made again, nothing of a run was started. S3's code, not its words
            // (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
            RemoteError::Aws(ref aws) if aws.code() == Some("NoSuchBucket") => {
                Failure::usage(format!("the job's S3 bucket is gone: {aws}"))
                    .hint("run `jobrun up` to make the job's AWS side again (`jobrun down` removed it)")
            }
            RemoteError::Aws(e @ (AwsError::Service { .. } | AwsError::Transport { .. })) => {
                Failure::from(e).hint(
                    "the run record keeps what was done: `jobrun submit --resume RUN` goes on from there",
                )
            }
            RemoteError::Aws(e) => e.into(),
            RemoteError::Output(_) => Failure::env(e.to_string()).hint("is stdout closed?"),
            RemoteError::RemoteExists(_) => {
                Failure::usage(e.to_string()).hint("submit again: a new run gets a new id")
            }
        }
    }
}

impl From<crate::outputs::s3::TransferError> for Failure {
    fn from(e: crate::outputs::s3::TransferError) -> Self {
        use crate::outputs::s3::TransferError;
        match e {
            TransferError::Aws(e) => e.into(),
            TransferError::Io { .. } => Failure::env(format!("cannot move outputs: {e}"))
                .hint("check that the folder exists and can be written"),
            TransferError::Output(_) => Failure::env(format!("cannot move outputs: {e}"))
                .hint("a task's output folder keeps regular files and folders; what else it holds is skipped"),
        }
    }
}

impl From<InitError> for Failure {
    fn from(e: InitError) -> Self {
        let hint = match &e {
            InitError::UnknownTemplate(_) => {
                format!("templates: {}", crate::init::template_names().join(", "))
            }
            InitError::Exists(_) => "init never overwrites; pick an empty folder".into(),
            InitError::Write { .. } => "check the folder's permissions".into(),
            InitError::BadName(_) => "pass --name with a valid job name".into(),
        };
        Failure::usage(e.to_string()).hint(hint)
    }
}

impl From<AwsError> for Failure {
    fn from(e: AwsError) -> Self {
        match &e {
            AwsError::NoRegion => Failure::usage(e.to_string()).hint("pass --region, set AWS_REGION, or give the profile a region"),
            AwsError::NoCredentials(_) => Failure::usage(e.to_string())
                .hint("set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, pass --profile, or run `aws sso login`"),
            AwsError::Service { code, .. } if code.contains("AccessDenied") || code.contains("Unrecognized") => {
                Failure::env(e.to_string()).hint("the credentials lack the permission named above")
            }
            _ => Failure::env(e.to_string()).hint("check the region, AWS_ENDPOINT_URL and the network; -v shows more"),
        }
    }
}

impl From<EcrError> for Failure {
    fn from(e: EcrError) -> Self {
        match e {
            EcrError::Aws(e) => e.into(),
            other => Failure::env(other.to_string())
                .hint("run again; if it persists, check ECR in the AWS console"),
        }
    }
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        let hint = match &e {
            RegistryError::Unreachable { host, .. } => {
                format!("is the registry at {host} up and reachable?")
            }
            RegistryError::Unauthorized { host, .. } => {
                format!(
                    "log in with `docker login {host}` (credentials come from the Docker config), or check the registry's permissions"
                )
            }
            RegistryError::Status { .. } => {
                "the registry refused the push; its answer is above".to_string()
            }
            RegistryError::Io { .. } => "check the state directory (JOBRUN_STATE_DIR)".to_string(),
        };
        Failure::env(e.to_string()).hint(hint)
    }
}

impl From<PushError> for Failure {
    fn from(e: PushError) -> Self {
        match e {
            PushError::NoRegistry => Failure::usage(e.to_string())
                .hint("set image.registry = \"ecr\" or \"host[:port]/namespace\" in jobrun.toml, or target = \"ecs\""),
            PushError::PlatformMismatch { ref wanted, .. } => Failure::usage(e.to_string()).hint(format!(
                "build it for {wanted} (jobrun build --platform {wanted}); on another architecture, cross-compile on the host and COPY (see README)"
            )),
            PushError::Image(e) => e.into(),
            PushError::Engine(e) => e.into(),
            PushError::Registry(e) => e.into(),
            PushError::Ecr(e) => e.into(),
            PushError::Aws(e) => e.into(),
            PushError::Store(e) => e.into(),
            PushError::Credentials(_) => Failure::usage(e.to_string()).hint("fix ~/.docker/config.json or the credential helper"),
            PushError::Export(_) => Failure::env(e.to_string()).hint("check the Docker engine and free disk space"),
            PushError::NotByDigest(_) => Failure::usage(e.to_string())
                .hint("the run's image came from `jobrun up`, which names it by digest; run `jobrun up` again"),
        }
    }
}

impl From<InfraError> for Failure {
    fn from(e: InfraError) -> Self {
        match e {
            InfraError::Aws(e) => e.into(),
            InfraError::NoImage(_) => Failure::usage(e.to_string()).hint(
                "the task definition names the image by digest: run `jobrun build --push` first",
            ),
            InfraError::NoDefaultVpc(_) => Failure::usage(e.to_string())
                .hint("set ecs.subnets (and ecs.security_groups) in jobrun.toml"),
            InfraError::MissingConfigured { .. } => Failure::usage(e.to_string())
                .hint("fix the name in jobrun.toml, or remove it to let jobrun make one"),
            InfraError::Refused(_) => Failure::usage(e.to_string())
                .hint("run `jobrun down` again and answer y, or pass --yes"),
            InfraError::Draining(_) | InfraError::Busy(_) => Failure::env(e.to_string())
                .hint("run `jobrun down` again in a minute; it goes on where it stopped"),
            InfraError::TriggerRegion { ref bucket_region, .. } => {
                let hint = format!("run the job in {bucket_region} (--region or [aws] region), or trigger from a bucket of the job's region");
                Failure::usage(e.to_string()).hint(hint)
            }
            InfraError::TriggerLoop(_) => Failure::usage(e.to_string())
                .hint("use a prefix outside jobs/, e.g. s3_trigger = \"s3://<bucket>/incoming/\""),
            InfraError::PolicyTooLarge { .. } => Failure::usage(e.to_string()).hint(
                "fewer ecs.inputs / ecs.task_policy entries: one prefix or statement can cover several",
            ),
            InfraError::MissingPermissions(_) => Failure::usage(e.to_string())
                .hint("`jobrun iam-policy --for up` prints the policy the caller needs; nothing was created"),
            InfraError::Name(_) => Failure::usage(e.to_string())
                .hint("choose a shorter or plainer job.name (or the configured name) in jobrun.toml"),
            InfraError::NoAgent(_) => Failure::usage(e.to_string()).hint(
                "with mode = \"queue\", `jobrun build --push` adds the agent; then run `jobrun up` again",
            ),
        }
    }
}

impl From<crate::schedule::ScheduleError> for Failure {
    fn from(e: crate::schedule::ScheduleError) -> Self {
        use crate::schedule::ScheduleError as E;
        match &e {
            E::Expr(x) => {
                let hint = match x {
                    crate::schedule::expr::ExprError::Timezone(_) => {
                        "give an IANA name with --tz, e.g. Europe/Berlin, America/New_York or UTC"
                    }
                    crate::schedule::expr::ExprError::BothDays(_) => {
                        "use `*` for one of them, or make two schedules"
                    }
                    _ => "e.g. --cron \"0 6 * * MON\", --rate \"6 hours\" or --at 2026-12-07T06:00:00",
                };
                Failure::usage(e.to_string()).hint(hint)
            }
            E::Name(..) => {
                Failure::usage(e.to_string()).hint("e.g. `weekly` or `monday-retrain`")
            }
            E::NotEcs => Failure::usage(e.to_string()).hint(
                "set target = \"ecs\" under [job] in jobrun.toml (or pass --target ecs); for local runs use cron with `jobrun submit --key`",
            ),
            E::Missing { .. } => Failure::usage(e.to_string()).hint("`jobrun schedule list` shows the job's schedules"),
            E::Spec(..) => Failure::usage(e.to_string())
                .hint("make the schedule again with `jobrun schedule add`"),
        }
    }
}

impl From<crate::claim::ClaimError> for Failure {
    fn from(e: crate::claim::ClaimError) -> Self {
        use crate::claim::ClaimError;
        match e {
            ClaimError::Aws(e) => e.into(),
            ClaimError::BadKey(_) => Failure::usage(e.to_string())
                .hint("e.g. --key \"$(date +%G-W%V)\" for one run per ISO week"),
            ClaimError::Io { .. } => Failure::env(e.to_string())
                .hint("check that the state directory (JOBRUN_STATE_DIR) is writable"),
        }
    }
}

//! The command line (clap derive). Every command and flag has help text; `jobrun completions`
//! prints shell completions.

use crate::config::Overrides;
use crate::ui::OutputFormat;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "jobrun",
    version,
    about = "Run a heavy containerised job for many configurations at once: on the local Docker engine, or on AWS Fargate.",
    after_help = "Exit codes: 0 all tasks succeeded · 1 a task failed · 2 usage, config or input error · 3 environment error (e.g. Docker unreachable) · 4 image build failed · 130 detached with Ctrl-C"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// The job file (default: ./jobrun.toml)
    #[arg(
        long,
        short = 'f',
        global = true,
        env = "JOBRUN_FILE",
        value_name = "PATH"
    )]
    pub file: Option<PathBuf>,

    /// Output format: text (bars on a terminal, plain lines otherwise), json, or csv (`jobrun
    /// results` only)
    #[arg(
        long,
        short = 'o',
        global = true,
        env = "JOBRUN_OUTPUT",
        value_enum,
        default_value_t
    )]
    pub output: OutputFormat,

    /// AWS profile (default: the job's `[aws] profile`, else AWS_PROFILE, else "default")
    #[arg(long, global = true, value_name = "NAME", help_heading = "AWS")]
    pub profile: Option<String>,

    /// AWS region (default: the job's `[aws] region`, else AWS_REGION or the profile's; a run
    /// on AWS is always reached in its own region)
    #[arg(long, global = true, value_name = "REGION", help_heading = "AWS")]
    pub region: Option<String>,

    /// More diagnostics on stderr (repeat for more)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new job (jobrun.toml, Dockerfile, code) from a template
    Init(InitArgs),
    /// Build the job's image with the Docker engine (--push: then push it)
    Build(BuildArgs),
    /// Push the last built image to the job's registry (ECR or any OCI registry)
    Push(PushArgs),
    /// What was built and pushed for this job: image, platform, size, when, where
    Images,
    /// Make the AWS side of the job exist (cluster, network, roles, logs, bucket, task definition)
    Up(UpArgs),
    /// Delete what `up` and `push` made for this job (only resources tagged with it)
    Down(DownArgs),
    /// Print the least-privilege IAM policy the caller of jobrun needs for this job
    IamPolicy(IamPolicyArgs),
    /// Start a run: one task per configuration, then watch it
    #[command(after_long_help = SUBMIT_MORE)]
    Submit(SubmitArgs),
    /// Follow a run until every task is done (re-attaches after Ctrl-C or a crash)
    Watch(WatchArgs),
    /// Show a run's state (default: the latest run of this job)
    Status(StatusArgs),
    /// Table what a run's tasks produced: configuration → result.json, and the reduce's result
    Results(ResultsArgs),
    /// List recent runs
    Runs(RunsArgs),
    /// Print a task's output
    Logs(LogsArgs),
    /// Stop a run: kill its running tasks and cancel the queued ones
    Cancel(RunArg),
    /// Run a run's failed tasks again, as new attempts of the same run
    Retry(RetryArgs),
    /// See runs, their tasks and results in the browser (a local web app; prints its URL)
    Ui(UiArgs),
    /// Run the job on a schedule inside AWS (EventBridge Scheduler; no machine of yours needed)
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// What a schedule fires (inside AWS): submit the stored schedule for one scheduled time and
    /// watch the run to its end
    #[command(hide = true)]
    Dispatch(DispatchArgs),
    /// The job's driver (inside AWS, the one task of its driver service): move every run
    /// submitted to be driven in AWS forward until none is left
    #[command(hide = true)]
    Drive(DriveArgs),
    /// Publish in-AWS jobruns as one multi-architecture agent image (the release recipe:
    /// `just agent-image REF`); each `--amd64` / `--arm64` is a static Linux jobrun, or `self`
    #[command(hide = true)]
    AgentImage(AgentImageArgs),
    /// Print the job's effective settings (file, environment and flags combined)
    Config(ConfigArgs),
    /// Print shell completions
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `jobrun man > ~/.local/share/man/man1/jobrun.1`
    Man,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Make a schedule (or replace its definition): when, in which timezone, which configurations
    Add(ScheduleAddArgs),
    /// The job's schedules: expression, timezone, next fire, state, last run and its outcome
    List(ScheduleListArgs),
    /// Stop firing a schedule until `resume`
    Pause(ScheduleNameArgs),
    /// Fire a paused schedule again
    Resume(ScheduleNameArgs),
    /// Delete a schedule (its runs stay)
    Rm(ScheduleNameArgs),
    /// Fire a schedule now, exactly as the schedule would (the dispatcher in AWS, key = now)
    Run(ScheduleNameArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("when").required(true).args(["cron", "rate", "at"])))]
pub struct ScheduleAddArgs {
    /// The schedule's name (1-40 letters, digits, '.', '_', '-')
    pub name: String,
    /// 5-field cron (minute hour day-of-month month day-of-week), e.g. "0 6 * * MON"
    #[arg(long)]
    pub cron: Option<String>,
    /// Every so often, e.g. "6 hours", "30 minutes", "1 day"
    #[arg(long)]
    pub rate: Option<String>,
    /// Once, at yyyy-mm-ddThh:mm:ss in --tz
    #[arg(long)]
    pub at: Option<String>,
    /// The timezone the expression is in (IANA name)
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// How many tasks (N), or a file of configurations (.jsonl, .json, .csv), stored with the schedule
    #[arg(long, short = 'c', value_name = "N|FILE")]
    pub configs: Option<String>,
    /// Add a dimension: KEY=A,B,C (repeatable)
    #[arg(long, short = 'm', value_name = "KEY=A,B,..")]
    pub matrix: Vec<String>,
    /// While a run of this job is still going when it fires: skip (default), replace or allow
    #[arg(long, value_enum)]
    pub overlap: Option<crate::config::Overlap>,
    /// Show what would be made; make nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ScheduleListArgs {}

#[derive(Debug, Args)]
pub struct ScheduleNameArgs {
    /// The schedule's name
    pub name: String,
}

/// `jobrun agent-image`
#[derive(Debug, Args)]
pub struct AgentImageArgs {
    /// Where to publish: host[:port]/repository:tag
    pub reference: String,
    /// The linux/amd64 jobrun: a file, or `self` (this jobrun, packed when linked dynamically)
    #[arg(long)]
    pub amd64: Option<String>,
    /// The linux/arm64 jobrun: a file, or `self`
    #[arg(long)]
    pub arm64: Option<String>,
}

#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// The stored schedule: s3://BUCKET/jobs/<job>/schedules/<name>/v<version>.json
    pub spec: String,
    /// The time the fire was due (Scheduler's scheduled time)
    #[arg(long)]
    pub at: String,
}

#[derive(Debug, Args)]
pub struct DriveArgs {
    /// The job's bucket
    #[arg(long)]
    pub bucket: String,
    /// The job
    #[arg(long)]
    pub job: String,
    /// The job's cluster
    #[arg(long)]
    pub cluster: String,
    /// The driver's ECS service (set to 0 when no run is left)
    #[arg(long)]
    pub service: String,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The template: shell, python, go or rust
    #[arg(long, short = 't', default_value = "shell")]
    pub template: String,
    /// Folder to create the job in (default: the current folder)
    pub dir: Option<PathBuf>,
    /// The job's name (default: the folder's name)
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Push the image after building it
    #[arg(long)]
    pub push: bool,
    #[command(flatten)]
    pub aws: RepositoryArgs,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Print the plan (create / update / unchanged, and why) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(Debug, Args)]
pub struct IamPolicyArgs {
    /// Only what these commands need (default: all): push, up, run (submit, watch, status,
    /// logs, cancel, retry), down
    #[arg(long = "for", value_enum, value_delimiter = ',')]
    pub needs: Vec<crate::infra::caller::Needs>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Delete without asking (required when not run from a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub aws: RepositoryArgs,
    #[command(flatten)]
    pub overrides: Overrides,
}

/// What a command that pushes to ECR may do to the repository.
#[derive(Debug, Args, Clone, Default)]
pub struct RepositoryArgs {
    /// Apply scan-on-push and the lifecycle policy to an existing ECR repository too
    /// (otherwise jobrun leaves existing repositories as they are)
    #[arg(long, help_heading = "AWS")]
    pub update_repository: bool,
}

/// What `submit --help` adds after the flags: placeholders and the defaults a first run meets.
const SUBMIT_MORE: &str = "\
Placeholders in [run] command (and the reduce's) are filled per task, quoted for the shell
where a value lands inside `sh -c`:
  {index} {count} {run_id} {config} (the whole configuration, JSON) {config.KEY}
  {{ and }} for a literal brace
Example: command = [\"python\", \"train.py\", \"--lr\", \"{config.lr}\", \"--out\", \"/out/{index}\"]
         jobrun submit --matrix lr=0.1,0.01 --matrix seed=1,2     (4 tasks)

Defaults on the ecs target: concurrency 1000 tasks at once, max_attempts 3, Fargate Spot with
on-demand fallback, driven in AWS (driver = \"aws\": the run goes on when this machine sleeps).";

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// How many tasks (N → configs {"index": i}), or a file of configurations (.jsonl, .json, .csv)
    #[arg(long, short = 'c', value_name = "N|FILE")]
    pub configs: Option<String>,
    /// Add a dimension: KEY=A,B,C (repeatable; the product of all is run)
    #[arg(long, short = 'm', value_name = "KEY=A,B,..")]
    pub matrix: Vec<String>,
    /// Return at once with the run id; the run goes on in the background
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Build the image first (for the ecs target: build, push and `up`)
    #[arg(long)]
    pub build: bool,
    /// One task per object under s3://BUCKET/PREFIX: config {"bucket", "key"}, and S3_BUCKET,
    /// S3_KEY in its environment (ecs target; the prefix must be in ecs.inputs)
    #[arg(long, value_name = "S3_URL", conflicts_with_all = ["configs", "matrix", "resume"])]
    pub from_s3: Option<String>,
    /// Go on with a run whose dispatch was interrupted (the same tasks, never twice)
    #[arg(long, value_name = "RUN", conflicts_with_all = ["configs", "matrix", "build", "key"])]
    pub resume: Option<String>,
    /// Idempotency key, e.g. "$(date +%G-W%V)": the first submit with it makes the run, any
    /// later one (from any machine) makes nothing and follows that run
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// While another run of this job is active: allow, skip (start nothing, exit 0) or replace
    /// (cancel it, then start). Default: [schedule] overlap, else skip with --key, else allow
    #[arg(long, value_enum)]
    pub overlap: Option<crate::config::Overlap>,
    /// Check everything and print the plan and its estimated duration and cost; start and
    /// create nothing
    #[arg(long, conflicts_with_all = ["build", "resume", "detach"])]
    pub dry_run: bool,
    /// Refuse the run when its estimated cost (upper bound) is above this many dollars
    /// (default: [cost] max_per_run)
    #[arg(long, value_name = "USD")]
    pub max_cost: Option<f64>,
    /// Refuse the run when it cannot end within this long (e.g. 2h): its tasks' durations (or
    /// timeout) in waves of as many as run at once — the concurrency, or fewer under the
    /// account's Fargate vCPU quotas
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub max_duration: Option<std::time::Duration>,
    /// Don't run what ran: a task whose key (image, command, configuration, environment) an
    /// earlier run's succeeded task has gets that task's result and outputs instead; RUN: only
    /// that run's (default: [run] reuse)
    #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "", conflicts_with_all = ["resume", "no_reuse"])]
    pub reuse: Option<String>,
    /// Run every task, whatever [run] reuse says
    #[arg(long)]
    pub no_reuse: bool,
    /// Submitted by a schedule's dispatcher (`jobrun dispatch`), whose task is costed with the run
    #[arg(skip)]
    pub scheduled: bool,
    #[command(flatten)]
    pub aws: RepositoryArgs,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub run: RunArg,
    /// Re-run the tasks that failed (required: the only kind of retry there is)
    #[arg(long, required = true)]
    pub failed: bool,
    /// Return once the tasks are started again; the run goes on without this process
    #[arg(long, short = 'd')]
    pub detach: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub run: RunArg,
    /// List every task that did not succeed (default: counts, failures grouped by reason with
    /// their indexes as ranges, the first failures in detail)
    #[arg(long)]
    pub tasks: bool,
}

#[derive(Debug, Args)]
pub struct ResultsArgs {
    #[command(flatten)]
    pub run: RunArg,
    /// Order by a column: a result key (`loss`), a configuration key, or a full column name
    /// (`result.loss`, `config.lr`, `duration_s`); smallest first
    #[arg(long, value_name = "KEY")]
    pub sort: Option<String>,
    /// Largest first (with --sort)
    #[arg(long, requires = "sort")]
    pub desc: bool,
    /// Only the first N rows (after --sort)
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Name the winner by this result key (default: the job's `[results] metric`)
    #[arg(long, value_name = "KEY")]
    pub metric: Option<String>,
    /// Whether the smallest or the largest value of the metric wins
    #[arg(long, value_enum, requires = "metric")]
    pub goal: Option<crate::record::schema::Goal>,
    /// Configuration keys that are repeats (`seed`): results that differ only in them are one
    /// configuration, shown as mean ± sd and n (default: the job's `[results] group`)
    #[arg(long, value_name = "KEY,..")]
    pub group: Vec<String>,
    /// One row per task even with a group (`-o json` and `-o csv` always have every task)
    #[arg(long)]
    pub tasks: bool,
    /// Copy every task's output folder to DIR/<index>/ (and the reduce's to DIR/reduce/),
    /// fetching only files that are missing or changed
    #[arg(long, value_name = "DIR")]
    pub download: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArg {
    /// Run id, or a unique part of its start or end (default: the latest run of this job)
    pub run: Option<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub run: RunArg,
    /// Drive the run without printing (used for detached runs)
    #[arg(long, hide = true)]
    pub background: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Runs of every job, not only this one
    #[arg(long)]
    pub all: bool,
    /// How many runs to show
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
    /// Only runs in this state
    #[arg(long, value_enum)]
    pub state: Option<crate::record::RunState>,
    /// Only runs made since: a duration back from now (7d, 12h) or a date (2026-11-30)
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Args)]
pub struct UiArgs {
    /// The port to listen on (0: any free port)
    #[arg(long, default_value_t = 8642)]
    pub port: u16,
    /// The address to listen on; anything but loopback lets other machines reach it (each
    /// request still needs the printed token)
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Open the URL in a browser (`xdg-open` / `open`; `$BROWSER` wins)
    #[arg(long)]
    pub open: bool,
    /// Show the runs of these job folders only (repeatable; default: every run in the state
    /// folder). An ECS job's runs in its bucket are fetched when opened by id.
    #[arg(long, value_name = "DIR")]
    pub job: Vec<std::path::PathBuf>,
    /// Name the winner of a run that has no `[results] metric` of its own by this result key
    /// (a results page's `?metric=KEY&goal=maximize` says it for one page)
    #[arg(long, value_name = "KEY")]
    pub metric: Option<String>,
    /// Whether the smallest or the largest value of the metric wins
    #[arg(long, value_enum, requires = "metric")]
    pub goal: Option<crate::record::schema::Goal>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub run: RunArg,
    /// The task's index (default: every task, each line prefixed with its index)
    #[arg(long, short = 'i')]
    pub index: Option<usize>,
    /// Keep printing while the task runs
    #[arg(long, short = 'F')]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub overrides: Overrides,
}

//! The one seam for where tasks run. `submit`, `watch`, `status`, `logs`, `cancel` and `retry`
//! talk to a [`Dispatcher`]; each variant turns the run record into reality and reality back into
//! the record through [`Dispatcher::reconcile`], which is idempotent: it can be called by any
//! process at any time (after a crash, from another terminal) and only ever moves the run forward.
//!
//! Variants, one per [`Place`]: the local Docker engine (`local`), ECS direct with one RunTask per
//! configuration (`ecs`), and ECS queue mode with SQS and an autoscaled service of `jobrun agent`
//! workers (`queue`). The two AWS variants share `remote` (the run's S3 copy and AWS access).

pub mod ecs;
pub mod lease;
pub mod local;
pub mod queue;
pub mod remote;

use crate::engine::EngineError;
use crate::record::schema::TaskSize;
use crate::record::{Place, RunRecord, RunSettings, StopRequest, TaskRecord, TaskState};
use crate::store::{Store, StoreError};

/// How an attempt failed, which decides whether it earns another one.
#[derive(Debug, Clone, Copy)]
pub enum FailKind {
    /// The task's own code exited non-zero: retried only if `retry_exit_codes` allows the code.
    Exit(i64),
    /// The platform took the task away (Spot reclaimed it, it never started, its container was
    /// removed): always retried while attempts remain.
    Interrupted,
    /// Killed for using more memory than it had (the engine's OOMKilled; ECS's
    /// `OutOfMemoryError`): retried at the next Fargate size while attempts remain and the
    /// size is within `max_memory`, whatever `retry_exit_codes` says.
    OutOfMemory,
    /// Anything else (timeout, refused start): retried only when every failure is.
    Other,
}

/// The size a task's attempts run at: its own after an out-of-memory retry, else the one
/// learned for its configuration, else the run's.
pub fn size_of(task: &TaskRecord, settings: &RunSettings) -> TaskSize {
    task.size.or(task.learned).unwrap_or(TaskSize {
        cpu: settings.cpu,
        memory_mib: settings.memory_mib,
    })
}

/// The next Fargate size after `now` (none: `max_memory` is reached).
fn grown(now: TaskSize, settings: &RunSettings) -> Option<TaskSize> {
    use crate::resources::{MemoryMib, Vcpu, next_size};
    let max = settings
        .max_memory_mib
        .unwrap_or(settings.memory_mib.saturating_mul(2));
    let cpu = Vcpu(now.cpu_units());
    let (cpu, memory) = next_size(cpu, MemoryMib(now.memory_mib), MemoryMib(max))?;
    Some(TaskSize {
        cpu: cpu.as_f64(),
        memory_mib: memory.0,
    })
}

/// Whether a running task must be stopped now: its run is cancelled, or it ran past the timeout.
pub fn stop_due(
    task: &TaskRecord,
    settings: &RunSettings,
    cancelling: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<StopRequest> {
    let timeout = chrono::Duration::try_seconds(settings.timeout_secs as i64)
        .unwrap_or(chrono::Duration::MAX);
    if cancelling {
        Some(StopRequest::Cancel)
    } else if task.started_at.is_some_and(|s| now - s > timeout) {
        Some(StopRequest::Timeout)
    } else {
        None
    }
}

/// The reason a task stopped for its timeout fails with.
pub fn timed_out(settings: &RunSettings) -> String {
    format!(
        "timed out after {}",
        humantime::format_duration(std::time::Duration::from_secs(settings.timeout_secs))
    )
}

/// The `JOBRUN_*` variables of one attempt of a task, the same wherever it runs (each place adds
/// where the configuration and the output folder are), after the task's own variables.
pub fn task_env(rec: &RunRecord, i: usize, attempt: u32) -> Vec<(String, String)> {
    let task = &rec.tasks[i];
    let mut env: Vec<(String, String)> = task
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend([
        ("JOBRUN_RUN_ID".into(), rec.run_id.clone()),
        ("JOBRUN_JOB".into(), rec.job.clone()),
        ("JOBRUN_INDEX".into(), i.to_string()),
        ("JOBRUN_COUNT".into(), rec.map_count().to_string()),
        ("JOBRUN_ATTEMPT".into(), attempt.to_string()),
        ("JOBRUN_STAGE".into(), task.stage.as_str().into()),
    ]);
    if let Some(secs) = rec.settings.checkpoint_every_secs {
        env.push(("JOBRUN_CHECKPOINT_EVERY".into(), format!("{secs}s")));
    }
    env
}

/// A cancelled run's tasks that never started.
pub fn cancel_queued(rec: &mut RunRecord) {
    let now = chrono::Utc::now();
    for task in rec
        .tasks
        .iter_mut()
        .filter(|t| t.state == TaskState::Queued)
    {
        task.cancel("cancelled before it started", now);
    }
}

/// A failed attempt, ended at the task's `finished_at` (now when not known): queued again while
/// the attempt budget and the retry policy allow and the run is not being cancelled; failed
/// otherwise.
pub fn fail_attempt(
    task: &mut TaskRecord,
    attempt: u32,
    reason: String,
    kind: FailKind,
    settings: &RunSettings,
    cancelling: bool,
) {
    task.attempts = attempt;
    let at = task.finished_at.unwrap_or_else(chrono::Utc::now);
    let budget_left = attempt.saturating_sub(task.retried_from) < settings.max_attempts;
    let retryable = match kind {
        FailKind::Interrupted => true,
        FailKind::Exit(code) => settings.retry_exit_codes.allows(code),
        FailKind::OutOfMemory => {
            return grow_or_fail(
                task,
                attempt,
                reason,
                settings,
                budget_left && !cancelling,
                at,
            );
        }
        FailKind::Other => settings.retry_exit_codes.is_any(),
    };
    if budget_left && retryable && !cancelling {
        task.retry_attempt(attempt, &reason, at);
    } else {
        task.fail(reason, at);
    }
}

/// An out-of-memory attempt: retried at the next size when it may be, else failed (and says
/// whether `max_memory` was what stopped it).
fn grow_or_fail(
    task: &mut TaskRecord,
    attempt: u32,
    reason: String,
    settings: &RunSettings,
    may_retry: bool,
    at: chrono::DateTime<chrono::Utc>,
) {
    let now = size_of(task, settings);
    match grown(now, settings) {
        Some(next) if may_retry => {
            task.size = Some(next);
            let why = format!("{reason} at {now}; the next attempt runs at {next}");
            task.retry_attempt(attempt, &why, at);
        }
        Some(_) => task.fail(format!("{reason} at {now}"), at),
        None => task.fail(format!("{reason} at {now} (max_memory reached)"), at),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file of the run in the state directory (a log, an output folder, a claim).
    #[error("{path}: {source}")]
    StateFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Something of this process's own: its standard output, its Ctrl-C handler.
    #[error("cannot use {what}: {source}")]
    Process {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Remote(#[from] remote::RemoteError),
}

/// Saves the record at once, for a dispatcher that must have it on disk before it acts (the
/// local one: the tasks it is about to start, before it creates their containers). The caller
/// of [`Dispatcher::reconcile`] gives it, and so knows what is saved.
pub type SaveFirst<'a> = dyn FnMut(&RunRecord) -> Result<(), StoreError> + Send + 'a;

static DRIVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes this process a driver in AWS (`jobrun drive`, a schedule's `dispatch`), known to
/// other drivers as `holder`: it acts on runs driven in AWS while it holds their lease
/// (`lease`). Any other process only follows such runs.
pub fn be_driver(holder: String) {
    let _ = DRIVER.set(holder);
}

/// This process's name as a driver in AWS, if it is one.
pub fn driver_here() -> Option<&'static str> {
    DRIVER.get().map(String::as_str)
}

/// A run the job's driver drives in AWS, and this process is no driver: it only follows the
/// run (reads the bucket's record), never acts on it.
pub fn only_followed(rec: &RunRecord) -> bool {
    rec.place.ecs().is_some_and(|r| r.driver.is_some()) && driver_here().is_none()
}

/// Handles of finished work to clean up after the record that says so is saved.
#[must_use]
pub struct Release(Vec<String>);

pub enum Dispatcher {
    Local(local::LocalDispatcher),
    Ecs(Box<ecs::EcsDispatcher>),
    Queue(Box<queue::QueueDispatcher>),
}

impl Dispatcher {
    /// The dispatcher of the place a run was submitted to.
    pub async fn for_run(record: &RunRecord) -> Result<Dispatcher, DispatchError> {
        let remote = match record.place.ecs() {
            Some(run) => Some(
                remote::RemoteRun::connect(record, run)
                    .await
                    .map_err(remote::RemoteError::from)?,
            ),
            None => None,
        };
        Self::assemble(&record.place, remote).await
    }

    /// A new run's dispatcher: on AWS, the record's first copy is made in the job's bucket
    /// (refused if that run id is there already) before any task can start.
    pub async fn create(
        record: &RunRecord,
        aws: crate::aws::Aws,
    ) -> Result<Dispatcher, DispatchError> {
        let remote = record
            .place
            .ecs()
            .map(|run| remote::RemoteRun::new(record, aws, run.clone()));
        if let Some(remote) = &remote {
            remote.create(record).await?;
        }
        Self::assemble(&record.place, remote).await
    }

    /// The variant for `place`; `remote` is there exactly for the places on AWS.
    async fn assemble(
        place: &Place,
        remote: Option<remote::RemoteRun>,
    ) -> Result<Dispatcher, DispatchError> {
        Ok(match (place, remote) {
            (Place::Ecs(_), Some(remote)) => {
                Dispatcher::Ecs(Box::new(ecs::EcsDispatcher::new(remote)))
            }
            (Place::Queue(_, queue), Some(remote)) => {
                Dispatcher::Queue(Box::new(queue::QueueDispatcher::new(remote, queue.clone())))
            }
            _ => Dispatcher::Local(local::LocalDispatcher::connect().await?),
        })
    }

    /// Whether this process moves the run forward now, or follows the copy in the bucket.
    pub async fn acting(&mut self) -> Result<remote::Acting, DispatchError> {
        match self.remote() {
            None => Ok(remote::Acting::Act),
            Some(r) => Ok(r.acting().await.map_err(remote::RemoteError::from)?),
        }
    }

    /// Asks the run's driver in AWS to cancel it, when another process drives it; `false`:
    /// this process marks the record itself.
    pub async fn ask_cancel(&mut self) -> Result<bool, DispatchError> {
        match self.remote() {
            None => Ok(false),
            Some(r) => Ok(r.ask_cancel().await.map_err(remote::RemoteError::from)?),
        }
    }

    /// Someone asked this driver to cancel the run (see [`Dispatcher::ask_cancel`]).
    pub fn cancel_asked(&mut self) -> bool {
        self.remote().is_some_and(|r| r.cancel_asked)
    }

    /// Lets go of a finished run (its lease, when this process drives it in AWS).
    pub async fn let_go(&mut self) -> Result<(), DispatchError> {
        match self.remote() {
            None => Ok(()),
            Some(r) => Ok(r.let_go().await.map_err(remote::RemoteError::from)?),
        }
    }

    /// The run's record in the job's bucket when it changed since this process last read it
    /// (none for a local run, when it is not there, or unchanged).
    pub async fn fetch_record(&mut self) -> Result<Option<RunRecord>, DispatchError> {
        match self.remote() {
            None => Ok(None),
            Some(r) => Ok(r.fetch_record().await.map_err(remote::RemoteError::from)?),
        }
    }

    /// The AWS part both ECS variants share.
    fn remote(&mut self) -> Option<&mut remote::RemoteRun> {
        match self {
            Dispatcher::Local(_) => None,
            Dispatcher::Ecs(t) => Some(&mut t.remote),
            Dispatcher::Queue(t) => Some(&mut t.remote),
        }
    }

    /// Moves the run forward: collects finished tasks (outcome and logs), enforces timeouts and
    /// cancellation, retries, and starts queued tasks within the concurrency limit. Returns what
    /// may be released (e.g. finished containers) once the updated record is saved: releasing
    /// first could lose an outcome if jobrun died in between. The record is saved half way
    /// with `save_first` when a dispatcher must not act before it is (local: starts).
    pub async fn reconcile(
        &mut self,
        record: &mut RunRecord,
        store: &Store,
        save_first: &mut SaveFirst<'_>,
    ) -> Result<Release, DispatchError> {
        record.settle_reduce();
        let release = match self {
            Dispatcher::Local(t) => Release(t.reconcile(record, store, save_first).await?),
            Dispatcher::Ecs(t) => {
                t.reconcile(record).await?;
                Release(vec![])
            }
            Dispatcher::Queue(t) => {
                t.reconcile(record).await?;
                Release(vec![])
            }
        };
        // The map tasks that ended in this pass may have settled the reduce.
        record.settle_reduce();
        Ok(release)
    }

    /// Brings the record up to what AWS says without acting on the run: ECS tasks described
    /// (their receipts read), queue results and counts read. Nothing is started, stopped, sent,
    /// scaled, mirrored or notified — what the reading commands (`status`, `results`) do, so
    /// they work for a caller who may only read.
    pub async fn observe(&mut self, record: &mut RunRecord) -> Result<(), DispatchError> {
        match self {
            Dispatcher::Local(_) => {}
            Dispatcher::Ecs(t) => t.observe(record).await?,
            Dispatcher::Queue(t) => t.observe(record).await?,
        }
        record.settle_reduce();
        Ok(())
    }

    pub async fn release(&mut self, release: Release) -> Result<(), DispatchError> {
        match self {
            Dispatcher::Local(t) => t.release(release.0).await,
            Dispatcher::Ecs(_) | Dispatcher::Queue(_) => Ok(()),
        }
    }

    /// Called after every step with the record and whether it changed: a remote dispatcher keeps
    /// its own copy (ECS: the job's S3 prefix, so a watch from another machine finds the run),
    /// and writes it again when an earlier write failed.
    pub async fn saved(&mut self, record: &RunRecord, changed: bool) -> Result<(), DispatchError> {
        match self.remote() {
            None => Ok(()),
            Some(remote) => Ok(remote
                .mirror(record, changed)
                .await
                .map_err(remote::RemoteError::from)?),
        }
    }

    /// Claims `name` for this run once, where every watcher of the run sees it: the run's
    /// folder for local runs (one machine), the run's prefix in the job's bucket for ECS runs
    /// (any machine). `false`: another watcher claimed it first.
    pub async fn claim_once(
        &mut self,
        store: &Store,
        record: &RunRecord,
        name: &str,
    ) -> Result<bool, DispatchError> {
        // Unique to this claimant, so a lost answer to its own write is recognised.
        let body = serde_json::json!({
            "claimed_at": chrono::Utc::now(),
            "by": format!("{}:{}", std::process::id(), hostname()),
        })
        .to_string();
        match self.remote() {
            None => {
                let path = store.run_dir(&record.run_id).join(name);
                crate::claim::create_once(&path, body.as_bytes()).map_err(|e| {
                    DispatchError::StateFile {
                        path,
                        source: std::io::Error::other(e.to_string()),
                    }
                })
            }
            Some(remote) => Ok(remote
                .claim_once(record, name, body.into_bytes())
                .await
                .map_err(remote::RemoteError::from)?),
        }
    }

    /// Resolves when something may have changed (a task ended) or there is more to start at
    /// once; callers also poll on a timer.
    pub async fn changed(&mut self) {
        match self {
            Dispatcher::Local(t) => t.changed().await,
            Dispatcher::Ecs(t) => t.remote.changed().await,
            Dispatcher::Queue(t) => t.remote.changed().await,
        }
    }

    /// There is work that can start at once (ECS: dispatch is under way).
    pub fn dispatching(&self) -> bool {
        match self {
            Dispatcher::Local(_) => false,
            Dispatcher::Ecs(t) => t.remote.more,
            Dispatcher::Queue(t) => t.remote.more,
        }
    }

    /// The shortest sensible time between two polls (ECS: what keeps DescribeTasks within
    /// its rate for the tasks still moving).
    pub fn poll_floor(&self, record: &RunRecord) -> std::time::Duration {
        match self {
            Dispatcher::Local(_) => std::time::Duration::ZERO,
            Dispatcher::Ecs(t) => t.poll_floor(record),
            Dispatcher::Queue(t) => t.poll_floor(record),
        }
    }

    /// Writes a task's output: the saved log, or the live output of a running task.
    pub async fn logs(
        &self,
        record: &RunRecord,
        index: usize,
        follow: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), DispatchError> {
        match self {
            Dispatcher::Local(t) => t.logs(record, index, follow, out).await,
            Dispatcher::Ecs(t) => Ok(t.logs(record, index, follow, out).await?),
            Dispatcher::Queue(t) => Ok(t.logs(record, index, out).await?),
        }
    }
}

/// This machine's name, as the kernel gives it (empty when unknown).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

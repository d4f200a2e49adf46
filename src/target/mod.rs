//! The one seam for where tasks run. `submit`, `watch`, `logs`, `cancel` (and later `retry`) talk
//! to a [`Target`]; each kind of target turns the run record into reality and reality back into
//! the record through [`Target::reconcile`], which is idempotent: it can be called by any process
//! at any time (after a crash, from another terminal) and only ever moves the run forward.
//!
//! Variants: the local Docker engine, and ECS direct (one RunTask per configuration). The ECS
//! queue target (SQS + an autoscaled service) is the next variant, built from the same `SdkConfig`.

pub mod ecs;
pub mod local;
pub mod queue;
pub mod remote;

use crate::engine::EngineError;
use crate::record::{
    RunRecord, RunSettings, StopRequest, Store, StoreError, TaskRecord, TaskState,
};

/// How an attempt failed, which decides whether it earns another one.
#[derive(Debug, Clone, Copy)]
pub enum FailKind {
    /// The task's own code exited non-zero: retried only if `retry_exit_codes` allows the code.
    Exit(i64),
    /// The platform took the task away (Spot reclaimed it, it never started, its container was
    /// removed): always retried while attempts remain.
    Interrupted,
    /// Anything else (timeout, refused start): retried only when every failure is.
    Other,
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

/// A cancelled run's tasks that never started.
pub fn cancel_queued(rec: &mut RunRecord) {
    for task in rec
        .tasks
        .iter_mut()
        .filter(|t| t.state == TaskState::Queued)
    {
        task.state = TaskState::Cancelled;
        task.reason = Some("cancelled before it started".into());
    }
}

/// A failed attempt: queued again while the attempt budget and the retry policy allow and the run
/// is not being cancelled; failed otherwise.
pub fn fail_attempt(
    task: &mut TaskRecord,
    attempt: u32,
    reason: String,
    kind: FailKind,
    settings: &RunSettings,
    cancelling: bool,
) {
    task.attempts = attempt;
    task.handle = None;
    task.stop_request = None;
    task.phase = None;
    let budget_left = attempt.saturating_sub(task.retried_from) < settings.max_attempts;
    let retryable = match kind {
        FailKind::Interrupted => true,
        FailKind::Exit(code) => settings.retry_exit_codes.allows(code),
        FailKind::Other => settings.retry_exit_codes.is_any(),
    };
    if budget_left && retryable && !cancelling {
        task.state = TaskState::Queued;
        task.reason = Some(format!("attempt {attempt} {reason}; retrying"));
    } else {
        task.state = TaskState::Failed;
        task.reason = Some(reason);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write {path}: {source}")]
    Log {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("run {run} uses target `{target}`, which this jobrun does not know")]
    UnknownTarget { run: String, target: String },
    #[error(transparent)]
    Ecs(#[from] ecs::EcsError),
}

/// Handles of finished work to clean up after the record that says so is saved.
#[must_use]
pub struct Release(Vec<String>);

pub enum Target {
    Local(local::LocalTarget),
    Ecs(Box<ecs::EcsTarget>),
    Queue(Box<queue::QueueTarget>),
}

impl Target {
    /// The target a run was submitted to.
    pub async fn for_run(record: &RunRecord) -> Result<Target, TargetError> {
        match (record.target.as_str(), &record.ecs) {
            ("local", _) => Ok(Target::Local(local::LocalTarget::connect().await?)),
            ("ecs", Some(run)) if run.queue.is_some() => Ok(Target::Queue(Box::new(
                queue::QueueTarget::connect(run).await?,
            ))),
            ("ecs", Some(run)) => Ok(Target::Ecs(Box::new(ecs::EcsTarget::connect(run).await?))),
            (other, _) => Err(TargetError::UnknownTarget {
                run: record.run_id.clone(),
                target: other.into(),
            }),
        }
    }

    /// Moves the run forward: collects finished tasks (outcome and logs), enforces timeouts and
    /// cancellation, retries, and starts queued tasks within the concurrency limit. Returns what
    /// may be released (e.g. finished containers) once the updated record is saved: releasing
    /// first could lose an outcome if jobrun died in between.
    pub async fn reconcile(
        &mut self,
        record: &mut RunRecord,
        store: &Store,
    ) -> Result<Release, TargetError> {
        match self {
            Target::Local(t) => Ok(Release(t.reconcile(record, store).await?)),
            Target::Ecs(t) => {
                t.reconcile(record).await?;
                Ok(Release(vec![]))
            }
            Target::Queue(t) => {
                t.reconcile(record).await?;
                Ok(Release(vec![]))
            }
        }
    }

    pub async fn release(&mut self, release: Release) -> Result<(), TargetError> {
        match self {
            Target::Local(t) => t.release(release.0).await,
            Target::Ecs(_) | Target::Queue(_) => Ok(()),
        }
    }

    /// Called after every step with the record and whether it changed: a remote target keeps
    /// its own copy (ECS: the job's S3 prefix, so a watch from another machine finds the run),
    /// and writes it again when an earlier write failed.
    pub async fn saved(&mut self, record: &RunRecord, changed: bool) -> Result<(), TargetError> {
        match self {
            Target::Local(_) => Ok(()),
            Target::Ecs(t) => Ok(t.mirror(record, changed).await?),
            Target::Queue(t) => Ok(t.mirror(record, changed).await?),
        }
    }

    /// Resolves when something may have changed (a task ended) or there is more to start at
    /// once; callers also poll on a timer.
    pub async fn changed(&mut self) {
        match self {
            Target::Local(t) => t.changed().await,
            Target::Ecs(t) => t.changed().await,
            Target::Queue(t) => t.changed().await,
        }
    }

    /// There is work that can start at once (ECS: dispatch is under way).
    pub fn dispatching(&self) -> bool {
        match self {
            Target::Local(_) => false,
            Target::Ecs(t) => t.dispatching(),
            Target::Queue(t) => t.dispatching(),
        }
    }

    /// The shortest sensible time between two polls (ECS: what keeps DescribeTasks within
    /// its rate for the tasks still moving).
    pub fn poll_floor(&self, record: &RunRecord) -> std::time::Duration {
        match self {
            Target::Local(_) => std::time::Duration::ZERO,
            Target::Ecs(t) => t.poll_floor(record),
            Target::Queue(t) => t.poll_floor(record),
        }
    }

    /// Writes a task's output: the saved log, or the live output of a running task.
    pub async fn logs(
        &self,
        record: &RunRecord,
        index: usize,
        follow: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), TargetError> {
        match self {
            Target::Local(t) => t.logs(record, index, follow, out).await,
            Target::Ecs(t) => Ok(t.logs(record, index, follow, out).await?),
            Target::Queue(t) => Ok(t.logs(record, index, out).await?),
        }
    }
}

//! The one seam for where tasks run. `submit`, `watch`, `logs`, `cancel` (and later `retry`) talk
//! to a [`Target`]; each kind of target turns the run record into reality and reality back into
//! the record through [`Target::reconcile`], which is idempotent: it can be called by any process
//! at any time (after a crash, from another terminal) and only ever moves the run forward.
//!
//! Today: the local Docker engine. The ECS direct (RunTask) and ECS queue (SQS + service)
//! targets are further variants of this enum, built from one `SdkConfig`.

pub mod local;

use crate::engine::EngineError;
use crate::record::{RunRecord, Store, StoreError};

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
}

/// Handles of finished work to clean up after the record that says so is saved.
#[must_use]
pub struct Release(Vec<String>);

pub enum Target {
    Local(local::LocalTarget),
}

impl Target {
    /// The target a run was submitted to.
    pub async fn for_run(record: &RunRecord) -> Result<Target, TargetError> {
        match record.target.as_str() {
            "local" => Ok(Target::Local(local::LocalTarget::connect().await?)),
            other => Err(TargetError::UnknownTarget {
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
        }
    }

    pub async fn release(&mut self, release: Release) -> Result<(), TargetError> {
        match self {
            Target::Local(t) => t.release(release.0).await,
        }
    }

    /// Resolves when something may have changed (a task ended); callers also poll on a timer.
    pub async fn changed(&mut self) {
        match self {
            Target::Local(t) => t.changed().await,
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
        }
    }
}

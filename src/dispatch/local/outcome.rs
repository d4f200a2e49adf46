//! How a local attempt ended, written into its task: a finished container's exit code, times
//! and result (a result.json that is a link or special file fails it), the stop jobrun asked
//! for, or a container that vanished (an interrupted attempt, retried while attempts remain).

use super::{Seen, is_starting};
use crate::dispatch::{FailKind, fail_attempt, timed_out};
use crate::outputs::{self, ResultRead};
use crate::record::{RunRecord, RunSettings, StopRequest, TaskState};
use crate::store::Store;
use bollard::models::ContainerInspectResponse;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::path::Path;

pub(super) fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(s?).ok()?.with_timezone(&Utc);
    (t.timestamp() > 0).then_some(t)
}

/// A finished attempt's outcome: the stop jobrun asked for, else its exit (a success whose
/// result.json is a link or a special file fails, saying so).
fn outcome_of(
    stop: Option<StopRequest>,
    code: i64,
    refused: Option<String>,
    state: &bollard::models::ContainerState,
    settings: &RunSettings,
) -> (TaskState, Option<String>, FailKind) {
    match stop {
        Some(StopRequest::Timeout) => (
            TaskState::Failed,
            Some(timed_out(settings)),
            FailKind::Other,
        ),
        Some(StopRequest::Cancel) => (
            TaskState::Cancelled,
            Some("cancelled".to_string()),
            FailKind::Other,
        ),
        None if code == 0 => match refused {
            Some(why) => (TaskState::Failed, Some(why), FailKind::Other),
            None => (TaskState::Succeeded, None, FailKind::Other),
        },
        None if state.oom_killed == Some(true) => (
            TaskState::Failed,
            Some(format!("out of memory (exit code {code})")),
            FailKind::OutOfMemory,
        ),
        None => (
            TaskState::Failed,
            Some(format!("exit code {code}")),
            FailKind::Exit(code),
        ),
    }
}

/// Running tasks without a container: one the record says is only starting gets it made
/// again in this pass (or is cancelled with its run); any other's was removed outside jobrun
/// while it ran, an interrupted attempt.
pub(super) fn lost_containers(rec: &mut RunRecord, live: &HashSet<usize>, now: DateTime<Utc>) {
    let lost: Vec<usize> = rec
        .tasks
        .iter()
        .filter(|t| t.state == TaskState::Running && !live.contains(&t.index))
        .map(|t| t.index)
        .collect();
    for i in lost {
        let task = &mut rec.tasks[i];
        let attempt = task.attempts;
        match (is_starting(task), rec.cancel_requested) {
            (true, true) => task.cancel("cancelled before it started", now),
            (true, false) => {}
            (false, _) => interrupted(rec, i, attempt, now),
        }
    }
}

/// Attempt `attempt` of task `i` lost its container, removed outside jobrun before its end was
/// read: interrupted, so retried while attempts remain.
pub(super) fn interrupted(rec: &mut RunRecord, i: usize, attempt: u32, now: DateTime<Utc>) {
    let task = &mut rec.tasks[i];
    task.finished_at = Some(now);
    let reason = "its container was removed outside jobrun".to_string();
    let kind = FailKind::Interrupted;
    fail_attempt(
        task,
        attempt,
        reason,
        kind,
        &rec.settings,
        rec.cancel_requested,
    );
}

/// Writes a finished container's end into its task: exit code, times, result, and whether the
/// attempt succeeded, failed (and is retried) or was cancelled.
pub(super) fn record_outcome(
    rec: &mut RunRecord,
    c: &Seen,
    inspect: ContainerInspectResponse,
    log_path: &Path,
    store: &Store,
    now: DateTime<Utc>,
) {
    let created = parse_time(inspect.created.as_deref());
    let state = inspect.state.unwrap_or_default();
    let task = &mut rec.tasks[c.index];
    let code = state.exit_code.unwrap_or(-1);
    task.attempts = c.attempt;
    task.exit_code = Some(code);
    task.started_at = parse_time(state.started_at.as_deref()).or(task.started_at);
    // Docker can stamp a process that ends within a millisecond as finished before it started;
    // an end is never before its start.
    task.finished_at = parse_time(state.finished_at.as_deref())
        .or(Some(now))
        .max(task.started_at);
    task.bill_span(c.attempt, task.started_at, task.finished_at, false);
    task.log = Some(log_path.to_string_lossy().into_owned());
    task.handle = None;
    let run_dir = store.run_dir(&rec.run_id);
    let read = outputs::read_result(&outputs::local_dir(&run_dir, task));
    let (kept, refused) = read.map_or((None, None), ResultRead::split);
    task.set_result(kept);
    let stop = task.stop_request.take();
    let (outcome, reason, kind) = outcome_of(stop, code, refused, &state, &rec.settings);
    // Locally: the container's creation, start and end, and how it ended.
    let seen = crate::record::Timeline {
        created_at: created,
        started_at: task.started_at,
        stopped_at: task.finished_at,
        exit_code: Some(code),
        reason: reason.clone(),
        ..Default::default()
    };
    task.saw(c.attempt, &seen);
    match outcome {
        TaskState::Failed => {
            let reason = reason.unwrap_or_else(|| "failed".into());
            let cancelling = rec.cancel_requested;
            fail_attempt(task, c.attempt, reason, kind, &rec.settings, cancelling);
        }
        TaskState::Cancelled => {
            let at = task.finished_at.unwrap_or(now);
            task.cancel(reason.unwrap_or_else(|| "cancelled".into()), at);
        }
        _ => task.succeed(task.finished_at.unwrap_or(now)),
    }
}

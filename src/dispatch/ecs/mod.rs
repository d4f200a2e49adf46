//! The ECS direct dispatcher: one `RunTask` per configuration on Fargate.
//!
//! Dispatch is paced to AWS's published limits (token buckets for RunTask calls and task
//! launches) and retried with jittered exponential backoff on throttling, server errors and lost
//! connections. Every RunTask carries a client token derived from (run, index, attempt), so a
//! retried call, or a `submit --resume` after jobrun was killed mid-dispatch, never launches a
//! configuration twice: AWS answers a repeated token with the task it already started. Tasks
//! carry `startedBy` (the run) and tags (job, run, index, attempt).
//!
//! Watching asks DescribeTasks, 100 tasks a call, never faster than the describe rate, and
//! writes each outcome into the run record as the task stops (stopped tasks vanish from ECS
//! after about an hour). Every saved record is mirrored to `s3://<bucket>/jobs/<job>/runs/<run>/`,
//! the first time before any task is launched, so `watch` works from any machine.

mod launch;

use super::remote::{LogStream, RemoteError, RemoteRun, write_log};
use crate::aws::{self, retrying};
use crate::dispatch::{FailKind, fail_attempt, stop_due, timed_out};
use crate::record::{RunRecord, StopRequest, TaskRecord, TaskState};
use crate::wire::NO_RECEIPT;
use crate::wire::{CONTAINER, Receipt, log_pointer, parse_log_pointer};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use launch::Launch;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// The reasons of a queued task that RunTask refused for now (see [`launch`]).
pub const WAITING_FOR_QUOTA: &str = "waiting for the account's Fargate vCPU quota";
pub const WAITING_FOR_CAPACITY: &str = "waiting for Fargate capacity";

/// ECS refuses task overrides longer than this (characters of their JSON form).
pub const OVERRIDES_LIMIT: usize = 8192;

/// Token buckets shaped like AWS's own, so dispatch runs at the limit and is never throttled.
struct Pacer {
    run_task: DefaultDirectRateLimiter,
    launch: DefaultDirectRateLimiter,
    describe: DefaultDirectRateLimiter,
}

fn bucket(rate: u32, burst: u32) -> DefaultDirectRateLimiter {
    let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
    RateLimiter::direct(Quota::per_second(nz(rate)).allow_burst(nz(burst)))
}

impl Pacer {
    fn new(rates: &crate::config::Rates) -> Pacer {
        Pacer {
            // AWS: RunTask 20 calls/s, burst and sustained.
            run_task: bucket(rates.run_task_rate, rates.run_task_rate),
            launch: bucket(rates.launch_rate, rates.launch_burst),
            describe: bucket(rates.describe_rate, rates.describe_rate),
        }
    }
}

/// `startedBy` takes at most 36 characters: the run id, or its time and a digest of the rest.
pub fn started_by(run_id: &str) -> String {
    if run_id.len() <= 36 {
        return run_id.to_string();
    }
    format!("{}-{}", &run_id[..23], &hex_digest(run_id)[..12])
}

/// The RunTask client token of one try of one attempt: the same inputs always give the same
/// token, so a repeated call is recognised by AWS as the same request.
pub fn client_token(run_id: &str, index: usize, attempt: u32, provider: &str, tr: u32) -> String {
    hex_digest(&format!("{run_id}/{index}/{attempt}/{provider}/{tr}"))[..64].to_string()
}

/// For a task that failed to start within five minutes of `up` changing the job's IAM roles:
/// IAM is eventually consistent, and ECS may not be able to assume a role that new yet.
fn iam_note(
    code: Option<&str>,
    iam_changed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> String {
    match iam_changed_at {
        Some(at)
            if code == Some("TaskFailedToStart") && now - at < chrono::Duration::minutes(5) =>
        {
            format!(
                " (the job's IAM roles were changed {} s before by `jobrun up`, and IAM takes a while to reach ECS; the next attempt, or `jobrun retry --failed`, may start)",
                (now - at).num_seconds()
            )
        }
        _ => String::new(),
    }
}

fn hex_digest(s: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(s.as_bytes()))
}

fn to_chrono(t: &aws_sdk_ecs::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// The instants DescribeTasks reports of a task (the Task data type's createdAt,
/// pullStartedAt, pullStoppedAt, startedAt, stoppingAt, executionStoppedAt, stoppedAt:
/// https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Task.html).
pub(crate) fn timeline_of(t: &aws_sdk_ecs::types::Task) -> crate::record::Timeline {
    let at = |d: Option<&aws_sdk_ecs::primitives::DateTime>| d.and_then(to_chrono);
    crate::record::Timeline {
        attempt: 0,
        created_at: at(t.created_at()),
        pull_started_at: at(t.pull_started_at()),
        pull_stopped_at: at(t.pull_stopped_at()),
        started_at: at(t.started_at()),
        stopping_at: at(t.stopping_at()),
        execution_stopped_at: at(t.execution_stopped_at()),
        stopped_at: at(t.stopped_at()),
        ..Default::default()
    }
}

pub struct EcsDispatcher {
    pub(super) remote: RemoteRun,
    ecs: aws_sdk_ecs::Client,
    pacer: Pacer,
    last_observed: Option<Instant>,
    /// StopTask calls made by this process (a task is asked once per process).
    stopping: HashSet<String>,
    /// Capacity tries per (index, attempt), so each try has its own client token.
    tries: HashMap<(usize, u32), u32>,
}

impl EcsDispatcher {
    pub fn new(remote: RemoteRun) -> EcsDispatcher {
        EcsDispatcher {
            ecs: remote.aws.ecs_paced(),
            pacer: Pacer::new(&remote.run.rates),
            remote,
            last_observed: None,
            stopping: HashSet::new(),
            tries: HashMap::new(),
        }
    }

    pub fn poll_floor(&self, rec: &RunRecord) -> Duration {
        // Use at most half the describe rate, so other tools (and other watchers) have room.
        let running = rec.count(TaskState::Running);
        let calls = running.div_ceil(100) as f64;
        Duration::from_secs_f64(calls * 2.0 / self.remote.run.rates.describe_rate as f64)
    }

    /// See [`Dispatcher::reconcile`](super::Dispatcher::reconcile).
    pub async fn reconcile(&mut self, rec: &mut RunRecord) -> Result<(), RemoteError> {
        // While dispatching, look at running tasks only now and then: starting the rest first.
        let observe = !self.remote.more
            || self
                .last_observed
                .is_none_or(|t| t.elapsed() > Duration::from_secs(5));
        if observe {
            self.observe(rec).await?;
            self.last_observed = Some(Instant::now());
        }
        self.enforce_stops(rec).await?;
        if rec.cancel_requested {
            super::cancel_queued(rec);
            self.remote.more = false;
            return Ok(());
        }
        self.dispatch(rec).await
    }

    /// DescribeTasks for every running task; records what stopped.
    pub(super) async fn observe(&mut self, rec: &mut RunRecord) -> Result<(), RemoteError> {
        let by_arn: HashMap<String, usize> = rec
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Running)
            .filter_map(|t| Some((t.handle.clone()?, t.index)))
            .collect();
        let arns: Vec<String> = by_arn.keys().cloned().collect();
        let now = Utc::now();
        tracing::debug!(active = arns.len(), "describe round");
        for chunk in arns.chunks(100) {
            let out = retrying(|| async {
                self.pacer.describe.until_ready().await;
                self.ecs
                    .describe_tasks()
                    .cluster(&self.remote.run.site.cluster)
                    .set_tasks(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(aws::op("DescribeTasks"))
            })
            .await?;
            let mut receipts = self.receipts(rec, out.tasks(), &by_arn).await?;
            for t in out.tasks() {
                let Some(&i) = t.task_arn().and_then(|a| by_arn.get(a)) else {
                    continue;
                };
                let receipt = receipts.remove(&i).flatten();
                self.apply(rec, i, t, now, receipt).await?;
            }
            for f in out.failures() {
                let Some(&i) = f.arn().and_then(|a| by_arn.get(a)) else {
                    continue;
                };
                // A task ECS no longer knows: it stopped long ago (ECS forgets after about an
                // hour) and nobody watched. It may well have done its work, so it is never run
                // again by itself; `retry --failed` is the user's call. A task launched moments
                // ago can be MISSING too (eventual consistency): left alone until it shows up.
                let task = &mut rec.tasks[i];
                let recent = task
                    .started_at
                    .is_some_and(|s| now - s < chrono::Duration::minutes(5));
                if f.reason() == Some("MISSING") && !recent {
                    if task.stop_request == Some(StopRequest::Cancel) {
                        task.cancel("cancelled", now);
                    } else {
                        task.fail(
                            "outcome unknown: ECS no longer knows the task (it stopped over an hour before anyone watched)",
                            now,
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The receipts of the described tasks that stopped with an exit code (their jobrun wrote
    /// what became of their outputs), fetched many at once: a round where 10,000 tasks stop
    /// must not wait for 10,000 reads one after the other.
    async fn receipts(
        &self,
        rec: &RunRecord,
        described: &[aws_sdk_ecs::types::Task],
        by_arn: &HashMap<String, usize>,
    ) -> Result<HashMap<usize, Option<Receipt>>, RemoteError> {
        if !self.remote.run.site.outputs {
            return Ok(HashMap::new());
        }
        let stopped = described.iter().filter_map(|t| {
            let i = *by_arn.get(t.task_arn()?)?;
            let exited = t.containers().iter().any(|c| c.exit_code().is_some());
            (t.last_status() == Some("STOPPED") && exited).then_some((i, rec.tasks[i].attempts))
        });
        let (job, run_id) = (&rec.job, &rec.run_id);
        let fetched: Vec<(usize, Result<Option<Receipt>, aws::AwsError>)> =
            futures_util::stream::iter(stopped)
                .map(|(i, attempt)| async move {
                    (i, self.remote.receipt(job, run_id, i, attempt).await)
                })
                .buffer_unordered(32)
                .collect()
                .await;
        let mut receipts = HashMap::new();
        for (i, r) in fetched {
            receipts.insert(i, r?);
        }
        Ok(receipts)
    }

    /// One described task into the record (`receipt`: what its jobrun wrote, when it did).
    async fn apply(
        &self,
        rec: &mut RunRecord,
        i: usize,
        t: &aws_sdk_ecs::types::Task,
        now: DateTime<Utc>,
        receipt: Option<Receipt>,
    ) -> Result<(), RemoteError> {
        let RunRecord {
            settings,
            cancel_requested: cancelling,
            tasks,
            ..
        } = rec;
        let (settings, cancelling, task) = (&*settings, *cancelling, &mut tasks[i]);
        let site = &self.remote.run.site;
        task.phase = t.last_status().map(str::to_string);
        task.saw(task.attempts, &timeline_of(t));
        if let Some(s) = t.started_at().and_then(to_chrono) {
            task.started_at = Some(s);
        }
        if t.last_status() != Some("STOPPED") {
            return Ok(());
        }
        let container = t
            .containers()
            .iter()
            .find(|c| c.name() == Some(CONTAINER))
            .or(t.containers().first());
        let exit = container.and_then(|c| c.exit_code()).map(i64::from);
        let code = t.stop_code().map(|c| c.as_str().to_string());
        let why = t.stopped_reason().unwrap_or_default().to_string();
        let attempt = task.attempts;
        task.set_result(receipt.as_ref().and_then(|r| r.result()));
        task.exit_code = exit;
        task.finished_at = t.stopped_at().and_then(to_chrono).or(Some(now));
        // Fargate bills from the image pull (or the start) to the stop.
        let billed_from = t.pull_started_at().or(t.started_at()).and_then(to_chrono);
        let spot = t.capacity_provider_name().is_some_and(|p| site.is_spot(p));
        task.bill_span(attempt, billed_from, task.finished_at, spot);
        task.measured(attempt, receipt.as_ref().and_then(|r| r.usage));
        let restored = receipt.as_ref().and_then(|r| r.checkpoint.as_ref());
        task.resumed_from_checkpoint(attempt, restored.map_or(0, |c| c.restored));
        let infra = matches!(
            code.as_deref(),
            Some("SpotInterruption" | "TaskFailedToStart" | "TerminationNotice")
        );
        let stopped = task.finished_at.unwrap_or(now);
        let failure = match task.stop_request.take() {
            Some(StopRequest::Cancel) => {
                task.cancel("cancelled", stopped);
                None
            }
            Some(StopRequest::Timeout) => Some((timed_out(settings), FailKind::Other)),
            None if infra => Some((
                format!(
                    "{}: {why}{}",
                    code.as_deref().unwrap_or_default(),
                    iam_note(code.as_deref(), site.iam_changed_at, now)
                ),
                FailKind::Interrupted,
            )),
            None if out_of_memory(container) => Some((
                format!(
                    "out of memory (exit code {})",
                    exit.map_or("none".into(), |c| c.to_string())
                ),
                FailKind::OutOfMemory,
            )),
            None => {
                let reason = (code.as_deref(), why.as_str());
                let failed = exit_failure(exit, receipt.as_ref(), site.outputs, reason);
                if failed.is_none() {
                    task.succeed(stopped);
                }
                failed
            }
        };
        let ended = crate::record::Timeline {
            exit_code: exit,
            reason: failure.as_ref().map(|(r, _)| r.clone()),
            ..Default::default()
        };
        task.saw(attempt, &ended);
        if let Some((reason, kind)) = failure {
            fail_attempt(task, attempt, reason, kind, settings, cancelling);
        }
        if task.state == TaskState::Failed {
            task.log_tail = self.tail(task.log.as_deref(), 5).await;
        }
        Ok(())
    }

    /// StopTask for running tasks past their timeout, or all of them when the run is cancelled.
    async fn enforce_stops(&mut self, rec: &mut RunRecord) -> Result<(), RemoteError> {
        let now = Utc::now();
        for task in rec
            .tasks
            .iter_mut()
            .filter(|t| t.state == TaskState::Running)
        {
            let Some(wanted) = stop_due(task, &rec.settings, rec.cancel_requested, now) else {
                continue;
            };
            task.stop_request.get_or_insert(wanted);
            let Some(arn) = task.handle.clone() else {
                continue;
            };
            if self.stopping.contains(&arn) {
                continue;
            }
            let reason = match task.stop_request {
                Some(StopRequest::Timeout) => "jobrun: the task timed out",
                _ => "jobrun: the run was cancelled",
            };
            let stopped = retrying(|| async {
                self.ecs
                    .stop_task()
                    .cluster(&self.remote.run.site.cluster)
                    .task(&arn)
                    .reason(reason)
                    .send()
                    .await
                    .map_err(aws::op("StopTask"))
            })
            .await;
            // A task that is already gone is stopped enough.
            aws::found(stopped, &["InvalidParameterException", "ClientException"])?;
            self.stopping.insert(arn);
        }
        Ok(())
    }

    /// Starts queued tasks (a slice per pass, so the record is saved as dispatch goes).
    async fn dispatch(&mut self, rec: &mut RunRecord) -> Result<(), RemoteError> {
        let running = rec.count(TaskState::Running);
        let slots = rec.settings.concurrency.saturating_sub(running);
        let queued = rec.startable().count();
        // About five seconds of RunTask calls per pass.
        let chunk = (self.remote.run.rates.run_task_rate as usize * 5).max(20);
        let picks: Vec<usize> = rec
            .startable()
            .take(slots.min(chunk))
            .map(|t| t.index)
            .collect();
        self.remote.more = picks.len() < queued.min(slots);
        if picks.is_empty() {
            return Ok(());
        }
        let mut jobs = Vec::with_capacity(picks.len());
        for &i in &picks {
            jobs.push(self.prepare(rec, i).await?);
        }
        let (this, run_id) = (&*self, rec.run_id.clone());
        let results: Vec<(usize, u32, Launch)> = futures_util::stream::iter(jobs)
            .map(|d| {
                let run_id = &run_id;
                async move {
                    let launch = this.launch(run_id, &d).await;
                    (d.index, d.attempt, launch)
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let now = Utc::now();
        let mut first_error = None;
        let (settings, cancelling) = (rec.settings.clone(), rec.cancel_requested);
        for (i, attempt, launch) in results {
            let task = &mut rec.tasks[i];
            match launch {
                Launch::Started { arn, phase } => {
                    self.tries.remove(&(i, attempt));
                    task.log = Some(log_pointer(&self.remote.run.site.log_group, &arn));
                    task.log_tail.clear();
                    task.phase = phase.or(Some("PROVISIONING".into()));
                    task.start(attempt, arn, now);
                }
                Launch::NoCapacity { why, quota } => {
                    *self.tries.entry((i, attempt)).or_default() += 1;
                    // Tried again at the next poll, not at once: no busy loop while AWS has none.
                    task.reason = Some(match quota {
                        true => format!("{WAITING_FOR_QUOTA}: {why}"),
                        false => format!("{WAITING_FOR_CAPACITY}: {why}"),
                    });
                }
                Launch::Refused(why) => {
                    task.started_at = Some(now);
                    task.finished_at = Some(now);
                    let reason = format!("ECS would not start it: {why}");
                    fail_attempt(
                        task,
                        attempt,
                        reason,
                        FailKind::Other,
                        &settings,
                        cancelling,
                    );
                }
                Launch::Error(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The last `lines` lines of a task's CloudWatch log (empty when there is none).
    async fn tail(&self, pointer: Option<&str>, lines: i32) -> Vec<String> {
        let Some((group, stream)) = pointer.and_then(parse_log_pointer) else {
            return vec![];
        };
        let out = self
            .remote
            .aws
            .logs()
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(false)
            .limit(lines)
            .send()
            .await;
        match out {
            Ok(out) => out
                .events()
                .iter()
                .filter_map(|e| e.message())
                .map(|m| m.trim_end().to_string())
                .collect(),
            Err(e) => {
                tracing::debug!("no log tail for {stream}: {e}");
                vec![]
            }
        }
    }

    /// A task's log from CloudWatch Logs; with `follow`, until the task stops.
    pub async fn logs(
        &self,
        rec: &RunRecord,
        index: usize,
        follow: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), RemoteError> {
        let task = &rec.tasks[index];
        let Some((group, stream)) = task.log.as_deref().and_then(parse_log_pointer) else {
            return Ok(());
        };
        let logs = self.remote.aws.logs();
        let at = LogStream {
            group,
            stream,
            window: (None, None),
        };
        let mut token: Option<String> = None;
        let mut last_round = !follow || task.state.is_terminal();
        loop {
            if let Some(next) = write_log(&logs, &at, token.clone(), out).await? {
                token = next;
            }
            if last_round {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            last_round = !self.still_running(task).await?;
        }
    }

    async fn still_running(&self, task: &TaskRecord) -> Result<bool, RemoteError> {
        let Some(arn) = &task.handle else {
            return Ok(false);
        };
        let out = self
            .ecs
            .describe_tasks()
            .cluster(&self.remote.run.site.cluster)
            .tasks(arn)
            .send()
            .await
            .map_err(aws::op("DescribeTasks"))?;
        Ok(out
            .tasks()
            .first()
            .is_some_and(|t| t.last_status() != Some("STOPPED")))
    }
}

/// Whether ECS stopped the container for its memory: its reason is an `OutOfMemoryError`
/// ("OutOfMemoryError: Container killed due to memory usage"; the error's name is the reason's
/// first word: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/out-of-memory.html).
fn out_of_memory(container: Option<&aws_sdk_ecs::types::Container>) -> bool {
    container
        .and_then(|c| c.reason())
        .is_some_and(|r| r.split(':').next() == Some("OutOfMemoryError"))
}

/// Why a task that stopped by itself failed (`None`: it succeeded): its exit code, and with
/// jobrun in the image (`outputs`), the receipt of its outputs.
fn exit_failure(
    exit: Option<i64>,
    receipt: Option<&Receipt>,
    outputs: bool,
    (code, why): (Option<&str>, &str),
) -> Option<(String, FailKind)> {
    match (exit, receipt.and_then(|r| r.upload_error.as_ref())) {
        (Some(0), Some(e)) => Some((
            format!("its outputs could not be uploaded: {e}"),
            FailKind::Other,
        )),
        (Some(c), None) if c == NO_RECEIPT as i64 && receipt.is_none() && outputs => Some((
            format!(
                "exit code {c}: the jobrun in the task could not upload its outputs (its log says why)"
            ),
            FailKind::Other,
        )),
        (Some(0), None) => None,
        (Some(c), Some(e)) => Some((
            format!("exit code {c}; its outputs could not be uploaded: {e}"),
            FailKind::Exit(c),
        )),
        (Some(c), None) => Some((format!("exit code {c}"), FailKind::Exit(c))),
        (None, _) => Some((
            format!(
                "stopped without an exit code ({}: {why})",
                code.unwrap_or("no stop code")
            ),
            FailKind::Other,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_by_fits_ecs() {
        let short = "20261123-131500-wc-7f3a";
        assert_eq!(started_by(short), short);
        let long = format!("20261123-131500-{}-7f3a", "a".repeat(40));
        let s = started_by(&long);
        assert_eq!(s.len(), 36);
        assert!(s.starts_with("20261123-131500-aaaaaaa-"));
        assert_ne!(started_by(&long), started_by(&long.replace("7f3a", "7f3b")));
    }

    #[test]
    fn a_failed_start_soon_after_iam_changed_says_so() {
        let now = Utc::now();
        let changed = Some(now - chrono::Duration::seconds(40));
        let note = iam_note(Some("TaskFailedToStart"), changed, now);
        assert!(note.contains("changed 40 s before"), "{note}");
        assert!(note.contains("jobrun retry --failed"), "{note}");
        // Not for other stop codes, nor long after, nor when up changed nothing.
        assert_eq!(iam_note(Some("SpotInterruption"), changed, now), "");
        let long_ago = Some(now - chrono::Duration::minutes(6));
        assert_eq!(iam_note(Some("TaskFailedToStart"), long_ago, now), "");
        assert_eq!(iam_note(Some("TaskFailedToStart"), None, now), "");
    }

    #[test]
    fn a_receipt_says_why_outputs_are_missing() {
        let failed = |e: &str| Receipt {
            upload_error: Some(e.into()),
            ..Receipt::default()
        };
        let stop = (
            Some("EssentialContainerExited"),
            "Essential container in task exited",
        );
        assert!(exit_failure(Some(0), Some(&Receipt::default()), true, stop).is_none());
        let (why, _) = exit_failure(Some(0), Some(&failed("AccessDenied")), true, stop).unwrap();
        assert_eq!(why, "its outputs could not be uploaded: AccessDenied");
        let (why, _) = exit_failure(Some(3), Some(&failed("x")), true, stop).unwrap();
        assert_eq!(why, "exit code 3; its outputs could not be uploaded: x");
        let (why, _) = exit_failure(Some(125), None, true, stop).unwrap();
        assert!(why.contains("could not upload its outputs"), "{why}");
        // Without jobrun in the image, 125 is the command's own code.
        let (why, _) = exit_failure(Some(125), None, false, stop).unwrap();
        assert_eq!(why, "exit code 125");
        let (why, _) = exit_failure(None, None, true, (Some("TaskFailedToStart"), "x")).unwrap();
        assert!(
            why.contains("stopped without an exit code (TaskFailedToStart: x)"),
            "{why}"
        );
    }

    #[test]
    fn client_tokens_are_stable_and_distinct() {
        let a = client_token("r", 1, 1, "FARGATE_SPOT", 0);
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| (33..=126).contains(&b)));
        assert_eq!(a, client_token("r", 1, 1, "FARGATE_SPOT", 0));
        for other in [
            client_token("r", 2, 1, "FARGATE_SPOT", 0),
            client_token("r", 1, 2, "FARGATE_SPOT", 0),
            client_token("r", 1, 1, "FARGATE", 0),
            client_token("r", 1, 1, "FARGATE_SPOT", 1),
        ] {
            assert_ne!(a, other);
        }
    }
}

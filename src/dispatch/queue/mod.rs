//! The ECS queue dispatcher: configurations go into the job's SQS queue, and `jobrun agent` workers
//! in an autoscaled service take them one at a time.
//!
//! Dispatch sends `SendMessageBatch` calls of 10 messages (never more than SQS's 1 MiB a call),
//! many at once, and retries only the entries a batch reports as failed. A configuration too
//! large for a message goes to S3 and travels as a pointer. Every message carries run, index and
//! attempt. Watching reads the result records the agents write under the run's S3 prefix
//! (`results/<index>/<attempt>-<outcome>.json`), plus the queue's and dead-letter queue's
//! counts and the service's workers. SQS redelivers a failed message until `maxReceiveCount`,
//! then moves it to the dead-letter queue; the agent marks that last result final. `retry
//! --failed` removes the run's messages from the dead-letter queue and sends them again as new
//! attempts. Cancelling leaves a marker object that agents check before and while they work.

mod dead;
mod workers;

use super::remote::{LogStream, RemoteError, RemoteRun, write_log};
use crate::aws::{self, AwsError, retrying};
use crate::record::{Place, QueueRun, QueueStats, RunRecord, TaskRecord, TaskState};
use crate::wire::{
    CONFIG_ENV_LIMIT, MESSAGE_LIMIT, Outcome, TaskMessage, TaskResult, cancel_key,
    parse_log_pointer, parse_result_key, results_prefix,
};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long one dispatch pass sends before the record is saved.
const SLICE: Duration = Duration::from_secs(5);
/// SQS's limit for entries in one batch call.
pub const BATCH_ENTRIES: usize = 10;
/// Entries to send: (index, attempt, body).
type Outgoing = Vec<(usize, u32, String)>;

/// Splits messages into batches of at most 10 entries and 1 MiB.
fn batches(mut msgs: Outgoing) -> Vec<Outgoing> {
    let mut out: Vec<Outgoing> = vec![];
    let mut size = 0;
    for m in msgs.drain(..) {
        let len = m.2.len();
        let fits = out
            .last()
            .is_some_and(|b| b.len() < BATCH_ENTRIES && size + len <= MESSAGE_LIMIT);
        if !fits {
            out.push(vec![]);
            size = 0;
        }
        size += len;
        out.last_mut().expect("pushed").push(m);
    }
    out
}

/// What one batch sent (or SQS refused), and the error that stopped it, if any.
type SentBatch = (Vec<(usize, u32, Sent)>, Option<AwsError>);

/// How one message of a batch ended.
enum Sent {
    Ok(String),
    Refused(String),
}

pub struct QueueDispatcher {
    pub(super) remote: RemoteRun,
    sqs: aws_sdk_sqs::Client,
    queue: QueueRun,
    /// Result keys (below the run's results prefix) already applied by this process.
    seen: HashSet<String>,
    cancel_marked: bool,
    /// When the dead-letter queue was last looked through, and how full it was then.
    dead_scan: Option<(Instant, i64)>,
    /// The run's dead letters and cancel marker were cleared for the retry being sent.
    retry_prepared: bool,
    /// Worker tasks whose start this run does not keep (made before it was submitted, or past
    /// `max_workers` of them): not described again.
    other_workers: HashSet<String>,
    /// The caller may not list the workers (see `workers::see_workers`).
    workers_unseen: bool,
}

impl QueueDispatcher {
    pub fn new(remote: RemoteRun, queue: QueueRun) -> QueueDispatcher {
        QueueDispatcher {
            sqs: remote.aws.sqs_paced(),
            remote,
            queue,
            seen: HashSet::new(),
            cancel_marked: false,
            dead_scan: None,
            retry_prepared: false,
            other_workers: HashSet::new(),
            workers_unseen: false,
        }
    }

    /// Listing results costs a call per 1,000 tasks: at most one listing pass every ~2 s.
    pub fn poll_floor(&self, rec: &RunRecord) -> Duration {
        Duration::from_millis(500 + 250 * rec.tasks.len().div_ceil(1000) as u64)
    }

    /// See [`Dispatcher::reconcile`](super::Dispatcher::reconcile).
    pub async fn reconcile(&mut self, rec: &mut RunRecord) -> Result<(), RemoteError> {
        if rec.cancel_requested && !self.cancel_marked {
            self.mark_cancelled(rec).await?;
        }
        // While there is something to send, sending comes first: results and counts are read
        // at the next pass (at most one 5 s slice later).
        let sending = !rec.cancel_requested && rec.startable().next().is_some();
        if sending {
            self.send(rec).await?;
            // Everything is sent: the workers are started now, not when CloudWatch notices.
            if rec.startable().next().is_none() {
                let stats = self.stats().await?;
                self.size_workers(rec, &stats).await?;
            }
            return Ok(());
        }
        self.collect(rec).await?;
        let stats = self.stats().await?;
        self.size_workers(rec, &stats).await?;
        self.see_workers(rec, &stats).await?;
        if let Place::Queue(_, q) = &mut rec.place {
            q.observe(stats, Utc::now());
        }
        // A message in the dead-letter queue without a final result (its worker died every
        // time, or it never parsed): found by looking there. Looked at again when it has
        // grown, or after a minute (other runs' dead letters stay there for 14 days and must
        // not cost a scan every poll).
        let unresolved = rec.count(TaskState::Running);
        let due = self
            .dead_scan
            .is_none_or(|(at, dead)| stats.dead > dead || at.elapsed() > Duration::from_secs(60));
        if stats.dead > 0 && unresolved > 0 && due {
            self.scan_dead(rec, false, stats.dead).await?;
            self.dead_scan = Some((Instant::now(), stats.dead));
        }
        if rec.cancel_requested {
            super::cancel_queued(rec);
            // Sent tasks are cancelled now: an agent that takes one sees the marker and
            // deletes it, and one running it stops at its next heartbeat.
            let now = Utc::now();
            for t in rec
                .tasks
                .iter_mut()
                .filter(|t| t.state == TaskState::Running)
            {
                t.cancel("cancelled", now);
            }
        }
        self.remote.more = false;
        Ok(())
    }

    async fn mark_cancelled(&mut self, rec: &RunRecord) -> Result<(), RemoteError> {
        let marker = serde_json::json!({ "cancelled_at": Utc::now() });
        crate::aws::put_json(
            &self.remote.aws.s3(),
            &self.remote.run.site.bucket,
            &cancel_key(&rec.job, &rec.run_id),
            marker.to_string().into_bytes(),
        )
        .await?;
        self.cancel_marked = true;
        Ok(())
    }

    /// What the queue's results and counts say, without sending, scaling or marking anything
    /// (what a read command shows).
    pub(super) async fn observe(&mut self, rec: &mut RunRecord) -> Result<(), RemoteError> {
        self.collect(rec).await?;
        let stats = self.stats().await?;
        self.see_workers(rec, &stats).await?;
        if let Place::Queue(_, q) = &mut rec.place {
            q.observe(stats, Utc::now());
        }
        Ok(())
    }

    /// Queue depth, messages in flight, the dead-letter queue, and the service's workers.
    async fn stats(&self) -> Result<QueueStats, RemoteError> {
        let attrs = |url: String| async move {
            retrying(|| async {
                self.sqs
                    .get_queue_attributes()
                    .queue_url(&url)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                    .send()
                    .await
                    .map_err(aws::op("GetQueueAttributes"))
            })
            .await
        };
        let num = |out: &aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesOutput,
                   k: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&k))
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let q = attrs(self.queue.queue_url.clone()).await?;
        let d = attrs(self.queue.dlq_url.clone()).await?;
        let mut stats = QueueStats {
            visible: num(&q, QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: num(
                &q,
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            ),
            dead: num(&d, QueueAttributeName::ApproximateNumberOfMessages)
                + num(
                    &d,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ),
            ..QueueStats::default()
        };
        if !self.queue.service.is_empty() {
            let out = retrying(|| async {
                self.remote
                    .aws
                    .ecs()
                    .describe_services()
                    .cluster(&self.remote.run.site.cluster)
                    .services(&self.queue.service)
                    .send()
                    .await
                    .map_err(aws::op("DescribeServices"))
            })
            .await?;
            if let Some(s) = out.services().first() {
                stats.workers = s.running_count();
                stats.desired = s.desired_count();
                stats.pending = s.pending_count();
            }
        }
        Ok(stats)
    }

    /// Reads the result records written since the last look, and applies them.
    async fn collect(&mut self, rec: &mut RunRecord) -> Result<(), RemoteError> {
        let prefix = results_prefix(&rec.job, &rec.run_id);
        let s3 = self.remote.aws.s3();
        let mut fresh: Vec<String> = vec![];
        let listed = aws::list_objects(&s3, &self.remote.run.site.bucket, &prefix).await?;
        tracing::debug!(
            tasks = rec.tasks.len(),
            listed = listed.len(),
            "results listing round"
        );
        for o in listed {
            if self.seen.contains(&o.rel) {
                continue;
            }
            let parsed = parse_result_key(&o.rel).filter(|(i, _, _)| *i < rec.tasks.len());
            match parsed {
                // Results of attempts before the last retry belong to the past.
                Some((i, a, _)) if a > rec.tasks[i].retried_from => fresh.push(o.rel),
                _ => {
                    self.seen.insert(o.rel);
                }
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let bucket = self.remote.run.site.bucket.clone();
        let got: Vec<(String, Result<Option<TaskResult>, AwsError>)> =
            futures_util::stream::iter(fresh)
                .map(|rel| {
                    let (s3, bucket, key) = (&s3, &bucket, format!("{prefix}{rel}"));
                    async move {
                        let r = crate::aws::get_json::<TaskResult>(s3, bucket, &key).await;
                        (rel, r)
                    }
                })
                .buffer_unordered(32)
                .collect()
                .await;
        let mut results: Vec<(String, TaskResult)> = vec![];
        for (key, r) in got {
            match r? {
                Some(r) => results.push((key, r)),
                // Listed but gone, or not a result: never look again.
                None => {
                    self.seen.insert(key);
                }
            }
        }
        // Oldest attempt first, so the newest word on a task is the one that stays.
        results.sort_by_key(|(_, r)| (r.index, r.attempt, r.outcome == Outcome::Succeeded));
        // Workers run on the job's capacity: on Spot when it is spot (their service's strategy).
        let spot = self.remote.run.capacity.kind == crate::config::CapacityKind::Spot;
        for (key, r) in results {
            if r.run_id == rec.run_id && r.index < rec.tasks.len() {
                let task = &mut rec.tasks[r.index];
                apply(task, &r);
                // Every delivery that ran is billed, also one that came after the outcome.
                task.bill_span(r.attempt, Some(r.started_at), Some(r.finished_at), spot);
                // A delivery's time: from its worker's receive to its result.
                let seen = crate::record::Timeline {
                    started_at: Some(r.started_at),
                    stopped_at: Some(r.finished_at),
                    exit_code: r.exit_code,
                    reason: r.reason.clone(),
                    ..Default::default()
                };
                task.saw(r.attempt, &seen);
            }
            self.seen.insert(key);
        }
        Ok(())
    }

    /// Sends queued tasks (there are some) as messages, a slice per pass, so the record is
    /// saved as it goes.
    async fn send(&mut self, rec: &mut RunRecord) -> Result<(), RemoteError> {
        // A retry: the run's messages still in the dead-letter queue are taken out first, so
        // the queue holds one message per task (once per process, not once per slice).
        if !self.retry_prepared
            && rec
                .tasks
                .iter()
                .any(|t| t.state == TaskState::Queued && t.retried_from > 0)
        {
            let dead = self.stats().await?.dead;
            self.scan_dead(rec, true, dead).await?;
            // A cancel before this retry left its marker: the retried tasks must not see it.
            let key = cancel_key(&rec.job, &rec.run_id);
            retrying(|| async {
                self.remote
                    .aws
                    .s3()
                    .delete_object()
                    .bucket(&self.remote.run.site.bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(aws::op("DeleteObject"))
            })
            .await?;
            self.retry_prepared = true;
        }
        // A slice of about five seconds of calls per pass, so the record is saved (and a crash
        // re-sends little) as dispatch goes; the bodies of at most 20,000 tasks are made ahead.
        let picks: Vec<usize> = rec.startable().take(20_000).map(|t| t.index).collect();
        let mut outgoing: Outgoing = Vec::with_capacity(picks.len());
        for &i in &picks {
            let (attempt, body) = self.message(rec, i).await?;
            outgoing.push((i, attempt, body));
        }
        let this = &*self;
        let started = Instant::now();
        let results: Vec<SentBatch> = futures_util::stream::iter(batches(outgoing))
            .take_while(|_| futures_util::future::ready(started.elapsed() < SLICE))
            .map(|b| this.send_batch(b))
            .buffer_unordered(self.queue.send_concurrency)
            .collect()
            .await;
        let now = Utc::now();
        let mut first_error = None;
        for (sent, error) in results {
            if let Some(e) = error {
                first_error.get_or_insert(e);
            }
            for (i, attempt, s) in sent {
                let task = &mut rec.tasks[i];
                match s {
                    Sent::Ok(id) => {
                        task.start(attempt, id, now);
                        // Not started by a worker yet: started_at is when it was sent.
                        task.phase = Some("QUEUED".into());
                        task.reason = None;
                        task.log_tail.clear();
                    }
                    Sent::Refused(why) => {
                        task.attempts = attempt;
                        task.fail(format!("SQS refused the message: {why}"), now);
                    }
                }
            }
        }
        self.remote.more = rec.startable().next().is_some();
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The message of a queued task (its configuration in S3 when it would not fit).
    async fn message(&self, rec: &RunRecord, i: usize) -> Result<(u32, String), RemoteError> {
        let task = &rec.tasks[i];
        let attempt = task.retried_from + 1;
        let mut msg = TaskMessage {
            jobrun: 1,
            job: rec.job.clone(),
            run_id: rec.run_id.clone(),
            index: i,
            count: rec.map_count(),
            stage: task.stage,
            attempt,
            command: task.command.clone(),
            env: task.env.clone(),
            config: Some(task.config.value()),
            config_url: None,
            timeout_secs: rec.settings.timeout_secs,
        };
        let config = task.config.to_string();
        if config.len() <= CONFIG_ENV_LIMIT {
            let body = sqs_body(&msg);
            if body.len() <= MESSAGE_LIMIT {
                return Ok((attempt, body));
            }
        }
        let url = self.remote.store_config(rec, i, &config).await?;
        msg.config = None;
        msg.config_url = Some(url);
        Ok((attempt, sqs_body(&msg)))
    }

    /// One batch, sent until every entry is in or refused: a failed call is retried whole, a
    /// call that failed some entries is retried with those entries only.
    async fn send_batch(&self, mut batch: Outgoing) -> SentBatch {
        let mut done = vec![];
        use backon::BackoffBuilder as _;
        let mut pause = aws::backoff().build();
        loop {
            let entries: Vec<SendMessageBatchRequestEntry> = batch
                .iter()
                .map(|(i, _, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .expect("id and body")
                })
                .collect();
            let out = retrying(|| async {
                self.sqs
                    .send_message_batch()
                    .queue_url(&self.queue.queue_url)
                    .set_entries(Some(entries.clone()))
                    .send()
                    .await
                    .map_err(aws::op("SendMessageBatch"))
            })
            .await;
            // What earlier rounds sent stays sent, error or not: those tasks must not be sent
            // a second time.
            let out = match out {
                Ok(out) => out,
                Err(e) => return (done, Some(e)),
            };
            let by_id: HashMap<String, usize> = batch
                .iter()
                .enumerate()
                .map(|(n, (i, _, _))| (i.to_string(), n))
                .collect();
            let mut again = vec![];
            for s in out.successful() {
                if let Some(&n) = by_id.get(s.id()) {
                    done.push((batch[n].0, batch[n].1, Sent::Ok(s.message_id().to_string())));
                }
            }
            for f in out.failed() {
                let Some(&n) = by_id.get(f.id()) else {
                    continue;
                };
                if f.sender_fault() {
                    let why = format!("{}: {}", f.code(), f.message().unwrap_or_default());
                    done.push((batch[n].0, batch[n].1, Sent::Refused(why)));
                } else {
                    again.push(n);
                }
            }
            if again.is_empty() {
                return (done, None);
            }
            let Some(delay) = pause.next() else {
                let e = AwsError::Service {
                    operation: "SendMessageBatch",
                    code: "EntriesFailed".into(),
                    message: format!("{} entries kept failing", again.len()),
                };
                return (done, Some(e));
            };
            tokio::time::sleep(delay).await;
            batch = again.into_iter().map(|n| batch[n].clone()).collect();
        }
    }

    /// A task's output: the worker's CloudWatch stream over the attempt's time, or the last
    /// lines the agent kept in the result when there is no stream.
    pub async fn logs(
        &self,
        rec: &RunRecord,
        index: usize,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), RemoteError> {
        let task = &rec.tasks[index];
        let pointer = task.log.as_deref().and_then(parse_log_pointer);
        if let Some((group, stream)) = pointer {
            let ms = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis());
            let at = LogStream {
                group,
                stream,
                window: (ms(task.started_at), ms(task.finished_at).map(|t| t + 1)),
            };
            if write_log(&self.remote.aws.logs(), &at, None, out)
                .await?
                .is_some()
            {
                return Ok(());
            }
        }
        for line in &task.log_tail {
            writeln!(out, "{line}").map_err(RemoteError::Output)?;
        }
        Ok(())
    }
}

/// One result into its task's record.
fn apply(task: &mut TaskRecord, r: &TaskResult) {
    if task.state == TaskState::Succeeded || task.state == TaskState::Cancelled {
        return;
    }
    task.attempts = task.attempts.max(r.attempt);
    task.exit_code = r.exit_code;
    task.started_at = Some(r.started_at);
    task.log = r.log.clone();
    task.log_tail = r.log_tail.clone();
    task.set_result(r.outputs.as_ref().and_then(|o| o.result()));
    let restored = r.outputs.as_ref().and_then(|o| o.checkpoint.as_ref());
    task.resumed_from_checkpoint(r.attempt, restored.map_or(0, |c| c.restored));
    match r.outcome {
        Outcome::Succeeded => task.succeed(r.finished_at),
        Outcome::Cancelled => task.cancel("cancelled", r.finished_at),
        Outcome::Failed => {
            let why = r.reason.clone().unwrap_or_else(|| "failed".into());
            if r.is_final {
                let reason = format!(
                    "{why} (attempt {}, last of {} receives: in the dead-letter queue)",
                    r.attempt, r.receive_count
                );
                task.fail(reason, r.finished_at);
            } else {
                task.phase = Some("RETRYING".into());
                task.reason = Some(format!(
                    "attempt {} failed: {why}; SQS delivers it again",
                    r.attempt
                ));
            }
        }
    }
}

/// A task's message as SQS takes it: JSON whose characters are all in SQS's set (`#x9 | #xA |
/// #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF`, else InvalidMessageContents:
/// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html).
/// serde_json already escapes control characters (a NUL is `\u0000`); U+FFFE and U+FFFF, which a
/// configuration's strings may hold, can only be inside a JSON string, so they are escaped the
/// same way and the worker reads the configuration back unchanged.
fn sqs_body(msg: &TaskMessage) -> String {
    let json = serde_json::to_string(msg).expect("messages serialise");
    if !json.contains(['\u{fffe}', '\u{ffff}']) {
        return json;
    }
    json.replace('\u{fffe}', "\\ufffe")
        .replace('\u{ffff}', "\\uffff")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Stage;

    /// Every character of a body is in SQS's set, and the worker reads the configuration back
    /// as it was: a NUL, U+FFFE and U+FFFF included.
    #[test]
    fn a_message_body_holds_only_what_sqs_takes_and_reads_back_whole() {
        let config = serde_json::json!({"s": "a\u{0}b\u{fffe}c\u{ffff}d\u{1f600}é\t"});
        let msg = TaskMessage {
            jobrun: 1,
            job: "j".into(),
            run_id: "r".into(),
            index: 0,
            count: 1,
            stage: Stage::Map,
            attempt: 1,
            command: None,
            env: Default::default(),
            config: Some(config.clone()),
            config_url: None,
            timeout_secs: 60,
        };
        let body = sqs_body(&msg);
        let allowed = |c: char| {
            matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
                || c >= '\u{10000}'
        };
        assert!(body.chars().all(allowed), "{body:?}");
        let back: TaskMessage = serde_json::from_str(&body).unwrap();
        assert_eq!(back.config, Some(config));
    }

    #[test]
    fn batches_hold_ten_entries_and_one_mebibyte() {
        let small: Outgoing = (0..25).map(|i| (i, 1, "x".repeat(100))).collect();
        let b = batches(small);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 5]);
        let big: Outgoing = (0..5).map(|i| (i, 1, "x".repeat(400 * 1024))).collect();
        let b = batches(big);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert!(
            b.iter()
                .all(|b| b.iter().map(|m| m.2.len()).sum::<usize>() <= MESSAGE_LIMIT)
        );
    }

    fn result(attempt: u32, outcome: Outcome, is_final: bool) -> TaskResult {
        TaskResult {
            run_id: "r".into(),
            index: 0,
            attempt,
            outcome,
            exit_code: Some(if outcome == Outcome::Succeeded { 0 } else { 3 }),
            reason: Some("exit code 3".into()),
            is_final,
            receive_count: attempt,
            started_at: Utc::now(),
            finished_at: Utc::now(),
            log: None,
            log_tail: vec!["boom".into()],
            worker: "w".into(),
            s3_object: None,
            outputs: None,
        }
    }

    #[test]
    fn results_move_a_task_to_retrying_then_failed() {
        let mut t = TaskRecord::new(0, serde_json::Value::Null, None);
        t.start(1, "m".into(), Utc::now());
        apply(&mut t, &result(1, Outcome::Failed, false));
        assert_eq!(t.state, TaskState::Running);
        assert_eq!(t.phase.as_deref(), Some("RETRYING"));
        apply(&mut t, &result(3, Outcome::Failed, true));
        assert_eq!(t.state, TaskState::Failed);
        assert_eq!(t.attempts, 3);
        assert!(t.reason.as_deref().unwrap().contains("dead-letter"));
        let mut t = TaskRecord::new(0, serde_json::Value::Null, None);
        apply(&mut t, &result(2, Outcome::Succeeded, true));
        apply(&mut t, &result(3, Outcome::Failed, true));
        assert_eq!(t.state, TaskState::Succeeded);
    }
}

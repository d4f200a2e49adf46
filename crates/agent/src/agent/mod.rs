//! `jobrun agent`: the queue-mode worker inside the job's container, so the job's own code never
//! talks to SQS.
//!
//! It long-polls the job's queue and takes one message at a time. For each it runs the job's
//! command as a child process with the same `JOBRUN_*` environment as direct mode, keeps the
//! message invisible to other workers while the child runs (a heartbeat that extends the
//! visibility timeout), protects its ECS task from scale-in meanwhile, and writes a result record
//! (exit code, times, attempt, log pointer, last lines) under the run's S3 prefix. Success
//! deletes the message; failure makes it visible again for redelivery (SQS moves it to the
//! dead-letter queue after `maxReceiveCount` receives, and that last result says so). On SIGTERM
//! (Spot interruption, scale-in, deploy) it stops the child gracefully, makes the message
//! visible again at once, and exits without a result. A message whose task already has a
//! success is deleted without running it again. With nothing to do for `--idle-exit` it exits.

mod child;
pub mod direct;
pub mod outputs;
mod work;

use crate::aws::{self, AwsError, retrying};
use crate::wire::{Outcome, TaskResult, cancel_key, result_key, results_prefix};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use child::Done;
use chrono::Utc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};
use work::{Parsed, Work};

/// SQS: a message's visibility can be extended to at most 12 hours in total from its receive;
/// "If you try to extend the visibility timeout beyond 12 hours, your request is rejected"
/// (SQS API Reference, ChangeMessageVisibility). Each extension asks for the visibility
/// timeout or what is left of the 12 hours (a minute kept back for the time between the
/// receive and `since`'s start), and none once nothing is left.
fn extension(visibility: Duration, since_receive: Duration) -> Option<Duration> {
    const MAX: Duration = Duration::from_secs(12 * 3600);
    let left = MAX.saturating_sub(since_receive + Duration::from_secs(60));
    let extend = Duration::from_secs(visibility.min(left).as_secs());
    (!extend.is_zero()).then_some(extend)
}

/// What `jobrun agent` is told (flags, else the task definition's environment; `args.rs`).
#[derive(Debug)]
pub struct AgentArgs {
    /// The queue to take tasks from.
    pub queue_url: String,
    /// The job's bucket, where result records go.
    pub bucket: String,
    /// The job's name (for S3-event tasks, which do not carry it).
    pub job: String,
    /// Exit after this long without a message.
    pub idle_exit: Duration,
    /// How long a taken message stays invisible (default: the queue's visibility timeout).
    pub visibility: Option<Duration>,
    /// The queue's maxReceiveCount (default: read from its redrive policy).
    pub max_receives: Option<u32>,
    /// Timeout of tasks whose message does not say (S3 events).
    pub timeout: Duration,
    /// The image's entrypoint, as a JSON array, put before every command.
    pub entrypoint: String,
    /// The command of tasks whose message carries none (S3 events), as a JSON array.
    pub default_command: String,
    /// The CloudWatch log group the worker's output goes to (for log pointers).
    pub log_group: Option<String>,
    /// How long a stopping child gets between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Stop after this many messages (0: no limit).
    pub max_messages: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{0} is not a JSON array of strings")]
    Argv(&'static str),
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
}

struct Agent {
    args: AgentArgs,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    entrypoint: Vec<String>,
    default_command: Vec<String>,
    visibility: Duration,
    max_receives: u32,
    /// This worker: ECS task ARN, or host name.
    worker: String,
    log: Option<String>,
    http: crate::endpoint::Endpoint,
}

pub async fn run(args: AgentArgs) -> Result<(), AgentError> {
    let entrypoint: Vec<String> =
        serde_json::from_str(&args.entrypoint).map_err(|_| AgentError::Argv("--entrypoint"))?;
    let default_command: Vec<String> = serde_json::from_str(&args.default_command)
        .map_err(|_| AgentError::Argv("--default-command"))?;
    let aws = crate::aws::Aws::load(None, None).await?;
    let sqs = aws.sqs();
    let (visibility, max_receives) = queue_settings(&sqs, &args).await?;
    let http = local_http();
    let (worker, log) = whoami(&http, args.log_group.as_deref()).await;
    let mut agent = Agent {
        s3: aws.s3(),
        sqs,
        entrypoint,
        default_command,
        visibility,
        max_receives,
        worker,
        log,
        http,
        args,
    };
    agent.serve().await
}

/// The visibility timeout and maxReceiveCount: given, or read from the queue.
async fn queue_settings(
    sqs: &aws_sdk_sqs::Client,
    args: &AgentArgs,
) -> Result<(Duration, u32), AgentError> {
    if let (Some(v), Some(m)) = (args.visibility, args.max_receives) {
        return Ok((v, m));
    }
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = retrying(|| async {
        sqs.get_queue_attributes()
            .queue_url(&args.queue_url)
            .attribute_names(A::VisibilityTimeout)
            .attribute_names(A::RedrivePolicy)
            .send()
            .await
            .map_err(aws::op("GetQueueAttributes"))
    })
    .await?;
    let attrs = out.attributes().cloned().unwrap_or_default();
    let visibility = args.visibility.unwrap_or_else(|| {
        Duration::from_secs(
            attrs
                .get(&A::VisibilityTimeout)
                .and_then(|v| v.parse().ok())
                .unwrap_or(30),
        )
    });
    let max_receives = args.max_receives.unwrap_or_else(|| {
        attrs
            .get(&A::RedrivePolicy)
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| match &p["maxReceiveCount"] {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            })
            .map(|n| n as u32)
            .unwrap_or(u32::MAX)
    });
    Ok((visibility, max_receives))
}

/// This process's ECS task ARN (the driver's name as a lease holder), or host/<name>/<pid>.
pub async fn whoami_task() -> String {
    whoami(&local_http(), None).await.0
}

fn local_http() -> crate::endpoint::Endpoint {
    crate::endpoint::Endpoint::new()
}

/// This worker's ECS task (from the task metadata endpoint) and its log stream, or the host.
async fn whoami(http: &crate::endpoint::Endpoint, group: Option<&str>) -> (String, Option<String>) {
    if let Ok(uri) = std::env::var("ECS_CONTAINER_METADATA_URI_V4")
        && let Ok(text) = http
            .get(&format!("{uri}/task"), Duration::from_secs(5))
            .await
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(arn) = v["TaskARN"].as_str()
    {
        let log = group.map(|g| crate::wire::log_pointer(g, arn));
        return (arn.to_string(), log);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    (format!("host/{host}/{}", std::process::id()), None)
}

fn say(line: &str) {
    eprintln!("jobrun agent: {line}");
}

impl Agent {
    async fn serve(&mut self) -> Result<(), AgentError> {
        let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(AgentError::Signals)?;
        let mut idle_since = Instant::now();
        let mut handled = 0u64;
        say(&format!(
            "taking tasks from {} (visibility {}s, {} receives before the dead-letter queue)",
            self.args.queue_url,
            self.visibility.as_secs(),
            self.max_receives
        ));
        // Idle means SQS answered with nothing: a worker that never reached SQS in that time
        // (no route, TLS that cannot start) fails with the last error instead of exiting 0.
        let (mut reached, mut last_error): (bool, Option<AwsError>) = (false, None);
        loop {
            let left = self.args.idle_exit.saturating_sub(idle_since.elapsed());
            if left.is_zero() {
                if let (false, Some(e)) = (reached, last_error) {
                    return Err(e.into());
                }
                say(&format!(
                    "nothing to do for {}s: exiting",
                    self.args.idle_exit.as_secs()
                ));
                return Ok(());
            }
            let wait = left.as_secs().clamp(1, 20) as i32;
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.args.queue_url)
                .max_number_of_messages(1)
                .wait_time_seconds(wait)
                .visibility_timeout(self.visibility.as_secs() as i32)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send();
            let out = tokio::select! {
                out = receive => out.map_err(aws::op("ReceiveMessage")),
                _ = term.recv() => { say("SIGTERM while idle: exiting"); return Ok(()); }
                _ = int.recv() => { say("interrupted while idle: exiting"); return Ok(()); }
            };
            let out = match out {
                Ok(out) => out,
                Err(e) if e.is_transient() => {
                    say(&format!("{e}; trying again"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    last_error = Some(e);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            reached = true;
            let Some(msg) = out.messages().first().cloned() else {
                continue;
            };
            let stop = self.handle(&msg, &mut term, &mut int).await?;
            idle_since = Instant::now();
            handled += 1;
            if stop {
                return Ok(());
            }
            if self.args.max_messages > 0 && handled >= self.args.max_messages {
                return Ok(());
            }
        }
    }

    /// One message. Returns true when the agent must stop (it was told to).
    async fn handle(
        &self,
        msg: &aws_sdk_sqs::types::Message,
        term: &mut tokio::signal::unix::Signal,
        int: &mut tokio::signal::unix::Signal,
    ) -> Result<bool, AgentError> {
        // Within a few calls of the receive: what the 12-hour limit of its visibility counts from.
        let received = Instant::now();
        let receipt = msg.receipt_handle().unwrap_or_default().to_string();
        let receives: u32 = msg
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let body = msg.body().unwrap_or_default();
        let mut work = match self.parse(body, receives) {
            Parsed::Work(w) => w,
            Parsed::Ignore(why) => {
                say(&format!("{why}: deleting the message"));
                self.delete(&receipt).await?;
                return Ok(false);
            }
            Parsed::Bad(why) => {
                // Left alone: redelivered until SQS moves it to the dead-letter queue.
                say(&format!(
                    "message {} is not a task ({why}); left for the dead-letter queue",
                    msg.message_id().unwrap_or_default()
                ));
                self.release(&receipt).await?;
                return Ok(false);
            }
        };
        let label = format!(
            "{} task {} attempt {}",
            work.run_id, work.key_index, work.attempt
        );
        if self.already_done(&work).await? {
            say(&format!(
                "{label} already succeeded: deleting the redelivered message"
            ));
            self.delete(&receipt).await?;
            return Ok(false);
        }
        if self.cancelled(&work).await? {
            say(&format!("{label}: the run is cancelled"));
            let done = Done::cancelled();
            self.finish(&work, &receipt, receives, Utc::now(), vec![], done)
                .await?;
            return Ok(false);
        }
        say(&format!("{label}: starting (receive {receives})"));
        self.protect(true, work.timeout).await;
        let started = Utc::now();
        let target = self.outputs_of(&work);
        let folders = match target.prepare().await {
            Ok(f) => f,
            Err(why) => {
                self.protect(false, work.timeout).await;
                let done = Done::failed(None, format!("its folders could not be made: {why}"));
                say(&format!("{label}: failed ({why})"));
                self.finish(&work, &receipt, receives, started, vec![], done)
                    .await?;
                return Ok(false);
            }
        };
        folders.env(&mut work.env);
        let restored = target.restore_checkpoint(&folders, receives).await;
        let (ended, tail) = self
            .run_child(&work, (&receipt, received), term, int)
            .await?;
        let done = Done::of(ended, work.timeout);
        let uploaded = keep_and_upload(&target, &folders, restored, done.is_some()).await;
        self.protect(false, work.timeout).await;
        let Some(mut done) = done else {
            say(&format!(
                "{label}: stopped by a signal; the message goes back to the queue"
            ));
            self.release(&receipt).await?;
            return Ok(true);
        };
        if let Some(e) = uploaded.as_ref().and_then(|u| u.upload_error.clone())
            && done.outcome == Outcome::Succeeded
        {
            done = Done::failed(Some(0), format!("its outputs could not be uploaded: {e}"));
        }
        done.outputs = uploaded;
        match (&done.outcome, &done.reason) {
            (Outcome::Failed, Some(why)) => say(&format!("{label}: failed ({why})")),
            (outcome, _) => say(&format!("{label}: {}", outcome.as_str())),
        }
        self.finish(&work, &receipt, receives, started, tail, done)
            .await?;
        Ok(false)
    }

    /// Where a delivery's outputs go.
    fn outputs_of(&self, w: &Work) -> outputs::Target<'_> {
        outputs::Target {
            s3: &self.s3,
            bucket: &self.args.bucket,
            job: &self.args.job,
            run_id: w.run_id.clone(),
            index: w.key_index.clone(),
            stage: w.stage,
        }
    }

    async fn already_done(&self, w: &Work) -> Result<bool, AgentError> {
        let prefix = format!(
            "{}{}/",
            results_prefix(&self.args.job, &w.run_id),
            w.key_index
        );
        let listed = aws::list_objects(&self.s3, &self.args.bucket, &prefix).await?;
        Ok(listed.iter().any(|o| o.rel.ends_with("-succeeded.json")))
    }

    async fn cancelled(&self, w: &Work) -> Result<bool, AgentError> {
        let key = cancel_key(&self.args.job, &w.run_id);
        Ok(aws::object_exists(&self.s3, &self.args.bucket, &key).await?)
    }

    /// Keeps the message invisible for another visibility timeout, or what is left of the
    /// 12 hours SQS allows from the receive (past them it rejects the call).
    async fn heartbeat(&self, receipt: &str, received: Instant) {
        let Some(extend) = extension(self.visibility, received.elapsed()) else {
            return;
        };
        let r = retrying(|| async {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.args.queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(extend.as_secs() as i32)
                .send()
                .await
                .map_err(aws::op("ChangeMessageVisibility"))
        })
        .await;
        if let Err(e) = r {
            say(&format!("heartbeat failed: {e}"));
        }
    }

    /// Makes the message visible again at once (redelivery).
    async fn release(&self, receipt: &str) -> Result<(), AgentError> {
        retrying(|| async {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.args.queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await
                .map_err(aws::op("ChangeMessageVisibility"))
        })
        .await?;
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> Result<(), AgentError> {
        retrying(|| async {
            self.sqs
                .delete_message()
                .queue_url(&self.args.queue_url)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(aws::op("DeleteMessage"))
        })
        .await?;
        Ok(())
    }

    /// Writes the result of one delivery, then deletes the message (success, cancel) or makes
    /// it visible again for redelivery (failure; the last one goes to the dead-letter queue).
    async fn finish(
        &self,
        w: &Work,
        receipt: &str,
        receive_count: u32,
        started_at: chrono::DateTime<Utc>,
        log_tail: Vec<String>,
        done: Done,
    ) -> Result<(), AgentError> {
        let failed = done.outcome == Outcome::Failed;
        let result = TaskResult {
            run_id: w.run_id.clone(),
            index: w.index.unwrap_or(0),
            attempt: w.attempt,
            outcome: done.outcome,
            exit_code: done.exit_code,
            reason: done.reason,
            is_final: !failed || receive_count >= self.max_receives,
            receive_count,
            started_at,
            finished_at: Utc::now(),
            log: self.log.clone(),
            log_tail,
            worker: self.worker.clone(),
            s3_object: w.s3_object.clone(),
            outputs: done.outputs,
        };
        let key = result_key(
            &self.args.job,
            &w.run_id,
            &w.key_index,
            w.attempt,
            result.outcome,
        );
        let body = serde_json::to_vec(&result).expect("results serialise");
        crate::aws::put_json(&self.s3, &self.args.bucket, &key, body).await?;
        if failed {
            self.release(receipt).await
        } else {
            self.delete(receipt).await
        }
    }

    /// ECS task scale-in protection through the ECS agent's endpoint (only inside ECS).
    async fn protect(&self, on: bool, timeout: Duration) {
        let Ok(uri) = std::env::var("ECS_AGENT_URI") else {
            return;
        };
        let minutes = (timeout.as_secs().div_ceil(60) + 10).min(2880);
        let body = if on {
            serde_json::json!({"ProtectionEnabled": true, "ExpiresInMinutes": minutes})
        } else {
            serde_json::json!({"ProtectionEnabled": false})
        };
        let url = format!("{uri}/task-protection/v1/state");
        let r = self
            .http
            .put_json(&url, body.to_string(), Duration::from_secs(10));
        match r.await {
            Ok(status) if (200..300).contains(&status) => {}
            Ok(status) => say(&format!("scale-in protection: HTTP {status}")),
            Err(e) => say(&format!("scale-in protection: {e}")),
        }
    }
}

/// After the child: the checkpoint folder kept however it ended (a stopped worker's next
/// delivery resumes from it), then — unless the worker was told to stop and the message goes
/// back — the output folder uploaded, its receipt saying what the checkpoint did.
async fn keep_and_upload(
    target: &outputs::Target<'_>,
    folders: &outputs::Folders,
    restored: Result<u64, String>,
    ended: bool,
) -> Option<crate::wire::Receipt> {
    let kept = target.keep_checkpoint(folders).await;
    let checkpoint = outputs::Target::checkpoint_note(restored, kept);
    if !ended {
        return None;
    }
    let mut receipt = target.upload(folders).await;
    receipt.checkpoint = checkpoint;
    Some(receipt)
}

#[cfg(test)]
mod tests {
    use super::extension;
    use std::time::Duration;

    #[test]
    fn heartbeats_never_ask_past_twelve_hours_from_the_receive() {
        let (m, h) = (Duration::from_secs(60), Duration::from_secs(3600));
        // Early on: the full visibility timeout.
        assert_eq!(extension(65 * m, 10 * m), Some(65 * m));
        // Near the limit: what is left, a minute kept back.
        assert_eq!(extension(65 * m, 11 * h + 30 * m), Some(29 * m));
        // At or past it: no call at all (SQS would reject it).
        assert_eq!(extension(65 * m, 12 * h - m), None);
        assert_eq!(extension(65 * m, 13 * h), None);
    }
}

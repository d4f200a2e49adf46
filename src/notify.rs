//! Telling someone how a run went: a JSON POST to a webhook (its `text` reads well in Slack)
//! and/or an SNS publish, for the events `[notify] on` names. Each delivery is retried with
//! backoff; one that still fails is kept in the run's record and never changes the run's
//! outcome. A webhook URL may hold a secret token, so it never appears in output or logs (errors
//! are written without it; deliveries name only "webhook"); it travels in the run's settings so
//! any watcher can send. Exactly once per run end is the caller's part: the end is claimed first
//! (`Dispatcher::claim_once`).

use crate::config::{NotifyEvent, NotifySpec};
use crate::record::{Delivery, RunRecord, TaskState};
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// What is sent: `text` for people, the fields for programs.
#[derive(Debug, Serialize)]
pub struct Message {
    pub text: String,
    pub event: &'static str,
    pub job: String,
    pub run_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub state: crate::record::RunState,
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub duration_secs: f64,
    pub failed_tasks: Vec<FailedTask>,
    /// The command that shows more.
    pub command: String,
    /// Who won, by the run's objective (at the end of a run that has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best: Option<crate::report::best::Best>,
}

#[derive(Debug, Serialize)]
pub struct FailedTask {
    pub index: usize,
    pub reason: String,
}

/// At most this many failed tasks are listed, in the text and the fields.
const LISTED: usize = 20;

/// The event a finished run ends with.
pub fn end_event(rec: &RunRecord) -> NotifyEvent {
    if rec.all_succeeded() {
        NotifyEvent::Success
    } else {
        NotifyEvent::Failure
    }
}

impl Message {
    /// The message for a run's event (start, or its end).
    pub fn of(rec: &RunRecord, event: NotifyEvent) -> Message {
        let end = rec.finished_at.unwrap_or_else(Utc::now);
        let duration_secs = crate::record::secs_between(rec.created_at, end);
        let failed_tasks: Vec<FailedTask> = rec
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Failed)
            .take(LISTED)
            .map(|t| FailedTask {
                index: t.index,
                reason: t.reason.clone().unwrap_or_else(|| "failed".into()),
            })
            .collect();
        let (total, failed) = (rec.tasks.len(), rec.count(TaskState::Failed));
        let command = format!("jobrun status {}", rec.run_id);
        let head = format!("jobrun: run {} of job {}", rec.run_id, rec.job);
        let best = match event {
            NotifyEvent::Start => None,
            _ => crate::report::best::Best::for_run(rec),
        };
        let text = match event {
            NotifyEvent::Start => format!("{head} started: {total} tasks"),
            _ => {
                let reused = match rec.reused_count() {
                    0 => String::new(),
                    n => format!(" ({n} reused, {} ran)", total - n),
                };
                let mut text = format!(
                    "{head} {}: {} of {total} succeeded{reused}, {failed} failed, in {}",
                    rec.state(),
                    rec.count(TaskState::Succeeded),
                    humantime::format_duration(Duration::from_secs(duration_secs as u64))
                );
                if let Some(best) = &best {
                    text.push_str(&format!("\n{best}"));
                }
                for t in &failed_tasks {
                    text.push_str(&format!("\n#{} {}", t.index, t.reason));
                }
                text.push_str(&format!("\nmore: {command}"));
                text
            }
        };
        Message {
            text,
            event: event.as_str(),
            job: rec.job.clone(),
            run_id: rec.run_id.clone(),
            key: rec.key.clone(),
            state: rec.state(),
            total,
            succeeded: rec.count(TaskState::Succeeded),
            failed,
            cancelled: rec.count(TaskState::Cancelled),
            duration_secs,
            failed_tasks,
            command,
            best,
        }
    }

    /// The message of a submit that started nothing.
    pub fn skipped(job: &str, key: Option<&str>, active_run: &str, reason: &str) -> Message {
        Message {
            text: format!("jobrun: job {job}: {reason}"),
            event: NotifyEvent::Skipped.as_str(),
            job: job.to_string(),
            run_id: active_run.to_string(),
            key: key.map(str::to_string),
            state: crate::record::RunState::Skipped,
            total: 0,
            succeeded: 0,
            failed: 0,
            cancelled: 0,
            duration_secs: 0.0,
            failed_tasks: vec![],
            command: format!("jobrun status {active_run}"),
            best: None,
        }
    }
}

/// A webhook URL as it may be shown: scheme and host, the rest (its secret) left out.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}/…")
}

fn backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(300))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(5)
}

/// Sends `message` wherever `spec` says; one delivery per destination.
pub async fn send(spec: &NotifySpec, message: &Message) -> Vec<Delivery> {
    let mut out = vec![];
    let body = serde_json::to_value(message).expect("messages serialise");
    if let Some(url) = &spec.webhook {
        out.push(delivery(message, "webhook", post(url, &body).await));
    }
    if let Some(topic) = &spec.sns_topic {
        out.push(delivery(
            message,
            "sns",
            publish(topic, spec.profile.as_deref(), message, &body).await,
        ));
    }
    for d in out.iter().filter(|d| !d.delivered) {
        tracing::warn!(
            "notification to {} failed: {}",
            d.to,
            d.error.as_deref().unwrap_or("")
        );
    }
    out
}

fn delivery(message: &Message, to: &str, result: Result<(), String>) -> Delivery {
    Delivery {
        event: message.event.to_string(),
        to: to.to_string(),
        at: Utc::now(),
        delivered: result.is_ok(),
        error: result.err(),
    }
}

/// One JSON POST, retried on no answer and on 5xx/429 (never echoing the URL).
async fn post(url: &str, body: &Value) -> Result<(), String> {
    use backon::Retryable;
    let client = crate::tls::http_client()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| e.without_url().to_string())?;
    let once = || async {
        let sent = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err((
                r.status().is_server_error() || r.status() == 429,
                format!("the webhook answered {}", r.status()),
            )),
            Err(e) => Err((true, e.without_url().to_string())),
        }
    };
    once.retry(backoff())
        .when(|(again, _)| *again)
        .await
        .map_err(|(_, e)| e)
}

/// One SNS publish to the topic, in the topic's region, with the standard credential chain.
/// `--profile`, else the job's `[aws]` profile, as for every run (see [`crate::aws::Access`]).
async fn publish(
    topic: &str,
    profile: Option<&str>,
    message: &Message,
    body: &Value,
) -> Result<(), String> {
    let region = crate::arn::Arn::parse(topic)
        .map(|a| a.region.to_string())
        .unwrap_or_default();
    let aws = crate::aws::Access::in_region(profile, &region)
        .load()
        .await
        .map_err(|e| e.to_string())?;
    let subject: String = message
        .text
        .lines()
        .next()
        .unwrap_or("jobrun")
        .chars()
        .take(99) // SNS: "less than 100 characters"
        .collect();
    let message = body.to_string();
    // Throttling (`Throttled`) and 5xx answers are retried with jittered backoff, as a webhook's
    // failures are (SNS API Reference, Publish: ThrottledException, InternalErrorException).
    crate::aws::retrying(|| async {
        aws.sns()
            .publish()
            .topic_arn(topic)
            .subject(&subject)
            .message(&message)
            .send()
            .await
            .map_err(|e| crate::aws::AwsError::from_sdk("Publish", e))
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_webhook_keeps_only_its_host() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/SECRET?x=1"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact("http://user:pw@127.0.0.1:9/h"),
            "http://127.0.0.1:9/…"
        );
    }

    #[test]
    fn a_failed_run_says_which_tasks_failed_and_how_to_see_more() {
        let mut rec = crate::record::tests::record("20261130-060000-wc-aaaa", "wc");
        let now = rec.created_at;
        rec.tasks[0].fail("exit code 3", now);
        rec.finished_at = Some(rec.created_at + chrono::Duration::seconds(75));
        let m = Message::of(&rec, end_event(&rec));
        assert_eq!(m.event, "failure");
        assert_eq!((m.total, m.failed), (1, 1));
        assert!(m.text.contains("#0 exit code 3"), "{}", m.text);
        assert!(m.text.contains("1m 15s"), "{}", m.text);
        assert!(
            m.text
                .ends_with("more: jobrun status 20261130-060000-wc-aaaa"),
            "{}",
            m.text
        );
    }

    #[test]
    fn the_end_says_who_won() {
        let mut rec = crate::record::tests::record("20261130-060000-wc-aaaa", "wc");
        let now = rec.created_at;
        rec.tasks[0].start(1, "c0".into(), now);
        rec.tasks[0].succeed(now);
        rec.tasks[0].result = Some(serde_json::json!({"loss": 0.25}));
        rec.settings.objective = Some(crate::record::schema::Objective {
            metric: "loss".into(),
            goal: crate::record::schema::Goal::Minimize,
            group: vec![],
        });
        rec.finished_at = Some(now);
        let m = Message::of(&rec, end_event(&rec));
        assert_eq!(m.best.as_ref().map(|b| b.index), Some(0));
        assert!(m.text.contains("\nbest: #0 "), "{}", m.text);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["best"]["metric"], "loss");
        assert!(Message::of(&rec, NotifyEvent::Start).best.is_none());
    }
}

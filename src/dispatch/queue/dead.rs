//! The dead-letter queue, seen from one run: a task whose message went there without a final
//! result (its worker kept dying, or the message never parsed) is failed here, and before a
//! retry the run's own dead letters are taken out (the retry sends them again). Every message
//! looked at stays hidden until the pass is over, so each is seen once; the others' are then
//! made visible again at once.

use super::QueueDispatcher;
use crate::aws::{self, retrying};
use crate::dispatch::remote::RemoteError;
use crate::record::{RunRecord, TaskState};
use crate::wire::TaskMessage;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName as Attr,
};
use chrono::Utc;
use std::collections::HashSet;

/// What one pass decided for the messages it saw (receipt handles).
#[derive(Default)]
struct Verdicts {
    delete: Vec<String>,
    release: Vec<String>,
}

impl QueueDispatcher {
    /// Looks through the dead-letter queue (about `dead` messages, as last counted): fails this
    /// run's running tasks found there, and with `remove` takes out the ones about to be sent
    /// again.
    pub(super) async fn scan_dead(
        &mut self,
        rec: &mut RunRecord,
        remove: bool,
        dead: i64,
    ) -> Result<(), RemoteError> {
        let mut verdicts = Verdicts::default();
        let mut seen_ids = HashSet::new();
        let mut empty = 0;
        // Enough receives to see every message the DLQ holds (as last counted), and a few more.
        for _ in 0..dead.max(0) as usize / 10 + 5 {
            if empty >= 2 {
                break;
            }
            let batch = self.receive_dead().await?;
            let fresh: Vec<&Message> = batch
                .iter()
                .filter(|m| seen_ids.insert(m.message_id().unwrap_or_default().to_string()))
                .collect();
            if fresh.is_empty() {
                empty += 1;
            }
            for m in fresh {
                judge(rec, m, remove, &mut verdicts);
            }
        }
        self.delete_dead(&verdicts.delete).await?;
        self.release_dead(&verdicts.release).await
    }

    async fn receive_dead(&self) -> Result<Vec<Message>, RemoteError> {
        let out = retrying(|| async {
            self.sqs
                .receive_message()
                .queue_url(&self.queue.dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .wait_time_seconds(1)
                .message_system_attribute_names(Attr::ApproximateReceiveCount)
                .send()
                .await
                .map_err(aws::op("ReceiveMessage"))
        })
        .await?;
        Ok(out.messages.unwrap_or_default())
    }

    /// DeleteMessageBatch answers 200 with a `Failed` list of the entries it did not delete
    /// (SQS API Reference, DeleteMessageBatch): those are sent again while SQS's fault, and a
    /// refused one (SenderFault, e.g. a stale receipt handle) fails the pass, as a copy left
    /// there would be sent twice.
    async fn delete_dead(&self, handles: &[String]) -> Result<(), RemoteError> {
        let sqs = &self.sqs;
        let url = &self.queue.dlq_url;
        each_entry("DeleteMessageBatch", handles, |batch| async move {
            let entries = batch
                .iter()
                .map(|(id, h)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(id)
                        .receipt_handle(h)
                        .build()
                        .expect("id and handle")
                })
                .collect();
            let out = sqs
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(aws::op("DeleteMessageBatch"))?;
            Ok(out.failed)
        })
        .await?;
        Ok(())
    }

    /// ChangeMessageVisibilityBatch to 0 answers per entry as DeleteMessageBatch does (SQS API
    /// Reference, ChangeMessageVisibilityBatch); a letter it could not release is only hidden
    /// until its visibility ends, so a refused entry is said, not an error.
    async fn release_dead(&self, handles: &[String]) -> Result<(), RemoteError> {
        let sqs = &self.sqs;
        let url = &self.queue.dlq_url;
        let released = each_entry(
            "ChangeMessageVisibilityBatch",
            handles,
            |batch| async move {
                let entries = batch
                    .iter()
                    .map(|(id, h)| {
                        ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(id)
                            .receipt_handle(h)
                            .visibility_timeout(0)
                            .build()
                            .expect("id and handle")
                    })
                    .collect();
                let out = sqs
                    .change_message_visibility_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(aws::op("ChangeMessageVisibilityBatch"))?;
                Ok(out.failed)
            },
        )
        .await;
        if let Err(e) = released {
            tracing::warn!("dead letters stay hidden until their visibility ends: {e}");
        }
        Ok(())
    }
}

/// One SQS batch call per ten handles (the batch limit), each call retried while transient
/// and then again with only the entries its answer lists as failed by SQS (`SenderFault`
/// false), until none is left; an entry failed by the sender ends it with that entry's code.
async fn each_entry<F, Fut>(
    operation: &'static str,
    handles: &[String],
    call: F,
) -> Result<(), aws::AwsError>
where
    F: Fn(Vec<(String, String)>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<BatchResultErrorEntry>, aws::AwsError>>,
{
    use backon::BackoffBuilder as _;
    for chunk in handles.chunks(10) {
        let mut pending: Vec<(String, String)> = chunk
            .iter()
            .enumerate()
            .map(|(n, h)| (n.to_string(), h.clone()))
            .collect();
        let mut pause = aws::backoff().build();
        loop {
            let failed = retrying(|| call(pending.clone())).await?;
            if let Some(f) = failed.iter().find(|f| f.sender_fault) {
                return Err(aws::AwsError::Service {
                    operation,
                    code: f.code.clone(),
                    message: f.message.clone().unwrap_or_default(),
                });
            }
            let again: HashSet<&str> = failed.iter().map(|f| f.id.as_str()).collect();
            pending.retain(|(id, _)| again.contains(id.as_str()));
            if pending.is_empty() {
                break;
            }
            let Some(delay) = pause.next() else {
                return Err(aws::AwsError::Service {
                    operation,
                    code: "EntriesFailed".into(),
                    message: format!("{} entries kept failing", pending.len()),
                });
            };
            tokio::time::sleep(delay).await;
        }
    }
    Ok(())
}

/// One dead letter: another run's (or unreadable) is released; a copy from before a retry, or
/// one about to be sent again, is deleted; a running task's fails that task.
fn judge(rec: &mut RunRecord, m: &Message, remove: bool, verdicts: &mut Verdicts) {
    let handle = m.receipt_handle().unwrap_or_default().to_string();
    let ours = m
        .body()
        .and_then(|b| serde_json::from_str::<TaskMessage>(b).ok())
        .filter(|t| t.run_id == rec.run_id && t.index < rec.tasks.len());
    let Some(t) = ours else {
        verdicts.release.push(handle);
        return;
    };
    let task = &mut rec.tasks[t.index];
    if t.attempt <= task.retried_from || (remove && task.state == TaskState::Queued) {
        verdicts.delete.push(handle);
        return;
    }
    if !remove && task.state == TaskState::Running {
        let receives = m
            .attributes()
            .and_then(|a| a.get(&Attr::ApproximateReceiveCount))
            .cloned()
            .unwrap_or_else(|| "?".into());
        let last = task.reason.take().unwrap_or_default();
        let reason = if last.is_empty() {
            format!("in the dead-letter queue after {receives} receives, with no result")
        } else {
            format!("in the dead-letter queue ({last})")
        };
        task.fail(reason, Utc::now());
    }
    verdicts.release.push(handle);
}

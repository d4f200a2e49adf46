//! Queue mode's SQS queues: the work queue (long polling, the job's visibility timeout, a
//! redrive policy into the dead-letter queue after `max_receive_count` receives, and with an S3
//! trigger a policy letting that bucket send) and its dead-letter queue (14 days' retention).

use super::{Ctx, Deletion, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, InfraError, change};

/// A queue's URL, `None` when there is no such queue.
async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<Option<String>, InfraError> {
    let got = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(aws::op("GetQueueUrl"));
    let gone = [
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    ];
    Ok(aws::found(got, &gone)?.and_then(|o| o.queue_url().map(str::to_string)))
}

/// `down`: both queues, each when it carries the job's tags.
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let sqs = cx.aws.sqs();
    for (kind, name) in [
        ("sqs queue", &cx.names.queue),
        ("dead-letter queue", &cx.names.dlq),
    ] {
        let Some(url) = queue_url(&sqs, name).await? else {
            found.plan(change(kind, name, Action::Absent, "not there"), None);
            continue;
        };
        let tags = sqs
            .list_queue_tags()
            .queue_url(&url)
            .send()
            .await
            .map_err(aws::op("ListQueueTags"))?;
        let ours = tags
            .tags()
            .is_some_and(|t| cx.ours(t.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        if ours {
            found.plan(
                change(kind, name, Action::Delete, "made by jobrun for this job"),
                Some(Deletion::Queue(url)),
            );
        } else {
            found.plan(
                change(kind, name, Action::Keep, "not tagged for this job"),
                None,
            );
        }
    }
    Ok(())
}

pub async fn delete(aws: &Aws, url: &str) -> Result<(), InfraError> {
    aws.sqs()
        .delete_queue()
        .queue_url(url)
        .send()
        .await
        .map_err(aws::op("DeleteQueue"))?;
    Ok(())
}

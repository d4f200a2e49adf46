//! Queue mode's SQS queues: the work queue (long polling, the job's visibility timeout, a
//! redrive policy into the dead-letter queue after `max_receive_count` receives, and with an S3
//! trigger a policy letting that bucket send) and its dead-letter queue (14 days' retention).

use super::{Ctx, Deletion, Resource, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, Change, InfraError, TAG_JOB, TAG_MANAGED, change};
use crate::wire::MESSAGE_LIMIT;
use aws_sdk_sqs::types::QueueAttributeName as Attr;
use serde_json::{Value, json};
use std::collections::HashMap;

/// 14 days, SQS's longest.
const RETENTION: &str = "1209600";

/// What dispatch assumes one message may carry ([`MESSAGE_LIMIT`], 1 MiB): a queue made under
/// SQS's old 256 KiB default would refuse the bigger ones.
fn max_size() -> String {
    MESSAGE_LIMIT.to_string()
}

/// One queue as `up` left it (a dry run: the URL says it is still to be created).
pub struct QueueRef {
    pub url: String,
    pub arn: String,
}

/// The work queue and its dead-letter queue.
pub struct Queues {
    pub work: QueueRef,
    pub dead_letters: QueueRef,
}

/// A queue with the attributes jobrun wants on it; converges to its URL and ARN.
pub struct Queue {
    kind: &'static str,
    name: String,
    arn: String,
    want: HashMap<Attr, String>,
}

impl Queue {
    fn new(cx: &Ctx<'_>, kind: &'static str, name: &str, want: HashMap<Attr, String>) -> Queue {
        Queue {
            kind,
            name: name.to_string(),
            arn: cx.arns.regional("sqs", name),
            want,
        }
    }

    /// The work queue's ARN, known before it exists.
    pub fn work_arn(cx: &Ctx<'_>) -> String {
        cx.arns.regional("sqs", &cx.names.queue)
    }

    pub fn dead_letters(cx: &Ctx<'_>) -> Queue {
        let want = HashMap::from([
            (Attr::MessageRetentionPeriod, RETENTION.into()),
            (Attr::MaximumMessageSize, max_size()),
        ]);
        Queue::new(cx, "dead-letter queue", &cx.names.dlq, want)
    }

    /// Where EventBridge Scheduler puts a schedule's delivery that failed for an hour.
    pub fn schedule_dead_letters(cx: &Ctx<'_>) -> Queue {
        let want = HashMap::from([(Attr::MessageRetentionPeriod, RETENTION.into())]);
        Queue::new(cx, "dead-letter queue", &cx.names.schedule_dlq, want)
    }

    pub fn work(cx: &Ctx<'_>, dlq_arn: &str) -> Queue {
        let q = &cx.job.ecs.queue;
        let redrive =
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": q.max_receive_count});
        let want = HashMap::from([
            (Attr::VisibilityTimeout, q.visibility.as_secs().to_string()),
            (Attr::ReceiveMessageWaitTimeSeconds, "20".into()),
            (Attr::MessageRetentionPeriod, RETENTION.into()),
            (Attr::MaximumMessageSize, max_size()),
            (Attr::RedrivePolicy, redrive.to_string()),
        ]);
        let mut queue = Queue::new(cx, "sqs queue", &cx.names.queue, want);
        debug_assert_eq!(queue.arn, Queue::work_arn(cx));
        if let Some((bucket, _)) = &q.s3_trigger {
            let policy = s3_may_send(&queue.arn, &cx.arns.s3(bucket, None));
            queue.want.insert(Attr::Policy, policy.to_string());
        }
        queue
    }

    fn to_be_created(&self) -> String {
        format!("({}, to be created)", self.name)
    }
}

/// The queue policy of an S3 trigger: that bucket may send its notifications.
fn s3_may_send(queue_arn: &str, bucket_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "S3ObjectCreated",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": bucket_arn}}
        }]
    })
}

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

/// An existing queue: its URL and the attributes that differ from the wanted ones.
pub struct Seen {
    url: String,
    differs: Vec<String>,
}

impl Resource for Queue {
    type Seen = Option<Seen>;
    type Out = QueueRef;

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Option<Seen>, InfraError> {
        let sqs = cx.aws.sqs();
        let Some(url) = queue_url(&sqs, &self.name).await? else {
            return Ok(None);
        };
        let have = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(Attr::All)
            .send()
            .await
            .map_err(aws::op("GetQueueAttributes"))?;
        let have = have.attributes().cloned().unwrap_or_default();
        // A policy compares as JSON: SQS may hand it back formatted differently.
        let same = |k: &Attr, v: &String| match (have.get(k), k) {
            (Some(h), Attr::RedrivePolicy | Attr::Policy) => {
                serde_json::from_str::<Value>(h).ok() == serde_json::from_str(v).ok()
            }
            (Some(h), _) => h == v,
            (None, _) => false,
        };
        let differs = self
            .want
            .iter()
            .filter(|(k, v)| !same(k, v))
            .map(|(k, _)| k.as_str().to_string())
            .collect();
        Ok(Some(Seen { url, differs }))
    }

    fn compare(&self, _: &Ctx<'_>, seen: &Option<Seen>) -> Result<Change, InfraError> {
        let (kind, name) = (self.kind, &self.name);
        Ok(match seen {
            None => change(kind, name, Action::Create, "missing"),
            Some(s) if s.differs.is_empty() => {
                change(kind, name, Action::Unchanged, "attributes as wanted")
            }
            Some(s) => change(
                kind,
                name,
                Action::Update,
                format!("{} differ", s.differs.join(", ")),
            ),
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, seen: Option<Seen>) -> Result<QueueRef, InfraError> {
        let sqs = cx.aws.sqs();
        let url = match seen {
            // "After you delete a queue, you must wait at least 60 seconds before creating a
            // queue with the same name" (SQS API Reference, CreateQueue): `down` then `up`
            // waits for it, without a fixed sleep, instead of failing.
            None => super::settling(true, RECENTLY_DELETED, || async {
                sqs.create_queue()
                    .queue_name(&self.name)
                    .set_attributes(Some(self.want.clone()))
                    .tags(TAG_MANAGED, "jobrun")
                    .tags(TAG_JOB, &cx.job.name)
                    .send()
                    .await
                    .map_err(aws::op("CreateQueue"))
            })
            .await?
            .queue_url()
            .unwrap_or_default()
            .to_string(),
            Some(Seen { url, .. }) => {
                sqs.set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(self.want.clone()))
                    .send()
                    .await
                    .map_err(aws::op("SetQueueAttributes"))?;
                url
            }
        };
        Ok(QueueRef {
            url,
            arn: self.arn.clone(),
        })
    }

    fn current(&self, _: &Ctx<'_>, seen: Option<Seen>) -> QueueRef {
        QueueRef {
            url: seen.map_or_else(|| self.to_be_created(), |s| s.url),
            arn: self.arn.clone(),
        }
    }
}

/// `down`: both queues, each when it carries the job's tags.
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let sqs = cx.aws.sqs();
    for (kind, name) in [
        ("sqs queue", &cx.names.queue),
        ("dead-letter queue", &cx.names.dlq),
        ("dead-letter queue", &cx.names.schedule_dlq),
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

/// How many messages wait in the queue named `name` (`None`: no such queue).
pub async fn waiting(aws: &Aws, name: &str) -> Result<Option<u64>, InfraError> {
    let sqs = aws.sqs();
    let Some(url) = queue_url(&sqs, name).await? else {
        return Ok(None);
    };
    let got = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Attr::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(aws::op("GetQueueAttributes"))?;
    let n = got
        .attributes()
        .and_then(|a| a.get(&Attr::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok());
    Ok(Some(n.unwrap_or(0)))
}

/// CreateQueue's answer for a name deleted less than 60 s ago: the SDK's code, and the query
/// code SQS's JSON protocol also sends (`x-amzn-query-error`), matched either way.
const RECENTLY_DELETED: &[&str] = &[
    "QueueDeletedRecently",
    "AWS.SimpleQueueService.QueueDeletedRecently",
];

pub async fn delete(aws: &Aws, url: &str) -> Result<(), InfraError> {
    aws.sqs()
        .delete_queue()
        .queue_url(url)
        .send()
        .await
        .map_err(aws::op("DeleteQueue"))?;
    Ok(())
}

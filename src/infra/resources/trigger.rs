//! Queue mode's S3 trigger: ObjectCreated notifications of a bucket prefix into the work
//! queue, as one queue configuration with jobrun's id. A bucket's other notification settings
//! (other queue configurations, topics, lambdas, EventBridge) are kept, on `up` and `down`.

use super::{Ctx, Deletion, Resource, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, Change, InfraError, change};
use aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput as Notifications;
use aws_sdk_s3::types::QueueConfiguration;

const KIND: &str = "s3 notification";

/// `queue.s3_trigger` of jobrun.toml, into the queue of that ARN.
pub struct Trigger<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub queue_arn: &'a str,
}

impl Trigger<'_> {
    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// jobrun's queue configuration.
    fn configuration(&self, id: &str) -> QueueConfiguration {
        use aws_sdk_s3::types::*;
        QueueConfiguration::builder()
            .id(id)
            .queue_arn(self.queue_arn)
            .events(Event::from("s3:ObjectCreated:*"))
            .filter(
                NotificationConfigurationFilter::builder()
                    .key(
                        S3KeyFilter::builder()
                            .filter_rules(
                                FilterRule::builder()
                                    .name(FilterRuleName::Prefix)
                                    .value(self.prefix)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
            .expect("queue and events")
    }
}

/// The prefixes a queue configuration filters on.
fn rule_prefix(q: &QueueConfiguration) -> Vec<String> {
    q.filter()
        .and_then(|f| f.key())
        .map(|k| {
            k.filter_rules()
                .iter()
                .filter_map(|r| r.value().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn notifications(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Option<Notifications>, InfraError> {
    let have = s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
        .map_err(aws::op("GetBucketNotificationConfiguration"));
    Ok(aws::found(have, &["NoSuchBucket"])?)
}

impl Resource for Trigger<'_> {
    type Seen = Notifications;
    type Out = ();

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Notifications, InfraError> {
        // jobrun writes its records under `jobs/` of the job's bucket: a trigger there would
        // start a task for every record a task writes.
        let prefix = self.prefix;
        if self.bucket == cx.names.bucket && crate::layout::overlaps(prefix) {
            return Err(InfraError::TriggerLoop(self.url()));
        }
        let s3 = cx.aws.s3();
        // The region first: the notification calls of a bucket in another region fail (S3
        // redirects them, and the SDK does not follow).
        let ours_to_be = self.bucket == cx.names.bucket && !cx.apply;
        if !ours_to_be {
            same_region(&s3, self.bucket, &cx.arns.region).await?;
        }
        match notifications(&s3, self.bucket).await? {
            Some(have) => Ok(have),
            // The job's own bucket does not exist yet in a dry run: nothing is set on it.
            None if !cx.apply => Ok(Notifications::builder().build()),
            None => Err(InfraError::MissingConfigured {
                kind: "bucket",
                name: self.bucket.to_string(),
            }),
        }
    }

    fn compare(&self, cx: &Ctx<'_>, have: &Notifications) -> Result<Change, InfraError> {
        let id = cx.names.notification.as_str();
        let mine = have
            .queue_configurations()
            .iter()
            .find(|q| q.id() == Some(id));
        let url = self.url();
        Ok(match mine {
            None => change(KIND, &url, Action::Create, "ObjectCreated → queue"),
            Some(q) if q.queue_arn() == self.queue_arn && rule_prefix(q) == [self.prefix] => {
                change(KIND, &url, Action::Unchanged, "ObjectCreated → queue")
            }
            Some(_) => change(KIND, &url, Action::Update, "queue or prefix differs"),
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, have: Notifications) -> Result<(), InfraError> {
        let id = &cx.names.notification;
        let mut queues: Vec<QueueConfiguration> = have
            .queue_configurations()
            .iter()
            .filter(|q| q.id() != Some(id.as_str()))
            .cloned()
            .collect();
        queues.push(self.configuration(id));
        // S3 checks the queue by sending it a test event, and a queue policy just set can take
        // up to a minute to reach SQS: until then S3 answers InvalidArgument ("Unable to
        // validate the following destination configurations"). Retried for about a minute.
        let s3 = cx.aws.s3();
        let backoff = backon::ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(std::time::Duration::from_millis(500))
            .with_max_delay(std::time::Duration::from_secs(10))
            .with_max_times(10);
        use backon::Retryable;
        (|| put_notifications(&s3, self.bucket, &have, queues.clone()))
            .retry(backoff)
            .when(|e| matches!(e, InfraError::Aws(a) if a.code() == Some("InvalidArgument")))
            .await
    }

    fn current(&self, _: &Ctx<'_>, _: Notifications) {}
}

/// S3 sends notifications only to a queue in the bucket's own region.
async fn same_region(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    region: &str,
) -> Result<(), InfraError> {
    let out = s3
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .map_err(aws::op("GetBucketLocation"));
    let Some(out) = aws::found(out, &["NoSuchBucket"])? else {
        return Err(InfraError::MissingConfigured {
            kind: "bucket",
            name: bucket.to_string(),
        });
    };
    // No constraint is us-east-1; `EU` is the old name of eu-west-1.
    let bucket_region = match out.location_constraint().map(|c| c.as_str()) {
        None | Some("") => "us-east-1",
        Some("EU") => "eu-west-1",
        Some(r) => r,
    };
    if bucket_region == region {
        return Ok(());
    }
    Err(InfraError::TriggerRegion {
        bucket: bucket.to_string(),
        bucket_region: bucket_region.to_string(),
        region: region.to_string(),
    })
}

/// Writes a bucket's notifications with `queues` as its queue configurations, keeping the rest.
async fn put_notifications(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    have: &Notifications,
    queues: Vec<QueueConfiguration>,
) -> Result<(), InfraError> {
    use aws_sdk_s3::types::NotificationConfiguration;
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .set_queue_configurations(Some(queues))
                .set_topic_configurations(Some(have.topic_configurations().to_vec()))
                .set_lambda_function_configurations(Some(
                    have.lambda_function_configurations().to_vec(),
                ))
                .set_event_bridge_configuration(have.event_bridge_configuration().cloned())
                .build(),
        )
        .send()
        .await
        .map_err(aws::op("PutBucketNotificationConfiguration"))?;
    Ok(())
}

/// `down`: jobrun's notification on the trigger bucket, when the job has a trigger (only
/// jobrun's configuration, found by its id, goes).
pub fn discover(cx: &Ctx<'_>, found: &mut Teardown) {
    let Some((bucket, prefix)) = &cx.job.ecs.queue.s3_trigger else {
        return;
    };
    found.plan(
        change(
            KIND,
            &format!("s3://{bucket}/{prefix}"),
            Action::Delete,
            "jobrun's notification (others kept)",
        ),
        Some(Deletion::Notification {
            bucket: bucket.clone(),
            id: cx.names.notification.clone(),
        }),
    );
}

/// Removes jobrun's queue configuration from a bucket's notifications, keeping the rest.
pub async fn delete(aws: &Aws, bucket: &str, id: &str) -> Result<(), InfraError> {
    let s3 = aws.s3();
    let Some(have) = notifications(&s3, bucket).await? else {
        return Ok(());
    };
    let (mine, queues): (Vec<_>, Vec<_>) = have
        .queue_configurations()
        .iter()
        .cloned()
        .partition(|q| q.id() == Some(id));
    if mine.is_empty() {
        return Ok(());
    }
    put_notifications(&s3, bucket, &have, queues).await
}

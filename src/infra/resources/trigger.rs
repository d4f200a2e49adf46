//! Queue mode's S3 trigger: ObjectCreated notifications of a bucket prefix into the work
//! queue, as one queue configuration with jobrun's id. A bucket's other notification settings
//! (other queue configurations, topics, lambdas, EventBridge) are kept, on `up` and `down`.

use super::{Ctx, Deletion, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, InfraError, change};
use aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput as Notifications;
use aws_sdk_s3::types::QueueConfiguration;

const KIND: &str = "s3 notification";

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

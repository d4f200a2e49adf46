//! The job's S3 bucket (records, configurations, results): private (public access blocked),
//! encrypted by default, tagged for the job. A bucket named in jobrun.toml is used as it is
//! and never deleted.

use super::{Ctx, Deletion, Teardown};
use crate::aws::{self, Aws, AwsError};
use crate::infra::{Action, InfraError, change};

const KIND: &str = "s3 bucket";

/// `down`: the bucket when it carries the job's tags (a configured one is kept).
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let name = &cx.names.bucket;
    if cx.job.ecs.bucket.is_some() {
        found.plan(
            change(KIND, name, Action::Keep, "configured in jobrun.toml"),
            None,
        );
        return Ok(());
    }
    let c = match cx.aws.s3().get_bucket_tagging().bucket(name).send().await {
        Ok(out) if cx.ours(out.tag_set().iter().map(|t| (t.key(), t.value()))) => change(
            KIND,
            name,
            Action::Delete,
            "made by jobrun for this job, with its objects",
        ),
        Ok(_) => change(KIND, name, Action::Keep, "not tagged for this job"),
        Err(e) => {
            let e = AwsError::from_sdk("GetBucketTagging", e);
            match e.code() {
                Some("NoSuchBucket" | "NotFound") => {
                    change(KIND, name, Action::Absent, "not there")
                }
                Some("NoSuchTagSet") => change(KIND, name, Action::Keep, "not tagged for this job"),
                _ => return Err(e.into()),
            }
        }
    };
    found.plan(c, Some(Deletion::Bucket(name.clone())));
    Ok(())
}

/// Deletes the bucket's objects, then the bucket.
pub async fn delete(aws: &Aws, name: &str) -> Result<(), InfraError> {
    let s3 = aws.s3();
    loop {
        let listed = s3
            .list_objects_v2()
            .bucket(name)
            .send()
            .await
            .map_err(aws::op("ListObjectsV2"))?;
        if listed.contents().is_empty() {
            break;
        }
        for o in listed.contents() {
            s3.delete_object()
                .bucket(name)
                .key(o.key().unwrap_or_default())
                .send()
                .await
                .map_err(aws::op("DeleteObject"))?;
        }
    }
    s3.delete_bucket()
        .bucket(name)
        .send()
        .await
        .map_err(aws::op("DeleteBucket"))?;
    Ok(())
}

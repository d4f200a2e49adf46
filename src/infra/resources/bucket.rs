//! The job's S3 bucket (records, configurations, results): private (public access blocked),
//! encrypted by default, tagged for the job. A bucket named in jobrun.toml is used as it is
//! and never deleted.

use super::{Ctx, Deletion, Resource, Teardown};
use crate::aws::{self, Aws, AwsError};
use crate::infra::{Action, Change, InfraError, TAG_JOB, TAG_MANAGED, change};

const KIND: &str = "s3 bucket";

pub struct Bucket;

pub struct Seen {
    exists: bool,
    /// Carries the job's tags (a bucket made by an `up` that died before tagging it does not).
    tagged: bool,
    /// What a bucket jobrun made lacks.
    missing: Vec<&'static str>,
}

impl Resource for Bucket {
    type Seen = Seen;
    type Out = ();

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Seen, InfraError> {
        let s3 = cx.aws.s3();
        let name = &cx.names.bucket;
        let head = s3
            .head_bucket()
            .bucket(name)
            .send()
            .await
            .map_err(aws::op("HeadBucket"));
        let exists = aws::found(head, &["NotFound", "NoSuchBucket"])?.is_some();
        let mut seen = Seen {
            exists,
            tagged: true,
            missing: vec![],
        };
        if !exists || cx.job.ecs.bucket.is_some() {
            return Ok(seen);
        }
        // A bucket made by an `up` that died before tagging it must still be tagged, or
        // `down` would never remove it.
        let tags = s3
            .get_bucket_tagging()
            .bucket(name)
            .send()
            .await
            .map_err(aws::op("GetBucketTagging"));
        seen.tagged = aws::found(tags, &["NoSuchTagSet"])?.is_some_and(|t| {
            t.tag_set()
                .iter()
                .any(|t| t.key() == TAG_JOB && t.value() == cx.job.name)
        });
        if !seen.tagged {
            seen.missing.push("the job's tags");
        }
        if !public_access_blocked(&s3, name).await {
            seen.missing.push("public access block");
        }
        if !encrypted(&s3, name).await {
            seen.missing.push("default encryption");
        }
        Ok(seen)
    }

    fn compare(&self, cx: &Ctx<'_>, seen: &Seen) -> Result<Change, InfraError> {
        let name = &cx.names.bucket;
        if cx.job.ecs.bucket.is_some() {
            if !seen.exists {
                return Err(InfraError::MissingConfigured {
                    kind: "bucket",
                    name: name.clone(),
                });
            }
            return Ok(change(KIND, name, Action::Use, "configured in jobrun.toml"));
        }
        Ok(if !seen.exists {
            change(KIND, name, Action::Create, "missing")
        } else if seen.missing.is_empty() {
            change(
                KIND,
                name,
                Action::Unchanged,
                "public access blocked, encrypted",
            )
        } else {
            change(
                KIND,
                name,
                Action::Update,
                format!("{} not set", seen.missing.join(" and ")),
            )
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, seen: Seen) -> Result<(), InfraError> {
        let s3 = cx.aws.s3();
        if !seen.exists {
            create(cx, &s3).await?;
        }
        if !seen.exists || !seen.tagged {
            tag(cx, &s3).await?;
        }
        block_public_access(&s3, &cx.names.bucket).await?;
        encrypt(&s3, &cx.names.bucket).await
    }

    fn current(&self, _: &Ctx<'_>, _: Seen) {}
}

async fn public_access_blocked(s3: &aws_sdk_s3::Client, name: &str) -> bool {
    let pab = s3.get_public_access_block().bucket(name).send().await;
    pab.ok()
        .and_then(|o| o.public_access_block_configuration().cloned())
        .is_some_and(|c| {
            c.block_public_acls() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        })
}

async fn encrypted(s3: &aws_sdk_s3::Client, name: &str) -> bool {
    let enc = s3.get_bucket_encryption().bucket(name).send().await;
    enc.ok()
        .and_then(|o| o.server_side_encryption_configuration().cloned())
        .is_some()
}

async fn create(cx: &Ctx<'_>, s3: &aws_sdk_s3::Client) -> Result<(), InfraError> {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let mut create = s3.create_bucket().bucket(&cx.names.bucket);
    if cx.arns.region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(cx.arns.region.as_str()))
                .build(),
        );
    }
    create.send().await.map_err(aws::op("CreateBucket"))?;
    Ok(())
}

async fn tag(cx: &Ctx<'_>, s3: &aws_sdk_s3::Client) -> Result<(), InfraError> {
    use aws_sdk_s3::types::{Tag, Tagging};
    let tag = |k: &str, v: &str| {
        Tag::builder()
            .key(k)
            .value(v)
            .build()
            .expect("key and value")
    };
    s3.put_bucket_tagging()
        .bucket(&cx.names.bucket)
        .tagging(
            Tagging::builder()
                .tag_set(tag(TAG_MANAGED, "jobrun"))
                .tag_set(tag(TAG_JOB, &cx.job.name))
                .build()
                .expect("tag set"),
        )
        .send()
        .await
        .map_err(aws::op("PutBucketTagging"))?;
    Ok(())
}

async fn block_public_access(s3: &aws_sdk_s3::Client, name: &str) -> Result<(), InfraError> {
    use aws_sdk_s3::types::PublicAccessBlockConfiguration;
    s3.put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(aws::op("PutPublicAccessBlock"))?;
    Ok(())
}

async fn encrypt(s3: &aws_sdk_s3::Client, name: &str) -> Result<(), InfraError> {
    use aws_sdk_s3::types::{
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
        ServerSideEncryptionRule,
    };
    s3.put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(ServerSideEncryption::Aes256)
                                .build()
                                .expect("algorithm"),
                        )
                        .build(),
                )
                .build()
                .expect("rules"),
        )
        .send()
        .await
        .map_err(aws::op("PutBucketEncryption"))?;
    Ok(())
}

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
    // Again until a listing is empty: what was written meanwhile goes too.
    loop {
        let keys: Vec<String> = aws::list_objects(&s3, name, "")
            .await?
            .into_iter()
            .map(|o| o.rel)
            .collect();
        if keys.is_empty() {
            break;
        }
        aws::delete_objects(&s3, name, &keys).await?;
    }
    s3.delete_bucket()
        .bucket(name)
        .send()
        .await
        .map_err(aws::op("DeleteBucket"))?;
    Ok(())
}

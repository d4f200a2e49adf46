//! The S3 copy of a run record (`s3://<bucket>/jobs/<job>/runs/<run>/run.json`) that both ECS
//! targets keep, so `watch`, `status` and `logs` re-attach from any machine.

use super::ecs::{EcsError, record_key};
use crate::aws::{self, Aws, AwsError, retrying};
use crate::record::RunRecord;

/// AWS access for a run on ECS: its region, and the profile it was submitted with unless
/// `AWS_PROFILE` is set.
pub async fn aws_for(run: &crate::record::EcsRun) -> Result<Aws, AwsError> {
    let profile = match std::env::var("AWS_PROFILE") {
        Ok(p) if !p.is_empty() => None,
        _ => run.profile.clone(),
    };
    Aws::load(profile.as_deref(), Some(&run.region)).await
}

/// Writes one JSON object, retried while the error is transient.
pub async fn put_json(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), AwsError> {
    retrying(|| async {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(body.clone().into())
            .send()
            .await
            .map_err(aws::op("PutObject"))
    })
    .await?;
    Ok(())
}

/// Stores a task's configuration under the run's prefix (for one too large to travel with the
/// task) and returns its `s3://` URL, which the task gets as `JOBRUN_CONFIG_URL`.
pub async fn store_config(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    job: &str,
    run_id: &str,
    index: usize,
    config: &str,
) -> Result<String, AwsError> {
    let key = format!(
        "{}configs/{index}.json",
        crate::record::EcsRun::prefix(job, run_id)
    );
    put_json(s3, bucket, &key, config.as_bytes().to_vec()).await?;
    Ok(format!("s3://{bucket}/{key}"))
}

pub struct RemoteRecord {
    s3: aws_sdk_s3::Client,
    bucket: String,
    /// The S3 copy may be behind the local one (an earlier write failed, or none was made yet
    /// by this process).
    pending: bool,
}

impl RemoteRecord {
    pub fn new(aws: &Aws, bucket: &str) -> RemoteRecord {
        RemoteRecord {
            s3: aws.s3(),
            bucket: bucket.to_string(),
            pending: true,
        }
    }

    /// Writes the record when it changed, or when the copy there may be behind.
    pub async fn mirror(&mut self, rec: &RunRecord, changed: bool) -> Result<(), aws::AwsError> {
        if !changed && !self.pending {
            return Ok(());
        }
        self.pending = true;
        let body = serde_json::to_vec(rec).expect("records serialise");
        put_json(
            &self.s3,
            &self.bucket,
            &record_key(&rec.job, &rec.run_id),
            body,
        )
        .await?;
        self.pending = false;
        Ok(())
    }

    /// The first copy of a new run: refused if a run of that id is already there.
    pub async fn create(&self, rec: &RunRecord) -> Result<(), EcsError> {
        let body = serde_json::to_vec(rec).expect("records serialise");
        let put = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(record_key(&rec.job, &rec.run_id))
            .content_type("application/json")
            .if_none_match("*")
            .body(body.into())
            .send()
            .await
            .map_err(aws::op("PutObject"));
        match put {
            Err(e) if e.code() == Some("PreconditionFailed") => {
                Err(EcsError::RemoteExists(rec.run_id.clone()))
            }
            other => {
                other?;
                Ok(())
            }
        }
    }
}

/// A JSON object from S3 (`None` when there is no such key, or it is not that JSON).
pub async fn get_json<T: serde::de::DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<T>, AwsError> {
    let got = retrying(|| async {
        s3.get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(aws::op("GetObject"))
    })
    .await;
    let Some(got) = aws::found(got, &["NoSuchKey"])? else {
        return Ok(None);
    };
    let bytes = got
        .body
        .collect()
        .await
        .map_err(|e| AwsError::Transport {
            operation: "GetObject",
            message: e.to_string(),
        })?
        .into_bytes();
    Ok(serde_json::from_slice(&bytes).ok())
}

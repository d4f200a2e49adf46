//! AWS access: one `SdkConfig` (standard credential chain, `--profile`, `--region`,
//! `AWS_ENDPOINT_URL`), and every AWS client is made here from it. AWS errors are matched by
//! code (`ProvideErrorMetadata`), never by message text.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::error::SdkError;

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS region is set")]
    NoRegion,
    #[error("no AWS credentials were found: {0}")]
    NoCredentials(String),
    #[error("AWS {operation} failed: {code}: {message}")]
    Service {
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error("AWS {operation} could not be sent: {message}")]
    Transport {
        operation: &'static str,
        message: String,
    },
}

impl AwsError {
    /// Wraps an SDK error, keeping the service's error code.
    pub fn from_sdk<E, R>(operation: &'static str, e: SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match &e {
            SdkError::ServiceError(se) => AwsError::Service {
                operation,
                code: se.err().code().unwrap_or("Unknown").to_string(),
                message: se.err().message().unwrap_or("").to_string(),
            },
            other => AwsError::Transport {
                operation,
                message: aws_smithy_error_text(other),
            },
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Worth another try after a pause: throttling, a server-side error, or no answer at all
    /// (connection refused or dropped, timeout). Recognised by error code.
    pub fn is_transient(&self) -> bool {
        match self {
            AwsError::Transport { .. } => true,
            AwsError::Service { code, .. } => TRANSIENT_CODES.contains(&code.as_str()),
            _ => false,
        }
    }
}

/// Error codes AWS services use for "slow down" and "our fault, try again".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "SlowDown",
    "ServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    // SQS (JSON protocol) names its throttling and outage codes like this.
    "AWS.SimpleQueueService.RequestThrottled",
    "KmsThrottled",
    "AWS.SimpleQueueService.ServiceUnavailable",
    // SNS (query protocol): ThrottledException is sent as code `Throttled` with HTTP 429, which
    // the SDK's own retry classifier does not know (SNS API Reference, Publish: Errors; the
    // botocore model's ThrottledException `error.code`).
    "Throttled",
];

/// For `.map_err(aws::op("CreateRole"))`: an SDK error as an [`AwsError`] naming the operation.
pub fn op<E, R>(operation: &'static str) -> impl FnOnce(SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    move |e| AwsError::from_sdk(operation, e)
}

/// The backoff for one call: jittered, exponential, bounded.
pub fn backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(std::time::Duration::from_millis(100))
        .with_max_delay(std::time::Duration::from_secs(10))
        .with_max_times(15)
}

/// An AWS call, retried with [`backoff`] while its error is transient (throttling, 5xx, no answer).
pub async fn retrying<T, F, Fut>(call: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AwsError>>,
{
    use backon::Retryable;
    call.retry(backoff()).when(AwsError::is_transient).await
}

/// A "does not exist" answer, recognised by its error code, as `None`.
pub fn found<T>(result: Result<T, AwsError>, not_found: &[&str]) -> Result<Option<T>, AwsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code().is_some_and(|c| not_found.contains(&c)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn aws_smithy_error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Which AWS identity and region a command acts under: the one rule, in one place. The
/// command's `--profile` / `--region` first, then the job's `[aws]` (as jobrun.toml says it, or
/// as a run recorded it at submit), then the standard chain (`AWS_PROFILE` / `AWS_REGION`, the
/// profile's region, "default"). `commands::run` sets the flags once per command, so a command
/// never acts under two identities (the run's watch, its notification and the command itself
/// all ask here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub profile: Option<String>,
    pub region: Option<String>,
    /// In AWS (the driver, a schedule's dispatcher): a profile a run recorded on the machine
    /// that submitted it means nothing here; the task role's credentials are the chain's.
    pub in_aws: bool,
}

static FLAGS: std::sync::OnceLock<Access> = std::sync::OnceLock::new();

impl Access {
    /// The command line's `--profile` / `--region`; the first call wins.
    pub fn set_flags(flags: Access) {
        let _ = FLAGS.set(flags);
    }

    fn flags() -> Access {
        FLAGS.get().cloned().unwrap_or_default()
    }

    /// For a job: the flags, then its `[aws]`.
    pub fn for_job(profile: Option<&str>, region: Option<&str>) -> Access {
        Self::flags().over(profile, region)
    }

    /// For what lives in one region already (a run's cluster and bucket, a topic): the flags'
    /// profile, then the one recorded; the region is that place's, whatever `--region` says.
    pub fn in_region(profile: Option<&str>, region: &str) -> Access {
        Access {
            region: Some(region.to_string()),
            ..Self::flags().over(profile, None)
        }
    }

    fn over(self, profile: Option<&str>, region: Option<&str>) -> Access {
        let recorded = profile.filter(|_| !self.in_aws).map(str::to_string);
        Access {
            profile: self.profile.or(recorded),
            region: self.region.or(region.map(str::to_string)),
            in_aws: self.in_aws,
        }
    }

    pub async fn load(&self) -> Result<Aws, AwsError> {
        Aws::load(self.profile.as_deref(), self.region.as_deref()).await
    }
}

/// The AWS side of jobrun: one configuration, the clients built from it.
#[derive(Clone)]
pub struct Aws {
    config: SdkConfig,
}

impl Aws {
    /// Loads the standard chain; checks a region is set and credentials can be found, so
    /// nothing is attempted half way without them. Commands choose through [`Access`].
    async fn load(profile: Option<&str>, region: Option<&str>) -> Result<Aws, AwsError> {
        // The roots jobrun carries, so the same code works in an image without a CA file.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(crate::tls::aws_http_client());
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_string()));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(AwsError::NoRegion);
        }
        let provider = config
            .credentials_provider()
            .ok_or_else(|| AwsError::NoCredentials("no credential provider".into()))?;
        use aws_credential_types::provider::ProvideCredentials;
        provider
            .provide_credentials()
            .await
            .map_err(|e| AwsError::NoCredentials(aws_smithy_error_text(&e)))?;
        Ok(Aws { config })
    }

    pub fn region(&self) -> String {
        self.config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default()
    }

    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.config)
    }

    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.config)
    }

    /// ECS without the SDK's own retries, for calls that jobrun paces and retries itself (RunTask
    /// with its client token, DescribeTasks, StopTask): one retry policy, not two stacked.
    pub fn ecs_paced(&self) -> aws_sdk_ecs::Client {
        let conf = aws_sdk_ecs::config::Builder::from(&self.config)
            .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_ecs::Client::from_conf(conf)
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.config)
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.config)
    }

    /// IAM without the SDK's retries, for a question whose failure only means "cannot ask"
    /// (the policy simulator).
    pub fn iam_once(&self) -> aws_sdk_iam::Client {
        let conf = aws_sdk_iam::config::Builder::from(&self.config)
            .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_iam::Client::from_conf(conf)
    }

    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.config)
    }

    /// S3, with path-style addressing when an endpoint URL is configured (S3-compatible stores
    /// and emulators do not resolve bucket subdomains).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.config)
            .force_path_style(self.config.endpoint_url().is_some())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// SQS without the SDK's own retries: queue dispatch retries failed batch entries itself.
    pub fn sqs_paced(&self) -> aws_sdk_sqs::Client {
        let conf = aws_sdk_sqs::config::Builder::from(&self.config)
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_sqs::Client::from_conf(conf)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config)
    }

    pub fn autoscaling(&self) -> aws_sdk_applicationautoscaling::Client {
        aws_sdk_applicationautoscaling::Client::new(&self.config)
    }

    pub fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.config)
    }

    pub fn service_quotas(&self) -> aws_sdk_servicequotas::Client {
        aws_sdk_servicequotas::Client::new(&self.config)
    }

    pub fn scheduler(&self) -> aws_sdk_scheduler::Client {
        aws_sdk_scheduler::Client::new(&self.config)
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.config)
    }

    /// The account the credentials belong to.
    pub async fn account(&self) -> Result<String, AwsError> {
        Ok(self.arns().await?.account)
    }

    /// How this account's ARNs are spelled: the partition of the caller's own ARN, its
    /// account, this region.
    pub async fn arns(&self) -> Result<crate::arn::Arns, AwsError> {
        Ok(self.identity().await?.0)
    }

    /// [`Aws::arns`], and the caller's own ARN (a user, or an assumed role's session).
    pub async fn identity(&self) -> Result<(crate::arn::Arns, String), AwsError> {
        let out = self
            .sts()
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetCallerIdentity", e))?;
        let arns =
            crate::arn::Arns::new(out.arn(), &self.region(), out.account().unwrap_or_default());
        Ok((arns, out.arn().unwrap_or_default().to_string()))
    }
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
            .map_err(op("PutObject"))
    })
    .await?;
    Ok(())
}

/// Whether an object exists, asked in a way a task role may: ListObjectsV2 with the key as
/// prefix. (HeadObject or GetObject of a missing key answers 403, not 404, to a caller without
/// `s3:ListBucket` on the whole bucket, and jobrun's roles may list only their own prefix.) A
/// key is a prefix of every longer key, and sorts first among them, so one key is enough.
pub async fn object_exists(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<bool, AwsError> {
    let out = retrying(|| async {
        s3.list_objects_v2()
            .bucket(bucket)
            .prefix(key)
            .max_keys(1)
            .send()
            .await
            .map_err(op("ListObjectsV2"))
    })
    .await?;
    Ok(out.contents().iter().any(|o| o.key() == Some(key)))
}

/// Writes an object only if there is none of that key yet (`If-None-Match: *`): `false` when
/// one was there. S3 answers a write racing another conditional write of the same key with
/// 409 ConditionalRequestConflict; that one is tried again.
pub async fn put_json_once(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<bool, AwsError> {
    use backon::Retryable;
    let put = || async {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .if_none_match("*")
            .body(body.clone().into())
            .send()
            .await
            .map_err(op("PutObject"))
    };
    let sent = put
        .retry(backoff())
        .when(|e| e.is_transient() || e.code() == Some("ConditionalRequestConflict"))
        .await;
    match sent {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("PreconditionFailed") => Ok(false),
        Err(e) => Err(e),
    }
}

/// An object, or `None` when there is no such key. S3 answers a missing key with 404
/// NoSuchKey only to a caller with `s3:ListBucket` on the bucket, and with 403 AccessDenied to
/// one without (GetObject API Reference, "Permissions") — which is every role jobrun makes, as
/// they may list only their own prefix. So an AccessDenied is looked up by listing, as
/// [`object_exists`] does: absent is `None`, and a key that is there but may not be read stays
/// the error it is.
pub async fn get_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>, AwsError> {
    let got = retrying(|| async {
        s3.get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(op("GetObject"))
    })
    .await;
    match got {
        Err(e) if e.code() == Some("AccessDenied") => match object_exists(s3, bucket, key).await {
            Ok(false) => Ok(None),
            _ => Err(e),
        },
        got => found(got, &["NoSuchKey"]),
    }
}

/// One object of a listing: its key with the listed prefix taken off, size and time.
pub struct Listed {
    pub rel: String,
    pub size: u64,
    pub modified: Option<std::time::SystemTime>,
    /// Its ETag: changes when its content does (`--reuse` keys `--from-s3` tasks by it).
    pub etag: Option<String>,
}

/// Deletes `keys` with DeleteObjects, 1,000 a call (its limit). A key S3 reports it could not
/// delete fails the whole with that key's error code (retried first while it is transient);
/// a key that is not there counts as deleted, as S3 says.
pub async fn delete_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[String],
) -> Result<(), AwsError> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    for chunk in keys.chunks(1000) {
        retrying(|| async {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .expect("a key is all an identifier needs");
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .expect("objects are set");
            let out = s3
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(op("DeleteObjects"))?;
            match out.errors().first() {
                None => Ok(()),
                Some(e) => Err(AwsError::Service {
                    operation: "DeleteObjects",
                    code: e.code().unwrap_or("Unknown").to_string(),
                    message: format!(
                        "{} ({} of {} keys not deleted)",
                        e.key().unwrap_or_default(),
                        out.errors().len(),
                        chunk.len()
                    ),
                }),
            }
        })
        .await?;
    }
    Ok(())
}

/// Every page of a listing under `prefix` (with `/` as the delimiter when `folders`), each call
/// retried while it is transient: the one S3 lister. ListObjectsV2 returns at most 1,000 keys a
/// call and a continuation token while there are more (Amazon S3 API Reference,
/// ListObjectsV2: "IsTruncated", "NextContinuationToken").
async fn list_pages(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    folders: bool,
) -> Result<Vec<aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output>, AwsError> {
    let mut pages = vec![];
    let mut token: Option<String> = None;
    loop {
        let page = retrying(|| async {
            s3.list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_delimiter(folders.then(|| "/".to_string()))
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(op("ListObjectsV2"))
        })
        .await?;
        token = page.next_continuation_token().map(str::to_string);
        pages.push(page);
        if token.is_none() {
            return Ok(pages);
        }
    }
}

/// Every object under a prefix, all pages.
pub async fn list_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<Listed>, AwsError> {
    let pages = list_pages(s3, bucket, prefix, false).await?;
    Ok(pages
        .iter()
        .flat_map(|page| page.contents())
        .filter_map(|o| {
            Some(Listed {
                rel: o.key()?.strip_prefix(prefix)?.to_string(),
                size: o.size().unwrap_or(0).max(0) as u64,
                modified: o
                    .last_modified()
                    .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                etag: o.e_tag().map(str::to_string),
            })
        })
        .collect())
}

/// The folders directly under `parent` whose names start with `start` (without `parent` and
/// the trailing `/`), all pages.
pub async fn list_folders(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    parent: &str,
    start: &str,
) -> Result<Vec<String>, AwsError> {
    let pages = list_pages(s3, bucket, &format!("{parent}{start}"), true).await?;
    Ok(pages
        .iter()
        .flat_map(|page| page.common_prefixes())
        .filter_map(|p| p.prefix()?.strip_prefix(parent))
        .map(|p| p.trim_end_matches('/').to_string())
        .collect())
}

/// A JSON object from S3 (`None` when there is no such key, or it is not that JSON).
pub async fn get_json<T: serde::de::DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<T>, AwsError> {
    let Some(got) = get_object(s3, bucket, key).await? else {
        return Ok(None);
    };
    let bytes = read_body(got, u64::MAX).await?;
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// A got object's bytes, when there are at most `limit` of them (more: `None`, and no more
/// than `limit + 1` are read).
pub async fn read_body(
    got: aws_sdk_s3::operation::get_object::GetObjectOutput,
    limit: u64,
) -> Result<Option<Vec<u8>>, AwsError> {
    use tokio::io::AsyncReadExt;
    let mut out = vec![];
    got.body
        .into_async_read()
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .await
        .map_err(|e| AwsError::Transport {
            operation: "GetObject",
            message: e.to_string(),
        })?;
    Ok((out.len() as u64 <= limit).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::Access;

    fn access(profile: Option<&str>, region: Option<&str>) -> Access {
        Access {
            profile: profile.map(str::to_string),
            region: region.map(str::to_string),
            in_aws: false,
        }
    }

    #[test]
    fn flags_win_over_the_job_and_the_job_over_the_chain() {
        let job = (Some("ml"), Some("eu-west-1"));
        assert_eq!(
            access(Some("me"), Some("us-east-2")).over(job.0, job.1),
            access(Some("me"), Some("us-east-2"))
        );
        assert_eq!(
            access(None, None).over(job.0, job.1),
            access(Some("ml"), Some("eu-west-1"))
        );
        // Neither says: the standard chain decides (AWS_PROFILE, AWS_REGION, "default").
        assert_eq!(access(None, None).over(None, None), access(None, None));
        assert_eq!(
            access(Some("me"), None).over(None, Some("eu-west-1")),
            access(Some("me"), Some("eu-west-1"))
        );
    }
}

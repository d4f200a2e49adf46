//! jobrun's AWS crate: one `SdkConfig` (the standard credential chain, a profile and region
//! the caller chooses, `AWS_ENDPOINT_URL`), every AWS client made from it, and errors matched by
//! code (`ProvideErrorMetadata`), never by message text. Each service is a feature, so the slim
//! agent (S3 and SQS) does not carry the CLI's EC2, IAM, ECR, ECS, Scheduler or Auto Scaling
//! SDKs; and there is one HTTP and TLS stack for all of them (`tls`: hyper 1, rustls with
//! ring, the roots built in). Which identity a command acts under is the caller's rule
//! (the CLI's `aws::Access`): it is passed in to [`Aws::load`], not kept here.

#[cfg(feature = "s3")]
pub mod s3;
pub mod tls;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

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
                message: error_text(other),
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

/// An error and its causes, one line (the SDK's and hyper's own text says only "dispatch
/// failure" or "client error (Connect)").
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The AWS side of jobrun: one configuration, the clients built from it.
#[derive(Clone)]
pub struct Aws {
    config: SdkConfig,
}

impl Aws {
    /// Loads the standard chain, under `profile` and in `region` when given; checks a region is
    /// set and credentials can be found, so nothing is attempted half way without them.
    pub async fn load(profile: Option<&str>, region: Option<&str>) -> Result<Aws, AwsError> {
        // The roots jobrun carries, so the same code works in an image without a CA file.
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).http_client(tls::aws_http_client());
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
            .map_err(|e| AwsError::NoCredentials(error_text(&e)))?;
        Ok(Aws { config })
    }

    pub fn region(&self) -> String {
        self.config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default()
    }

    #[cfg(feature = "ecr")]
    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.config)
    }

    #[cfg(feature = "ecs")]
    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.config)
    }

    #[cfg(feature = "ecs")]
    /// ECS without the SDK's own retries, for calls that jobrun paces and retries itself (RunTask
    /// with its client token, DescribeTasks, StopTask): one retry policy, not two stacked.
    pub fn ecs_paced(&self) -> aws_sdk_ecs::Client {
        let conf = aws_sdk_ecs::config::Builder::from(&self.config)
            .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_ecs::Client::from_conf(conf)
    }

    #[cfg(feature = "ec2")]
    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.config)
    }

    #[cfg(feature = "iam")]
    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.config)
    }

    #[cfg(feature = "iam")]
    /// IAM without the SDK's retries, for a question whose failure only means "cannot ask"
    /// (the policy simulator).
    pub fn iam_once(&self) -> aws_sdk_iam::Client {
        let conf = aws_sdk_iam::config::Builder::from(&self.config)
            .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_iam::Client::from_conf(conf)
    }

    #[cfg(feature = "logs")]
    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.config)
    }

    #[cfg(feature = "s3")]
    /// S3, with path-style addressing when an endpoint URL is configured (S3-compatible stores
    /// and emulators do not resolve bucket subdomains).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.config)
            .force_path_style(self.config.endpoint_url().is_some())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    #[cfg(feature = "sqs")]
    /// SQS without the SDK's own retries: queue dispatch retries failed batch entries itself.
    pub fn sqs_paced(&self) -> aws_sdk_sqs::Client {
        let conf = aws_sdk_sqs::config::Builder::from(&self.config)
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_sqs::Client::from_conf(conf)
    }

    #[cfg(feature = "sqs")]
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config)
    }

    #[cfg(feature = "autoscaling")]
    pub fn autoscaling(&self) -> aws_sdk_applicationautoscaling::Client {
        aws_sdk_applicationautoscaling::Client::new(&self.config)
    }

    #[cfg(feature = "sns")]
    pub fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.config)
    }

    #[cfg(feature = "quotas")]
    pub fn service_quotas(&self) -> aws_sdk_servicequotas::Client {
        aws_sdk_servicequotas::Client::new(&self.config)
    }

    #[cfg(feature = "scheduler")]
    pub fn scheduler(&self) -> aws_sdk_scheduler::Client {
        aws_sdk_scheduler::Client::new(&self.config)
    }

    #[cfg(feature = "sts")]
    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.config)
    }

    #[cfg(feature = "sts")]
    /// The account the credentials belong to.
    pub async fn account(&self) -> Result<String, AwsError> {
        Ok(self.arns().await?.account)
    }

    #[cfg(feature = "sts")]
    /// How this account's ARNs are spelled: the partition of the caller's own ARN, its
    /// account, this region.
    pub async fn arns(&self) -> Result<jobrun_wire::arn::Arns, AwsError> {
        Ok(self.identity().await?.0)
    }

    #[cfg(feature = "sts")]
    /// [`Aws::arns`], and the caller's own ARN (a user, or an assumed role's session).
    pub async fn identity(&self) -> Result<(jobrun_wire::arn::Arns, String), AwsError> {
        let out = self
            .sts()
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetCallerIdentity", e))?;
        let arns = jobrun_wire::arn::Arns::new(
            out.arn(),
            &self.region(),
            out.account().unwrap_or_default(),
        );
        Ok((arns, out.arn().unwrap_or_default().to_string()))
    }
}

//! The AWS resources of a job, one file each. Every file holds what jobrun does with its
//! resource side by side — observe, compare and converge it (for `up`), discover and delete it
//! (for `down`) — so a change to how jobrun makes a resource and to how it removes it is made
//! in one place. The files know nothing of each other: `up` and `down` put them in order.
//!
//! This file holds what they share: the context they read ([`Ctx`]), the shape of a resource
//! that `up` converges ([`Resource`]), and what `down` found to delete ([`Teardown`],
//! [`Deletion`]).

pub mod bucket;
pub mod cluster;
pub mod iam;
pub mod instances;
pub mod logs;
pub mod network;
pub mod queue;
pub mod repository;
pub mod scaling;
pub mod schedule;
pub mod service;
pub mod taskdef;
pub mod trigger;

use crate::arn::Arns;
use crate::aws::{Aws, AwsError};
use crate::config::Job;
use crate::infra::{Action, Change, InfraError, Names, TAG_JOB};

/// What every step reads: the job, the AWS clients, the job's names, how this account's ARNs
/// are spelled (partition, account, region), and whether `up` applies its changes (false: a
/// dry run).
pub struct Ctx<'a> {
    pub job: &'a Job,
    pub aws: &'a Aws,
    pub names: Names,
    pub arns: Arns,
    /// The caller's own ARN (GetCallerIdentity).
    pub caller: String,
    pub apply: bool,
    /// When this `up` made or changed an IAM role: calls that hand a role to ECS or Application
    /// Auto Scaling then retry while IAM settles ([`Ctx::settling`]).
    iam_changed_at: std::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>,
}

impl<'a> Ctx<'a> {
    /// Fails before any call but GetCallerIdentity when a name derived from the job breaks its
    /// service's rule.
    pub async fn new(job: &'a Job, aws: &'a Aws, apply: bool) -> Result<Ctx<'a>, InfraError> {
        let (arns, caller) = aws.identity().await?;
        let names = Names::new(job, &arns.account, &arns.region);
        names.check().map_err(InfraError::Name)?;
        Ok(Ctx {
            job,
            aws,
            names,
            arns,
            caller,
            apply,
            iam_changed_at: Default::default(),
        })
    }

    /// A secret of `ecs.secrets` as an ARN: given as one, or an SSM parameter's name.
    pub fn secret_arn(&self, value: &str) -> String {
        if value.starts_with("arn:") {
            value.to_string()
        } else {
            let name = value.trim_start_matches('/');
            self.arns.regional("ssm", &format!("parameter/{name}"))
        }
    }

    /// Notes that an IAM role was just made or changed.
    pub fn iam_changed(&self) {
        *self.iam_changed_at.lock().expect("not poisoned") = Some(chrono::Utc::now());
    }

    pub fn iam_changed_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        *self.iam_changed_at.lock().expect("not poisoned")
    }

    /// A call that hands a role to another service. IAM is eventually consistent: for some
    /// seconds after a role is made, ECS or Application Auto Scaling may answer that it cannot
    /// be assumed (`codes`: how that service says so). After this `up` changed IAM, those answers
    /// are retried for about a minute and a half; otherwise only transient errors are.
    pub async fn settling<T, F, Fut>(&self, codes: &[&str], call: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AwsError>>,
    {
        settling(self.iam_changed_at().is_some(), codes, call).await
    }

    /// Whether these tags mark a resource as made by jobrun for this job.
    pub fn ours<'t>(&self, mut tags: impl Iterator<Item = (&'t str, &'t str)>) -> bool {
        tags.any(|(k, v)| k == TAG_JOB && v == self.job.name)
    }
}

/// A call that names a role: transient errors are retried, and while the role is `fresh`
/// (made or changed by this command) so are `codes`, the service's way of saying it cannot
/// assume the role yet, for about a minute and a half (no fixed sleep: jittered backoff).
pub async fn settling<T, F, Fut>(fresh: bool, codes: &[&str], call: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AwsError>>,
{
    use backon::Retryable;
    let backoff = backon::ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(std::time::Duration::from_millis(500))
        .with_max_delay(std::time::Duration::from_secs(10))
        .with_max_times(14);
    call.retry(backoff)
        .when(|e| e.is_transient() || (fresh && e.code().is_some_and(|c| codes.contains(&c))))
        .await
}

/// The fields of `want` (a JSON object of what jobrun sets) that `have` (the same shape read
/// back from AWS) holds otherwise: what a compare says changed.
pub fn differing<'a>(want: &'a serde_json::Value, have: &serde_json::Value) -> Vec<&'a str> {
    want.as_object()
        .expect("an object")
        .iter()
        .filter(|(k, v)| have.get(k.as_str()) != Some(v))
        .map(|(k, _)| k.as_str())
        .collect()
}

/// One resource as `up` converges it: read what is there, say how it differs from what the
/// job wants (one [`Change`]), and make that change. `up` calls `converge` only when it
/// applies a create or update; otherwise `current` gives what it goes on with.
pub trait Resource {
    /// What `observe` found.
    type Seen;
    /// What `up` goes on with: an ARN, an id, a name, or nothing.
    type Out;
    /// Read-only calls.
    async fn observe(&self, cx: &Ctx<'_>) -> Result<Self::Seen, InfraError>;
    /// No calls. An error here (a configured resource that is missing) stops `up`.
    fn compare(&self, cx: &Ctx<'_>, seen: &Self::Seen) -> Result<Change, InfraError>;
    /// The write calls that make the change `compare` described.
    async fn converge(&self, cx: &Ctx<'_>, seen: Self::Seen) -> Result<Self::Out, InfraError>;
    /// What `up` goes on with when nothing is written.
    fn current(&self, cx: &Ctx<'_>, seen: Self::Seen) -> Self::Out;
}

/// A resource `down` found for deletion, with what deleting it takes.
pub enum Deletion {
    /// The job's tasks still running on the cluster, stopped before anything is deleted.
    Tasks {
        cluster: String,
        arns: Vec<String>,
    },
    /// A service (the workers', with its scalable target and policy; the driver's).
    Service {
        cluster: String,
        service: String,
        scalable_target: Option<String>,
    },
    Notification {
        bucket: String,
        id: String,
    },
    Queue(String),
    TaskDefinitions(Vec<String>),
    /// A Managed Instances capacity provider, deleted before its cluster.
    CapacityProvider {
        cluster: String,
        name: String,
    },
    Cluster(String),
    SecurityGroup(String),
    /// The Managed Instances' instance profile, deleted before its role.
    InstanceProfile(String),
    Role(String),
    LogGroup(String),
    Bucket(String),
    Repository(String),
    ScheduleGroup(String),
}

impl Deletion {
    pub async fn delete(self, aws: &Aws) -> Result<(), InfraError> {
        match self {
            Deletion::Tasks { cluster, arns } => cluster::stop_tasks(aws, &cluster, &arns).await,
            Deletion::Service {
                cluster,
                service,
                scalable_target,
            } => {
                // The scaling goes first: it would otherwise act on a service being deleted.
                if let Some(target) = scalable_target {
                    scaling::delete(aws, &target).await?;
                }
                service::delete(aws, &cluster, &service).await
            }
            Deletion::Notification { bucket, id } => trigger::delete(aws, &bucket, &id).await,
            Deletion::Queue(url) => queue::delete(aws, &url).await,
            Deletion::TaskDefinitions(arns) => taskdef::delete(aws, &arns).await,
            Deletion::CapacityProvider { cluster, name } => {
                instances::delete(aws, &cluster, &name).await
            }
            Deletion::Cluster(name) => cluster::delete(aws, &name).await,
            Deletion::InstanceProfile(name) => instances::delete_profile(aws, &name).await,
            Deletion::SecurityGroup(id) => network::delete(aws, &id).await,
            Deletion::Role(name) => iam::delete(aws, &name).await,
            Deletion::LogGroup(name) => logs::delete(aws, &name).await,
            Deletion::Bucket(name) => bucket::delete(aws, &name).await,
            Deletion::Repository(name) => repository::delete(aws, &name).await,
            Deletion::ScheduleGroup(name) => schedule::delete(aws, &name).await,
        }
    }
}

/// What `down` found: one change per resource, and what to delete, in order.
#[derive(Default)]
pub struct Teardown {
    pub changes: Vec<Change>,
    pub deletions: Vec<Deletion>,
}

impl Teardown {
    /// Notes a change; `deletion` is kept only when the change is a delete.
    pub fn plan(&mut self, change: Change, deletion: Option<Deletion>) {
        if let Some(d) = deletion.filter(|_| change.action == Action::Delete) {
            self.deletions.push(d);
        }
        self.changes.push(change);
    }
}

//! `jobrun up` / `jobrun down`: the AWS side of a job, converged and torn down.
//!
//! `up` observes each resource, compares it with what the job needs, and changes only the
//! difference, in dependency order (bucket, log group, IAM roles, network, cluster, task
//! definition; in queue mode also the queues, the workers' service, its scaling and the S3
//! trigger). With nothing to change it makes no write call at all. A failure half way leaves
//! resources that the next `up` finds and completes. `down` deletes, in reverse order, only
//! what carries this job's tags (`managed-by=jobrun`, `jobrun:job=<job>`): a configured
//! cluster, bucket, VPC or subnet, or anything else, is never touched.
//!
//! Laid out by capability: `up.rs` and `down.rs` hold the two sequences, `resources/` one file
//! per resource with everything both do to it, `policy.rs` the IAM documents. This file holds
//! what the rest of jobrun sees: the reports, the outputs `submit` reads, the job's names.

pub mod caller;
pub mod dispatcher;
pub mod down;
mod names;
mod policy;
mod resources;
mod up;

// `crate::infra::down::down` (today's caller) and `crate::infra::down` both work.
pub use down::down;
pub use names::Names;
pub use up::up;

use crate::aws::AwsError;
use crate::config::Job;
use crate::record::EcsSite;
use serde::Serialize;
use std::fmt;

pub const TAG_MANAGED: &str = "managed-by";
pub const TAG_JOB: &str = "jobrun:job";

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("no image of job {0} has been pushed")]
    NoImage(String),
    #[error("there is no default VPC in {0}")]
    NoDefaultVpc(String),
    #[error("{kind} {name} is configured in jobrun.toml but does not exist")]
    MissingConfigured { kind: &'static str, name: String },
    #[error("{0}")]
    Refused(String),
    #[error("the pushed image of job {0} has no jobrun agent, which queue mode runs")]
    NoAgent(String),
    #[error("the workers' service {0} is still stopping its tasks")]
    Draining(String),
    /// AWS is still releasing something `down` waits for (tasks stopping).
    #[error("{0}")]
    Busy(String),
    #[error("queue.s3_trigger {0} covers jobrun's own records (jobs/) in the job's bucket")]
    TriggerLoop(String),
    #[error(
        "queue.s3_trigger bucket {bucket} is in {bucket_region}, the job's queue in {region}; S3 notifies only queues of its own region"
    )]
    TriggerRegion {
        bucket: String,
        bucket_region: String,
        region: String,
    },
    #[error(
        "the inline policy of role {role} would be {size} characters; IAM allows {limit} per role"
    )]
    PolicyTooLarge {
        role: String,
        size: usize,
        limit: usize,
    },
    #[error("{0}")]
    Name(#[from] names::NameError),
    #[error("the caller may not do what `up` needs: {}", .0.join(", "))]
    MissingPermissions(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// An existing resource named in jobrun.toml, used as it is.
    Use,
    Delete,
    /// Left alone by `down`: not made by jobrun for this job.
    Keep,
    /// Nothing there.
    Absent,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub resource: &'static str,
    pub name: String,
    pub action: Action,
    pub why: String,
}

/// What `up` made, saved as `jobs/<job>/aws.json` in the state folder for `submit`.
#[derive(Debug, Default, Serialize, serde::Deserialize, Clone)]
pub struct Outputs {
    /// Where tasks go: what every ECS run records.
    #[serde(flatten)]
    pub site: EcsSite,
    pub account: String,
    pub execution_role: String,
    pub task_role: String,
    pub image: String,
    /// Queue mode's resources, when `mode = "queue"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueOutputs>,
    /// The ECS service of the job's driver in AWS (`[ecs] driver = "aws"`), when `up` made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

#[derive(Debug, Default, Serialize, serde::Deserialize, Clone)]
pub struct QueueOutputs {
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
    pub dlq_arn: String,
    pub max_receive_count: u32,
    /// The workers' ECS service and its task definition (the job's image, `jobrun agent`).
    pub service: String,
    pub agent_task_definition: String,
    pub max_workers: u32,
}

#[derive(Debug, Serialize)]
pub struct UpReport {
    pub dry_run: bool,
    pub changes: Vec<Change>,
    pub outputs: Outputs,
}

#[derive(Debug, Serialize)]
pub struct DownReport {
    pub changes: Vec<Change>,
}

pub fn write_changes(f: &mut fmt::Formatter<'_>, changes: &[Change]) -> fmt::Result {
    for c in changes {
        let action = serde_json::to_value(c.action).expect("serialisable");
        writeln!(
            f,
            "  {:<10} {:<16} {:<40} {}",
            action.as_str().unwrap_or_default(),
            c.resource,
            c.name,
            c.why
        )?;
    }
    Ok(())
}

impl fmt::Display for UpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}",
            if self.dry_run {
                "plan (nothing was changed):"
            } else {
                "converged:"
            }
        )?;
        write_changes(f, &self.changes)?;
        let (o, site) = (&self.outputs, &self.outputs.site);
        writeln!(f, "cluster          {}", site.cluster)?;
        writeln!(f, "task definition  {}", site.task_definition)?;
        writeln!(f, "bucket           {}", site.bucket)?;
        writeln!(f, "log group        {}", site.log_group)?;
        writeln!(f, "subnets          {}", site.subnets.join(", "))?;
        writeln!(f, "security groups  {}", site.security_groups.join(", "))?;
        if let Some(q) = &o.queue {
            writeln!(f, "queue            {}", q.queue_url)?;
            writeln!(
                f,
                "dead letters     {} (after {} receives)",
                q.dlq_url, q.max_receive_count
            )?;
            writeln!(
                f,
                "workers          {} (0 to {}, jobrun agent)",
                q.service, q.max_workers
            )?;
        }
        write!(f, "image            {}", o.image)
    }
}

impl fmt::Display for DownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "down:")?;
        write_changes(f, &self.changes)?;
        let deleted = self
            .changes
            .iter()
            .filter(|c| c.action == Action::Delete)
            .count();
        write!(f, "{deleted} resources deleted")
    }
}

/// What `jobrun iam-policy` prints: the caller's policy for these commands, and its size.
#[derive(Debug, Serialize)]
pub struct CallerPolicy {
    pub needs: Vec<caller::Needs>,
    /// Characters, white space not counted: a customer-managed policy takes 6,144.
    pub size: usize,
    pub document: serde_json::Value,
}

/// The largest customer-managed policy IAM takes.
pub const MANAGED_POLICY_LIMIT: usize = 6_144;

impl fmt::Display for CallerPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string_pretty(&self.document).map_err(|_| fmt::Error)?;
        write!(f, "{text}")
    }
}

/// The policy the caller needs for `needs`, with the job's ARNs in this account and region.
pub async fn caller_policy(
    job: &Job,
    aws: &crate::aws::Aws,
    needs: &[caller::Needs],
) -> Result<CallerPolicy, InfraError> {
    let cx = resources::Ctx::new(job, aws, false).await?;
    let document = caller::policy(job, &cx.names, &cx.arns, needs);
    Ok(CallerPolicy {
        needs: needs.to_vec(),
        size: policy::size(&document),
        document,
    })
}

/// A [`Change`], for short.
pub fn change(
    resource: &'static str,
    name: &str,
    action: Action,
    why: impl Into<String>,
) -> Change {
    Change {
        resource,
        name: name.to_string(),
        action,
        why: why.into(),
    }
}

//! `jobrun up` / `jobrun down`: the AWS side of a job, converged and torn down.
//!
//! `up` observes each resource, compares it with what the job needs, and changes only the
//! difference, in dependency order (bucket, log group, IAM roles, network, cluster, task
//! definition). With nothing to change it makes no write call at all. A failure half way
//! leaves resources that the next `up` finds and completes. `down` deletes, in reverse order,
//! only what carries this job's tags (`managed-by=jobrun`, `jobrun:job=<job>`): a configured
//! cluster, bucket, VPC or subnet, or anything else, is never touched.

pub mod down;
pub mod policy;
pub mod queue;
mod resources;

use crate::aws::{self, Aws, AwsError};
use crate::config::{Job, Platform, RegistrySpec};
use serde::Serialize;
use serde_json::Value;
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
    #[error("queue.s3_trigger {0} covers jobrun's own records (jobs/) in the job's bucket")]
    TriggerLoop(String),
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
    pub region: String,
    pub account: String,
    pub cluster: String,
    pub task_definition: String,
    pub bucket: String,
    pub log_group: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    pub execution_role: String,
    pub task_role: String,
    pub image: String,
    /// Queue mode's resources, when `mode = "queue"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueOutputs>,
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

fn write_changes(f: &mut fmt::Formatter<'_>, changes: &[Change]) -> fmt::Result {
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
        let o = &self.outputs;
        writeln!(f, "cluster          {}", o.cluster)?;
        writeln!(f, "task definition  {}", o.task_definition)?;
        writeln!(f, "bucket           {}", o.bucket)?;
        writeln!(f, "log group        {}", o.log_group)?;
        writeln!(f, "subnets          {}", o.subnets.join(", "))?;
        writeln!(f, "security groups  {}", o.security_groups.join(", "))?;
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

/// Every name derived from the job: what `up` makes and `down` looks for, in one place.
pub struct Names {
    pub cluster: String,
    pub log_group: String,
    pub execution_role: String,
    pub task_role: String,
    pub security_group: String,
    pub bucket: String,
    /// The task definition family of the job's own task.
    pub family: String,
    /// Queue mode: the work queue, its dead-letter queue, the workers' service, the agent's
    /// task definition family, the service's scalable target and jobrun's S3 notification id.
    pub queue: String,
    pub dlq: String,
    pub service: String,
    pub agent_family: String,
    pub scalable_target: String,
    pub notification: String,
    /// The ECR repository `push` makes, when the job's registry is ECR.
    pub repository: Option<String>,
}

impl Names {
    pub fn new(job: &Job, account: &str, region: &str) -> Names {
        let j = &job.name;
        let bucket = {
            let plain = format!("jobrun-{j}-{account}-{region}").replace('_', "-");
            if plain.len() <= 63 {
                plain
            } else {
                use sha2::Digest;
                let h = format!("{:x}", sha2::Sha256::digest(j.as_bytes()));
                format!("jobrun-{}-{account}-{region}", &h[..12])
            }
        };
        let cluster = job
            .ecs
            .cluster
            .clone()
            .unwrap_or_else(|| format!("jobrun-{j}"));
        let service = format!("jobrun-{j}-workers");
        let repository = match &job.image.registry {
            RegistrySpec::Ecr {
                repository_prefix, ..
            } => Some(format!("{}/{j}", repository_prefix.trim_matches('/'))),
            _ => None,
        };
        Names {
            scalable_target: format!("service/{cluster}/{service}"),
            cluster,
            log_group: format!("/jobrun/{j}"),
            execution_role: format!("jobrun-{j}-execution"),
            task_role: format!("jobrun-{j}-task"),
            security_group: format!("jobrun-{j}"),
            bucket: job.ecs.bucket.clone().unwrap_or(bucket),
            family: format!("jobrun-{j}"),
            queue: format!("jobrun-{j}"),
            dlq: format!("jobrun-{j}-dlq"),
            service,
            agent_family: format!("jobrun-{j}-agent"),
            notification: format!("jobrun-{j}"),
            repository,
        }
    }
}

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

/// The agent container's entrypoint and extra environment (queue mode's task definition).
type AgentContainer<'a> = Option<(&'a Vec<String>, &'a Vec<(String, String)>)>;

struct Ctx<'a> {
    job: &'a Job,
    aws: &'a Aws,
    names: Names,
    account: String,
    region: String,
    apply: bool,
    changes: Vec<Change>,
}

/// Converges the AWS side of the job (or, with `dry_run`, only says what it would do).
pub async fn up(
    job: &Job,
    aws: &Aws,
    image: Option<String>,
    agent: Option<queue::AgentImage>,
    dry_run: bool,
) -> Result<UpReport, InfraError> {
    let image = image.ok_or_else(|| InfraError::NoImage(job.name.clone()))?;
    let queue_mode = job.ecs.mode == crate::config::DispatchMode::Queue;
    let agent = match (queue_mode, agent) {
        (true, None) => return Err(InfraError::NoAgent(job.name.clone())),
        (_, agent) => agent,
    };
    let account = aws.account().await?;
    let region = aws.region();
    let mut ctx = Ctx {
        job,
        aws,
        names: Names::new(job, &account, &region),
        account,
        region,
        apply: !dry_run,
        changes: vec![],
    };
    ctx.bucket().await?;
    let log_group_arn = ctx.log_group().await?;
    let secrets: Vec<String> = job
        .ecs
        .secrets
        .values()
        .map(|v| ctx.secret_arn(v))
        .collect();
    let repo_arn = ecr_repository_arn(&image, &ctx.account, &ctx.region);
    let exec_doc = policy::execution(repo_arn.as_deref(), &log_group_arn, &secrets);
    let exec_arn = ctx
        .role(
            "execution role",
            &ctx.names.execution_role.clone(),
            &exec_doc,
        )
        .await?;
    let queues = if queue_mode {
        Some(ctx.queues().await?)
    } else {
        None
    };
    let mut task_doc = policy::task(
        &ctx.names.bucket,
        &job.name,
        &job.ecs.inputs,
        &job.ecs.task_policy,
    );
    if let Some(queues) = &queues {
        let extra = policy::queue_worker(
            &queues.arn,
            &format!(
                "arn:aws:ecs:{}:{}:task/{}/*",
                ctx.region, ctx.account, ctx.names.cluster
            ),
            job.ecs.queue.s3_trigger.as_ref(),
        );
        if let Some(list) = task_doc["Statement"].as_array_mut() {
            list.extend(extra);
        }
    }
    let task_arn = ctx
        .role("task role", &ctx.names.task_role.clone(), &task_doc)
        .await?;
    let (subnets, security_groups) = ctx.network().await?;
    ctx.cluster().await?;
    let family = ctx.names.family.clone();
    let task_definition = ctx
        .task_definition(&family, &image, &exec_arn, &task_arn, None)
        .await?;
    let queue = match (queues, agent) {
        (Some(queues), Some(agent)) => {
            let env = queue::agent_env(
                job,
                &agent,
                &queues.url,
                &ctx.names.bucket,
                &ctx.names.log_group,
                job.ecs.queue.max_receive_count,
            );
            let entry = vec![agent.path.clone(), "agent".to_string()];
            let agent_td = ctx
                .task_definition(
                    &ctx.names.agent_family.clone(),
                    &image,
                    &exec_arn,
                    &task_arn,
                    Some((&entry, &env)),
                )
                .await?;
            let service = ctx.service(&agent_td, &subnets, &security_groups).await?;
            ctx.scaling().await?;
            ctx.s3_trigger(&queues.arn).await?;
            Some(queue::outputs(job, queues, service, agent_td))
        }
        _ => None,
    };
    Ok(UpReport {
        dry_run,
        outputs: Outputs {
            region: ctx.region.clone(),
            account: ctx.account.clone(),
            cluster: ctx.names.cluster.clone(),
            task_definition,
            bucket: ctx.names.bucket.clone(),
            log_group: ctx.names.log_group.clone(),
            subnets,
            security_groups,
            assign_public_ip: job.ecs.assign_public_ip,
            execution_role: exec_arn,
            task_role: task_arn,
            image,
            queue,
        },
        changes: ctx.changes,
    })
}

/// `123.dkr.ecr.REGION.amazonaws.com/REPO@sha256:…` → the repository's ARN (other registries: none).
fn ecr_repository_arn(image: &str, account: &str, region: &str) -> Option<String> {
    let (host, rest) = image.split_once('/')?;
    let repo = rest.split('@').next()?.split(':').next()?;
    host.contains(".dkr.ecr.")
        .then(|| format!("arn:aws:ecr:{region}:{account}:repository/{repo}"))
}

impl Ctx<'_> {
    fn record(&mut self, c: Change) -> bool {
        let act = self.apply && matches!(c.action, Action::Create | Action::Update);
        self.changes.push(c);
        act
    }

    fn secret_arn(&self, value: &str) -> String {
        if value.starts_with("arn:") {
            value.to_string()
        } else {
            format!(
                "arn:aws:ssm:{}:{}:parameter{value}",
                self.region, self.account
            )
        }
    }

    async fn bucket(&mut self) -> Result<(), InfraError> {
        let s3 = self.aws.s3();
        let name = self.names.bucket.clone();
        let head = s3
            .head_bucket()
            .bucket(&name)
            .send()
            .await
            .map_err(aws::op("HeadBucket"));
        let exists = aws::found(head, &["NotFound", "NoSuchBucket"])?.is_some();
        if self.job.ecs.bucket.is_some() {
            if !exists {
                return Err(InfraError::MissingConfigured {
                    kind: "bucket",
                    name,
                });
            }
            self.record(change(
                "s3 bucket",
                &name,
                Action::Use,
                "configured in jobrun.toml",
            ));
            return Ok(());
        }
        let mut missing = vec![];
        let mut tagged = true;
        if exists {
            // A bucket made by an `up` that died before tagging it must still be tagged, or
            // `down` would never remove it.
            let tags = s3
                .get_bucket_tagging()
                .bucket(&name)
                .send()
                .await
                .map_err(aws::op("GetBucketTagging"));
            tagged = aws::found(tags, &["NoSuchTagSet"])?.is_some_and(|t| {
                t.tag_set()
                    .iter()
                    .any(|t| t.key() == TAG_JOB && t.value() == self.job.name)
            });
            if !tagged {
                missing.push("the job's tags");
            }
            let pab = s3.get_public_access_block().bucket(&name).send().await;
            let blocked = pab
                .ok()
                .and_then(|o| o.public_access_block_configuration().cloned())
                .is_some_and(|c| {
                    c.block_public_acls() == Some(true)
                        && c.ignore_public_acls() == Some(true)
                        && c.block_public_policy() == Some(true)
                        && c.restrict_public_buckets() == Some(true)
                });
            if !blocked {
                missing.push("public access block");
            }
            let enc = s3.get_bucket_encryption().bucket(&name).send().await;
            if enc
                .ok()
                .and_then(|o| o.server_side_encryption_configuration().cloned())
                .is_none()
            {
                missing.push("default encryption");
            }
        }
        let action = if !exists {
            change("s3 bucket", &name, Action::Create, "missing")
        } else if missing.is_empty() {
            change(
                "s3 bucket",
                &name,
                Action::Unchanged,
                "public access blocked, encrypted",
            )
        } else {
            change(
                "s3 bucket",
                &name,
                Action::Update,
                format!("{} not set", missing.join(" and ")),
            )
        };
        if !self.record(action) {
            return Ok(());
        }
        use aws_sdk_s3::types::*;
        if !exists || !tagged {
            if !exists {
                let mut create = s3.create_bucket().bucket(&name);
                if self.region != "us-east-1" {
                    create = create.create_bucket_configuration(
                        CreateBucketConfiguration::builder()
                            .location_constraint(BucketLocationConstraint::from(
                                self.region.as_str(),
                            ))
                            .build(),
                    );
                }
                create.send().await.map_err(aws::op("CreateBucket"))?;
            }
            let tag = |k: &str, v: &str| {
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .expect("key and value")
            };
            s3.put_bucket_tagging()
                .bucket(&name)
                .tagging(
                    Tagging::builder()
                        .tag_set(tag(TAG_MANAGED, "jobrun"))
                        .tag_set(tag(TAG_JOB, &self.job.name))
                        .build()
                        .expect("tag set"),
                )
                .send()
                .await
                .map_err(aws::op("PutBucketTagging"))?;
        }
        s3.put_public_access_block()
            .bucket(&name)
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
        s3.put_bucket_encryption()
            .bucket(&name)
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

    async fn log_group(&mut self) -> Result<String, InfraError> {
        let logs = self.aws.logs();
        let name = self.names.log_group.clone();
        let arn = format!(
            "arn:aws:logs:{}:{}:log-group:{name}",
            self.region, self.account
        );
        let found = logs
            .describe_log_groups()
            .log_group_name_prefix(&name)
            .send()
            .await
            .map_err(aws::op("DescribeLogGroups"))?
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(name.as_str()))
            .cloned();
        let want = self.job.ecs.log_retention_days;
        let c = match &found {
            None => change(
                "log group",
                &name,
                Action::Create,
                format!("missing (retention {want} days)"),
            ),
            Some(g) if g.retention_in_days() == Some(want) => change(
                "log group",
                &name,
                Action::Unchanged,
                format!("retention {want} days"),
            ),
            Some(g) => change(
                "log group",
                &name,
                Action::Update,
                format!(
                    "retention {} → {want} days",
                    g.retention_in_days()
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "never expire".into())
                ),
            ),
        };
        if self.record(c) {
            if found.is_none() {
                logs.create_log_group()
                    .log_group_name(&name)
                    .tags(TAG_MANAGED, "jobrun")
                    .tags(TAG_JOB, &self.job.name)
                    .send()
                    .await
                    .map_err(aws::op("CreateLogGroup"))?;
            }
            logs.put_retention_policy()
                .log_group_name(&name)
                .retention_in_days(want)
                .send()
                .await
                .map_err(aws::op("PutRetentionPolicy"))?;
        }
        Ok(arn)
    }

    /// A role with the ECS-tasks trust and one inline policy, `jobrun`.
    async fn role(
        &mut self,
        kind: &'static str,
        name: &str,
        doc: &Value,
    ) -> Result<String, InfraError> {
        let iam = self.aws.iam();
        let arn = format!("arn:aws:iam::{}:role/{name}", self.account);
        let trust = policy::trust();
        let got = iam
            .get_role()
            .role_name(name)
            .send()
            .await
            .map_err(aws::op("GetRole"));
        let role = aws::found(got, &["NoSuchEntity"])?.and_then(|out| out.role().cloned());
        let mut why = vec![];
        let mut trust_ok = true;
        let mut policy_ok = true;
        if let Some(r) = &role {
            trust_ok = r
                .assume_role_policy_document()
                .and_then(policy::parse_document)
                .as_ref()
                == Some(&trust);
            if !trust_ok {
                why.push("trust policy differs");
            }
            let got = iam
                .get_role_policy()
                .role_name(name)
                .policy_name("jobrun")
                .send()
                .await
                .map_err(aws::op("GetRolePolicy"));
            let current = aws::found(got, &["NoSuchEntity"])?
                .and_then(|out| policy::parse_document(out.policy_document()));
            policy_ok = current.as_ref() == Some(doc);
            if !policy_ok {
                why.push("inline policy differs");
            }
        }
        let c = match (&role, why.is_empty()) {
            (None, _) => change(kind, name, Action::Create, "missing"),
            (Some(_), true) => change(
                kind,
                name,
                Action::Unchanged,
                "trust and inline policy as wanted",
            ),
            (Some(_), false) => change(kind, name, Action::Update, why.join(", ")),
        };
        if self.record(c) {
            use aws_sdk_iam::types::Tag;
            let tag = |k: &str, v: &str| {
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .expect("key and value")
            };
            if role.is_none() {
                iam.create_role()
                    .role_name(name)
                    .assume_role_policy_document(trust.to_string())
                    .description(format!("jobrun {kind} of job {}", self.job.name))
                    .tags(tag(TAG_MANAGED, "jobrun"))
                    .tags(tag(TAG_JOB, &self.job.name))
                    .send()
                    .await
                    .map_err(aws::op("CreateRole"))?;
            } else if !trust_ok {
                iam.update_assume_role_policy()
                    .role_name(name)
                    .policy_document(trust.to_string())
                    .send()
                    .await
                    .map_err(aws::op("UpdateAssumeRolePolicy"))?;
            }
            if role.is_none() || !policy_ok {
                iam.put_role_policy()
                    .role_name(name)
                    .policy_name("jobrun")
                    .policy_document(doc.to_string())
                    .send()
                    .await
                    .map_err(aws::op("PutRolePolicy"))?;
            }
        }
        Ok(arn)
    }

    /// Subnets and security groups: configured ones, or the default VPC's subnets and an
    /// egress-only group jobrun makes.
    async fn network(&mut self) -> Result<(Vec<String>, Vec<String>), InfraError> {
        use aws_sdk_ec2::types::Filter;
        let ec2 = self.aws.ec2();
        let filter = |k: &str, v: &str| Filter::builder().name(k).values(v).build();
        let (subnets, vpc) = match &self.job.ecs.subnets {
            Some(s) => {
                self.record(change(
                    "subnets",
                    &s.join(","),
                    Action::Use,
                    "configured in jobrun.toml",
                ));
                (s.clone(), None)
            }
            None => {
                let vpcs = ec2
                    .describe_vpcs()
                    .filters(filter("isDefault", "true"))
                    .send()
                    .await
                    .map_err(aws::op("DescribeVpcs"))?;
                let vpc = vpcs
                    .vpcs()
                    .first()
                    .and_then(|v| v.vpc_id())
                    .ok_or_else(|| InfraError::NoDefaultVpc(self.region.clone()))?
                    .to_string();
                let subnets: Vec<String> = ec2
                    .describe_subnets()
                    .filters(filter("vpc-id", &vpc))
                    .send()
                    .await
                    .map_err(aws::op("DescribeSubnets"))?
                    .subnets()
                    .iter()
                    .filter_map(|s| s.subnet_id().map(str::to_string))
                    .collect();
                self.record(change(
                    "subnets",
                    &vpc,
                    Action::Use,
                    format!(
                        "the default VPC's {} subnets, public IP, no NAT gateway",
                        subnets.len()
                    ),
                ));
                (subnets, Some(vpc))
            }
        };
        if let Some(groups) = &self.job.ecs.security_groups {
            self.record(change(
                "security groups",
                &groups.join(","),
                Action::Use,
                "configured in jobrun.toml",
            ));
            return Ok((subnets, groups.clone()));
        }
        let vpc = match vpc {
            Some(v) => v,
            None => {
                let first = subnets.first().cloned().unwrap_or_default();
                ec2.describe_subnets()
                    .subnet_ids(&first)
                    .send()
                    .await
                    .map_err(aws::op("DescribeSubnets"))?
                    .subnets()
                    .first()
                    .and_then(|s| s.vpc_id())
                    .map(str::to_string)
                    .ok_or_else(|| InfraError::MissingConfigured {
                        kind: "subnet",
                        name: first.clone(),
                    })?
            }
        };
        let name = self.names.security_group.clone();
        let found = ec2
            .describe_security_groups()
            .filters(filter("group-name", &name))
            .filters(filter("vpc-id", &vpc))
            .send()
            .await
            .map_err(aws::op("DescribeSecurityGroups"))?
            .security_groups()
            .first()
            .cloned();
        let c = match &found {
            None => change(
                "security group",
                &name,
                Action::Create,
                "missing (egress only)",
            ),
            Some(g) if g.ip_permissions().is_empty() => {
                change("security group", &name, Action::Unchanged, "egress only")
            }
            Some(_) => change(
                "security group",
                &name,
                Action::Update,
                "has inbound rules; removing them",
            ),
        };
        let mut id = found
            .as_ref()
            .and_then(|g| g.group_id())
            .map(str::to_string);
        if self.record(c) {
            match &found {
                None => {
                    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
                    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
                    let out = ec2
                        .create_security_group()
                        .group_name(&name)
                        .description(format!("jobrun job {}: egress only", self.job.name))
                        .vpc_id(&vpc)
                        .tag_specifications(
                            TagSpecification::builder()
                                .resource_type(ResourceType::SecurityGroup)
                                .tags(tag(TAG_MANAGED, "jobrun"))
                                .tags(tag(TAG_JOB, &self.job.name))
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(aws::op("CreateSecurityGroup"))?;
                    id = out.group_id().map(str::to_string);
                }
                Some(g) => {
                    ec2.revoke_security_group_ingress()
                        .group_id(g.group_id().unwrap_or_default())
                        .set_ip_permissions(Some(g.ip_permissions().to_vec()))
                        .send()
                        .await
                        .map_err(aws::op("RevokeSecurityGroupIngress"))?;
                }
            }
        }
        Ok((
            subnets,
            vec![id.unwrap_or_else(|| format!("({name}, to be created)"))],
        ))
    }

    async fn cluster(&mut self) -> Result<(), InfraError> {
        use aws_sdk_ecs::types::{CapacityProviderStrategyItem, ClusterField, Tag};
        let ecs = self.aws.ecs();
        let name = self.names.cluster.clone();
        let out = ecs
            .describe_clusters()
            .clusters(&name)
            .include(ClusterField::Tags)
            .send()
            .await
            .map_err(aws::op("DescribeClusters"))?;
        let found = out
            .clusters()
            .iter()
            .find(|c| c.status() == Some("ACTIVE"))
            .cloned();
        if self.job.ecs.cluster.is_some() {
            if found.is_none() {
                return Err(InfraError::MissingConfigured {
                    kind: "cluster",
                    name,
                });
            }
            self.record(change(
                "ecs cluster",
                &name,
                Action::Use,
                "configured in jobrun.toml",
            ));
            return Ok(());
        }
        let wanted = ["FARGATE", "FARGATE_SPOT"];
        let has_all = |c: &aws_sdk_ecs::types::Cluster| {
            wanted
                .iter()
                .all(|w| c.capacity_providers().iter().any(|p| p == w))
        };
        let c = match &found {
            None => change(
                "ecs cluster",
                &name,
                Action::Create,
                "missing (FARGATE, FARGATE_SPOT)",
            ),
            Some(c) if has_all(c) => change(
                "ecs cluster",
                &name,
                Action::Unchanged,
                "FARGATE and FARGATE_SPOT",
            ),
            Some(_) => change(
                "ecs cluster",
                &name,
                Action::Update,
                "capacity providers missing",
            ),
        };
        if !self.record(c) {
            return Ok(());
        }
        let spot = CapacityProviderStrategyItem::builder()
            .capacity_provider("FARGATE_SPOT")
            .weight(1)
            .build()
            .expect("provider set");
        if found.is_none() {
            let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
            ecs.create_cluster()
                .cluster_name(&name)
                .capacity_providers("FARGATE")
                .capacity_providers("FARGATE_SPOT")
                .default_capacity_provider_strategy(spot)
                .tags(tag(TAG_MANAGED, "jobrun"))
                .tags(tag(TAG_JOB, &self.job.name))
                .send()
                .await
                .map_err(aws::op("CreateCluster"))?;
        } else {
            ecs.put_cluster_capacity_providers()
                .cluster(&name)
                .capacity_providers("FARGATE")
                .capacity_providers("FARGATE_SPOT")
                .default_capacity_provider_strategy(spot)
                .send()
                .await
                .map_err(aws::op("PutClusterCapacityProviders"))?;
        }
        Ok(())
    }

    /// The task definition as jobrun wants it, in a form that compares with what ECS returns.
    fn wanted_task_definition(
        &self,
        image: &str,
        exec_arn: &str,
        task_arn: &str,
        agent: AgentContainer<'_>,
    ) -> Value {
        let job = self.job;
        let mut env = job.run.env.clone();
        let mut entry_point: Vec<String> = vec![];
        if let Some((entry, vars)) = agent {
            env.extend(vars.iter().cloned());
            entry_point = entry.clone();
        }
        let arch = if job.image.platform == Platform::parse("linux/arm64").expect("valid") {
            "ARM64"
        } else {
            "X86_64"
        };
        serde_json::json!({
            "cpu": job.resources.cpu.0.to_string(),
            "memory": job.resources.memory.0.to_string(),
            "architecture": arch,
            "ephemeral_storage": job.resources.ephemeral_storage,
            "execution_role": exec_arn,
            "task_role": task_arn,
            "image": image,
            "environment": env,
            "entry_point": entry_point,
            "secrets": job.ecs.secrets.iter().map(|(k, v)| (k.clone(), self.secret_arn(v))).collect::<std::collections::BTreeMap<_, _>>(),
            "log_group": self.names.log_group,
            "stop_timeout": 120,
        })
    }

    async fn task_definition(
        &mut self,
        family: &str,
        image: &str,
        exec_arn: &str,
        task_arn: &str,
        agent: AgentContainer<'_>,
    ) -> Result<String, InfraError> {
        let ecs = self.aws.ecs();
        let family = family.to_string();
        let want = self.wanted_task_definition(image, exec_arn, task_arn, agent);
        let described = ecs
            .describe_task_definition()
            .task_definition(&family)
            .send()
            .await
            .map_err(aws::op("DescribeTaskDefinition"));
        let current = aws::found(described, &["ClientException", "ResourceNotFoundException"])?
            .and_then(|out| out.task_definition().cloned());
        let current_shape = current.as_ref().map(shape_of);
        let c = match &current_shape {
            None => change("task definition", &family, Action::Create, "missing"),
            Some(have) if *have == want => change(
                "task definition",
                &family,
                Action::Unchanged,
                format!(
                    "revision {}",
                    current.as_ref().map(|t| t.revision()).unwrap_or_default()
                ),
            ),
            Some(have) => {
                let differs: Vec<&str> = want
                    .as_object()
                    .expect("object")
                    .iter()
                    .filter(|(k, v)| have.get(k.as_str()) != Some(v))
                    .map(|(k, _)| k.as_str())
                    .collect();
                change(
                    "task definition",
                    &family,
                    Action::Update,
                    format!("new revision: {} changed", differs.join(", ")),
                )
            }
        };
        let current_arn = current
            .as_ref()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_string);
        if !self.record(c) {
            return Ok(current_arn.unwrap_or_else(|| format!("{family} (to be registered)")));
        }
        use aws_sdk_ecs::types::*;
        let job = self.job;
        let mut container = ContainerDefinition::builder()
            .name("job")
            .image(image)
            .essential(true)
            .memory(job.resources.memory.0 as i32)
            .stop_timeout(120)
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", &self.names.log_group)
                    .options("awslogs-region", &self.region)
                    .options("awslogs-stream-prefix", "jobrun")
                    .build()
                    .expect("log driver set"),
            );
        for (k, v) in want["environment"].as_object().expect("object") {
            container = container.environment(
                KeyValuePair::builder()
                    .name(k)
                    .value(v.as_str().unwrap_or_default())
                    .build(),
            );
        }
        if let Some((entry, _)) = agent {
            container = container.set_entry_point(Some(entry.clone()));
        }
        for (k, v) in &job.ecs.secrets {
            container = container.secrets(
                Secret::builder()
                    .name(k)
                    .value_from(self.secret_arn(v))
                    .build()
                    .expect("name and value"),
            );
        }
        let arch = if want["architecture"] == "ARM64" {
            CpuArchitecture::Arm64
        } else {
            CpuArchitecture::X8664
        };
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let out = ecs
            .register_task_definition()
            .family(&family)
            .requires_compatibilities(Compatibility::Fargate)
            .network_mode(NetworkMode::Awsvpc)
            .cpu(job.resources.cpu.0.to_string())
            .memory(job.resources.memory.0.to_string())
            .runtime_platform(
                RuntimePlatform::builder()
                    .cpu_architecture(arch)
                    .operating_system_family(OsFamily::Linux)
                    .build(),
            )
            .ephemeral_storage(
                EphemeralStorage::builder()
                    .size_in_gib(job.resources.ephemeral_storage as i32)
                    .build(),
            )
            .execution_role_arn(exec_arn)
            .task_role_arn(task_arn)
            .container_definitions(container.build())
            .tags(tag(TAG_MANAGED, "jobrun"))
            .tags(tag(TAG_JOB, &job.name))
            .send()
            .await
            .map_err(aws::op("RegisterTaskDefinition"))?;
        Ok(out
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .unwrap_or_default()
            .to_string())
    }
}

/// The fields jobrun sets, read back from a registered task definition.
fn shape_of(td: &aws_sdk_ecs::types::TaskDefinition) -> Value {
    let c = td
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some("job"));
    let env: std::collections::BTreeMap<String, String> = c
        .map(|c| {
            c.environment()
                .iter()
                .filter_map(|kv| Some((kv.name()?.to_string(), kv.value()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let secrets: std::collections::BTreeMap<String, String> = c
        .map(|c| {
            c.secrets()
                .iter()
                .map(|s| (s.name().to_string(), s.value_from().to_string()))
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "cpu": td.cpu().unwrap_or_default(),
        "memory": td.memory().unwrap_or_default(),
        "architecture": td.runtime_platform().and_then(|p| p.cpu_architecture()).map(|a| a.as_str()).unwrap_or("X86_64"),
        "ephemeral_storage": td.ephemeral_storage().map(|e| e.size_in_gib()).unwrap_or(21),
        "execution_role": td.execution_role_arn().unwrap_or_default(),
        "task_role": td.task_role_arn().unwrap_or_default(),
        "image": c.and_then(|c| c.image()).unwrap_or_default(),
        "environment": env,
        "entry_point": c.map(|c| c.entry_point().to_vec()).unwrap_or_default(),
        "secrets": secrets,
        "log_group": c.and_then(|c| c.log_configuration()).and_then(|l| l.options()).and_then(|o| o.get("awslogs-group")).cloned().unwrap_or_default(),
        "stop_timeout": c.and_then(|c| c.stop_timeout()).unwrap_or_default(),
    })
}

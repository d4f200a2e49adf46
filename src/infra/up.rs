//! `jobrun up`: each resource observed, compared with what the job needs, and converged, in
//! dependency order — bucket, log group, execution role, (queue mode: queues), task role,
//! network, cluster, (Managed Instances: their two roles, instance profile and capacity
//! providers), task definition, (queue mode: the agent's task definition, the workers'
//! service, its scaling, the S3 trigger). Every step records one change; a dry run records
//! and writes nothing. With nothing to change there is no write call at all, and a failure
//! half way leaves resources that the next `up` finds and completes.

use super::resources::bucket::Bucket;
use super::resources::cluster::Cluster;
use super::resources::iam::{Grant, Role, ServiceLinkedRole};
use super::resources::instances::{CapacityProvider, InstanceProfile};
use super::resources::logs::LogGroup;
use super::resources::network::{SecurityGroups, Subnets};
use super::resources::queue::{Queue, Queues};
use super::resources::scaling::{ScalableTarget, ScalingPolicy};
use super::resources::service::Service;
use super::resources::taskdef::TaskDefinition;
use super::resources::trigger::Trigger;
use super::resources::{Ctx, Resource};
use super::{Action, Change, InfraError, Outputs, QueueOutputs, UpReport, caller, policy};
use crate::arn::Arns;
use crate::aws::Aws;
use crate::config::{DispatchMode, Job};
use crate::image::AgentLayer;
use crate::record::{EcsSite, InstanceProviders};
use serde_json::Value;

/// The context, and the changes recorded so far.
pub(super) struct Up<'a> {
    pub cx: Ctx<'a>,
    pub changes: Vec<Change>,
}

impl Up<'_> {
    /// Observe, compare, record the change, and converge when applying a create or update.
    pub async fn converge<R: Resource>(&mut self, resource: R) -> Result<R::Out, InfraError> {
        let seen = resource.observe(&self.cx).await?;
        let change = resource.compare(&self.cx, &seen)?;
        let write = self.cx.apply && matches!(change.action, Action::Create | Action::Update);
        self.changes.push(change);
        if write {
            resource.converge(&self.cx, seen).await
        } else {
            Ok(resource.current(&self.cx, seen))
        }
    }
}

/// Converges the AWS side of the job (or, with `dry_run`, only says what it would do).
pub async fn up(
    job: &Job,
    aws: &Aws,
    image: Option<String>,
    agent: Option<AgentLayer>,
    dry_run: bool,
) -> Result<UpReport, InfraError> {
    let image = image.ok_or_else(|| InfraError::NoImage(job.name.clone()))?;
    if job.ecs.mode == DispatchMode::Queue && agent.is_none() {
        return Err(InfraError::NoAgent(job.name.clone()));
    }
    let queue_mode = job.ecs.mode == DispatchMode::Queue;
    let mut up = Up {
        cx: Ctx::new(job, aws, !dry_run).await?,
        changes: vec![],
    };
    let (exec_doc, task_doc) = role_documents(&up.cx, &image, queue_mode)?;
    let execution_role = up.cx.names.execution_role.clone();
    let task_role = up.cx.names.task_role.clone();
    check_permissions(&up.cx).await?;
    up.converge(Bucket).await?;
    up.converge(LogGroup).await?;
    let exec_arn = up
        .converge(role("execution role", execution_role, exec_doc))
        .await?;
    let queues = match queue_mode {
        true => Some(queues(&mut up).await?),
        false => None,
    };
    let task_arn = up.converge(role("task role", task_role, task_doc)).await?;
    let placement = up.converge(Subnets).await?;
    let security_groups = up
        .converge(SecurityGroups {
            placement: &placement,
        })
        .await?;
    if job.ecs.cluster.is_none() {
        up.converge(ServiceLinkedRole::ECS).await?;
    }
    let providers = up.converge(Cluster).await?;
    let instances = match job.managed_instances() {
        true => Some(instances(&mut up, &placement.subnets, &security_groups).await?),
        false => None,
    };
    let roles = (exec_arn.as_str(), task_arn.as_str());
    let td = TaskDefinition::job(&up.cx, &image, roles, agent.as_ref());
    let task_definition = up.converge(td).await?;
    let queue = match (queues, &agent) {
        (Some(queues), Some(agent)) => {
            let td = TaskDefinition::agent(&up.cx, roles, &image, agent, &queues.work.url);
            let agent_td = up.converge(td).await?;
            let service = up
                .converge(Service {
                    name: &up.cx.names.service.clone(),
                    provider: None,
                    task_definition: &agent_td,
                    subnets: &placement.subnets,
                    security_groups: &security_groups,
                    providers,
                })
                .await?;
            up.converge(ServiceLinkedRole::ECS_AUTOSCALING).await?;
            up.converge(ScalableTarget).await?;
            up.converge(ScalingPolicy).await?;
            trigger(&mut up, &queues.work.arn).await?;
            Some(queue_outputs(job, queues, service, agent_td))
        }
        _ => None,
    };
    if let Some(line) = super::resources::schedule::seen(&up.cx).await? {
        up.changes.push(line);
    }
    let outputs = outputs(
        up.cx,
        job,
        (exec_arn, task_arn),
        image,
        agent.as_ref(),
        Made {
            task_definition,
            subnets: placement.subnets,
            security_groups,
            providers,
            instances,
            queue,
        },
    );
    Ok(UpReport {
        dry_run,
        outputs,
        changes: up.changes,
    })
}

/// What `up` converged, for the outputs.
struct Made {
    task_definition: String,
    subnets: Vec<String>,
    security_groups: Vec<String>,
    providers: crate::record::ClusterProviders,
    instances: Option<InstanceProviders>,
    queue: Option<QueueOutputs>,
}

/// What `up` made, as `submit` reads it.
fn outputs(
    cx: Ctx<'_>,
    job: &Job,
    (execution_role, task_role): (String, String),
    image: String,
    agent: Option<&AgentLayer>,
    made: Made,
) -> Outputs {
    let iam_changed_at = cx.iam_changed_at();
    Outputs {
        site: EcsSite {
            region: cx.arns.region,
            cluster: cx.names.cluster,
            task_definition: made.task_definition,
            bucket: cx.names.bucket,
            log_group: cx.names.log_group,
            subnets: made.subnets,
            security_groups: made.security_groups,
            assign_public_ip: job.ecs.assign_public_ip,
            providers: made.providers,
            iam_changed_at,
            outputs: agent.is_some(),
            agent: agent.and_then(|a| a.agent.as_ref()).map(|i| i.used()),
            instances: made.instances,
        },
        account: cx.arns.account,
        execution_role,
        task_role,
        image,
        queue: made.queue,
        driver: None,
    }
}

/// Asks IAM's policy simulator whether the caller may do what `up` does, before anything is
/// made; goes on without a word when the simulator cannot be asked.
async fn check_permissions(cx: &Ctx<'_>) -> Result<(), InfraError> {
    let needs = caller::policy(cx.job, &cx.names, &cx.arns, &[caller::Needs::Up]);
    match caller::missing(cx.aws, &cx.caller, &needs).await {
        Some(missing) if !missing.is_empty() => Err(InfraError::MissingPermissions(missing)),
        _ => Ok(()),
    }
}

pub(super) fn role(kind: &'static str, name: String, policy: Value) -> Role {
    Role {
        kind,
        name,
        trust: policy::trust(),
        grant: Grant::Inline(policy),
    }
}

/// ECS Managed Instances (a job with a GPU or instance types): the infrastructure role ECS
/// launches instances with and the instances' role, each with AWS's managed policy for it
/// (AmazonECSInfrastructureRolePolicyForManagedInstances may pass only roles named
/// `ecsInstanceRole*`), the instance profile, then the Spot and on-demand providers.
async fn instances(
    up: &mut Up<'_>,
    subnets: &[String],
    security_groups: &[String],
) -> Result<InstanceProviders, InfraError> {
    let names = (
        up.cx.names.infrastructure_role.clone(),
        up.cx.names.instance_role.clone(),
    );
    let infrastructure_role = up
        .converge(Role {
            kind: "infrastructure role",
            name: names.0,
            trust: policy::service_trust("ecs.amazonaws.com"),
            grant: Grant::Managed("AmazonECSInfrastructureRolePolicyForManagedInstances"),
        })
        .await?;
    up.converge(Role {
        kind: "instance role",
        name: names.1,
        trust: policy::service_trust("ec2.amazonaws.com"),
        grant: Grant::Managed("AmazonECSInstanceRolePolicyForManagedInstances"),
    })
    .await?;
    let instance_profile = up.converge(InstanceProfile).await?;
    let (spot, on_demand) = (
        up.cx.names.spot_provider.clone(),
        up.cx.names.on_demand_provider.clone(),
    );
    for (name, spot) in [(&spot, true), (&on_demand, false)] {
        up.converge(CapacityProvider {
            name,
            spot,
            infrastructure_role: &infrastructure_role,
            instance_profile: &instance_profile,
            subnets,
            security_groups,
        })
        .await?;
    }
    Ok(InstanceProviders { spot, on_demand })
}

/// The dead-letter queue first: the work queue's redrive policy names it.
async fn queues(up: &mut Up<'_>) -> Result<Queues, InfraError> {
    let dead_letters = up.converge(Queue::dead_letters(&up.cx)).await?;
    let work = up.converge(Queue::work(&up.cx, &dead_letters.arn)).await?;
    Ok(Queues { work, dead_letters })
}

/// The S3 trigger, when the job has one.
async fn trigger(up: &mut Up<'_>, queue_arn: &str) -> Result<(), InfraError> {
    let Some((bucket, prefix)) = &up.cx.job.ecs.queue.s3_trigger else {
        return Ok(());
    };
    up.converge(Trigger {
        bucket,
        prefix,
        queue_arn,
    })
    .await
}

/// The execution role's policy: pull the image (from ECR), write the logs, read the secrets.
/// Both roles' documents, first: one IAM would refuse stops `up` before anything is made.
fn role_documents(
    cx: &Ctx<'_>,
    image: &str,
    queue_mode: bool,
) -> Result<(Value, Value), InfraError> {
    let exec_doc = execution_policy(cx, image);
    let task_doc = task_policy(cx, queue_mode);
    policy::check_size(&cx.names.execution_role, &exec_doc)?;
    policy::check_size(&cx.names.task_role, &task_doc)?;
    Ok((exec_doc, task_doc))
}

fn execution_policy(cx: &Ctx<'_>, image: &str) -> Value {
    let log_group_arn = LogGroup::arn(cx);
    let secrets: Vec<String> = cx
        .job
        .ecs
        .secrets
        .values()
        .map(|v| cx.secret_arn(v))
        .collect();
    let repo_arn = ecr_repository_arn(image, &cx.arns);
    let kms = &cx.job.ecs.secrets_kms_keys;
    policy::execution(repo_arn.as_deref(), &log_group_arn, &secrets, kms)
}

/// The task role's policy: the job's prefix and what jobrun.toml adds, and in queue mode what
/// the agent needs.
fn task_policy(cx: &Ctx<'_>, queue_mode: bool) -> Value {
    let job = cx.job;
    let mut doc = policy::task(
        &cx.arns,
        &cx.names.bucket,
        &job.name,
        &job.ecs.inputs,
        &job.ecs.task_policy,
    );
    if queue_mode {
        let queue_arn = Queue::work_arn(cx);
        let tasks = cx
            .arns
            .regional("ecs", &format!("task/{}/*", cx.names.cluster));
        let trigger = job.ecs.queue.s3_trigger.as_ref();
        let extra = policy::queue_worker(&cx.arns, &queue_arn, &tasks, trigger);
        if let Some(list) = doc["Statement"].as_array_mut() {
            list.extend(extra);
        }
    }
    doc
}

/// `123.dkr.ecr.REGION.amazonaws.com/REPO@sha256:…` → the repository's ARN (other registries: none).
fn ecr_repository_arn(image: &str, arns: &Arns) -> Option<String> {
    let (host, rest) = image.split_once('/')?;
    let repo = rest.split('@').next()?.split(':').next()?;
    host.contains(".dkr.ecr.")
        .then(|| arns.regional("ecr", &format!("repository/{repo}")))
}

/// What `up` made in queue mode, as saved for `submit`.
fn queue_outputs(
    job: &Job,
    queues: Queues,
    service: String,
    agent_task_definition: String,
) -> QueueOutputs {
    QueueOutputs {
        queue_url: queues.work.url,
        queue_arn: queues.work.arn,
        dlq_url: queues.dead_letters.url,
        dlq_arn: queues.dead_letters.arn,
        max_receive_count: job.ecs.queue.max_receive_count,
        service,
        agent_task_definition,
        max_workers: job.ecs.queue.max_workers,
    }
}

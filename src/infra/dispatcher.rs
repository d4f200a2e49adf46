//! What a job's schedules and its driver in AWS run on, converged the way `up` converges the
//! rest. `jobrun schedule add`: the schedules' dead-letter queue, the dispatcher's role (what
//! `jobrun iam-policy --for run` allows, and nothing more), the role EventBridge Scheduler runs
//! the dispatcher with (RunTask of its task definition on the job's cluster, PassRole of its two
//! roles, the dead-letter queue), the dispatcher's task definition, and the schedule group.
//! `up` (with `[ecs] driver = "aws"`, the default): the same role and task definition, and the
//! driver's ECS service (desired 0 until a run is submitted). `down` finds each of them by the
//! job's names and tags.

use super::resources::queue::Queue;
use super::resources::schedule::ScheduleGroup;
use super::resources::service::Service;
use super::resources::taskdef::TaskDefinition;
use super::up::{Up, role};
use super::{Change, InfraError, Outputs, caller, policy};
use crate::aws::Aws;
use crate::config::Job;
use serde::Serialize;

/// The dispatcher's image as pushed, and how it is started.
pub struct DispatcherImage {
    pub reference: String,
    /// Not built yet (`up --dry-run`): its task definition is compared without it.
    pub planned: bool,
    pub entry: Vec<String>,
    /// Its CPU architecture (the host's, where it was built).
    pub arch: crate::config::Arch,
}

/// What the schedules of a job run on.
#[derive(Debug, Clone, Serialize)]
pub struct DispatcherSide {
    pub group: String,
    pub cluster_arn: String,
    pub task_definition: String,
    pub scheduler_role: String,
    pub dead_letters_arn: String,
    /// This command made or changed the roles (Scheduler may not assume them yet).
    #[serde(skip)]
    pub iam_changed: bool,
    pub changes: Vec<Change>,
}

/// Converges what schedules run on (or, with `dry_run`, only says what it would do).
pub async fn converge(
    job: &Job,
    aws: &Aws,
    outputs: &Outputs,
    image: &DispatcherImage,
    dry_run: bool,
) -> Result<DispatcherSide, InfraError> {
    let mut up = Up {
        cx: super::resources::Ctx::new(job, aws, !dry_run).await?,
        changes: vec![],
    };
    let (names, arns) = (&up.cx.names, &up.cx.arns);
    let scheduler_role = names.scheduler_role.clone();
    let family_arn = arns.regional(
        "ecs",
        &format!("task-definition/{}:*", names.dispatcher_family),
    );
    let cluster_arn = arns.regional("ecs", &format!("cluster/{}", outputs.site.cluster));
    let dlq_arn = arns.regional("sqs", &names.schedule_dlq);
    let passed = [
        outputs.execution_role.clone(),
        arns.role(&names.dispatcher_role),
    ];
    let scheduler_doc = policy::scheduler(&family_arn, &cluster_arn, &passed, &dlq_arn);
    let scheduler_trust = policy::scheduler_trust(&arns.account);
    policy::check_size(&scheduler_role, &scheduler_doc)?;
    let dead_letters = up.converge(Queue::schedule_dead_letters(&up.cx)).await?;
    let task_definition = dispatcher_task(&mut up, outputs, image).await?;
    let mut scheduler = role("scheduler role", scheduler_role, scheduler_doc);
    scheduler.trust = scheduler_trust;
    let scheduler_arn = up.converge(scheduler).await?;
    let group = up.converge(ScheduleGroup).await?;
    let iam_changed = up.cx.iam_changed_at().is_some();
    Ok(DispatcherSide {
        group,
        cluster_arn,
        task_definition,
        scheduler_role: scheduler_arn,
        dead_letters_arn: dead_letters.arn,
        iam_changed,
        changes: up.changes,
    })
}

/// The driver in AWS (`up`, for `[ecs] driver = "aws"`): the dispatcher's role and task
/// definition, kept running by the driver's service while runs driven in AWS are unfinished,
/// on-demand (a Spot interruption of it would be survivable but needless). Converges to the
/// service's name.
pub async fn converge_driver(
    job: &Job,
    aws: &Aws,
    outputs: &Outputs,
    image: &DispatcherImage,
    dry_run: bool,
) -> Result<(String, Vec<Change>), InfraError> {
    let mut up = Up {
        cx: super::resources::Ctx::new(job, aws, !dry_run).await?,
        changes: vec![],
    };
    let task_definition = dispatcher_task(&mut up, outputs, image).await?;
    let name = up.cx.names.driver_service.clone();
    let service = Service {
        name: &name,
        provider: Some("FARGATE"),
        task_definition: &task_definition,
        subnets: &outputs.site.subnets,
        security_groups: &outputs.site.security_groups,
        providers: outputs.site.providers,
    };
    let name = up.converge(service).await?;
    Ok((name, up.changes))
}

/// The dispatcher's role (exactly what `iam-policy --for run` allows) and task definition:
/// what a schedule fires and the driver's service runs. Converges to the task definition.
async fn dispatcher_task(
    up: &mut Up<'_>,
    outputs: &Outputs,
    image: &DispatcherImage,
) -> Result<String, InfraError> {
    let (names, arns) = (&up.cx.names, &up.cx.arns);
    let doc = caller::policy(up.cx.job, names, arns, &[caller::Needs::Run]);
    let dispatcher_role = names.dispatcher_role.clone();
    policy::check_size(&dispatcher_role, &doc)?;
    let dispatcher_arn = up
        .converge(role("dispatcher role", dispatcher_role, doc))
        .await?;
    let roles = (outputs.execution_role.as_str(), dispatcher_arn.as_str());
    let td = TaskDefinition::dispatcher(&up.cx, roles, &image.reference, &image.entry, image.arch);
    up.converge(if image.planned {
        td.image_pending()
    } else {
        td
    })
    .await
}

/// Where a job's schedules are, without converging anything (for `list`, `pause`, `rm`).
pub struct Where {
    pub group: String,
    pub dead_letters: String,
}

pub async fn where_of(job: &Job, aws: &Aws) -> Result<Where, InfraError> {
    let cx = super::resources::Ctx::new(job, aws, false).await?;
    Ok(Where {
        group: cx.names.schedule_group,
        dead_letters: cx.names.schedule_dlq,
    })
}

/// Deliveries Scheduler gave up on: the messages in the schedules' dead-letter queue.
pub async fn failed_deliveries(aws: &Aws, at: &Where) -> Result<Option<u64>, InfraError> {
    super::resources::queue::waiting(aws, &at.dead_letters).await
}

pub use super::resources::schedule::{
    Delivery, Got, ScheduleDef, delete_schedule, get, list, put, set_state,
};

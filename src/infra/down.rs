//! `jobrun down`: discovers what carries this job's tags, asks, then deletes it in reverse
//! dependency order (the schedule group with its schedules; the job's tasks still running,
//! stopped; queue mode's service, notification and queues; the task definitions, Managed
//! Instances' capacity providers, cluster, security group, instance profile, roles, log group,
//! bucket; last the ECR repository `push` made).
//! Configured (shared) resources and anything untagged are kept; what is already gone is
//! reported as absent, so `down` can be run again after a partial failure.

use super::resources::{
    Ctx, Teardown, bucket, cluster, iam, instances, logs, network, queue, repository, schedule,
    service, taskdef, trigger,
};
use super::{Change, DownReport, InfraError};
use crate::aws::Aws;
use crate::config::Job;

/// Deletes what `up` (and `push`) made for the job, once `confirm` agrees with the list.
pub async fn down(
    job: &Job,
    aws: &Aws,
    confirm: impl FnOnce(&[Change]) -> bool,
) -> Result<DownReport, InfraError> {
    let cx = Ctx::new(job, aws, true).await?;
    let found = discover(&cx).await?;
    let changes = found.changes;
    if found.deletions.is_empty() {
        return Ok(DownReport { changes });
    }
    if !confirm(&changes) {
        return Err(InfraError::Refused("nothing was deleted".into()));
    }
    for deletion in found.deletions {
        deletion.delete(aws).await?;
    }
    Ok(DownReport { changes })
}

/// Every resource of the job, in the order they are deleted: what depends on another first.
async fn discover(cx: &Ctx<'_>) -> Result<Teardown, InfraError> {
    let mut found = Teardown::default();
    // Schedules first: nothing may start a dispatcher while the rest goes.
    schedule::discover(cx, &mut found).await?;
    cluster::discover_tasks(cx, &mut found).await?;
    service::discover(cx, &mut found).await?;
    trigger::discover(cx, &mut found);
    queue::discover(cx, &mut found).await?;
    taskdef::discover(cx, &mut found).await?;
    instances::discover(cx, &mut found).await?;
    cluster::discover(cx, &mut found).await?;
    network::discover(cx, &mut found).await?;
    instances::discover_profile(cx, &mut found).await?;
    iam::discover(cx, &mut found).await?;
    logs::discover(cx, &mut found).await?;
    bucket::discover(cx, &mut found).await?;
    repository::discover(cx, &mut found).await?;
    Ok(found)
}

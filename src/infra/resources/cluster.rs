//! The job's ECS cluster, with the FARGATE and FARGATE_SPOT capacity providers (spot by
//! default). A cluster named in jobrun.toml is used as it is and never deleted.

use super::{Ctx, Deletion, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, InfraError, change};
use aws_sdk_ecs::types::Cluster as Found;

const KIND: &str = "ecs cluster";

/// The active cluster of that name, with its tags.
async fn find(cx: &Ctx<'_>) -> Result<Option<Found>, InfraError> {
    let out = cx
        .aws
        .ecs()
        .describe_clusters()
        .clusters(&cx.names.cluster)
        .include(aws_sdk_ecs::types::ClusterField::Tags)
        .send()
        .await
        .map_err(aws::op("DescribeClusters"))?;
    Ok(out
        .clusters()
        .iter()
        .find(|c| c.status() == Some("ACTIVE"))
        .cloned())
}

/// `down`: the cluster when it carries the job's tags (a configured one is kept).
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let name = &cx.names.cluster;
    if cx.job.ecs.cluster.is_some() {
        found.plan(
            change(KIND, name, Action::Keep, "configured in jobrun.toml"),
            None,
        );
        return Ok(());
    }
    let c = match find(cx).await? {
        None => change(KIND, name, Action::Absent, "not there"),
        Some(c) if cx.ours(c.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)))) => {
            change(KIND, name, Action::Delete, "made by jobrun for this job")
        }
        Some(_) => change(KIND, name, Action::Keep, "not tagged for this job"),
    };
    found.plan(c, Some(Deletion::Cluster(name.clone())));
    Ok(())
}

pub async fn delete(aws: &Aws, name: &str) -> Result<(), InfraError> {
    aws.ecs()
        .delete_cluster()
        .cluster(name)
        .send()
        .await
        .map_err(aws::op("DeleteCluster"))?;
    Ok(())
}

//! The job's ECS cluster, with the FARGATE and FARGATE_SPOT capacity providers (spot by
//! default). A cluster named in jobrun.toml is used as it is and never deleted.

use super::{Ctx, Deletion, Resource, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, Change, InfraError, TAG_JOB, TAG_MANAGED, change};
use aws_sdk_ecs::types::Cluster as Found;

const KIND: &str = "ecs cluster";
const PROVIDERS: [&str; 2] = ["FARGATE", "FARGATE_SPOT"];

pub struct Cluster;

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

impl Resource for Cluster {
    type Seen = Option<Found>;
    type Out = ();

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Option<Found>, InfraError> {
        find(cx).await
    }

    fn compare(&self, cx: &Ctx<'_>, found: &Option<Found>) -> Result<Change, InfraError> {
        let name = &cx.names.cluster;
        if cx.job.ecs.cluster.is_some() {
            if found.is_none() {
                return Err(InfraError::MissingConfigured {
                    kind: "cluster",
                    name: name.clone(),
                });
            }
            return Ok(change(KIND, name, Action::Use, "configured in jobrun.toml"));
        }
        let has_all = |c: &Found| {
            PROVIDERS
                .iter()
                .all(|w| c.capacity_providers().iter().any(|p| p == w))
        };
        Ok(match found {
            None => change(
                KIND,
                name,
                Action::Create,
                "missing (FARGATE, FARGATE_SPOT)",
            ),
            Some(c) if has_all(c) => {
                change(KIND, name, Action::Unchanged, "FARGATE and FARGATE_SPOT")
            }
            Some(_) => change(KIND, name, Action::Update, "capacity providers missing"),
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, found: Option<Found>) -> Result<(), InfraError> {
        use aws_sdk_ecs::types::{CapacityProviderStrategyItem, Tag};
        let ecs = cx.aws.ecs();
        let name = &cx.names.cluster;
        let spot = CapacityProviderStrategyItem::builder()
            .capacity_provider("FARGATE_SPOT")
            .weight(1)
            .build()
            .expect("provider set");
        if found.is_none() {
            let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
            ecs.create_cluster()
                .cluster_name(name)
                .set_capacity_providers(Some(PROVIDERS.map(String::from).to_vec()))
                .default_capacity_provider_strategy(spot)
                .tags(tag(TAG_MANAGED, "jobrun"))
                .tags(tag(TAG_JOB, &cx.job.name))
                .send()
                .await
                .map_err(aws::op("CreateCluster"))?;
        } else {
            ecs.put_cluster_capacity_providers()
                .cluster(name)
                .set_capacity_providers(Some(PROVIDERS.map(String::from).to_vec()))
                .default_capacity_provider_strategy(spot)
                .send()
                .await
                .map_err(aws::op("PutClusterCapacityProviders"))?;
        }
        Ok(())
    }

    fn current(&self, _: &Ctx<'_>, _: Option<Found>) {}
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

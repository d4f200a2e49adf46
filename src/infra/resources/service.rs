//! Queue mode's workers: an ECS service running the agent task definition. It is made with a
//! desired count of 0 and from then on the autoscaler owns that count, so `up` never sets it
//! again; it converges the task definition, network and capacity provider only.

use super::{Ctx, Deletion, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, InfraError, change};
use aws_sdk_ecs::types::Service as Found;

const KIND: &str = "ecs service";

/// The service of that name when it is active (with its tags), `None` when there is none (or
/// no cluster).
async fn active_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    name: &str,
) -> Result<Option<Found>, InfraError> {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(name)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .map_err(aws::op("DescribeServices"));
    let found = aws::found(out, &["ClusterNotFoundException"])?;
    Ok(found.and_then(|o| {
        o.services()
            .iter()
            .find(|s| s.status() == Some("ACTIVE"))
            .cloned()
    }))
}

/// `down`: the service when it carries the job's tags (deleting it takes its scaling too).
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let (cluster, name) = (&cx.names.cluster, &cx.names.service);
    match active_service(&cx.aws.ecs(), cluster, name).await? {
        None => found.plan(change(KIND, name, Action::Absent, "not there"), None),
        Some(s) if cx.ours(s.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)))) => found
            .plan(
                change(
                    KIND,
                    name,
                    Action::Delete,
                    "made by jobrun for this job (with its scaling)",
                ),
                Some(Deletion::Service {
                    cluster: cluster.clone(),
                    service: name.clone(),
                    scalable_target: cx.names.scalable_target.clone(),
                }),
            ),
        Some(_) => found.plan(
            change(KIND, name, Action::Keep, "not tagged for this job"),
            None,
        ),
    }
    Ok(())
}

/// Deletes the service (forced: ECS would otherwise want it scaled to 0 first) and waits until
/// it is gone: ECS stops its tasks first, and the cluster can only go after.
pub async fn delete(aws: &Aws, cluster: &str, service: &str) -> Result<(), InfraError> {
    let ecs = aws.ecs();
    ecs.delete_service()
        .cluster(cluster)
        .service(service)
        .force(true)
        .send()
        .await
        .map_err(aws::op("DeleteService"))?;
    use backon::BackoffBuilder as _;
    let mut pause = backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(200))
        .with_max_delay(std::time::Duration::from_secs(10))
        .with_max_times(60)
        .build();
    loop {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(aws::op("DescribeServices"))?;
        if out
            .services()
            .iter()
            .all(|s| s.status() == Some("INACTIVE"))
        {
            return Ok(());
        }
        match pause.next() {
            Some(d) => tokio::time::sleep(d).await,
            None => return Err(InfraError::Draining(service.to_string())),
        }
    }
}

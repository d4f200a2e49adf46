//! The job's ECS cluster, with the FARGATE and FARGATE_SPOT capacity providers (spot by
//! default). A cluster named in jobrun.toml is used as it is and never deleted; which Fargate
//! capacity providers it has decides how tasks ask for capacity ([`ClusterProviders`]), and
//! `up` says so.

use super::{Ctx, Deletion, Resource, Teardown};
use crate::aws::{self, Aws};
use crate::config::CapacityKind;
use crate::infra::{Action, Change, InfraError, TAG_JOB, TAG_MANAGED, change};
use crate::record::ClusterProviders;
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

fn providers(found: Option<&Found>) -> ClusterProviders {
    found.map_or(ClusterProviders::None, |c| {
        ClusterProviders::of(c.capacity_providers().iter().map(String::as_str))
    })
}

impl Resource for Cluster {
    type Seen = Option<Found>;
    type Out = ClusterProviders;

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
            let spot = cx.job.ecs.capacity.kind == CapacityKind::Spot;
            let why = providers(found.as_ref()).explain(spot);
            return Ok(change(
                KIND,
                name,
                Action::Use,
                format!("configured in jobrun.toml; {why}"),
            ));
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

    async fn converge(
        &self,
        cx: &Ctx<'_>,
        found: Option<Found>,
    ) -> Result<ClusterProviders, InfraError> {
        use aws_sdk_ecs::types::{CapacityProviderStrategyItem, Tag};
        let ecs = cx.aws.ecs();
        let name = &cx.names.cluster;
        let spot = CapacityProviderStrategyItem::builder()
            .capacity_provider("FARGATE_SPOT")
            .weight(1)
            .build()
            .expect("provider set");
        // ECS answers InvalidParameterException while its service-linked role, just made,
        // cannot be assumed yet.
        let settling = ["InvalidParameterException"];
        if found.is_none() {
            let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
            let request = ecs
                .create_cluster()
                .cluster_name(name)
                .set_capacity_providers(Some(PROVIDERS.map(String::from).to_vec()))
                .default_capacity_provider_strategy(spot)
                .tags(tag(TAG_MANAGED, "jobrun"))
                .tags(tag(TAG_JOB, &cx.job.name));
            cx.settling(&settling, || async {
                let sent = request.clone().send().await;
                sent.map_err(aws::op("CreateCluster"))
            })
            .await?;
        } else {
            let request = ecs
                .put_cluster_capacity_providers()
                .cluster(name)
                .set_capacity_providers(Some(PROVIDERS.map(String::from).to_vec()))
                .default_capacity_provider_strategy(spot);
            cx.settling(&settling, || async {
                let sent = request.clone().send().await;
                sent.map_err(aws::op("PutClusterCapacityProviders"))
            })
            .await?;
        }
        Ok(ClusterProviders::FargateAndSpot)
    }

    fn current(&self, cx: &Ctx<'_>, found: Option<Found>) -> ClusterProviders {
        match (&cx.job.ecs.cluster, found) {
            (Some(_), found) => providers(found.as_ref()),
            // jobrun's own cluster: as `up` makes it (a dry run, or an update still to come).
            (None, _) => ClusterProviders::FargateAndSpot,
        }
    }
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

/// `down`: the job's own tasks still running on the cluster (direct mode's, of the job's task
/// definition family): deleting the cluster, roles and log group under them would kill them
/// anyway, so `down` lists them with what it deletes and stops them first.
pub async fn discover_tasks(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let (cluster, family) = (&cx.names.cluster, &cx.names.family);
    let ecs = cx.aws.ecs();
    let mut arns = vec![];
    let mut token = None;
    loop {
        let page = ecs
            .list_tasks()
            .cluster(cluster)
            .family(family)
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .set_next_token(token)
            .send()
            .await
            .map_err(aws::op("ListTasks"));
        let Some(page) = aws::found(page, &["ClusterNotFoundException"])? else {
            return Ok(());
        };
        arns.extend(page.task_arns().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    if !arns.is_empty() {
        let why = format!("{} still running: stopped first", arns.len());
        let deletion = Deletion::Tasks {
            cluster: cluster.clone(),
            arns,
        };
        found.plan(
            change("ecs tasks", family, Action::Delete, why),
            Some(deletion),
        );
    }
    Ok(())
}

/// Stops the tasks and waits until ECS reports every one stopped (it keeps a cluster with
/// tasks that are still stopping: ClusterContainsTasksException).
pub async fn stop_tasks(aws: &Aws, cluster: &str, arns: &[String]) -> Result<(), InfraError> {
    let ecs = aws.ecs();
    for arn in arns {
        let stopped = ecs
            .stop_task()
            .cluster(cluster)
            .task(arn)
            .reason("jobrun down")
            .send()
            .await
            .map_err(aws::op("StopTask"));
        aws::found(stopped, &["InvalidParameterException"])?;
    }
    let still_running = || async {
        let mut running = 0;
        for chunk in arns.chunks(100) {
            let out = ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(aws::op("DescribeTasks"))?;
            running += out
                .tasks()
                .iter()
                .filter(|t| t.last_status() != Some("STOPPED"))
                .count();
        }
        if running == 0 {
            Ok(())
        } else {
            Err(InfraError::Busy(format!(
                "{running} tasks of cluster {cluster} are still stopping"
            )))
        }
    };
    use backon::Retryable;
    still_running
        .retry(teardown_backoff())
        .when(|e| matches!(e, InfraError::Busy(_)))
        .await
}

/// How long `down` waits for what AWS releases in its own time (tasks stopping, a service
/// draining, task network interfaces going away): about five minutes, checked ever less often.
pub fn teardown_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(500))
        .with_max_delay(std::time::Duration::from_secs(15))
        .with_max_times(25)
}

/// Deletes the cluster, retried while ECS still counts tasks or services in it.
pub async fn delete(aws: &Aws, name: &str) -> Result<(), InfraError> {
    const BUSY: [&str; 2] = [
        "ClusterContainsTasksException",
        "ClusterContainsServicesException",
    ];
    let ecs = aws.ecs();
    let call = || async {
        ecs.delete_cluster()
            .cluster(name)
            .send()
            .await
            .map_err(aws::op("DeleteCluster"))
    };
    use backon::Retryable;
    call.retry(teardown_backoff())
        .when(|e| e.code().is_some_and(|c| BUSY.contains(&c)))
        .await?;
    Ok(())
}

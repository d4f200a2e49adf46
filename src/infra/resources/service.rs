//! The job's ECS services: queue mode's workers (the agent task definition) and the driver
//! (the dispatcher's task definition running `jobrun drive`, on-demand Fargate). Each is made
//! with a desired count of 0, and from then on its count is not `up`'s: the autoscaler owns
//! the workers', `submit` and the driver itself the driver's (1 while runs driven in AWS are
//! unfinished). `up` converges the task definition, network and capacity provider only.

use super::{Ctx, Deletion, Resource, Teardown};
use crate::aws::{self, Aws};
use crate::config::CapacityKind;
use crate::infra::{Action, Change, InfraError, TAG_JOB, TAG_MANAGED, change};
use crate::record::{ClusterProviders, Placement};
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, LaunchType,
    NetworkConfiguration, PropagateTags, Service as Found, Tag,
};

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

/// A service as the job wants it; converges to its name.
pub struct Service<'a> {
    pub name: &'a str,
    /// Its capacity provider: the job's capacity kind when none.
    pub provider: Option<&'static str>,
    pub task_definition: &'a str,
    pub subnets: &'a [String],
    pub security_groups: &'a [String],
    /// The cluster's Fargate capacity providers.
    pub providers: ClusterProviders,
}

fn provider(cx: &Ctx<'_>) -> &'static str {
    match cx.job.ecs.capacity.kind {
        CapacityKind::OnDemand => "FARGATE",
        CapacityKind::Spot => "FARGATE_SPOT",
    }
}

fn public_ip(cx: &Ctx<'_>) -> AssignPublicIp {
    if cx.job.ecs.assign_public_ip {
        AssignPublicIp::Enabled
    } else {
        AssignPublicIp::Disabled
    }
}

impl Service<'_> {
    /// What differs from what the job wants (a service ECS describes without a capacity
    /// strategy, as emulators do, is not counted as different there).
    fn differs(&self, cx: &Ctx<'_>, s: &Found) -> Vec<&'static str> {
        let mut why = vec![];
        if s.task_definition() != Some(self.task_definition) {
            why.push("agent task definition");
        }
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        let net = s
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration());
        let same_net = net.is_some_and(|a| {
            sorted(a.subnets()) == sorted(self.subnets)
                && sorted(a.security_groups()) == sorted(self.security_groups)
                && a.assign_public_ip().is_none_or(|p| *p == public_ip(cx))
        });
        if !same_net {
            why.push("network");
        }
        let strategy = s.capacity_provider_strategy();
        let wanted = match self.placement(cx) {
            Placement::Provider(p) => Some(self.provider_name(cx, p)),
            Placement::LaunchType => None,
        };
        if !strategy.is_empty() && Some(strategy[0].capacity_provider()) != wanted.as_deref() {
            why.push("capacity provider");
        }
        why
    }

    /// The job's capacity kind as the cluster can give it.
    fn placement(&self, cx: &Ctx<'_>) -> Placement {
        let wanted = self.provider.unwrap_or_else(|| provider(cx));
        self.providers.placements(&[wanted])[0]
    }

    /// The provider a placement names: on Managed Instances the job's workers ask the job's own
    /// provider of that purchase option (the driver's service stays on Fargate).
    fn provider_name(&self, cx: &Ctx<'_>, p: &'static str) -> String {
        let names = &cx.names;
        match (self.provider.is_none() && cx.job.managed_instances(), p) {
            (true, "FARGATE_SPOT") => names.spot_provider.clone(),
            (true, _) => names.on_demand_provider.clone(),
            (false, p) => p.to_string(),
        }
    }

    fn network(&self, cx: &Ctx<'_>) -> NetworkConfiguration {
        NetworkConfiguration::builder()
            .awsvpc_configuration(
                AwsVpcConfiguration::builder()
                    .set_subnets(Some(self.subnets.to_vec()))
                    .set_security_groups(Some(self.security_groups.to_vec()))
                    .assign_public_ip(public_ip(cx))
                    .build()
                    .expect("subnets set"),
            )
            .build()
    }
}

impl Resource for Service<'_> {
    type Seen = Option<Found>;
    type Out = String;

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Option<Found>, InfraError> {
        active_service(&cx.aws.ecs(), &cx.names.cluster, self.name).await
    }

    fn compare(&self, cx: &Ctx<'_>, found: &Option<Found>) -> Result<Change, InfraError> {
        let name = self.name;
        Ok(match found {
            None => change(KIND, name, Action::Create, "missing (desired 0)"),
            Some(s) if self.differs(cx, s).is_empty() => change(
                KIND,
                name,
                Action::Unchanged,
                format!(
                    "{} running, {} desired",
                    s.running_count(),
                    s.desired_count()
                ),
            ),
            Some(s) => change(
                KIND,
                name,
                Action::Update,
                format!("{} changed", self.differs(cx, s).join(", ")),
            ),
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, found: Option<Found>) -> Result<String, InfraError> {
        let ecs = cx.aws.ecs();
        let name = self.name;
        let strategy = match self.placement(cx) {
            Placement::Provider(p) => Some(
                CapacityProviderStrategyItem::builder()
                    .capacity_provider(self.provider_name(cx, p))
                    .weight(1)
                    .build()
                    .expect("provider set"),
            ),
            Placement::LaunchType => None,
        };
        // ECS answers InvalidParameterException for a role it cannot assume yet.
        let settling = ["InvalidParameterException"];
        let Some(found) = found else {
            let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
            let request = ecs
                .create_service()
                .cluster(&cx.names.cluster)
                .service_name(name)
                .task_definition(self.task_definition)
                .desired_count(0)
                .set_capacity_provider_strategy(strategy.clone().map(|s| vec![s]))
                .set_launch_type(strategy.is_none().then_some(LaunchType::Fargate))
                .network_configuration(self.network(cx))
                .tags(tag(TAG_MANAGED, "jobrun"))
                .tags(tag(TAG_JOB, &cx.job.name))
                .propagate_tags(PropagateTags::Service);
            cx.settling(&settling, || async {
                let sent = request.clone().send().await;
                sent.map_err(aws::op("CreateService"))
            })
            .await?;
            return Ok(name.to_string());
        };
        let mut update = ecs
            .update_service()
            .cluster(&cx.names.cluster)
            .service(name)
            .task_definition(self.task_definition)
            .network_configuration(self.network(cx));
        if let Some(strategy) =
            strategy.filter(|_| self.differs(cx, &found).contains(&"capacity provider"))
        {
            // ECS takes a new capacity strategy only with a new deployment.
            update = update
                .capacity_provider_strategy(strategy)
                .force_new_deployment(true);
        }
        cx.settling(&settling, || async {
            let sent = update.clone().send().await;
            sent.map_err(aws::op("UpdateService"))
        })
        .await?;
        Ok(name.to_string())
    }

    fn current(&self, _: &Ctx<'_>, _: Option<Found>) -> String {
        self.name.to_string()
    }
}

/// `down`: the workers' and the driver's services when they carry the job's tags (deleting
/// the workers' takes their scaling too).
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let workers = Some(cx.names.scalable_target.clone());
    discover_one(cx, found, &cx.names.service, workers).await?;
    discover_one(cx, found, &cx.names.driver_service, None).await
}

async fn discover_one(
    cx: &Ctx<'_>,
    found: &mut Teardown,
    name: &str,
    scalable_target: Option<String>,
) -> Result<(), InfraError> {
    let cluster = &cx.names.cluster;
    match active_service(&cx.aws.ecs(), cluster, name).await? {
        None => found.plan(change(KIND, name, Action::Absent, "not there"), None),
        Some(s) if cx.ours(s.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)))) => found
            .plan(
                change(
                    KIND,
                    name,
                    Action::Delete,
                    match scalable_target {
                        Some(_) => "made by jobrun for this job (with its scaling)",
                        None => "made by jobrun for this job",
                    },
                ),
                Some(Deletion::Service {
                    cluster: cluster.clone(),
                    service: name.to_string(),
                    scalable_target,
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

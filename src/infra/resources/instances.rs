//! ECS Managed Instances: what a job with a GPU or instance types runs on instead of Fargate.
//! ECS launches, packs and retires EC2 instances for it; `up` gives ECS what that takes — the
//! instance profile of the instances' role, and two capacity providers in the job's cluster,
//! Spot and on-demand (a provider's purchase option cannot be changed in place: it is absent
//! from `InstanceLaunchTemplateUpdate`), whose instance requirements come from `[resources]`.
//! The two roles are `iam.rs`'s; the task definitions say `MANAGED_INSTANCES` (`taskdef.rs`).
//!
//! AWS's pages relied on: API_CreateCapacityProvider, API_UpdateCapacityProvider,
//! API_DeleteCapacityProvider, API_DescribeCapacityProviders, API_InstanceLaunchTemplate,
//! API_InstanceRequirementsRequest, API_InfrastructureOptimization (all under
//! https://docs.aws.amazon.com/AmazonECS/latest/APIReference/), and the developer guide's
//! "Amazon ECS Managed Instances instance profile" (managed-instances-instance-profile.html).

use super::{Ctx, Deletion, Resource, Teardown};
use crate::aws::{self, Aws};
use crate::config::Arch;
use crate::infra::{Action, Change, InfraError, TAG_JOB, TAG_MANAGED, change};
use aws_sdk_ecs::types::CapacityProvider as Found;
use serde_json::{Value, json};

/// The instances' instance profile, named as its role and holding it; converges to its ARN.
pub struct InstanceProfile;

const PROFILE: &str = "instance profile";
const PROVIDER: &str = "capacity provider";

/// The instance profile of that name (GetInstanceProfile, NoSuchEntity when there is none:
/// https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetInstanceProfile.html).
async fn get_profile(
    iam: &aws_sdk_iam::Client,
    name: &str,
) -> Result<Option<aws_sdk_iam::types::InstanceProfile>, InfraError> {
    let got = iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await;
    let found = aws::found(
        got.map_err(aws::op("GetInstanceProfile")),
        &["NoSuchEntity"],
    )?;
    Ok(found.and_then(|o| o.instance_profile().cloned()))
}

fn profile_arn(cx: &Ctx<'_>) -> String {
    let a = &cx.arns;
    let name = &cx.names.instance_role;
    format!(
        "arn:{}:iam::{}:instance-profile/{name}",
        a.partition, a.account
    )
}

impl Resource for InstanceProfile {
    /// Whether it exists, and whether it holds the role.
    type Seen = Option<bool>;
    type Out = String;

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Option<bool>, InfraError> {
        let name = &cx.names.instance_role;
        let found = get_profile(&cx.aws.iam(), name).await?;
        Ok(found.map(|p| p.roles().iter().any(|r| r.role_name() == name)))
    }

    fn compare(&self, cx: &Ctx<'_>, seen: &Option<bool>) -> Result<Change, InfraError> {
        let name = &cx.names.instance_role;
        Ok(match seen {
            None => change(
                PROFILE,
                name,
                Action::Create,
                "missing (Managed Instances' EC2 role)",
            ),
            Some(false) => change(PROFILE, name, Action::Update, "its role is not in it"),
            Some(true) => change(PROFILE, name, Action::Unchanged, "holds its role"),
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, seen: Option<bool>) -> Result<String, InfraError> {
        use aws_sdk_iam::types::Tag;
        let (iam, name) = (cx.aws.iam(), &cx.names.instance_role);
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().expect("set");
        // API_CreateInstanceProfile (tags at creation); API_AddRoleToInstanceProfile.
        if seen.is_none() {
            iam.create_instance_profile()
                .instance_profile_name(name)
                .tags(tag(TAG_MANAGED, "jobrun"))
                .tags(tag(TAG_JOB, &cx.job.name))
                .send()
                .await
                .map_err(aws::op("CreateInstanceProfile"))?;
        }
        // An instance profile holds one role (AddRoleToInstanceProfile: LimitExceeded else).
        iam.add_role_to_instance_profile()
            .instance_profile_name(name)
            .role_name(name)
            .send()
            .await
            .map_err(aws::op("AddRoleToInstanceProfile"))?;
        cx.iam_changed();
        Ok(profile_arn(cx))
    }

    fn current(&self, cx: &Ctx<'_>, _: Option<bool>) -> String {
        profile_arn(cx)
    }
}

/// One of the job's two Managed Instances capacity providers, as `[resources]` wants it;
/// converges to its name.
pub struct CapacityProvider<'a> {
    pub name: &'a str,
    pub spot: bool,
    /// The infrastructure role's and the instance profile's ARNs.
    pub infrastructure_role: &'a str,
    pub instance_profile: &'a str,
    pub subnets: &'a [String],
    pub security_groups: &'a [String],
}

impl CapacityProvider<'_> {
    /// The fields jobrun sets, in the form [`shape_of`] reads back (lists sorted on both
    /// sides: ECS need not hand them back in the order they were sent).
    fn want(&self, cx: &Ctx<'_>) -> Value {
        let r = &cx.job.resources;
        let makers: Vec<String> = cpu_makers(cx.job.image.platform.arch)
            .into_iter()
            .map(String::from)
            .collect();
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        json!({
            "role": self.infrastructure_role,
            "profile": self.instance_profile,
            "subnets": sorted(self.subnets),
            "security_groups": sorted(self.security_groups),
            "vcpu_min": r.cpu.0.div_ceil(1024),
            "memory_min": r.memory.0,
            "cpu_makers": sorted(&makers),
            "gpu_min": (r.gpu > 0).then_some(r.gpu),
            "gpu_names": r.gpu_type.iter().collect::<Vec<_>>(),
            "allowed": sorted(&r.instance_types),
            "scale_in_after": r.instance_idle.as_secs(),
            "storage": r.ephemeral_storage,
        })
    }

    /// The instances a task may land on: enough vCPUs and memory for one task, the image's
    /// architecture, the job's GPUs (count and name) and instance types.
    fn requirements(&self, cx: &Ctx<'_>) -> aws_sdk_ecs::types::InstanceRequirementsRequest {
        use aws_sdk_ecs::types::*;
        let r = &cx.job.resources;
        let vcpu = VCpuCountRangeRequest::builder().min(r.cpu.0.div_ceil(1024) as i32);
        let memory = MemoryMiBRequest::builder().min(r.memory.0 as i32);
        let mut req = InstanceRequirementsRequest::builder()
            .v_cpu_count(vcpu.build().expect("min set"))
            .memory_mib(memory.build().expect("min set"));
        for maker in cpu_makers(cx.job.image.platform.arch) {
            req = req.cpu_manufacturers(CpuManufacturer::from(maker));
        }
        if r.gpu > 0 {
            let count = AcceleratorCountRequest::builder().min(r.gpu as i32).build();
            req = req
                .accelerator_types(AcceleratorType::Gpu)
                .accelerator_count(count);
        }
        if let Some(name) = &r.gpu_type {
            req = req.accelerator_names(AcceleratorName::from(name.as_str()));
        }
        let allowed = (!r.instance_types.is_empty()).then(|| r.instance_types.clone());
        req.set_allowed_instance_types(allowed).build()
    }

    fn network(&self) -> aws_sdk_ecs::types::ManagedInstancesNetworkConfiguration {
        aws_sdk_ecs::types::ManagedInstancesNetworkConfiguration::builder()
            .set_subnets(Some(self.subnets.to_vec()))
            .set_security_groups(Some(self.security_groups.to_vec()))
            .build()
    }

    fn idle(&self, cx: &Ctx<'_>) -> aws_sdk_ecs::types::InfrastructureOptimization {
        let secs = cx.job.resources.instance_idle.as_secs() as i32;
        aws_sdk_ecs::types::InfrastructureOptimization::builder()
            .scale_in_after(secs)
            .build()
    }

    async fn create(&self, cx: &Ctx<'_>) -> Result<(), InfraError> {
        use aws_sdk_ecs::types::*;
        let option = match self.spot {
            true => CapacityOptionType::Spot,
            false => CapacityOptionType::OnDemand,
        };
        let template = InstanceLaunchTemplate::builder()
            .ec2_instance_profile_arn(self.instance_profile)
            .network_configuration(self.network())
            .capacity_option_type(option)
            .set_storage_configuration(storage(cx))
            .instance_requirements(self.requirements(cx))
            .build()
            .expect("profile and network set");
        let provider = CreateManagedInstancesProviderConfiguration::builder()
            .infrastructure_role_arn(self.infrastructure_role)
            .instance_launch_template(template)
            .propagate_tags(PropagateMiTags::CapacityProvider)
            .infrastructure_optimization(self.idle(cx))
            .build()
            .expect("role set");
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let request = cx
            .aws
            .ecs()
            .create_capacity_provider()
            .name(self.name)
            .cluster(&cx.names.cluster)
            .managed_instances_provider(provider)
            .tags(tag(TAG_MANAGED, "jobrun"))
            .tags(tag(TAG_JOB, &cx.job.name));
        // ECS cannot yet use a role or instance profile IAM has just made: it answers
        // InvalidParameterException (or ClientException) until IAM settles.
        let settling = ["InvalidParameterException", "ClientException"];
        cx.settling(&settling, || async {
            let sent = request.clone().send().await;
            sent.map_err(aws::op("CreateCapacityProvider"))
        })
        .await?;
        Ok(())
    }

    async fn update(&self, cx: &Ctx<'_>) -> Result<(), InfraError> {
        use aws_sdk_ecs::types::*;
        let template = InstanceLaunchTemplateUpdate::builder()
            .ec2_instance_profile_arn(self.instance_profile)
            .network_configuration(self.network())
            .set_storage_configuration(storage(cx))
            .instance_requirements(self.requirements(cx))
            .build();
        let provider = UpdateManagedInstancesProviderConfiguration::builder()
            .infrastructure_role_arn(self.infrastructure_role)
            .instance_launch_template(template)
            .propagate_tags(PropagateMiTags::CapacityProvider)
            .infrastructure_optimization(self.idle(cx))
            .build()
            .expect("role set");
        let request = cx
            .aws
            .ecs()
            .update_capacity_provider()
            .name(self.name)
            .cluster(&cx.names.cluster)
            .managed_instances_provider(provider);
        cx.settling(
            &["InvalidParameterException", "ClientException"],
            || async {
                let sent = request.clone().send().await;
                sent.map_err(aws::op("UpdateCapacityProvider"))
            },
        )
        .await?;
        Ok(())
    }
}

/// `[resources] ephemeral_storage`: on Managed Instances, the instances' disk.
fn storage(cx: &Ctx<'_>) -> Option<aws_sdk_ecs::types::ManagedInstancesStorageConfiguration> {
    let gib = cx.job.resources.ephemeral_storage?;
    let s = aws_sdk_ecs::types::ManagedInstancesStorageConfiguration::builder();
    Some(s.storage_size_gib(gib as i32).build())
}

/// EC2's CPU makers of an architecture (`InstanceRequirementsRequest.cpuManufacturers`): the
/// image's, so ECS never picks an instance it cannot run on.
fn cpu_makers(arch: Arch) -> Vec<&'static str> {
    match arch {
        Arch::Arm64 => vec!["amazon-web-services"],
        Arch::Amd64 => vec!["intel", "amd"],
    }
}

/// The fields jobrun sets, read back from a described provider.
fn shape_of(found: &Found) -> Value {
    let p = found.managed_instances_provider();
    let t = p.and_then(|p| p.instance_launch_template());
    let net = t.and_then(|t| t.network_configuration());
    let r = t.and_then(|t| t.instance_requirements());
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    json!({
        "role": p.and_then(|p| p.infrastructure_role_arn()).unwrap_or_default(),
        "profile": t.map(|t| t.ec2_instance_profile_arn()).unwrap_or_default(),
        "subnets": sorted(net.map(|n| n.subnets()).unwrap_or_default()),
        "security_groups": sorted(net.map(|n| n.security_groups()).unwrap_or_default()),
        "vcpu_min": r.and_then(|r| r.v_cpu_count()).map(|v| v.min()),
        "memory_min": r.and_then(|r| r.memory_mib()).map(|m| m.min()),
        "cpu_makers": sorted(&r.map(|r| r.cpu_manufacturers().iter().map(|m| m.as_str().to_string()).collect::<Vec<_>>()).unwrap_or_default()),
        "gpu_min": r.and_then(|r| r.accelerator_count()).and_then(|c| c.min()),
        "gpu_names": r.map(|r| r.accelerator_names().iter().map(|n| n.as_str()).collect::<Vec<_>>()).unwrap_or_default(),
        "allowed": sorted(r.map(|r| r.allowed_instance_types()).unwrap_or_default()),
        "scale_in_after": p.and_then(|p| p.infrastructure_optimization()).and_then(|o| o.scale_in_after()),
        "storage": t.and_then(|t| t.storage_configuration()).and_then(|s| s.storage_size_gib()),
    })
}

/// The active provider of that name in the job's cluster.
async fn find(cx: &Ctx<'_>, name: &str) -> Result<Option<Found>, InfraError> {
    let described = cx
        .aws
        .ecs()
        .describe_capacity_providers()
        .capacity_providers(name)
        .cluster(&cx.names.cluster)
        .include(aws_sdk_ecs::types::CapacityProviderField::Tags)
        .send()
        .await
        .map_err(aws::op("DescribeCapacityProviders"));
    let Some(out) = aws::found(described, &["ClusterNotFoundException"])? else {
        return Ok(None);
    };
    let active = |p: &&Found| p.status().is_some_and(|s| s.as_str() == "ACTIVE");
    Ok(out.capacity_providers().iter().find(active).cloned())
}

impl Resource for CapacityProvider<'_> {
    type Seen = Option<Found>;
    type Out = String;

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Option<Found>, InfraError> {
        find(cx, self.name).await
    }

    fn compare(&self, cx: &Ctx<'_>, found: &Option<Found>) -> Result<Change, InfraError> {
        let what = describe(cx, self.spot);
        let Some(found) = found else {
            return Ok(change(
                PROVIDER,
                self.name,
                Action::Create,
                format!("missing ({what})"),
            ));
        };
        let (have, want) = (shape_of(found), self.want(cx));
        let differs = super::differing(&want, &have);
        Ok(match differs.is_empty() {
            true => change(PROVIDER, self.name, Action::Unchanged, what),
            false => {
                let why = format!("{} changed ({what})", differs.join(", "));
                change(PROVIDER, self.name, Action::Update, why)
            }
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, found: Option<Found>) -> Result<String, InfraError> {
        match found {
            None => self.create(cx).await?,
            Some(_) => self.update(cx).await?,
        }
        Ok(self.name.to_string())
    }

    fn current(&self, _: &Ctx<'_>, _: Option<Found>) -> String {
        self.name.to_string()
    }
}

/// What `up` says a provider gives: the purchase option and the machines.
fn describe(cx: &Ctx<'_>, spot: bool) -> String {
    let r = &cx.job.resources;
    let mut parts = vec![match spot {
        true => "Managed Instances, Spot".to_string(),
        false => "Managed Instances, on-demand".to_string(),
    }];
    if r.gpu > 0 {
        let name = r
            .gpu_type
            .as_deref()
            .map(|t| format!(" {t}"))
            .unwrap_or_default();
        parts.push(format!("{}{name} GPU", r.gpu));
    }
    if !r.instance_types.is_empty() {
        parts.push(r.instance_types.join(" "));
    }
    let idle = humantime::format_duration(r.instance_idle);
    parts.push(format!("idle instances retired after {idle}"));
    parts.join(", ")
}

/// `down`: the job's providers (tagged for it) and its instance profile. Providers go before
/// the cluster and the instance profile before its role (DeleteRole refuses a role still in a
/// profile).
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    // A job that does not run on Managed Instances looks for none of them (nor may its
    // caller's policy, `iam-policy --for down`).
    if !cx.job.managed_instances() {
        return Ok(());
    }
    for name in [&cx.names.spot_provider, &cx.names.on_demand_provider] {
        let c = match find(cx, name).await? {
            None => change(PROVIDER, name, Action::Absent, "not there"),
            Some(p) if cx.ours(p.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)))) => {
                change(
                    PROVIDER,
                    name,
                    Action::Delete,
                    "made by jobrun for this job",
                )
            }
            Some(_) => change(PROVIDER, name, Action::Keep, "not tagged for this job"),
        };
        let deletion = Deletion::CapacityProvider {
            cluster: cx.names.cluster.clone(),
            name: name.clone(),
        };
        found.plan(c, Some(deletion));
    }
    Ok(())
}

/// `down`: the instance profile, when it carries the job's tags.
pub async fn discover_profile(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    if !cx.job.managed_instances() {
        return Ok(());
    }
    let name = &cx.names.instance_role;
    let c = match get_profile(&cx.aws.iam(), name).await? {
        None => change(PROFILE, name, Action::Absent, "not there"),
        Some(p) if cx.ours(p.tags().iter().map(|t| (t.key(), t.value()))) => {
            change(PROFILE, name, Action::Delete, "made by jobrun for this job")
        }
        Some(_) => change(PROFILE, name, Action::Keep, "not tagged for this job"),
    };
    found.plan(c, Some(Deletion::InstanceProfile(name.clone())));
    Ok(())
}

/// Deletes a provider and waits until ECS no longer lists it active: it is refused while a
/// service's strategy names it (`down` deletes services first) and ECS retires its instances
/// as it goes (DeleteCapacityProvider: status DELETE_IN_PROGRESS, then INACTIVE).
pub async fn delete(aws: &Aws, cluster: &str, name: &str) -> Result<(), InfraError> {
    use backon::Retryable;
    let ecs = aws.ecs();
    let deleted = ecs
        .delete_capacity_provider()
        .capacity_provider(name)
        .cluster(cluster)
        .send()
        .await
        .map_err(aws::op("DeleteCapacityProvider"));
    aws::found(deleted, &["ClusterNotFoundException"])?;
    let gone = || async {
        let out = ecs
            .describe_capacity_providers()
            .capacity_providers(name)
            .cluster(cluster)
            .send()
            .await
            .map_err(aws::op("DescribeCapacityProviders"));
        let Some(out) = aws::found(out, &["ClusterNotFoundException"])? else {
            return Ok(());
        };
        // Refused (a service's strategy still names it): the answer is still ACTIVE, with
        // updateStatus DELETE_FAILED and why (knowledge center, ecs-capacity-provider-error).
        let failed = out.capacity_providers().iter().find(|p| {
            p.update_status()
                .is_some_and(|u| u.as_str() == "DELETE_FAILED")
                && p.status().is_some_and(|s| s.as_str() == "ACTIVE")
        });
        if let Some(p) = failed {
            let why = p.update_status_reason().unwrap_or("no reason given");
            return Err(InfraError::Refused(format!(
                "ECS would not delete capacity provider {name}: {}",
                crate::ui::printable(why, "")
            )));
        }
        let inactive = |p: &Found| p.status().is_none_or(|s| s.as_str() == "INACTIVE");
        match out.capacity_providers().iter().all(inactive) {
            true => Ok(()),
            false => Err(InfraError::Busy(format!(
                "capacity provider {name} is still deleting"
            ))),
        }
    };
    gone.retry(super::cluster::teardown_backoff())
        .when(|e| matches!(e, InfraError::Busy(_)))
        .await
}

/// Takes the role out of the instance profile, then deletes the profile (DeleteInstanceProfile
/// refuses one that still holds a role: DeleteConflict, API_DeleteInstanceProfile; and
/// DeleteRole one whose role is still in a profile, API_DeleteRole — moto plays both).
pub async fn delete_profile(aws: &Aws, name: &str) -> Result<(), InfraError> {
    let iam = aws.iam();
    let Some(profile) = get_profile(&iam, name).await? else {
        return Ok(());
    };
    for role in profile.roles() {
        iam.remove_role_from_instance_profile()
            .instance_profile_name(name)
            .role_name(role.role_name())
            .send()
            .await
            .map_err(aws::op("RemoveRoleFromInstanceProfile"))?;
    }
    iam.delete_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .map_err(aws::op("DeleteInstanceProfile"))?;
    Ok(())
}

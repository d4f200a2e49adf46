//! What a run that goes on without you needs of the caller. The driver in AWS (`[ecs] driver =
//! "aws"`): `up` pushes jobrun's own image and makes the driver's role, task definition and
//! service (the schedules' dispatcher's role and task definition); `submit` and the driver
//! itself set the service's desired count; `down` deletes the service. The account's Fargate
//! vCPU quotas, which `submit` plans under.

use super::{MAKE_ROLES, Scope, allow};
use crate::config::Driver;
use serde_json::Value;

fn wanted(s: &Scope<'_>) -> bool {
    s.job.ecs.driver == Driver::Aws
}

fn service(s: &Scope<'_>) -> String {
    let n = s.names;
    s.ecs(&format!("service/{}/{}", n.cluster, n.driver_service))
}

pub(super) fn driver_up(s: &Scope<'_>) -> Vec<Value> {
    if !wanted(s) {
        return vec![];
    }
    let (n, a) = (s.names, s.arns);
    let mut st = super::push(s);
    st.extend(super::schedule::dispatcher_task(s));
    st.extend([
        allow(
            "MakeDriverRole",
            MAKE_ROLES,
            vec![a.role(&n.dispatcher_role)],
        ),
        allow(
            "UpDriver",
            &[
                "ecs:CreateService",
                "ecs:UpdateService",
                "ecs:DescribeServices",
                "ecs:TagResource",
            ],
            vec![service(s)],
        ),
    ]);
    st
}

/// `submit` starts the driver; the driver (whose role is `run`'s policy) stops itself.
pub(super) fn driver_run(s: &Scope<'_>) -> Vec<Value> {
    if !wanted(s) {
        return vec![];
    }
    vec![allow(
        "WakeTheDriver",
        &["ecs:DescribeServices", "ecs:UpdateService"],
        vec![service(s)],
    )]
}

/// `down` looks for the driver's service whatever `driver` says now.
pub(super) fn driver_down(s: &Scope<'_>) -> Vec<Value> {
    vec![allow(
        "DownDriver",
        &["ecs:DescribeServices", "ecs:DeleteService"],
        vec![service(s)],
    )]
}

/// `submit --dry-run` and `--max-duration` plan under the account's Fargate vCPU quotas
/// (Service Authorization Reference, Service Quotas: GetServiceQuota on the `quota` resource,
/// arn:…:servicequotas:<region>:<account>:<service>/<quota code>; GetAWSDefaultServiceQuota
/// takes no resource).
/// On Managed Instances, EC2's GPU instance quotas instead (`ec2/<code>`).
pub(super) fn read_quotas(s: &Scope<'_>) -> Vec<Value> {
    use crate::quota::Kind;
    let quota = |k: Kind| s.arns.regional("servicequotas", &k.resource());
    let kinds = match s.job.managed_instances() {
        true => vec![Kind::GOnDemand, Kind::GSpot, Kind::POnDemand, Kind::PSpot],
        false => vec![Kind::OnDemand, Kind::Spot],
    };
    vec![
        allow(
            "ReadFargateQuotas",
            &["servicequotas:GetServiceQuota"],
            kinds.into_iter().map(quota).collect(),
        ),
        allow(
            "ReadFargateDefaultQuotas",
            &["servicequotas:GetAWSDefaultServiceQuota"],
            vec!["*".into()],
        ),
    ]
}

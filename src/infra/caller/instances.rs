//! What ECS Managed Instances need of the caller (a job with a GPU or instance types): `up`
//! makes the infrastructure and instance roles with AWS's managed policies attached (and no
//! other), the instance profile and the two capacity providers, and hands ECS the
//! infrastructure role (infrastructure_IAM_role.html: `iam:PassedToService` =
//! `ecs.amazonaws.com`) and EC2 the instance role (managed-instances-instance-profile.html);
//! `down` removes them.

use super::{MAKE_ROLES, Scope, allow, allow_if};
use serde_json::{Value, json};

/// AWS's managed policies the two roles carry.
const POLICIES: [&str; 2] = [
    "AmazonECSInfrastructureRolePolicyForManagedInstances",
    "AmazonECSInstanceRolePolicyForManagedInstances",
];

impl Scope<'_> {
    fn instance_roles(&self) -> Vec<String> {
        let n = self.names;
        vec![
            self.arns.role(&n.infrastructure_role),
            self.arns.role(&n.instance_role),
        ]
    }
    fn instance_profile(&self) -> String {
        let (a, name) = (self.arns, &self.names.instance_role);
        format!(
            "arn:{}:iam::{}:instance-profile/{name}",
            a.partition, a.account
        )
    }
    fn providers(&self) -> Vec<String> {
        let n = self.names;
        [&n.spot_provider, &n.on_demand_provider]
            .iter()
            .map(|p| self.ecs(&format!("capacity-provider/{p}")))
            .collect()
    }
}

pub(super) fn up_instances(s: &Scope<'_>) -> Vec<Value> {
    let a = s.arns;
    let policies: Vec<String> = POLICIES
        .iter()
        .map(|p| format!("arn:{}:iam::aws:policy/{p}", a.partition))
        .collect();
    let make = [MAKE_ROLES, &["iam:ListAttachedRolePolicies"]].concat();
    vec![
        allow("UpInstanceRoles", &make, s.instance_roles()),
        allow_if(
            "AttachInstancePolicies",
            &["iam:AttachRolePolicy"],
            s.instance_roles(),
            json!({"ArnEquals": {"iam:PolicyARN": policies}}),
        ),
        allow(
            "UpInstanceProfile",
            &[
                "iam:GetInstanceProfile",
                "iam:CreateInstanceProfile",
                "iam:TagInstanceProfile",
                "iam:AddRoleToInstanceProfile",
            ],
            vec![s.instance_profile()],
        ),
        allow_if(
            "PassTheInfrastructureRole",
            &["iam:PassRole"],
            vec![a.role(&s.names.infrastructure_role)],
            json!({"StringEquals": {"iam:PassedToService": "ecs.amazonaws.com"}}),
        ),
        allow_if(
            "PassTheInstanceRole",
            &["iam:PassRole"],
            vec![a.role(&s.names.instance_role)],
            json!({"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
        ),
        allow(
            "UpCapacityProviders",
            &[
                "ecs:CreateCapacityProvider",
                "ecs:UpdateCapacityProvider",
                "ecs:TagResource",
            ],
            s.providers(),
        ),
        describe_providers(),
    ]
}

/// DescribeCapacityProviders takes no resource-level permission.
fn describe_providers() -> Value {
    allow(
        "DescribeCapacityProviders",
        &["ecs:DescribeCapacityProviders"],
        vec!["*".into()],
    )
}

pub(super) fn down_instances(s: &Scope<'_>) -> Vec<Value> {
    let delete_roles = [
        super::DELETE_ROLES,
        &["iam:DetachRolePolicy", "iam:ListAttachedRolePolicies"],
    ]
    .concat();
    vec![
        allow(
            "DownCapacityProviders",
            &["ecs:DeleteCapacityProvider"],
            s.providers(),
        ),
        describe_providers(),
        allow(
            "DownInstanceProfile",
            &[
                "iam:GetInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:DeleteInstanceProfile",
            ],
            vec![s.instance_profile()],
        ),
        allow("DownInstanceRoles", &delete_roles, s.instance_roles()),
    ]
}

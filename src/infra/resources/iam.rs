//! The job's two IAM roles (execution: what ECS does to start the task; task: what the job's
//! code may do), each with a trust policy and one inline policy, `jobrun`. The documents
//! themselves are written by `infra::policy`; this file only makes IAM hold them.

use super::{Ctx, Deletion, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, InfraError, change};

/// `down`: both roles, each when it carries the job's tags.
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let iam = cx.aws.iam();
    for (kind, name) in [
        ("execution role", &cx.names.execution_role),
        ("task role", &cx.names.task_role),
    ] {
        let listed = iam
            .list_role_tags()
            .role_name(name)
            .send()
            .await
            .map_err(aws::op("ListRoleTags"));
        let c = match aws::found(listed, &["NoSuchEntity"])? {
            None => change(kind, name, Action::Absent, "not there"),
            Some(t) if cx.ours(t.tags().iter().map(|t| (t.key(), t.value()))) => {
                change(kind, name, Action::Delete, "made by jobrun for this job")
            }
            Some(_) => change(kind, name, Action::Keep, "not tagged for this job"),
        };
        found.plan(c, Some(Deletion::Role(name.clone())));
    }
    Ok(())
}

/// Deletes the role's inline policies, then the role.
pub async fn delete(aws: &Aws, name: &str) -> Result<(), InfraError> {
    let iam = aws.iam();
    let policies = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(aws::op("ListRolePolicies"))?;
    for p in policies.policy_names() {
        iam.delete_role_policy()
            .role_name(name)
            .policy_name(p)
            .send()
            .await
            .map_err(aws::op("DeleteRolePolicy"))?;
    }
    iam.delete_role()
        .role_name(name)
        .send()
        .await
        .map_err(aws::op("DeleteRole"))?;
    Ok(())
}

//! Where the tasks run: the subnets (configured ones, or the default VPC's, with a public IP
//! and no NAT gateway) and the security groups (configured ones, or an egress-only group
//! jobrun makes in the subnets' VPC). Subnets and VPCs are only ever read, never made.

use super::{Ctx, Deletion, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, InfraError, change};
use aws_sdk_ec2::types::Filter;

fn filter(k: &str, v: &str) -> Filter {
    Filter::builder().name(k).values(v).build()
}

/// `down`: jobrun's security group in any VPC, when it carries the job's tags (configured
/// groups are not looked at).
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    if cx.job.ecs.security_groups.is_some() {
        return Ok(());
    }
    let name = &cx.names.security_group;
    let groups = cx
        .aws
        .ec2()
        .describe_security_groups()
        .filters(filter("group-name", name))
        .send()
        .await
        .map_err(aws::op("DescribeSecurityGroups"))?;
    for g in groups.security_groups() {
        let id = g.group_id().unwrap_or_default().to_string();
        let mine = cx.ours(g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))));
        let c = if mine {
            change("security group", &id, Action::Delete, name.clone())
        } else {
            change(
                "security group",
                &id,
                Action::Keep,
                "not tagged for this job",
            )
        };
        found.plan(c, Some(Deletion::SecurityGroup(id.clone())));
    }
    if groups.security_groups().is_empty() {
        found.plan(
            change("security group", name, Action::Absent, "not there"),
            None,
        );
    }
    Ok(())
}

pub async fn delete(aws: &Aws, id: &str) -> Result<(), InfraError> {
    aws.ec2()
        .delete_security_group()
        .group_id(id)
        .send()
        .await
        .map_err(aws::op("DeleteSecurityGroup"))?;
    Ok(())
}

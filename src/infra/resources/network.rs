//! Where the tasks run: the subnets (configured ones, or the default VPC's, with a public IP
//! and no NAT gateway) and the security groups (configured ones, or an egress-only group
//! jobrun makes in the subnets' VPC). Subnets and VPCs are only ever read, never made.

use super::{Ctx, Deletion, Resource, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, Change, InfraError, TAG_JOB, TAG_MANAGED, change};
use aws_sdk_ec2::types::{Filter, SecurityGroup as Group};

fn filter(k: &str, v: &str) -> Filter {
    Filter::builder().name(k).values(v).build()
}

/// The subnets the tasks run in; never changed.
pub struct Subnets;

/// The subnets, and their VPC when jobrun looked it up (the default VPC's).
pub struct Placement {
    pub subnets: Vec<String>,
    pub vpc: Option<String>,
}

impl Resource for Subnets {
    type Seen = Placement;
    type Out = Placement;

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Placement, InfraError> {
        if let Some(s) = &cx.job.ecs.subnets {
            return Ok(Placement {
                subnets: s.clone(),
                vpc: None,
            });
        }
        let ec2 = cx.aws.ec2();
        let vpcs = ec2
            .describe_vpcs()
            .filters(filter("isDefault", "true"))
            .send()
            .await
            .map_err(aws::op("DescribeVpcs"))?;
        let vpc = vpcs
            .vpcs()
            .first()
            .and_then(|v| v.vpc_id())
            .ok_or_else(|| InfraError::NoDefaultVpc(cx.arns.region.clone()))?
            .to_string();
        let subnets = ec2
            .describe_subnets()
            .filters(filter("vpc-id", &vpc))
            .send()
            .await
            .map_err(aws::op("DescribeSubnets"))?
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id().map(str::to_string))
            .collect();
        Ok(Placement {
            subnets,
            vpc: Some(vpc),
        })
    }

    fn compare(&self, _: &Ctx<'_>, seen: &Placement) -> Result<Change, InfraError> {
        Ok(match &seen.vpc {
            None => change(
                "subnets",
                &seen.subnets.join(","),
                Action::Use,
                "configured in jobrun.toml",
            ),
            Some(vpc) => change(
                "subnets",
                vpc,
                Action::Use,
                format!(
                    "the default VPC's {} subnets, public IP, no NAT gateway",
                    seen.subnets.len()
                ),
            ),
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, seen: Placement) -> Result<Placement, InfraError> {
        Ok(self.current(cx, seen))
    }

    fn current(&self, _: &Ctx<'_>, seen: Placement) -> Placement {
        seen
    }
}

/// The security groups of the tasks; converges to their ids.
pub struct SecurityGroups<'p> {
    pub placement: &'p Placement,
}

pub enum Seen {
    Configured(Vec<String>),
    /// jobrun's group in the subnets' VPC, if it is there.
    Own(Option<Group>),
}

impl SecurityGroups<'_> {
    /// The subnets' VPC: the default one, or the first configured subnet's.
    async fn vpc(&self, ec2: &aws_sdk_ec2::Client) -> Result<String, InfraError> {
        if let Some(vpc) = &self.placement.vpc {
            return Ok(vpc.clone());
        }
        let first = self.placement.subnets.first().cloned().unwrap_or_default();
        ec2.describe_subnets()
            .subnet_ids(&first)
            .send()
            .await
            .map_err(aws::op("DescribeSubnets"))?
            .subnets()
            .first()
            .and_then(|s| s.vpc_id())
            .map(str::to_string)
            .ok_or(InfraError::MissingConfigured {
                kind: "subnet",
                name: first,
            })
    }
}

impl Resource for SecurityGroups<'_> {
    type Seen = (Seen, String);
    type Out = Vec<String>;

    async fn observe(&self, cx: &Ctx<'_>) -> Result<(Seen, String), InfraError> {
        if let Some(groups) = &cx.job.ecs.security_groups {
            return Ok((Seen::Configured(groups.clone()), String::new()));
        }
        let ec2 = cx.aws.ec2();
        let vpc = self.vpc(&ec2).await?;
        let found = ec2
            .describe_security_groups()
            .filters(filter("group-name", &cx.names.security_group))
            .filters(filter("vpc-id", &vpc))
            .send()
            .await
            .map_err(aws::op("DescribeSecurityGroups"))?
            .security_groups()
            .first()
            .cloned();
        Ok((Seen::Own(found), vpc))
    }

    fn compare(&self, cx: &Ctx<'_>, (seen, _): &(Seen, String)) -> Result<Change, InfraError> {
        const KIND: &str = "security group";
        let name = &cx.names.security_group;
        Ok(match seen {
            Seen::Configured(groups) => change(
                "security groups",
                &groups.join(","),
                Action::Use,
                "configured in jobrun.toml",
            ),
            Seen::Own(None) => change(KIND, name, Action::Create, "missing (egress only)"),
            Seen::Own(Some(g)) if g.ip_permissions().is_empty() => {
                change(KIND, name, Action::Unchanged, "egress only")
            }
            Seen::Own(Some(_)) => change(
                KIND,
                name,
                Action::Update,
                "has inbound rules; removing them",
            ),
        })
    }

    async fn converge(
        &self,
        cx: &Ctx<'_>,
        (seen, vpc): (Seen, String),
    ) -> Result<Vec<String>, InfraError> {
        let ec2 = cx.aws.ec2();
        // Configured groups are only used: `up` never converges them.
        let Seen::Own(Some(g)) = &seen else {
            let id = create_group(cx, &ec2, &vpc).await?;
            let name = &cx.names.security_group;
            return Ok(vec![
                id.unwrap_or_else(|| format!("({name}, to be created)")),
            ]);
        };
        ec2.revoke_security_group_ingress()
            .group_id(g.group_id().unwrap_or_default())
            .set_ip_permissions(Some(g.ip_permissions().to_vec()))
            .send()
            .await
            .map_err(aws::op("RevokeSecurityGroupIngress"))?;
        Ok(self.current(cx, (seen, vpc)))
    }

    fn current(&self, cx: &Ctx<'_>, (seen, _): (Seen, String)) -> Vec<String> {
        let id = match seen {
            Seen::Configured(groups) => return groups,
            Seen::Own(g) => g.and_then(|g| g.group_id().map(str::to_string)),
        };
        let name = &cx.names.security_group;
        vec![id.unwrap_or_else(|| format!("({name}, to be created)"))]
    }
}

/// Makes jobrun's egress-only group; returns its id.
async fn create_group(
    cx: &Ctx<'_>,
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
) -> Result<Option<String>, InfraError> {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let out = ec2
        .create_security_group()
        .group_name(&cx.names.security_group)
        .description(format!("jobrun job {}: egress only", cx.job.name))
        .vpc_id(vpc)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::SecurityGroup)
                .tags(tag(TAG_MANAGED, "jobrun"))
                .tags(tag(TAG_JOB, &cx.job.name))
                .build(),
        )
        .send()
        .await
        .map_err(aws::op("CreateSecurityGroup"))?;
    Ok(out.group_id().map(str::to_string))
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

/// Deletes the security group, retried while EC2 answers DependencyViolation: the network
/// interfaces of stopped Fargate tasks are released minutes after the tasks stop.
pub async fn delete(aws: &Aws, id: &str) -> Result<(), InfraError> {
    let ec2 = aws.ec2();
    let call = || async {
        ec2.delete_security_group()
            .group_id(id)
            .send()
            .await
            .map_err(aws::op("DeleteSecurityGroup"))
    };
    use backon::Retryable;
    call.retry(super::cluster::teardown_backoff())
        .when(|e| e.code() == Some("DependencyViolation"))
        .await?;
    Ok(())
}

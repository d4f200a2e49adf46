//! `jobrun down`: deletes, in reverse dependency order, exactly the resources that carry this
//! job's tags. Configured (shared) resources and anything untagged are kept; what is already
//! gone is reported as absent, so `down` can be run again after a partial failure.

use super::{Action, Change, DownReport, InfraError, Names, TAG_JOB, change};
use crate::aws::{self, Aws, AwsError};
use crate::config::Job;

/// A resource found for deletion, with what deleting it takes.
pub enum Deletion {
    Service {
        cluster: String,
        service: String,
        scalable_target: String,
    },
    Notification {
        bucket: String,
        id: String,
    },
    Queue(String),
    TaskDefinitions(Vec<String>),
    Cluster(String),
    SecurityGroup(String),
    Role(String),
    LogGroup(String),
    Bucket(String),
    Repository(String),
}

fn ours<'a>(mut tags: impl Iterator<Item = (&'a str, &'a str)>, job: &str) -> bool {
    tags.any(|(k, v)| k == TAG_JOB && v == job)
}

pub async fn down(
    job: &Job,
    aws: &Aws,
    confirm: impl FnOnce(&[Change]) -> bool,
) -> Result<DownReport, InfraError> {
    let account = aws.account().await?;
    let region = aws.region();
    let names = Names::new(job, &account, &region);
    let mut changes = vec![];
    let mut targets = vec![];
    let mut plan = |c: Change, t: Option<Deletion>| {
        if let Some(t) = t.filter(|_| c.action == Action::Delete) {
            targets.push(t);
        }
        changes.push(c);
    };

    // Queue mode's service (before the cluster), notification and queues.
    super::queue::down(job, aws, &names, &mut plan).await?;

    // Task definitions of the families (every page), each checked for the job's tag.
    let ecs = aws.ecs();
    for family in [&names.family, &names.agent_family] {
        let mut listed = vec![];
        let mut next: Option<String> = None;
        loop {
            let page = ecs
                .list_task_definitions()
                .family_prefix(family)
                .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(aws::op("ListTaskDefinitions"))?;
            listed.extend(
                page.task_definition_arns()
                    .iter()
                    .filter(|a| a.contains(&format!(":task-definition/{}:", family)))
                    .cloned(),
            );
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        let (mut arns, mut foreign) = (vec![], 0);
        for arn in listed {
            let described = ecs
                .describe_task_definition()
                .task_definition(&arn)
                .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
                .send()
                .await
                .map_err(aws::op("DescribeTaskDefinition"))?;
            if ours(
                described
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?, t.value()?))),
                &job.name,
            ) {
                arns.push(arn);
            } else {
                foreign += 1;
            }
        }
        if foreign > 0 {
            plan(
                change(
                    "task definition",
                    family,
                    Action::Keep,
                    format!("{foreign} revisions not tagged for this job"),
                ),
                None,
            );
        }
        plan(
            if arns.is_empty() {
                change(
                    "task definition",
                    family,
                    Action::Absent,
                    "no active revision of this job",
                )
            } else {
                change(
                    "task definition",
                    family,
                    Action::Delete,
                    format!("{} revisions", arns.len()),
                )
            },
            Some(Deletion::TaskDefinitions(arns)),
        );
    }

    // Cluster.
    if job.ecs.cluster.is_some() {
        plan(
            change(
                "ecs cluster",
                &names.cluster,
                Action::Keep,
                "configured in jobrun.toml",
            ),
            None,
        );
    } else {
        let out = ecs
            .describe_clusters()
            .clusters(&names.cluster)
            .include(aws_sdk_ecs::types::ClusterField::Tags)
            .send()
            .await
            .map_err(aws::op("DescribeClusters"))?;
        let c = out.clusters().iter().find(|c| c.status() == Some("ACTIVE"));
        let c = match c {
            None => change("ecs cluster", &names.cluster, Action::Absent, "not there"),
            Some(c)
                if ours(
                    c.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))),
                    &job.name,
                ) =>
            {
                change(
                    "ecs cluster",
                    &names.cluster,
                    Action::Delete,
                    "made by jobrun for this job",
                )
            }
            Some(_) => change(
                "ecs cluster",
                &names.cluster,
                Action::Keep,
                "not tagged for this job",
            ),
        };
        plan(c, Some(Deletion::Cluster(names.cluster.clone())));
    }

    // Security group (in any VPC).
    if job.ecs.security_groups.is_none() {
        let ec2 = aws.ec2();
        let groups = ec2
            .describe_security_groups()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-name")
                    .values(&names.security_group)
                    .build(),
            )
            .send()
            .await
            .map_err(aws::op("DescribeSecurityGroups"))?;
        let mut any = false;
        for g in groups.security_groups() {
            any = true;
            let id = g.group_id().unwrap_or_default().to_string();
            let mine = ours(
                g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))),
                &job.name,
            );
            plan(
                if mine {
                    change(
                        "security group",
                        &id,
                        Action::Delete,
                        names.security_group.clone(),
                    )
                } else {
                    change(
                        "security group",
                        &id,
                        Action::Keep,
                        "not tagged for this job",
                    )
                },
                Some(Deletion::SecurityGroup(id.clone())),
            );
        }
        if !any {
            plan(
                change(
                    "security group",
                    &names.security_group,
                    Action::Absent,
                    "not there",
                ),
                None,
            );
        }
    }

    // Roles.
    let iam = aws.iam();
    for (kind, name) in [
        ("execution role", &names.execution_role),
        ("task role", &names.task_role),
    ] {
        let listed = iam
            .list_role_tags()
            .role_name(name)
            .send()
            .await
            .map_err(aws::op("ListRoleTags"));
        let tags = aws::found(listed, &["NoSuchEntity"])?.map(|out| {
            out.tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect::<Vec<_>>()
        });
        let c = match tags {
            None => change(kind, name, Action::Absent, "not there"),
            Some(t) if ours(t.iter().map(|(k, v)| (k.as_str(), v.as_str())), &job.name) => {
                change(kind, name, Action::Delete, "made by jobrun for this job")
            }
            Some(_) => change(kind, name, Action::Keep, "not tagged for this job"),
        };
        plan(c, Some(Deletion::Role(name.clone())));
    }

    // Log group.
    let logs = aws.logs();
    let exists = logs
        .describe_log_groups()
        .log_group_name_prefix(&names.log_group)
        .send()
        .await
        .map_err(aws::op("DescribeLogGroups"))?
        .log_groups()
        .iter()
        .any(|g| g.log_group_name() == Some(names.log_group.as_str()));
    let c = if !exists {
        change("log group", &names.log_group, Action::Absent, "not there")
    } else {
        #[allow(deprecated)]
        let tags = logs
            .list_tags_log_group()
            .log_group_name(&names.log_group)
            .send()
            .await
            .map_err(aws::op("ListTagsLogGroup"))?;
        let mine = tags
            .tags()
            .is_some_and(|t| ours(t.iter().map(|(k, v)| (k.as_str(), v.as_str())), &job.name));
        if mine {
            change(
                "log group",
                &names.log_group,
                Action::Delete,
                "made by jobrun for this job",
            )
        } else {
            change(
                "log group",
                &names.log_group,
                Action::Keep,
                "not tagged for this job",
            )
        }
    };
    plan(c, Some(Deletion::LogGroup(names.log_group.clone())));

    // Bucket.
    if job.ecs.bucket.is_some() {
        plan(
            change(
                "s3 bucket",
                &names.bucket,
                Action::Keep,
                "configured in jobrun.toml",
            ),
            None,
        );
    } else {
        let s3 = aws.s3();
        let c = match s3.get_bucket_tagging().bucket(&names.bucket).send().await {
            Ok(out) => {
                if ours(
                    out.tag_set().iter().map(|t| (t.key(), t.value())),
                    &job.name,
                ) {
                    change(
                        "s3 bucket",
                        &names.bucket,
                        Action::Delete,
                        "made by jobrun for this job, with its objects",
                    )
                } else {
                    change(
                        "s3 bucket",
                        &names.bucket,
                        Action::Keep,
                        "not tagged for this job",
                    )
                }
            }
            Err(e) => {
                let e = AwsError::from_sdk("GetBucketTagging", e);
                match e.code() {
                    Some("NoSuchBucket" | "NotFound") => {
                        change("s3 bucket", &names.bucket, Action::Absent, "not there")
                    }
                    Some("NoSuchTagSet") => change(
                        "s3 bucket",
                        &names.bucket,
                        Action::Keep,
                        "not tagged for this job",
                    ),
                    _ => return Err(e.into()),
                }
            }
        };
        plan(c, Some(Deletion::Bucket(names.bucket.clone())));
    }

    // The ECR repository `push` made.
    if let Some(repo) = names.repository.clone() {
        let ecr = aws.ecr();
        let c = match ecr
            .describe_repositories()
            .repository_names(&repo)
            .send()
            .await
        {
            Ok(out) => {
                let arn = out
                    .repositories()
                    .first()
                    .and_then(|r| r.repository_arn())
                    .unwrap_or_default()
                    .to_string();
                let tags = ecr
                    .list_tags_for_resource()
                    .resource_arn(&arn)
                    .send()
                    .await
                    .map_err(aws::op("ListTagsForResource"))?;
                if ours(tags.tags().iter().map(|t| (t.key(), t.value())), &job.name) {
                    change(
                        "ecr repository",
                        &repo,
                        Action::Delete,
                        "made by jobrun for this job, with its images",
                    )
                } else {
                    change(
                        "ecr repository",
                        &repo,
                        Action::Keep,
                        "not tagged for this job",
                    )
                }
            }
            Err(e) => {
                let e = AwsError::from_sdk("DescribeRepositories", e);
                if e.code() != Some("RepositoryNotFoundException") {
                    return Err(e.into());
                }
                change("ecr repository", &repo, Action::Absent, "not there")
            }
        };
        plan(c, Some(Deletion::Repository(repo)));
    }

    if targets.is_empty() {
        return Ok(DownReport { changes });
    }
    if !confirm(&changes) {
        return Err(InfraError::Refused("nothing was deleted".into()));
    }
    for t in targets {
        delete(aws, t).await?;
    }
    Ok(DownReport { changes })
}

async fn delete(aws: &Aws, target: Deletion) -> Result<(), InfraError> {
    match target {
        Deletion::Service {
            cluster,
            service,
            scalable_target,
        } => {
            super::queue::delete_service(aws, &cluster, &service, &scalable_target).await?;
        }
        Deletion::Notification { bucket, id } => {
            super::queue::delete_notification(aws, &bucket, &id).await?;
        }
        Deletion::Queue(url) => {
            aws.sqs()
                .delete_queue()
                .queue_url(&url)
                .send()
                .await
                .map_err(aws::op("DeleteQueue"))?;
        }
        Deletion::TaskDefinitions(arns) => {
            let ecs = aws.ecs();
            for arn in arns {
                ecs.deregister_task_definition()
                    .task_definition(&arn)
                    .send()
                    .await
                    .map_err(aws::op("DeregisterTaskDefinition"))?;
            }
        }
        Deletion::Cluster(name) => {
            aws.ecs()
                .delete_cluster()
                .cluster(&name)
                .send()
                .await
                .map_err(aws::op("DeleteCluster"))?;
        }
        Deletion::SecurityGroup(id) => {
            aws.ec2()
                .delete_security_group()
                .group_id(&id)
                .send()
                .await
                .map_err(aws::op("DeleteSecurityGroup"))?;
        }
        Deletion::Role(name) => {
            let iam = aws.iam();
            let policies = iam
                .list_role_policies()
                .role_name(&name)
                .send()
                .await
                .map_err(aws::op("ListRolePolicies"))?;
            for p in policies.policy_names() {
                iam.delete_role_policy()
                    .role_name(&name)
                    .policy_name(p)
                    .send()
                    .await
                    .map_err(aws::op("DeleteRolePolicy"))?;
            }
            iam.delete_role()
                .role_name(&name)
                .send()
                .await
                .map_err(aws::op("DeleteRole"))?;
        }
        Deletion::LogGroup(name) => {
            aws.logs()
                .delete_log_group()
                .log_group_name(&name)
                .send()
                .await
                .map_err(aws::op("DeleteLogGroup"))?;
        }
        Deletion::Bucket(name) => {
            let s3 = aws.s3();
            loop {
                let listed = s3
                    .list_objects_v2()
                    .bucket(&name)
                    .send()
                    .await
                    .map_err(aws::op("ListObjectsV2"))?;
                if listed.contents().is_empty() {
                    break;
                }
                for o in listed.contents() {
                    s3.delete_object()
                        .bucket(&name)
                        .key(o.key().unwrap_or_default())
                        .send()
                        .await
                        .map_err(aws::op("DeleteObject"))?;
                }
            }
            s3.delete_bucket()
                .bucket(&name)
                .send()
                .await
                .map_err(aws::op("DeleteBucket"))?;
        }
        Deletion::Repository(name) => {
            aws.ecr()
                .delete_repository()
                .repository_name(&name)
                .force(true)
                .send()
                .await
                .map_err(aws::op("DeleteRepository"))?;
        }
    }
    Ok(())
}

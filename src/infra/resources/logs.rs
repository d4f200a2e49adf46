//! The job's CloudWatch log group, with the retention jobrun.toml sets: where the tasks'
//! output goes (the awslogs driver of the task definitions).

use super::{Ctx, Deletion, Resource, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, Change, InfraError, TAG_JOB, TAG_MANAGED, change};
use aws_sdk_cloudwatchlogs::types::LogGroup as Group;

const KIND: &str = "log group";

/// Converges to the log group's ARN.
pub struct LogGroup;

impl LogGroup {
    pub fn arn(cx: &Ctx<'_>) -> String {
        cx.arns
            .regional("logs", &format!("log-group:{}", cx.names.log_group))
    }
}

/// The log group of that name, if there is one.
async fn find(cx: &Ctx<'_>) -> Result<Option<Group>, InfraError> {
    let name = &cx.names.log_group;
    Ok(cx
        .aws
        .logs()
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await
        .map_err(aws::op("DescribeLogGroups"))?
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name.as_str()))
        .cloned())
}

impl Resource for LogGroup {
    type Seen = Option<Group>;
    type Out = String;

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Option<Group>, InfraError> {
        find(cx).await
    }

    fn compare(&self, cx: &Ctx<'_>, found: &Option<Group>) -> Result<Change, InfraError> {
        let name = &cx.names.log_group;
        let want = cx.job.ecs.log_retention_days;
        Ok(match found {
            None => change(
                KIND,
                name,
                Action::Create,
                format!("missing (retention {want} days)"),
            ),
            Some(g) if g.retention_in_days() == Some(want) => change(
                KIND,
                name,
                Action::Unchanged,
                format!("retention {want} days"),
            ),
            Some(g) => change(
                KIND,
                name,
                Action::Update,
                format!(
                    "retention {} → {want} days",
                    g.retention_in_days()
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "never expire".into())
                ),
            ),
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, found: Option<Group>) -> Result<String, InfraError> {
        let logs = cx.aws.logs();
        let name = &cx.names.log_group;
        if found.is_none() {
            logs.create_log_group()
                .log_group_name(name)
                .tags(TAG_MANAGED, "jobrun")
                .tags(TAG_JOB, &cx.job.name)
                .send()
                .await
                .map_err(aws::op("CreateLogGroup"))?;
        }
        logs.put_retention_policy()
            .log_group_name(name)
            .retention_in_days(cx.job.ecs.log_retention_days)
            .send()
            .await
            .map_err(aws::op("PutRetentionPolicy"))?;
        Ok(Self::arn(cx))
    }

    fn current(&self, cx: &Ctx<'_>, _: Option<Group>) -> String {
        Self::arn(cx)
    }
}

/// `down`: the log group when it carries the job's tags.
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let name = &cx.names.log_group;
    let c = if find(cx).await?.is_none() {
        change(KIND, name, Action::Absent, "not there")
    } else {
        #[allow(deprecated)]
        let tags = cx
            .aws
            .logs()
            .list_tags_log_group()
            .log_group_name(name)
            .send()
            .await
            .map_err(aws::op("ListTagsLogGroup"))?;
        let mine = tags
            .tags()
            .is_some_and(|t| cx.ours(t.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        if mine {
            change(KIND, name, Action::Delete, "made by jobrun for this job")
        } else {
            change(KIND, name, Action::Keep, "not tagged for this job")
        }
    };
    found.plan(c, Some(Deletion::LogGroup(name.clone())));
    Ok(())
}

pub async fn delete(aws: &Aws, name: &str) -> Result<(), InfraError> {
    aws.logs()
        .delete_log_group()
        .log_group_name(name)
        .send()
        .await
        .map_err(aws::op("DeleteLogGroup"))?;
    Ok(())
}

//! The job's CloudWatch log group, with the retention jobrun.toml sets: where the tasks'
//! output goes (the awslogs driver of the task definitions).

use super::{Ctx, Deletion, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, InfraError, change};
use aws_sdk_cloudwatchlogs::types::LogGroup as Group;

const KIND: &str = "log group";

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

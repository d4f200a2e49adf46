//! The task definitions: the job's own (family `jobrun-<job>`) and, in queue mode, the
//! workers' (`jobrun-<job>-agent`: the same image, `jobrun agent` as entrypoint). A new
//! revision is registered only when a field jobrun sets differs from the latest one; the
//! comparison is on a JSON shape of those fields, read back the same way from ECS.

use super::{Ctx, Deletion, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, InfraError, change};

const KIND: &str = "task definition";

/// The active revisions of a family (every page).
async fn list_family(ecs: &aws_sdk_ecs::Client, family: &str) -> Result<Vec<String>, InfraError> {
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
                .filter(|a| a.contains(&format!(":task-definition/{family}:")))
                .cloned(),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(listed)
}

/// `down`: the active revisions of both families, each checked for the job's tags.
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let ecs = cx.aws.ecs();
    for family in [&cx.names.family, &cx.names.agent_family] {
        let (mut arns, mut foreign) = (vec![], 0);
        for arn in list_family(&ecs, family).await? {
            let described = ecs
                .describe_task_definition()
                .task_definition(&arn)
                .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
                .send()
                .await
                .map_err(aws::op("DescribeTaskDefinition"))?;
            let tags = described.tags().iter();
            if cx.ours(tags.filter_map(|t| Some((t.key()?, t.value()?)))) {
                arns.push(arn);
            } else {
                foreign += 1;
            }
        }
        if foreign > 0 {
            let why = format!("{foreign} revisions not tagged for this job");
            found.plan(change(KIND, family, Action::Keep, why), None);
        }
        let c = if arns.is_empty() {
            change(
                KIND,
                family,
                Action::Absent,
                "no active revision of this job",
            )
        } else {
            let why = format!("{} revisions", arns.len());
            change(KIND, family, Action::Delete, why)
        };
        found.plan(c, Some(Deletion::TaskDefinitions(arns)));
    }
    Ok(())
}

pub async fn delete(aws: &Aws, arns: &[String]) -> Result<(), InfraError> {
    let ecs = aws.ecs();
    for arn in arns {
        ecs.deregister_task_definition()
            .task_definition(arn)
            .send()
            .await
            .map_err(aws::op("DeregisterTaskDefinition"))?;
    }
    Ok(())
}

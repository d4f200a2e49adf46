//! The job's ECR repository. `jobrun push` makes it, not `up`; `down` removes it (with its
//! images) when it carries the job's tags, as the last thing it deletes.

use super::{Ctx, Deletion, Teardown};
use crate::aws::{self, Aws, AwsError};
use crate::infra::{Action, InfraError, change};

const KIND: &str = "ecr repository";

/// `down`: the repository, when the job pushes to ECR and the repository is tagged for it.
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let Some(repo) = &cx.names.repository else {
        return Ok(());
    };
    let ecr = cx.aws.ecr();
    let c = match ecr
        .describe_repositories()
        .repository_names(repo)
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
            if cx.ours(tags.tags().iter().map(|t| (t.key(), t.value()))) {
                change(
                    KIND,
                    repo,
                    Action::Delete,
                    "made by jobrun for this job, with its images",
                )
            } else {
                change(KIND, repo, Action::Keep, "not tagged for this job")
            }
        }
        Err(e) => {
            let e = AwsError::from_sdk("DescribeRepositories", e);
            if e.code() != Some("RepositoryNotFoundException") {
                return Err(e.into());
            }
            change(KIND, repo, Action::Absent, "not there")
        }
    };
    found.plan(c, Some(Deletion::Repository(repo.clone())));
    Ok(())
}

/// Deletes the repository with its images.
pub async fn delete(aws: &Aws, name: &str) -> Result<(), InfraError> {
    aws.ecr()
        .delete_repository()
        .repository_name(name)
        .force(true)
        .send()
        .await
        .map_err(aws::op("DeleteRepository"))?;
    Ok(())
}

//! The job's IAM roles (execution: what ECS does to start the task; task: what the job's
//! code may do; on Managed Instances the infrastructure and instance roles), each with a trust
//! policy and one inline policy, `jobrun`, or one of AWS's managed policies. The documents
//! themselves are written by `infra::policy`; this file only makes IAM hold them.

use super::{Ctx, Deletion, Resource, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, Change, InfraError, TAG_JOB, TAG_MANAGED, change};
use serde_json::Value;

/// A role with a trust policy and its grant; converges to its ARN.
pub struct Role {
    pub kind: &'static str,
    pub name: String,
    pub trust: Value,
    pub grant: Grant,
}

/// What a role may do: an inline policy `jobrun` of jobrun's writing, or an AWS managed policy
/// by name (AWS keeps it current; jobrun attaches it).
pub enum Grant {
    Inline(Value),
    Managed(&'static str),
}

/// A role that exists, compared with the wanted documents.
pub struct Seen {
    trust_ok: bool,
    policy_ok: bool,
}

impl Role {
    fn arn(&self, cx: &Ctx<'_>) -> String {
        cx.arns.role(&self.name)
    }

    /// The role's grant as IAM holds it: the inline policy's document, or the managed
    /// policy among those attached (API_ListAttachedRolePolicies; one page holds 100, a
    /// jobrun role has one).
    async fn granted(&self, cx: &Ctx<'_>, iam: &aws_sdk_iam::Client) -> Result<bool, InfraError> {
        let Grant::Managed(name) = &self.grant else {
            return self.policy_as_wanted(iam).await;
        };
        let arn = managed_policy_arn(cx, name);
        let listed = iam
            .list_attached_role_policies()
            .role_name(&self.name)
            .send()
            .await
            .map_err(aws::op("ListAttachedRolePolicies"))?;
        Ok(listed
            .attached_policies()
            .iter()
            .any(|p| p.policy_arn() == Some(arn.as_str())))
    }

    async fn policy_as_wanted(&self, iam: &aws_sdk_iam::Client) -> Result<bool, InfraError> {
        let got = iam
            .get_role_policy()
            .role_name(&self.name)
            .policy_name("jobrun")
            .send()
            .await
            .map_err(aws::op("GetRolePolicy"));
        let current = aws::found(got, &["NoSuchEntity"])?
            .and_then(|out| parse_document(out.policy_document()));
        Ok(matches!(&self.grant, Grant::Inline(p) if current.as_ref() == Some(p)))
    }
}

impl Resource for Role {
    type Seen = Option<Seen>;
    type Out = String;

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Option<Seen>, InfraError> {
        let iam = cx.aws.iam();
        let got = iam
            .get_role()
            .role_name(&self.name)
            .send()
            .await
            .map_err(aws::op("GetRole"));
        let Some(role) = aws::found(got, &["NoSuchEntity"])?.and_then(|out| out.role().cloned())
        else {
            return Ok(None);
        };
        let trust_ok = role
            .assume_role_policy_document()
            .and_then(parse_document)
            .as_ref()
            == Some(&self.trust);
        Ok(Some(Seen {
            trust_ok,
            policy_ok: self.granted(cx, &iam).await?,
        }))
    }

    fn compare(&self, _: &Ctx<'_>, seen: &Option<Seen>) -> Result<Change, InfraError> {
        let (kind, name) = (self.kind, &self.name);
        let Some(seen) = seen else {
            return Ok(change(kind, name, Action::Create, "missing"));
        };
        let mut why = vec![];
        if !seen.trust_ok {
            why.push("trust policy differs");
        }
        if !seen.policy_ok {
            why.push(match self.grant {
                Grant::Inline(_) => "inline policy differs",
                Grant::Managed(_) => "managed policy not attached",
            });
        }
        Ok(if why.is_empty() {
            let what = match self.grant {
                Grant::Inline(_) => "trust and inline policy as wanted",
                Grant::Managed(p) => p,
            };
            change(kind, name, Action::Unchanged, what)
        } else {
            change(kind, name, Action::Update, why.join(", "))
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, seen: Option<Seen>) -> Result<String, InfraError> {
        let iam = cx.aws.iam();
        match &seen {
            None => self.create(cx, &iam).await?,
            Some(s) if !s.trust_ok => {
                iam.update_assume_role_policy()
                    .role_name(&self.name)
                    .policy_document(self.trust.to_string())
                    .send()
                    .await
                    .map_err(aws::op("UpdateAssumeRolePolicy"))?;
            }
            Some(_) => {}
        }
        if seen.is_none_or(|s| !s.policy_ok) {
            self.grant(cx, &iam).await?;
        }
        cx.iam_changed();
        Ok(self.arn(cx))
    }

    fn current(&self, cx: &Ctx<'_>, _: Option<Seen>) -> String {
        self.arn(cx)
    }
}

impl Role {
    /// PutRolePolicy of the inline policy, or AttachRolePolicy of the managed one
    /// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_AttachRolePolicy.html).
    async fn grant(&self, cx: &Ctx<'_>, iam: &aws_sdk_iam::Client) -> Result<(), InfraError> {
        match &self.grant {
            Grant::Inline(policy) => {
                iam.put_role_policy()
                    .role_name(&self.name)
                    .policy_name("jobrun")
                    .policy_document(policy.to_string())
                    .send()
                    .await
                    .map_err(aws::op("PutRolePolicy"))?;
            }
            Grant::Managed(name) => {
                iam.attach_role_policy()
                    .role_name(&self.name)
                    .policy_arn(managed_policy_arn(cx, name))
                    .send()
                    .await
                    .map_err(aws::op("AttachRolePolicy"))?;
            }
        }
        Ok(())
    }

    async fn create(&self, cx: &Ctx<'_>, iam: &aws_sdk_iam::Client) -> Result<(), InfraError> {
        use aws_sdk_iam::types::Tag;
        let tag = |k: &str, v: &str| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .expect("key and value")
        };
        iam.create_role()
            .role_name(&self.name)
            .assume_role_policy_document(self.trust.to_string())
            .description(format!("jobrun {} of job {}", self.kind, cx.job.name))
            .tags(tag(TAG_MANAGED, "jobrun"))
            .tags(tag(TAG_JOB, &cx.job.name))
            .send()
            .await
            .map_err(aws::op("CreateRole"))?;
        Ok(())
    }
}

/// An AWS service's service-linked role: ECS's, which capacity providers need, and Application
/// Auto Scaling's for ECS services. AWS makes them on first use, but in a fresh account the
/// first CreateCluster with capacity providers fails ("Unable to assume the service linked
/// role") until the role exists, so `up` makes it first. Account-wide: `down` never deletes it.
pub struct ServiceLinkedRole {
    /// `ecs.amazonaws.com`, `ecs.application-autoscaling.amazonaws.com`.
    pub service: &'static str,
    pub name: &'static str,
}

impl ServiceLinkedRole {
    pub const ECS: ServiceLinkedRole = ServiceLinkedRole {
        service: "ecs.amazonaws.com",
        name: "AWSServiceRoleForECS",
    };
    pub const ECS_AUTOSCALING: ServiceLinkedRole = ServiceLinkedRole {
        service: "ecs.application-autoscaling.amazonaws.com",
        name: "AWSServiceRoleForApplicationAutoScaling_ECSService",
    };
}

impl Resource for ServiceLinkedRole {
    type Seen = bool;
    type Out = ();

    /// Found by its path, `/aws-service-role/<service>/`, which AWS fixes for every
    /// service-linked role (emulators spell the names differently).
    async fn observe(&self, cx: &Ctx<'_>) -> Result<bool, InfraError> {
        let listed = cx
            .aws
            .iam()
            .list_roles()
            .path_prefix(format!("/aws-service-role/{}/", self.service))
            .send()
            .await
            .map_err(aws::op("ListRoles"))?;
        Ok(!listed.roles().is_empty())
    }

    fn compare(&self, _: &Ctx<'_>, exists: &bool) -> Result<Change, InfraError> {
        let kind = "service-linked role";
        Ok(if *exists {
            change(kind, self.name, Action::Unchanged, "exists (account-wide)")
        } else {
            let why = format!(
                "missing: {} needs it (account-wide, kept by down)",
                self.service
            );
            change(kind, self.name, Action::Create, why)
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, _: bool) -> Result<(), InfraError> {
        let made = cx
            .aws
            .iam()
            .create_service_linked_role()
            .aws_service_name(self.service)
            .send()
            .await
            .map_err(aws::op("CreateServiceLinkedRole"));
        // Made meanwhile by AWS itself or another `up`: IAM answers InvalidInput ("has been
        // taken"), emulators EntityAlreadyExists.
        aws::found(made, &["InvalidInput", "EntityAlreadyExists"])?;
        cx.iam_changed();
        Ok(())
    }

    fn current(&self, _: &Ctx<'_>, _: bool) {}
}

/// An AWS managed policy's ARN: `arn:<partition>:iam::aws:policy/<name>`.
fn managed_policy_arn(cx: &Ctx<'_>, name: &str) -> String {
    format!("arn:{}:iam::aws:policy/{name}", cx.arns.partition)
}

/// IAM hands documents back URL-encoded; emulators sometimes do not.
fn parse_document(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok().or_else(|| {
        let decoded = percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .ok()?;
        serde_json::from_str(&decoded).ok()
    })
}

/// `down`: the job's roles (and the schedules' two), each when it carries the job's tags.
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let iam = cx.aws.iam();
    let mut roles = vec![
        ("execution role", &cx.names.execution_role),
        ("task role", &cx.names.task_role),
        ("dispatcher role", &cx.names.dispatcher_role),
        ("scheduler role", &cx.names.scheduler_role),
    ];
    // Managed Instances' two, for a job that runs on them (`iam-policy --for down` names them
    // for such a job only).
    if cx.job.managed_instances() {
        roles.push(("infrastructure role", &cx.names.infrastructure_role));
        roles.push(("instance role", &cx.names.instance_role));
    }
    for (kind, name) in roles {
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

/// Deletes the role's inline policies, detaches its managed ones, then deletes the role
/// (DeleteRole refuses a role with either: DeleteConflict,
/// https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeleteRole.html).
pub async fn delete(aws: &Aws, name: &str) -> Result<(), InfraError> {
    let iam = aws.iam();
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(aws::op("ListAttachedRolePolicies"))?;
    for p in attached.attached_policies() {
        iam.detach_role_policy()
            .role_name(name)
            .policy_arn(p.policy_arn().unwrap_or_default())
            .send()
            .await
            .map_err(aws::op("DetachRolePolicy"))?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_encoded_documents_are_read() {
        assert_eq!(
            parse_document("%7B%22a%22%3A1%7D").unwrap(),
            json!({"a": 1}),
            "URL-encoded documents are read"
        );
    }
}

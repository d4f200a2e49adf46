//! The IAM documents of a job: trust limited to `ecs-tasks.amazonaws.com`, and inline
//! least-privilege policies whose actions are all named (no `*`) and whose resources are this
//! job's own ARNs. The one exception AWS forces: `ecr:GetAuthorizationToken` takes no resource
//! but `*`.

use super::InfraError;
use crate::arn::{Arn, Arns};
use crate::config::PolicyStatement;
use crate::layout;
use serde_json::{Value, json};

/// IAM's limit on the inline policies of one role, all together, white space not counted.
pub const INLINE_POLICIES_LIMIT: usize = 10_240;

/// A policy's size as IAM counts it: its characters, white space left out.
pub fn size(doc: &Value) -> usize {
    doc.to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count()
}

/// Refuses a role's inline policy (jobrun's one, `jobrun`) that IAM would refuse.
pub fn check_size(role: &str, doc: &Value) -> Result<(), InfraError> {
    let size = size(doc);
    if size > INLINE_POLICIES_LIMIT {
        return Err(InfraError::PolicyTooLarge {
            role: role.to_string(),
            size,
            limit: INLINE_POLICIES_LIMIT,
        });
    }
    Ok(())
}

pub fn trust() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "ecs-tasks.amazonaws.com" },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// An AWS service may take the role: ECS (`ecs.amazonaws.com`) the Managed Instances'
/// infrastructure role, EC2 (`ec2.amazonaws.com`) their instance role
/// (managed-instances-instance-profile.html, infrastructure_IAM_role.html).
pub fn service_trust(service: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// EventBridge Scheduler may take the scheduler role, for schedules of this account only.
pub fn scheduler_trust(account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "scheduler.amazonaws.com" },
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}}
        }]
    })
}

/// What a schedule's delivery does, and nothing else: RunTask of the dispatcher's task
/// definition on the job's cluster, hand the dispatcher its two roles, and put a delivery that
/// failed into the schedules' dead-letter queue.
pub fn scheduler(family_arn: &str, cluster_arn: &str, roles: &[String], dlq_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RunTheDispatcher",
                "Effect": "Allow",
                "Action": ["ecs:RunTask"],
                "Resource": [family_arn],
                "Condition": {"ArnEquals": {"ecs:cluster": cluster_arn}}
            },
            {
                "Sid": "PassTheDispatcherRoles",
                "Effect": "Allow",
                "Action": ["iam:PassRole"],
                "Resource": roles,
                "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
            },
            {
                "Sid": "DeadLetters",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage"],
                "Resource": [dlq_arn]
            }
        ]
    })
}

/// What ECS itself needs to start the task: pull the job's image, write its log group, read the
/// secrets the job names (decrypting them with the customer-managed KMS keys it names).
pub fn execution(
    repository_arn: Option<&str>,
    log_group_arn: &str,
    secrets: &[String],
    kms_keys: &[String],
) -> Value {
    let mut statements = vec![];
    if let Some(repo) = repository_arn {
        statements.push(json!({
            "Sid": "AuthenticateToEcr",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken"],
            "Resource": "*"
        }));
        statements.push(json!({
            "Sid": "PullTheJobImage",
            "Effect": "Allow",
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Resource": [repo]
        }));
    }
    statements.push(json!({
        "Sid": "WriteTheJobLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [format!("{log_group_arn}:*")]
    }));
    let of = |service: &str| -> Vec<String> {
        secrets
            .iter()
            .filter_map(|s| Arn::parse(s).filter(|a| a.service == service))
            .flat_map(|a| secret_resources(&a))
            .collect()
    };
    let sm = of("secretsmanager");
    if !sm.is_empty() {
        statements.push(json!({
            "Sid": "ReadTheJobSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": sm
        }));
    }
    let ssm = of("ssm");
    if !ssm.is_empty() {
        statements.push(json!({
            "Sid": "ReadTheJobParameters",
            "Effect": "Allow",
            "Action": ["ssm:GetParameters"],
            "Resource": ssm
        }));
    }
    if !kms_keys.is_empty() {
        statements.push(json!({
            "Sid": "DecryptTheJobSecrets",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": kms_keys
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The IAM resources that match the secret a `valueFrom` names. ECS accepts a Secrets Manager
/// ARN with `:json-key:version-stage:version-id` after it, and a partial ARN (without the six
/// random characters Secrets Manager appends to the name); IAM matches neither as written. The
/// secret's own ARN is the first seven colon-separated parts; a name that does not end in
/// `-` and six letters or digits is partial and gets IAM's `-??????` wildcard (a name that does
/// gets both, as it may be a partial ARN of a name that happens to end so).
fn secret_resources(arn: &Arn<'_>) -> Vec<String> {
    if arn.service != "secretsmanager" {
        return vec![arn.to_string()];
    }
    let mut parts = arn.resource.splitn(3, ':');
    let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let secret = Arn {
        resource: &format!("{kind}:{name}"),
        ..arn.clone()
    }
    .to_string();
    let suffixed = name
        .rsplit_once('-')
        .is_some_and(|(_, s)| s.len() == 6 && s.chars().all(|c| c.is_ascii_alphanumeric()));
    if suffixed {
        vec![secret.clone(), format!("{secret}-??????")]
    } else {
        vec![format!("{secret}-??????")]
    }
}

/// What the job's own code may do: its prefix of the bucket, plus what the user added.
pub fn task(
    arns: &Arns,
    bucket: &str,
    job: &str,
    inputs: &[(String, String)],
    extra: &[PolicyStatement],
) -> Value {
    let mut statements = vec![
        json!({
            "Sid": "TheJobPrefix",
            "Effect": "Allow",
            // Abort: a task's large output that failed halfway leaves no parts behind.
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": [arns.s3(bucket, Some(&layout::policy_pattern(job)))]
        }),
        json!({
            "Sid": "ListTheJobPrefix",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [arns.s3(bucket, None)],
            "Condition": { "StringLike": { "s3:prefix": [layout::policy_pattern(job)] } }
        }),
    ];
    // `ecs.inputs`: read exactly these prefixes (what `submit --from-s3` hands out).
    for (i, (b, prefix)) in inputs.iter().enumerate() {
        statements.push(json!({
            "Sid": format!("ReadInput{i}"),
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [arns.s3(b, Some(&format!("{prefix}*")))]
        }));
        statements.push(json!({
            "Sid": format!("ListInput{i}"),
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [arns.s3(b, None)],
            "Condition": { "StringLike": { "s3:prefix": [format!("{prefix}*")] } }
        }));
    }
    for (i, st) in extra.iter().enumerate() {
        statements.push(json!({
            "Sid": format!("FromJobrunToml{i}"),
            "Effect": "Allow",
            "Action": st.actions,
            "Resource": st.resources
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// What `jobrun agent` needs in a worker: this queue's messages, its own task's scale-in
/// protection, and the objects of the S3 trigger prefix.
pub fn queue_worker(
    arns: &Arns,
    queue_arn: &str,
    tasks_arn: &str,
    trigger: Option<&(String, String)>,
) -> Vec<Value> {
    let mut statements = vec![
        json!({
            "Sid": "TheJobQueue",
            "Effect": "Allow",
            "Action": ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
            "Resource": [queue_arn]
        }),
        json!({
            "Sid": "ScaleInProtection",
            "Effect": "Allow",
            "Action": ["ecs:GetTaskProtection", "ecs:UpdateTaskProtection"],
            "Resource": [tasks_arn]
        }),
    ];
    if let Some((bucket, prefix)) = trigger {
        statements.push(json!({
            "Sid": "ReadTheTriggerPrefix",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [arns.s3(bucket, Some(&format!("{prefix}*")))]
        }));
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(doc: &Value) -> Vec<String> {
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
                _ => vec![],
            })
            .collect()
    }

    #[test]
    fn no_wildcard_actions_and_scoped_resources() {
        let exec = execution(
            Some("arn:aws:ecr:us-east-1:1:repository/jobrun/wc"),
            "arn:aws:logs:us-east-1:1:log-group:/jobrun/wc",
            &["arn:aws:secretsmanager:us-east-1:1:secret:db".into()],
            &[],
        );
        let arns = Arns::new(None, "us-east-1", "1");
        let task = task(&arns, "b", "wc", &[("in".into(), "data/".into())], &[]);
        for doc in [&exec, &task] {
            assert!(actions(doc).iter().all(|a| !a.contains('*')), "{doc}");
        }
        for s in exec["Statement"].as_array().unwrap() {
            let only_token = s["Action"] == json!(["ecr:GetAuthorizationToken"]);
            assert!(only_token || s["Resource"] != "*", "{s}");
        }
        assert_eq!(
            trust()["Statement"][0]["Principal"]["Service"],
            "ecs-tasks.amazonaws.com"
        );
    }

    fn secret_resources_of(value: &str) -> Vec<String> {
        let doc = execution(
            None,
            "g",
            &[value.to_string()],
            &["arn:aws-cn:kms:cn-north-1:1:key/k".into()],
        );
        let st = doc["Statement"].as_array().unwrap();
        assert_eq!(st.last().unwrap()["Action"], json!(["kms:Decrypt"]));
        st.iter()
            .find(|s| s["Sid"] == "ReadTheJobSecrets" || s["Sid"] == "ReadTheJobParameters")
            .map(|s| serde_json::from_value(s["Resource"].clone()).unwrap())
            .unwrap_or_default()
    }

    #[test]
    fn secrets_name_the_secret_iam_matches() {
        let full = "arn:aws-cn:secretsmanager:cn-north-1:1:secret:db-AbC123";
        // A json-key / stage / version suffix is cut off; the full ARN stays exact.
        assert_eq!(
            secret_resources_of(&format!("{full}:password:AWSCURRENT:")),
            [full.to_string(), format!("{full}-??????")]
        );
        // A partial ARN gets IAM's six-character wildcard.
        assert_eq!(
            secret_resources_of("arn:aws:secretsmanager:us-east-1:1:secret:db"),
            ["arn:aws:secretsmanager:us-east-1:1:secret:db-??????"]
        );
        assert_eq!(
            secret_resources_of("arn:aws:secretsmanager:us-east-1:1:secret:prod/db:pw::"),
            ["arn:aws:secretsmanager:us-east-1:1:secret:prod/db-??????"]
        );
        assert_eq!(
            secret_resources_of("arn:aws-us-gov:ssm:us-gov-west-1:1:parameter/db"),
            ["arn:aws-us-gov:ssm:us-gov-west-1:1:parameter/db"]
        );
    }

    #[test]
    fn task_policy_in_china() {
        let arns = Arns::new(None, "cn-north-1", "1");
        let doc = task(&arns, "b", "wc", &[], &[]).to_string();
        assert!(doc.contains("arn:aws-cn:s3:::b/jobs/wc/*"), "{doc}");
        assert!(!doc.contains("arn:aws:"), "{doc}");
    }

    /// IAM's wildcard match (`*` any run of characters, `?` one), as resource ARNs and
    /// `StringLike` conditions use it.
    fn iam_like(pattern: &str, s: &str) -> bool {
        match pattern.chars().next() {
            None => s.is_empty(),
            Some('*') => (0..=s.len())
                .filter(|&i| s.is_char_boundary(i))
                .any(|i| iam_like(&pattern[1..], &s[i..])),
            Some(c) => s.chars().next().is_some_and(|first| {
                (c == '?' || c == first)
                    && iam_like(&pattern[c.len_utf8()..], &s[first.len_utf8()..])
            }),
        }
    }

    /// Whether a statement of `doc` allows `action` on `resource` (with `s3:prefix` for a
    /// ListBucket).
    fn allows(doc: &Value, action: &str, resource: &str, s3_prefix: Option<&str>) -> bool {
        let list = |v: &Value| -> Vec<String> {
            match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                _ => vec![],
            }
        };
        doc["Statement"].as_array().unwrap().iter().any(|st| {
            let condition = &st["Condition"]["StringLike"]["s3:prefix"];
            st["Effect"] == "Allow"
                && list(&st["Action"]).iter().any(|a| a == action)
                && list(&st["Resource"]).iter().any(|r| iam_like(r, resource))
                && (condition.is_null()
                    || s3_prefix.is_some_and(|p| list(condition).iter().any(|c| iam_like(c, p))))
        })
    }

    #[test]
    fn iam_wildcards_match_as_iam_matches_them() {
        assert!(iam_like(
            "arn:aws:s3:::b/jobs/wc/*",
            "arn:aws:s3:::b/jobs/wc/runs/r/run.json"
        ));
        assert!(iam_like("jobs/wc/*", "jobs/wc/"));
        assert!(!iam_like("jobs/wc/*", "jobs/wc2/runs/"));
        assert!(!iam_like("jobs/wc/*", "jobs/w"));
        assert!(iam_like("a?c", "abc") && !iam_like("a?c", "ac"));
    }

    /// The layout's keys ⊆ what the policies allow: every key jobrun or the jobrun in a task
    /// writes or reads, and every prefix it lists, for the task role and `iam-policy --for run`;
    /// and nothing of another job's.
    #[test]
    fn every_key_of_the_layout_is_one_the_policies_allow() {
        use crate::record::Stage;
        use crate::{layout, wire};
        let arns = Arns::new(None, "us-east-1", "123456789012");
        let job = crate::config::ecs_job_for_tests("wc");
        let names = super::super::Names::new(&job, &arns.account, &arns.region);
        let b = names.bucket.as_str();
        let run = "20261202-120000-ab12";
        let keys = [
            wire::record_key("wc", run),
            wire::config_key("wc", run, 7),
            wire::receipt_key("wc", run, 7, 2),
            wire::result_key("wc", run, "7", 2, wire::Outcome::Succeeded),
            wire::cancel_key("wc", run),
            format!("{}out.csv", wire::output_prefix("wc", run, 7, Stage::Map)),
            format!(
                "{}sum.csv",
                wire::output_prefix("wc", run, "", Stage::Reduce)
            ),
            layout::key_claim_key("wc", "monday"),
            crate::schedule::key("wc", "weekly", 3),
            format!("{}20261202T120000Z.json", layout::skipped_prefix("wc")),
        ];
        let listed = [
            layout::runs_prefix("wc"),
            layout::run_prefix("wc", run),
            wire::results_prefix("wc", run),
            wire::inputs_prefix("wc", run),
            wire::cancel_key("wc", run),
            layout::schedule_prefix("wc", "weekly"),
            layout::skipped_prefix("wc"),
        ];
        let docs = [
            ("the task role", task(&arns, b, "wc", &[], &[])),
            (
                "iam-policy --for run",
                super::super::caller::policy(
                    &job,
                    &names,
                    &arns,
                    &[super::super::caller::Needs::Run],
                ),
            ),
        ];
        for (who, doc) in &docs {
            for key in &keys {
                for action in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] {
                    let object = arns.s3(b, Some(key));
                    assert!(allows(doc, action, &object, None), "{who}: {action} {key}");
                }
            }
            for prefix in &listed {
                let bucket = arns.s3(b, None);
                assert!(
                    allows(doc, "s3:ListBucket", &bucket, Some(prefix)),
                    "{who}: list {prefix}"
                );
            }
            let other = arns.s3(b, Some(&wire::record_key("wc2", run)));
            assert!(
                !allows(doc, "s3:PutObject", &other, None),
                "{who}: another job's"
            );
            let bucket = arns.s3(b, None);
            let other = layout::runs_prefix("w");
            assert!(
                !allows(doc, "s3:ListBucket", &bucket, Some(&other)),
                "{who}: list {other}"
            );
        }
    }
}

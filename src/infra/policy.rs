//! The IAM documents of a job: trust limited to `ecs-tasks.amazonaws.com`, and inline
//! least-privilege policies whose actions are all named (no `*`) and whose resources are this
//! job's own ARNs. The one exception AWS forces: `ecr:GetAuthorizationToken` takes no resource
//! but `*`.

use crate::config::PolicyStatement;
use serde_json::{Value, json};

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

/// What ECS itself needs to start the task: pull the job's image, write its log group, read the
/// secrets the job names.
pub fn execution(repository_arn: Option<&str>, log_group_arn: &str, secrets: &[String]) -> Value {
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
    let sm: Vec<&String> = secrets
        .iter()
        .filter(|s| s.starts_with("arn:aws:secretsmanager:"))
        .collect();
    if !sm.is_empty() {
        statements.push(json!({
            "Sid": "ReadTheJobSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": sm
        }));
    }
    let ssm: Vec<&String> = secrets
        .iter()
        .filter(|s| s.starts_with("arn:aws:ssm:"))
        .collect();
    if !ssm.is_empty() {
        statements.push(json!({
            "Sid": "ReadTheJobParameters",
            "Effect": "Allow",
            "Action": ["ssm:GetParameters"],
            "Resource": ssm
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// What the job's own code may do: its prefix of the bucket, plus what the user added.
pub fn task(
    bucket: &str,
    job: &str,
    inputs: &[(String, String)],
    extra: &[PolicyStatement],
) -> Value {
    let mut statements = vec![
        json!({
            "Sid": "TheJobPrefix",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": [format!("arn:aws:s3:::{bucket}/jobs/{job}/*")]
        }),
        json!({
            "Sid": "ListTheJobPrefix",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [format!("arn:aws:s3:::{bucket}")],
            "Condition": { "StringLike": { "s3:prefix": [format!("jobs/{job}/*")] } }
        }),
    ];
    // `ecs.inputs`: read exactly these prefixes (what `submit --from-s3` hands out).
    for (i, (b, prefix)) in inputs.iter().enumerate() {
        statements.push(json!({
            "Sid": format!("ReadInput{i}"),
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [format!("arn:aws:s3:::{b}/{prefix}*")]
        }));
        statements.push(json!({
            "Sid": format!("ListInput{i}"),
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [format!("arn:aws:s3:::{b}")],
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
            "Resource": [format!("arn:aws:s3:::{bucket}/{prefix}*")]
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
        );
        let task = task("b", "wc", &[("in".into(), "data/".into())], &[]);
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
}

//! What the person or CI user running jobrun needs for one job: the least-privilege policy that
//! `jobrun iam-policy` prints (by command: push, up, run, down) and that `up` checks with
//! `iam:SimulatePrincipalPolicy` before it creates anything. Every action jobrun calls is named
//! (no `*` actions); resources are the job's own ARNs, except where the action takes no
//! resource (ECR's token, EC2's and Application Auto Scaling's describes, task definition
//! registration), and roles are passed only to ECS tasks.

use super::names::Names;
use crate::arn::Arns;
use crate::config::{DispatchMode, Job};
use crate::layout;
use serde::Serialize;
use serde_json::{Value, json};

mod driver;
mod instances;
mod queue;
mod schedule;
mod simulate;
use schedule::{schedule, schedule_read, schedule_teardown};
pub use simulate::missing;

/// The command groups whose needs `iam-policy` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Needs {
    /// `jobrun build --push` to the job's ECR repository.
    Push,
    /// `jobrun up` (converging the AWS side).
    Up,
    /// `submit`, `watch`, `status`, `logs`, `cancel`, `retry`, `runs`.
    Run,
    /// `jobrun down`.
    Down,
    /// `jobrun schedule` (add, list, pause, resume, rm, run), with the push of the dispatcher
    /// image and what `run` holds (the schedule's files in the bucket, the runs it fires).
    Schedule,
}

impl Needs {
    pub const ALL: [Needs; 5] = [
        Needs::Push,
        Needs::Up,
        Needs::Run,
        Needs::Down,
        Needs::Schedule,
    ];
}

/// What `up` (and `schedule add`) do to a role of the job's: read it, make it, keep its trust
/// and inline policy as wanted.
const MAKE_ROLES: &[&str] = &[
    "iam:GetRole",
    "iam:CreateRole",
    "iam:TagRole",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
    "iam:UpdateAssumeRolePolicy",
];

/// What `down` does to a role of the job's: check its tags, delete its inline policies, then it.
const DELETE_ROLES: &[&str] = &[
    "iam:ListRoleTags",
    "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies",
    "iam:DeleteRolePolicy",
    "iam:DeleteRole",
];

/// One policy statement.
fn allow(sid: &str, actions: &[&str], resources: Vec<String>) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources})
}

fn allow_if(sid: &str, actions: &[&str], resources: Vec<String>, condition: Value) -> Value {
    let mut st = allow(sid, actions, resources);
    st["Condition"] = condition;
    st
}

/// The ARNs the statements name, from the job's names.
struct Scope<'a> {
    job: &'a Job,
    names: &'a Names,
    arns: &'a Arns,
}

impl Scope<'_> {
    fn ecs(&self, resource: &str) -> String {
        self.arns.regional("ecs", resource)
    }
    fn cluster(&self) -> String {
        self.ecs(&format!("cluster/{}", self.names.cluster))
    }
    fn roles(&self) -> Vec<String> {
        let n = self.names;
        vec![
            self.arns.role(&n.execution_role),
            self.arns.role(&n.task_role),
        ]
    }
    fn queues(&self) -> Vec<String> {
        let n = self.names;
        vec![
            self.arns.regional("sqs", &n.queue),
            self.arns.regional("sqs", &n.dlq),
        ]
    }
    fn log_group(&self) -> String {
        let group = &self.names.log_group;
        self.arns.regional("logs", &format!("log-group:{group}"))
    }
    fn service(&self) -> String {
        let n = self.names;
        self.ecs(&format!("service/{}/{}", n.cluster, n.service))
    }
    fn queue_mode(&self) -> bool {
        self.job.ecs.mode == DispatchMode::Queue
    }
    /// Shared by `up` and `down` (one statement, as Sids are kept once).
    fn describe_log_groups(&self) -> Value {
        let groups = self.arns.regional("logs", "log-group:*");
        allow(
            "DescribeLogGroups",
            &["logs:DescribeLogGroups"],
            vec![groups],
        )
    }
    /// Application Auto Scaling makes and deletes a target-tracking policy's alarms as the
    /// caller: `up` and `down` both need them.
    fn scaling_alarms(&self) -> Value {
        let n = self.names;
        let alarms = format!("alarm:TargetTracking-service/{}/{}-*", n.cluster, n.service);
        let actions = [
            "cloudwatch:DescribeAlarms",
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DeleteAlarms",
        ];
        allow(
            "ScalingAlarms",
            &actions,
            vec![self.arns.regional("cloudwatch", &alarms)],
        )
    }
    fn pass_roles(&self, sid: &str) -> Value {
        allow_if(
            sid,
            &["iam:PassRole"],
            self.roles(),
            json!({"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}),
        )
    }
    fn job_prefix(&self) -> Vec<Value> {
        let (b, j) = (&self.names.bucket, &self.job.name);
        vec![
            allow(
                "RunRecords",
                &["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                vec![self.arns.s3(b, Some(&layout::policy_pattern(j)))],
            ),
            allow_if(
                "ListRunRecords",
                &["s3:ListBucket"],
                vec![self.arns.s3(b, None)],
                json!({"StringLike": {"s3:prefix": [layout::policy_pattern(j)]}}),
            ),
        ]
    }
}

/// EC2's describes take no resource; shared by `up` and `down`.
fn describe_network() -> Value {
    let actions = [
        "ec2:DescribeVpcs",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
    ];
    allow("DescribeNetwork", &actions, vec!["*".into()])
}

/// The policy document for these command groups.
pub fn policy(job: &Job, names: &Names, arns: &Arns, needs: &[Needs]) -> Value {
    let scope = Scope { job, names, arns };
    let mut statements = vec![];
    for n in needs {
        statements.extend(match n {
            Needs::Push => push(&scope),
            Needs::Up => up(&scope),
            Needs::Run => run(&scope),
            Needs::Down => down(&scope),
            // `schedule add` pushes the dispatcher image and keeps the schedule's definition
            // under jobs/<job>/, and `schedule run` fires a run: the group holds all of that.
            Needs::Schedule => [push(&scope), run(&scope), schedule(&scope)].concat(),
        });
    }
    // One Sid once: the groups share some statements.
    let mut seen = std::collections::HashSet::new();
    statements.retain(|s| seen.insert(s["Sid"].as_str().unwrap_or_default().to_string()));
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn push(s: &Scope<'_>) -> Vec<Value> {
    let Some(repo) = &s.names.repository else {
        return vec![];
    };
    let repo = s.arns.regional("ecr", &format!("repository/{repo}"));
    vec![
        allow("EcrToken", &["ecr:GetAuthorizationToken"], vec!["*".into()]),
        allow(
            "PushTheJobImage",
            &[
                "ecr:CreateRepository",
                "ecr:DescribeRepositories",
                "ecr:TagResource",
                "ecr:PutLifecyclePolicy",
                "ecr:PutImageScanningConfiguration",
                "ecr:BatchCheckLayerAvailability",
                "ecr:InitiateLayerUpload",
                "ecr:UploadLayerPart",
                "ecr:CompleteLayerUpload",
                "ecr:PutImage",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            vec![repo],
        ),
    ]
}

/// `up`'s bucket and log group.
fn up_storage(s: &Scope<'_>) -> Vec<Value> {
    let (n, a) = (s.names, s.arns);
    vec![
        allow(
            "UpBucket",
            &[
                "s3:CreateBucket",
                "s3:ListBucket",
                "s3:GetBucketTagging",
                "s3:PutBucketTagging",
                "s3:GetEncryptionConfiguration",
                "s3:PutEncryptionConfiguration",
                "s3:GetBucketPublicAccessBlock",
                "s3:PutBucketPublicAccessBlock",
            ],
            vec![a.s3(&n.bucket, None)],
        ),
        allow(
            "UpLogGroup",
            &[
                "logs:CreateLogGroup",
                "logs:PutRetentionPolicy",
                "logs:ListTagsLogGroup",
                "logs:ListTagsForResource",
                "logs:TagLogGroup",
                "logs:TagResource",
            ],
            vec![s.log_group(), format!("{}:*", s.log_group())],
        ),
        s.describe_log_groups(),
    ]
}

/// `up`'s roles, handing them to ECS tasks, and the service-linked roles.
fn up_iam(s: &Scope<'_>) -> Vec<Value> {
    let a = s.arns;
    vec![
        allow(
            "UpRoles",
            MAKE_ROLES,
            s.roles(),
        ),
        s.pass_roles("PassTheJobRoles"),
        allow("FindServiceLinkedRoles", &["iam:ListRoles"], vec!["*".into()]),
        // `up` asks IAM's simulator about the caller itself first.
        allow(
            "CheckOwnPermissions",
            &["iam:SimulatePrincipalPolicy"],
            vec![a.role("*"), format!("arn:{}:iam::{}:user/*", a.partition, a.account)],
        ),
        allow_if(
            "ServiceLinkedRoles",
            &["iam:CreateServiceLinkedRole"],
            vec![
                a.role("aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"),
                a.role("aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService"),
            ],
            json!({"StringLike": {"iam:AWSServiceName": ["ecs.amazonaws.com", "ecs.application-autoscaling.amazonaws.com"]}}),
        ),
    ]
}

/// `up`'s network, cluster and task definitions.
fn up_compute(s: &Scope<'_>) -> Vec<Value> {
    let (n, a) = (s.names, s.arns);
    vec![
        describe_network(),
        allow(
            "MakeTheSecurityGroup",
            &["ec2:CreateSecurityGroup"],
            vec![
                a.regional("ec2", "vpc/*"),
                a.regional("ec2", "security-group/*"),
            ],
        ),
        allow_if(
            "TagTheSecurityGroup",
            &["ec2:CreateTags"],
            vec![a.regional("ec2", "security-group/*")],
            json!({"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}}),
        ),
        allow_if(
            "NarrowTheSecurityGroup",
            &["ec2:RevokeSecurityGroupIngress"],
            vec![a.regional("ec2", "security-group/*")],
            json!({"StringEquals": {"aws:ResourceTag/jobrun:job": s.job.name}}),
        ),
        allow(
            "UpCluster",
            &[
                "ecs:CreateCluster",
                "ecs:DescribeClusters",
                "ecs:PutClusterCapacityProviders",
                "ecs:TagResource",
            ],
            vec![s.cluster()],
        ),
        allow(
            "TaskDefinitions",
            &[
                "ecs:RegisterTaskDefinition",
                "ecs:DescribeTaskDefinition",
                "ecs:ListTaskDefinitions",
            ],
            vec!["*".into()],
        ),
        allow(
            "TagTaskDefinitions",
            &["ecs:TagResource"],
            vec![s.ecs(&format!("task-definition/{}*", n.family))],
        ),
    ]
}

fn up(s: &Scope<'_>) -> Vec<Value> {
    let a = s.arns;
    let mut st = up_storage(s);
    st.extend(up_iam(s));
    st.extend(up_compute(s));
    st.extend(schedule_read(s));
    st.extend(driver::driver_up(s));
    if s.queue_mode() {
        st.extend(queue::up_queue(s));
    }
    if s.job.managed_instances() {
        st.extend(instances::up_instances(s));
    }
    if let Some((bucket, _)) = &s.job.ecs.queue.s3_trigger {
        st.push(allow(
            "UpTrigger",
            &[
                "s3:GetBucketLocation",
                "s3:GetBucketNotification",
                "s3:PutBucketNotification",
            ],
            vec![a.s3(bucket, None)],
        ));
    }
    st
}

fn run(s: &Scope<'_>) -> Vec<Value> {
    let (n, a) = (s.names, s.arns);
    let tasks = s.ecs(&format!("task/{}/*", n.cluster));
    let mut st = vec![
        allow_if(
            "RunTasks",
            &["ecs:RunTask"],
            vec![s.ecs(&format!("task-definition/{}:*", n.family))],
            json!({"ArnEquals": {"ecs:cluster": s.cluster()}}),
        ),
        allow_if(
            "TagTasks",
            &["ecs:TagResource"],
            vec![tasks.clone()],
            json!({"StringEquals": {"ecs:CreateAction": "RunTask"}}),
        ),
        allow(
            "WatchTasks",
            &["ecs:DescribeTasks", "ecs:StopTask"],
            vec![tasks],
        ),
        s.pass_roles("PassTheJobRoles"),
        allow(
            "ReadTaskLogs",
            &["logs:GetLogEvents"],
            vec![format!("{}:log-stream:*", s.log_group())],
        ),
    ];
    st.extend(s.job_prefix());
    if let Some(topic) = s.job.notify.as_ref().and_then(|n| n.sns_topic.clone()) {
        st.push(allow("NotifyTheTopic", &["sns:Publish"], vec![topic]));
    }
    for (i, (bucket, prefix)) in s.job.ecs.inputs.iter().enumerate() {
        st.push(allow_if(
            &format!("ListInput{i}"),
            &["s3:ListBucket"],
            vec![a.s3(bucket, None)],
            json!({"StringLike": {"s3:prefix": [format!("{prefix}*")]}}),
        ));
    }
    // The keep tags on the images a run or a schedule needs (image::keep): tag, check the
    // repository's lifecycle policy keeps them, untag when the run ends or the schedule goes.
    if let Some(repo) = &n.repository {
        st.push(allow(
            "EcrToken",
            &["ecr:GetAuthorizationToken"],
            vec!["*".into()],
        ));
        st.push(allow(
            "KeepTheImagesInUse",
            &[
                "ecr:BatchGetImage",
                "ecr:PutImage",
                "ecr:GetLifecyclePolicy",
                "ecr:PutLifecyclePolicy",
                "ecr:BatchDeleteImage",
            ],
            vec![a.regional("ecr", &format!("repository/{repo}"))],
        ));
    }
    if s.queue_mode() {
        st.push(allow(
            "QueueTheTasks",
            &[
                "sqs:SendMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
            ],
            s.queues(),
        ));
        // Starts the workers when the work is sent, and stops them when it is done.
        st.push(allow(
            "SizeWorkers",
            &["ecs:DescribeServices", "ecs:UpdateService"],
            vec![s.service()],
        ));
        // How the workers came up (ListTasks names no task: "*", narrowed to the cluster).
        st.push(allow_if(
            "SeeWorkersStart",
            &["ecs:ListTasks"],
            vec!["*".into()],
            json!({"ArnEquals": {"ecs:cluster": s.cluster()}}),
        ));
    }
    st.extend(driver::driver_run(s));
    st.extend(driver::read_quotas(s));
    st
}

/// `down`'s running tasks, cluster, task definitions and security group.
fn down_compute(s: &Scope<'_>) -> Vec<Value> {
    let (n, a) = (s.names, s.arns);
    vec![
        allow_if(
            "FindRunningTasks",
            &["ecs:ListTasks"],
            vec!["*".into()],
            json!({"ArnEquals": {"ecs:cluster": s.cluster()}}),
        ),
        allow(
            "StopRunningTasks",
            &["ecs:DescribeTasks", "ecs:StopTask"],
            vec![s.ecs(&format!("task/{}/*", n.cluster))],
        ),
        allow(
            "DownCluster",
            &["ecs:DescribeClusters", "ecs:DeleteCluster"],
            vec![s.cluster()],
        ),
        allow(
            "DownTaskDefinitions",
            &[
                "ecs:ListTaskDefinitions",
                "ecs:DescribeTaskDefinition",
                "ecs:DeregisterTaskDefinition",
            ],
            vec!["*".into()],
        ),
        describe_network(),
        allow_if(
            "DeleteTheSecurityGroup",
            &["ec2:DeleteSecurityGroup"],
            vec![a.regional("ec2", "security-group/*")],
            json!({"StringEquals": {"aws:ResourceTag/jobrun:job": s.job.name}}),
        ),
    ]
}

/// `down`'s roles, log group, bucket and repository.
fn down_storage(s: &Scope<'_>) -> Vec<Value> {
    let (n, a) = (s.names, s.arns);
    let mut st = vec![
        allow("DownRoles", DELETE_ROLES, s.roles()),
        allow(
            "DownLogGroup",
            &[
                "logs:ListTagsLogGroup",
                "logs:ListTagsForResource",
                "logs:DeleteLogGroup",
            ],
            vec![s.log_group(), format!("{}:*", s.log_group())],
        ),
        s.describe_log_groups(),
        allow(
            "DownBucket",
            &[
                "s3:ListBucket",
                "s3:GetBucketTagging",
                "s3:DeleteBucket",
                "s3:DeleteObject",
            ],
            vec![a.s3(&n.bucket, None), a.s3(&n.bucket, Some("*"))],
        ),
    ];
    if let Some(repo) = &n.repository {
        st.push(allow(
            "DownRepository",
            &[
                "ecr:DescribeRepositories",
                "ecr:ListTagsForResource",
                "ecr:DeleteRepository",
            ],
            vec![a.regional("ecr", &format!("repository/{repo}"))],
        ));
    }
    st
}

fn down(s: &Scope<'_>) -> Vec<Value> {
    let a = s.arns;
    let mut st = down_compute(s);
    st.extend(down_storage(s));
    st.extend(queue::down_queue(s));
    if s.job.managed_instances() {
        st.extend(instances::down_instances(s));
    }
    st.extend(driver::driver_down(s));
    st.extend(schedule_teardown(s));
    if let Some((bucket, _)) = &s.job.ecs.queue.s3_trigger {
        st.push(allow(
            "DownTrigger",
            &["s3:GetBucketNotification", "s3:PutBucketNotification"],
            vec![a.s3(bucket, None)],
        ));
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(job: &Job, needs: &[Needs]) -> Value {
        let arns = Arns::new(None, "us-east-1", "123456789012");
        let names = Names::new(job, &arns.account, &arns.region);
        policy(job, &names, &arns, needs)
    }

    #[test]
    fn every_action_named_and_roles_passed_only_to_ecs_tasks() {
        let mut job = crate::config::ecs_job_for_tests("wc");
        let plain = doc(&job, &Needs::ALL).to_string();
        assert!(!plain.contains("capacity-provider/") && !plain.contains("ecsInstanceRole"));
        job.resources.gpu = 1;
        let d = doc(&job, &Needs::ALL);
        assert!(d.to_string().contains("capacity-provider/jobrun-wc-spot"));
        for st in d["Statement"].as_array().unwrap() {
            for a in st["Action"].as_array().unwrap() {
                let a = a.as_str().unwrap();
                assert!(a.contains(':') && !a.contains('*'), "{a}");
            }
            let actions = st["Action"].to_string();
            if actions.contains("iam:PassRole") {
                let to = &st["Condition"]["StringEquals"]["iam:PassedToService"];
                let resource = st["Resource"].to_string();
                let wanted = if resource.contains("-scheduler") {
                    "scheduler.amazonaws.com"
                } else if resource.contains("role/ecsInstanceRole-") {
                    "ec2.amazonaws.com"
                } else if resource.contains("-instances\"") {
                    "ecs.amazonaws.com"
                } else {
                    "ecs-tasks.amazonaws.com"
                };
                assert_eq!(to, wanted);
            }
        }
        let text = d.to_string();
        assert!(text.contains("arn:aws:iam::123456789012:role/jobrun-wc-task"));
        assert!(text.contains("arn:aws:ecs:us-east-1:123456789012:cluster/jobrun-wc"));
        // Sids are unique, though the groups share statements.
        let sids: Vec<_> = d["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["Sid"])
            .collect();
        let unique: std::collections::HashSet<_> = sids.iter().map(|s| s.to_string()).collect();
        assert_eq!(sids.len(), unique.len());
    }

    /// A run writes only its records, its driver's desired count, and the keep tag (and the lifecycle rule that honours
    /// it) that holds its image in the job's own repository until it ends.
    #[test]
    fn run_alone_cannot_make_or_delete_anything() {
        let job = crate::config::ecs_job_for_tests("wc");
        let d = doc(&job, &[Needs::Run]);
        let keeps = [
            "ecr:PutImage",
            "ecr:PutLifecyclePolicy",
            "ecr:BatchDeleteImage",
        ];
        for st in d["Statement"].as_array().unwrap() {
            for a in st["Action"].as_array().unwrap() {
                let a = a.as_str().unwrap();
                let op = a.split(':').nth(1).unwrap();
                let makes = [
                    "Create",
                    "Delete",
                    "Deregister",
                    "Put",
                    "Update",
                    "BatchDelete",
                ]
                .iter()
                .any(|w| op.starts_with(w));
                if keeps.contains(&a) {
                    let resources = st["Resource"].as_array().unwrap();
                    assert!(
                        resources.len() == 1
                            && resources[0]
                                .as_str()
                                .unwrap()
                                .ends_with(":repository/jobrun/wc"),
                        "{a} on the job's repository only: {st}"
                    );
                    continue;
                }
                if a == "ecs:UpdateService" {
                    // The desired count of the job's driver: 1 at submit, 0 by the driver.
                    assert_eq!(
                        st["Resource"],
                        json!([
                            "arn:aws:ecs:us-east-1:123456789012:service/jobrun-wc/jobrun-wc-driver"
                        ]),
                        "{st}"
                    );
                    continue;
                }
                assert!(!makes || op == "DeleteObject" || op == "PutObject", "{a}");
            }
        }
    }
}

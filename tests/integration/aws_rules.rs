//! What real AWS does and moto does not: names AWS refuses, a cluster without Fargate capacity
//! providers, a fresh account's service-linked roles and IAM's eventual consistency, IAM's
//! limits, `down` while tasks still run, S3's notification validation, queues of the old size
//! and IAM itself. Where moto cannot behave like AWS, the proxy (tests/moto/aws_proxy.py)
//! answers AWS's exact error the first times, and the test checks the retry or the message;
//! IAM is enforced by a moto of the test's own (`enforce_iam`).

use crate::ecs::{ecs, pushed_job};
use crate::harness::Test;
use crate::infra::role_policy;
use crate::queue::{Agent, COMMAND, outputs, queue_job, watch_json};
use crate::services::{self, Service};
use serde_json::{Value, json};

fn change<'a>(report: &'a Value, resource: &str) -> &'a Value {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["resource"] == resource)
        .unwrap_or_else(|| panic!("no {resource} in {report}"))
}

fn iam(moto: &Service, params: &[(&str, &str)]) -> String {
    let mut all = vec![("Version", "2010-05-08")];
    all.extend_from_slice(params);
    services::query_call(moto, "iam", &all).unwrap_or_else(|e| panic!("{params:?}: {e:?}"))
}

fn xml_field(xml: &str, field: &str) -> String {
    xml.split(&format!("<{field}>"))
        .nth(1)
        .and_then(|s| s.split(&format!("</{field}>")).next())
        .unwrap_or_else(|| panic!("no {field} in {xml}"))
        .to_string()
}

fn s3_put(moto: &Service, path: &str, body: &str) {
    ureq::put(&format!("{}/{path}", moto.url()))
        .set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
        .send_string(body)
        .unwrap();
}

#[test]
fn names_aws_would_refuse_are_one_error_before_any_call() {
    let moto = services::recording_moto();
    let long = "x".repeat(41);
    let cases: Vec<(&str, &str, &str)> = vec![
        ("etl-", "", "job.name `etl-`"),
        ("a_", "", "job.name `a_`"),
        ("a--b", "", "job.name `a--b`"),
        ("Wc", "", "job.name `Wc`"),
        ("a.b", "", "job.name `a.b`"),
        (&long, "", "must be 1-40 characters"),
        ("wc", "[ecs]\ncluster = \"shared.cluster\"\n", "ecs.cluster"),
        ("wc", "[ecs]\nbucket = \"My_Bucket\"\n", "S3 bucket names"),
        (
            "wc",
            "[ecr]\nrepository_prefix = \"Team\"\n",
            "ECR repository names",
        ),
    ];
    for (name, extra, needle) in cases {
        let t = Test::new().envs(services::moto_env_for(&moto));
        t.write("Dockerfile", "FROM scratch\n");
        t.write(
            "jobrun.toml",
            &format!("[job]\nname = \"{name}\"\ntarget = \"ecs\"\n{extra}"),
        );
        moto.restart_recording();
        for args in [
            &["up", "--dry-run"][..],
            &["iam-policy"],
            &["down", "--yes"],
        ] {
            t.run(args).assert_error(2, needle);
        }
        assert_eq!(moto.operations(), Vec::<String>::new(), "{name}: no call");
    }
}

#[test]
fn a_cluster_without_fargate_providers_gets_its_tasks_by_launch_type() {
    let moto = services::moto();
    let cluster = format!("plain-{}", std::process::id());
    ecs(moto, "CreateCluster", json!({"clusterName": cluster}));
    let t = pushed_job(moto, &format!("[ecs]\ncluster = \"{cluster}\"\n"));

    let plan = t.run(&["up", "--dry-run", "-o", "json"]);
    assert_eq!(plan.status, 0, "{}", plan.stderr);
    let c = change(&plan.json(), "ecs cluster").clone();
    assert_eq!(c["action"], "use");
    let why = c["why"].as_str().unwrap();
    assert!(why.contains("no Fargate capacity providers"), "{why}");
    assert!(why.contains("launch type FARGATE"), "{why}");

    assert_eq!(t.run(&["up"]).status, 0);
    let r = t.run(&["submit", "--configs", "2", "-o", "json"]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    let run = t.only_run();
    assert_eq!(t.status(&run)["succeeded"], 2);
    let listed = ecs(
        moto,
        "ListTasks",
        json!({"cluster": cluster, "startedBy": run, "desiredStatus": "STOPPED"}),
    );
    let tasks = ecs(
        moto,
        "DescribeTasks",
        json!({"cluster": cluster, "tasks": listed["taskArns"]}),
    );
    let tasks = tasks["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    for task in tasks {
        // No capacity provider strategy (which AWS refuses on this cluster): the launch type.
        assert_eq!(task["launchType"], "FARGATE", "{task}");
        assert!(task["capacityProviderName"].is_null(), "{task}");
    }
}

#[test]
fn a_fresh_account_gets_the_service_linked_role_and_up_waits_while_iam_settles() {
    let moto = services::recording_moto();
    let proxy = services::scripted_proxy(&moto);
    let t = pushed_job(&proxy, "");
    // What AWS answers while a role made seconds ago cannot be assumed yet.
    proxy.fault(json!([
        {"service": "ecs", "operation": "CreateCluster", "times": 2,
         "code": "InvalidParameterException",
         "message": "Unable to assume the service linked role. Please verify that the ECS service linked role exists."},
        {"service": "ecs", "operation": "RegisterTaskDefinition", "times": 2,
         "code": "ClientException", "message": "Role is not valid"},
    ]));
    moto.restart_recording();
    let up = t.run(&["up", "-o", "json"]);
    assert_eq!(up.status, 0, "{}", up.stderr);
    let up = up.json();
    assert_eq!(change(&up, "service-linked role")["action"], "create");
    assert!(
        moto.writes()
            .iter()
            .any(|w| w.ends_with("CreateServiceLinkedRole")),
        "{:?}",
        moto.writes()
    );
    assert_eq!(proxy.fired("ecs:CreateCluster"), 2);
    assert_eq!(proxy.fired("ecs:RegisterTaskDefinition"), 2);
    assert!(up["outputs"]["iam_changed_at"].is_string(), "{up}");

    // A second `up` finds the role (it is account-wide and never deleted) and writes nothing.
    moto.restart_recording();
    let again = t.run(&["up", "-o", "json"]);
    assert_eq!(again.status, 0, "{}", again.stderr);
    assert_eq!(
        change(&again.json(), "service-linked role")["action"],
        "unchanged"
    );
    assert_eq!(moto.writes(), Vec::<String>::new());

    // With IAM unchanged, the same answer is an error at once, not waited out.
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml
            .replace("cpu = 0.25", "cpu = 0.5")
            .replace("512MB", "1GB"),
    );
    proxy.fault(
        json!({"service": "ecs", "operation": "RegisterTaskDefinition",
        "code": "ClientException", "message": "Role is not valid"}),
    );
    let r = t.run(&["up"]);
    assert_ne!(r.status, 0);
    assert!(r.stderr.contains("ClientException"), "{}", r.stderr);
    assert_eq!(proxy.fired("ecs:RegisterTaskDefinition"), 3);
}

#[test]
fn an_inline_policy_over_iams_limit_is_refused_in_the_plan() {
    let moto = services::recording_moto();
    let statements: Vec<String> = (0..80)
        .map(|i| format!("{{ actions = [\"s3:GetObject\"], resources = [\"arn:aws:s3:::some-rather-long-bucket-name-{i}/with/a/long/prefix/*\"] }}"))
        .collect();
    let t = pushed_job(
        &moto,
        &format!("[ecs]\ntask_policy = [{}]\n", statements.join(", ")),
    );
    moto.restart_recording();
    t.run(&["up", "--dry-run"]).assert_error(2, "would be");
    let r = t.run(&["up"]);
    r.assert_error(2, "IAM allows 10240 per role");
    assert!(
        r.stderr.contains("the task role") || r.stderr.contains("-task"),
        "{}",
        r.stderr
    );
    assert!(
        !moto.writes().iter().any(|w| w.contains("Role")),
        "no role written: {:?}",
        moto.writes()
    );
}

#[test]
fn down_stops_the_jobs_running_tasks_and_waits_for_aws_to_let_go() {
    let moto = services::own_moto();
    let proxy = services::scripted_proxy(&moto);
    let t = pushed_job(&proxy, "");
    assert_eq!(t.run(&["up"]).status, 0);
    let hold = json!({"fake": {"hold": true}});
    let run = t.submit_detached(&[hold.clone(), hold]);
    let cluster = format!("jobrun-{}", t.name);
    t.wait_for(&run, "two running tasks", |s| s["running"] == 2);

    // AWS keeps the cluster while tasks stop, and the security group while their network
    // interfaces go away.
    proxy.fault(json!([
        {"service": "ecs", "operation": "DeleteCluster", "times": 2,
         "code": "ClusterContainsTasksException",
         "message": "The Cluster cannot be deleted while Tasks are active."},
        {"service": "ec2", "operation": "DeleteSecurityGroup", "times": 2,
         "code": "DependencyViolation",
         "message": "resource sg-1 has a dependent object"},
    ]));
    let down = t.run(&["down", "--yes", "-o", "json"]);
    assert_eq!(down.status, 0, "{}", down.stderr);
    let down = down.json();
    let tasks = change(&down, "ecs tasks");
    assert_eq!(tasks["action"], "delete");
    assert!(
        tasks["why"]
            .as_str()
            .unwrap()
            .starts_with("2 still running"),
        "{tasks}"
    );
    assert_eq!(proxy.fired("ecs:DeleteCluster"), 2);
    assert_eq!(proxy.fired("ec2:DeleteSecurityGroup"), 2);
    let running = ecs(
        &moto,
        "ListTasks",
        json!({"cluster": cluster, "desiredStatus": "RUNNING"}),
    );
    assert_eq!(running["taskArns"], json!([]), "every task was stopped");
}

#[test]
fn s3_trigger_validation_is_retried_and_a_bucket_of_another_region_refused() {
    let moto = services::moto();
    let proxy = services::scripted_proxy(moto);
    let bucket = format!("jrt-trigger-{}", std::process::id());
    s3_put(moto, &bucket, "");
    // S3 tests the queue with an event right after its policy is set; until SQS has the policy,
    // it answers InvalidArgument.
    proxy.fault(
        json!({"service": "s3", "operation": "PutBucketNotificationConfiguration",
        "times": 2, "code": "InvalidArgument",
        "message": "Unable to validate the following destination configurations"}),
    );
    let t = queue_job(
        &proxy,
        COMMAND,
        &format!("s3_trigger = \"s3://{bucket}/incoming/\"\n"),
    );
    assert_eq!(proxy.fired("s3:PutBucketNotificationConfiguration"), 2);
    let xml = ureq::get(&format!("{}/{bucket}", moto.url()))
        .query("notification", "")
        .set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(xml.contains(&format!("jobrun-{}", t.name)), "{xml}");

    // A bucket in eu-west-1 cannot notify the job's queue in us-east-1.
    let far = format!("jrt-far-{}", std::process::id());
    s3_put(
        moto,
        &far,
        "<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>",
    );
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace(&format!("s3://{bucket}/"), &format!("s3://{far}/")),
    );
    t.run(&["up", "--dry-run"])
        .assert_error(2, "is in eu-west-1, the job's queue in us-east-1");
}

#[test]
fn a_queue_of_the_old_256_kib_default_is_raised_to_what_dispatch_sends() {
    let moto = services::moto();
    let t = queue_job(moto, COMMAND, "");
    let url = outputs(&t)["queue"]["queue_url"]
        .as_str()
        .unwrap()
        .to_string();
    let size = |moto: &Service| {
        let out = crate::queue::sqs(
            moto,
            "GetQueueAttributes",
            json!({"QueueUrl": url, "AttributeNames": ["MaximumMessageSize"]}),
        )
        .unwrap();
        out["Attributes"]["MaximumMessageSize"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(size(moto), "1048576");
    crate::queue::sqs(
        moto,
        "SetQueueAttributes",
        json!({"QueueUrl": url, "Attributes": {"MaximumMessageSize": "262144"}}),
    )
    .unwrap();
    let plan = t.run(&["up", "--dry-run", "-o", "json"]);
    let plan = plan.json();
    let q = change(&plan, "sqs queue");
    assert_eq!(q["action"], "update");
    assert!(
        q["why"].as_str().unwrap().contains("MaximumMessageSize"),
        "{q}"
    );
    assert_eq!(t.run(&["up"]).status, 0);
    assert_eq!(size(moto), "1048576");
}

/// Where moto names a call's action otherwise than IAM does: moto/s3/responses.py's ACTION_MAP
/// (HeadBucket is `s3:ListBucket` in IAM, `s3:HeadBucket` in moto), and SQS's batch calls, which
/// IAM authorizes as their single forms and moto by their own names.
const MOTO_SPELLING: [(&str, &str); 5] = [
    ("s3:ListBucket", "s3:HeadBucket"),
    ("s3:PutBucketPublicAccessBlock", "s3:PutPublicAccessBlock"),
    ("sqs:SendMessage", "sqs:SendMessageBatch"),
    ("sqs:DeleteMessage", "sqs:DeleteMessageBatch"),
    (
        "sqs:ChangeMessageVisibility",
        "sqs:ChangeMessageVisibilityBatch",
    ),
];

/// The statements as moto can check them: it evaluates the resource of S3 calls, of IAM and
/// SQS calls only when the role or queue exists already, and of every other call `*`; so
/// outside S3 the resource is widened to `*`. The actions stay exactly as printed (plus moto's
/// spelling of two), so a missing one fails.
fn as_moto_checks(mut doc: Value) -> Value {
    for st in doc["Statement"].as_array_mut().unwrap() {
        let mut actions: Vec<String> = serde_json::from_value(st["Action"].clone()).unwrap();
        for (iam, moto) in MOTO_SPELLING {
            if actions.iter().any(|a| a == iam) {
                actions.push(moto.to_string());
            }
        }
        st["Action"] = json!(actions);
        let scoped = actions.iter().all(|a| a.starts_with("s3:"));
        if !scoped {
            st["Resource"] = json!("*");
        }
        st.as_object_mut().unwrap().remove("Condition");
    }
    doc
}

/// A moto IAM user holding `policy`, and its access key.
fn user_with(moto: &Service, name: &str, policy: &Value) -> (String, String) {
    iam(moto, &[("Action", "CreateUser"), ("UserName", name)]);
    iam(
        moto,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "jobrun"),
            ("PolicyDocument", &policy.to_string()),
        ],
    );
    let key = iam(moto, &[("Action", "CreateAccessKey"), ("UserName", name)]);
    (
        xml_field(&key, "AccessKeyId"),
        xml_field(&key, "SecretAccessKey"),
    )
}

/// Under enforced IAM, a user holding what `jobrun iam-policy` prints runs push, up, a run and
/// down of a job with `extra` in its jobrun.toml; a user with only `--for run` cannot `up`.
fn the_printed_policy_suffices(extra: &str, submit: &[&str]) {
    let moto = services::own_moto();
    let t = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n{extra}",
        services::plain_registry().host()
    ))
    .envs(services::moto_env_for(&moto));
    let printed = t.run(&["iam-policy"]);
    assert_eq!(printed.status, 0, "{}", printed.stderr);
    let all: Value = serde_json::from_str(&printed.stdout).unwrap();
    let run_only: Value =
        serde_json::from_str(&t.run(&["iam-policy", "--for", "run"]).stdout).unwrap();
    let count = |d: &Value| d["Statement"].as_array().unwrap().len();
    assert!(count(&run_only) < count(&all));
    let (id, secret) = user_with(&moto, "operator", &as_moto_checks(all));
    let (run_id, run_secret) = user_with(&moto, "runner", &as_moto_checks(run_only));

    moto.enforce_iam(true);
    let as_user = |t: Test, id: &str, secret: &str| {
        t.env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
    };
    // Enforced: a user with only what `run` needs cannot `up`.
    let t = as_user(t, &run_id, &run_secret);
    let denied = t.run(&["up", "--dry-run"]);
    assert_ne!(denied.status, 0, "{}", denied.stdout);
    let t = as_user(t, &id, &secret);
    for args in [
        &["build", "--push"][..],
        &["up"],
        submit,
        &["status"],
        &["down", "--yes"],
    ] {
        let r = t.run(args);
        assert_eq!(
            r.status, 0,
            "{args:?} as operator:\n{}\n{}",
            r.stdout, r.stderr
        );
    }
    moto.enforce_iam(false);
}

#[test]
fn what_iam_policy_prints_is_enough_for_push_up_submit_watch_and_down() {
    the_printed_policy_suffices("", &["submit", "--configs", "2"]);
}

#[test]
fn what_iam_policy_prints_is_enough_in_queue_mode_too() {
    let queue = "[ecs]\nmode = \"queue\"\n";
    the_printed_policy_suffices(queue, &["submit", "--configs", "2", "--detach"]);
}

#[test]
fn the_agent_works_under_its_task_role_and_never_reads_a_missing_key() {
    let moto = services::own_moto();
    let proxy = services::scripted_proxy(&moto);
    let t = queue_job(&proxy, COMMAND, "");
    let run = t.submit_detached(&[
        json!({"sleep": 0.1, "exit": 0}),
        json!({"sleep": 0.1, "exit": 0}),
    ]);
    // Under a role that may list only its prefix, S3 answers a missing key with 403, not 404.
    proxy.fault(json!([
        {"service": "s3", "operation": "HeadObject", "times": 1000, "status": 403,
         "code": "AccessDenied", "message": "Access Denied"},
        {"service": "s3", "operation": "GetObject", "times": 1000, "status": 403,
         "code": "AccessDenied", "message": "Access Denied", "match": "/cancel"},
    ]));

    // The task role's own policy, on a role the test may assume (moto cannot assume a role
    // trusted by a service principal).
    let job = &t.name;
    let policy = as_moto_checks(role_policy(&moto, &format!("jobrun-{job}-task")));
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]});
    iam(
        &moto,
        &[
            ("Action", "CreateRole"),
            ("RoleName", "agent-under-test"),
            ("AssumeRolePolicyDocument", &trust.to_string()),
        ],
    );
    iam(
        &moto,
        &[
            ("Action", "PutRolePolicy"),
            ("RoleName", "agent-under-test"),
            ("PolicyName", "jobrun"),
            ("PolicyDocument", &policy.to_string()),
        ],
    );
    let creds = services::query_call(
        &moto,
        "sts",
        &[
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", "arn:aws:iam::123456789012:role/agent-under-test"),
            ("RoleSessionName", "agent"),
        ],
    )
    .unwrap();
    moto.enforce_iam(true);
    let agent_env = t
        .env("AWS_ACCESS_KEY_ID", &xml_field(&creds, "AccessKeyId"))
        .env(
            "AWS_SECRET_ACCESS_KEY",
            &xml_field(&creds, "SecretAccessKey"),
        )
        .env("AWS_SESSION_TOKEN", &xml_field(&creds, "SessionToken"));
    // Enforced: the role may not do what `up` does.
    assert_ne!(agent_env.run(&["up", "--dry-run"]).status, 0);
    let (code, log) = Agent::start(&agent_env, &[]).wait();
    moto.enforce_iam(false);
    assert_eq!(code, 0, "{log}");
    assert_eq!(log.matches(": starting").count(), 2, "{log}");
    assert_eq!(proxy.fired("s3:HeadObject"), 0, "{log}");
    assert_eq!(proxy.fired("s3:GetObject"), 0, "{log}");
    let t = agent_env
        .unset("AWS_SESSION_TOKEN")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    let (code, status) = watch_json(&t, &run);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["succeeded"], 2);
}

/// IAM's policy simulator answering every statement with `decision` for `action` (moto lacks
/// the simulator; the proxy answers for it).
fn simulator_says(proxy: &Service, action: &str, decision: &str) {
    let answer = format!(
        "<SimulatePrincipalPolicyResponse><SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults><member><EvalActionName>{action}</EvalActionName><EvalResourceName>*</EvalResourceName><EvalDecision>{decision}</EvalDecision></member></EvaluationResults></SimulatePrincipalPolicyResult></SimulatePrincipalPolicyResponse>"
    );
    proxy.fault(
        json!({"service": "iam", "operation": "SimulatePrincipalPolicy", "times": 100,
        "status": 200, "code": "Answer", "body": answer}),
    );
}

#[test]
fn up_lists_the_permissions_the_caller_lacks_before_it_makes_anything() {
    let moto = services::recording_moto();
    let proxy = services::scripted_proxy(&moto);
    let t = pushed_job(&proxy, "");
    simulator_says(&proxy, "ecs:CreateCluster", "implicitDeny");
    moto.restart_recording();
    t.run(&["up"]).assert_error(
        2,
        "the caller may not do what `up` needs: ecs:CreateCluster on any resource",
    );
    assert_eq!(moto.writes(), Vec::<String>::new(), "nothing was made");
    assert!(
        proxy.fired("iam:SimulatePrincipalPolicy") > 10,
        "each statement asked"
    );

    // Allowed: `up` goes on.
    ureq::post(&format!("{}/__proxy/reset", proxy.url()))
        .call()
        .unwrap();
    simulator_says(&proxy, "ecs:CreateCluster", "allowed");
    let up = t.run(&["up"]);
    assert_eq!(up.status, 0, "{}", up.stderr);
}

/// `iam-policy --for schedule` alone is enough for `schedule add` and `schedule list` once the
/// job is up: the dispatcher image's push and the schedule's files in the bucket included.
#[test]
fn what_iam_policy_for_schedule_prints_is_enough_to_add_a_schedule() {
    let moto = services::own_moto();
    let t = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n",
        services::plain_registry().host()
    ))
    .envs(services::moto_env_for(&moto))
    .jobrun(crate::harness::stripped_jobrun());
    let doc = |args: &[&str]| -> Value { serde_json::from_str(&t.run(args).stdout).unwrap() };
    let (id, secret) = user_with(&moto, "operator", &as_moto_checks(doc(&["iam-policy"])));
    let only = as_moto_checks(doc(&["iam-policy", "--for", "schedule"]));
    let (sid, ssecret) = user_with(&moto, "scheduler", &only);
    moto.enforce_iam(true);
    let t = t
        .env("AWS_ACCESS_KEY_ID", &id)
        .env("AWS_SECRET_ACCESS_KEY", &secret);
    for args in [&["build", "--push"][..], &["up"]] {
        let r = t.run(args);
        assert_eq!(r.status, 0, "{args:?} as operator: {}", r.stderr);
    }
    let t = t
        .env("AWS_ACCESS_KEY_ID", &sid)
        .env("AWS_SECRET_ACCESS_KEY", &ssecret);
    for args in [crate::schedules::ADD_WEEKLY, &["schedule", "list"]] {
        let r = t.run(args);
        assert_eq!(
            r.status, 0,
            "{args:?} with --for schedule only:\n{}\n{}",
            r.stdout, r.stderr
        );
    }
    moto.enforce_iam(false);
}

/// A profile-only machine: `ml` has credentials, `nocreds` (what the shell's AWS_PROFILE names)
/// has none. Returns the folder holding the two files; `on` puts a command on it.
fn profiles() -> tempfile::TempDir {
    crate::harness::aws_files(
        "[profile ml]\nregion = us-east-1\n[profile nocreds]\nregion = us-east-1\n",
    )
}

fn on(mut c: std::process::Command, dir: &std::path::Path) -> Value {
    c.env("AWS_CONFIG_FILE", dir.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"))
        .env("AWS_PROFILE", "nocreds")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    json!({"status": out.status.code(), "stdout": stdout, "stderr": stderr})
}

fn last_event(r: &Value) -> Value {
    let stdout = r["stdout"].as_str().unwrap();
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap()
}

/// Item 10: one rule picks the identity for all a command does — `--profile`, then the job's
/// `[aws] profile` (or the one its run recorded), then AWS_PROFILE — so a shell's AWS_PROFILE
/// never takes over half way (the run's watch and the command used to choose differently), and
/// `watch` takes `--profile` like the commands that make things.
#[test]
fn one_rule_picks_the_profile_for_a_command_and_its_run() {
    let moto = services::moto();
    let t = crate::ecs::fargate_job(moto, "");
    let dir = profiles();

    // Submitted with the environment's keys (no profile recorded), watched from another
    // machine that has only the `ml` profile: --profile decides, for the fetch and the watch.
    let run = t.submit_detached(&[json!({"a": 1})]);
    let other = tempfile::tempdir().unwrap();
    let mut watch = t.command(&["watch", &run, "-o", "json"]);
    watch.env("JOBRUN_STATE_DIR", other.path());
    let r = on(watch, dir.path());
    assert_eq!(
        r["status"], 2,
        "AWS_PROFILE=nocreds decides when nothing else says: {r}"
    );
    assert!(
        r["stderr"].as_str().unwrap().contains("no AWS credentials"),
        "{r}"
    );
    let mut watch = t.command(&["watch", &run, "--profile", "ml", "-o", "json"]);
    watch.env("JOBRUN_STATE_DIR", other.path());
    let r = on(watch, dir.path());
    assert_eq!(r["status"], 0, "{r}");
    assert_eq!(last_event(&r)["succeeded"], 1, "{r}");

    // The job names its profile: submit and the watch it runs both act as `ml`, whatever
    // AWS_PROFILE says; the run records it, so a later status of it needs no flag.
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write("jobrun.toml", &format!("{toml}\n[aws]\nprofile = \"ml\"\n"));
    let r = on(
        t.command(&["submit", "--configs", "2", "-o", "json"]),
        dir.path(),
    );
    assert_eq!(r["status"], 0, "{r}");
    let summary = last_event(&r);
    assert_eq!(summary["succeeded"], 2, "{r}");
    let run = summary["run_id"].as_str().unwrap().to_string();
    assert_eq!(t.record(&run)["ecs"]["profile"], "ml");
}

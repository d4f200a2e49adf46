//! `jobrun up` / `jobrun down` against moto: plan, converge, no write on a second run, one new
//! revision per change, a failure half way completed by the next run, down removing exactly
//! what jobrun made. Calls are counted from moto's own request recording, not from jobrun.

use crate::harness::Test;
use crate::services::{self, Service};
use serde_json::{Value, json};

fn ecs_job(moto: &Service, extra: &str) -> Test {
    let reg = services::plain_registry();
    Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n{extra}",
        reg.host()
    ))
    .envs(services::moto_env_for(moto))
}

fn actions(report: &Value) -> Vec<(String, String)> {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["resource"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn action_of(report: &Value, resource: &str) -> String {
    actions(report)
        .into_iter()
        .find(|(r, _)| r == resource)
        .map(|(_, a)| a)
        .unwrap_or_else(|| panic!("no {resource} in {report}"))
}

pub fn role_policy(moto: &Service, role: &str) -> Value {
    let xml = services::query_call(
        moto,
        "iam",
        &[
            ("Action", "GetRolePolicy"),
            ("Version", "2010-05-08"),
            ("RoleName", role),
            ("PolicyName", "jobrun"),
        ],
    )
    .unwrap();
    let doc = xml
        .split("<PolicyDocument>")
        .nth(1)
        .unwrap()
        .split("</PolicyDocument>")
        .next()
        .unwrap();
    let doc = doc
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    serde_json::from_str(&doc)
        .or_else(|_| serde_json::from_str(&percent_decode(&doc)))
        .unwrap_or_else(|e| panic!("{e}: {doc}"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn task_definition(moto: &Service, arn: &Value) -> Value {
    let out = services::json_call(
        moto,
        "ecs",
        "AmazonEC2ContainerServiceV20141113.DescribeTaskDefinition",
        json!({"taskDefinition": arn}),
    )
    .unwrap();
    out["taskDefinition"].clone()
}

fn cluster_status(moto: &Service, name: &str) -> Option<String> {
    let out = services::json_call(
        moto,
        "ecs",
        "AmazonEC2ContainerServiceV20141113.DescribeClusters",
        json!({"clusters": [name]}),
    )
    .unwrap();
    out["clusters"][0]["status"].as_str().map(str::to_string)
}

#[test]
fn up_converges_and_down_removes_exactly_what_it_made() {
    let moto = services::recording_moto();
    let t = ecs_job(&moto, "");
    let job = t.name.clone();

    // Resources that are not the job's: they must survive `down`.
    services::json_call(
        &moto,
        "ecs",
        "AmazonEC2ContainerServiceV20141113.CreateCluster",
        json!({"clusterName": "unrelated"}),
    )
    .unwrap();
    services::query_call(
        &moto,
        "iam",
        &[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", "unrelated-role"),
            ("AssumeRolePolicyDocument", &services_trust()),
        ],
    )
    .unwrap();
    ureq::put(&format!("{}/unrelated-bucket", moto.url()))
        .set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
        .call()
        .unwrap();

    let b = t.run(&["build", "--push"]);
    assert_eq!(b.status, 0, "{}", b.stderr);

    // The plan on an empty account: everything to create, and not one write call.
    moto.restart_recording();
    let plan = t.run(&["up", "--dry-run", "--output", "json"]);
    assert_eq!(plan.status, 0, "{}", plan.stderr);
    let plan = plan.json();
    for r in [
        "s3 bucket",
        "log group",
        "execution role",
        "task role",
        "security group",
        "ecs cluster",
        "task definition",
    ] {
        assert_eq!(action_of(&plan, r), "create", "{r}");
    }
    assert_eq!(
        moto.writes(),
        Vec::<String>::new(),
        "a dry run writes nothing"
    );

    let up = t.run(&["up", "--output", "json"]);
    assert_eq!(up.status, 0, "{}", up.stderr);
    let up = up.json();
    let td = up["outputs"]["task_definition"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        td.ends_with(&format!("task-definition/jobrun-{job}:1")),
        "{td}"
    );
    assert_eq!(up["outputs"]["cluster"], format!("jobrun-{job}"));
    assert!(
        up["outputs"]["image"]
            .as_str()
            .unwrap()
            .contains("@sha256:"),
        "the image by digest"
    );
    assert_eq!(
        up["outputs"]["subnets"].as_array().unwrap().len(),
        6,
        "the default VPC's subnets"
    );

    // The task definition as ECS has it.
    let d = &task_definition(&moto, &json!(td));
    assert_eq!(d["runtimePlatform"]["cpuArchitecture"], "ARM64");
    assert_eq!(d["requiresCompatibilities"][0], "FARGATE");
    assert_eq!(
        (d["cpu"].as_str().unwrap(), d["memory"].as_str().unwrap()),
        ("256", "512")
    );
    assert_eq!(d["containerDefinitions"][0]["stopTimeout"], 120);
    // No ephemeral storage asked: Fargate's free 20 GiB, not 21 billed ones.
    assert!(d["ephemeralStorage"].is_null(), "{d}");
    assert_eq!(
        d["containerDefinitions"][0]["logConfiguration"]["logDriver"],
        "awslogs"
    );
    assert_eq!(
        d["containerDefinitions"][0]["image"],
        up["outputs"]["image"]
    );

    // Least privilege: named actions only, resources of this job (the ECR token call aside).
    for role in [
        format!("jobrun-{job}-execution"),
        format!("jobrun-{job}-task"),
    ] {
        let doc = role_policy(&moto, &role);
        for st in doc["Statement"].as_array().unwrap() {
            let acts: Vec<String> = match &st["Action"] {
                Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
                v => vec![v.as_str().unwrap().to_string()],
            };
            assert!(acts.iter().all(|a| !a.contains('*')), "{role}: {st}");
            if acts != ["ecr:GetAuthorizationToken"] {
                let res = st["Resource"].to_string();
                assert!(
                    res.contains(&job),
                    "{role}: resources scoped to the job: {st}"
                );
            }
        }
    }

    // A second `up` finds everything as wanted and writes nothing.
    moto.restart_recording();
    let again = t.run(&["up", "--output", "json"]);
    assert_eq!(again.status, 0, "{}", again.stderr);
    let again = again.json();
    assert!(
        actions(&again)
            .iter()
            .all(|(_, a)| a == "unchanged" || a == "use"),
        "{:?}",
        actions(&again)
    );
    assert_eq!(
        moto.writes(),
        Vec::<String>::new(),
        "no write call on a converged account"
    );

    // A changed size registers exactly one new revision and nothing else.
    moto.restart_recording();
    let bigger = t.run(&["up", "--output", "json", "--cpu", "0.5", "--memory", "1GB"]);
    assert_eq!(bigger.status, 0, "{}", bigger.stderr);
    let bigger = bigger.json();
    assert_eq!(action_of(&bigger, "task definition"), "update");
    assert!(
        bigger["outputs"]["task_definition"]
            .as_str()
            .unwrap()
            .ends_with(":2")
    );
    assert_eq!(moto.writes(), ["json:RegisterTaskDefinition"]);

    // What runs leave in the bucket: more objects than one DeleteObjects call takes.
    let bucket = up["outputs"]["bucket"].as_str().unwrap().to_string();
    for i in 0..1003 {
        ureq::put(&format!("{}/{bucket}/jobs/{job}/runs/r/outputs/{i}/a.txt", moto.url()))
            .set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
            .send_string("x")
            .unwrap();
    }

    // What `up` wrote down for submit (kept aside: another machine that ran `up` still has it).
    let aws_json = t.state.path().join("jobs").join(&job).join("aws.json");
    let elsewhere = std::fs::read(&aws_json).unwrap();

    // down: everything of the job goes; the unrelated resources stay.
    moto.restart_recording();
    let down = t.run(&["down", "--yes", "--output", "json"]);
    assert_eq!(down.status, 0, "{}", down.stderr);
    let deletes: Vec<String> = moto
        .writes()
        .into_iter()
        .filter(|op| *op == format!("rest:POST /{bucket}/?delete"))
        .collect();
    assert_eq!(
        deletes.len(),
        2,
        "1,003 objects in two DeleteObjects calls: {deletes:?}"
    );
    let down = down.json();
    for r in [
        "s3 bucket",
        "log group",
        "execution role",
        "task role",
        "security group",
        "ecs cluster",
        "task definition",
        "ecr repository",
    ] {
        assert_eq!(action_of(&down, r), "delete", "{r}");
    }
    assert_ne!(
        cluster_status(&moto, &format!("jobrun-{job}")).as_deref(),
        Some("ACTIVE")
    );
    assert_eq!(
        cluster_status(&moto, "unrelated").as_deref(),
        Some("ACTIVE")
    );
    let role = services::query_call(
        &moto,
        "iam",
        &[
            ("Action", "GetRole"),
            ("Version", "2010-05-08"),
            ("RoleName", &format!("jobrun-{job}-task")),
        ],
    );
    assert!(role.is_err(), "the job's role is gone");
    assert!(
        services::query_call(
            &moto,
            "iam",
            &[
                ("Action", "GetRole"),
                ("Version", "2010-05-08"),
                ("RoleName", "unrelated-role")
            ]
        )
        .is_ok()
    );
    let head = ureq::head(&format!("{}/unrelated-bucket", moto.url()))
        .set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
        .call();
    assert!(head.is_ok(), "the unrelated bucket stays");

    // A submit after down: "run jobrun up", exit 2, nothing written; aws.json no longer claims
    // the site down removed.
    assert!(!aws_json.exists(), "down forgets what up made");
    moto.restart_recording();
    let submit = t.run(&["submit", "--configs", "1"]);
    submit.assert_error(2, "no AWS side yet");
    assert!(
        submit.stderr.contains("hint: run `jobrun up`"),
        "{}",
        submit.stderr
    );
    // The same from a machine whose aws.json still names the deleted bucket: S3's NoSuchBucket
    // is the same advice, not a `--resume` of a run that never existed.
    std::fs::write(&aws_json, &elsewhere).unwrap();
    let submit = t.run(&["submit", "--configs", "1"]);
    submit.assert_error(2, "bucket is gone");
    assert!(
        submit.stderr.contains("hint: run `jobrun up`"),
        "{}",
        submit.stderr
    );
    assert!(!submit.stderr.contains("--resume"), "{}", submit.stderr);
    // Its one attempted write was the run's claim in the bucket, which S3 refused.
    let writes = moto.writes();
    assert!(
        writes.len() == 1 && writes[0].ends_with("/run.json?x-id=PutObject"),
        "{writes:?}"
    );
    assert_eq!(t.run_count(), 0, "no run record was kept");
    std::fs::remove_file(&aws_json).unwrap();

    // Again: nothing left, nothing to do.
    let twice = t.run(&["down", "--yes", "--output", "json"]);
    assert_eq!(twice.status, 0, "{}", twice.stderr);
    assert!(
        actions(&twice.json()).iter().all(|(_, a)| a == "absent"),
        "{}",
        twice.stdout
    );
}

fn services_trust() -> String {
    json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}).to_string()
}

#[test]
fn a_failure_half_way_is_completed_by_the_next_up() {
    let moto = services::recording_moto();
    let t = ecs_job(&moto, "");
    assert_eq!(t.run(&["build", "--push"]).status, 0);
    // ECS is unreachable: everything before the cluster is made, then `up` fails.
    let t = t.env(
        "AWS_ENDPOINT_URL_ECS",
        &format!("http://127.0.0.1:{}", services::free_port()),
    );
    let failed = t.run(&["up"]);
    assert_eq!(failed.status, 3, "{}", failed.stderr);
    assert!(failed.stderr.contains("error:"), "{}", failed.stderr);
    assert!(
        moto.writes().contains(&"query:CreateRole".to_string()),
        "the roles were made before the failure"
    );
    // The next `up` (ECS reachable again) finds what was made and completes the rest.
    let t = t.env("AWS_ENDPOINT_URL_ECS", &moto.url());
    let done = t.run(&["up", "--output", "json"]);
    assert_eq!(done.status, 0, "{}", done.stderr);
    let done = done.json();
    assert_eq!(action_of(&done, "s3 bucket"), "unchanged");
    assert_eq!(action_of(&done, "task role"), "unchanged");
    assert_eq!(action_of(&done, "ecs cluster"), "create");
    assert_eq!(action_of(&done, "task definition"), "create");
}

#[test]
fn bad_input_for_up_makes_no_call() {
    let moto = services::recording_moto();
    let t = ecs_job(&moto, "[ecs]\nsecrets = { DB_PASSWORD = \"hunter2\" }\n");
    t.run(&["up"])
        .assert_error(2, "ecs.secrets.DB_PASSWORD must be a Secrets Manager ARN");
    let t = ecs_job(&moto, "");
    t.run(&["up", "--cpu", "0.25", "--memory", "4GB"])
        .assert_error(2, "not valid with cpu = 0.25");
    t.run(&["up"]).assert_error(2, "no image of job");
    assert_eq!(
        moto.writes(),
        Vec::<String>::new(),
        "bad input makes no write call"
    );
    let no_region = Test::ecs_task("");
    no_region
        .run(&["up", "--dry-run"])
        .assert_error(2, "no AWS region is set");
}

#[test]
fn configured_cluster_is_used_and_kept_and_secrets_are_references() {
    let moto = services::recording_moto();
    services::json_call(
        &moto,
        "ecs",
        "AmazonEC2ContainerServiceV20141113.CreateCluster",
        json!({"clusterName": "shared"}),
    )
    .unwrap();
    let t = ecs_job(
        &moto,
        "[ecs]\ncluster = \"shared\"\nsecrets = { DB = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf\", TOKEN = \"/ml/token\" }\n",
    );
    // More ephemeral storage than Fargate's 20 GiB is asked for explicitly.
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    let toml = toml.replace("[resources]\n", "[resources]\nephemeral_storage = 30\n");
    t.write("jobrun.toml", &toml);
    assert_eq!(t.run(&["build", "--push"]).status, 0);
    let up = t.run(&["up", "--output", "json"]);
    assert_eq!(up.status, 0, "{}", up.stderr);
    let up = up.json();
    assert_eq!(action_of(&up, "ecs cluster"), "use");
    assert_eq!(up["outputs"]["cluster"], "shared");

    let td = task_definition(&moto, &up["outputs"]["task_definition"]);
    assert_eq!(td["ephemeralStorage"]["sizeInGiB"], 30, "{td}");
    let secrets = td["containerDefinitions"][0]["secrets"]
        .as_array()
        .unwrap()
        .clone();
    assert!(secrets.contains(&json!({"name": "DB", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"})));
    assert!(secrets.contains(&json!({"name": "TOKEN", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/ml/token"})));
    let exec = role_policy(&moto, &format!("jobrun-{}-execution", t.name)).to_string();
    assert!(
        exec.contains("secret:db-AbCdEf") && exec.contains("parameter/ml/token"),
        "{exec}"
    );

    let down = t.run(&["down", "--yes", "--output", "json"]);
    assert_eq!(down.status, 0, "{}", down.stderr);
    assert_eq!(action_of(&down.json(), "ecs cluster"), "keep");
    assert_eq!(cluster_status(&moto, "shared").as_deref(), Some("ACTIVE"));
}

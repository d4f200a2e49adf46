//! Queue mode against moto's SQS, S3, ECS and Application Auto Scaling: `up`/`down` of the
//! queue side, `jobrun agent` as a process and inside a container on the local engine, the
//! dead-letter path and `retry --failed`, SIGTERM mid-task, the visibility heartbeat, idle exit,
//! S3-triggered tasks, and dispatch counted at a proxy (10,000 configurations = 1,000
//! SendMessageBatch calls). What happened is read from SQS and S3 themselves, not only from
//! jobrun's record.

use crate::harness::{JOBRUN, Test, task_binary};
use crate::services::{self, Service};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A queue-mode job on `endpoint` (moto, or a proxy in front of it): built, pushed and `up`.
/// Its command runs the test task from its host path (`TASK`), so agents can run here as
/// processes; `@JOB@` in `queue_extra` is the job's name.
pub(crate) fn queue_job(endpoint: &Service, command: &str, queue_extra: &str) -> Test {
    let t = queue_folder(endpoint, command, queue_extra);
    let b = t.run(&["build", "--push"]);
    assert_eq!(b.status, 0, "build --push: {}", b.stderr);
    let up = t.run(&["up"]);
    assert_eq!(up.status, 0, "up: {}", up.stderr);
    t
}

/// The job folder of [`queue_job`], nothing built or made yet.
pub(crate) fn queue_folder(endpoint: &Service, command: &str, queue_extra: &str) -> Test {
    let reg = services::plain_registry();
    let t = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n\n[ecs]\nmode = \"queue\"\n\n[queue]\n{queue_extra}",
        reg.host()
    ))
    .envs(services::moto_env_for(endpoint));
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    let task = task_binary().display().to_string();
    t.write(
        "jobrun.toml",
        &toml
            .replace(
                r#"command = ["/task"]"#,
                &format!("command = {}", command.replace("TASK", &task)),
            )
            .replace("@JOB@", &t.name),
    );
    t
}

/// The usual command: print, show the JOBRUN_ environment, sleep, exit as configured.
pub(crate) const COMMAND: &str =
    r#"["TASK", "out", "task {index}", "env", "sleep", "{config.sleep}", "exit", "{config.exit}"]"#;

pub(crate) fn outputs(t: &Test) -> Value {
    let p = t.state.path().join("jobs").join(&t.name).join("aws.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

pub(crate) fn sqs(moto: &Service, op: &str, body: Value) -> Result<Value, (u16, String)> {
    services::json_call(moto, "sqs", &format!("AmazonSQS.{op}"), body)
}

/// (visible, in flight) of a queue.
fn depth(moto: &Service, url: &str) -> (i64, i64) {
    let out = sqs(
        moto,
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]}),
    )
    .unwrap();
    let n = |k: &str| out["Attributes"][k].as_str().unwrap().parse().unwrap();
    (
        n("ApproximateNumberOfMessages"),
        n("ApproximateNumberOfMessagesNotVisible"),
    )
}

/// Keys under a prefix of a bucket, read from moto's S3 directly.
pub(crate) fn s3_keys(moto: &Service, bucket: &str, prefix: &str) -> Vec<String> {
    let xml = ureq::get(&format!("{}/{bucket}", moto.url()))
        .query("list-type", "2")
        .query("prefix", prefix)
        .set("Authorization", &moto.auth("s3"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let mut keys: Vec<String> = xml
        .split("<Key>")
        .skip(1)
        .map(|s| s.split("</Key>").next().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

fn s3_get(moto: &Service, bucket: &str, key: &str) -> Value {
    let text = ureq::get(&format!("{}/{bucket}/{key}", moto.url()))
        .set("Authorization", &moto.auth("s3"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A `jobrun agent` process for the job's queue, its stderr collected.
pub(crate) struct Agent {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Agent {
    pub(crate) fn start(t: &Test, extra: &[&str]) -> Agent {
        let o = outputs(t);
        let mut args = vec![
            "agent",
            "--queue-url",
            o["queue"]["queue_url"].as_str().unwrap(),
            "--bucket",
            o["bucket"].as_str().unwrap(),
            "--job",
            &t.name,
            "--idle-exit",
            "3s",
        ];
        args.extend_from_slice(extra);
        let mut child = t
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (err, sink) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Agent { child, log }
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "agent never said {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the agent to exit by itself (idle exit); returns its exit code.
    pub(crate) fn wait(mut self) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (status.code().unwrap_or(-1), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub(crate) fn watch_json(t: &Test, run: &str) -> (i32, Value) {
    let w = t.run(&["watch", run]);
    let s = t.status(run);
    (w.status, s)
}

#[test]
fn up_makes_queue_dlq_service_and_scaling_that_starts_from_zero_and_down_removes_them() {
    let moto = services::moto();
    let t = queue_job(moto, COMMAND, "max_workers = 4\n");
    let o = outputs(&t);
    let q = &o["queue"];
    let (url, dlq) = (
        q["queue_url"].as_str().unwrap(),
        q["dlq_url"].as_str().unwrap(),
    );
    // A second `up` changes nothing.
    let again = t.run(&["up", "-o", "json"]);
    assert_eq!(again.status, 0, "{}", again.stderr);
    for c in again.json()["changes"].as_array().unwrap() {
        assert!(
            ["unchanged", "use"].contains(&c["action"].as_str().unwrap()),
            "second up changed {c}"
        );
    }
    // Queue: redrive to the DLQ after 3 receives, visibility from the timeout (1h + 5m).
    let attrs = sqs(
        moto,
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["All"]}),
    )
    .unwrap()["Attributes"]
        .clone();
    let redrive: Value = serde_json::from_str(attrs["RedrivePolicy"].as_str().unwrap()).unwrap();
    assert_eq!(redrive["deadLetterTargetArn"], q["dlq_arn"]);
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "3"
    );
    assert_eq!(attrs["VisibilityTimeout"], "3900");
    let dattrs = sqs(
        moto,
        "GetQueueAttributes",
        json!({"QueueUrl": dlq, "AttributeNames": ["All"]}),
    )
    .unwrap()["Attributes"]
        .clone();
    assert_eq!(dattrs["MessageRetentionPeriod"], "1209600");
    // Service: desired 0, running the agent from the job's image.
    let ecs = |op: &str, body: Value| {
        services::json_call(
            moto,
            "ecs",
            &format!("AmazonEC2ContainerServiceV20141113.{op}"),
            body,
        )
        .unwrap()
    };
    let cluster = o["cluster"].as_str().unwrap();
    let svc = ecs(
        "DescribeServices",
        json!({"cluster": cluster, "services": [q["service"]]}),
    )["services"][0]
        .clone();
    assert_eq!(svc["desiredCount"], 0);
    let td = ecs(
        "DescribeTaskDefinition",
        json!({"taskDefinition": svc["taskDefinition"]}),
    )["taskDefinition"]
        .clone();
    let c = &td["containerDefinitions"][0];
    assert_eq!(c["image"], o["image"]);
    assert_eq!(c["entryPoint"], json!(["/opt/jobrun/jobrun", "agent"]));
    assert!(
        c["environment"]
            .as_array()
            .unwrap()
            .iter()
            .any(|kv| kv["name"] == "JOBRUN_QUEUE_URL" && kv["value"] == url)
    );
    // Scaling: 0 to 4 workers, one target-tracking policy on the queue's backlog.
    let aas = |op: &str, body: Value| {
        services::json_call(
            moto,
            "application-autoscaling",
            &format!("AnyScaleFrontendService.{op}"),
            body,
        )
        .unwrap()
    };
    let rid = format!("service/{cluster}/{}", q["service"].as_str().unwrap());
    let targets = aas(
        "DescribeScalableTargets",
        json!({"ServiceNamespace": "ecs", "ResourceIds": [rid]}),
    );
    let target = &targets["ScalableTargets"][0];
    assert_eq!(
        (
            target["MinCapacity"].as_i64(),
            target["MaxCapacity"].as_i64()
        ),
        (Some(0), Some(4))
    );
    let policies = aas(
        "DescribeScalingPolicies",
        json!({"ServiceNamespace": "ecs", "ResourceId": rid}),
    );
    let p = &policies["ScalingPolicies"][0];
    assert_eq!(p["PolicyType"], "TargetTrackingScaling");
    let cfg = &p["TargetTrackingScalingPolicyConfiguration"];
    let target_value = cfg["TargetValue"].as_f64().unwrap();
    let metrics = cfg["CustomizedMetricSpecification"]["Metrics"]
        .as_array()
        .unwrap();
    let queue_name = url.rsplit('/').next().unwrap();
    for id in ["visible", "inflight"] {
        let m = metrics.iter().find(|m| m["Id"] == id).unwrap();
        assert_eq!(m["MetricStat"]["Metric"]["Namespace"], "AWS/SQS");
        assert_eq!(
            m["MetricStat"]["Metric"]["Dimensions"][0]["Value"],
            queue_name
        );
    }
    let expr = metrics.iter().find(|m| m["ReturnData"] == true).unwrap()["Expression"]
        .as_str()
        .unwrap()
        .to_string();
    // Evaluate the stored expression as CloudWatch would, with python as the calculator.
    let eval = |visible: f64, inflight: f64| -> f64 {
        let out = std::process::Command::new(services::python())
            .args([
                "-c",
                &format!("visible={visible}; inflight={inflight}; print(float({expr}))"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    assert!(
        eval(1.0, 0.0) > target_value,
        "one waiting message must scale out from zero workers"
    );
    assert!(
        eval(0.0, 0.0) < target_value * 0.9,
        "a drained queue must scale in"
    );
    assert!(
        (3.0 * eval(0.0, 3.0) / target_value).ceil() <= 3.0,
        "busy workers are not scaled out further"
    );
    // The task role may use exactly this queue.
    let doc = crate::infra::role_policy(moto, &format!("jobrun-{}-task", t.name));
    let st = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "TheJobQueue")
        .unwrap()
        .clone();
    assert_eq!(st["Resource"], json!([q["queue_arn"]]));

    // A network change reaches the service (and only the service).
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace(
            "mode = \"queue\"",
            "mode = \"queue\"\nassign_public_ip = false",
        ),
    );
    let changed = t.run(&["up", "-o", "json"]);
    assert_eq!(changed.status, 0, "{}", changed.stderr);
    let updates: Vec<Value> = changed.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "update" || c["action"] == "create")
        .cloned()
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["resource"], "ecs service");
    assert!(updates[0]["why"].as_str().unwrap().contains("network"));
    let svc = ecs(
        "DescribeServices",
        json!({"cluster": cluster, "services": [q["service"]]}),
    )["services"][0]
        .clone();
    assert_eq!(
        svc["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"],
        "DISABLED"
    );

    let down = t.run(&["down", "--yes"]);
    assert_eq!(down.status, 0, "down: {}", down.stderr);
    for u in [url, dlq] {
        let gone = sqs(
            moto,
            "GetQueueAttributes",
            json!({"QueueUrl": u, "AttributeNames": ["All"]}),
        );
        assert!(gone.is_err(), "queue {u} survived down");
    }
    let svc = ecs(
        "DescribeServices",
        json!({"cluster": cluster, "services": [q["service"]]}),
    );
    assert!(
        svc["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] != "ACTIVE"),
        "service survived down: {svc}"
    );
    let targets = aas(
        "DescribeScalableTargets",
        json!({"ServiceNamespace": "ecs", "ResourceIds": [rid]}),
    );
    assert_eq!(targets["ScalableTargets"], json!([]));
}

#[test]
fn queue_mode_without_its_queue_or_with_bad_settings_is_one_clear_error() {
    let moto = services::moto();
    // A direct-mode job that was `up`: submitting in queue mode needs the queue first.
    let t = queue_job(moto, COMMAND, "");
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace("mode = \"queue\"", "mode = \"direct\""),
    );
    std::fs::remove_file(t.state.path().join("jobs").join(&t.name).join("aws.json")).unwrap();
    let up = t.run(&["up"]);
    assert_eq!(up.status, 0, "{}", up.stderr);
    t.write("c.jsonl", "{\"sleep\": 0, \"exit\": 0}\n");
    let r = t.run(&["submit", "--mode", "queue", "--configs", "c.jsonl"]);
    r.assert_error(2, "has no queue yet");
    assert_eq!(t.run_count(), 0, "nothing was created");
    // An agent-less image cannot be `up`ed in queue mode.
    let t2 = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n",
        services::plain_registry().host()
    ))
    .envs(services::moto_env_for(moto));
    let toml2 = std::fs::read_to_string(t2.dir.path().join("jobrun.toml")).unwrap();
    t2.write(
        "jobrun.toml",
        &toml2.replace(
            r#"command = ["/task"]"#,
            "command = [\"/task\"]\noutputs = false",
        ),
    );
    assert_eq!(t2.run(&["build", "--push"]).status, 0);
    t2.run(&["up", "--mode", "queue"])
        .assert_error(2, "has no jobrun agent");
    // Settings are checked before anything happens.
    t.write(
        "jobrun.toml",
        &toml.replace("[queue]\n", "[queue]\nmax_receive_count = 0\n"),
    );
    t.run(&["submit", "--configs", "c.jsonl"])
        .assert_error(2, "queue.max_receive_count must be between 1 and 1000");
    assert_eq!(t.run_count(), 0);
}

#[test]
fn two_agents_run_every_task_once_and_exit_when_idle() {
    two_agents_run_every_task_once_and_exit_when_idle_on(services::moto());
}

/// The same on LocalStack's S3 and SQS (moto for the rest).
#[test]
fn two_agents_run_every_task_once_and_exit_when_idle_on_localstack() {
    two_agents_run_every_task_once_and_exit_when_idle_on(services::moto_localstack());
}

fn two_agents_run_every_task_once_and_exit_when_idle_on(moto: &'static Service) {
    let t = queue_job(moto, COMMAND, "");
    // A configuration's string may hold what SQS refuses in a body (the proxy and LocalStack
    // answer InvalidMessageContents): the message carries it escaped.
    let configs: Vec<Value> = (0..6)
        .map(|i| json!({"sleep": 0.2, "exit": 0, "n": i, "s": "a\u{0}b\u{fffe}\u{ffff}"}))
        .collect();
    let run = t.submit_detached(&configs);
    let o = outputs(&t);
    assert_eq!(depth(moto, o["queue"]["queue_url"].as_str().unwrap()).0, 6);
    let a = Agent::start(&t, &[]);
    let b = Agent::start(&t, &[]);
    let started = Instant::now();
    let (ca, la) = a.wait();
    let (cb, lb) = b.wait();
    assert_eq!((ca, cb), (0, 0), "agents:\n{la}\n{lb}");
    assert!(la.contains("nothing to do for 3s") && lb.contains("nothing to do for 3s"));
    assert!(started.elapsed() < Duration::from_secs(40));
    let (code, status) = watch_json(&t, &run);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["succeeded"], 6);
    // Each delivery's run, from its worker's receive to its result (the tasks sleep 0.2 s).
    assert_eq!(status["phases"][0]["phase"], "run", "{}", status["phases"]);
    assert_eq!(status["phases"][0]["n"], 6);
    assert!(status["phases"][0]["median_secs"].as_f64().unwrap() >= 0.2);
    let bucket = o["bucket"].as_str().unwrap();
    let keys = s3_keys(
        moto,
        bucket,
        &format!("jobs/{}/runs/{run}/results/", t.name),
    );
    assert_eq!(keys.len(), 6, "{keys:?}");
    for (i, task) in status["tasks"].as_array().unwrap().iter().enumerate() {
        assert_eq!(task["attempts"], 1);
        let key = format!("jobs/{}/runs/{run}/results/{i}/1-succeeded.json", t.name);
        assert!(keys.contains(&key), "{key} missing in {keys:?}");
        let r = s3_get(moto, bucket, &key);
        assert_eq!(r["exit_code"], 0);
        let tail = r["log_tail"].as_array().unwrap();
        assert!(
            tail.iter().any(|l| l == &format!("JOBRUN_INDEX={i}")),
            "{r}"
        );
        assert!(tail.iter().any(|l| l == "JOBRUN_ATTEMPT=1"), "{r}");
        assert!(
            tail.iter().any(|l| l == &format!("JOBRUN_RUN_ID={run}")),
            "{r}"
        );
    }
    // Both agents worked, and no task ran twice.
    let starts = la.matches(": starting").count() + lb.matches(": starting").count();
    assert_eq!(starts, 6, "{la}\n{lb}");
    assert_eq!(
        depth(moto, o["queue"]["queue_url"].as_str().unwrap()),
        (0, 0)
    );
}

#[test]
fn inside_ecs_the_agent_protects_its_task_while_working_and_points_at_its_log() {
    let moto = services::moto();
    let ecs_agent = services::fake_ecs_agent();
    let t = queue_job(moto, COMMAND, "");
    let o = outputs(&t);
    let run = t.submit_detached(&[json!({"sleep": 0.5, "exit": 0})]);
    let t = t
        .env("ECS_AGENT_URI", &format!("{}/agent", ecs_agent.url()))
        .env(
            "ECS_CONTAINER_METADATA_URI_V4",
            &format!("{}/meta", ecs_agent.url()),
        );
    let (code, log) = Agent::start(&t, &["--log-group", "/jobrun/test"]).wait();
    assert_eq!(code, 0, "{log}");
    let calls: Vec<Value> = ecs_agent
        .log_text()
        .lines()
        .filter_map(|l| l.strip_prefix("protection: "))
        .map(|j| serde_json::from_str(j).unwrap())
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0]["ProtectionEnabled"], true);
    assert!(calls[0]["ExpiresInMinutes"].as_u64().unwrap() >= 60);
    assert_eq!(calls[1]["ProtectionEnabled"], false);
    let key = format!("jobs/{}/runs/{run}/results/0/1-succeeded.json", t.name);
    let r = s3_get(moto, o["bucket"].as_str().unwrap(), &key);
    assert_eq!(
        r["worker"],
        "arn:aws:ecs:us-east-1:123456789012:task/jobrun-test/f00d"
    );
    assert_eq!(r["log"], "cloudwatch:/jobrun/test:jobrun/job/f00d");
    let (code, status) = watch_json(&t, &run);
    assert_eq!(code, 0);
    assert_eq!(
        status["tasks"][0]["log"],
        "cloudwatch:/jobrun/test:jobrun/job/f00d"
    );

    // `logs` reads the worker's stream over the attempt's time, page after page: GetLogEvents
    // returns at most 10,000 events per call.
    let started =
        chrono::DateTime::parse_from_rfc3339(status["tasks"][0]["started_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
    let logs = |op: &str, body: Value| {
        services::json_call(moto, "logs", &format!("Logs_20140328.{op}"), body)
    };
    let (group, stream) = ("/jobrun/test", "jobrun/job/f00d");
    let _ = logs("CreateLogGroup", json!({"logGroupName": group}));
    let _ = logs(
        "CreateLogStream",
        json!({"logGroupName": group, "logStreamName": stream}),
    );
    for part in 0..2 {
        let events: Vec<Value> = (0..5_025)
            .map(|i| json!({"timestamp": started, "message": format!("line {}", part * 5_025 + i)}))
            .collect();
        logs(
            "PutLogEvents",
            json!({"logGroupName": group, "logStreamName": stream, "logEvents": events}),
        )
        .unwrap();
    }
    let r = t.run(&["logs", &run, "-i", "0"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let lines: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("line "))
        .collect();
    assert_eq!(lines.len(), 10_050, "every page");
    assert_eq!(lines.last(), Some(&"line 10049"));
    // Following is for direct runs: a queue run says so instead of ignoring --follow.
    t.run(&["logs", &run, "-i", "0", "--follow"])
        .assert_error(2, "is a queue run");
}

#[test]
fn a_poison_task_goes_to_the_dead_letter_queue_and_retry_sends_it_again() {
    a_poison_task_goes_to_the_dead_letter_queue_and_retry_sends_it_again_on(services::moto());
}

/// The same on LocalStack's S3 and SQS (moto for the rest).
#[test]
fn a_poison_task_goes_to_the_dead_letter_queue_and_retry_sends_it_again_on_localstack() {
    a_poison_task_goes_to_the_dead_letter_queue_and_retry_sends_it_again_on(
        services::moto_localstack(),
    );
}

fn a_poison_task_goes_to_the_dead_letter_queue_and_retry_sends_it_again_on(moto: &'static Service) {
    // Every dead letter's first delete or release comes back in the batch's Failed list.
    let proxy = services::sqs_entries_fail_once_proxy(moto);
    let t = queue_job(
        &proxy,
        COMMAND,
        "max_receive_count = 2\nvisibility = \"5s\"\n",
    );
    let o = outputs(&t);
    let (url, dlq) = (
        o["queue"]["queue_url"].as_str().unwrap().to_string(),
        o["queue"]["dlq_url"].as_str().unwrap().to_string(),
    );
    // A caller whose policy predates the workers' start-up (no ecs:ListTasks) still gets its
    // run, only without that.
    proxy.fault(
        json!({"service": "ecs", "operation": "ListTasks", "times": 1000,
        "status": 400, "code": "AccessDeniedException",
        "message": "User is not authorized to perform: ecs:ListTasks"}),
    );
    let run = t.submit_detached(&[
        json!({"sleep": 0, "exit": 0}),
        json!({"sleep": 0, "exit": 3}),
    ]);
    let (code, log) = Agent::start(&t, &[]).wait();
    assert_eq!(code, 0, "{log}");
    assert!(log.matches("task 1 attempt").count() >= 2, "{log}");
    let (code, status) = watch_json(&t, &run);
    assert_eq!(code, 1, "{status}");
    let failed = &status["tasks"][1];
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["attempts"], 2);
    assert_eq!(failed["exit_code"], 3);
    assert!(
        failed["reason"].as_str().unwrap().contains("dead-letter"),
        "{failed}"
    );
    assert_eq!(status["tasks"][0]["state"], "succeeded");
    assert!(status["workers"].get("phases").is_none(), "{status}");
    assert!(
        proxy.proxy_stats()["faults"]["ecs:ListTasks"].as_u64() >= Some(1),
        "{}",
        proxy.proxy_stats()
    );
    assert_eq!(depth(moto, &dlq).0 + depth(moto, &dlq).1, 1);
    assert_eq!(depth(moto, &url), (0, 0));

    // retry --failed takes the run's message out of the DLQ (deleting again what the batch
    // failed) and sends it as attempt 3.
    let r = t.run(&["retry", &run, "--failed", "--detach"]);
    assert_eq!(r.status, 0, "retry: {}", r.stderr);
    assert_eq!(depth(moto, &dlq), (0, 0));
    assert!(
        proxy.proxy_stats()["faults"]["sqs:entry-failed"].as_u64() >= Some(1),
        "{}",
        proxy.proxy_stats()
    );
    assert_eq!(depth(moto, &url).0, 1);
    let (code, log) = Agent::start(&t, &[]).wait();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("task 1 attempt 3: starting"), "{log}");
    assert!(
        !log.contains("task 0 attempt"),
        "a succeeded task ran again:\n{log}"
    );
    let (code, status) = watch_json(&t, &run);
    assert_eq!(code, 1);
    assert_eq!(status["tasks"][1]["attempts"], 4);
    let keys = s3_keys(
        moto,
        o["bucket"].as_str().unwrap(),
        &format!("jobs/{}/runs/{run}/results/1/", t.name),
    );
    let names: Vec<&str> = keys.iter().map(|k| k.rsplit('/').next().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "1-failed.json",
            "2-failed.json",
            "3-failed.json",
            "4-failed.json"
        ]
    );
}

#[test]
fn sigterm_mid_task_puts_the_message_back_and_it_runs_once() {
    let moto = services::moto();
    let t = queue_job(moto, COMMAND, "visibility = \"60s\"\n");
    let o = outputs(&t);
    let url = o["queue"]["queue_url"].as_str().unwrap().to_string();
    let run = t.submit_detached(&[json!({"sleep": 5, "exit": 0})]);
    let a = Agent::start(&t, &[]);
    a.wait_for_log("task 0 attempt 1: starting");
    std::thread::sleep(Duration::from_millis(500));
    let pid = a.child.id() as i32;
    let stopped = Instant::now();
    assert_eq!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .code(),
        Some(0)
    );
    let (code, log) = a.wait();
    assert_eq!(code, 0, "{log}");
    assert!(stopped.elapsed() < Duration::from_secs(10), "{log}");
    assert!(log.contains("stopped by a signal"), "{log}");
    // Visible again at once, not after the 60 s visibility timeout.
    assert_eq!(depth(moto, &url), (1, 0));
    let (code, log) = Agent::start(&t, &[]).wait();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("task 0 attempt 2: starting"), "{log}");
    let keys = s3_keys(
        moto,
        o["bucket"].as_str().unwrap(),
        &format!("jobs/{}/runs/{run}/results/", t.name),
    );
    assert_eq!(keys.len(), 1, "one result record: {keys:?}");
    assert!(keys[0].ends_with("/0/2-succeeded.json"), "{keys:?}");
    let (code, status) = watch_json(&t, &run);
    assert_eq!(code, 0, "{status}");
}

#[test]
fn the_heartbeat_keeps_a_task_longer_than_the_visibility_timeout_from_a_second_worker() {
    the_heartbeat_keeps_a_task_longer_than_the_visibility_timeout_from_a_second_worker_on(
        services::moto(),
    );
}

/// The same on LocalStack's S3 and SQS (moto for the rest).
#[test]
fn the_heartbeat_keeps_a_task_longer_than_the_visibility_timeout_from_a_second_worker_on_localstack()
 {
    the_heartbeat_keeps_a_task_longer_than_the_visibility_timeout_from_a_second_worker_on(
        services::moto_localstack(),
    );
}

fn the_heartbeat_keeps_a_task_longer_than_the_visibility_timeout_from_a_second_worker_on(
    moto: &'static Service,
) {
    let t = queue_job(moto, COMMAND, "visibility = \"2s\"\n");
    let o = outputs(&t);
    let run = t.submit_detached(&[json!({"sleep": 7, "exit": 0})]);
    let a = Agent::start(&t, &[]);
    a.wait_for_log("starting");
    let b = Agent::start(&t, &[]);
    let (ca, la) = a.wait();
    let (cb, lb) = b.wait();
    assert_eq!((ca, cb), (0, 0));
    assert_eq!(
        la.matches(": starting").count() + lb.matches(": starting").count(),
        1,
        "the task was delivered twice:\n{la}\n{lb}"
    );
    let keys = s3_keys(
        moto,
        o["bucket"].as_str().unwrap(),
        &format!("jobs/{}/runs/{run}/results/", t.name),
    );
    assert_eq!(keys.len(), 1, "{keys:?}");
    let (code, _) = watch_json(&t, &run);
    assert_eq!(code, 0);
}

#[test]
fn cancel_stops_the_running_task_and_the_waiting_one_never_runs() {
    let moto = services::moto();
    let t = queue_job(moto, COMMAND, "visibility = \"3s\"\n");
    let o = outputs(&t);
    let run = t.submit_detached(&[
        json!({"sleep": 60, "exit": 0}),
        json!({"sleep": 60, "exit": 0}),
    ]);
    let a = Agent::start(&t, &["--max-messages", "2"]);
    a.wait_for_log("attempt 1: starting");
    let c = t.run(&["cancel", &run]);
    assert_eq!(c.status, 0, "cancel: {}\n{}", c.stdout, c.stderr);
    let status = t.status(&run);
    assert_eq!(status["state"], "cancelled", "{status}");
    assert_eq!(status["cancelled"], 2);
    let started = Instant::now();
    let (code, log) = a.wait();
    assert_eq!(code, 0, "{log}");
    // Stopped at a heartbeat (every second here), long before its 60 s of work.
    assert!(started.elapsed() < Duration::from_secs(20), "{log}");
    assert_eq!(log.matches(": starting").count(), 1, "{log}");
    assert!(
        log.contains(": cancelled") && log.contains("the run is cancelled"),
        "{log}"
    );
    assert_eq!(
        depth(moto, o["queue"]["queue_url"].as_str().unwrap()),
        (0, 0)
    );
    let keys = s3_keys(
        moto,
        o["bucket"].as_str().unwrap(),
        &format!("jobs/{}/runs/{run}/results/", t.name),
    );
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.ends_with("-cancelled.json")),
        "{keys:?}"
    );
}

#[test]
fn an_object_uploaded_under_the_trigger_prefix_becomes_one_task() {
    an_object_uploaded_under_the_trigger_prefix_becomes_one_task_on(services::moto());
}

/// The same on LocalStack's S3 and SQS (moto for the rest).
#[test]
fn an_object_uploaded_under_the_trigger_prefix_becomes_one_task_on_localstack() {
    an_object_uploaded_under_the_trigger_prefix_becomes_one_task_on(services::moto_localstack());
}

fn an_object_uploaded_under_the_trigger_prefix_becomes_one_task_on(moto: &'static Service) {
    // The job's own bucket (made by `up`) is the trigger bucket: moto's account is fixed.
    let t = queue_job(
        moto,
        r#"["TASK", "out", "object {config.key}", "env"]"#,
        "s3_trigger = \"s3://jobrun-@JOB@-123456789012-us-east-1/incoming/\"\n",
    );
    let o = outputs(&t);
    let bucket = o["bucket"].as_str().unwrap().to_string();
    // Outside the prefix: nothing; inside: one message.
    for key in ["other/x.txt", "incoming/a%20b.txt"] {
        ureq::put(&format!("{}/{bucket}/{key}", moto.url()))
            .set("Authorization", &moto.auth("s3"))
            .send_string("data")
            .unwrap();
    }
    let url = o["queue"]["queue_url"].as_str().unwrap().to_string();
    // S3's test event (sent when the notification is set up) and the one object's event, which
    // S3 delivers asynchronously ("typically in seconds":
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventNotifications.html):
    // moto at once, LocalStack a moment later.
    let deadline = Instant::now() + Duration::from_secs(15);
    while depth(moto, &url).0 < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(depth(moto, &url).0, 2);
    let task = task_binary().display().to_string();
    let cmd = json!([task, "out", "object {config.key}", "env"]).to_string();
    let (code, log) = Agent::start(&t, &["--default-command", &cmd]).wait();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("an S3 test event: deleting the message"),
        "{log}"
    );
    let keys = s3_keys(moto, &bucket, &format!("jobs/{}/runs/s3-", t.name));
    assert_eq!(keys.len(), 1, "{keys:?}\n{log}");
    assert!(keys[0].ends_with("/1-succeeded.json"));
    let r = s3_get(moto, &bucket, &keys[0]);
    assert_eq!(r["s3_object"], format!("s3://{bucket}/incoming/a b.txt"));
    let tail: Vec<&str> = r["log_tail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(tail.contains(&"object incoming/a b.txt"), "{tail:?}");
    assert_eq!(depth(moto, &url), (0, 0));
    let down = t.run(&["down", "--yes"]);
    assert_eq!(down.status, 0, "{}", down.stderr);
}

#[test]
fn ten_thousand_configurations_are_sent_with_exactly_one_thousand_batch_calls() {
    let moto = services::own_moto();
    let sink = services::sqs_proxy(&moto, true, 0.0);
    let t = queue_job(&sink, COMMAND, "");
    let configs: Vec<Value> = (0..10_000)
        .map(|i| json!({"sleep": 0, "exit": 0, "n": i}))
        .collect();
    let run = t.submit_detached(&configs);
    let stats = sink.proxy_stats();
    assert_eq!(stats["sqs"]["calls"], 1000, "{stats}");
    assert_eq!(stats["requests"]["SendMessageBatch"], 1000, "{stats}");
    assert_eq!(stats["sqs"]["distinct"], 10_000, "{stats}");
    assert_eq!(stats["sqs"]["duplicates"], 0, "{stats}");
    assert_eq!(stats["sqs"]["max_entries"], 10, "{stats}");
    let status = t.status(&run);
    assert_eq!(status["running"], 10_000);

    // Entries SQS reports failed are sent again, and only they.
    let flaky = services::sqs_proxy(&moto, true, 0.3);
    let t = t.env("AWS_ENDPOINT_URL", &flaky.url());
    let configs: Vec<Value> = (0..500)
        .map(|i| json!({"sleep": 0, "exit": 0, "n": i}))
        .collect();
    t.submit_detached(&configs);
    let stats = flaky.proxy_stats();
    assert!(
        stats["sqs"]["entry_faults"].as_i64().unwrap() > 50,
        "{stats}"
    );
    assert_eq!(stats["sqs"]["distinct"], 500, "{stats}");
    assert_eq!(stats["sqs"]["messages"], 500, "{stats}");
    assert_eq!(stats["sqs"]["duplicates"], 0, "{stats}");
}

/// This jobrun, stripped once per test run, for images that carry it (a debug build carries
/// ~1 GB of symbols).
pub(crate) fn stripped_jobrun() -> &'static std::path::Path {
    crate::harness::stripped_jobrun()
}

/// A base image with the C library the debug `jobrun` links, so the real agent runs in a
/// container (released binaries are static; this one is not).
pub(crate) fn glibc_base() -> &'static str {
    static BASE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    const TAG: &str = "jobrun-test-glibc:1";
    BASE.get_or_init(|| {
        let ldd = std::process::Command::new("ldd")
            .arg(JOBRUN)
            .output()
            .unwrap();
        let root = tempfile::tempdir().unwrap();
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let path = line
                .split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(str::to_string);
            let Some(path) = path else { continue };
            let dest = root.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(std::fs::canonicalize(&path).unwrap(), &dest).unwrap();
        }
        std::fs::create_dir_all(root.path().join("tmp")).unwrap();
        let tar = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -C {} -c . | docker import - {TAG}",
                root.path().display()
            ))
            .output()
            .unwrap();
        assert!(
            tar.status.success(),
            "{}",
            String::from_utf8_lossy(&tar.stderr)
        );
    });
    TAG
}

#[test]
fn the_agent_runs_inside_the_job_container_and_stops_cleanly_on_sigterm() {
    let moto = services::moto();
    let base = glibc_base();
    // The agent layer is this jobrun, stripped.
    let stripped = stripped_jobrun();
    let reg = services::plain_registry();
    let t = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n\n[ecs]\nmode = \"queue\"\n\n[image]\nplatform = \"linux/amd64\"\n",
        reg.host(),
    ))
    .envs(services::moto_env_for(moto))
    .jobrun(stripped);
    t.write("Dockerfile", &format!("FROM {base}\nCOPY task /task\n"));
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &(toml.replace(
            r#"command = ["/task"]"#,
            r#"command = ["/task", "out", "in a container {index}", "env", "sleep", "{config.sleep}"]"#,
        )),
    );
    // Only x86_64 hosts can run this (the agent is this very binary).
    if std::env::consts::ARCH != "x86_64" {
        return;
    }
    let b = t.run(&["build", "--push"]);
    assert_eq!(b.status, 0, "build --push: {}\n{}", b.stdout, b.stderr);
    let up = t.run(&["up"]);
    assert_eq!(up.status, 0, "up: {}", up.stderr);
    let o = outputs(&t);
    let image = format!("{}:latest", t.name);
    let run = t.submit_detached(&[json!({"sleep": 8}), json!({"sleep": 0})]);
    let docker_run = |name: &str| {
        let mut c = std::process::Command::new("docker");
        c.args(["run", "-d", "--name", name, "--network", "host"]);
        for (k, v) in services::moto_env_for(moto) {
            c.args(["-e", &format!("{k}={v}")]);
        }
        // As ECS starts a worker: the agent task definition's entrypoint and environment.
        let td = o["queue"]["agent_task_definition"].as_str().unwrap();
        let (entry, env) = crate::ecs::container_of(moto, td);
        assert_eq!(entry.last().map(String::as_str), Some("agent"), "{entry:?}");
        for (k, v) in env.iter().filter(|(k, _)| k != "JOBRUN_IDLE_EXIT") {
            c.args(["-e", &format!("{k}={v}")]);
        }
        for (k, v) in [
            ("JOBRUN_IDLE_EXIT", "3s"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            c.args(["-e", &format!("{k}={v}")]);
        }
        c.args(["--entrypoint", &entry[0], &image]);
        c.args(&entry[1..]);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let logs = |name: &str| {
        let out = std::process::Command::new("docker")
            .args(["logs", name])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let first = format!("{}-a", t.name);
    let second = format!("{}-b", t.name);
    let cleanup = || {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &first, &second])
            .output();
    };
    cleanup();
    docker_run(&first);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !logs(&first).contains("task 0 attempt 1: starting") {
        assert!(Instant::now() < deadline, "{}", logs(&first));
        std::thread::sleep(Duration::from_millis(100));
    }
    // `docker stop`: SIGTERM to the agent, which stops the task and gives the message back.
    let stop = std::process::Command::new("docker")
        .args(["stop", "-t", "30", &first])
        .output()
        .unwrap();
    assert!(stop.status.success());
    let code = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.State.ExitCode}}", &first])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&code.stdout).trim(),
        "0",
        "{}",
        logs(&first)
    );
    assert!(
        logs(&first).contains("stopped by a signal"),
        "{}",
        logs(&first)
    );
    docker_run(&second);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let state = std::process::Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{.State.Running}} {{.State.ExitCode}}",
                &second,
            ])
            .output()
            .unwrap();
        let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
        if state.starts_with("false") {
            assert_eq!(state, "false 0", "{}", logs(&second));
            break;
        }
        assert!(Instant::now() < deadline, "{}", logs(&second));
        std::thread::sleep(Duration::from_millis(200));
    }
    let all = format!("{}{}", logs(&first), logs(&second));
    cleanup();
    assert!(
        all.contains("in a container 0") && all.contains("in a container 1"),
        "{all}"
    );
    let (code, status) = watch_json(&t, &run);
    assert_eq!(code, 0, "{status}\n{all}");
    let keys = s3_keys(
        moto,
        o["bucket"].as_str().unwrap(),
        &format!("jobs/{}/runs/{run}/results/", t.name),
    );
    assert_eq!(keys.len(), 2, "one result per task: {keys:?}");
}

/// Workers when the work arrives: right after the messages are sent, the service wants as many
/// workers as there is work (at most max_workers), not what CloudWatch would find minutes
/// later; when the run has ended with the queue empty, none. Another run's waiting messages
/// keep theirs.
#[test]
fn workers_start_when_the_work_is_sent_and_stop_when_it_is_done() {
    let moto = services::moto();
    let t = queue_job(moto, COMMAND, "max_workers = 20\n");
    let o = outputs(&t);
    let service = || {
        let out = crate::ecs::ecs(
            moto,
            "DescribeServices",
            json!({"cluster": o["cluster"], "services": [o["queue"]["service"]]}),
        );
        out["services"][0].clone()
    };
    let desired = || service()["desiredCount"].as_i64().unwrap();
    assert_eq!(desired(), 0);
    // The fake service runs its wanted workers as tasks that take 0.3 s to be placed, 0.6 s
    // to pull and 0.1 s to start (tests/moto/jobrun_moto.py).
    let phases = json!({"provisioning": 0.3, "pull": 0.6, "start": 0.1});
    crate::ecs::ecs(
        moto,
        "TagResource",
        json!({"resourceArn": service()["serviceArn"],
               "tags": [{"key": "jobrun-fake-workers", "value": phases.to_string()}]}),
    );
    let work = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"sleep": 0, "exit": 0, "n": i}))
            .collect()
    };
    let a = t.submit_detached(&work(30));
    assert_eq!(desired(), 20, "started when sent, capped at max_workers");
    let (x, y) = (Agent::start(&t, &[]), Agent::start(&t, &[]));
    assert_eq!((x.wait().0, y.wait().0), (0, 0));
    // A second run waits in the queue while the first ends: its workers stay.
    let b = t.submit_detached(&work(3));
    let (code, status) = watch_json(&t, &a);
    assert_eq!((code, status["succeeded"].as_u64()), (0, Some(30)));
    // Run a's end does not take the workers b's waiting messages need (b's own driver, which
    // every unfinished run on ECS has, wants one per message).
    assert_eq!(desired(), 3, "run b's messages still wait");
    // moto's service reports its workers running once wanted: the summary says when.
    let first = status["workers"]["first_running_secs"].as_f64().unwrap();
    let all = status["workers"]["all_wanted_secs"].as_f64().unwrap();
    assert!(first <= all && all < 60.0, "{}", status["workers"]);
    // Each of the 20 workers it started says how its start went, as DescribeTasks reports it.
    let spans: Vec<(String, u64, f64)> = status["workers"]["phases"]
        .as_array()
        .unwrap_or_else(|| panic!("no worker phases: {}", status["workers"]))
        .iter()
        .map(|p| {
            let (n, median) = (p["n"].as_u64().unwrap(), p["median_secs"].as_f64().unwrap());
            (p["phase"].as_str().unwrap().to_string(), n, median)
        })
        .collect();
    let names: Vec<&str> = spans.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(names, ["provisioning", "pull", "start"], "{spans:?}");
    for ((_, n, median), want) in spans.iter().zip([0.3, 0.6, 0.1]) {
        assert_eq!(*n, 20, "{spans:?}");
        assert!((median - want).abs() < 0.01, "{spans:?}");
    }
    let text = t.run(&["status", &a]);
    assert!(
        text.stdout.contains("; 20 started: provisioning"),
        "{}",
        text.stdout
    );
    let (code, _) = Agent::start(&t, &[]).wait();
    assert_eq!(code, 0);
    let (code, status) = watch_json(&t, &b);
    assert_eq!((code, status["succeeded"].as_u64()), (0, Some(3)));
    assert_eq!(desired(), 0, "done and the queue empty: no workers");
}

/// SQS keeps a deleted queue's name for 60 s (CreateQueue: QueueDeletedRecently): `up` right
/// after `down` waits for it instead of failing.
#[test]
fn up_right_after_down_waits_for_the_queue_names_to_be_free() {
    let moto = services::moto();
    // Long enough that a loaded machine's `down` (its steps after DeleteQueue) ends inside it.
    let proxy = services::deleted_wait_proxy(moto, 8.0);
    let t = queue_job(&proxy, COMMAND, "");
    let down = t.run(&["down", "--yes"]);
    assert_eq!(down.status, 0, "down: {}", down.stderr);
    let up = t.run(&["up"]);
    assert_eq!(up.status, 0, "up: {}", up.stderr);
    assert!(
        proxy.fired("sqs:deleted-recently") >= 1,
        "CreateQueue met the deleted name: {}",
        proxy.proxy_stats()
    );
    let o = outputs(&t);
    let url = o["queue"]["queue_url"].as_str().unwrap();
    assert!(
        sqs(
            moto,
            "GetQueueAttributes",
            json!({"QueueUrl": url, "AttributeNames": ["All"]})
        )
        .is_ok(),
        "the queue is there again"
    );
}

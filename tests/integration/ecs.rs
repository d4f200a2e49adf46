//! The ECS direct target against moto with the fake-Fargate plugin (tests/moto/jobrun_moto.py):
//! a configuration's `"fake"` key scripts its task (exit code, stop code, Spot capacity, hold).
//! What ECS did is checked in moto itself (ListTasks by startedBy, DescribeTasks), never only
//! in jobrun's own record.

use crate::harness::{Test, indexes};
use crate::services::{self, Service};
use serde_json::{Value, json};

/// An ecs job against `endpoint` (moto, or the proxy in front of it), with `extra` in its
/// jobrun.toml; built and pushed, not `up`.
pub(crate) fn pushed_job(endpoint: &Service, extra: &str) -> Test {
    let reg = services::plain_registry();
    let t = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n{extra}",
        reg.host()
    ))
    .envs(services::moto_env_for(endpoint));
    let b = t.run(&["build", "--push"]);
    assert_eq!(b.status, 0, "build --push: {}", b.stderr);
    t
}

/// An ecs job, built, pushed and `up` against `moto`, with `extra` in its jobrun.toml.
pub(crate) fn fargate_job(moto: &Service, extra: &str) -> Test {
    let t = pushed_job(moto, extra);
    let up = t.run(&["up"]);
    assert_eq!(up.status, 0, "up: {}", up.stderr);
    t
}

/// The job container of a task definition as ECS starts it: its entrypoint and environment.
pub(crate) fn container_of(
    moto: &Service,
    task_definition: &str,
) -> (Vec<String>, Vec<(String, String)>) {
    let td = ecs(
        moto,
        "DescribeTaskDefinition",
        json!({"taskDefinition": task_definition}),
    );
    let c = &td["taskDefinition"]["containerDefinitions"][0];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let env = c["environment"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|kv| {
            let s = |k: &str| kv[k].as_str().unwrap().to_string();
            (s("name"), s("value"))
        })
        .collect();
    (strings(&c["entryPoint"]), env)
}

/// One ECS call of the test's own. moto's threaded server can answer a read with a 500 while
/// jobrun's RunTask calls change the same task table (a race of moto's, not of AWS): such a read
/// is asked again.
pub(crate) fn ecs(moto: &Service, op: &str, body: Value) -> Value {
    let target = format!("AmazonEC2ContainerServiceV20141113.{op}");
    let mut tries = 0;
    loop {
        match services::json_call(moto, "ecs", &target, body.clone()) {
            Err((500, _)) if tries < 5 => tries += 1,
            other => return other.unwrap_or_else(|e| panic!("{op}: {e:?}")),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Every task ECS knows for a run (running or stopped), found by `startedBy`.
fn tasks_started_by(moto: &Service, cluster: &str, started_by: &str) -> Vec<Value> {
    tasks_listed(moto, cluster, ("startedBy", started_by))
}

/// Every task ListTasks gives for `filter` (e.g. `("family", …)`), running or stopped,
/// described.
pub(crate) fn tasks_listed(moto: &Service, cluster: &str, filter: (&str, &str)) -> Vec<Value> {
    let mut arns = vec![];
    for status in ["RUNNING", "STOPPED"] {
        let out = ecs(
            moto,
            "ListTasks",
            json!({"cluster": cluster, filter.0: filter.1, "desiredStatus": status}),
        );
        arns.extend(out["taskArns"].as_array().unwrap().iter().cloned());
    }
    arns.sort_by_key(|a| a.to_string());
    arns.dedup();
    let mut tasks = vec![];
    for chunk in arns.chunks(100) {
        let out = ecs(
            moto,
            "DescribeTasks",
            json!({"cluster": cluster, "tasks": chunk, "include": ["TAGS"]}),
        );
        tasks.extend(out["tasks"].as_array().unwrap().iter().cloned());
    }
    tasks
}

fn env_of(task: &Value, name: &str) -> Option<String> {
    task["overrides"]["containerOverrides"][0]["environment"]
        .as_array()?
        .iter()
        .find(|kv| kv["name"] == name)
        .and_then(|kv| kv["value"].as_str())
        .map(str::to_string)
}

fn cluster_of(t: &Test, run: &str) -> String {
    t.record(run)["ecs"]["cluster"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn fan_out_is_one_task_per_config_with_overrides_tags_and_logs() {
    let moto = services::moto();
    let t = fargate_job(moto, "");
    t.write(
        "configs.jsonl",
        "{\"lr\":0.1}\n{\"lr\":0.2}\n{\"lr\":0.3}\n{\"lr\":0.4}\n{\"lr\":0.5}\n",
    );
    let r = t.run(&["submit", "--configs", "configs.jsonl", "-o", "json"]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    let run = t.only_run();
    let s = t.status(&run);
    assert_eq!(s["state"], "succeeded", "{s}");
    assert_eq!(s["succeeded"], 5);

    // ECS has exactly one task per configuration, with the run's startedBy, tags and overrides.
    let tasks = tasks_started_by(moto, &cluster_of(&t, &run), &run);
    assert_eq!(tasks.len(), 5, "one task per config");
    let mut seen: Vec<u64> = tasks
        .iter()
        .map(|task| env_of(task, "JOBRUN_INDEX").unwrap().parse().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2, 3, 4]);
    for task in &tasks {
        let i = env_of(task, "JOBRUN_INDEX").unwrap();
        let config: Value = serde_json::from_str(&env_of(task, "JOBRUN_CONFIG").unwrap()).unwrap();
        assert_eq!(
            config["lr"].as_f64().unwrap(),
            (i.parse::<f64>().unwrap() + 1.0) / 10.0
        );
        assert_eq!(env_of(task, "JOBRUN_RUN_ID").unwrap(), run);
        assert_eq!(env_of(task, "JOBRUN_ATTEMPT").unwrap(), "1");
        assert_eq!(
            task["capacityProviderName"], "FARGATE_SPOT",
            "Spot by default"
        );
        let tags: Vec<(String, String)> = task["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap().into(),
                    t["value"].as_str().unwrap().into(),
                )
            })
            .collect();
        for want in [
            ("jobrun:run".to_string(), run.clone()),
            ("jobrun:index".to_string(), i.clone()),
            ("jobrun:attempt".to_string(), "1".to_string()),
            ("jobrun:job".to_string(), t.name.clone()),
        ] {
            assert!(tags.contains(&want), "{want:?} in {tags:?}");
        }
    }

    // Logs come from CloudWatch (the plugin writes "task <i> attempt <a>" for each task).
    let logs = t.run(&["logs", &run, "--index", "3"]);
    assert_eq!(logs.status, 0, "{}", logs.stderr);
    assert!(logs.stdout.contains("task 3 attempt 1"), "{}", logs.stdout);
    let all = t.run(&["logs", &run]);
    for i in 0..5 {
        assert!(
            all.stdout.contains(&format!("[{i}] task {i} attempt 1")),
            "{}",
            all.stdout
        );
    }

    // The run record is in the job's bucket.
    let runs = t.run(&["runs", "-o", "json"]);
    assert!(runs.stdout.contains(&run), "{}", runs.stdout);
}

#[test]
fn failures_spot_interruptions_and_retry_failed() {
    let moto = services::moto();
    let t = fargate_job(moto, "");
    let run = t.submit_detached(&[
        json!({"ok": true}),
        json!({"fake": {"exit": 3, "logs": ["loading data", "boom: bad learning rate"]}}),
        json!({"fake": {"stop_code": "SpotInterruption", "until_attempt": 2}}),
        json!({"fake": {"stop_code": "TaskFailedToStart", "until_attempt": 3}}),
        json!({"fake": {"exit": 2, "until_attempt": 2}}),
    ]);
    let w = t.run(&["watch", &run]);
    assert_eq!(w.status, 1, "a task failed: {}\n{}", w.stdout, w.stderr);
    // The summary names the failed index, its exit code, its log and the last lines of it.
    assert!(w.stdout.contains("exit code 3"), "{}", w.stdout);
    assert!(w.stdout.contains("boom: bad learning rate"), "{}", w.stdout);

    let s = t.status(&run);
    assert_eq!(indexes(&s, "succeeded"), vec![0, 2, 3]);
    assert_eq!(
        indexes(&s, "failed"),
        vec![1, 4],
        "non-zero exits are not retried"
    );
    let task = |i: usize| s["tasks"][i].clone();
    assert_eq!(task(1)["exit_code"], 3);
    assert_eq!(task(1)["attempts"], 1);
    assert_eq!(
        task(2)["attempts"],
        2,
        "a Spot interruption is re-run: {}",
        task(2)
    );
    assert_eq!(
        task(3)["attempts"],
        3,
        "a failed start is re-run: {}",
        task(3)
    );
    assert!(
        task(1)["log"]
            .as_str()
            .unwrap()
            .starts_with("cloudwatch:/jobrun/"),
        "{}",
        task(1)
    );

    let cluster = cluster_of(&t, &run);
    let before = tasks_started_by(moto, &cluster, &run);
    assert_eq!(before.len(), 1 + 1 + 2 + 3 + 1);
    let spot: Vec<&Value> = before
        .iter()
        .filter(|t| t["stopCode"] == "SpotInterruption")
        .collect();
    assert_eq!(spot.len(), 1);

    // retry --failed launches exactly the failed indexes, as attempt 2.
    let r = t.run(&["retry", &run, "--failed"]);
    assert_eq!(
        r.status, 1,
        "index 1 fails again: {}\n{}",
        r.stdout, r.stderr
    );
    let after = tasks_started_by(moto, &cluster, &run);
    let new: Vec<(String, String)> = after
        .iter()
        .filter(|a| !before.iter().any(|b| b["taskArn"] == a["taskArn"]))
        .map(|a| {
            (
                env_of(a, "JOBRUN_INDEX").unwrap(),
                env_of(a, "JOBRUN_ATTEMPT").unwrap(),
            )
        })
        .collect();
    let mut new = new;
    new.sort();
    assert_eq!(
        new,
        vec![("1".into(), "2".into()), ("4".into(), "2".into())]
    );
    let s = t.status(&run);
    assert_eq!(indexes(&s, "succeeded"), vec![0, 2, 3, 4]);
    assert_eq!(indexes(&s, "failed"), vec![1]);
}

#[test]
fn watch_from_another_machine_reattaches_from_s3() {
    let moto = services::moto();
    let t = fargate_job(moto, "");
    let run = t.submit_detached(&[json!({"a": 1}), json!({"a": 2}), json!({"a": 3})]);

    // Another machine: the same job folder and AWS access, an empty state folder.
    let other = tempfile::tempdir().unwrap();
    let mut watch = t.command(&["watch", &run, "-o", "json"]);
    watch.env("JOBRUN_STATE_DIR", other.path());
    let w = watch.output().unwrap();
    let stdout = String::from_utf8_lossy(&w.stdout);
    assert_eq!(
        w.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&w.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["succeeded"], 3);
    assert!(
        other
            .path()
            .join("runs")
            .join(&run)
            .join("run.json")
            .is_file()
    );

    // A run id that exists nowhere is one clear error.
    let mut missing = t.command(&["watch", "20990101-000000-nothing-0000"]);
    missing.env("JOBRUN_STATE_DIR", other.path());
    let m = missing.output().unwrap();
    assert_eq!(m.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&m.stderr).contains("no run matches"));
}

#[test]
fn cancel_stops_every_running_task() {
    let moto = services::moto();
    let t = fargate_job(moto, "");
    let hold = json!({"fake": {"hold": true}});
    let run = t.submit_detached(&[hold.clone(), hold.clone(), hold]);
    let s = t.status(&run);
    assert_eq!(s["running"], 3, "{s}");
    let c = t.run(&["cancel", &run]);
    assert_eq!(c.status, 0, "{}", c.stderr);
    let s = t.status(&run);
    assert_eq!(s["state"], "cancelled", "{s}");
    assert_eq!(indexes(&s, "cancelled"), vec![0, 1, 2]);
    let tasks = tasks_started_by(moto, &cluster_of(&t, &run), &run);
    assert_eq!(tasks.len(), 3);
    for task in tasks {
        assert_eq!(task["lastStatus"], "STOPPED");
        assert_eq!(task["stopCode"], "UserInitiated");
    }
}

#[test]
fn spot_without_capacity_falls_back_to_on_demand_and_big_configs_go_by_pointer() {
    let moto = services::moto();
    let t = fargate_job(moto, "");
    let big = "x".repeat(10_000);
    let run = t.submit_detached(&[
        json!({"fake": {"spot_capacity": false}}),
        json!({"blob": big}),
    ]);
    let w = t.run(&["watch", &run]);
    assert_eq!(w.status, 0, "{}\n{}", w.stdout, w.stderr);
    let tasks = tasks_started_by(moto, &cluster_of(&t, &run), &run);
    assert_eq!(tasks.len(), 2);
    let by_index = |i: &str| {
        tasks
            .iter()
            .find(|t| env_of(t, "JOBRUN_INDEX").as_deref() == Some(i))
            .unwrap()
            .clone()
    };
    assert_eq!(by_index("0")["capacityProviderName"], "FARGATE");
    let pointer = env_of(&by_index("1"), "JOBRUN_CONFIG_URL").expect("passed by pointer");
    assert!(env_of(&by_index("1"), "JOBRUN_CONFIG").is_none());
    let (bucket, key) = pointer
        .strip_prefix("s3://")
        .unwrap()
        .split_once('/')
        .unwrap();
    let body = ureq::get(&format!("{}/{bucket}/{key}", moto.url()))
        .set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let stored: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stored["blob"].as_str().unwrap().len(), 10_000);
}

#[test]
fn from_s3_runs_one_task_per_object_with_the_prefix_readable() {
    let moto = services::moto();
    let t0 = Test::new();
    let bucket = format!("inputs-{}", t0.name.replace('_', "-"));
    let auth = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
    ureq::put(&format!("{}/{bucket}", moto.url()))
        .set("Authorization", auth)
        .call()
        .unwrap();
    for k in ["in/a.csv", "in/b.csv", "in/sub/c.csv", "other/d.csv"] {
        ureq::put(&format!("{}/{bucket}/{k}", moto.url()))
            .set("Authorization", auth)
            .send_string("1,2,3")
            .unwrap();
    }
    let t = fargate_job(
        moto,
        &format!("\n[ecs]\ninputs = [\"s3://{bucket}/in/\"]\n"),
    );

    // A prefix the task role may not read is refused before anything runs.
    let bad = t.run(&["submit", "--from-s3", &format!("s3://{bucket}/other/")]);
    bad.assert_error(2, "may not read");
    assert_eq!(t.run_count(), 0);

    let r = t.run(&[
        "submit",
        "--from-s3",
        &format!("s3://{bucket}/in/"),
        "-o",
        "json",
    ]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    let run = t.only_run();
    let tasks = tasks_started_by(moto, &cluster_of(&t, &run), &run);
    let mut keys: Vec<String> = tasks.iter().map(|t| env_of(t, "S3_KEY").unwrap()).collect();
    keys.sort();
    assert_eq!(keys, vec!["in/a.csv", "in/b.csv", "in/sub/c.csv"]);
    for task in &tasks {
        assert_eq!(env_of(task, "S3_BUCKET").unwrap(), bucket);
        let config: Value = serde_json::from_str(&env_of(task, "JOBRUN_CONFIG").unwrap()).unwrap();
        assert_eq!(config["bucket"], bucket.as_str());
        // The object's ETag (as ListObjectsV2 gave it): what `--reuse` keys the task by.
        assert!(
            env_of(task, "S3_ETAG").is_some_and(|e| e.len() > 2),
            "{task}"
        );
    }
    let rec = t.record(&run);
    assert!(
        rec["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["key"].is_string()),
        "every task has a key"
    );
}

#[test]
fn submit_before_up_is_one_clear_error() {
    let moto = services::moto();
    let reg = services::plain_registry();
    let t = Test::ecs_task(&format!("[ecr]\nregistry_endpoint = \"{}\"\n", reg.host()))
        .envs(services::moto_env_for(moto));
    t.run(&["submit", "--configs", "2"])
        .assert_error(2, "has no AWS side yet");
    assert_eq!(t.run_count(), 0);
}

/// The core promise under faults: 1,000 configurations through a proxy that answers 20 % of ECS
/// calls with throttling, 500s, dropped connections and responses lost after the launch, with
/// jobrun SIGKILLed half way through dispatch and resumed, make exactly 1,000 distinct tasks in
/// ECS, one per index.
#[test]
fn a_thousand_configs_through_faults_and_a_kill_make_exactly_a_thousand_tasks() {
    const N: usize = 1000;
    let moto = services::own_moto();
    // AWS's pacing is tested elsewhere (the dispatch benchmark); here moto is the limit.
    let t = fargate_job(
        &moto,
        "\n[ecs]\nrun_task_rate = 500\nlaunch_burst = 1000\nlaunch_rate = 500\ndescribe_rate = 100\n",
    );
    let proxy = services::aws_proxy(&moto, 0.2, 7, false);

    let mut submit = t.command(&["submit", "--configs", &N.to_string(), "--detach"]);
    submit
        .env("AWS_ENDPOINT_URL", proxy.url())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = submit.spawn().unwrap();

    // Kill it once ECS has some of the tasks but not all.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let run = loop {
        if t.run_count() == 1 {
            break t.only_run();
        }
        assert!(std::time::Instant::now() < deadline, "no run was created");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let cluster = loop {
        if let Ok(bytes) = std::fs::read(t.state.path().join("runs").join(&run).join("run.json")) {
            let rec: Value = serde_json::from_slice(&bytes).unwrap();
            break rec["ecs"]["cluster"].as_str().unwrap().to_string();
        }
    };
    let count = |moto: &Service| -> usize {
        let out = ecs(
            moto,
            "ListTasks",
            json!({"cluster": cluster, "startedBy": run, "desiredStatus": "RUNNING"}),
        );
        out["taskArns"].as_array().unwrap().len()
    };
    loop {
        let launched = count(&moto);
        if launched >= N / 4 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "submit ended before it could be killed ({launched} launched)"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "dispatch is stuck at {launched}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = count(&moto);
    assert!(at_kill < N, "killed before the end of dispatch ({at_kill})");

    let mut resume = t.command(&["submit", "--resume", &run, "--detach", "-o", "json"]);
    resume.env("AWS_ENDPOINT_URL", proxy.url());
    let r = resume.output().unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "resume: {}",
        String::from_utf8_lossy(&r.stderr)
    );

    let tasks = tasks_started_by(&moto, &cluster, &run);
    let mut indexes: Vec<usize> = tasks
        .iter()
        .map(|t| env_of(t, "JOBRUN_INDEX").unwrap().parse().unwrap())
        .collect();
    assert_eq!(tasks.len(), N, "exactly one task per configuration");
    indexes.sort();
    indexes.dedup();
    assert_eq!(indexes.len(), N, "every index once");

    let stats = proxy.proxy_stats();
    let faults: u64 = stats["faults"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(faults > 100, "faults were injected: {stats}");
    assert!(
        stats["faults"]["drop_response"].as_u64().unwrap_or(0) > 0,
        "some responses were lost after the launch: {stats}"
    );
    // Every task the record knows is one ECS has.
    let s = t.status(&run);
    assert_eq!(s["queued"], 0, "{}", s["queued"]);
    eprintln!("killed at {at_kill} of {N}; proxy: {stats}");
}

#[test]
fn timeouts_stop_the_task_and_listed_exit_codes_are_retried() {
    let moto = services::moto();
    let t = fargate_job(moto, "");
    // Run settings are read at submit, so they can change after `up`.
    t.write(
        "configs.jsonl",
        &format!(
            "{}\n{}\n",
            json!({"fake": {"hold": true}}),
            json!({"fake": {"exit": 2, "until_attempt": 2}})
        ),
    );
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace(
            "[run]\n",
            "[run]\ntimeout = \"2s\"\nretry_exit_codes = [2]\n",
        ),
    );
    let r = t.run(&["submit", "--configs", "configs.jsonl", "-o", "json"]);
    assert_eq!(r.status, 1, "{}\n{}", r.stdout, r.stderr);
    let run = t.only_run();
    let s = t.status(&run);
    assert_eq!(indexes(&s, "failed"), vec![0]);
    assert!(
        s["tasks"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 2s"),
        "{}",
        s["tasks"][0]
    );
    assert_eq!(
        s["tasks"][0]["attempts"], 1,
        "a timeout is not retried by default"
    );
    assert_eq!(
        indexes(&s, "succeeded"),
        vec![1],
        "exit 2 is listed: retried"
    );
    assert_eq!(s["tasks"][1]["attempts"], 2);
    let tasks = tasks_started_by(moto, &cluster_of(&t, &run), &run);
    let held = tasks
        .iter()
        .find(|t| env_of(t, "JOBRUN_INDEX").as_deref() == Some("0"))
        .unwrap();
    assert_eq!(held["stopCode"], "UserInitiated", "StopTask was called");
}

#[test]
fn logs_follow_streams_until_the_task_stops() {
    let moto = services::moto();
    let t = fargate_job(moto, "");
    let run = t.submit_detached(&[json!({"fake": {"hold": true, "logs": ["first line"]}})]);
    let mut follow = t.spawn(&["logs", &run, "--index", "0", "--follow"]);
    // It keeps following while the task runs…
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(follow.try_wait().unwrap().is_none(), "follow ended early");
    // …and ends once the task has stopped.
    let c = t.run(&["cancel", &run]);
    assert_eq!(c.status, 0, "{}", c.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while follow.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "follow did not end");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = follow.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("first line"));
}

/// The fake Fargate itself, on the pinned moto: `tests/moto/check_plugin.py`, the plugin's own
/// check (each scripted outcome, Spot, logs, StopTask), passes against a moto of its own.
#[test]
fn the_fake_fargate_plugin_passes_its_own_check() {
    let moto = services::own_moto();
    let out = std::process::Command::new(services::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/moto/check_plugin.py"
        ))
        .arg(moto.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check_plugin.py:\n{}\n{}\nmoto's log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        moto.log_text()
    );
}

/// The reading commands never act (issue "one spelling per concept", item 7): with nobody
/// driving a run (its background driver stopped), `status` and `results` describe its tasks
/// and show what they find, and start nothing — the task that waits for a free slot keeps
/// waiting, and `status` says what moves it on; `watch` does.
#[test]
fn status_and_results_look_at_a_run_and_never_start_its_tasks() {
    let moto = services::moto();
    let t = fargate_job(moto, "");
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace("[run]\n", "[run]\nconcurrency = 1\n"),
    );
    let hold = json!({"fake": {"hold": true}});
    let run = t.submit_detached(&[hold.clone(), hold]);
    let killed = std::process::Command::new("pkill")
        .args(["-f", &format!("watch {run} --background")])
        .status()
        .unwrap();
    assert!(killed.success(), "the run had a background driver");
    let cluster = cluster_of(&t, &run);
    let started = tasks_started_by(moto, &cluster, &run);
    assert_eq!(started.len(), 1, "concurrency 1");
    ecs(
        moto,
        "StopTask",
        json!({"cluster": cluster, "task": started[0]["taskArn"]}),
    );

    let r = t.run(&["status", &run, "-o", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json()["failed"], 1, "the stop is seen: {}", r.stdout);
    assert!(
        r.stderr.contains(&format!(
            "1 tasks wait to start: `jobrun watch {run}` moves the run on"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(t.run(&["results", &run, "-o", "json"]).status, 0);
    assert_eq!(
        tasks_started_by(moto, &cluster, &run).len(),
        1,
        "nothing started"
    );

    // A driver moves it on.
    let mut watch = t.command(&["watch", &run, "-o", "json"]);
    let mut child = watch.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tasks_started_by(moto, &cluster, &run).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "watch started the waiting task"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(t.run(&["cancel", &run]).status, 0);
    assert!(child.wait().unwrap().code().is_some());
}

/// Where the time went: each attempt's instants as DescribeTasks reports them (the fake
/// Fargate backdates createdAt, pullStartedAt and pullStoppedAt before startedAt) are kept
/// per attempt, and the summary, `status` and `status -o json` show the phases.
#[test]
fn a_run_says_where_its_tasks_time_went_phase_by_phase() {
    let moto = services::moto();
    let t = fargate_job(moto, "");
    let phases = |provisioning: u32, pull: u32| json!({"fake": {"phases": {"provisioning": provisioning, "pull": pull, "start": 2, "stop": 3}}});
    let mut retried = phases(10, 60);
    retried["fake"]["stop_code"] = json!("SpotInterruption");
    retried["fake"]["until_attempt"] = json!(2);
    let run = t.submit_detached(&[phases(10, 40), phases(20, 50), retried]);
    let w = t.run(&["watch", &run]);
    assert_eq!(w.status, 0, "{}\n{}", w.stdout, w.stderr);
    assert!(
        w.stdout
            .contains("pull 55.0s median, p90 1m, max 1m; start 2.0s median"),
        "four attempts pulled 40, 50, 60 and 60 s: {}",
        w.stdout
    );

    let s = t.status(&run);
    let pull: Vec<&Value> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["phase"] == "pull")
        .collect();
    assert_eq!(pull[0]["n"], 4, "{}", s["phases"]);
    assert_eq!(pull[0]["median_secs"], 55.0);
    let kinds: Vec<&str> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["provisioning", "pull", "start", "run", "stop"]);
    let attempts = s["tasks"][2]["timelines"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "one timeline per attempt: {attempts:?}");
    assert_eq!(attempts[1]["attempt"], 2);
    for key in [
        "created_at",
        "pull_started_at",
        "pull_stopped_at",
        "started_at",
        "stopped_at",
    ] {
        assert!(attempts[1][key].is_string(), "{key} in {}", attempts[1]);
    }
    let text = t.run(&["status", &run]);
    assert!(
        text.stdout.contains("phases  provisioning 10.0s median"),
        "{}",
        text.stdout
    );
}

/// A task ECS stops with `OutOfMemoryError` (the fake Fargate's first attempt) is run again
/// at the next Fargate size through RunTask's task-level cpu/memory override, whatever
/// `retry_exit_codes` says; the other task keeps the task definition's size.
#[test]
fn out_of_memory_on_fargate_runs_again_at_the_next_size() {
    let moto = services::moto();
    let t = fargate_job(moto, "");
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace("[run]\n", "[run]\nmax_attempts = 2\n"),
    );
    let run = t.submit_detached(&[
        json!({"ok": true}),
        json!({"fake": {"oom_until_attempt": 2}}),
    ]);
    let w = t.run(&["watch", &run]);
    assert_eq!(w.status, 0, "{}\n{}", w.stdout, w.stderr);
    assert!(
        w.stdout.contains(
            "1 task needed 0.25 vCPU / 1GB (retried after out-of-memory at 0.25 vCPU / 512MB)"
        ),
        "{}",
        w.stdout
    );
    let s = t.status(&run);
    assert_eq!(s["tasks"][1]["attempts"], 2, "{}", s["tasks"][1]);
    assert_eq!(
        s["tasks"][1]["size"],
        json!({"cpu": 0.25, "memory_mib": 1024})
    );

    // What RunTask was asked: the override on the second attempt only.
    let started_by = t.record(&run)["ecs"]["started_by"]
        .as_str()
        .unwrap()
        .to_string();
    let tasks = tasks_started_by(moto, &cluster_of(&t, &run), &started_by);
    let sized: Vec<(String, String, Value, Value)> = tasks
        .iter()
        .map(|task| {
            (
                env_of(task, "JOBRUN_INDEX").unwrap(),
                env_of(task, "JOBRUN_ATTEMPT").unwrap(),
                task["overrides"]["cpu"].clone(),
                task["overrides"]["memory"].clone(),
            )
        })
        .collect();
    for (index, attempt, cpu, memory) in &sized {
        match (index.as_str(), attempt.as_str()) {
            ("1", "2") => assert_eq!((cpu, memory), (&json!("256"), &json!("1024")), "{sized:?}"),
            _ => assert!(cpu.is_null() && memory.is_null(), "{sized:?}"),
        }
    }
    assert_eq!(sized.len(), 3, "{sized:?}");
}

//! Task outputs on ECS against moto: the jobrun in the job's image (`jobrun task` in direct
//! mode, `jobrun agent` in queue mode) uploads each task's JOBRUN_OUTPUT_DIR to the run's
//! prefix, the dispatcher keeps the result from its receipt, the reduce downloads every map
//! task's folder first, and `results --download` fetches them back. moto runs no containers:
//! the test runs the in-image jobrun itself (this very binary) with the environment ECS would
//! give it, and moto's fake task holds RUNNING until the attempt's receipt is in the bucket
//! (`"hold_until_receipt"`), as a real task runs until its jobrun is done.

use crate::harness::{Test, task_binary};
use crate::queue::{Agent, outputs, queue_job, s3_keys};
use crate::services::{self, Service};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A direct-mode ECS job whose image carries a (stand-in) jobrun, so its task definition runs
/// `jobrun task`; built, pushed and up. `TASK` in `toml_extra` is the test task's host path.
pub(crate) fn direct_job(moto: &Service, command: &str, toml_extra: &str) -> Test {
    let reg = services::plain_registry();
    let task = task_binary().display().to_string();
    let t = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n{}",
        reg.host(),
        toml_extra.replace("TASK", &task)
    ))
    .envs(services::moto_env_for(moto));
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace(
            r#"command = ["/task"]"#,
            &format!("command = {}", command.replace("TASK", &task)),
        ),
    );
    for step in [&["build", "--push"][..], &["up"]] {
        let r = t.run(step);
        assert_eq!(r.status, 0, "{step:?}: {}", r.stderr);
    }
    t
}

/// What ECS would start: the task's environment and command, from RunTask's overrides.
fn overrides(task: &Value) -> (BTreeMap<String, String>, Vec<String>) {
    let c = &task["overrides"]["containerOverrides"][0];
    let env = c["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            let s = |k: &str| kv[k].as_str().unwrap().to_string();
            (s("name"), s("value"))
        })
        .collect();
    let command = c["command"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    (env, command)
}

/// Where the test plays a task's container: this machine (a process with a folder of its own),
/// or a container of the job's image on the local engine, started as ECS would start it (the
/// task definition's entrypoint, the overrides' environment and command).
#[derive(Clone, Copy)]
pub(crate) enum Play<'a> {
    Host,
    Container(&'a str),
}

/// Runs `jobrun task` as the task's container would; (exit, stdout, stderr).
fn run_in_task(t: &Test, bucket: &str, task: &Value, play: Play) -> (i32, String, String) {
    let (env, command) = overrides(task);
    let tmp = tempfile::tempdir().unwrap();
    let out = match play {
        Play::Host => {
            let mut args = vec!["task", "--"];
            args.extend(command.iter().map(String::as_str));
            let mut c = t.command(&args);
            c.envs(&env)
                .env("JOBRUN_BUCKET", bucket)
                .env("TMPDIR", tmp.path());
            c.output().unwrap()
        }
        Play::Container(image) => {
            // The task definition's entrypoint and environment, then the overrides.
            let td = task["taskDefinitionArn"].as_str().unwrap();
            let (entry, td_env) = crate::ecs::container_of(services::moto(), td);
            assert_eq!(entry[entry.len() - 2..], ["task", "--"], "{entry:?}");
            let mut c = std::process::Command::new("docker");
            c.args(["run", "--rm", "--network", "host"]);
            let moto = services::moto_env_for(services::moto());
            let more = [("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string())];
            let pairs = moto.into_iter().map(|(k, v)| (k.to_string(), v));
            for (k, v) in pairs.chain(td_env).chain(env).chain(more) {
                c.args(["-e", &format!("{k}={v}")]);
            }
            c.args(["--entrypoint", &entry[0], image]);
            c.args(&entry[1..]).args(&command);
            c.output().unwrap()
        }
    };
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Plays the containers of a run: every task ECS starts is run by `jobrun task` once, until
/// `count` have run; returns each one's stdout by index.
pub(crate) fn play_tasks(
    t: &Test,
    moto: &Service,
    run: &str,
    count: usize,
    play: Play,
) -> BTreeMap<usize, String> {
    let rec = t.record(run);
    let cluster = rec["ecs"]["cluster"].as_str().unwrap().to_string();
    let started_by = rec["ecs"]["started_by"].as_str().unwrap().to_string();
    let bucket = rec["ecs"]["bucket"].as_str().unwrap().to_string();
    let mut done = BTreeMap::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while done.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {count} tasks started; the run: {}",
            done.len(),
            t.status(run)
        );
        let tasks = crate::ecs::tasks_listed(moto, &cluster, ("startedBy", &started_by));
        for task in tasks {
            let (env, _) = overrides(&task);
            let index: usize = env["JOBRUN_INDEX"].parse().unwrap();
            if done.contains_key(&index) {
                continue;
            }
            let (code, out, err) = run_in_task(t, &bucket, &task, play);
            assert_eq!(code, 0, "jobrun task {index}: {err}");
            assert!(err.contains("output files"), "{err}");
            done.insert(index, out);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    done
}

fn column(table: &Value, key: &str) -> Vec<Value> {
    table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.get(key).cloned().unwrap_or(Value::Null))
        .collect()
}

#[test]
fn direct_tasks_upload_their_outputs_and_the_reduce_reads_them() {
    direct_tasks_upload_their_outputs_and_the_reduce_reads_them_on(services::moto());
}

/// The same on LocalStack's S3 and SQS (moto for the rest).
#[test]
fn direct_tasks_upload_their_outputs_and_the_reduce_reads_them_on_localstack() {
    direct_tasks_upload_their_outputs_and_the_reduce_reads_them_on(services::moto_localstack());
}

fn direct_tasks_upload_their_outputs_and_the_reduce_reads_them_on(moto: &'static Service) {
    let t = direct_job(
        moto,
        r#"["TASK", "write", "w.txt", "{index}", "write", "result.json", "{{\"loss\": {config.lr}}}"]"#,
        "\n[reduce]\ncommand = [\"TASK\", \"ls-env\", \"JOBRUN_INPUTS_DIR\", \"write\", \"result.json\", \"{{\\\"n\\\": 3}}\"]\n",
    );
    // `up` made a task definition that runs the command under the image's jobrun.
    let o = outputs(&t);
    assert_eq!(o["outputs"], true, "{o}");
    let td = crate::ecs::ecs(
        moto,
        "DescribeTaskDefinition",
        json!({"taskDefinition": o["task_definition"]}),
    );
    let c = &td["taskDefinition"]["containerDefinitions"][0];
    assert_eq!(c["entryPoint"], json!(["/opt/jobrun/jobrun", "task", "--"]));
    assert!(
        c["environment"].to_string().contains("JOBRUN_BUCKET"),
        "{c}"
    );

    let hold = json!({"hold_until_receipt": true});
    let configs: Vec<Value> = [0.5, 0.1, 0.9]
        .iter()
        .map(|lr| json!({"lr": lr, "fake": hold}))
        .collect();
    let run = t.submit_detached(&configs);
    // What an earlier attempt of task 1 left that this one does not write: removed.
    let bucket = o["bucket"].as_str().unwrap();
    let prefix = format!("jobs/{}/runs/{run}/", t.name);
    ureq::put(&format!(
        "{}/{bucket}/{prefix}outputs/1/stale.txt",
        moto.url()
    ))
    .set("Authorization", &moto.auth("s3"))
    .send_string("old")
    .unwrap();
    let outs = play_tasks(&t, moto, &run, 4, Play::Host);
    let s = t.wait_for(&run, "the run to succeed", |s| s["state"] == "succeeded");
    assert_eq!(s["succeeded"], 4, "{s}");

    // The reduce found exactly the three map tasks' folders.
    let top: Vec<&str> = outs[&3]
        .lines()
        .filter_map(|l| l.strip_prefix("ls:"))
        .filter(|p| !p.contains('/'))
        .collect();
    assert_eq!(top, ["0", "1", "2"], "{}", outs[&3]);
    assert!(outs[&3].contains("ls:1/w.txt"), "{}", outs[&3]);

    // The outputs are in the bucket, under the run's prefix (S3's own listing).
    let keys = s3_keys(moto, bucket, &prefix);
    let stale = format!("{prefix}outputs/1/stale.txt");
    assert!(!keys.contains(&stale), "{stale} in {keys:?}");
    for rel in [
        "outputs/0/w.txt",
        "outputs/2/result.json",
        "reduce/result.json",
        "receipts/0-1.json",
        "receipts/3-1.json",
    ] {
        assert!(
            keys.contains(&format!("{prefix}{rel}")),
            "{rel} in {keys:?}"
        );
    }

    // Results come from the receipts; the download fetches every folder.
    let r = t.run(&["results", "-o", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let table = r.json();
    assert_eq!(
        column(&table, "result.loss"),
        [json!(0.5), json!(0.1), json!(0.9)]
    );
    assert_eq!(table["reduce"]["result.n"], 3);
    let out = t.dir.path().join("out");
    let d = t.run(&["results", "--download", out.to_str().unwrap()]);
    assert_eq!(d.status, 0, "{}", d.stderr);
    assert!(d.stderr.contains("7 files fetched"), "{}", d.stderr);
    assert_eq!(std::fs::read_to_string(out.join("1/w.txt")).unwrap(), "1");
    let again = t.run(&["results", "--download", out.to_str().unwrap()]);
    assert!(again.stderr.contains("7 already there"), "{}", again.stderr);
}

#[test]
fn outputs_that_cannot_be_uploaded_fail_the_attempt_and_say_why() {
    // S3 as the job's roles meet it: a missing key is 403 AccessDenied, not 404.
    let proxy = services::s3_missing_403_proxy(services::moto());
    let t = direct_job(&proxy, r#"["TASK", "write", "w.txt", "x"]"#, "");
    // The in-image jobrun, with a bucket it cannot write: exit 125 and the reason in its log.
    let fake_task = json!({"overrides": {"containerOverrides": [{"environment": [
        {"name": "JOBRUN_JOB", "value": t.name},
        {"name": "JOBRUN_RUN_ID", "value": "r1"},
        {"name": "JOBRUN_INDEX", "value": "0"},
        {"name": "JOBRUN_ATTEMPT", "value": "1"},
    ], "command": [task_binary().display().to_string(), "write", "w.txt", "x"]}]}});
    let (code, _, err) = run_in_task(&t, "no-such-bucket-jobrun", &fake_task, Play::Host);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("could not be uploaded"), "{err}");
    assert!(err.contains("NoSuchBucket"), "{err}");

    // ECS reports that exit with no receipt: the attempt fails and says what happened.
    let run = t.submit_detached(&[json!({"fake": {"exit": 125}})]);
    let s = t.wait_for(&run, "the task to fail", |s| s["state"] == "failed");
    let why = s["tasks"][0]["reason"].as_str().unwrap();
    assert!(
        why.contains("the jobrun in the task could not upload its outputs"),
        "{why}"
    );
    // The missing receipt was asked for, and answered as S3 answers a prefix-scoped role.
    let stats = proxy.proxy_stats();
    assert!(
        stats["faults"]["s3:missing-key-403"].as_u64() >= Some(1),
        "{stats}"
    );
}

#[test]
fn queue_workers_upload_outputs_and_run_the_reduce_after_the_map_tasks() {
    let moto = services::moto();
    let t = queue_job(
        moto,
        r#"["TASK", "write", "w.txt", "{index}", "write", "result.json", "{{\"i\": {index}}}", "fail-if", "{index}", "1", "0", "fill", "big.bin", "68157440"]"#,
        &"\n[reduce]\ncommand = [\"TASK\", \"ls-env\", \"JOBRUN_INPUTS_DIR\", \"write\", \"result.json\", \"{{\\\"n\\\": 2}}\"]\n"
            .replace("TASK", &task_binary().display().to_string()),
    );
    let run = t.submit_detached(&[json!({}), json!({})]);
    let agent = Agent::start(&t, &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let s = loop {
        let s = t.status(&run);
        if s["state"] == "succeeded" {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not succeed: {s}\nagent:\n{}",
            agent.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(s["succeeded"], 3, "{s}");
    let (code, log) = agent.wait();
    assert_eq!(code, 0, "{log}");
    let r = t.run(&["results", "-o", "json"]);
    let table = r.json();
    assert_eq!(column(&table, "result.i"), [json!(0), json!(1)]);
    assert_eq!(table["reduce"]["result.n"], 2);
    let bucket = outputs(&t)["bucket"].as_str().unwrap().to_string();
    let prefix = format!("jobs/{}/runs/{run}/", t.name);
    let keys = s3_keys(moto, &bucket, &prefix);
    for rel in [
        "outputs/0/w.txt",
        "outputs/1/result.json",
        "reduce/result.json",
    ] {
        assert!(
            keys.contains(&format!("{prefix}{rel}")),
            "{rel} in {keys:?}"
        );
    }
    // Task 0's 65 MiB file went up in two parts (a multipart object's ETag says how many).
    let big = ureq::head(&format!(
        "{}/{bucket}/{prefix}outputs/0/big.bin",
        moto.url()
    ))
    .set("Authorization", &moto.auth("s3"))
    .call()
    .unwrap();
    assert_eq!(big.header("Content-Length"), Some("68157440"));
    let etag = big.header("ETag").unwrap_or_default().to_string();
    assert!(etag.ends_with("-2\""), "{etag}");
}

#[test]
fn in_a_container_of_the_job_image_the_reduce_downloads_its_inputs() {
    // Its map tasks allocate 0 and 300 MiB: the receipts carry what they used.
    // Only x86_64 hosts can run this (the jobrun in the image is this very binary).
    if std::env::consts::ARCH != "x86_64" {
        return;
    }
    let moto = services::moto();
    let base = crate::queue::glibc_base();
    let stripped = crate::queue::stripped_jobrun();
    let reg = services::plain_registry();
    let t = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n\n[image]\nplatform = \"linux/amd64\"\n\n[reduce]\ncommand = [\"/task\", \"ls-env\", \"JOBRUN_INPUTS_DIR\", \"write\", \"result.json\", \"{{{{\\\"n\\\": 2}}}}\"]\n",
        reg.host(),
    ))
    .envs(services::moto_env_for(moto))
    .jobrun(stripped);
    t.write("Dockerfile", &format!("FROM {base}\nCOPY task /task\n"));
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace(
            r#"command = ["/task"]"#,
            r#"command = ["/task", "write", "w.txt", "{index}", "alloc", "{config.mib}"]"#,
        ),
    );
    for step in [&["build", "--push"][..], &["up"]] {
        let r = t.run(step);
        assert_eq!(r.status, 0, "{step:?}: {}", r.stderr);
    }
    let hold = json!({"hold_until_receipt": true});
    let run = t.submit_detached(&[
        json!({"fake": hold, "mib": 0}),
        json!({"fake": hold, "mib": 300}),
    ]);
    let image = format!("{}:latest", t.name);
    let outs = play_tasks(&t, moto, &run, 3, Play::Container(&image));
    let s = t.wait_for(&run, "the run to succeed", |s| s["state"] == "succeeded");
    assert_eq!(s["succeeded"], 3, "{s}");
    assert!(
        outs[&2].contains("ls:0/w.txt") && outs[&2].contains("ls:1/w.txt"),
        "{}",
        outs[&2]
    );
    // What each map task used, measured by its jobrun from the container's cgroup: the whole
    // container's (jobrun's own memory too), so task 1's 300 MiB show as the difference from
    // task 0, which allocated nothing, within 10 %.
    let rec = t.record(&run);
    let usage = |i: usize| rec["tasks"][i]["bills"][0]["usage"].clone();
    let peak = |i: usize| {
        usage(i)["memory_peak_mib"]
            .as_f64()
            .unwrap_or_else(|| panic!("{}", usage(i)))
    };
    let grew = peak(1) - peak(0);
    assert!((grew - 300.0).abs() <= 30.0, "{} vs {}", usage(1), usage(0));
    assert!(usage(1)["cpu_secs"].as_f64().is_some(), "{}", usage(1));
    let table = t.run(&["results", "-o", "json"]).json();
    // Said in full when it fails: the reduce's line, and each task's attempts and result.
    let status = t.run(&["status", &run, "--tasks", "-o", "json"]).stdout;
    assert_eq!(table["reduce"]["result.n"], 2, "{table}\n{status}");
}

/// `submit --reuse` on ECS: the tasks an earlier run has twins of are not started; their
/// outputs are copied within the bucket by CopyObject (counted at a proxy: no download, no
/// upload), so the new run's prefix has them, and `results` shows every row.
#[test]
fn on_ecs_reused_tasks_are_copied_in_the_bucket_and_not_started() {
    on_ecs_reused_tasks_are_copied_in_the_bucket_and_not_started_on(services::moto());
}

/// The same on LocalStack's S3 and SQS (moto for the rest).
#[test]
fn on_ecs_reused_tasks_are_copied_in_the_bucket_and_not_started_on_localstack() {
    on_ecs_reused_tasks_are_copied_in_the_bucket_and_not_started_on(services::moto_localstack());
}

fn on_ecs_reused_tasks_are_copied_in_the_bucket_and_not_started_on(moto: &'static Service) {
    let t = direct_job(
        moto,
        r#"["TASK", "write", "w.txt", "{config.lr}", "write", "result.json", "{{\"loss\": {config.lr}}}"]"#,
        "",
    );
    let hold = json!({"hold_until_receipt": true});
    let configs = |lrs: &[f64]| -> Vec<Value> {
        lrs.iter()
            .map(|lr| json!({"lr": lr, "fake": hold}))
            .collect()
    };
    let first = t.submit_detached(&configs(&[0.5, 0.1]));
    play_tasks(&t, moto, &first, 2, Play::Host);
    t.wait_for(&first, "the first run", |s| s["state"] == "succeeded");

    let proxy = services::scripted_proxy(moto);
    t.write(
        "again.jsonl",
        &configs(&[0.5, 0.1, 0.9])
            .iter()
            .map(|c| format!("{c}\n"))
            .collect::<String>(),
    );
    let out = t
        .command(&[
            "submit",
            "--configs",
            "again.jsonl",
            "--reuse",
            "--detach",
            "-o",
            "json",
        ])
        .env("AWS_ENDPOINT_URL", proxy.url())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = run["run_id"].as_str().unwrap().to_string();
    let ops = proxy.proxy_stats()["requests"].clone();
    assert_eq!(
        ops["s3:CopyObject"], 4,
        "two files of each of the two reused tasks: {ops}"
    );
    assert!(
        ops.get("s3:GetObject").is_none(),
        "nothing downloaded: {ops}"
    );

    // Only the new configuration is started; the run succeeds with it.
    let outs = play_tasks(&t, moto, &run, 1, Play::Host);
    assert_eq!(
        outs.keys().copied().collect::<Vec<_>>(),
        [2],
        "only task 2 ran"
    );
    let s = t.wait_for(&run, "the second run", |s| s["state"] == "succeeded");
    assert_eq!(s["reused"], 2, "{s}");
    let bucket = outputs(&t)["bucket"].as_str().unwrap().to_string();
    let keys = s3_keys(
        moto,
        &bucket,
        &format!("jobs/{}/runs/{run}/outputs/", t.name),
    );
    for i in 0..3 {
        let key = format!("jobs/{}/runs/{run}/outputs/{i}/w.txt", t.name);
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    let table = t.run(&["results", &run, "-o", "json"]).json();
    assert_eq!(
        column(&table, "result.loss"),
        [json!(0.5), json!(0.1), json!(0.9)]
    );
}

#[test]
fn in_aws_a_task_uploads_regular_files_only_and_a_pipe_as_result_fails_it() {
    let moto = services::moto();
    let t = direct_job(
        moto,
        r#"["TASK", "write", "w.txt", "x", "symlink", "/etc/hostname", "link.txt", "fifo", "result.json"]"#,
        "",
    );
    let hold = json!({"hold_until_receipt": true});
    let run = t.submit_detached(&[json!({ "fake": hold })]);
    // ECS's one task, played by `jobrun task` as its container would run it.
    let rec = t.record(&run);
    let (cluster, started_by) = (&rec["ecs"]["cluster"], &rec["ecs"]["started_by"]);
    let bucket = rec["ecs"]["bucket"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let task = loop {
        let listed = crate::ecs::tasks_listed(
            moto,
            cluster.as_str().unwrap(),
            ("startedBy", started_by.as_str().unwrap()),
        );
        if let Some(task) = listed.into_iter().next() {
            break task;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the task never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let (code, _, err) = run_in_task(&t, &bucket, &task, Play::Host);
    assert_eq!(code, 0, "the receipt says why, not the exit code: {err}");
    assert!(err.contains("result.json is a named pipe"), "{err}");
    let s = t.wait_for(&run, "the task to fail", |s| s["state"] == "failed");
    let why = s["tasks"][0]["reason"].as_str().unwrap();
    assert!(why.contains("result.json is a named pipe"), "{why}");
    // The regular file went up; the link and the pipe did not (nothing was read through them).
    let prefix = format!("jobs/{}/runs/{run}/outputs/0/", t.name);
    let keys = s3_keys(moto, &bucket, &prefix);
    assert_eq!(keys, [format!("{prefix}w.txt")], "{keys:?}");
}

/// Spot interruptions lose no work: attempt 1 of a task counting to 100 is stopped at 60 (its
/// jobrun gets SIGTERM, as ECS sends before a Spot task goes; moto's task ends as
/// SpotInterruption), the jobrun keeps its checkpoint folder under the run's
/// `checkpoints/0/` before it exits, and attempt 2's jobrun restores it: it counts on from 60.
#[test]
fn on_ecs_a_task_stopped_at_60_resumes_from_its_checkpoint() {
    use crate::checkpoints::{counter, wait_for_count};
    let moto = services::moto();
    let t = direct_job(moto, r#"["TASK", "count", "100", "0.05"]"#, "");
    let stop = json!({"hold_until_receipt": true, "stop_code": "SpotInterruption", "exit": 143, "until_attempt": 2});
    let run = t.submit_detached(&[json!({"fake": stop})]);
    let rec = t.record(&run);
    let (cluster, started_by) = (
        rec["ecs"]["cluster"].as_str().unwrap().to_string(),
        rec["ecs"]["started_by"].as_str().unwrap().to_string(),
    );
    let bucket = rec["ecs"]["bucket"].as_str().unwrap().to_string();
    let attempt = |n: &str| loop {
        let listed = crate::ecs::tasks_listed(moto, &cluster, ("startedBy", &started_by));
        let found = listed
            .into_iter()
            .find(|task| overrides(task).0["JOBRUN_ATTEMPT"] == n);
        if let Some(task) = found {
            break task;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // Attempt 1, as its container would run it, stopped at 60.
    let first = attempt("1");
    let (env, command) = overrides(&first);
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["task", "--"];
    args.extend(command.iter().map(String::as_str));
    let child = t
        .command(&args)
        .envs(&env)
        .env("JOBRUN_BUCKET", &bucket)
        .env("TMPDIR", tmp.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let saved = tmp.path().join("jobrun/checkpoint/counter");
    wait_for_count(&saved, 60);
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    let at = counter(&saved);
    let key = format!("jobs/{}/runs/{run}/checkpoints/0/counter", t.name);
    let keys = s3_keys(
        moto,
        &bucket,
        &format!("jobs/{}/runs/{run}/checkpoints/", t.name),
    );
    assert!(keys.contains(&key), "{keys:?}\n{err}");
    // Attempt 2 (a Spot interruption is retried) restores it and counts on from there.
    let second = attempt("2");
    let (code, _, err) = run_in_task(&t, &bucket, &second, Play::Host);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 checkpoint files restored"), "{err}");
    let s = t.wait_for(&run, "the run to succeed", |s| s["state"] == "succeeded");
    let task = &s["tasks"][0];
    assert_eq!(task["attempts"], 2, "{task}");
    assert_eq!(task["result"]["resumed_from"], at, "{task}");
    assert_eq!(t.record(&run)["tasks"][0]["resumed"], json!([2]));
    let text = t.run(&["status", &run]).stdout;
    assert!(text.contains("1 task resumed from a checkpoint"), "{text}");
}

//! `jobrun schedule`: moto keeps schedules but never fires them, so each test reads the schedule
//! back (expression, timezone, target, role, input), then runs exactly what its target runs —
//! the dispatcher's image, with the task definition's entrypoint and environment and the
//! target's command, the scheduled time filled in as Scheduler fills it — against moto.

use crate::ecs::{ecs, fargate_job, tasks_listed};
use crate::harness::Test;
use crate::services::{self, Service};
use serde_json::{Value, json};

/// GET of a REST-JSON API of moto (Scheduler).
fn rest_get(moto: &Service, signing_name: &str, path: &str) -> Result<Value, u16> {
    let r = ureq::get(&format!("{}{path}", moto.url()))
        .set(
            "Authorization",
            &format!("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{signing_name}/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .call();
    match r {
        Ok(resp) => Ok(serde_json::from_str(&resp.into_string().unwrap()).unwrap()),
        Err(ureq::Error::Status(code, _)) => Err(code),
        Err(e) => panic!("moto: {e}"),
    }
}

fn get_schedule(moto: &Service, job: &str, name: &str) -> Result<Value, u16> {
    rest_get(
        moto,
        "scheduler",
        &format!("/schedules/{name}?groupName=jobrun-{job}"),
    )
}

/// `schedule add` of a weekly schedule of one configuration, as the tests below make it.
pub(crate) const ADD_WEEKLY: &[&str] = &[
    "schedule",
    "add",
    "weekly",
    "--cron",
    "0 6 * * MON",
    "--configs",
    "1",
];

/// Every task of a task definition family on the job's cluster (running or stopped).
fn tasks_of(moto: &Service, job: &str, family: &str) -> Vec<Value> {
    tasks_listed(moto, &format!("jobrun-{job}"), ("family", family))
}

/// What the schedule's target runs, due at `at`: the dispatcher's image with its task
/// definition's entrypoint and environment and the target's command, on the host network (moto
/// is on loopback).
fn fire(moto: &Service, t: &Test, schedule: &Value, at: &str) -> std::process::Output {
    let target = &schedule["Target"];
    let input = target["Input"]
        .as_str()
        .unwrap()
        .replace("<aws.scheduler.scheduled-time>", at);
    let input: Value = serde_json::from_str(&input).unwrap();
    let command: Vec<String> = input["containerOverrides"][0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let td = ecs(
        moto,
        "DescribeTaskDefinition",
        json!({"taskDefinition": target["EcsParameters"]["TaskDefinitionArn"]}),
    );
    let container = &td["taskDefinition"]["containerDefinitions"][0];
    let image = container["image"].as_str().unwrap();
    // The image as the engine holds it: its tag is the reference's digest's image.
    let local = local_dispatcher_image(&t.name, image);
    let mut docker = std::process::Command::new("docker");
    docker.args(["run", "--rm", "--network", "host"]);
    for kv in container["environment"].as_array().unwrap() {
        let (k, v) = (kv["name"].as_str().unwrap(), kv["value"].as_str().unwrap());
        docker.args(["-e", &format!("{k}={v}")]);
    }
    for (k, v) in services::moto_env_for(moto) {
        docker.args(["-e", &format!("{k}={v}")]);
    }
    docker.args(["-e", "JOBRUN_POLL_INTERVAL=200ms"]);
    let entry: Vec<&str> = container["entryPoint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    docker.args(["--entrypoint", entry[0], &local]);
    docker.args(&entry[1..]).args(&command);
    docker.output().unwrap()
}

/// The local tag of the pushed dispatcher image (`<job>:dispatcher-<id>`).
fn local_dispatcher_image(job: &str, pushed: &str) -> String {
    assert!(pushed.contains('@'), "pushed by digest: {pushed}");
    let tags =
        crate::harness::docker_lines(&["images", "--format", "{{.Repository}}:{{.Tag}}", job]);
    tags.into_iter()
        .find(|t| t.contains(":dispatcher-"))
        .unwrap_or_else(|| panic!("no dispatcher image of {job}"))
}

#[test]
fn a_schedule_fires_one_run_per_slot_through_the_dispatcher_image() {
    let moto = services::moto();
    let t = fargate_job(moto, "");
    let add = t.run(&[
        "schedule",
        "add",
        "weekly",
        "--cron",
        "0 6 * * MON",
        "--tz",
        "Europe/Berlin",
        "--configs",
        "3",
    ]);
    assert_eq!(add.status, 0, "{}", add.stderr);
    assert!(add.stdout.contains("schedule made"), "{}", add.stdout);

    // Read back as Scheduler holds it.
    let s = get_schedule(moto, &t.name, "weekly").unwrap();
    assert_eq!(s["ScheduleExpression"], "cron(0 6 ? * MON *)");
    assert_eq!(s["ScheduleExpressionTimezone"], "Europe/Berlin");
    assert_eq!(s["FlexibleTimeWindow"]["Mode"], "OFF");
    assert_eq!(s["State"], "ENABLED");
    let target = &s["Target"];
    assert!(
        target["Arn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":cluster/jobrun-{}", t.name))
    );
    assert!(
        target["RoleArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!("role/jobrun-{}-scheduler", t.name))
    );
    assert!(
        target["DeadLetterConfig"]["Arn"]
            .as_str()
            .unwrap()
            .ends_with("-schedule-dlq")
    );
    assert_eq!(target["RetryPolicy"]["MaximumRetryAttempts"], 10);
    assert_eq!(target["EcsParameters"]["LaunchType"], "FARGATE");
    assert!(
        target["Input"]
            .as_str()
            .unwrap()
            .contains("<aws.scheduler.scheduled-time>")
    );
    let td = ecs(
        moto,
        "DescribeTaskDefinition",
        json!({"taskDefinition": target["EcsParameters"]["TaskDefinitionArn"]}),
    )["taskDefinition"]
        .clone();
    assert_eq!(td["family"], format!("jobrun-{}-dispatcher", t.name));
    assert_eq!(td["cpu"], "256");
    assert!(td["taskRoleArn"].as_str().unwrap().ends_with("-dispatcher"));

    // Fired, twice for the same slot: one run of 3 tasks, which the second fire follows.
    let first = fire(moto, &t, &s, "2026-11-30T05:00:00Z");
    let said = said(&first);
    assert!(first.status.success(), "dispatcher: {said}");
    assert!(said.contains("3 succeeded"), "{said}");
    // The run's cost includes the dispatcher's own task.
    assert!(said.contains("of it jobrun's driver in AWS"), "{said}");
    let second = fire(moto, &t, &s, "2026-11-30T05:00:00Z");
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(
        tasks_of(moto, &t.name, &format!("jobrun-{}", t.name)).len(),
        3
    );

    // list: the schedule, its next fire and the run of its last slot.
    let list = t.run(&["schedule", "list", "-o", "json"]);
    assert_eq!(list.status, 0, "{}", list.stderr);
    let line = &list.json()["schedules"][0];
    assert_eq!(line["name"], "weekly");
    assert_eq!(line["state"], "enabled");
    assert_eq!(line["tasks"], 3);
    assert!(line["next_fire"].is_string(), "{line}");
    assert_eq!(line["last_fire"]["key"], "weekly.2026-11-30T05:00:00Z");
    assert_eq!(line["last_fire"]["state"], "succeeded");
    assert_eq!(list.json()["failed_deliveries"], 0);

    // pause / resume keep the definition; run fires the dispatcher's task now.
    assert_eq!(t.run(&["schedule", "pause", "weekly"]).status, 0);
    let paused = get_schedule(moto, &t.name, "weekly").unwrap();
    assert_eq!(paused["State"], "DISABLED");
    assert_eq!(paused["ScheduleExpression"], s["ScheduleExpression"]);
    assert_eq!(paused["Target"], s["Target"]);
    assert_eq!(t.run(&["schedule", "resume", "weekly"]).status, 0);
    assert_eq!(
        get_schedule(moto, &t.name, "weekly").unwrap()["State"],
        "ENABLED"
    );
    let now = t.run(&["schedule", "run", "weekly"]);
    assert_eq!(now.status, 0, "{}", now.stderr);
    let dispatchers = tasks_of(moto, &t.name, &format!("jobrun-{}-dispatcher", t.name));
    assert_eq!(dispatchers.len(), 1);

    // up shows the schedules' group in its plan.
    let plan = t.run(&["up", "--dry-run"]);
    assert_eq!(plan.status, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains("1 schedules"), "{}", plan.stdout);

    // down removes the group (with the schedule), the roles and the dispatcher's definition.
    let down = t.run(&["down", "--yes"]);
    assert_eq!(down.status, 0, "{}", down.stderr);
    assert!(down.stdout.contains("schedule group"), "{}", down.stdout);
    assert_eq!(get_schedule(moto, &t.name, "weekly").unwrap_err(), 404);
    let role = services::query_call(
        moto,
        "iam",
        &[
            ("Action", "GetRole"),
            ("RoleName", &format!("jobrun-{}-scheduler", t.name)),
        ],
    );
    assert!(role.is_err(), "the scheduler role is gone");
}

#[test]
fn a_fire_while_a_run_is_active_is_skipped_then_replaced() {
    let moto = services::moto();
    let t2 = std::sync::Arc::new(fargate_job(moto, ""));
    let t = &*t2;
    t.write("held.jsonl", "{\"fake\": {\"hold\": true}}\n");
    let add = |overlap: &str| {
        let r = t.run(&[
            "schedule",
            "add",
            "nightly",
            "--rate",
            "1 day",
            "--configs",
            "held.jsonl",
            "--overlap",
            overlap,
        ]);
        assert_eq!(r.status, 0, "{}", r.stderr);
    };
    add("skip");
    let s = get_schedule(moto, &t.name, "nightly").unwrap();
    assert_eq!(s["ScheduleExpression"], "rate(1 day)");
    let family = format!("jobrun-{}", t.name);
    // The first slot's dispatcher watches a task that never ends: it is left running.
    let first = {
        let (t, s) = (t2.clone(), s.clone());
        std::thread::spawn(move || fire(services::moto(), &t, &s, "2026-11-29T00:00:00Z"))
    };
    wait_until(|| tasks_of(moto, &t.name, &family).len() == 1);

    let skipped = fire(moto, t, &s, "2026-11-30T00:00:00Z");
    let said = said(&skipped);
    assert!(skipped.status.success(), "{said}");
    assert!(said.contains("skipped"), "{said}");
    assert_eq!(tasks_of(moto, &t.name, &family).len(), 1, "nothing started");
    // The skip is seen from this machine, although it happened in the dispatcher's task.
    let list = t.run(&["schedule", "list", "-o", "json"]);
    assert_eq!(list.status, 0, "{}", list.stderr);
    let last = &list.json()["schedules"][0]["last_fire"];
    assert_eq!(last["key"], "nightly.2026-11-30T00:00:00Z", "{last}");
    assert_eq!(last["state"], "skipped");
    assert!(
        last["reason"].as_str().unwrap().contains("still active"),
        "{last}"
    );

    // With replace, the next slot cancels the held run and starts its own.
    add("replace");
    let s = get_schedule(moto, &t.name, "nightly").unwrap();
    assert!(
        s["Target"]["Input"]
            .as_str()
            .unwrap()
            .contains("v000002.json")
    );
    let replacing = t2.clone();
    let third =
        std::thread::spawn(move || fire(services::moto(), &replacing, &s, "2026-12-01T00:00:00Z"));
    wait_until(|| tasks_of(moto, &t.name, &family).len() == 2);
    let first = first.join().unwrap();
    assert!(!first.status.success(), "the replaced run ended cancelled");
    let stopped: Vec<_> = tasks_of(moto, &t.name, &family)
        .into_iter()
        .filter(|task| task["lastStatus"] == "STOPPED")
        .collect();
    assert_eq!(stopped.len(), 1, "the first slot's task was stopped");
    // The third slot's run holds its task too: stop it so its dispatcher ends.
    let cancel = t.run(&["runs", "-o", "json"]);
    assert_eq!(cancel.status, 0);
    for task in tasks_of(moto, &t.name, &family) {
        if task["lastStatus"] != "STOPPED" {
            ecs(
                moto,
                "StopTask",
                json!({"cluster": format!("jobrun-{}", t.name), "task": task["taskArn"]}),
            );
        }
    }
    let third = third.join().unwrap();
    assert!(third.status.code().is_some(), "the third dispatcher ended");
}

/// What a process printed, stdout then stderr.
fn said(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn wait_until(mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < until, "timed out");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn bad_schedules_are_refused_before_anything_is_made() {
    let moto = services::moto();
    let t = Test::ecs_task("").envs(services::moto_env_for(moto));
    for (args, says) in [
        (vec!["--cron", "0 6 1 * MON"], "both the day of the month"),
        (vec!["--cron", "0 6 * *"], "5-field"),
        (vec!["--cron", "0 6 * * */2"], "no step"),
        (vec!["--rate", "6 weeks"], "not a rate"),
        (vec!["--at", "tomorrow"], "not a time"),
        (
            vec!["--cron", "0 6 * * *", "--tz", "Mars/Olympus"],
            "timezone",
        ),
    ] {
        let mut all = vec!["schedule", "add", "weekly"];
        all.extend(args);
        let r = t.run(&all);
        r.assert_error(2, says);
    }
    let r = t.run(&["schedule", "add", "bad name", "--cron", "0 6 * * *"]);
    r.assert_error(2, "not a schedule name");
    // No AWS side yet: said so, nothing made.
    let weekly = [
        "schedule",
        "add",
        "weekly",
        "--cron",
        "0 6 * * *",
        "--configs",
        "2",
    ];
    let r = t.run(&weekly);
    r.assert_error(2, "has no AWS side");
    assert_eq!(get_schedule(moto, &t.name, "weekly").unwrap_err(), 404);

    let local = Test::with_task("");
    let r = local.run(&weekly);
    r.assert_error(2, "schedules run on AWS");
}

/// EventBridge Scheduler refuses a role it cannot assume yet (IAM settling) with a
/// ValidationException; the first `schedule add` of a job makes the scheduler's role seconds
/// before CreateSchedule names it, so that answer is retried while the role is new.
#[test]
fn the_first_schedule_add_waits_while_its_new_role_settles() {
    let moto = services::own_moto();
    let proxy = services::settling_proxy(&moto, 3.0);
    let t = fargate_job(&proxy, "").jobrun(crate::harness::stripped_jobrun());
    let add = t.run(ADD_WEEKLY);
    assert_eq!(add.status, 0, "{}", add.stderr);
    assert!(add.stdout.contains("schedule made"), "{}", add.stdout);
    assert!(
        proxy.fired("scheduler:role-settling") >= 1,
        "Scheduler refused the new role at least once: {}",
        proxy.proxy_stats()
    );
    assert!(get_schedule(&moto, &t.name, "weekly").is_ok());
}

/// `down` deletes the schedule group, which stays DELETING a while (CreateScheduleGroup answers
/// ConflictException meanwhile), and the schedules' dead-letter queue, whose name SQS keeps for
/// 60 s: `down` waits until the group is gone, and `up` and `schedule add` right after wait for
/// the queue's name instead of failing.
#[test]
fn a_schedule_add_right_after_down_waits_for_the_deleting_group() {
    let moto = services::own_moto();
    let proxy = services::deleted_wait_proxy(&moto, 20.0); // longer than the `up` between
    let t = fargate_job(&proxy, "").jobrun(crate::harness::stripped_jobrun());
    let first = t.run(ADD_WEEKLY);
    assert_eq!(first.status, 0, "{}", first.stderr);
    let down = t.run(&["down", "--yes"]);
    assert_eq!(down.status, 0, "{}", down.stderr);
    assert!(down.stdout.contains("schedule group"), "{}", down.stdout);
    let again = t.run(&["up"]);
    assert_eq!(again.status, 0, "{}", again.stderr);
    let second = t.run(ADD_WEEKLY);
    assert_eq!(second.status, 0, "{}", second.stderr);
    assert!(
        proxy.fired("scheduler:group-deleting") >= 1,
        "the group was met while DELETING: {}",
        proxy.proxy_stats()
    );
    assert!(
        proxy.fired("sqs:deleted-recently") >= 1,
        "the dead-letter queue's name was met while SQS keeps it: {}",
        proxy.proxy_stats()
    );
    assert!(get_schedule(&moto, &t.name, "weekly").is_ok());
}

/// `build --push` of the job; returns the pushed digest.
fn push_digest(t: &Test) -> String {
    let b = t.run(&["build", "--push", "-o", "json"]);
    assert_eq!(b.status, 0, "build --push: {}", b.stderr);
    b.json()["digest"].as_str().unwrap().to_string()
}

/// `build --push` of a new image of the job (one more file in it); returns its digest.
fn push_another(t: &Test, version: &str) -> String {
    t.write("v", version);
    t.write("Dockerfile", "FROM scratch\nCOPY task /task\nCOPY v /v\n");
    push_digest(t)
}

/// Real AWS part 2, item 2: ECR's lifecycle policy (keep the newest `keep_images`) would expire
/// the two images a schedule fires with — its job image and the dispatcher image — after newer
/// pushes, and every fire would stop with CannotPullContainerError. They carry the schedule's
/// keep tag, which jobrun's policy never expires (ECR's rule priorities, played by
/// tests/moto/ecr_lifecycle.py on the registry's images), while other old images go; `schedule
/// list` says when a pinned image is gone anyway.
#[test]
fn the_images_a_schedule_fires_with_outlive_the_lifecycle_policy() {
    let reg = services::own_registry();
    let front = services::ecr_proxy(services::moto(), &reg);
    let moto = &front;
    let t = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\nkeep_images = 1\n",
        reg.host()
    ))
    .envs(services::moto_env_for(moto))
    .jobrun(crate::harness::stripped_jobrun());
    let job_image = push_digest(&t);
    let up = t.run(&["up"]);
    assert_eq!(up.status, 0, "up: {}", up.stderr);
    let add = t.run(&[ADD_WEEKLY, &["-o", "json"]].concat());
    assert_eq!(add.status, 0, "{}", add.stderr);
    let dispatcher = add.json()["dispatcher_image"].as_str().unwrap().to_string();
    let listed = t.run(&["schedule", "list", "-o", "json"]);
    assert_eq!(listed.status, 0, "{}", listed.stderr);
    assert_eq!(listed.json()["schedules"][0]["images_gone"], json!([]));

    let second = push_another(&t, "2");
    push_another(&t, "3");
    let repository = format!("jobrun/{}", t.name);
    let expired = services::expire_ecr(moto, &reg, &repository);
    let digest = |r: &str| r.rsplit('@').next().unwrap().to_string();
    assert_eq!(
        expired,
        vec![second],
        "only the image between (not pinned, not the newest) expires"
    );
    for pinned in [&job_image, &dispatcher] {
        assert!(
            manifest(&reg, &repository, &digest(pinned)).is_ok(),
            "{pinned} is still there"
        );
    }

    // Gone anyway (deleted by hand): `schedule list` says so.
    let del = ureq::delete(&format!(
        "{}/v2/{repository}/manifests/{job_image}",
        reg.url()
    ))
    .call()
    .unwrap();
    assert_eq!(del.status(), 202);
    let listed = t.run(&["schedule", "list", "-o", "json"]);
    assert_eq!(listed.status, 0, "{}", listed.stderr);
    let gone = &listed.json()["schedules"][0]["images_gone"];
    assert_eq!(gone.as_array().unwrap().len(), 1, "{gone}");
    assert!(gone[0].as_str().unwrap().ends_with(&job_image), "{gone}");
    let text = t.run(&["schedule", "list"]);
    assert!(
        text.stdout.contains("is gone from the registry"),
        "{}",
        text.stdout
    );

    // `schedule rm` takes the keep tags off again (BatchDeleteImage by tag, played on the
    // registry by the proxy), and the dispatcher image is an old image like any other.
    let rm = t.run(&["schedule", "rm", "weekly"]);
    assert_eq!(rm.status, 0, "{}", rm.stderr);
    assert!(
        !tags(&reg, &repository)
            .iter()
            .any(|t| t.starts_with("jobrun-keep-")),
        "{:?}",
        tags(&reg, &repository)
    );
    services::expire_ecr(moto, &reg, &repository);
    assert_eq!(
        manifest(&reg, &repository, &digest(&dispatcher)).err(),
        Some(404),
        "the dispatcher image expires once its schedule is gone"
    );
}

/// What the registry answers for a manifest of `repository` by digest: `Ok` while it is
/// there, the HTTP status (404) once it is gone.
fn manifest(reg: &Service, repository: &str, digest: &str) -> Result<Vec<u8>, u16> {
    let path = format!("/v2/{repository}/manifests/{digest}");
    services::registry_get(reg, &path, crate::push::EITHER)
}

/// The tags of a repository in the registry.
fn tags(reg: &Service, repository: &str) -> Vec<String> {
    let got = services::registry_get(
        reg,
        &format!("/v2/{repository}/tags/list"),
        "application/json",
    )
    .unwrap_or_else(|s| panic!("tags of {repository}: {s}"));
    let v: Value = serde_json::from_slice(&got).unwrap();
    v["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Real AWS part 2, item 2, for runs: a run's tasks pull its image until the last one has
/// started (and a retry pulls it again), so `submit` tags it `jobrun-keep-run-<run>`, which the
/// lifecycle policy never expires, and the watcher that sees the run end takes the tag off: the
/// image is then an old image like any other.
#[test]
fn the_image_of_an_unfinished_run_outlives_the_lifecycle_policy() {
    let reg = services::own_registry();
    let front = services::ecr_proxy(services::moto(), &reg);
    let t = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\nkeep_images = 1\n",
        reg.host()
    ))
    .envs(services::moto_env_for(&front))
    .jobrun(crate::harness::stripped_jobrun());
    let image = push_digest(&t);
    let up = t.run(&["up"]);
    assert_eq!(up.status, 0, "up: {}", up.stderr);
    let hold = t.dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let run = t.submit_detached(&[json!({"fake": {"hold_while_file": hold}})]);
    let repository = format!("jobrun/{}", t.name);
    let keep_tag = |tags: Vec<String>| tags.into_iter().find(|t| t.starts_with("jobrun-keep-run-"));
    assert!(
        keep_tag(tags(&reg, &repository)).is_some(),
        "{:?}",
        tags(&reg, &repository)
    );

    let second = push_another(&t, "2");
    push_another(&t, "3");
    let expired = services::expire_ecr(&front, &reg, &repository);
    assert_eq!(
        expired,
        vec![second],
        "the run's image stays while the run lasts"
    );

    std::fs::remove_file(&hold).unwrap();
    let watch = t.run(&["watch", &run]);
    assert_eq!(watch.status, 0, "{}\n{}", watch.stdout, watch.stderr);
    assert_eq!(
        keep_tag(tags(&reg, &repository)),
        None,
        "the end takes the tag off"
    );
    services::expire_ecr(&front, &reg, &repository);
    assert_eq!(
        manifest(&reg, &repository, &image).err(),
        Some(404),
        "once the run has ended its image expires like any other"
    );
}

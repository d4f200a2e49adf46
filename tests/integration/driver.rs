//! The driver in AWS (`[ecs] driver = "aws"`, the default): a run submitted from this machine
//! goes on with nothing of jobrun left running here. moto keeps the driver's ECS service but
//! runs nothing for it, so [`LocalFargate`] plays ECS for that one service: whenever its desired
//! count is above the containers running, it starts one from the service's task definition —
//! the dispatcher image `up` pushed (the engine holds it under its local tag), the definition's
//! entrypoint, command and environment, moto's credentials as the task role's — and stops the
//! newest when the count drops, as ECS does; a container that ends while the count stays is
//! replaced. The job's own tasks are moto's fake Fargate tasks.

use crate::ecs::ecs;
use crate::harness::{Test, docker_lines};
use crate::services::{self, Service};
use crate::unattended::Receiver;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// ECS running the job's driver service on the local engine, until dropped.
pub(crate) struct LocalFargate {
    stop: Arc<AtomicBool>,
    /// How many driver containers were started in all.
    pub started: Arc<AtomicUsize>,
    label: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The driver service's desired count and task definition, as moto holds them.
/// None too when there is no such service, or no cluster (after `down`).
fn driver_service(moto: &Service, job: &str) -> Option<(u64, String)> {
    let out = services::json_call(
        moto,
        "ecs",
        "AmazonEC2ContainerServiceV20141113.DescribeServices",
        json!({"cluster": format!("jobrun-{job}"), "services": [format!("jobrun-{job}-driver")]}),
    )
    .ok()?;
    let s = out["services"].as_array()?.first()?.clone();
    (s["status"] == "ACTIVE").then(|| {
        (
            s["desiredCount"].as_u64().unwrap_or(0),
            s["taskDefinition"].as_str().unwrap_or_default().to_string(),
        )
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

impl LocalFargate {
    /// Plays the driver service of `t`'s job; `env` is added to each container's environment
    /// (moto's address and credentials are).
    pub(crate) fn start(moto: &'static Service, t: &Test, env: &[(&str, &str)]) -> LocalFargate {
        let (stop, started) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let label = format!("jobrun-test-driver={}", t.name);
        let mut extra: Vec<(String, String)> = services::moto_env_for(moto)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        extra.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        extra.push(("JOBRUN_POLL_INTERVAL".into(), "200ms".into()));
        let world = World {
            moto,
            job: t.name.clone(),
            label: label.clone(),
            extra,
            started: Arc::clone(&started),
        };
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                world.tick();
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        LocalFargate {
            stop,
            started,
            label,
            thread: Some(thread),
        }
    }

    /// The driver containers running now.
    pub(crate) fn running(&self) -> Vec<String> {
        running(&self.label)
    }
}

fn running(label: &str) -> Vec<String> {
    docker_lines(&["ps", "-q", "--filter", &format!("label={label}")])
}

struct World {
    /// The moto whose driver service this plays (the shared one, or the one beside LocalStack).
    moto: &'static Service,
    job: String,
    label: String,
    extra: Vec<(String, String)>,
    started: Arc<AtomicUsize>,
}

impl World {
    fn moto(&self) -> &'static Service {
        self.moto
    }

    fn tick(&self) {
        let Some((desired, td)) = driver_service(self.moto(), &self.job) else {
            return;
        };
        let now = running(&self.label);
        if (now.len() as u64) < desired {
            self.run(&td);
        } else if (now.len() as u64) > desired {
            // ECS stops a task with SIGTERM, then SIGKILL after the stop timeout.
            let _ = std::process::Command::new("docker")
                .args(["stop", "-t", "30", &now[0]])
                .output();
        }
    }

    /// One task of the service's task definition, as Fargate starts it.
    fn run(&self, task_definition: &str) {
        let td = ecs(
            self.moto(),
            "DescribeTaskDefinition",
            json!({"taskDefinition": task_definition}),
        );
        let c = &td["taskDefinition"]["containerDefinitions"][0];
        let image = local_image(&self.job, c["image"].as_str().unwrap_or_default());
        let n = self.started.fetch_add(1, Ordering::SeqCst);
        let mut docker = std::process::Command::new("docker");
        docker.args(["run", "-d", "--network", "host", "--label", &self.label]);
        docker.args(["--name", &format!("{}-driver-{n}", self.job)]);
        for kv in c["environment"].as_array().into_iter().flatten() {
            let (k, v) = (kv["name"].as_str().unwrap(), kv["value"].as_str().unwrap());
            docker.args(["-e", &format!("{k}={v}")]);
        }
        for (k, v) in &self.extra {
            docker.args(["-e", &format!("{k}={v}")]);
        }
        let entry = strings(&c["entryPoint"]);
        docker.args(["--entrypoint", &entry[0], &image]);
        docker.args(&entry[1..]).args(strings(&c["command"]));
        let out = docker.output().unwrap();
        assert!(
            out.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The engine's tag of the dispatcher image `up` pushed (`<job>:dispatcher-<id>`).
fn local_image(job: &str, pushed: &str) -> String {
    assert!(pushed.contains('@'), "pushed by digest: {pushed}");
    docker_lines(&["images", "--format", "{{.Repository}}:{{.Tag}}", job])
        .into_iter()
        .find(|t| t.contains(":dispatcher-"))
        .unwrap_or_else(|| panic!("no dispatcher image of {job}"))
}

impl Drop for LocalFargate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let all = docker_lines(&["ps", "-aq", "--filter", &format!("label={}", self.label)]);
        if !all.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f"])
                .args(&all)
                .output();
        }
    }
}

/// The logs of every driver container so far (for failure messages).
fn driver_logs(label: &str) -> String {
    let mut text = String::new();
    for id in docker_lines(&["ps", "-aq", "--filter", &format!("label={label}")]) {
        let out = std::process::Command::new("docker")
            .args(["logs", &id])
            .output()
            .unwrap();
        text.push_str(&format!(
            "--- {id}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    text
}

/// An ecs job whose runs are driven in AWS: built, pushed and `up` against `moto` (which makes
/// the driver's service), with `extra` in its jobrun.toml.
fn driven_job(moto: &Service, extra: &str) -> Test {
    let reg = services::plain_registry();
    let t = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n{extra}",
        reg.host()
    ))
    .unset("JOBRUN_DRIVER")
    .envs(services::moto_env_for(moto));
    let b = t.run(&["build", "--push"]);
    assert_eq!(b.status, 0, "build --push: {}", b.stderr);
    let up = t.run(&["up", "-o", "json"]);
    assert_eq!(up.status, 0, "up: {}", up.stderr);
    assert_eq!(
        up.json()["outputs"]["driver"],
        format!("jobrun-{}-driver", t.name),
        "{}",
        up.stdout
    );
    t
}

/// `status RUN -o json` until `done` says so (at most `limit`).
pub(crate) fn status_until(
    t: &Test,
    run: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = t.status(run);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "not in time: {s}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn finished(s: &Value) -> bool {
    s["finished_at"].is_string()
}

/// The driver's service goes back to 0 and its last container ends once no run is left.
fn driver_gone(moto: &Service, t: &Test, fargate: &LocalFargate) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let desired = driver_service(moto, &t.name).map(|(d, _)| d);
        if desired == Some(0) && fargate.running().is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "driver still wanted ({desired:?}) or running: {}",
            driver_logs(&fargate.label)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_detached_ecs_run_ends_in_aws_with_its_retries_timeout_reduce_and_notice() {
    let moto = services::moto();
    let hook = Receiver::start(0);
    let t = driven_job(
        moto,
        &format!(
            "[notify]\nwebhook = \"{}\"\n\n[reduce]\ncommand = [\"/task\"]\nwhen = \"always\"\n",
            hook.url()
        ),
    );
    // A dry run makes nothing, the driver's image included: it needs no Docker engine.
    let dry = t
        .command(&["up", "--dry-run"])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&dry.stderr).to_string() + &String::from_utf8_lossy(&dry.stdout);
    assert_eq!(dry.status.code(), Some(0), "{said}");
    assert!(
        said.contains("its image is built and pushed by `up`"),
        "the image it would make: {said}"
    );
    assert!(said.contains("plan (nothing was changed)"), "{said}");
    assert!(
        !said.contains("\n  update "),
        "nothing else differs: {said}"
    );
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace("[run]\n", "[run]\ntimeout = \"3s\"\nmax_attempts = 2\n"),
    );
    t.write(
        "configs.jsonl",
        &format!(
            "{}\n{}\n{}\n{}\n",
            json!({"ok": true}),
            json!({"fake": {"oom_until_attempt": 2}}),
            json!({"fake": {"stop_code": "SpotInterruption", "until_attempt": 2}}),
            json!({"fake": {"hold": true}}),
        ),
    );
    // What moto does not play, the proxy in front of it does, for this job only: S3's 409
    // ConditionalRequestConflict to a conditional write (S3 User Guide, "conditional writes":
    // retry it), a throttled UpdateService (ECS API Reference, "Request throttling"), and
    // HeadObject's 403 for a caller without s3:ListBucket (S3 API Reference, HeadObject).
    moto.fault(json!([
        {"service": "s3", "operation": "PutObject", "status": 409,
         "code": "ConditionalRequestConflict", "match": "driver.json"},
        {"service": "ecs", "operation": "UpdateService", "status": 400,
         "code": "ThrottlingException", "message": "Rate exceeded",
         "match": format!("jobrun-{}-driver", t.name)},
        {"service": "s3", "operation": "HeadObject", "status": 403,
         "code": "AccessDenied", "match": t.name.clone()},
    ]));
    let fargate = LocalFargate::start(moto, &t, &[]);
    let r = t.run(&[
        "submit",
        "--configs",
        "configs.jsonl",
        "--detach",
        "-o",
        "json",
    ]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    let run = r.json()["run_id"].as_str().unwrap().to_string();
    // Nothing of jobrun goes on here: no background driver was started for the run.
    assert!(
        !t.state
            .path()
            .join("runs")
            .join(&run)
            .join("driver.log")
            .exists(),
        "a background driver was started here"
    );
    assert_eq!(
        t.record(&run)["ecs"]["driver"],
        format!("jobrun-{}-driver", t.name)
    );

    let s = status_until(&t, &run, Duration::from_secs(180), finished);
    let logs = driver_logs(&fargate.label);
    let tasks = s["tasks"].as_array().unwrap();
    let brief: Vec<(String, u64)> = tasks
        .iter()
        .map(|t| {
            (
                t["state"].as_str().unwrap().to_string(),
                t["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        [
            ("succeeded".into(), 1),
            ("succeeded".into(), 2),
            ("succeeded".into(), 2),
            ("failed".into(), 1),
            ("succeeded".into(), 1),
        ],
        "map tasks, then the reduce: {s}\n{logs}"
    );
    assert!(
        tasks[3]["reason"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 3s"),
        "{}",
        tasks[3]
    );
    assert_eq!(tasks[4]["stage"], "reduce");
    assert_eq!(
        s["tasks"][1]["size"],
        json!({"cpu": 0.25, "memory_mib": 1024})
    );
    // The end was told once, by the driver.
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook.got().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = hook.got();
    assert_eq!(got.len(), 1, "{got:?}\n{logs}");
    assert_eq!(got[0].1["run_id"], run.as_str());
    driver_gone(moto, &t, &fargate);
    // status says which driver drove it, and that it let go.
    let text = t.run(&["status", &run]);
    assert!(
        text.stdout.contains("driver  in AWS: task "),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("let go at"), "{}", text.stdout);
    assert_eq!(hook.got().len(), 1, "told once");
    // moto's proxy checked every request, here and in the driver, against AWS's models (and
    // refuses a violation, which would have failed a command).
    let model = &moto.proxy_stats()["model"];
    let checked = model["operations"].to_string();
    for op in [
        "ecs:UpdateService",
        "ecs:CreateService",
        "ecs:RunTask",
        "ecs:StopTask",
    ] {
        assert!(checked.contains(op), "{op} not model-checked: {model}");
    }
    for op in ["s3:PutObject", "ecs:UpdateService", "s3:HeadObject"] {
        assert!(moto.fired(op) >= 1, "{op}: {}", moto.proxy_stats());
    }
    // down takes the driver's service with the rest.
    let down = t.run(&["down", "--yes"]);
    assert_eq!(down.status, 0, "{}", down.stderr);
    assert!(
        down.stdout.contains(&format!("jobrun-{}-driver", t.name)),
        "{}",
        down.stdout
    );
    assert!(
        driver_service(moto, &t.name).is_none(),
        "the driver's service is gone"
    );
}

#[test]
fn a_killed_driver_is_replaced_and_the_run_ends_exactly_once() {
    a_killed_driver_is_replaced_and_the_run_ends_exactly_once_on(services::moto());
}

/// The same on LocalStack's S3 and SQS (moto for the rest).
#[test]
fn a_killed_driver_is_replaced_and_the_run_ends_exactly_once_on_localstack() {
    a_killed_driver_is_replaced_and_the_run_ends_exactly_once_on(services::moto_localstack());
}

fn a_killed_driver_is_replaced_and_the_run_ends_exactly_once_on(moto: &'static Service) {
    let hook = Receiver::start(0);
    let t = driven_job(moto, &format!("[notify]\nwebhook = \"{}\"\n", hook.url()));
    // Four tasks, each running until the test lets it go.
    let gate = t.state.path().join("gate");
    std::fs::write(&gate, "").unwrap();
    let hold = json!({"fake": {"hold_while_file": gate}});
    let configs: Vec<Value> = (0..4).map(|_| hold.clone()).collect();
    let lease = [("JOBRUN_DRIVER_LEASE", "3s")];
    let fargate = LocalFargate::start(moto, &t, &lease);
    let run = t.submit_detached(&configs);
    let running = status_until(&t, &run, Duration::from_secs(120), |s| s["running"] == 4);
    assert_eq!(running["queued"], 0);
    let first = status_until(&t, &run, Duration::from_secs(30), |s| {
        s["driver"]["alive"] == true
    });
    let holder = first["driver"]["holder"].as_str().unwrap().to_string();

    // Two drivers at once (a service asked for 2): the second only follows.
    let service = |n: u64| {
        ecs(
            moto,
            "UpdateService",
            json!({"cluster": format!("jobrun-{}", t.name), "service": format!("jobrun-{}-driver", t.name), "desiredCount": n}),
        )
    };
    service(2);
    let deadline = Instant::now() + Duration::from_secs(60);
    while fargate.running().len() < 2 {
        assert!(Instant::now() < deadline, "no second driver");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Longer than a lease: the first keeps renewing it, the second never takes it.
    std::thread::sleep(Duration::from_secs(5));
    let both = t.status(&run);
    assert_eq!(both["driver"]["since"], first["driver"]["since"], "{both}");
    assert_eq!(both["driver"]["alive"], true);
    service(1);
    while fargate.running().len() > 1 {
        std::thread::sleep(Duration::from_millis(200));
    }

    // ECS replaces a task that dies (here: killed); the next driver takes the run over once
    // the lease lapses.
    let killed = Instant::now();
    let victims = fargate.running();
    assert_eq!(victims.len(), 1, "one driver");
    let k = std::process::Command::new("docker")
        .args(["kill", &victims[0]])
        .output()
        .unwrap();
    assert!(k.status.success());
    let taken = status_until(&t, &run, Duration::from_secs(120), |s| {
        s["driver"]["alive"] == true && s["driver"]["since"] != first["driver"]["since"]
    });
    let replaced_in = killed.elapsed();
    assert!(
        replaced_in < Duration::from_secs(120),
        "replaced after {replaced_in:?}"
    );
    assert!(fargate.started.load(Ordering::SeqCst) >= 2);
    eprintln!("driver replaced {replaced_in:?} after it was killed (holder was {holder})");
    std::fs::remove_file(&gate).unwrap();
    let s = status_until(&t, &run, Duration::from_secs(120), finished);
    assert_eq!(s["succeeded"], 4, "{s}\n{}", driver_logs(&fargate.label));
    assert_eq!(taken["state"], "running");
    // Nothing was started twice: one attempt, one ECS task, per configuration.
    let started_by = t.record(&run)["ecs"]["started_by"]
        .as_str()
        .unwrap()
        .to_string();
    let cluster = format!("jobrun-{}", t.name);
    let tasks = crate::ecs::tasks_listed(moto, &cluster, ("startedBy", &started_by));
    assert_eq!(tasks.len(), 4, "one ECS task per configuration");
    driver_gone(moto, &t, &fargate);
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook.got().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(hook.got().len(), 1, "told once: {:?}", hook.got());
}

#[test]
fn cancel_from_here_is_done_by_the_driver_and_a_gone_driver_is_reported() {
    let moto = services::moto();
    let t = driven_job(moto, "");
    let fargate = LocalFargate::start(moto, &t, &[("JOBRUN_DRIVER_LEASE", "3s")]);
    let run = t.submit_detached(&[
        json!({"fake": {"hold": true}}),
        json!({"fake": {"hold": true}}),
    ]);
    status_until(&t, &run, Duration::from_secs(120), |s| s["running"] == 2);
    let c = t.run(&["cancel", &run]);
    assert_eq!(c.status, 0, "{}\n{}", c.stdout, c.stderr);
    let s = status_until(&t, &run, Duration::from_secs(60), finished);
    assert_eq!(
        s["cancelled"].as_u64().unwrap() + s["failed"].as_u64().unwrap(),
        2,
        "{s}"
    );
    driver_gone(moto, &t, &fargate);
    drop(fargate);

    // A run whose driver is gone (its container killed, nothing to replace it): status says so
    // and names the command that starts one again, which does.
    let run = t.submit_detached(&[json!({"fake": {"hold": true}})]);
    let fargate = LocalFargate::start(moto, &t, &[("JOBRUN_DRIVER_LEASE", "3s")]);
    status_until(&t, &run, Duration::from_secs(120), |s| {
        s["driver"]["alive"] == true
    });
    // The driver dies and its service gives up on it (desired 0).
    drop(fargate);
    ecs(
        moto,
        "UpdateService",
        json!({"cluster": format!("jobrun-{}", t.name), "service": format!("jobrun-{}-driver", t.name), "desiredCount": 0}),
    );
    let gone = status_until(&t, &run, Duration::from_secs(30), |s| {
        s["driver"]["restart"].is_string()
    });
    assert_eq!(
        gone["driver"]["restart"],
        format!("jobrun submit --resume {run}")
    );
    let text = t.run(&["status", &run]);
    assert!(text.stdout.contains("driver  gone"), "{}", text.stdout);
    let fargate = LocalFargate::start(moto, &t, &[("JOBRUN_DRIVER_LEASE", "3s")]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(fargate.running().is_empty(), "nothing wants a driver yet");
    let r = t.run(&["submit", "--resume", &run, "--detach"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    status_until(&t, &run, Duration::from_secs(60), |s| {
        s["driver"]["alive"] == true
    });
    let c = t.run(&["cancel", &run]);
    assert_eq!(c.status, 0, "{}", c.stderr);
    status_until(&t, &run, Duration::from_secs(60), finished);
    driver_gone(moto, &t, &fargate);
}

/// Queue mode is driven in AWS too: the driver sends the messages and sizes the workers (here,
/// agents as processes take them), and ends when the run does.
#[test]
fn a_queue_run_is_driven_in_aws_too() {
    let moto = services::moto();
    let t = crate::queue::queue_folder(moto, crate::queue::COMMAND, "").unset("JOBRUN_DRIVER");
    for args in [&["build", "--push"][..], &["up"]] {
        let r = t.run(args);
        assert_eq!(r.status, 0, "{args:?}: {}", r.stderr);
    }
    let fargate = LocalFargate::start(moto, &t, &[]);
    let work: Vec<Value> = (0..4)
        .map(|i| json!({"sleep": 0, "exit": 0, "n": i}))
        .collect();
    let run = t.submit_detached(&work);
    // The driver sent the messages: the agents find them.
    let (a, b) = (
        crate::queue::Agent::start(&t, &[]),
        crate::queue::Agent::start(&t, &[]),
    );
    assert_eq!((a.wait().0, b.wait().0), (0, 0));
    let s = status_until(&t, &run, Duration::from_secs(120), finished);
    assert_eq!(s["succeeded"], 4, "{s}\n{}", driver_logs(&fargate.label));
    driver_gone(moto, &t, &fargate);
}

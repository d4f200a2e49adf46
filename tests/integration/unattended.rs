//! Submits fired from cron or twice by a person: `--key` makes one run per key (also when two
//! machines race, for ECS jobs), and the overlap policy skips or replaces while another run of
//! the job is active; `jobrun runs` shows skipped submissions with their reason.

use crate::ecs::{ecs, fargate_job};
use crate::harness::Test;
use crate::services::{self, Service};
use serde_json::{Value, json};

#[test]
fn a_key_makes_one_run_and_a_second_submit_follows_it() {
    let t = Test::with_task(r#"command = ["/task", "out", "task {index}"]"#);
    t.build();
    let first = t.run(&[
        "submit",
        "--configs",
        "2",
        "--key",
        "2026-W48",
        "--detach",
        "-o",
        "json",
    ]);
    assert_eq!(first.status, 0, "{}", first.stderr);
    let run = first.json()["run_id"].as_str().unwrap().to_string();

    let again = t.run(&[
        "submit",
        "--configs",
        "2",
        "--key",
        "2026-W48",
        "--detach",
        "-o",
        "json",
    ]);
    assert_eq!(again.status, 0, "{}", again.stderr);
    let again = again.json();
    assert_eq!(again["started"], false);
    assert_eq!(again["run_id"], run.as_str());
    assert_eq!(t.run_count(), 1, "nothing new was made");

    // Attached, the second submit follows the key's run to its end and gives its exit code.
    let attached = t.run(&["submit", "--configs", "2", "--key", "2026-W48"]);
    assert_eq!(
        attached.status, 0,
        "{}\n{}",
        attached.stdout, attached.stderr
    );
    assert!(
        attached
            .stderr
            .contains(&format!("key 2026-W48 made run {run}")),
        "{}",
        attached.stderr
    );
    assert_eq!(t.run_count(), 1);
    let s = t.status(&run);
    assert_eq!(
        (s["succeeded"].as_u64(), s["key"].as_str()),
        (Some(2), Some("2026-W48"))
    );
    let runs = t.run(&["runs"]);
    assert!(runs.stdout.contains("key 2026-W48"), "{}", runs.stdout);

    // Another key is another run; a key that is no plain word is one clear error.
    let other = t.run(&["submit", "--configs", "1", "--key", "2026-W49", "--detach"]);
    assert_eq!(other.status, 0, "{}", other.stderr);
    assert_eq!(t.run_count(), 2);
    t.run(&["submit", "--configs", "1", "--key", "../etc"])
        .assert_error(2, "--key `../etc` must be");
    assert_eq!(t.run_count(), 2);
}

#[test]
fn overlap_skip_starts_nothing_and_replace_cancels_the_active_run() {
    let t = Test::with_task(r#"command = ["/task", "sleep", "{config.sleep}"]"#);
    t.build();
    t.write("long.jsonl", "{\"sleep\": 60}\n");
    t.write("short.jsonl", "{\"sleep\": 0}\n");
    let long = t.run(&[
        "submit",
        "--configs",
        "long.jsonl",
        "--detach",
        "-o",
        "json",
    ]);
    assert_eq!(long.status, 0, "{}", long.stderr);
    let active = long.json()["run_id"].as_str().unwrap().to_string();
    t.wait_for(&active, "its task running", |s| s["running"] == 1);

    // skip: nothing is made, exit 0 (cron mails nothing), and `runs` says why.
    let skipped = t.run(&[
        "submit",
        "--configs",
        "short.jsonl",
        "--overlap",
        "skip",
        "-o",
        "json",
    ]);
    assert_eq!(skipped.status, 0, "{}", skipped.stderr);
    let skipped = skipped.json();
    assert_eq!(skipped["started"], false);
    assert_eq!(skipped["run_id"], active.as_str());
    assert!(
        skipped["reason"].as_str().unwrap().starts_with("skipped:"),
        "{skipped}"
    );
    // A key means skip by default; a skipped key is not used up.
    let keyed = t.run(&[
        "submit",
        "--configs",
        "short.jsonl",
        "--key",
        "k1",
        "-o",
        "json",
    ]);
    assert_eq!(keyed.json()["started"], false, "{}", keyed.stdout);
    assert_eq!(t.run_count(), 1);
    let runs = t.run(&["runs", "-o", "json"]).json();
    let lines = runs.as_array().unwrap();
    assert_eq!(
        lines.iter().filter(|l| l["state"] == "skipped").count(),
        2,
        "{runs}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["state"] == "skipped" && l["key"] == "k1"),
        "{runs}"
    );
    let text = t.run(&["runs"]).stdout;
    assert!(
        text.contains("skipped") && text.contains("overlap = skip"),
        "{text}"
    );
    // Filters: by state, by time.
    let only = t.run(&["runs", "--state", "skipped", "-o", "json"]).json();
    assert_eq!(only.as_array().unwrap().len(), 2, "{only}");
    let recent = t.run(&["runs", "--since", "1h", "-o", "json"]).json();
    assert_eq!(recent.as_array().unwrap().len(), 3, "{recent}");
    let future = t
        .run(&["runs", "--since", "2999-01-01", "-o", "json"])
        .json();
    assert_eq!(future, json!([]));
    t.run(&["runs", "--since", "last tuesday"])
        .assert_error(2, "--since `last tuesday` is neither a duration nor a date");

    // replace: the active run is cancelled, then the new one starts (and succeeds).
    let replaced = t.run(&[
        "submit",
        "--configs",
        "short.jsonl",
        "--overlap",
        "replace",
        "--key",
        "k1",
    ]);
    assert_eq!(
        replaced.status, 0,
        "{}\n{}",
        replaced.stdout, replaced.stderr
    );
    assert!(
        replaced
            .stderr
            .contains(&format!("cancelling run {active}")),
        "{}",
        replaced.stderr
    );
    let old = t.wait_for(&active, "cancelled", |s| s["state"] == "cancelled");
    assert_eq!(old["cancelled"], 1);
    assert_eq!(t.run_count(), 2);
    let newest = t.status("");
    assert_eq!(
        (newest["state"].as_str(), newest["key"].as_str()),
        (Some("succeeded"), Some("k1"))
    );
}

#[test]
fn a_key_raced_from_two_machines_makes_one_run() {
    a_key_raced_from_two_machines_makes_one_run_on(services::moto());
}

/// The same on LocalStack's S3 and SQS (moto for the rest).
#[test]
fn a_key_raced_from_two_machines_makes_one_run_on_localstack() {
    a_key_raced_from_two_machines_makes_one_run_on(services::moto_localstack());
}

fn a_key_raced_from_two_machines_makes_one_run_on(moto: &'static Service) {
    let t = fargate_job(moto, "");
    // The second machine: its own state folder, with what `up` and `push` left (no runs).
    let other = tempfile::tempdir().unwrap();
    let job_dir = |root: &std::path::Path| root.join("jobs").join(&t.name);
    std::fs::create_dir_all(job_dir(other.path())).unwrap();
    for f in ["aws.json", "images.json"] {
        std::fs::copy(
            job_dir(t.state.path()).join(f),
            job_dir(other.path()).join(f),
        )
        .unwrap();
    }
    let args = [
        "submit",
        "--configs",
        "3",
        "--key",
        "race",
        "--detach",
        "-o",
        "json",
    ];
    let in_thread = |mut c: std::process::Command| std::thread::spawn(move || c.output().unwrap());
    let a = in_thread(t.command(&args));
    let mut second = t.command(&args);
    second.env("JOBRUN_STATE_DIR", other.path());
    let b = in_thread(second);
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let outcome = |o: &std::process::Output| -> Value {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (a, b) = (outcome(&a), outcome(&b));
    assert_eq!(a["run_id"], b["run_id"], "{a}\n{b}");
    let started = [&a, &b].iter().filter(|o| o["started"] != false).count();
    assert_eq!(
        started, 1,
        "one made the run, the other followed it: {a}\n{b}"
    );

    // ECS has the tasks of one run only.
    let cluster = format!("jobrun-{}", t.name);
    let mut arns = 0;
    for status in ["RUNNING", "STOPPED"] {
        let listed = ecs(
            moto,
            "ListTasks",
            json!({"cluster": cluster, "desiredStatus": status}),
        );
        arns += listed["taskArns"].as_array().unwrap().len();
    }
    assert_eq!(arns, 3);
}

/// A webhook receiver on loopback: answers the first `failures` POSTs with 500, then 200, and
/// keeps every body with the status it got.
pub(crate) struct Receiver {
    port: u16,
    got: std::sync::Arc<std::sync::Mutex<Vec<(u16, Value)>>>,
}

impl Receiver {
    pub(crate) fn start(failures: usize) -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let sink = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let mut got = sink.lock().unwrap();
                let status = if got.len() < failures { 500 } else { 200 };
                got.push((status, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver { port, got }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook/SECRET-TOKEN", self.port)
    }

    /// Its URL through HTTPS (`front`: a [`services::tls_front_of`] this receiver's port).
    pub(crate) fn https_url(&self, front: &Service) -> String {
        format!("https://127.0.0.1:{}/hook/SECRET-TOKEN", front.port)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn got(&self) -> Vec<(u16, Value)> {
        self.got.lock().unwrap().clone()
    }
}

#[test]
fn one_webhook_per_run_end_with_two_watchers_and_the_url_never_shown() {
    let hook = Receiver::start(0);
    let t = Test::with_task(r#"command = ["/task", "sleep", "1", "fail-if", "{index}", "1", "3"]"#);
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &format!("{toml}\n[notify]\nwebhook = \"{}\"\n", hook.url()),
    );
    t.build();
    let r = t.run(&["submit", "--configs", "3", "--detach", "-o", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let run = r.json()["run_id"].as_str().unwrap().to_string();
    let a = t.spawn(&["watch", &run]);
    let b = t.spawn(&["watch", &run]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!((a.status.code(), b.status.code()), (Some(1), Some(1)));
    let got = hook.got();
    assert_eq!(got.len(), 1, "exactly one notification: {got:?}");
    let m = &got[0].1;
    assert_eq!(
        (m["event"].as_str(), m["run_id"].as_str()),
        (Some("failure"), Some(run.as_str()))
    );
    assert_eq!(
        (
            m["total"].as_u64(),
            m["succeeded"].as_u64(),
            m["failed"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(
        m["failed_tasks"],
        json!([{"index": 1, "reason": "exit code 3"}])
    );
    assert!(
        m["text"]
            .as_str()
            .unwrap()
            .contains(&format!("more: jobrun status {run}")),
        "{m}"
    );
    // The URL's secret is in no output.
    let config = t.run(&["config"]).stdout;
    for text in [
        String::from_utf8_lossy(&a.stderr).into_owned(),
        String::from_utf8_lossy(&b.stderr).into_owned(),
        config.clone(),
    ] {
        assert!(!text.contains("SECRET-TOKEN"), "{text}");
    }
    assert!(config.contains("http://127.0.0.1"), "{config}");
}

#[test]
fn a_webhook_that_fails_three_times_gets_one_delivered_notification() {
    let hook = Receiver::start(3);
    let t = Test::with_task(r#"command = ["/task", "out", "ok"]"#);
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &format!(
            "{toml}\n[notify]\nwebhook = \"{}\"\non = [\"success\"]\n",
            hook.url()
        ),
    );
    t.build();
    let r = t.run(&["submit", "--configs", "2"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let got = hook.got();
    let statuses: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses,
        [500, 500, 500, 200],
        "retried, then delivered once"
    );
    assert!(got.iter().all(|(_, m)| m["event"] == "success"));
    let record: Value = t.record(&t.only_run());
    assert_eq!(record["notifications"][0]["delivered"], true, "{record}");
    assert_eq!(record["notifications"][0]["to"], "webhook");
}

#[test]
fn sns_gets_the_run_end_and_a_skipped_submit() {
    let moto = services::moto();
    let sns = |op: &str, params: &[(&str, &str)]| {
        let mut all = vec![("Action", op), ("Version", "2010-03-31")];
        all.extend_from_slice(params);
        services::query_call(moto, "sns", &all).unwrap()
    };
    let sqs = |op: &str, body: Value| crate::queue::sqs(moto, op, body).unwrap();
    let name = format!("jrt-notify-{}", std::process::id());
    let topic = sns("CreateTopic", &[("Name", &name)]);
    let topic = topic
        .split("<TopicArn>")
        .nth(1)
        .unwrap()
        .split("</TopicArn>")
        .next()
        .unwrap()
        .to_string();
    let url = sqs("CreateQueue", json!({"QueueName": name}))["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
    sns(
        "Subscribe",
        &[
            ("TopicArn", &topic),
            ("Protocol", "sqs"),
            ("Endpoint", &queue_arn),
            ("Attributes.entry.1.key", "RawMessageDelivery"),
            ("Attributes.entry.1.value", "true"),
        ],
    );
    let t = Test::with_task(r#"command = ["/task", "sleep", "{config.sleep}"]"#)
        .envs(services::moto_env_for(moto));
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &format!("{toml}\n[notify]\nsns_topic = \"{topic}\"\non = [\"success\", \"skipped\"]\n"),
    );
    t.build();
    t.write("long.jsonl", "{\"sleep\": 2}\n");
    let run = t
        .run(&[
            "submit",
            "--configs",
            "long.jsonl",
            "--detach",
            "-o",
            "json",
        ])
        .json();
    let run = run["run_id"].as_str().unwrap().to_string();
    t.wait_for(&run, "running", |s| s["running"] == 1);
    let skipped = t.run(&["submit", "--configs", "long.jsonl", "--overlap", "skip"]);
    assert_eq!(skipped.status, 0, "{}", skipped.stderr);
    assert_eq!(t.run(&["watch", &run]).status, 0);
    let mut events = vec![];
    for _ in 0..10 {
        let got = sqs(
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}),
        );
        for m in got["Messages"].as_array().into_iter().flatten() {
            let body: Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
            events.push((
                body["event"].as_str().unwrap().to_string(),
                body["run_id"].as_str().unwrap().to_string(),
            ));
        }
        if events.len() >= 2 {
            break;
        }
    }
    events.sort();
    assert_eq!(
        events,
        [
            ("skipped".to_string(), run.clone()),
            ("success".to_string(), run)
        ]
    );
}

/// SNS answers `Throttled` (HTTP 429) when a topic's publish rate is over its quota; the SDK's
/// own retries do not know that code, so jobrun retries it: the run end is delivered once.
#[test]
fn a_throttled_sns_publish_is_retried_and_delivered_once() {
    let moto = services::moto();
    let proxy = services::aws_proxy(moto, 0.0, 1, false);
    let name = format!("jrt-throttled-{}", std::process::id());
    let call = |op: &str, params: &[(&str, &str)]| {
        let mut all = vec![("Action", op), ("Version", "2010-03-31")];
        all.extend_from_slice(params);
        services::query_call(moto, "sns", &all).unwrap()
    };
    let topic = call("CreateTopic", &[("Name", &name)]);
    let topic = topic
        .split("<TopicArn>")
        .nth(1)
        .unwrap()
        .split("</TopicArn>")
        .next()
        .unwrap()
        .to_string();
    let url =
        crate::queue::sqs(moto, "CreateQueue", json!({"QueueName": name})).unwrap()["QueueUrl"]
            .as_str()
            .unwrap()
            .to_string();
    let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
    call(
        "Subscribe",
        &[
            ("TopicArn", &topic),
            ("Protocol", "sqs"),
            ("Endpoint", &queue_arn),
            ("Attributes.entry.1.key", "RawMessageDelivery"),
            ("Attributes.entry.1.value", "true"),
        ],
    );
    let t = Test::with_task(r#"command = ["/task"]"#).envs(services::moto_env_for(&proxy));
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &format!("{toml}\n[notify]\nsns_topic = \"{topic}\"\non = [\"success\"]\n"),
    );
    t.build();
    proxy.fault(json!({"service": "sns", "operation": "Publish", "times": 2, "status": 429, "code": "Throttled", "message": "Rate exceeded"}));
    let r = t.run(&["submit", "--configs", "1"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(proxy.fired("sns:Publish"), 2);
    let got = crate::queue::sqs(
        moto,
        "ReceiveMessage",
        json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 2}),
    )
    .unwrap();
    let messages = got["Messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages.len(), 1, "{got}");
    let rec = t.record(t.status("")["run_id"].as_str().unwrap());
    let deliveries = rec["notifications"].to_string();
    assert!(deliveries.contains("\"delivered\":true"), "{deliveries}");
}

/// Next week's fire from cron: the last run was detached and nobody watched it to its end. Its
/// tasks have stopped, so the new key's submit brings it up to date and starts (not "skipped").
#[test]
fn a_detached_ecs_run_nobody_watched_does_not_block_the_next_key() {
    let moto = services::own_moto();
    ureq::post(&format!(
        "{}/moto-api/state-manager/set-transition",
        moto.url()
    ))
    .send_string(
        &json!({"model_name": "ecs::task", "transition": {"progression": "immediate"}}).to_string(),
    )
    .unwrap();
    let t = fargate_job(&moto, "");
    let args = |key: &'static str| {
        [
            "submit",
            "--configs",
            "2",
            "--key",
            key,
            "--detach",
            "-o",
            "json",
        ]
    };
    let first = t.run(&args("2026-W48"));
    assert_eq!(first.status, 0, "{}", first.stderr);
    let first = first.json()["run_id"].as_str().unwrap().to_string();
    let recorded = |run: &str| -> Value {
        let path = t.state.path().join("runs").join(run).join("run.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    assert!(
        recorded(&first)["finished_at"].is_null(),
        "left unfinished, as cron leaves it"
    );
    let next = t.run(&args("2026-W49"));
    assert_eq!(next.status, 0, "{}", next.stderr);
    let next = next.json();
    assert_ne!(
        next["started"], false,
        "the finished run does not block: {next}"
    );
    assert_ne!(next["run_id"], first.as_str());
    assert_eq!(t.status(&first)["state"], "succeeded");
}

/// A webhook behind a private CA: reached when `AWS_CA_BUNDLE` names the CA (the trust every
/// AWS client of jobrun has, now its other HTTPS clients' too), refused without it.
#[test]
fn a_webhook_behind_a_private_ca_is_reached_with_aws_ca_bundle() {
    let hook = Receiver::start(0);
    let front = services::tls_front_of(hook.port());
    let t = Test::with_task(r#"command = ["/task"]"#);
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &format!(
            "{toml}\n[notify]\nwebhook = \"{}\"\n",
            hook.https_url(&front)
        ),
    );
    t.build();
    let r = t.run(&["submit", "--configs", "1"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(hook.got().is_empty(), "an unknown CA is not trusted");
    assert!(
        r.stderr.contains("webhook"),
        "the failed delivery is said: {}",
        r.stderr
    );
    let ca = front.ca_file().display().to_string();
    let trusting = t.env("AWS_CA_BUNDLE", &ca);
    let r = trusting.run(&["submit", "--configs", "1"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(hook.got().len(), 1, "delivered: {}", r.stderr);
}

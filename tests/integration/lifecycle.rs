//! A run from submit to summary: failures, timeouts, retries, cancel, crash and re-attach.

use crate::harness::{Test, indexes};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn exactly_the_failing_indexes_are_reported_failed() {
    let t = Test::with_task(
        r#"command = ["/task", "out", "hello {index}", "fail-if", "{index}", "3,7,11", "3"]
concurrency = 4"#,
    );
    t.build();
    let r = t.run(&["submit", "--configs", "20"]);
    assert_eq!(
        r.status, 1,
        "a failed task makes exit code 1\n{}\n{}",
        r.stdout, r.stderr
    );
    let s = t.status(&t.only_run());
    assert_eq!(s["total"], 20);
    assert_eq!(s["succeeded"], 17);
    assert_eq!(s["failed"], 3);
    assert_eq!(s["running"], 0);
    assert_eq!(s["queued"], 0);
    assert_eq!(indexes(&s, "failed"), [3, 7, 11]);
    for task in s["tasks"].as_array().unwrap() {
        let failed = [3, 7, 11].contains(&task["index"].as_u64().unwrap());
        assert_eq!(task["exit_code"], if failed { 3 } else { 0 });
        assert_eq!(task["attempts"], 1);
    }
    // The summary names each failure with its exit code and the last lines of its log.
    assert!(r.stdout.contains("failed #7 exit code 3"), "{}", r.stdout);
    assert!(
        r.stdout.contains("| task 7 fails on purpose with 3"),
        "{}",
        r.stdout
    );
    // Without a TTY: plain lines, one per change, no bar characters.
    assert!(
        r.stdout.contains("task 11 failed: exit code 3"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stderr.contains('\u{1b}'),
        "no terminal escapes without a TTY"
    );
    assert!(
        t.containers().is_empty(),
        "containers are removed once their logs are saved"
    );
    let log = t.run(&["logs", "--index", "4"]);
    assert_eq!(log.stdout.trim(), "hello 4");
}

#[test]
fn timeout_kills_the_task() {
    let t = Test::with_task(
        r#"command = ["/task", "out", "started", "sleep", "60"]
timeout = "1s""#,
    );
    t.build();
    let started = Instant::now();
    let r = t.run(&["submit", "--configs", "1"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the timeout ended the task"
    );
    assert_eq!(r.status, 1);
    let s = t.status(&t.only_run());
    let task = &s["tasks"][0];
    assert_eq!(task["state"], "failed");
    assert!(
        task["reason"]
            .as_str()
            .unwrap()
            .contains("timed out after 1s"),
        "{task}"
    );
    assert!(t.containers().is_empty());
    assert!(
        t.run(&["logs", "--index", "0"]).stdout.contains("started"),
        "the log is kept"
    );
}

#[test]
fn max_attempts_reruns_a_failed_task() {
    let t = Test::with_task(r#"command = ["/task", "fail-until-attempt", "3", "5"]"#);
    t.build();
    let r = t.run(&["submit", "--configs", "2", "--max-attempts", "3"]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    let s = t.status(&t.only_run());
    for task in s["tasks"].as_array().unwrap() {
        assert_eq!(task["state"], "succeeded");
        assert_eq!(task["attempts"], 3);
        // Each attempt's container: created, started, ended (locally, no pull, no stop).
        let timelines = task["timelines"].as_array().unwrap();
        assert_eq!(timelines.len(), 3, "{task}");
        for (n, a) in timelines.iter().enumerate() {
            assert_eq!(a["attempt"], n + 1);
            for key in ["created_at", "started_at", "stopped_at"] {
                assert!(a[key].is_string(), "{key} in {a}");
            }
            // And how it ended: the first two failed with exit 5, the third did not.
            assert_eq!(a["exit_code"], if n < 2 { 5 } else { 0 }, "{a}");
            assert_eq!(a["reason"].is_string(), n < 2, "{a}");
            assert!(a.get("pull_started_at").is_none(), "{a}");
        }
    }
    let phases: Vec<&str> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["start", "run"]);
    assert_eq!(s["phases"][0]["n"], 6, "two tasks, three attempts each");
    assert!(
        t.run(&["logs", "--index", "1"])
            .stdout
            .contains("attempt 3 succeeds")
    );

    let again = t.run(&["submit", "--configs", "1", "--max-attempts", "2"]);
    assert_eq!(again.status, 1, "two attempts are not enough");
    let s = t.status("");
    assert_eq!(s["tasks"][0]["attempts"], 2);
    assert_eq!(s["tasks"][0]["exit_code"], 5);
    assert!(t.containers().is_empty());
}

#[test]
fn cancel_mid_run_leaves_no_container() {
    let t = Test::with_task(
        r#"command = ["/task", "sleep", "60"]
concurrency = 2"#,
    );
    t.build();
    let r = t.run(&["submit", "--configs", "6", "--detach", "--output", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let run = r.json()["run_id"].as_str().unwrap().to_string();
    t.wait_for(&run, "two running tasks", |s| s["running"] == 2);
    let c = t.run(&["cancel", &run]);
    assert_eq!(c.status, 0, "{}\n{}", c.stdout, c.stderr);
    let s = t.status(&run);
    assert_eq!(s["state"], "cancelled");
    assert_eq!(s["cancelled"], 6);
    assert!(
        t.containers().is_empty(),
        "cancel leaves no container behind"
    );
}

#[test]
fn sigkill_mid_run_then_watch_finishes_the_record() {
    let t = Test::with_task(
        r#"command = ["/task", "out", "done {index}", "sleep", "1.5"]
concurrency = 2"#,
    );
    t.build();
    let mut child = t.spawn(&["submit", "--configs", "5"]);
    let run = t.wait_for_running_task();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = t.status(&run);
    assert!(before["succeeded"].as_u64().unwrap() < 5, "killed mid-run");
    let w = t.run(&["watch", &run]);
    assert_eq!(w.status, 0, "{}\n{}", w.stdout, w.stderr);
    let s = t.status(&run);
    assert_eq!(s["succeeded"], 5, "{s}");
    assert!(
        s["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["attempts"] == 1),
        "nothing ran twice: {s}"
    );
    assert!(t.containers().is_empty());
    for i in 0..5 {
        assert_eq!(
            t.run(&["logs", &run, "--index", &i.to_string()])
                .stdout
                .trim(),
            format!("done {i}")
        );
    }
}

#[test]
fn ctrl_c_detaches_and_the_run_goes_on() {
    let t = Test::with_task(
        r#"command = ["/task", "sleep", "1"]
concurrency = 2"#,
    );
    t.build();
    let child = t.spawn(&["submit", "--configs", "4"]);
    let run = t.wait_for_running_task();
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("jobrun watch {run}")),
        "says how to re-attach: {stderr}"
    );
    // Nobody is attached, yet the run finishes: the background driver carries it.
    let s = t.wait_for(&run, "the run to finish", |s| s["state"] == "succeeded");
    assert_eq!(s["succeeded"], 4);
    let w = t.run(&["watch", &run]);
    assert_eq!(w.status, 0);
    assert!(w.stdout.contains("succeeded: 4 succeeded"), "{}", w.stdout);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.containers().is_empty() {
        assert!(Instant::now() < deadline, "containers left behind");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_command_the_engine_cannot_start_fails_the_task_not_the_run() {
    let t = Test::with_task(
        r#"command = ["/no-such-program"]
max_attempts = 2"#,
    );
    t.build();
    let r = t.run(&["submit", "--configs", "2"]);
    assert_eq!(r.status, 1, "{}\n{}", r.stdout, r.stderr);
    let s = t.status("");
    for task in s["tasks"].as_array().unwrap() {
        assert_eq!(task["state"], "failed");
        assert_eq!(task["attempts"], 2, "retried like any failure");
        // Named as the job's setting, not in runc's words.
        assert!(
            task["reason"]
                .as_str()
                .unwrap()
                .starts_with("run.command: /no-such-program is not in the image"),
            "{task}"
        );
    }
    assert!(
        t.containers().is_empty(),
        "containers that never ran are removed"
    );
}

/// A task killed for its memory is retried at the next Fargate size (0.25 vCPU: 512MB → 1GB),
/// whatever `retry_exit_codes` says, up to `max_memory` (default: twice `memory`); each
/// attempt is priced at its own size and the summary says which tasks needed more.
#[test]
fn out_of_memory_is_retried_at_the_next_size_up_to_max_memory() {
    let t = Test::with_task(
        r#"command = ["/task", "alloc", "{config.mib}", "out", "done"]
max_attempts = 3"#,
    );
    t.build();
    t.write(
        "c.jsonl",
        "{\"mib\": 100}\n{\"mib\": 700}\n{\"mib\": 1500}\n",
    );
    let r = t.run(&["submit", "--configs", "c.jsonl"]);
    assert_eq!(
        r.status, 1,
        "task 2 needs more than max_memory: {}\n{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stdout.contains(
            "2 tasks needed 0.25 vCPU / 1GB (retried after out-of-memory at 0.25 vCPU / 512MB)"
        ),
        "{}",
        r.stdout
    );
    let s = t.status(&t.only_run());
    let task = |i: usize| s["tasks"][i].clone();
    assert_eq!(
        (task(0)["state"].clone(), task(0)["attempts"].clone()),
        (json!("succeeded"), json!(1))
    );
    assert!(task(0).get("size").is_none());
    assert_eq!(task(1)["state"], "succeeded", "{}", task(1));
    assert_eq!(task(1)["attempts"], 2);
    assert_eq!(task(1)["size"], json!({"cpu": 0.25, "memory_mib": 1024}));
    assert_eq!(task(2)["state"], "failed");
    assert_eq!(task(2)["attempts"], 2, "no third attempt past max_memory");
    assert!(
        task(2)["reason"]
            .as_str()
            .unwrap()
            .contains("out of memory (exit code 137) at 0.25 vCPU / 1GB (max_memory reached)"),
        "{}",
        task(2)
    );
    // The record prices each attempt at its size: the second one at 1GB.
    let rec = t.record(&t.only_run());
    let bills = rec["tasks"][1]["bills"].as_array().unwrap();
    assert!(bills[0].get("size").is_none(), "{bills:?}");
    assert_eq!(bills[1]["size"]["memory_mib"], 1024, "{bills:?}");
}

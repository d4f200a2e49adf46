//! status, runs, logs and watch output formats.

use crate::harness::Test;
use serde_json::Value;

#[test]
fn status_json_watch_json_lines_and_runs() {
    let t = Test::with_task(r#"command = ["/task", "out", "line one", "err", "line two"]"#);
    t.build();
    let r = t.run(&["submit", "--configs", "3", "--output", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let lines: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "task" && l["state"] == "running" && l["index"] == 2)
    );
    let summary = lines.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["succeeded"], 3);

    // status: the latest run of the job in the current folder, with the documented fields.
    let s = t.status("");
    for key in [
        "run_id",
        "job",
        "total",
        "succeeded",
        "failed",
        "running",
        "queued",
        "tasks",
    ] {
        assert!(s.get(key).is_some(), "status has {key}: {s}");
    }
    assert_eq!(s["job"], t.name.as_str());
    for task in s["tasks"].as_array().unwrap() {
        for key in ["index", "state", "exit_code", "attempts"] {
            assert!(task.get(key).is_some(), "task has {key}");
        }
    }
    let text = t.run(&["status"]);
    assert!(text.stdout.contains("state   succeeded"), "{}", text.stdout);

    // logs: both streams, one task or all of them
    let one = t.run(&["logs", "--index", "1"]);
    assert!(one.stdout.contains("line one") && one.stdout.contains("line two"));
    let all = t.run(&["logs"]);
    assert!(
        all.stdout.contains("[0] line one") && all.stdout.contains("[2] line two"),
        "{}",
        all.stdout
    );
    t.run(&["logs", "--index", "9"])
        .assert_error(2, "has no task 9");

    // runs lists it; watch of a finished run prints the summary again
    let runs = t.run(&["runs", "--output", "json"]).json();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let w = t.run(&["watch"]);
    assert_eq!(w.status, 0);
    assert!(w.stdout.contains("3 succeeded"));
    t.run(&["status", "no-such-run"])
        .assert_error(2, "no run matches");
}

#[test]
fn logs_follow_streams_a_running_task_until_it_ends() {
    // The task outlives the status polls that see it running by seconds, even on a loaded
    // 2-core machine (each poll starts a debug jobrun), so `--follow` starts while it runs.
    let t =
        Test::with_task(r#"command = ["/task", "out", "first", "sleep", "6", "out", "second"]"#);
    t.build();
    let r = t.run(&["submit", "--configs", "1", "--detach", "--output", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let run = r.json()["run_id"].as_str().unwrap().to_string();
    t.wait_for(&run, "the task to run", |s| s["running"] == 1);
    let started = std::time::Instant::now();
    let f = t.run(&["logs", &run, "--index", "0", "--follow"]);
    assert_eq!(f.status, 0, "{}", f.stderr);
    assert!(
        f.stdout.contains("first") && f.stdout.contains("second"),
        "{}",
        f.stdout
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "it waited for the task"
    );
    t.wait_for(&run, "the run to finish", |s| s["state"] == "succeeded");
}

/// `jobrun status | head` and friends: a reader that has gone ends jobrun quietly, as it does
/// `grep` and `rg` (before: a panic, "failed printing to stdout: Broken pipe", exit 101).
#[test]
fn a_closed_pipe_ends_output_quietly() {
    let t = Test::with_task(r#"command = ["/task", "out", "x"]"#);
    t.build();
    assert_eq!(t.run(&["submit", "--configs", "3"]).status, 0);
    for args in [
        &["config"][..],
        &["runs"],
        &["status"],
        &["logs"],
        &["status", "-o", "json"],
    ] {
        let mut child = t
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes before anything is written
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error:"),
            "{args:?}: {stderr}"
        );
    }
}

/// A 10,000-task run reads in a screenful: counts, failures grouped by reason with their
/// indexes as ranges, the first failures in detail; `--tasks` and `-o json` keep everything.
#[test]
fn status_of_ten_thousand_tasks_fits_a_screen() {
    let t = Test::with_task(r#"command = ["/task", "out", "x"]"#);
    t.build();
    assert_eq!(t.run(&["submit", "--configs", "1"]).status, 0);
    let run = t.only_run();
    // The record of a big run, made from this one's own (the documented schema 1).
    let path = t.state.path().join("runs").join(&run).join("run.json");
    let mut rec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let template = rec["tasks"][0].clone();
    let tasks: Vec<Value> = (0..10_000)
        .map(|i| {
            let mut task = template.clone();
            task["index"] = i.into();
            let (state, reason, exit) = match i {
                2 | 7 | 100..=199 => ("failed", Some("exit code 3"), Some(3)),
                500..=509 => (
                    "failed",
                    Some("SpotInterruption: Your Spot Task was interrupted."),
                    None,
                ),
                9_000.. => ("cancelled", Some("cancelled"), None),
                _ => ("succeeded", None, Some(0)),
            };
            task["state"] = state.into();
            task["reason"] = reason.into();
            task["exit_code"] = exit.into();
            task
        })
        .collect();
    rec["tasks"] = tasks.into();
    std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();

    let text = t.run(&["status", &run]).stdout;
    assert!(
        text.lines().count() < 60,
        "{} lines:\n{text}",
        text.lines().count()
    );
    for want in [
        "#2, #7, #100–#199: exit code 3",
        "#500–#509: SpotInterruption: Your Spot Task was interrupted.",
        "cancelled: #9000–#9999",
        "failed #2 exit code 3 (attempt",
        &format!("every task: jobrun status {run} --tasks"),
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    assert!(
        !text.contains("exit code 3 (exit code 3"),
        "no repeated wording:\n{text}"
    );
    let json = t.status(&run);
    assert_eq!(json["tasks"].as_array().unwrap().len(), 10_000);
    let every = t.run(&["status", &run, "--tasks"]).stdout;
    assert!(every.lines().count() > 1_000, "--tasks lists them all");
    let summary = t.run(&["watch", &run]).stdout;
    assert!(summary.lines().count() < 60, "{summary}");
    assert!(summary.contains("#100–#199"), "{summary}");
}

#[test]
fn a_run_whose_record_cannot_be_read_is_listed_so_and_status_never_shows_another() {
    let t = Test::with_task(r#"command = ["/task", "out", "hi"]"#);
    t.build();
    let first = t.run(&["submit", "--configs", "1", "--output", "json"]);
    assert_eq!(first.status, 0, "{}", first.stderr);
    let second = t.run(&["submit", "--configs", "1", "--output", "json"]);
    assert_eq!(second.status, 0, "{}", second.stderr);
    let newest = t.status("")["run_id"].as_str().unwrap().to_string();
    // The newest record is torn (a disk filled up, an editor saved half of it).
    let file = t.state.path().join("runs").join(&newest).join("run.json");
    std::fs::write(&file, b"{\"run_id\": ").unwrap();
    std::fs::remove_file(file.with_file_name("summary.json")).unwrap();

    let runs = t.run(&["runs"]);
    assert_eq!(runs.status, 0, "{}", runs.stderr);
    let line = runs
        .stdout
        .lines()
        .find(|l| l.starts_with(&newest))
        .unwrap_or_else(|| panic!("{newest} is listed: {}", runs.stdout));
    assert!(line.contains("unreadable"), "{line}");
    assert!(line.contains(&file.display().to_string()), "{line}");
    let json = t.run(&["runs", "-o", "json"]).json();
    let listed = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == newest.as_str())
        .cloned()
        .unwrap();
    assert_eq!(listed["state"], "unreadable");
    assert_eq!(listed["job"], t.name.as_str());

    // status of the job's latest run is that run's error (exit 3), not the run before it;
    // named, the same.
    t.run(&["status"])
        .assert_error(3, &format!("run record {} is unreadable", file.display()));
    t.run(&["status", &newest]).assert_error(3, "is unreadable");
}

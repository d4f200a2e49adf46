//! A task's data is data (issue 39): what a task writes into its output folder (links to the
//! host's files, pipes, device nodes, a file swapped for a link while it is read) and what a
//! configuration says (shell syntax in a value, a huge count, a huge configuration) cannot
//! hang jobrun, read the host's files into a run, or run as code.

use crate::harness::Test;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Runs `jobrun ARGS` and fails the test if it has not ended within `limit` (a hang).
fn run_within(t: &Test, args: &[&str], limit: Duration) -> crate::harness::Run {
    let mut child = t.spawn(args);
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("jobrun {args:?} hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::harness::Run::from(child.wait_with_output().unwrap())
}

fn task(status: &Value, index: u64) -> &Value {
    status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["index"] == index)
        .unwrap()
}

#[test]
fn outputs_that_are_links_pipes_or_devices_fail_their_task_and_hang_nothing() {
    let host = tempfile::tempdir().unwrap();
    let secret = host.path().join("secret.json");
    std::fs::write(&secret, r#"{"secret": "host file content"}"#).unwrap();
    let t = Test::with_task(
        r#"command = ["/task", "{config.a}", "{config.b}", "{config.c}", "{config.d}"]"#,
    );
    t.build();
    let s = secret.display().to_string();
    let configs = [
        json!({"a": "fifo", "b": "result.json", "c": "out", "d": "x"}),
        json!({"a": "symlink", "b": "/dev/zero", "c": "result.json", "d": "env"}),
        json!({"a": "chardev", "b": "result.json", "c": "1", "d": "5"}),
        json!({"a": "write", "b": "result.json", "c": "{\"ok\": 1}", "d": "env"}),
        json!({"a": "symlink", "b": s, "c": "result.json", "d": "env"}),
        json!({"a": "write", "b": "result.json", "c": "{\"note\": \"\\u001b[2Jx\\ny\"}", "d": "env"}),
    ];
    let lines: Vec<String> = configs.iter().map(Value::to_string).collect();
    t.write("configs.jsonl", &(lines.join("\n") + "\n"));
    // Before: a FIFO hung submit for ever, /dev/zero was read until memory ran out.
    let r = run_within(
        &t,
        &["submit", "--configs", "configs.jsonl"],
        Duration::from_secs(120),
    );
    assert_eq!(r.status, 1, "some tasks fail: {}\n{}", r.stdout, r.stderr);
    let run = t.only_run();
    let status = t.status(&run);
    let reason = |i| {
        task(&status, i)["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(
        reason(0).contains("result.json is a named pipe"),
        "{}",
        reason(0)
    );
    assert!(
        reason(1).contains("result.json is a symbolic link"),
        "{}",
        reason(1)
    );
    assert!(
        reason(2).contains("result.json is a character device"),
        "{}",
        reason(2)
    );
    assert_eq!(task(&status, 3)["state"], "succeeded");
    assert!(
        reason(4).contains("result.json is a symbolic link"),
        "{}",
        reason(4)
    );
    // The host file reached nothing jobrun keeps or shows.
    let record =
        std::fs::read_to_string(t.state.path().join("runs").join(&run).join("run.json")).unwrap();
    assert!(!record.contains("host file content"));
    let results = t.run(&["results", &run, "-o", "json"]);
    assert!(
        !results.stdout.contains("host file content"),
        "{}",
        results.stdout
    );
    assert_eq!(results.json()["rows"][3]["result.ok"], 1);
    // A terminal escape and a newline in a result: kept as data in JSON, shown as text (the
    // table keeps one line per task) and never sent to the terminal raw.
    assert_eq!(results.json()["rows"][5]["result.note"], "\u{1b}[2Jx\ny");
    let text = t.run(&["results", &run]).stdout;
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("\\u{1b}[2Jx\\ny"), "{text}");
    let lines = text.lines().filter(|l| !l.is_empty()).count();
    assert_eq!(lines, 1 + configs.len(), "{text}");
}

#[test]
fn a_task_swapping_a_file_for_a_link_never_gets_a_host_file_out() {
    let host = tempfile::tempdir().unwrap();
    let secret = host.path().join("secret.txt");
    std::fs::write(&secret, "host file content").unwrap();
    let s = secret.display().to_string();
    let t = Test::with_task(&format!(
        r#"command = ["/task", "symlink", "{s}", "link.txt", "write", "plain.txt", "ok", "swap", "data.txt", "{s}", "6"]"#
    ));
    t.build();
    let run = t.submit_detached(&[json!({})]);
    t.wait_for(&run, "the task to run", |s| {
        s["tasks"][0]["state"] == "running"
    });
    // While the task swaps data.txt for a link to the host file and back, download its
    // folder again and again (bounded in time): never the host's bytes.
    let out = tempfile::tempdir().unwrap();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut tries = 0;
    while Instant::now() < deadline {
        let dir = out.path().join(tries.to_string());
        let d = t.run(&["results", &run, "--download", dir.to_str().unwrap()]);
        assert_eq!(d.status, 0, "{}", d.stderr);
        if let Ok(body) = std::fs::read_to_string(dir.join("0/data.txt")) {
            assert_eq!(body, "plain file\n", "try {tries}");
        }
        assert!(!dir.join("0/link.txt").exists(), "a link is never followed");
        tries += 1;
    }
    assert!(tries > 5, "{tries} downloads");
    t.wait_for(&run, "the run to end", |s| s["state"] == "succeeded");
    let d = t.run(&[
        "results",
        &run,
        "--download",
        out.path().join("end").to_str().unwrap(),
    ]);
    assert_eq!(d.status, 0, "{}", d.stderr);
    assert!(
        d.stderr
            .contains("1 links, special files or unsafe names skipped"),
        "{}",
        d.stderr
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("end/0/plain.txt")).unwrap(),
        "ok"
    );
}

#[test]
fn placeholders_in_a_shell_command_reach_the_task_as_values() {
    let base = crate::in_aws::busybox_image();
    let t = Test::new();
    t.write("Dockerfile", &format!("FROM {base}\n"));
    t.write(
        "jobrun.toml",
        &format!(
            r#"[job]
name = "{}"

[resources]
cpu = 0.25
memory = "512MB"

[run]
command = "printf '%s|' {{config.x}} \"{{config.x}}\" '{{config.x}}' \"$(printf %s {{config.x}})\" > \"$JOBRUN_OUTPUT_DIR/out.txt\""

[reduce]
command = "printf %s {{run_id}}:{{count}}:{{{{x}}}}:{{index}} > \"$JOBRUN_OUTPUT_DIR/r.txt\""
"#,
            t.name
        ),
    );
    t.build();
    let values = [
        "$(echo PWNED > $JOBRUN_OUTPUT_DIR/pwned)",
        "; echo PWNED > $JOBRUN_OUTPUT_DIR/pwned #",
        "a'b\"c`echo PWNED > $JOBRUN_OUTPUT_DIR/pwned`\\d",
        "s3/key with spaces/$(id).csv",
    ];
    let lines: Vec<String> = values.iter().map(|v| json!({"x": v}).to_string()).collect();
    t.write("configs.jsonl", &(lines.join("\n") + "\n"));
    let r = t.run(&["submit", "--configs", "configs.jsonl"]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    let run = t.only_run();
    let outputs = t.state.path().join("runs").join(&run).join("outputs");
    for (i, v) in values.iter().enumerate() {
        let dir = outputs.join(i.to_string());
        let got = std::fs::read_to_string(dir.join("out.txt")).unwrap();
        assert_eq!(got, format!("{v}|{v}|{v}|{v}|"), "task {i}");
        assert!(
            !dir.join("pwned").exists(),
            "task {i} ran its value as code"
        );
    }
    let reduced =
        std::fs::read_to_string(t.state.path().join("runs").join(&run).join("reduce/r.txt"))
            .unwrap();
    assert_eq!(reduced, format!("{run}:4:{{x}}:4"));

    // Where no quoting holds (inside backquotes), the placeholder is refused before anything.
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace("$(printf %s {config.x})", "`printf %s {config.x}`"),
    );
    let runs = t.run_count();
    let r = t.run(&["submit", "--configs", "configs.jsonl"]);
    r.assert_error(2, "backquotes");
    assert_eq!(t.run_count(), runs, "nothing was made");
}

#[test]
fn inputs_the_target_cannot_take_are_refused_before_anything_starts() {
    let t = Test::with_task(r#"command = ["/task", "out", "{config.x}"]"#);
    let refused = |args: &[&str], contains: &str| {
        let r = t.run(args);
        r.assert_error(2, contains);
        assert_eq!(t.run_count(), 0, "nothing was made for {args:?}");
    };
    // Before: a 32 TB allocation and an abort (exit 134, no error line).
    refused(
        &["submit", "--configs", "1000000000000"],
        "more than 10000 tasks",
    );
    let r = t.run(&["submit", "--configs", "10001"]);
    let hint = "hint: check the count (a typo?), or split the sweep";
    assert!(r.stderr.contains(hint), "{}", r.stderr);
    refused(
        &["submit", "--configs", "99999999999999999999999"],
        "more than 10000 tasks",
    );
    let values: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    let m1 = format!("a={}", values.join(","));
    let m2 = format!("b={}", values.join(","));
    refused(
        &["submit", "--matrix", &m1, "--matrix", &m2],
        "more than 10000 tasks",
    );
    // A configuration larger than a local task can be given (Linux: 128 KiB in one string).
    t.write(
        "big.jsonl",
        &format!("{}\n", json!({"x": "y".repeat(200 * 1024)})),
    );
    refused(&["submit", "--configs", "big.jsonl"], "over the 127 KiB");
    // A NUL byte in [env] cannot be carried by any environment.
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &format!("{toml}env = {{ A = \"x\\u0000y\" }}\n"),
    );
    refused(&["submit", "--configs", "1"], "NUL");
}

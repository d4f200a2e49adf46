//! What a run costs: `submit --dry-run` (the plan and its estimate, nothing made), the actual
//! cost of every attempt in the summary, `status` and `runs` (local runs: what Fargate would
//! have charged), the estimate learning from an earlier run, and `--max-cost` /
//! `[cost] max_per_run` refusing a run over its limit. On ECS (moto's fake Fargate) the cost
//! is held against the formula over the times DescribeTasks reports.

use crate::ecs::{fargate_job, tasks_listed};
use crate::harness::Test;
use crate::services;
use serde_json::{Value, json};

/// What Fargate bills an attempt of `secs`: whole seconds, at least a minute.
fn billed(secs: f64) -> f64 {
    secs.max(0.0).ceil().max(60.0)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn a_dry_run_estimates_and_creates_nothing_then_learns_from_the_run() {
    let t = Test::with_task(
        r#"command = ["/task", "sleep", "0.2"]
timeout = "10m""#,
    );
    t.build();
    let dry = t.run(&["submit", "--configs", "3", "--dry-run"]);
    assert_eq!(dry.status, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("plan: 3 tasks of job"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("at most 10m00s (the job's timeout"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("dry run: nothing was created"),
        "{}",
        dry.stdout
    );
    assert_eq!(t.run_count(), 0, "no run recorded");
    assert!(t.containers().is_empty(), "no container");
    // 3 tasks × 10 min at 0.25 vCPU, 0.5 GB on x86 or arm (the host's): the upper bound.
    let json = t
        .run(&["submit", "--configs", "3", "--dry-run", "-o", "json"])
        .json();
    let (vcpu, gb) = if json["platform"].as_str().unwrap().ends_with("arm64") {
        (0.03238, 0.00356)
    } else {
        (0.04048, 0.004445)
    };
    // Fargate's own 20 GiB of storage (nothing billed beyond it), and the public IPv4 address
    // the default network gives every task: $0.005 an hour.
    let hourly = 0.25 * vcpu + 0.5 * gb + 0.005;
    assert!(
        close(
            json["estimate"]["upper_usd"].as_f64().unwrap(),
            3.0 * 600.0 / 3600.0 * hourly
        ),
        "{json}"
    );

    // A run: its actual cost is every attempt billed as Fargate would (a minute each here).
    let r = t.run(&["submit", "--configs", "3"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("on Fargate it would have cost $0.0009"),
        "{}",
        r.stdout
    );
    let s = t.status("");
    let usd = s["cost"]["usd"]["low"].as_f64().unwrap();
    assert!(close(usd, 3.0 * 60.0 / 3600.0 * hourly), "{s}");
    assert_eq!(s["cost"]["basis"], "fargate-equivalent");
    assert_eq!(s["tasks"][0]["cost"]["billed_secs"], 60.0);
    let runs = t.run(&["runs"]);
    assert!(runs.stdout.contains("($0.0009)"), "{}", runs.stdout);

    // The next estimate uses that run's durations.
    let again = t.run(&["submit", "--configs", "3", "--dry-run"]);
    assert!(again.stdout.contains("median 0s"), "{}", again.stdout);
    assert!(
        again.stdout.contains("(3 tasks, same image)"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_run_over_its_cost_limit_is_refused_before_it_starts() {
    let t = Test::with_task(r#"command = ["/task"]"#);
    t.build();
    t.run(&["submit", "--configs", "10000", "--max-cost", "0.5"])
        .assert_error(2, "estimated cost is up to $");
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &format!("{toml}\n[cost]\nmax_per_run = 0.5\n"),
    );
    let r = t.run(&["submit", "--configs", "10000"]);
    r.assert_error(2, "over the limit of $0.50");
    assert_eq!(t.run_count(), 0, "nothing was made");
    // Under the limit it runs.
    assert_eq!(t.run(&["submit", "--configs", "1"]).status, 0);
    t.write(
        "jobrun.toml",
        &format!("{toml}\n[cost]\nspot_discount = 1.5\n"),
    );
    t.run(&["submit", "--configs", "1"])
        .assert_error(2, "cost.spot_discount is a fraction");
}

#[test]
fn on_fargate_the_cost_is_every_attempt_as_describe_tasks_reports_it() {
    let moto = services::recording_moto();
    let t = fargate_job(&moto, "");
    // Nothing written by a dry run: no record, no AWS write call.
    moto.restart_recording();
    let dry = t.run(&["submit", "--configs", "2", "--dry-run", "-o", "json"]);
    assert_eq!(dry.status, 0, "{}", dry.stderr);
    assert_eq!(
        dry.json()["capacity"],
        "Fargate Spot (on-demand when Spot has none)"
    );
    assert_eq!(
        moto.writes(),
        Vec::<String>::new(),
        "a dry run writes nothing"
    );
    assert_eq!(t.run_count(), 0);

    // Task 1's first attempt is interrupted on Spot and retried: both attempts are billed.
    let spot_once = json!({"fake": {"stop_code": "SpotInterruption", "until_attempt": 2}});
    let run = t.submit_detached(&[json!({}), spot_once]);
    let s = t.wait_for(&run, "the run to end", |s| s["state"] == "succeeded");
    t.wait_for_driver_exit(&run);
    let rec: Value = t.record(&run);
    let tasks = tasks_listed(
        &moto,
        rec["ecs"]["cluster"].as_str().unwrap(),
        ("startedBy", rec["ecs"]["started_by"].as_str().unwrap()),
    );
    assert_eq!(tasks.len(), 3, "two tasks, one of them twice");
    eprintln!("{}", tasks[0]);
    // The formula over DescribeTasks' own times: arm64, 0.25 vCPU, 0.5 GB, Fargate's free 20
    // GiB of storage, and a public IPv4 address, which Spot does not discount.
    let p = rec["settings"]["prices"].clone();
    let price = |k: &str| p[k].as_f64().unwrap();
    let hourly = price("vcpu_hour") * 0.25 + price("gb_hour") * 0.5;
    let ipv4 = price("public_ipv4_hour");
    assert_eq!(ipv4, 0.005);
    let (mut low, mut high) = (0.0, 0.0);
    for task in &tasks {
        let at = |k: &str| task[k].as_f64().unwrap_or_else(|| panic!("{k} in {task}"));
        let from = task["pullStartedAt"]
            .as_f64()
            .unwrap_or_else(|| at("startedAt"));
        let hours = billed(at("stoppedAt") - from) / 3600.0;
        let (usd, address) = (hours * hourly, hours * ipv4);
        let on_spot = task["capacityProviderName"] == "FARGATE_SPOT";
        low += address + if on_spot { usd * 0.3 } else { usd };
        high += address + if on_spot { usd * 0.5 } else { usd };
    }
    let cost = &s["cost"];
    assert!(
        close(cost["usd"]["low"].as_f64().unwrap(), low),
        "{cost} vs {low}"
    );
    assert!(
        close(cost["usd"]["high"].as_f64().unwrap(), high),
        "{cost} vs {high}"
    );
    assert_eq!(cost["attempts"], 3);
    assert_eq!(cost["basis"], "fargate");
    assert_eq!(s["tasks"][1]["cost"]["attempts"], 2);

    // The estimate now learns from that run, and a limit below it refuses.
    let again = t.run(&["submit", "--configs", "2", "--dry-run"]);
    assert!(
        again
            .stdout
            .contains(&format!("from run {run} (2 tasks, same image)")),
        "{}",
        again.stdout
    );
    moto.restart_recording();
    t.run(&["submit", "--configs", "2", "--max-cost", "0.00001"])
        .assert_error(2, "over the limit of $0.0000");
    assert_eq!(
        moto.writes(),
        Vec::<String>::new(),
        "a refused run writes nothing"
    );
}

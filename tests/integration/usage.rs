//! What tasks use of their size (issue "pay only for work that counts"): each attempt's peak
//! memory and CPU time, measured where it ran — locally from the engine's stats of its
//! container, in AWS by the in-image jobrun from the container's cgroup (see
//! `outputs_ecs::in_a_container_of_the_job_image_the_reduce_downloads_its_inputs`) — shown
//! by `status` and the summary with a smaller size that would have held every attempt.

use crate::harness::Test;

/// The peak jobrun records for an attempt that allocated `mib`: within 10 % of it.
fn near(measured: f64, mib: f64) -> bool {
    (measured - mib).abs() <= mib * 0.10
}

#[test]
fn a_local_run_records_each_attempts_peak_memory_and_cpu_and_suggests_a_smaller_size() {
    let t = Test::with_task(r#"command = ["/task", "alloc", "{config.mib}", "sleep", "2.5"]"#);
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace(
            "cpu = 0.25\nmemory = \"512MB\"",
            "cpu = 1\nmemory = \"4GB\"",
        ),
    );
    t.build();
    t.write("c.jsonl", "{\"mib\": 100}\n{\"mib\": 300}\n");
    let r = t.run(&["submit", "--configs", "c.jsonl"]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    let run = t.only_run();
    let rec = t.record(&run);
    for (i, mib) in [(0, 100.0), (1, 300.0)] {
        let usage = &rec["tasks"][i]["bills"][0]["usage"];
        let peak = usage["memory_peak_mib"]
            .as_f64()
            .unwrap_or_else(|| panic!("{usage}"));
        assert!(
            near(peak, mib),
            "task {i} allocated {mib} MiB, peak {peak}: {usage}"
        );
        assert!(usage["cpu_secs"].as_f64().unwrap() >= 0.0, "{usage}");
    }
    let s = t.status(&run);
    let used = &s["used"];
    assert_eq!(used["attempts"], 2, "{used}");
    assert!(
        near(used["memory_peak_mib"].as_f64().unwrap(), 300.0),
        "{used}"
    );
    // 300 MiB + 25 % fits 0.25 vCPU / 512 MB, a sixth of 1 vCPU / 4 GB's price.
    assert_eq!(used["suggestion"]["memory_mib"], 512, "{used}");
    assert_eq!(used["suggestion"]["cpu"], 0.25, "{used}");
    let text = t.run(&["status", &run]).stdout;
    assert!(
        text.contains("used    memory peak 0.3 GB of 4.0 GB"),
        "{text}"
    );
    assert!(text.contains("512MB / 0.25 vCPU would have cost"), "{text}");
    assert!(
        r.stdout.contains("used: memory peak 0.3 GB of 4.0 GB"),
        "{}",
        r.stdout
    );
}

/// `[resources] size = "auto"`: the first run takes the configured size (nothing measured
/// yet), the next the smallest size above the first's peaks with the margin — a configuration
/// that ran there by its own peak — and a task that then needs more is stepped up after its
/// out-of-memory kill, not lost.
#[test]
fn size_auto_learns_the_next_runs_size_and_a_task_that_grows_is_stepped_up() {
    let t = Test::with_task(
        r#"command = ["/task", "alloc", "{config.mib}", "sleep", "2"]
max_attempts = 3"#,
    );
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace(
            "cpu = 0.25\nmemory = \"512MB\"",
            "cpu = 1\nmemory = \"4GB\"\nsize = \"auto\"",
        ),
    );
    t.build();
    t.write("first.jsonl", "{\"mib\": 100}\n{\"mib\": 600}\n");
    let first = t.run(&["submit", "--configs", "first.jsonl", "-o", "json"]);
    assert_eq!(first.status, 0, "{}\n{}", first.stdout, first.stderr);
    let first_run = t.only_run();
    assert_eq!(t.record(&first_run)["settings"]["memory_mib"], 4096);
    // The plan of the next run says where its size comes from.
    let dry = t.run(&["submit", "--configs", "first.jsonl", "--dry-run"]);
    assert!(
        dry.stdout.contains("size: 0.25 vCPU, 1 GB"),
        "{}\n{}",
        dry.stdout,
        dry.stderr
    );
    assert!(
        dry.stdout
            .contains(&format!("learned from run {first_run}")),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("1 task by its own configuration's peak"),
        "{}",
        dry.stdout
    );
    // Its duration is learned per task too: both configurations ran there.
    assert!(
        dry.stdout
            .contains("2 of the tasks by what the same task took there"),
        "{}",
        dry.stdout
    );
    t.write("second.jsonl", "{\"mib\": 100}\n{\"mib\": 1100}\n");
    let second = t.run(&["submit", "--configs", "second.jsonl"]);
    assert_eq!(second.status, 0, "{}\n{}", second.stdout, second.stderr);
    assert!(
        second
            .stdout
            .contains("size 0.25 vCPU / 1GB, learned from run"),
        "{}",
        second.stdout
    );
    // The estimate it was submitted with was learned from the first run; its end says how
    // far off that was.
    assert!(
        second.stdout.contains("estimate: a task took")
            && second
                .stdout
                .contains(&format!("expected from run {first_run}")),
        "{}",
        second.stdout
    );
    assert!(
        t.status(&first_run)["estimate"].is_null(),
        "nothing to learn from at first"
    );
    let second_run = std::fs::read_dir(t.state.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|id| *id != first_run)
        .unwrap();
    let rec = t.record(&second_run);
    assert_eq!(rec["settings"]["memory_mib"], 1024, "{}", rec["settings"]);
    // The configuration that ran before (100 MiB) runs at its own size.
    assert_eq!(
        rec["tasks"][0]["learned"]["memory_mib"], 512,
        "{}",
        rec["tasks"][0]
    );
    assert_eq!(rec["tasks"][0]["bills"][0]["size"]["memory_mib"], 512);
    assert_eq!(rec["settings"]["learned"]["from_run"], first_run.as_str());
    let grown = &rec["tasks"][1];
    assert_eq!(
        (grown["state"].as_str(), grown["attempts"].as_u64()),
        (Some("succeeded"), Some(2)),
        "{grown}"
    );
    assert_eq!(grown["size"]["memory_mib"], 2048, "{grown}");
}

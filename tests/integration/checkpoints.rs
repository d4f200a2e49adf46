//! Checkpoints (issue "pay only for work that counts"): what a task writes to
//! `JOBRUN_CHECKPOINT_DIR` is kept across its attempts — locally in the run's folder, on ECS
//! by the jobrun in the image under the run's `checkpoints/<index>/` (see
//! `outputs_ecs::on_ecs_a_task_stopped_at_60_resumes_from_its_checkpoint`) — so an attempt
//! stopped half way (a Spot interruption) is not done again from the start.

use crate::harness::Test;
use serde_json::json;
use std::time::{Duration, Instant};

/// The counter a `count` task saved in its checkpoint folder (0 before the first).
pub(crate) fn counter(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) until the counter at `path` reaches `at`.
pub(crate) fn wait_for_count(path: &std::path::Path, at: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter(path) < at {
        assert!(Instant::now() < deadline, "the task never counted to {at}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A task counting to 100, killed at 60 (`docker kill`, as the machine under it going away
/// would), is retried and its second attempt begins at 60 from its checkpoint folder.
#[test]
fn a_local_task_killed_at_60_resumes_at_60_from_its_checkpoint() {
    let t = Test::with_task(
        r#"command = ["/task", "count", "100", "0.05"]
max_attempts = 2
retry_exit_codes = [137]"#,
    );
    t.build();
    let run = t.submit_detached(&[json!({})]);
    let saved = t
        .state
        .path()
        .join("runs")
        .join(&run)
        .join("checkpoints/0/counter");
    wait_for_count(&saved, 60);
    let killed = std::process::Command::new("docker")
        .args(["kill", &format!("jobrun-{run}-0-1")])
        .output()
        .unwrap();
    assert!(
        killed.status.success(),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    let s = t.wait_for(&run, "the run to succeed", |s| s["state"] == "succeeded");
    let task = &s["tasks"][0];
    assert_eq!(task["attempts"], 2, "{task}");
    let from = task["result"]["resumed_from"].as_u64().unwrap();
    assert!((60..100).contains(&from), "resumed from {from}: {task}");
    assert_eq!(task["result"]["count"], 100);
    assert_eq!(t.record(&run)["tasks"][0]["resumed"], json!([2]));
    assert_eq!(s["checkpoints"]["tasks"], 1, "{}", s["checkpoints"]);
    let text = t.run(&["status", &run]).stdout;
    assert!(text.contains("1 task resumed from a checkpoint"), "{text}");
}

//! One task of the job. jobrun sets JOBRUN_CONFIG (JSON), JOBRUN_INDEX, JOBRUN_COUNT,
//! JOBRUN_RUN_ID and JOBRUN_ATTEMPT, and
//!   JOBRUN_OUTPUT_DIR  an empty folder for what the task makes, kept after it (on Fargate
//!                      uploaded to the job's bucket); result.json there (a JSON object, at
//!                      most 64 KiB) is the task's result, which `jobrun results` tables
//!   JOBRUN_STAGE       "map", or "reduce" for the [reduce] task, which reads every task's
//!                      folder at JOBRUN_INPUTS_DIR/<index>/
//! Exit 0 for success.

fn main() {
    let config: serde_json::Value =
        serde_json::from_str(&std::env::var("JOBRUN_CONFIG").unwrap_or_else(|_| "{}".into()))
            .expect("JOBRUN_CONFIG is JSON");
    let index = std::env::var("JOBRUN_INDEX").unwrap_or_default();
    let count = std::env::var("JOBRUN_COUNT").unwrap_or_default();
    println!("task {index} of {count}: config {config}");
    // ... the heavy work goes here ...
    std::thread::sleep(std::time::Duration::from_secs(1));
    if let Ok(dir) = std::env::var("JOBRUN_OUTPUT_DIR") {
        let result = serde_json::json!({"config": config, "score": 1.0});
        std::fs::write(format!("{dir}/result.json"), result.to_string())
            .expect("the output folder can be written");
    }
    println!("done");
}

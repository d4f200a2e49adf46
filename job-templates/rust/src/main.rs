//! One task of the job. jobrun sets JOBRUN_CONFIG (JSON), JOBRUN_INDEX, JOBRUN_COUNT,
//! JOBRUN_RUN_ID and JOBRUN_ATTEMPT. Exit 0 for success.

fn main() {
    let config: serde_json::Value =
        serde_json::from_str(&std::env::var("JOBRUN_CONFIG").unwrap_or_else(|_| "{}".into()))
            .expect("JOBRUN_CONFIG is JSON");
    let index = std::env::var("JOBRUN_INDEX").unwrap_or_default();
    let count = std::env::var("JOBRUN_COUNT").unwrap_or_default();
    println!("task {index} of {count}: config {config}");
    // ... the heavy work goes here ...
    std::thread::sleep(std::time::Duration::from_secs(1));
    println!("done");
}

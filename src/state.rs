//! Per-job state kept beside the runs in the state directory: what `jobrun up` made
//! (`jobs/<job>/aws.json`, which `submit` reads to know where tasks go) and what was built and
//! pushed (`jobs/<job>/images.json`, kept by `image::records`). One place names these files.

use crate::infra::Outputs;
use crate::store::{Store, StoreError, write_json_atomic};
use std::path::PathBuf;

/// The job's image records.
pub fn images_path(store: &Store, job: &str) -> PathBuf {
    store.job_dir(job).join("images.json")
}

fn outputs_path(store: &Store, job: &str) -> PathBuf {
    store.job_dir(job).join("aws.json")
}

/// Remembers what `up` made for the job.
pub fn save_outputs(store: &Store, job: &str, outputs: &Outputs) -> Result<(), StoreError> {
    write_json_atomic(&outputs_path(store, job), outputs)
}

/// What `up` last made for the job, if it ran on this machine.
pub fn load_outputs(store: &Store, job: &str) -> Option<Outputs> {
    let bytes = std::fs::read(outputs_path(store, job)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

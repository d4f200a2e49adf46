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

/// Forgets what `up` made (after `down` removed it): a later `submit` says to run `up`.
pub fn forget_outputs(store: &Store, job: &str) -> Result<(), StoreError> {
    let path = outputs_path(store, job);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Io { path, source }),
    }
}

/// What `up` last made for the job: `None` when it did not run on this machine; a file that
/// cannot be read is its error (never "run `jobrun up`", which would make it all again).
pub fn load_outputs(store: &Store, job: &str) -> Result<Option<Outputs>, StoreError> {
    let path = outputs_path(store, job);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::Io { path, source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StoreError::Corrupt { path, source })
}

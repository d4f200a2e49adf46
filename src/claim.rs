//! What makes `submit` safe to fire from cron: an idempotency key claimed once per job, and the
//! log of submissions that started nothing.
//!
//! A key is claimed where every submitter of the job can see it: for the local target a file in
//! the state folder, created whole or not at all (written aside, then hard-linked into place,
//! which fails if the name is taken); for ECS jobs an object in the job's bucket written with
//! `If-None-Match: *`, so two machines racing get one run. The claim names the run it made.
//! Skipped submissions (the overlap policy) are appended to `jobs/<job>/skipped.jsonl` beside
//! the runs, for `jobrun runs`; for ECS jobs each is also an object under `jobs/<job>/skipped/`
//! in the bucket, so a skip in the schedules' dispatcher (whose state folder goes with its
//! task) is seen by `jobrun schedule list` on any machine.

use crate::aws::{self, Aws, AwsError};
use crate::store::Store;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("--key `{0}` must be 1-128 characters of letters, digits, '.', '_', '-' and ':'")]
    BadKey(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A claimed key: which run it made, and when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyClaim {
    pub key: String,
    pub run_id: String,
    pub claimed_at: DateTime<Utc>,
}

/// The outcome of a claim.
#[derive(Debug)]
pub enum Claimed {
    /// This submit holds the key: it makes the run.
    Ours,
    /// Another submit holds it, for this run.
    Taken(KeyClaim),
}

/// A key is part of a file name and an S3 key, and is typed in crontabs.
pub fn check_key(key: &str) -> Result<(), ClaimError> {
    let ok = (1..=128).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ClaimError::BadKey(key.to_string()))
    }
}

fn local_path(store: &Store, job: &str, key: &str) -> PathBuf {
    store.job_dir(job).join("keys").join(format!("{key}.json"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClaimError + '_ {
    move |source| ClaimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The claim of this key in the state folder, if there is one.
pub fn claimed_here(store: &Store, job: &str, key: &str) -> Option<KeyClaim> {
    let bytes = std::fs::read(local_path(store, job, key)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Creates `path` with `body`, whole, unless it exists: `false` when it did.
pub fn create_once(path: &Path, body: &[u8]) -> Result<bool, ClaimError> {
    let dir = path.parent().expect("a folder");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut aside = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    aside.write_all(body).map_err(io(aside.path()))?;
    aside.as_file().sync_all().map_err(io(aside.path()))?;
    match std::fs::hard_link(aside.path(), path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

/// Claims the key in the state folder (the local target).
pub fn claim_here(store: &Store, job: &str, claim: &KeyClaim) -> Result<Claimed, ClaimError> {
    let path = local_path(store, job, &claim.key);
    let body = serde_json::to_vec(claim).expect("claims serialise");
    if create_once(&path, &body)? {
        return Ok(Claimed::Ours);
    }
    let taken = claimed_here(store, job, &claim.key).ok_or_else(|| ClaimError::Io {
        path: path.clone(),
        source: std::io::Error::other("an unreadable key claim"),
    })?;
    Ok(Claimed::Taken(taken))
}

/// The claim of this key in the job's bucket, if there is one.
pub async fn claimed_in_bucket(
    aws: &Aws,
    bucket: &str,
    job: &str,
    key: &str,
) -> Result<Option<KeyClaim>, ClaimError> {
    let at = crate::layout::key_claim_key(job, key);
    let s3 = aws.s3();
    // Asked by listing first: a GetObject of a missing key answers 403, not 404, to a caller
    // that may list only the job's prefix (what `jobrun iam-policy` grants).
    if !aws::object_exists(&s3, bucket, &at).await? {
        return Ok(None);
    }
    Ok(aws::get_json(&s3, bucket, &at).await?)
}

/// Claims the key in the job's bucket (ECS jobs): one conditional write decides.
pub async fn claim_in_bucket(
    aws: &Aws,
    bucket: &str,
    job: &str,
    claim: &KeyClaim,
) -> Result<Claimed, ClaimError> {
    let at = crate::layout::key_claim_key(job, &claim.key);
    let body = serde_json::to_vec(claim).expect("claims serialise");
    if aws::put_json_once(&aws.s3(), bucket, &at, body).await? {
        return Ok(Claimed::Ours);
    }
    match claimed_in_bucket(aws, bucket, job, &claim.key).await? {
        // Our own write, whose answer was lost and whose retry met it.
        Some(taken) if taken == *claim => Ok(Claimed::Ours),
        Some(taken) => Ok(Claimed::Taken(taken)),
        // Written by something that is not a claim: never ours to overwrite.
        None => Err(AwsError::Service {
            operation: "GetObject",
            code: "NotAClaim".into(),
            message: format!("s3://{bucket}/{at} is not a jobrun key claim"),
        }
        .into()),
    }
}

/// Gives a key back when the run it was claimed for could not be made (only a claim naming
/// that run is removed).
pub async fn release(
    store: &Store,
    shared: Option<(&Aws, &str)>,
    job: &str,
    claim: &KeyClaim,
) -> Result<(), ClaimError> {
    match shared {
        None => {
            if claimed_here(store, job, &claim.key).as_ref() == Some(claim) {
                let path = local_path(store, job, &claim.key);
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        Some((aws, bucket)) => {
            if claimed_in_bucket(aws, bucket, job, &claim.key)
                .await?
                .as_ref()
                == Some(claim)
            {
                let at = crate::layout::key_claim_key(job, &claim.key);
                let s3 = aws.s3();
                let deleted = s3.delete_object().bucket(bucket).key(&at).send().await;
                deleted.map_err(aws::op("DeleteObject"))?;
            }
        }
    }
    Ok(())
}

/// A submission that started nothing, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub at: DateTime<Utc>,
    pub job: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The run that was active.
    pub active_run: String,
    pub reason: String,
}

fn skipped_path(store: &Store, job: &str) -> PathBuf {
    store.job_dir(job).join("skipped.jsonl")
}

/// Appends a skipped submission to the job's log (one JSON line, appended in one write).
pub fn log_skipped(store: &Store, skipped: &Skipped) -> Result<(), ClaimError> {
    let path = skipped_path(store, &skipped.job);
    let dir = path.parent().expect("a job folder");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut line = serde_json::to_vec(skipped).expect("serialisable");
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    file.write_all(&line).map_err(io(&path))
}

/// The job's skipped submissions, oldest first (lines that do not parse are passed over).
pub fn skipped(store: &Store, job: &str) -> Vec<Skipped> {
    std::fs::read_to_string(skipped_path(store, job))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Keeps a skipped submission in the job's bucket, named by its time (so names sort by it).
pub async fn log_skipped_in_bucket(
    aws: &Aws,
    bucket: &str,
    skipped: &Skipped,
) -> Result<(), ClaimError> {
    let at = skipped.at.format("%Y%m%dT%H%M%S%.6fZ");
    let key = format!("{}{at}.json", crate::layout::skipped_prefix(&skipped.job));
    let body = serde_json::to_vec(skipped).expect("serialisable");
    Ok(aws::put_json(&aws.s3(), bucket, &key, body).await?)
}

/// The job's newest skipped submissions in its bucket, newest first.
pub async fn skipped_in_bucket(
    aws: &Aws,
    bucket: &str,
    job: &str,
    newest: usize,
) -> Result<Vec<Skipped>, ClaimError> {
    let s3 = aws.s3();
    let prefix = crate::layout::skipped_prefix(job);
    let mut keys: Vec<String> = aws::list_objects(&s3, bucket, &prefix)
        .await?
        .into_iter()
        .map(|o| format!("{prefix}{}", o.rel))
        .collect();
    keys.sort();
    let mut found = vec![];
    for key in keys.iter().rev().take(newest) {
        if let Some(skipped) = aws::get_json(&s3, bucket, key).await? {
            found.push(skipped);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_words() {
        for ok in ["2026-W48", "weekly:2026-11-30T06:00:00Z", "a"] {
            check_key(ok).unwrap();
        }
        for bad in ["", "a/b", "a b", "../x", &"k".repeat(129)] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_is_claimed_once_in_the_state_folder() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_path_buf()).unwrap();
        let claim = |run: &str| KeyClaim {
            key: "2026-W48".into(),
            run_id: run.into(),
            claimed_at: Utc::now(),
        };
        assert!(matches!(
            claim_here(&store, "wc", &claim("r1")).unwrap(),
            Claimed::Ours
        ));
        match claim_here(&store, "wc", &claim("r2")).unwrap() {
            Claimed::Taken(c) => assert_eq!(c.run_id, "r1"),
            Claimed::Ours => panic!("claimed twice"),
        }
        // Another job's key of the same name is its own.
        assert!(matches!(
            claim_here(&store, "other", &claim("r3")).unwrap(),
            Claimed::Ours
        ));
    }
}

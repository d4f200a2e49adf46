//! Don't pay twice. Every map task has a key: a digest of what determines its result — the
//! image (its digest when pushed, its id locally), the command after placeholders, the
//! configuration and the environment jobrun gives it (not the run id, index or attempt). A
//! finished run keeps its succeeded tasks' keys beside its record (`keys.json`, written with
//! the run index), so `submit --reuse` finds earlier tasks with the same key without reading
//! every record; a hit does not run: its result and output folder are copied into the new run
//! and it is `succeeded` with `reused_from: <run>#<index>`. A changed image or command changes
//! every key, so nothing is reused across them.

use crate::record::{RunRecord, RunSettings, Stage, TaskRecord, TaskState};
use crate::store::{Store, StoreError};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, thiserror::Error)]
pub enum ReuseError {
    #[error("--reuse {run}: no such run")]
    NoSuchRun { run: String },
    #[error("--reuse {run}: it is a run of job {other}, not of {job}")]
    OtherJob {
        run: String,
        other: String,
        job: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
}

/// Which earlier runs a submit may reuse tasks of.
#[derive(Debug, Clone, PartialEq)]
pub enum Reuse {
    No,
    /// Any earlier run of the job (the newest hit wins).
    Any,
    /// This run only.
    From(String),
}

/// A task's key (none for a task whose inputs jobrun does not know in full: a `--from-s3`
/// task without its object's ETag, whose content may have changed under the same name).
pub fn key_of(image_id: &str, settings: &RunSettings, task: &TaskRecord) -> Option<String> {
    let unknown_input = task.env.contains_key("S3_KEY") && !task.env.contains_key("S3_ETAG");
    if task.stage != Stage::Map || unknown_input {
        return None;
    }
    let mut env: BTreeMap<&str, &str> = settings
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend(task.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let what = serde_json::json!({
        "image": image_id,
        "command": task.command,
        "config": task.config.value(),
        "env": env,
    });
    let digest = Sha256::digest(canonical(what).to_string().as_bytes());
    Some(format!("{digest:x}")[..32].to_string())
}

/// A value with every object's keys sorted: JSON keeps a configuration's keys in the order the
/// user gave them (`results` shows them so), but a task is the same task whatever that order,
/// and keys made before that order was kept stay the same.
fn canonical(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let sorted: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Gives every map task of a new record its key.
pub fn set_keys(rec: &mut RunRecord) {
    let (image, settings) = (&rec.image.id, &rec.settings);
    for t in rec.tasks.iter_mut() {
        t.key = key_of(image, settings, t);
    }
}

/// Where an earlier task with a key is: (run, index), from the newest run that has it.
pub fn earlier(
    store: &Store,
    job: &str,
    reuse: &Reuse,
) -> Result<HashMap<String, (String, usize)>, ReuseError> {
    let runs: Vec<String> = match reuse {
        Reuse::No => return Ok(HashMap::new()),
        Reuse::From(run) => {
            let s = store.summary(run).map_err(|e| match e {
                StoreError::NoSuchRun(_) => ReuseError::NoSuchRun { run: run.clone() },
                e => e.into(),
            })?;
            if s.job != job {
                return Err(ReuseError::OtherJob {
                    run: run.clone(),
                    other: s.job,
                    job: job.to_string(),
                });
            }
            vec![s.run_id]
        }
        Reuse::Any => store
            .summaries()?
            .runs
            .into_iter()
            .filter(|s| s.job == job && s.finished)
            .map(|s| s.run_id)
            .collect(),
    };
    let mut found = HashMap::new();
    // Newest first: the first run that has a key keeps it.
    for run in runs {
        for (key, index) in store.task_keys(&run)? {
            found.entry(key).or_insert_with(|| (run.clone(), index));
        }
    }
    Ok(found)
}

/// What reusing did to a new run beyond what its record says (`RunRecord::reused_count`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reused {
    /// Tasks whose earlier twin's outputs are gone (deleted since): they run.
    pub outputs_gone: Vec<usize>,
}

/// A queued task of a new run and the earlier task with its key.
struct Twin {
    task: usize,
    run: String,
    index: usize,
    result: Option<serde_json::Value>,
}

/// The new run's queued tasks that have an earlier twin (whose records are read for their
/// results: only the runs that have a twin).
fn twins(
    store: &Store,
    rec: &RunRecord,
    found: &HashMap<String, (String, usize)>,
) -> Result<Vec<Twin>, ReuseError> {
    let mut records: HashMap<String, RunRecord> = HashMap::new();
    let mut twins = vec![];
    for t in rec.tasks.iter().filter(|t| t.state == TaskState::Queued) {
        let Some((run, index)) = t.key.as_ref().and_then(|k| found.get(k)) else {
            continue;
        };
        if !records.contains_key(run) {
            records.insert(run.clone(), store.load(run)?);
        }
        if let Some(twin) = records[run].tasks.get(*index) {
            twins.push(Twin {
                task: t.index,
                run: run.clone(),
                index: *index,
                result: twin.result.clone(),
            });
        }
    }
    Ok(twins)
}

/// Marks each task whose twin's outputs are still there (`present`) as reused; the others
/// run (their indexes are returned in `outputs_gone`).
fn mark(rec: &mut RunRecord, twins: Vec<Twin>, present: impl Fn(&Twin) -> bool) -> Reused {
    let mut reused = Reused::default();
    let now = chrono::Utc::now();
    for twin in twins {
        if !present(&twin) {
            reused.outputs_gone.push(twin.task);
            continue;
        }
        let from = format!("{}#{}", twin.run, twin.index);
        rec.tasks[twin.task].reuse(from, twin.result, now);
    }
    reused
}

/// A local run's reuse: a twin's outputs are there when its output folder is.
pub fn reuse_local(
    store: &Store,
    rec: &mut RunRecord,
    found: &HashMap<String, (String, usize)>,
) -> Result<Reused, ReuseError> {
    let twins = twins(store, rec, found)?;
    Ok(mark(rec, twins, |t| {
        local_outputs(store, &t.run, t.index).is_dir()
    }))
}

/// A local map task's output folder, by run and index.
fn local_outputs(store: &Store, run: &str, index: usize) -> std::path::PathBuf {
    crate::outputs::local_inputs(&store.run_dir(run)).join(index.to_string())
}

/// The reused task a task is a copy of: (run, index).
fn twin_of(t: &TaskRecord) -> Option<(&str, usize)> {
    let (run, index) = t.reused_from.as_deref()?.split_once('#')?;
    Some((run, index.parse().ok()?))
}

/// Copies the reused tasks' output folders into the (now existing) run's folder; a task whose
/// folder cannot be copied runs after all. Returns those, with why.
pub fn copy_local(store: &Store, rec: &mut RunRecord) -> Vec<(usize, String)> {
    let mut failed = vec![];
    let run_dir = store.run_dir(&rec.run_id);
    for t in rec.tasks.iter_mut() {
        let Some((run, index)) = twin_of(t) else {
            continue;
        };
        let from = local_outputs(store, run, index);
        let to = crate::outputs::local_dir(&run_dir, t);
        if let Err(e) = crate::outputs::copy_dir(&from, &to) {
            failed.push((t.index, e.to_string()));
            t.unreuse();
        }
    }
    failed
}

/// An ECS run's reuse: a twin's outputs are there when its prefix in the bucket has objects
/// (one listing per earlier run), or when it left nothing to lose (no result).
pub async fn reuse_ecs(
    store: &Store,
    rec: &mut RunRecord,
    found: &HashMap<String, (String, usize)>,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Reused, ReuseError> {
    let twins = twins(store, rec, found)?;
    let mut present: HashMap<String, std::collections::HashSet<usize>> = HashMap::new();
    for run in twins.iter().map(|t| t.run.clone()) {
        if present.contains_key(&run) {
            continue;
        }
        let prefix = crate::wire::inputs_prefix(&rec.job, &run);
        let listed = crate::aws::list_objects(s3, bucket, &prefix).await?;
        let indexes = listed
            .iter()
            .filter_map(|o| o.rel.split('/').next()?.parse().ok())
            .collect();
        present.insert(run, indexes);
    }
    let there = |t: &Twin| t.result.is_none() || present[&t.run].contains(&t.index);
    Ok(mark(rec, twins, there))
}

/// Copies the reused tasks' output folders within the bucket (S3 CopyObject, server-side);
/// a task whose folder cannot be copied runs after all. Returns those, with why.
pub async fn copy_s3(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    rec: &mut RunRecord,
) -> Vec<(usize, String)> {
    let mut failed = vec![];
    let (job, run_id) = (rec.job.clone(), rec.run_id.clone());
    for t in rec.tasks.iter_mut() {
        let Some((run, index)) = twin_of(t) else {
            continue;
        };
        let from = crate::wire::output_prefix(&job, run, index, Stage::Map);
        let to = crate::wire::output_prefix(&job, &run_id, t.index, Stage::Map);
        if let Err(e) = crate::outputs::s3::copy_prefix(s3, bucket, &from, &to).await {
            failed.push((t.index, e.to_string()));
            t.unreuse();
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_key_is_of_the_inputs_not_of_the_run() {
        let rec = crate::record::tests::record("20260101-000000-a-0001", "a");
        let task = |i, lr| TaskRecord::new(i, json!({"lr": lr}), Some(vec!["/job".into()]));
        let key = |t: &TaskRecord| key_of("sha256:img", &rec.settings, t).unwrap();
        assert_eq!(key(&task(0, 1)), key(&task(7, 1)), "the index is not in it");
        assert_ne!(key(&task(0, 1)), key(&task(0, 2)), "the configuration is");
        let ordered = |v| TaskRecord::new(0, v, Some(vec!["/job".into()]));
        assert_eq!(
            key(&ordered(json!({"lr": 1, "seed": {"a": 1, "b": 2}}))),
            key(&ordered(json!({"seed": {"b": 2, "a": 1}, "lr": 1}))),
            "not the order of its keys"
        );
        let other_image = key_of("sha256:other", &rec.settings, &task(0, 1)).unwrap();
        assert_ne!(key(&task(0, 1)), other_image, "the image is");
        let mut other_command = task(0, 1);
        other_command.command = Some(vec!["/job".into(), "--fast".into()]);
        assert_ne!(key(&task(0, 1)), key(&other_command), "the command is");
        let mut from_s3 = task(0, 1);
        from_s3.env.insert("S3_KEY".into(), "in/a.csv".into());
        assert_eq!(
            key_of("sha256:img", &rec.settings, &from_s3),
            None,
            "no ETag"
        );
        from_s3.env.insert("S3_ETAG".into(), "\"e1\"".into());
        let before = key(&from_s3);
        from_s3.env.insert("S3_ETAG".into(), "\"e2\"".into());
        assert_ne!(key(&from_s3), before, "the object changed");
        assert_eq!(
            key_of("sha256:img", &rec.settings, &TaskRecord::reduce(3, None)),
            None
        );
    }
}

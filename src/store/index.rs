//! The run index: a small summary beside each record (`runs/<id>/summary.json`: job, state,
//! counts, times, key) that `runs`, "the latest run of this job" and the overlap check read
//! instead of whole records (a 10,000-task record is megabytes; its summary a few hundred
//! bytes). The record stays the source of truth: a summary carries the [`Stamp`] of the record
//! file it was made from, and one that is missing, unreadable or older than its
//! record (a crash between the two writes, a record written by an older jobrun) is made again
//! from the record and rewritten. Both are written under the run's lock by whoever saves.

use super::{Stamp, Store, StoreError, write_json_atomic};
use crate::cost::RecordCost as _;
use crate::record::RunRecord;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a listing needs of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub run_id: String,
    pub job: String,
    pub target: String,
    pub state: crate::record::RunState,
    pub finished: bool,
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub key: Option<String>,
    /// The image id the run's tasks ran.
    #[serde(default)]
    pub image: String,
    /// How long its successful map tasks took (what estimates learn from).
    #[serde(default)]
    pub durations: Option<Durations>,
    /// What it cost (local runs: on Fargate).
    #[serde(default)]
    pub cost: Option<crate::cost::RunCost>,
    /// The record file it was made from (none: it matches no file, and is made again).
    #[serde(default)]
    stamp: Stamp,
    /// The summary's own format: one older than [`VERSION`] is made again.
    #[serde(default)]
    v: u32,
}

/// The summary format; bumped when a field is added that older summaries lack.
const VERSION: u32 = 3;

/// The median and p90 of a run's successful map task durations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Durations {
    pub n: usize,
    pub median_secs: f64,
    pub p90_secs: f64,
}

impl Durations {
    pub fn of(rec: &RunRecord) -> Option<Durations> {
        use crate::record::{Stage, TaskState};
        let secs: Vec<f64> = rec
            .tasks
            .iter()
            .filter(|t| t.stage == Stage::Map && t.state == TaskState::Succeeded)
            .filter_map(|t| Some(crate::record::secs_between(t.started_at?, t.finished_at?)))
            .collect();
        let s = crate::record::Spread::of(secs)?;
        Some(Durations {
            n: s.n,
            median_secs: s.median_secs,
            p90_secs: s.p90_secs,
        })
    }
}

/// `keys.json`: a finished run's succeeded map tasks by key (a 10,000-task run's is a few
/// hundred kilobytes, read only by `submit --reuse`; the summary stays small).
#[derive(Debug, Serialize, Deserialize)]
struct KeyIndex {
    stamp: Stamp,
    keys: BTreeMap<String, usize>,
}

impl KeyIndex {
    fn of(rec: &RunRecord, stamp: Stamp) -> KeyIndex {
        use crate::record::{Stage, TaskState};
        let keys = rec
            .tasks
            .iter()
            .filter(|t| t.stage == Stage::Map && t.state == TaskState::Succeeded)
            .filter_map(|t| Some((t.key.clone()?, t.index)))
            .collect();
        KeyIndex { stamp, keys }
    }
}

impl RunSummary {
    fn of(rec: &RunRecord, stamp: Stamp) -> RunSummary {
        use crate::record::TaskState;
        RunSummary {
            run_id: rec.run_id.clone(),
            job: rec.job.clone(),
            target: rec.place.target_name().to_string(),
            state: rec.state(),
            finished: rec.is_finished(),
            total: rec.tasks.len(),
            succeeded: rec.count(TaskState::Succeeded),
            failed: rec.count(TaskState::Failed),
            created_at: rec.created_at,
            finished_at: rec.finished_at,
            key: rec.key.clone(),
            image: rec.image.id.clone(),
            // Estimates learn from finished runs only: a running one's would be sorted on
            // every save for nothing.
            durations: rec.is_finished().then(|| Durations::of(rec)).flatten(),
            cost: rec.cost(),
            stamp,
            v: VERSION,
        }
    }
}

impl Store {
    fn summary_path(&self, run_id: &str) -> std::path::PathBuf {
        self.run_dir(run_id).join("summary.json")
    }

    /// Writes the summary of a record just saved (and, once it is finished, its task keys).
    pub(super) fn index(&self, rec: &RunRecord) -> Result<(), StoreError> {
        let Ok(stamp) = Stamp::of(&self.record_path(&rec.run_id)) else {
            return Ok(());
        };
        if rec.is_finished() {
            write_json_atomic(&self.keys_path(&rec.run_id), &KeyIndex::of(rec, stamp))?;
        }
        write_json_atomic(&self.summary_path(&rec.run_id), &RunSummary::of(rec, stamp))
    }

    fn keys_path(&self, run_id: &str) -> std::path::PathBuf {
        self.run_dir(run_id).join("keys.json")
    }

    /// The keys of a run's succeeded map tasks, with their indexes (what `submit --reuse`
    /// looks up): as kept beside the record when they match it, else made from the record.
    pub fn task_keys(&self, run_id: &str) -> Result<BTreeMap<String, usize>, StoreError> {
        let now = Stamp::of(&self.record_path(run_id)).ok();
        let kept: Option<KeyIndex> = std::fs::read(self.keys_path(run_id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let (Some(k), Some(now)) = (kept, now)
            && k.stamp == now
        {
            return Ok(k.keys);
        }
        let rec = self.load(run_id)?;
        Ok(KeyIndex::of(&rec, now.unwrap_or_default()).keys)
    }

    /// A run's summary: as kept when it matches its record, else made again from the record.
    pub fn summary(&self, run_id: &str) -> Result<RunSummary, StoreError> {
        let now = Stamp::of(&self.record_path(run_id)).ok();
        let kept: Option<RunSummary> = std::fs::read(self.summary_path(run_id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let (Some(s), Some(now)) = (&kept, now)
            && s.stamp == now
            && s.v == VERSION
        {
            return Ok(kept.expect("matched"));
        }
        let rec = self.load(run_id)?;
        // Best effort: a summary that cannot be written is made again next time.
        if let Err(e) = self.index(&rec) {
            tracing::debug!("cannot rewrite the summary of run {run_id}: {e}");
        }
        Ok(RunSummary::of(&rec, now.unwrap_or_default()))
    }

    /// Every run's summary, newest first, and the runs whose record cannot be read.
    pub fn summaries(&self) -> Result<Listing, StoreError> {
        let mut listing = Listing::default();
        for id in self.list()? {
            match self.summary(&id) {
                Ok(s) => listing.runs.push(s),
                Err(e @ (StoreError::Corrupt { .. } | StoreError::Io { .. })) => {
                    listing.unreadable.push(Unreadable::of(id, &e))
                }
                Err(_) => {} // removed while listing
            }
        }
        let runs = &mut listing.runs;
        runs.sort_by(|a, b| (b.created_at, &b.run_id).cmp(&(a.created_at, &a.run_id)));
        Ok(listing)
    }
}

/// The runs of the state folder: readable ones by their summaries, and the others.
#[derive(Debug, Default)]
pub struct Listing {
    pub runs: Vec<RunSummary>,
    pub unreadable: Vec<Unreadable>,
}

/// A run whose record cannot be read: what its id says, and why.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub run_id: String,
    /// The job and time its id names (`<yyyymmdd>-<hhmmss>-<job>-<hex>`), when it does.
    pub job: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// The store's error: the file and what is wrong with it.
    pub error: String,
}

impl Unreadable {
    fn of(run_id: String, e: &StoreError) -> Unreadable {
        let (created_at, job) = match crate::record::parse_run_id(&run_id) {
            Some((at, job)) => (Some(at), Some(job.to_string())),
            None => (None, None),
        };
        Unreadable {
            run_id,
            job,
            created_at,
            error: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::record;

    /// 1,000 runs written through the store: listings and "the latest of this job" come from
    /// the summaries, and a summary deleted, torn mid-write or left stale is made again.
    #[test]
    fn a_thousand_runs_are_listed_from_their_summaries_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().into()).unwrap();
        for i in 0..1_000 {
            let job = if i % 2 == 0 { "even" } else { "odd" };
            let mut rec = record(&format!("20260101-{:06}-{job}-{i:04}", i), job);
            rec.created_at += chrono::Duration::seconds(i);
            store.create(&rec).unwrap();
        }
        let all = store.summaries().unwrap().runs;
        assert_eq!(all.len(), 1_000);
        assert_eq!(all[0].run_id, "20260101-000999-odd-0999");
        assert_eq!(
            store.resolve(None, Some("even")).unwrap(),
            "20260101-000998-even-0998"
        );

        // Deleted, torn, stale: each is made again from its record.
        let (a, b, c) = (
            "20260101-000010-even-0010",
            "20260101-000011-odd-0011",
            "20260101-000012-even-0012",
        );
        std::fs::remove_file(store.summary_path(a)).unwrap();
        std::fs::write(store.summary_path(b), b"{\"run_id\": \"2026").unwrap();
        let mut rec = store.load(c).unwrap();
        rec.cancel_requested = true;
        rec.key = Some("k".into());
        write_json_atomic(&store.record_path(c), &rec).unwrap(); // as if killed before the summary
        assert_eq!(store.summary(a).unwrap().job, "even");
        assert_eq!(store.summary(b).unwrap().job, "odd");
        assert_eq!(store.summary(c).unwrap().key.as_deref(), Some("k"));
        assert!(store.summary_path(a).is_file(), "rewritten");
        assert_eq!(store.summaries().unwrap().runs.len(), 1_000);
    }

    #[test]
    fn durations_are_the_median_and_p90_of_the_successful_map_tasks() {
        use crate::record::TaskRecord;
        let mut rec = record("20260101-000000-a-0001", "a");
        let t0 = chrono::Utc::now();
        rec.tasks = (0..10)
            .map(|i| {
                let mut t = TaskRecord::new(i, serde_json::Value::Null, None);
                t.start(1, format!("task-{i}"), t0);
                t.succeed(t0 + chrono::Duration::seconds(10 * (i as i64 + 1)));
                t
            })
            .collect();
        rec.tasks[9].fail("exit code 1", t0); // the 100 s one does not count
        let d = Durations::of(&rec).unwrap();
        assert_eq!((d.n, d.median_secs, d.p90_secs), (9, 50.0, 90.0));
        rec.tasks.iter_mut().for_each(|t| t.fail("exit code 1", t0));
        assert_eq!(Durations::of(&rec), None);
    }
}

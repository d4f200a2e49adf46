//! The run record: everything known about one run — where it goes (`Place`), its settings, and
//! each task's state, attempts and outcome. `store` keeps it on disk; dispatchers change it only
//! through `reconcile`, under the run's lock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[cfg(test)]
mod golden;
mod queue;
pub mod schema;
mod settings;
mod site;
mod task;
mod timeline;

pub use queue::{QueueRun, QueueStats};
use schema::{Bill, Capacity, Rates, ReduceWhen};
pub use settings::{ReduceSettings, RunSettings};
pub use site::{AgentUsed, ClusterProviders, EcsSite, InstanceProviders, Placement};
pub use task::{Config, Stage, StopRequest, TaskRecord, TaskState};
pub use timeline::{Phase, Spread, Timeline};

pub const SCHEMA: u32 = 1;

/// Seconds from `from` to `to` (to the millisecond), never below zero: how durations, bills and
/// ages are told from the times a record keeps.
pub fn secs_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRef {
    /// The tag the user knows, e.g. `wordcount:3f2a9c1b7d4e`.
    pub reference: String,
    /// The immutable id tasks run from.
    pub id: String,
    pub platform: String,
}

/// Where an ECS run's tasks go, fixed at submit (from `jobrun up`'s outputs and `[ecs]`), so any
/// machine that re-attaches dispatches and watches the same way.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EcsRun {
    #[serde(flatten)]
    pub site: EcsSite,
    /// The AWS profile used at submit (a name, never a secret); `--profile` wins over it,
    /// and it over `AWS_PROFILE` (see `aws::Access`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `startedBy` on every task (≤ 36 characters: the run id, or a digest of a longer one).
    pub started_by: String,
    pub capacity: Capacity,
    pub rates: Rates,
    /// The ECR tag that keeps the run's image out of reach of the repository's lifecycle
    /// policy (`image::keep`) from submit (and a retry) until the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<ImageHold>,
    /// Driven in AWS: the ECS service that keeps the job's driver (`jobrun drive`) running;
    /// none: driven by a jobrun on the submitting machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

/// A run's keep tag, and whether it is on the image now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageHold {
    pub tag: String,
    pub held: bool,
}

/// Where a run's tasks go: one choice, fixed at submit.
#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    /// The local Docker engine.
    Local,
    /// ECS direct: one RunTask per configuration.
    Ecs(EcsRun),
    /// ECS queue mode: messages in the job's queue, taken by `jobrun agent` workers.
    Queue(EcsRun, QueueRun),
}

impl Place {
    /// The target's name as jobrun.toml spells it (`target = "local" | "ecs"`).
    pub fn target_name(&self) -> &'static str {
        match self {
            Place::Local => "local",
            Place::Ecs(_) | Place::Queue(..) => "ecs",
        }
    }
    /// The AWS side of a run on ECS (direct or queue).
    pub fn ecs(&self) -> Option<&EcsRun> {
        match self {
            Place::Local => None,
            Place::Ecs(run) | Place::Queue(run, _) => Some(run),
        }
    }

    pub fn ecs_mut(&mut self) -> Option<&mut EcsRun> {
        match self {
            Place::Local => None,
            Place::Ecs(run) | Place::Queue(run, _) => Some(run),
        }
    }
}

/// One run. On disk (and in S3) it keeps the layout of schema 1: `target` ("local" or "ecs")
/// and, for ECS runs, `ecs` with `queue` inside it for queue mode (see [`disk`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "disk::RecordIn")]
pub struct RunRecord {
    pub schema: u32,
    pub run_id: String,
    pub job: String,
    pub job_file: PathBuf,
    pub place: Place,
    pub image: ImageRef,
    pub settings: RunSettings,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    /// `submit --key`: the idempotency key the run was claimed under (a schedule's fire, a
    /// week), if any.
    pub key: Option<String>,
    /// Notifications sent for this run (or that kept failing): never part of its outcome.
    pub notifications: Vec<Delivery>,
    pub tasks: Vec<TaskRecord>,
}

/// One notification as it went: which event, where to (`webhook`, `sns`; never the URL), and
/// whether it was delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub event: String,
    pub to: String,
    pub at: DateTime<Utc>,
    pub delivered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Serialize for RunRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        disk::RecordOut::of(self).serialize(s)
    }
}

/// The record's on-disk form, written from borrowed fields (no copy of the tasks) and read
/// back into the one-enum form.
mod disk {
    use super::*;

    #[derive(Serialize)]
    pub struct RecordOut<'a> {
        schema: u32,
        run_id: &'a str,
        job: &'a str,
        job_file: &'a Path,
        target: &'static str,
        image: &'a ImageRef,
        settings: &'a RunSettings,
        created_at: DateTime<Utc>,
        finished_at: Option<DateTime<Utc>>,
        cancel_requested: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<&'a str>,
        #[serde(skip_serializing_if = "<[Delivery]>::is_empty")]
        notifications: &'a [Delivery],
        #[serde(skip_serializing_if = "Option::is_none")]
        ecs: Option<EcsOut<'a>>,
        tasks: &'a [TaskRecord],
    }

    #[derive(Serialize)]
    struct EcsOut<'a> {
        #[serde(flatten)]
        run: &'a EcsRun,
        #[serde(skip_serializing_if = "Option::is_none")]
        queue: Option<&'a QueueRun>,
    }

    impl<'a> RecordOut<'a> {
        pub fn of(r: &'a RunRecord) -> Self {
            let ecs = match &r.place {
                Place::Local => None,
                Place::Ecs(run) => Some(EcsOut { run, queue: None }),
                Place::Queue(run, queue) => Some(EcsOut {
                    run,
                    queue: Some(queue),
                }),
            };
            RecordOut {
                schema: r.schema,
                run_id: &r.run_id,
                job: &r.job,
                job_file: &r.job_file,
                target: r.place.target_name(),
                image: &r.image,
                settings: &r.settings,
                created_at: r.created_at,
                finished_at: r.finished_at,
                cancel_requested: r.cancel_requested,
                key: r.key.as_deref(),
                notifications: &r.notifications,
                ecs,
                tasks: &r.tasks,
            }
        }
    }

    #[derive(Deserialize)]
    pub struct RecordIn {
        schema: u32,
        run_id: String,
        job: String,
        job_file: PathBuf,
        target: String,
        image: ImageRef,
        settings: RunSettings,
        created_at: DateTime<Utc>,
        finished_at: Option<DateTime<Utc>>,
        #[serde(default)]
        cancel_requested: bool,
        #[serde(default)]
        key: Option<String>,
        #[serde(default)]
        notifications: Vec<Delivery>,
        #[serde(default)]
        ecs: Option<EcsIn>,
        tasks: Vec<TaskRecord>,
    }

    #[derive(Deserialize)]
    struct EcsIn {
        #[serde(flatten)]
        run: EcsRun,
        #[serde(default)]
        queue: Option<QueueRun>,
    }

    impl TryFrom<RecordIn> for RunRecord {
        type Error = String;
        fn try_from(r: RecordIn) -> Result<Self, String> {
            let place = match (r.target.as_str(), r.ecs) {
                ("local", _) => Place::Local,
                ("ecs", Some(EcsIn { run, queue: None })) => Place::Ecs(run),
                (
                    "ecs",
                    Some(EcsIn {
                        run,
                        queue: Some(q),
                    }),
                ) => Place::Queue(run, q),
                (other, _) => {
                    return Err(format!(
                        "run {} uses target `{other}`, which this jobrun does not know",
                        r.run_id
                    ));
                }
            };
            Ok(RunRecord {
                schema: r.schema,
                run_id: r.run_id,
                job: r.job,
                job_file: r.job_file,
                place,
                image: r.image,
                settings: r.settings,
                created_at: r.created_at,
                finished_at: r.finished_at,
                cancel_requested: r.cancel_requested,
                key: r.key,
                notifications: r.notifications,
                tasks: r.tasks,
            })
        }
    }
}

/// A run's state as listings show it: a record's (see [`RunRecord::state`]), a fire that was
/// skipped (no run was made), or a record that cannot be read. Serialised as the lowercase word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Cancelling,
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
    Unreadable,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Cancelling => "cancelling",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Skipped => "skipped",
            RunState::Unreadable => "unreadable",
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RunRecord {
    /// Moved on by a jobrun task in AWS, which is paid for as long as the run lasts: a
    /// scheduled run's dispatcher, or the job's driver (`[ecs] driver = "aws"`).
    pub fn driven_in_aws(&self) -> bool {
        self.settings.dispatched || self.place.ecs().is_some_and(|r| r.driver.is_some())
    }

    pub fn count(&self, state: TaskState) -> usize {
        self.tasks.iter().filter(|t| t.state == state).count()
    }
    pub fn is_finished(&self) -> bool {
        self.tasks.iter().all(|t| t.state.is_terminal())
    }
    pub fn all_succeeded(&self) -> bool {
        self.tasks.iter().all(|t| t.state == TaskState::Succeeded)
    }
    /// The run as a whole: running until every task is done, then succeeded / failed / cancelled.
    pub fn state(&self) -> RunState {
        if !self.is_finished() {
            if self.cancel_requested {
                RunState::Cancelling
            } else {
                RunState::Running
            }
        } else if self.all_succeeded() {
            RunState::Succeeded
        } else if self.cancel_requested {
            RunState::Cancelled
        } else {
            RunState::Failed
        }
    }
    /// The map tasks: one per configuration (`JOBRUN_COUNT`).
    pub fn map_count(&self) -> usize {
        self.tasks.iter().filter(|t| t.stage == Stage::Map).count()
    }

    /// Tasks that did not run: an earlier run's twin's result and outputs are theirs.
    pub fn reused_count(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.reused_from.is_some())
            .count()
    }

    /// Tasks that run (or ran): all but the reused ones, what an estimate prices.
    pub fn run_count(&self) -> usize {
        self.tasks.len() - self.reused_count()
    }

    /// The reduce task, when the run has one (always its last task).
    pub fn reduce_task(&self) -> Option<&TaskRecord> {
        self.tasks.last().filter(|t| t.stage == Stage::Reduce)
    }

    /// Queued tasks that may start now: map tasks, and the reduce once every map task ended
    /// as its `when` asks.
    pub fn startable(&self) -> impl Iterator<Item = &TaskRecord> {
        let reduce_due = self.reduce_due();
        self.tasks
            .iter()
            .filter(move |t| t.state == TaskState::Queued && (t.stage == Stage::Map || reduce_due))
    }

    /// Every map task ended, and as the reduce's `when` wants.
    fn reduce_due(&self) -> bool {
        let maps = || self.tasks.iter().filter(|t| t.stage == Stage::Map);
        let ended = maps().all(|t| t.state.is_terminal());
        let ok = maps().all(|t| t.state == TaskState::Succeeded);
        let always = self
            .settings
            .reduce
            .as_ref()
            .is_some_and(|r| r.when == ReduceWhen::Always);
        ended && (ok || always)
    }

    /// Once every map task ended, a reduce that only runs after all succeeded is marked failed
    /// (not run) when some did not: the run's outcome says so, and `retry --failed` queues it
    /// again with the failed map tasks. Returns true when that happened now.
    pub fn settle_reduce(&mut self) -> bool {
        let Some(when) = self.settings.reduce.as_ref().map(|r| r.when) else {
            return false;
        };
        let maps = self.tasks.iter().filter(|t| t.stage == Stage::Map);
        let (mut ended, mut failed) = (true, 0);
        for t in maps {
            ended &= t.state.is_terminal();
            failed += usize::from(t.state != TaskState::Succeeded);
        }
        let Some(reduce) = self.tasks.last_mut().filter(|t| t.stage == Stage::Reduce) else {
            return false;
        };
        if !ended || failed == 0 || when == ReduceWhen::Always {
            return false;
        }
        if reduce.state != TaskState::Queued || self.cancel_requested {
            return false;
        }
        reduce.not_run(format!(
            "not run: {failed} map task{} did not succeed (reduce.when = \"all-succeeded\")",
            if failed == 1 { "" } else { "s" }
        ));
        true
    }

    /// Marks the run finished once every task is; returns true when that happened now.
    pub fn settle(&mut self) -> bool {
        if self.finished_at.is_none() && self.is_finished() {
            self.finished_at = Some(Utc::now());
            return true;
        }
        false
    }
}

/// A new run id: sortable by time and readable, e.g. `20261123-131500-wordcount-7f3a`.
/// The time and job a run id names (see [`new_run_id`]), if it is one.
pub fn parse_run_id(id: &str) -> Option<(DateTime<Utc>, &str)> {
    let (stamp, rest) = id.split_at_checked(15)?;
    let at = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S").ok()?;
    let (job, hex) = rest.strip_prefix('-')?.rsplit_once('-')?;
    (!job.is_empty() && !hex.is_empty()).then_some((at.and_utc(), job))
}

/// A name of the form run ids have (`<day>-<time>-<job>-<hex>`): what a key in the bucket
/// must be before it names a run folder here (no `/`, no `.`, nothing else a path could do).
pub fn is_run_id(id: &str) -> bool {
    (1..=255).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub fn new_run_id(job: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = Utc::now();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now.timestamp_nanos_opt().unwrap_or_default() as u128);
    h.write_u32(std::process::id());
    format!(
        "{}-{}-{:04x}",
        now.format("%Y%m%d-%H%M%S"),
        job,
        h.finish() as u16
    )
}

/// Records for tests (the CLI's tests build on them too: the `test-util` feature).
#[cfg(any(test, feature = "test-util"))]
pub mod tests {

    #[test]
    fn a_bucket_key_names_a_run_only_in_a_run_id_s_form() {
        assert!(is_run_id("20261206-143930-sweep-de9d"));
        assert!(is_run_id(&new_run_id("wc_2")));
        for bad in [
            "",
            "..",
            ".",
            "a/b",
            "../../etc",
            "x-1",
            "2026 01",
            "2026/..",
            "2026-..",
        ] {
            assert!(!is_run_id(bad), "{bad}");
        }
    }

    use super::*;

    /// `[ecs]`'s default rates.
    pub fn rates() -> Rates {
        Rates {
            run_task_rate: 20,
            launch_burst: 100,
            launch_rate: 20,
            describe_rate: 20,
        }
    }

    pub fn record(id: &str, job: &str) -> RunRecord {
        RunRecord {
            schema: SCHEMA,
            run_id: id.into(),
            job: job.into(),
            job_file: "/x/jobrun.toml".into(),
            place: Place::Local,
            image: ImageRef {
                reference: "x:1".into(),
                id: "sha256:1".into(),
                platform: "linux/amd64".into(),
            },
            settings: RunSettings {
                timeout_secs: 1,
                max_attempts: 1,
                concurrency: 1,
                cpu: 1.0,
                memory_mib: 2048,
                max_memory_mib: None,
                env: Default::default(),
                retry_exit_codes: Default::default(),
                notify: None,
                reduce: None,
                storage_gb: 20,
                public_ipv4: false,
                prices: None,
                dispatched: false,
                objective: None,
                gpu: 0,
                learned: None,
                checkpoint_every_secs: None,
                expected: None,
            },
            created_at: Utc::now(),
            finished_at: None,
            cancel_requested: false,
            key: None,
            notifications: vec![],
            tasks: vec![TaskRecord::new(0, serde_json::json!({"index":0}), None)],
        }
    }

    /// A queue-mode run's queue, as `submit` leaves it.
    pub fn queue_run() -> QueueRun {
        QueueRun {
            queue_url: "q".into(),
            dlq_url: "d".into(),
            service: "s".into(),
            max_receive_count: 3,
            send_concurrency: 16,
            max_workers: 0,
            stats: None,
            first_worker_at: None,
            all_workers_at: None,
            worker_timelines: Default::default(),
        }
    }

    #[test]
    fn the_place_keeps_the_schema_1_layout_on_disk() {
        let site = EcsSite {
            region: "us-east-1".into(),
            bucket: "b".into(),
            ..Default::default()
        };
        let ecs = EcsRun {
            site,
            profile: None,
            started_by: "r".into(),
            keep: None,
            driver: None,
            capacity: Capacity {
                kind: schema::CapacityKind::Spot,
                on_demand_base: 0,
                spot_fallback: true,
            },
            rates: rates(),
        };
        let queue = queue_run();
        for place in [
            Place::Local,
            Place::Ecs(ecs.clone()),
            Place::Queue(ecs, queue),
        ] {
            let mut rec = record("20260101-000000-a-0001", "a");
            rec.place = place;
            let json = serde_json::to_value(&rec).unwrap();
            let target = if rec.place == Place::Local {
                "local"
            } else {
                "ecs"
            };
            assert_eq!(json["target"], target);
            assert_eq!(json["ecs"]["region"].as_str().is_some(), target == "ecs");
            assert_eq!(
                json["ecs"]["queue"]["queue_url"].as_str().is_some(),
                matches!(rec.place, Place::Queue(..))
            );
            let back: RunRecord = serde_json::from_value(json).unwrap();
            assert_eq!(back, rec);
        }
        let mut odd = serde_json::to_value(record("20260101-000000-a-0001", "a")).unwrap();
        odd["target"] = "k8s".into();
        let err = serde_json::from_value::<RunRecord>(odd).unwrap_err();
        assert!(err.to_string().contains("target `k8s`"), "{err}");
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id("wc");
        assert!(a.contains("-wc-"));
        let (at, job) = parse_run_id(&a).unwrap();
        assert_eq!(job, "wc");
        assert!((Utc::now() - at).num_seconds() < 5);
        assert_eq!(
            parse_run_id("20261123-131500-my-job-7f3a").unwrap().1,
            "my-job"
        );
        assert!(parse_run_id("not-a-run").is_none());
        assert_eq!(a.len(), "20261123-131500-wc-7f3a".len());
    }

    #[test]
    fn a_run_is_in_one_state_named_one_way() {
        let now = Utc::now();
        let mut rec = record("20260101-000000-a-0001", "a");
        rec.tasks = (0..2)
            .map(|i| TaskRecord::new(i, serde_json::Value::Null, None))
            .collect();
        assert_eq!(rec.state(), RunState::Running);
        rec.cancel_requested = true;
        assert_eq!(rec.state(), RunState::Cancelling);
        rec.tasks[0].succeed(now);
        rec.tasks[1].cancel("cancelled by the user", now);
        assert_eq!(rec.state(), RunState::Cancelled);
        rec.cancel_requested = false;
        assert_eq!(rec.state(), RunState::Failed);
        rec.tasks[1].requeue("retry");
        rec.tasks[1].start(1, "h".into(), now);
        rec.tasks[1].succeed(now);
        assert_eq!(rec.state(), RunState::Succeeded);
        // One word per state: serde's, Display's and the command line's agree, and a word
        // that is none of them is refused (`runs --state runnin`).
        use RunState::*;
        for state in [
            Running, Cancelling, Succeeded, Failed, Cancelled, Skipped, Unreadable,
        ] {
            let word = state.as_str();
            assert_eq!(serde_json::to_value(state).unwrap(), word);
            assert_eq!(state.to_string(), word);
            assert_eq!(
                serde_json::from_value::<RunState>(word.into()).unwrap(),
                state
            );
        }
        assert!(serde_json::from_value::<RunState>("runnin".into()).is_err());
        #[cfg(feature = "clap")]
        {
            use clap::ValueEnum;
            assert_eq!(RunState::value_variants().len(), 7);
            for state in RunState::value_variants() {
                assert_eq!(RunState::from_str(state.as_str(), false).unwrap(), *state);
            }
            assert!(RunState::from_str("runnin", false).is_err());
        }
    }
}

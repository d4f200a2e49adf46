//! The run record: everything known about one run — where it goes (`Place`), its settings, and
//! each task's state, attempts and outcome. `store` keeps it on disk; dispatchers change it only
//! through `reconcile`, under the run's lock.

use crate::config::RetryExitCodes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }
}

/// Why jobrun itself stopped a running task; recorded before the kill so the outcome is right
/// even when the process that killed it is not the one that collects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopRequest {
    Timeout,
    Cancel,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRef {
    /// The tag the user knows, e.g. `wordcount:3f2a9c1b7d4e`.
    pub reference: String,
    /// The immutable id tasks run from.
    pub id: String,
    pub platform: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSettings {
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub concurrency: usize,
    pub cpu: f64,
    pub memory_mib: u32,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Which non-zero exits are retried within `max_attempts` (interruptions always are).
    #[serde(default)]
    pub retry_exit_codes: RetryExitCodes,
    /// `[notify]` as it was at submit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<crate::config::NotifySpec>,
}

/// What `jobrun up` made that a run's tasks go to: the same fields in `up`'s outputs and in
/// every ECS run's record.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EcsSite {
    pub region: String,
    pub cluster: String,
    pub task_definition: String,
    pub bucket: String,
    pub log_group: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    /// Which Fargate capacity providers the cluster has (records from before this field: the
    /// two of jobrun's own cluster).
    #[serde(default)]
    pub providers: ClusterProviders,
    /// When `up` last made or changed the job's IAM roles: a task that fails to start soon
    /// after may have met IAM still settling, and its reason says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_changed_at: Option<DateTime<Utc>>,
}

/// The Fargate capacity providers of a cluster. A strategy naming a provider the cluster lacks
/// is refused for every task, so dispatch asks only for what is there, and without any goes by
/// launch type FARGATE (on-demand), which every cluster takes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterProviders {
    /// FARGATE and FARGATE_SPOT: jobrun's own cluster.
    #[default]
    FargateAndSpot,
    FargateOnly,
    SpotOnly,
    /// Neither: launch type FARGATE.
    None,
}

/// Where one try of a task asks for capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A capacity provider strategy of this one provider.
    Provider(&'static str),
    /// `launchType: FARGATE` (on-demand), for a cluster without Fargate capacity providers.
    LaunchType,
}

impl Placement {
    pub fn label(self) -> &'static str {
        match self {
            Placement::Provider(p) => p,
            Placement::LaunchType => "FARGATE launch type",
        }
    }
}

impl ClusterProviders {
    /// From a cluster's capacity providers, as DescribeClusters lists them.
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> ClusterProviders {
        let names: Vec<&str> = names.into_iter().collect();
        match (names.contains(&"FARGATE"), names.contains(&"FARGATE_SPOT")) {
            (true, true) => ClusterProviders::FargateAndSpot,
            (true, false) => ClusterProviders::FargateOnly,
            (false, true) => ClusterProviders::SpotOnly,
            (false, false) => ClusterProviders::None,
        }
    }

    pub fn has(self, provider: &str) -> bool {
        match self {
            ClusterProviders::FargateAndSpot => provider == "FARGATE" || provider == "FARGATE_SPOT",
            ClusterProviders::FargateOnly => provider == "FARGATE",
            ClusterProviders::SpotOnly => provider == "FARGATE_SPOT",
            ClusterProviders::None => false,
        }
    }

    /// The wanted providers, in order, as this cluster can give them: Spot it lacks becomes
    /// on-demand, on-demand without the FARGATE provider becomes the launch type.
    pub fn placements(self, wanted: &[&'static str]) -> Vec<Placement> {
        let mut out = vec![];
        for &p in wanted {
            let placement = if self.has(p) {
                Placement::Provider(p)
            } else if self.has("FARGATE") {
                Placement::Provider("FARGATE")
            } else {
                Placement::LaunchType
            };
            if !out.contains(&placement) {
                out.push(placement);
            }
        }
        out
    }

    /// What `up` says about a configured cluster's capacity, for the job's capacity kind.
    pub fn explain(self, spot_wanted: bool) -> &'static str {
        match (self, spot_wanted) {
            (ClusterProviders::FargateAndSpot, _) => "FARGATE and FARGATE_SPOT",
            (ClusterProviders::FargateOnly, false) => "FARGATE",
            (ClusterProviders::FargateOnly, true) => {
                "no FARGATE_SPOT capacity provider: tasks run on on-demand FARGATE"
            }
            (ClusterProviders::SpotOnly, true) => {
                "FARGATE_SPOT; on-demand tries go by launch type FARGATE"
            }
            (ClusterProviders::SpotOnly, false) => {
                "no FARGATE capacity provider: tasks go by launch type FARGATE"
            }
            (ClusterProviders::None, _) => {
                "no Fargate capacity providers: tasks run on-demand by launch type FARGATE, never on Spot"
            }
        }
    }
}

/// Where an ECS run's tasks go, fixed at submit (from `jobrun up`'s outputs and `[ecs]`), so any
/// machine that re-attaches dispatches and watches the same way.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EcsRun {
    #[serde(flatten)]
    pub site: EcsSite,
    /// The AWS profile used at submit (a name, never a secret); `AWS_PROFILE` wins over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `startedBy` on every task (≤ 36 characters: the run id, or a digest of a longer one).
    pub started_by: String,
    pub capacity: crate::config::Capacity,
    pub rates: crate::config::Rates,
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
}

/// Where a queue-mode run's messages go, and what was last seen of the queue and its workers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueueRun {
    pub queue_url: String,
    pub dlq_url: String,
    /// The ECS service of workers (empty when there is none, e.g. agents run elsewhere).
    pub service: String,
    pub max_receive_count: u32,
    pub send_concurrency: usize,
    /// The most workers the service may have (the scalable target's maximum); 0 in records
    /// from before jobrun sized the workers itself.
    #[serde(default)]
    pub max_workers: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<QueueStats>,
}

/// The queue and its workers as last seen: approximate counts, as SQS gives them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct QueueStats {
    /// Messages waiting (all runs of the job).
    pub visible: i64,
    /// Messages being worked on.
    pub in_flight: i64,
    /// Messages in the dead-letter queue.
    pub dead: i64,
    /// Worker tasks running, and wanted by the autoscaler.
    pub workers: i32,
    pub desired: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskRecord {
    pub index: usize,
    pub config: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    pub state: TaskState,
    /// Attempts started so far (0 while first queued).
    pub attempts: u32,
    pub exit_code: Option<i64>,
    /// Human words for the outcome: "exit code 3", "timed out after 5s", "cancelled", …
    pub reason: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Where the latest attempt's output is (a file for the local target).
    pub log: Option<String>,
    /// The target's handle for the running attempt (container name, task ARN).
    pub handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_request: Option<StopRequest>,
    /// Extra environment of this task alone (e.g. `S3_BUCKET`/`S3_KEY` for `--from-s3`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The target's own word for where a running task is (ECS: PROVISIONING, PENDING, RUNNING…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The last lines of a failed attempt's log, kept in the record when the log lives remotely.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
    /// Attempts made before the last `jobrun retry`: the attempt budget counts from here.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retried_from: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TaskRecord {
    pub fn new(index: usize, config: Value, command: Option<Vec<String>>) -> Self {
        TaskRecord {
            index,
            config,
            command,
            state: TaskState::Queued,
            attempts: 0,
            exit_code: None,
            reason: None,
            started_at: None,
            finished_at: None,
            log: None,
            handle: None,
            stop_request: None,
            env: BTreeMap::new(),
            phase: None,
            log_tail: vec![],
            retried_from: 0,
        }
    }

    /// The task's attempt `attempt` has just started, as `handle` (container name, task ARN).
    pub fn start(&mut self, attempt: u32, handle: String, now: DateTime<Utc>) {
        self.state = TaskState::Running;
        self.attempts = attempt;
        self.started_at = Some(now);
        self.finished_at = None;
        self.exit_code = None;
        self.stop_request = None;
        self.handle = Some(handle);
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

impl RunRecord {
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
    pub fn state(&self) -> &'static str {
        if !self.is_finished() {
            if self.cancel_requested {
                "cancelling"
            } else {
                "running"
            }
        } else if self.all_succeeded() {
            "succeeded"
        } else if self.cancel_requested {
            "cancelled"
        } else {
            "failed"
        }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(id: &str, job: &str) -> RunRecord {
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
                env: Default::default(),
                retry_exit_codes: Default::default(),
                notify: None,
            },
            created_at: Utc::now(),
            finished_at: None,
            cancel_requested: false,
            key: None,
            notifications: vec![],
            tasks: vec![TaskRecord::new(0, serde_json::json!({"index":0}), None)],
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
            capacity: crate::config::Capacity {
                kind: crate::config::CapacityKind::Spot,
                on_demand_base: 0,
                spot_fallback: true,
            },
            rates: crate::config::Rates {
                run_task_rate: 20,
                launch_burst: 100,
                launch_rate: 20,
                describe_rate: 20,
            },
        };
        let queue = QueueRun {
            queue_url: "q".into(),
            dlq_url: "d".into(),
            service: "s".into(),
            max_receive_count: 3,
            send_concurrency: 16,
            max_workers: 0,
            stats: None,
        };
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
        assert_eq!(a.len(), "20261123-131500-wc-7f3a".len());
    }

    #[test]
    fn placements_ask_only_for_what_the_cluster_has() {
        use ClusterProviders as C;
        use Placement::{LaunchType, Provider};
        let spot_then_on_demand = ["FARGATE_SPOT", "FARGATE"];
        assert_eq!(
            C::FargateAndSpot.placements(&spot_then_on_demand),
            [Provider("FARGATE_SPOT"), Provider("FARGATE")]
        );
        assert_eq!(
            C::FargateOnly.placements(&spot_then_on_demand),
            [Provider("FARGATE")]
        );
        assert_eq!(
            C::FargateOnly.placements(&["FARGATE_SPOT"]),
            [Provider("FARGATE")]
        );
        assert_eq!(
            C::SpotOnly.placements(&spot_then_on_demand),
            [Provider("FARGATE_SPOT"), LaunchType]
        );
        assert_eq!(C::None.placements(&spot_then_on_demand), [LaunchType]);
        assert_eq!(C::None.placements(&["FARGATE"]), [LaunchType]);
        assert_eq!(C::of(["FARGATE", "FARGATE_SPOT"]), C::FargateAndSpot);
        assert_eq!(C::of(["EC2_PROVIDER"]), C::None);
        // Records written before the field existed are of jobrun's own two-provider cluster.
        let old: EcsSite = serde_json::from_str(r#"{"region":"r","cluster":"c","task_definition":"t","bucket":"b","log_group":"g","subnets":[],"security_groups":[],"assign_public_ip":true}"#).unwrap();
        assert_eq!(old.providers, C::FargateAndSpot);
    }
}

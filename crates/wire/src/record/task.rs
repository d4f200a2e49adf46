//! One task of a run: its configuration, state, attempts and outcome.

use super::Bill;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

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

/// Which stage of the run a task is: one of the map tasks (one per configuration), or the one
/// reduce task that runs after them with their outputs as its inputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    #[default]
    Map,
    Reduce,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Map => "map",
            Stage::Reduce => "reduce",
        }
    }
    pub fn is_map(&self) -> bool {
        *self == Stage::Map
    }
}

/// A task's configuration, kept as its compact JSON text and read as a value only where one is
/// needed (the results table): 10,000 configurations parsed into maps would take tens of
/// megabytes of every process that holds the record.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Config(Box<RawValue>);

impl Config {
    pub fn of(value: &Value) -> Config {
        Config(serde_json::value::to_raw_value(value).expect("a JSON value serialises"))
    }
    /// The configuration as a JSON value.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.0.get()).expect("kept as valid JSON")
    }
}

/// The compact JSON text, as tasks get it in `JOBRUN_CONFIG`.
impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.get())
    }
}

impl PartialEq for Config {
    fn eq(&self, other: &Config) -> bool {
        self.0.get() == other.0.get()
    }
}

/// Read back compact whatever the file's layout (a record is saved indented), so the text a
/// task gets does not depend on how its record was stored.
impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Config, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if !raw.get().contains(['\n', '\r', '\t', ' ']) {
            return Ok(Config(raw));
        }
        let value: Value = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        Ok(Config::of(&value))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskRecord {
    pub index: usize,
    pub config: Config,
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
    #[serde(default, skip_serializing_if = "Stage::is_map")]
    pub stage: Stage,
    /// What the latest attempt left in `$JOBRUN_OUTPUT_DIR/result.json` (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why the latest attempt's result.json could not be kept (too large, not an object): the
    /// task's outcome stands, only its result is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_error: Option<String>,
    /// How long each attempt that ran was billed for (what its cost is computed from).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bills: Vec<Bill>,
    /// What determines its result (image, command, configuration, environment), digested: a
    /// later `submit --reuse` finds it by this (none: its inputs are not all known, e.g. an S3
    /// object's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `<run>#<index>`: it did not run, its result and outputs were copied from that task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
    /// The size its next attempts run at, when not the run's: set by a retry after an
    /// out-of-memory kill (the next Fargate size up to `max_memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<super::schema::TaskSize>,
    /// When each attempt went through its phases, as the target reported them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timelines: Vec<super::Timeline>,
    /// The attempts that began from the checkpoint an earlier attempt kept
    /// (`JOBRUN_CHECKPOINT_DIR` was not empty when they started).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed: Vec<u32>,
    /// `[resources] size = "auto"`: the size learned for this task's own configuration (the
    /// same key ran in the run it was learned from), when not the run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<super::schema::TaskSize>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TaskRecord {
    pub fn new(index: usize, config: Value, command: Option<Vec<String>>) -> Self {
        TaskRecord {
            index,
            config: Config::of(&config),
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
            stage: Stage::Map,
            result: None,
            result_error: None,
            bills: vec![],
            key: None,
            reused_from: None,
            size: None,
            timelines: vec![],
            resumed: vec![],
            learned: None,
        }
    }

    /// The reduce task of a run of `count` map tasks: index `count`, after them.
    pub fn reduce(count: usize, command: Option<Vec<String>>) -> Self {
        TaskRecord {
            stage: Stage::Reduce,
            ..TaskRecord::new(count, Value::Object(Default::default()), command)
        }
    }

    /// What the target reports now of attempt `attempt`'s instants, added to what it did.
    pub fn saw(&mut self, attempt: u32, seen: &super::Timeline) {
        match self.timelines.iter_mut().find(|t| t.attempt == attempt) {
            Some(t) => t.update(seen),
            None => self.timelines.push(super::Timeline {
                attempt,
                ..seen.clone()
            }),
        }
    }

    /// Attempt `attempt` ran `secs` (on Spot or not); seeing the same attempt again changes
    /// nothing.
    pub fn bill(&mut self, attempt: u32, secs: f64, spot: bool) {
        match self.bills.iter_mut().find(|b| b.attempt == attempt) {
            // Seen again: the size it ran at stays the one it was billed at first.
            Some(b) => (b.secs, b.spot) = (secs, spot),
            None => self.bills.push(Bill {
                attempt,
                secs,
                spot,
                size: self.size.or(self.learned),
                usage: None,
            }),
        }
    }

    /// Attempt `attempt` began from an earlier attempt's checkpoint (`restored` files > 0).
    pub fn resumed_from_checkpoint(&mut self, attempt: u32, restored: u64) {
        if restored > 0 && !self.resumed.contains(&attempt) {
            self.resumed.push(attempt);
        }
    }

    /// The run time of attempts before one that resumed from their checkpoint: work a
    /// checkpoint kept from being done again (at most; what the job saved of it is its own).
    pub fn kept_by_checkpoints_secs(&self) -> f64 {
        self.resumed
            .iter()
            .filter_map(|a| self.bills.iter().find(|b| b.attempt + 1 == *a))
            .map(|b| b.secs)
            .sum()
    }

    /// What attempt `attempt` used, once measured (kept with its bill).
    pub fn measured(&mut self, attempt: u32, usage: Option<crate::usage::Measured>) {
        let usage = usage.filter(|u| !u.is_empty());
        if let Some(b) = self.bills.iter_mut().find(|b| b.attempt == attempt) {
            b.usage = usage.or(b.usage);
        }
    }

    /// Bills an attempt from its start to its end, when both are known.
    pub fn bill_span(
        &mut self,
        attempt: u32,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        spot: bool,
    ) {
        if let (Some(from), Some(to)) = (from, to) {
            self.bill(attempt, super::secs_between(from, to), spot);
        }
    }

    /// How people call the task: `task 3`, or `reduce` for the run's reduce.
    pub fn label(&self) -> String {
        match self.stage {
            Stage::Map => format!("task {}", self.index),
            Stage::Reduce => "reduce".into(),
        }
    }

    /// What an attempt's result.json said: kept, or why it was not.
    pub fn set_result(&mut self, result: Option<Result<Value, String>>) {
        (self.result, self.result_error) = match result {
            None => (None, None),
            Some(Ok(v)) => (Some(v), None),
            Some(Err(e)) => (None, Some(e)),
        };
    }

    // The transitions of a task: the only writers of `state` (outside tests), so every
    // dispatcher starts and ends a task the same way. An end leaves no handle, phase or stop
    // request behind and says when it happened.

    /// The task's attempt `attempt` has just started, as `handle` (container name, task ARN).
    pub fn start(&mut self, attempt: u32, handle: String, now: DateTime<Utc>) {
        self.state = TaskState::Running;
        self.attempts = attempt;
        self.started_at = Some(now);
        self.finished_at = None;
        self.exit_code = None;
        self.stop_request = None;
        self.handle = Some(handle);
        self.result = None;
        self.result_error = None;
    }

    /// The latest attempt succeeded, ending at `at`.
    pub fn succeed(&mut self, at: DateTime<Utc>) {
        self.state = TaskState::Succeeded;
        self.reason = None;
        self.end(at);
    }

    /// Succeeded without running: the task `from` (`<run>#<index>`) of an earlier run had the
    /// same key, and its result (and outputs) are this one's.
    pub fn reuse(&mut self, from: String, result: Option<Value>, at: DateTime<Utc>) {
        self.reused_from = Some(from);
        self.result = result;
        self.state = TaskState::Succeeded;
        self.reason = None;
        self.end(at);
    }

    /// Not reused after all (its twin's outputs could not be copied): queued to run.
    pub fn unreuse(&mut self) {
        self.reused_from = None;
        self.result = None;
        self.state = TaskState::Queued;
        self.finished_at = None;
    }

    /// Cancelled (before it started, or while it ran), at `at`.
    pub fn cancel(&mut self, reason: impl Into<String>, at: DateTime<Utc>) {
        self.state = TaskState::Cancelled;
        self.reason = Some(reason.into());
        self.end(at);
    }

    /// Failed for good, at `at`: no attempt is left, or none is allowed.
    pub fn fail(&mut self, reason: impl Into<String>, at: DateTime<Utc>) {
        self.state = TaskState::Failed;
        self.reason = Some(reason.into());
        self.end(at);
    }

    /// Failed without ever running (a reduce whose map tasks did not all succeed): no attempt,
    /// no times.
    pub fn not_run(&mut self, reason: impl Into<String>) {
        self.state = TaskState::Failed;
        self.reason = Some(reason.into());
    }

    /// Attempt `attempt` failed at `at` and the task is queued for the next one.
    pub fn retry_attempt(&mut self, attempt: u32, reason: &str, at: DateTime<Utc>) {
        self.state = TaskState::Queued;
        self.attempts = attempt;
        self.reason = Some(format!("attempt {attempt} {reason}; retrying"));
        self.end(at);
    }

    /// Queued again after the run ended (`jobrun retry`): a fresh attempt budget, and nothing
    /// of the last attempt's outcome.
    pub fn requeue(&mut self, reason: impl Into<String>) {
        self.state = TaskState::Queued;
        self.retried_from = self.attempts;
        self.reason = Some(reason.into());
        self.exit_code = None;
        self.finished_at = None;
        self.handle = None;
        self.phase = None;
        self.stop_request = None;
        self.log_tail.clear();
    }

    fn end(&mut self, at: DateTime<Utc>) {
        self.finished_at = Some(at);
        self.handle = None;
        self.phase = None;
        self.stop_request = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every transition from a running attempt 2 (a handle, a phase, a stop asked for, an
    /// exit code and a log tail): the state it leaves, its reason, and what it keeps.
    #[test]
    fn each_transition_writes_its_state_and_clears_what_an_end_leaves_behind() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let at = DateTime::from_timestamp(2_000, 0).unwrap();
        let running = || {
            let mut t = TaskRecord::new(0, serde_json::json!({"a": 1}), None);
            t.start(2, "arn:task/1".into(), t0);
            t.phase = Some("RUNNING".into());
            t.stop_request = Some(StopRequest::Timeout);
            t.exit_code = Some(3);
            t.log_tail = vec!["boom".into()];
            t
        };
        type Step = fn(&mut TaskRecord, DateTime<Utc>);
        // name, step, state, reason, finished_at, attempts, retried_from, log tail kept
        type Row = (
            &'static str,
            Step,
            TaskState,
            Option<&'static str>,
            Option<DateTime<Utc>>,
            u32,
            u32,
            bool,
        );
        #[rustfmt::skip]
        let table: [Row; 5] = [
            ("succeed", |t, at| t.succeed(at), TaskState::Succeeded, None, Some(at), 2, 0, true),
            ("cancel", |t, at| t.cancel("cancelled", at), TaskState::Cancelled, Some("cancelled"), Some(at), 2, 0, true),
            ("fail", |t, at| t.fail("exit code 3", at), TaskState::Failed, Some("exit code 3"), Some(at), 2, 0, true),
            ("retry_attempt", |t, at| t.retry_attempt(3, "exit code 3", at), TaskState::Queued, Some("attempt 3 exit code 3; retrying"), Some(at), 3, 0, true),
            ("requeue", |t, _| t.requeue("retry of attempt 2"), TaskState::Queued, Some("retry of attempt 2"), None, 2, 2, false),
        ];
        for (name, step, state, reason, finished, attempts, retried_from, tail) in table {
            let mut t = running();
            step(&mut t, at);
            assert_eq!(t.state, state, "{name}");
            assert_eq!(t.reason.as_deref(), reason, "{name}");
            assert_eq!(t.finished_at, finished, "{name}");
            assert_eq!(
                (t.attempts, t.retried_from),
                (attempts, retried_from),
                "{name}"
            );
            assert_eq!(t.log_tail.is_empty(), !tail, "{name}");
            assert_eq!(t.started_at, Some(t0), "{name}: the start stays");
            assert!(
                t.handle.is_none() && t.phase.is_none(),
                "{name}: nothing running"
            );
            assert!(t.stop_request.is_none(), "{name}: no stop pending");
        }
        let mut reduce = TaskRecord::reduce(3, None);
        reduce.not_run("not run: 1 map task did not succeed");
        assert_eq!((reduce.state, reduce.attempts), (TaskState::Failed, 0));
        assert_eq!((reduce.started_at, reduce.finished_at), (None, None));
        assert!(reduce.reason.as_deref().unwrap().starts_with("not run"));
        let mut t = running();
        t.requeue("again");
        assert_eq!(t.exit_code, None, "a requeued task has no outcome yet");
        let mut t = running();
        t.set_result(Some(Ok(serde_json::json!({"loss": 1}))));
        t.start(3, "arn:task/2".into(), at);
        assert_eq!((t.state, t.attempts), (TaskState::Running, 3));
        assert_eq!((t.exit_code, t.finished_at, &t.result), (None, None, &None));
    }

    #[test]
    fn a_configuration_is_read_back_compact_from_an_indented_record() {
        let config = serde_json::json!({"lr": 0.1, "name": "a b", "nested": {"k": [1, 2]}});
        let task = TaskRecord::new(0, config.clone(), None);
        let compact = r#"{"lr":0.1,"name":"a b","nested":{"k":[1,2]}}"#;
        assert_eq!(task.config.to_string(), compact);
        // A record written by an earlier jobrun: its configurations indented too.
        let value = serde_json::to_value(&task).unwrap();
        let indented = serde_json::to_string_pretty(&value).unwrap();
        assert!(indented.contains("\n    \"lr\""), "{indented}");
        let back: TaskRecord = serde_json::from_str(&indented).unwrap();
        assert_eq!(back.config.to_string(), compact);
        assert_eq!(back.config.value(), config);
        assert_eq!(back, task);
    }
}

//! One task of a run: its configuration, state, attempts and outcome.

use crate::cost::Bill;
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
        }
    }

    /// The reduce task of a run of `count` map tasks: index `count`, after them.
    pub fn reduce(count: usize, command: Option<Vec<String>>) -> Self {
        TaskRecord {
            stage: Stage::Reduce,
            ..TaskRecord::new(count, Value::Object(Default::default()), command)
        }
    }

    /// Attempt `attempt` ran `secs` (on Spot or not); seeing the same attempt again changes
    /// nothing.
    pub fn bill(&mut self, attempt: u32, secs: f64, spot: bool) {
        let bill = Bill {
            attempt,
            secs,
            spot,
        };
        match self.bills.iter_mut().find(|b| b.attempt == attempt) {
            Some(b) => *b = bill,
            None => self.bills.push(bill),
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

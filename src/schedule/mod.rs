//! Schedules: runs that start with nobody's machine on. A schedule is EventBridge Scheduler
//! firing jobrun's dispatcher (`jobrun dispatch`, a small Fargate task) with the scheduled
//! time; the dispatcher reads what the schedule runs from the job's bucket and submits it as
//! `jobrun submit --key <schedule>.<scheduled time>` would, then watches the run to its end
//! (notifying as `[notify]` says). Two deliveries of one slot make one run; the overlap policy
//! decides about another run still going.
//!
//! `expr.rs` is when it fires; this file is what it runs, as stored in the bucket
//! (`jobs/<job>/schedules/<name>/v<version>.json`, a new version each `schedule add`, so a
//! delivery of the old definition still finds its own).

pub mod expr;

use crate::config::Overlap;
use crate::infra::Outputs;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Expr(#[from] expr::ExprError),
    #[error("`{0}` is not a schedule name: {1}")]
    Name(String, &'static str),
    #[error("schedules run on AWS, and this job's target is local")]
    NotEcs,
    #[error("job {job} has no schedule {name}")]
    Missing { job: String, name: String },
    #[error("the stored schedule {0} cannot be read: {1}")]
    Spec(String, String),
}

/// What a schedule runs, as stored in the job's bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub name: String,
    pub version: u32,
    pub job: String,
    pub when: expr::When,
    pub timezone: String,
    pub overlap: Overlap,
    /// The configurations of `--configs` / `--matrix`, expanded when the schedule was made.
    pub configs: Vec<Value>,
    /// jobrun.toml as written, without `[aws] profile` (the dispatcher runs with its role).
    pub job_toml: String,
    /// What `up` made for the job, as `submit` reads it.
    pub outputs: Outputs,
    pub dispatcher_image: String,
    pub made_at: DateTime<Utc>,
}

/// The folder of a schedule's versions in the job's bucket.
pub use crate::layout::schedule_prefix as prefix;

pub fn key(job: &str, name: &str, version: u32) -> String {
    format!("{}v{version:06}.json", prefix(job, name))
}

/// The version number of a stored definition's key.
pub fn version_of(key: &str) -> Option<u32> {
    key.rsplit('/')
        .next()?
        .strip_prefix('v')?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// The idempotency key of one fire: the schedule and the time it was due, so a second
/// delivery of the same slot follows the run the first made.
pub fn run_key(name: &str, scheduled: &str) -> String {
    format!("{name}.{scheduled}")
}

/// A schedule name EventBridge Scheduler accepts and a run key can carry.
/// The longest schedule name jobrun takes (Scheduler's own limit is 64): with '.' and the
/// scheduled time, a run key stays within the 128 characters keys take, and the keep tags of
/// `image::keep` within a registry tag's 128.
pub const MAX_NAME: usize = 40;

/// One rule, one message: Scheduler's characters (`config::rules`), at most [`MAX_NAME`] long.
pub fn check_name(name: &str) -> Result<(), ScheduleError> {
    const RULE: &str = "schedule names are 1-40 characters of letters, digits, '.', '_' and '-' (Scheduler takes 64; jobrun makes run keys and image tags of the name)";
    let scheduler = crate::config::rules::Rule::Scheduler.check(name);
    if scheduler.is_err() || name.len() > MAX_NAME {
        return Err(ScheduleError::Name(name.to_string(), RULE));
    }
    Ok(())
}

/// jobrun.toml without `[aws] profile`: a profile is this machine's, the dispatcher has none.
pub fn without_profile(text: &str) -> Result<String, ScheduleError> {
    let mut doc: toml::Table = toml::from_str(text)
        .map_err(|e| ScheduleError::Spec("jobrun.toml".into(), e.to_string()))?;
    if let Some(aws) = doc.get_mut("aws").and_then(|v| v.as_table_mut()) {
        aws.remove("profile");
    }
    toml::to_string(&doc).map_err(|e| ScheduleError::Spec("jobrun.toml".into(), e.to_string()))
}

/// RunTask's overrides for the dispatcher, as a schedule's target carries them (its `input`):
/// the command `jobrun dispatch` with the stored definition and the scheduled time. One type
/// writes them (`schedule add`) and reads them back (`schedule list`, `schedule run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchOverrides {
    pub container_overrides: Vec<ContainerCommand>,
}

/// One container's command override, in RunTask's JSON spelling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerCommand {
    pub name: String,
    pub command: Vec<String>,
}

impl DispatchOverrides {
    /// `jobrun dispatch s3://<bucket>/<spec_key> --at <at>` (`at`: Scheduler's context
    /// attribute [`SCHEDULED_TIME`], or a time).
    pub fn new(bucket: &str, spec_key: &str, at: &str) -> DispatchOverrides {
        let command = ["dispatch", &format!("s3://{bucket}/{spec_key}"), "--at", at];
        DispatchOverrides {
            container_overrides: vec![ContainerCommand {
                name: crate::wire::CONTAINER.to_string(),
                command: command.map(String::from).to_vec(),
            }],
        }
    }

    /// A target's input as jobrun wrote it; `None` for anything else.
    pub fn parse(input: &str) -> Option<DispatchOverrides> {
        serde_json::from_str(input).ok()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serialisable")
    }

    /// The overrides of one fire: Scheduler's placeholder replaced by the time it is due.
    pub fn due_at(mut self, at: &str) -> DispatchOverrides {
        for c in &mut self.container_overrides {
            for word in &mut c.command {
                *word = word.replace(SCHEDULED_TIME, at);
            }
        }
        self
    }

    /// The stored definition the overrides name (`s3://bucket/key`).
    pub fn spec(&self) -> Option<(String, String)> {
        let command = &self.container_overrides.first()?.command;
        let url = command.get(1)?.strip_prefix("s3://")?;
        let (bucket, key) = url.split_once('/')?;
        Some((bucket.to_string(), key.to_string()))
    }
}

/// Scheduler's placeholder for the time a fire was due.
pub const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_versions_and_overrides() {
        let k = key("wc", "weekly", 3);
        assert_eq!(k, "jobs/wc/schedules/weekly/v000003.json");
        assert_eq!(version_of(&k), Some(3));
        let o = DispatchOverrides::new("b", &k, SCHEDULED_TIME).to_json();
        let read = DispatchOverrides::parse(&o).unwrap();
        assert_eq!(read.spec(), Some(("b".into(), k.clone())));
        // RunTask's spelling, and the fire's time in place of Scheduler's placeholder.
        assert!(o.starts_with(r#"{"containerOverrides":[{"name":"#), "{o}");
        let due = read.due_at("2026-11-30T06:00:00Z");
        assert_eq!(
            due.container_overrides[0].command,
            [
                "dispatch",
                &format!("s3://b/{k}"),
                "--at",
                "2026-11-30T06:00:00Z"
            ]
        );
        assert_eq!(DispatchOverrides::parse("{}"), None);
        crate::claim::check_key(&run_key("weekly", "2026-11-30T06:00:00Z")).unwrap();
        assert!(check_name("weekly").is_ok());
        // A bad character and a long name get the same rule, with jobrun's limit in it.
        let long = "a".repeat(MAX_NAME + 1);
        for bad in ["week ly", "", long.as_str()] {
            let e = check_name(bad).unwrap_err();
            assert!(e.to_string().contains("1-40 characters"), "{e}");
        }
    }

    #[test]
    fn a_name_is_taken_up_to_max_name_and_the_refusal_says_the_limit() {
        assert!(check_name(&"a".repeat(MAX_NAME)).is_ok());
        let e = check_name(&"a".repeat(MAX_NAME + 1)).unwrap_err();
        assert!(
            matches!(&e, ScheduleError::Name(_, why) if why.contains(&MAX_NAME.to_string())),
            "{e}"
        );
    }

    #[test]
    fn the_profile_stays_on_this_machine() {
        let text = "[job]\nname = \"wc\"\n[aws]\nprofile = \"me\"\nregion = \"eu-west-1\"\n";
        let out = without_profile(text).unwrap();
        assert!(!out.contains("profile"));
        assert!(out.contains("eu-west-1"));
    }
}

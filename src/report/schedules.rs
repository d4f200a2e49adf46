//! What `jobrun schedule` prints: a schedule made (or planned), and the job's schedules.

use crate::infra::Change;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;

/// `schedule add`.
#[derive(Debug, Serialize)]
pub struct Added {
    pub dry_run: bool,
    pub name: String,
    pub when: String,
    pub expression: String,
    pub timezone: String,
    pub next_fire: Option<DateTime<Utc>>,
    pub tasks: usize,
    pub overlap: String,
    pub version: u32,
    pub made: bool,
    pub dispatcher_image: String,
    /// jobrun and its libraries in the dispatcher's image.
    pub dispatcher_bytes: u64,
    /// Which jobrun the dispatcher runs, and where it came from.
    pub dispatcher_agent: String,
    pub changes: Vec<Change>,
}

impl fmt::Display for Added {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = match (self.dry_run, self.made) {
            (true, _) => "plan (nothing was changed):",
            (false, true) => "schedule made:",
            (false, false) => "schedule updated:",
        };
        writeln!(f, "{head}")?;
        crate::infra::write_changes(f, &self.changes)?;
        writeln!(
            f,
            "schedule         {} (version {})",
            self.name, self.version
        )?;
        writeln!(
            f,
            "when             {} in {} = {}",
            self.when, self.timezone, self.expression
        )?;
        if let Some(t) = self.next_fire {
            writeln!(f, "next fire        {}", t.format("%Y-%m-%d %H:%M:%S UTC"))?;
        }
        writeln!(
            f,
            "runs             {} tasks; overlap {}",
            self.tasks, self.overlap
        )?;
        write!(
            f,
            "dispatcher       {} ({:.1} MB: {})",
            self.dispatcher_image,
            self.dispatcher_bytes as f64 / 1e6,
            self.dispatcher_agent
        )
    }
}

/// One schedule of `schedule list`.
#[derive(Debug, Serialize)]
pub struct ScheduleLine {
    pub name: String,
    pub when: String,
    pub expression: String,
    pub timezone: String,
    pub next_fire: Option<DateTime<Utc>>,
    /// `enabled` or `paused`.
    pub state: String,
    pub tasks: Option<usize>,
    /// The newest fire: the run it made, or the skip (overlap = skip) with its reason.
    pub last_fire: Option<LastFire>,
    /// Images the schedule fires with that the registry no longer has: every fire fails.
    pub images_gone: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastFire {
    pub key: String,
    pub at: DateTime<Utc>,
    /// The run's state, or `skipped`.
    pub state: crate::record::RunState,
    /// The run it made, or (skipped) the run that was still active.
    pub run_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ScheduleList {
    pub job: String,
    pub schedules: Vec<ScheduleLine>,
    /// Deliveries EventBridge Scheduler gave up on (in the schedules' dead-letter queue).
    pub failed_deliveries: Option<u64>,
    pub dead_letters: String,
}

impl fmt::Display for ScheduleList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.schedules.is_empty() {
            return write!(f, "job {} has no schedules", self.job);
        }
        writeln!(
            f,
            "{:<16} {:<26} {:<16} {:<20} {:<8} LAST FIRE",
            "NAME", "WHEN", "TIMEZONE", "NEXT FIRE (UTC)", "STATE"
        )?;
        for (i, s) in self.schedules.iter().enumerate() {
            let next = s
                .next_fire
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "-".into());
            let last = match &s.last_fire {
                Some(r) if r.state == crate::record::RunState::Skipped => {
                    format!("skipped (run {} active)", r.run_id)
                }
                Some(r) => format!("{} {}", r.run_id, r.state),
                None => "-".into(),
            };
            write!(
                f,
                "{:<16} {:<26} {:<16} {:<20} {:<8} {last}",
                s.name, s.when, s.timezone, next, s.state
            )?;
            for image in &s.images_gone {
                write!(
                    f,
                    "\n  warning: its image {image} is gone from the registry, so every fire fails to start; `jobrun schedule add {}` again pins the current images",
                    s.name
                )?;
            }
            if i + 1 < self.schedules.len() {
                writeln!(f)?;
            }
        }
        match self.failed_deliveries {
            Some(n) if n > 0 => write!(
                f,
                "\n{n} deliveries failed for an hour and were given up: see the queue {}",
                self.dead_letters
            ),
            _ => Ok(()),
        }
    }
}

/// `pause`, `resume`, `rm`, `run`: one line.
#[derive(Debug, Serialize)]
pub struct ScheduleDone {
    pub name: String,
    pub done: String,
}

impl fmt::Display for ScheduleDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "schedule {}: {}", self.name, self.done)
    }
}

//! Why queued tasks of an ECS run have not started: AWS refused them for now, for the
//! account's Fargate vCPU quota or for capacity (`dispatch::ecs`); `status` and the ui count them.

use crate::record::{RunRecord, TaskState};
use serde::Serialize;

/// Queued tasks waiting for one thing.
#[derive(Debug, Serialize, PartialEq)]
pub struct Waiting {
    pub tasks: usize,
    /// "the account's Fargate vCPU quota" or "Fargate capacity".
    pub r#for: &'static str,
}

impl Waiting {
    /// "2 for the account's Fargate vCPU quota, 1 for Fargate capacity".
    pub fn line(w: &[Waiting]) -> String {
        let parts: Vec<String> = w
            .iter()
            .map(|w| format!("{} for {}", w.tasks, w.r#for))
            .collect();
        parts.join(", ")
    }

    pub(super) fn of(rec: &RunRecord) -> Vec<Waiting> {
        use crate::dispatch::ecs::{WAITING_FOR_CAPACITY, WAITING_FOR_QUOTA};
        let queued = || {
            rec.tasks
                .iter()
                .filter(|t| t.state == TaskState::Queued)
                .filter_map(|t| t.reason.as_deref())
        };
        [
            (WAITING_FOR_QUOTA, "the account's Fargate vCPU quota"),
            (WAITING_FOR_CAPACITY, "Fargate capacity"),
        ]
        .into_iter()
        .map(|(prefix, what)| Waiting {
            tasks: queued().filter(|r| r.starts_with(prefix)).count(),
            r#for: what,
        })
        .filter(|w| w.tasks > 0)
        .collect()
    }
}

//! A queue-mode run's side of the record: where its messages go, and what was last seen of the
//! queue and its workers (counts, when they ran, how each one it started came up).

use super::Timeline;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// When a worker was first seen running for this run, and when every wanted one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_worker_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_workers_at: Option<DateTime<Utc>>,
    /// Each worker's start-up as DescribeTasks reported it (created … started), by task id:
    /// the workers started after this run was submitted, at most `max_workers` of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub worker_timelines: BTreeMap<String, Timeline>,
}

impl QueueRun {
    /// The queue and workers as seen now; notes when workers first ran, and when all that are
    /// wanted did.
    pub fn observe(&mut self, stats: QueueStats, now: DateTime<Utc>) {
        if stats.workers > 0 {
            self.first_worker_at.get_or_insert(now);
        }
        if stats.desired > 0 && stats.workers >= stats.desired {
            self.all_workers_at.get_or_insert(now);
        }
        self.stats = Some(stats);
    }
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
    /// Worker tasks starting (wanted, not running yet).
    #[serde(default)]
    pub pending: i32,
}

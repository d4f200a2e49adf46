//! Workers when the work arrives, gone when it is done. Target tracking alone starts workers
//! minutes after the messages are sent (it waits for CloudWatch's one-minute datapoints, starts
//! one task from zero, then waits for its cooldown), and leaves idle workers until they exit by
//! themselves. jobrun knows the backlog when it sends it, so it raises the service's desired
//! count to the backlog (at most `max_workers`, never lowering it) right after sending, and when
//! the run has ended and the queue is empty (no message of any run waiting or in flight) lowers
//! it to 0. The scaling policy stays in charge in between; a worker mid-task is never stopped
//! (its scale-in protection guards it), and a queue shared with another run is not emptied of
//! workers under that run's feet, since its messages count.
//!
//! What a worker's start cost is read as for a direct task: DescribeTasks' instants of each
//! worker this run started (created after it was submitted), kept once it runs; the summary
//! shows their provisioning, pull and start.

use super::QueueDispatcher;
use crate::aws::{self, AwsError, retrying};
use crate::dispatch::remote::RemoteError;
use crate::record::{Place, QueueStats, RunRecord};
use crate::wire::task_id;

/// DescribeTasks takes at most 100 tasks a call (its `tasks` parameter:
/// https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeTasks.html).
const DESCRIBE_MAX: usize = 100;

/// The desired count this pass wants, if it should change: the backlog (capped) while the
/// run goes on, 0 once it ended with the queue empty.
pub(super) fn wanted(rec: &RunRecord, stats: &QueueStats, max_workers: u32) -> Option<i32> {
    if max_workers == 0 {
        return None;
    }
    let backlog = stats.visible + stats.in_flight;
    if rec.is_finished() {
        return (backlog == 0 && stats.desired > 0).then_some(0);
    }
    let want = backlog.min(i64::from(max_workers)) as i32;
    (want > stats.desired).then_some(want)
}

impl QueueDispatcher {
    /// Raises or (at the end) lowers the workers' desired count; see the module header.
    pub(super) async fn size_workers(
        &self,
        rec: &RunRecord,
        stats: &QueueStats,
    ) -> Result<(), RemoteError> {
        if self.queue.service.is_empty() {
            return Ok(());
        }
        let Some(count) = wanted(rec, stats, self.queue.max_workers) else {
            return Ok(());
        };
        retrying(|| async {
            self.remote
                .aws
                .ecs()
                .update_service()
                .cluster(&self.remote.run.site.cluster)
                .service(&self.queue.service)
                .desired_count(count)
                .send()
                .await
                .map_err(aws::op("UpdateService"))
        })
        .await?;
        tracing::debug!("workers of {}: desired {count}", self.queue.service);
        Ok(())
    }

    /// Notes each new worker's start-up instants in the record (see the module header): the
    /// service's tasks (ListTasks' `serviceName`; its default `desiredStatus` RUNNING lists
    /// the pending ones too: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTasks.html),
    /// described unless already seen running. Looked at only while workers run or start. It
    /// is only information: a caller whose policy predates it (no ecs:ListTasks) gets the run
    /// without it, and a warning, rather than a failed pass.
    pub(super) async fn see_workers(
        &mut self,
        rec: &mut RunRecord,
        stats: &QueueStats,
    ) -> Result<(), RemoteError> {
        let idle = stats.workers + stats.pending == 0;
        if self.queue.service.is_empty() || idle || self.workers_unseen {
            return Ok(());
        }
        let Place::Queue(_, q) = &mut rec.place else {
            return Ok(());
        };
        let arns = match self.worker_arns().await {
            Err(AwsError::Service { code, .. }) if code == "AccessDeniedException" => {
                tracing::warn!(
                    "no ecs:ListTasks in the caller's policy: workers' starts not shown"
                );
                self.workers_unseen = true;
                return Ok(());
            }
            listed => listed?,
        };
        let known = |id: &str| {
            q.worker_timelines
                .get(id)
                .is_some_and(|t| t.started_at.is_some())
        };
        let fresh: Vec<String> = arns
            .into_iter()
            .filter(|arn| !known(task_id(arn)) && !self.other_workers.contains(task_id(arn)))
            .collect();
        let cap = q.max_workers.max(1) as usize;
        for chunk in fresh.chunks(DESCRIBE_MAX) {
            for t in self.describe(chunk).await?.tasks() {
                let Some(id) = t.task_arn().map(task_id) else {
                    continue;
                };
                let seen = crate::dispatch::ecs::timeline_of(t);
                let earlier = seen.created_at.is_some_and(|c| c < rec.created_at);
                let room = q.worker_timelines.len() < cap || q.worker_timelines.contains_key(id);
                if earlier || !room {
                    self.other_workers.insert(id.to_string());
                    continue;
                }
                let first = crate::record::Timeline { attempt: 1, ..seen };
                q.worker_timelines.insert(id.to_string(), first);
            }
        }
        Ok(())
    }

    async fn describe(
        &self,
        arns: &[String],
    ) -> Result<aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput, AwsError> {
        retrying(|| async {
            self.remote
                .aws
                .ecs()
                .describe_tasks()
                .cluster(&self.remote.run.site.cluster)
                .set_tasks(Some(arns.to_vec()))
                .send()
                .await
                .map_err(aws::op("DescribeTasks"))
        })
        .await
    }

    /// The service's tasks meant to run (every page of ListTasks).
    async fn worker_arns(&self) -> Result<Vec<String>, AwsError> {
        let mut arns = vec![];
        let mut token = None;
        loop {
            let page = retrying(|| async {
                self.remote
                    .aws
                    .ecs()
                    .list_tasks()
                    .cluster(&self.remote.run.site.cluster)
                    .service_name(&self.queue.service)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(aws::op("ListTasks"))
            })
            .await?;
            arns.extend(page.task_arns().iter().cloned());
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(arns);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_starts_workers_and_an_empty_queue_stops_them() {
        let mut rec = crate::record::tests::record("20261130-060000-wc-aaaa", "wc");
        let stats = |visible, in_flight, desired| QueueStats {
            visible,
            in_flight,
            desired,
            ..QueueStats::default()
        };
        rec.tasks[0].start(1, "worker".into(), chrono::Utc::now());
        assert_eq!(
            wanted(&rec, &stats(100, 0, 0), 20),
            Some(20),
            "capped at max_workers"
        );
        assert_eq!(wanted(&rec, &stats(3, 2, 1), 20), Some(5));
        assert_eq!(
            wanted(&rec, &stats(3, 2, 8), 20),
            None,
            "never lowered while running"
        );
        assert_eq!(
            wanted(&rec, &stats(3, 2, 0), 0),
            None,
            "records without a maximum"
        );
        rec.tasks[0].succeed(chrono::Utc::now());
        assert_eq!(
            wanted(&rec, &stats(0, 0, 5), 20),
            Some(0),
            "done and empty: none"
        );
        assert_eq!(
            wanted(&rec, &stats(4, 0, 5), 20),
            None,
            "another run's messages wait"
        );
        assert_eq!(wanted(&rec, &stats(0, 0, 0), 20), None, "already none");
    }
}

//! Workers when the work arrives, gone when it is done. Target tracking alone starts workers
//! minutes after the messages are sent (it waits for CloudWatch's one-minute datapoints, starts
//! one task from zero, then waits for its cooldown), and leaves idle workers until they exit by
//! themselves. jobrun knows the backlog when it sends it, so it raises the service's desired
//! count to the backlog (at most `max_workers`, never lowering it) right after sending, and when
//! the run has ended and the queue is empty (no message of any run waiting or in flight) lowers
//! it to 0. The scaling policy stays in charge in between; a worker mid-task is never stopped
//! (its scale-in protection guards it), and a queue shared with another run is not emptied of
//! workers under that run's feet, since its messages count.

use super::QueueDispatcher;
use crate::aws::{self, retrying};
use crate::dispatch::remote::RemoteError;
use crate::record::{QueueStats, RunRecord};

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

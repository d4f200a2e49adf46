//! Where a run driven in AWS is driven from, as `status` says it: the driver holding the run's
//! lease (its task, since when, last seen), or that none does, with the command that starts
//! one again.

use crate::dispatch::lease::Held;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;

#[derive(Debug, Serialize)]
pub struct DriverSeen {
    /// The ECS service that keeps the driver.
    pub service: String,
    /// The driver's task (or host) holding the run's lease; none before one took it.
    pub holder: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    /// Some driver holds the run's lease now.
    pub alive: bool,
    /// The run is unfinished and nobody drives it: what to run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
}

impl DriverSeen {
    /// What the lease says of the run (`unfinished`: it still needs a driver).
    pub fn of(
        service: &str,
        held: Option<Held>,
        run_id: &str,
        unfinished: bool,
        now: DateTime<Utc>,
    ) -> DriverSeen {
        let alive = held.as_ref().is_some_and(|h| !h.lapsed(now));
        // A lease never taken is a driver still starting (within its first minutes).
        let gone = unfinished && held.as_ref().is_some_and(|h| h.lapsed(now));
        DriverSeen {
            service: service.to_string(),
            holder: held.as_ref().map(|h| h.holder.clone()),
            since: held.as_ref().map(|h| h.since),
            last_seen: held.as_ref().map(|h| h.seen),
            alive,
            restart: gone.then(|| format!("jobrun submit --resume {run_id}")),
        }
    }
}

/// The last part of a task ARN (its id), or the holder as it is.
fn short(holder: &str) -> &str {
    holder.rsplit('/').next().unwrap_or(holder)
}

impl fmt::Display for DriverSeen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |t: &Option<DateTime<Utc>>| {
            t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default()
        };
        match (&self.holder, self.alive, &self.restart) {
            (None, _, _) => write!(f, "driver  in AWS (service {}): starting", self.service),
            (Some(h), true, _) => write!(
                f,
                "driver  in AWS: task {} since {}, last seen {}",
                short(h),
                at(&self.since),
                at(&self.last_seen)
            ),
            (Some(h), false, Some(cmd)) => write!(
                f,
                "driver  gone: task {} last seen {}, and none took over; start one with `{cmd}`",
                short(h),
                at(&self.last_seen)
            ),
            (Some(h), false, None) => write!(
                f,
                "driver  in AWS: task {} let go at {}",
                short(h),
                at(&self.last_seen)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(until_in: i64, released: bool) -> Held {
        let now = Utc::now();
        Held {
            holder: "arn:aws:ecs:us-east-1:1:task/c/abc123".into(),
            since: now,
            seen: now,
            until: now + chrono::Duration::seconds(until_in),
            released,
        }
    }

    #[test]
    fn a_live_driver_is_named_and_a_lapsed_one_comes_with_the_restart_command() {
        let now = Utc::now();
        let live = DriverSeen::of("s", Some(held(30, false)), "r1", true, now);
        assert!(live.alive && live.restart.is_none());
        assert!(live.to_string().contains("task abc123 since"), "{live}");
        let gone = DriverSeen::of("s", Some(held(-5, false)), "r1", true, now);
        assert_eq!(gone.restart.as_deref(), Some("jobrun submit --resume r1"));
        assert!(gone.to_string().starts_with("driver  gone"), "{gone}");
        // A finished run's released lease is no alarm; a lease never taken is a start.
        let done = DriverSeen::of("s", Some(held(0, true)), "r1", false, now);
        assert!(done.restart.is_none() && !done.alive);
        let starting = DriverSeen::of("s", None, "r1", true, now);
        assert!(starting.to_string().ends_with("starting"), "{starting}");
    }
}

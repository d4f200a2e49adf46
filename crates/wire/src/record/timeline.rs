//! Where an attempt's time went. On ECS, DescribeTasks reports a task's `createdAt`,
//! `pullStartedAt`, `pullStoppedAt`, `startedAt`, `stoppingAt`, `executionStoppedAt` and
//! `stoppedAt` (the Task data type:
//! https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Task.html); locally the engine's
//! container is created, started and ends. Each attempt keeps its own instants and how it ended
//! (exit code, why it failed), so a run can say how long its tasks waited for capacity, pulled
//! the image, started, ran and stopped, and a task's page can list every attempt.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One attempt's instants (none is known for sure until the target reports it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Timeline {
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_stopped_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// How the attempt ended: its exit code, and why it failed (none: it succeeded, or it has
    /// not ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A span of an attempt, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Created → the image pull started (Fargate finding capacity, attaching the network).
    Provisioning,
    /// The image pull and unpack.
    Pull,
    /// The pull's end (locally: the container's creation) → the container started.
    Start,
    /// The container ran.
    Run,
    /// The container's end → the task stopped.
    Stop,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Provisioning,
        Phase::Pull,
        Phase::Start,
        Phase::Run,
        Phase::Stop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Provisioning => "provisioning",
            Phase::Pull => "pull",
            Phase::Start => "start",
            Phase::Run => "run",
            Phase::Stop => "stop",
        }
    }
}

impl Timeline {
    /// Seconds `phase` took, when both its ends are known.
    pub fn secs(&self, phase: Phase) -> Option<f64> {
        let run_end = self
            .execution_stopped_at
            .or(self.stopping_at)
            .or(self.stopped_at);
        let (from, to) = match phase {
            Phase::Provisioning => (self.created_at, self.pull_started_at),
            Phase::Pull => (self.pull_started_at, self.pull_stopped_at),
            Phase::Start => (self.pull_stopped_at.or(self.created_at), self.started_at),
            Phase::Run => (self.started_at, run_end),
            Phase::Stop => (
                self.execution_stopped_at.or(self.stopping_at),
                self.stopped_at,
            ),
        };
        // Clocks that disagree by a little never make a negative span.
        Some(super::secs_between(from?, to?).max(0.0))
    }

    /// Takes what the target reports now; an instant it no longer reports is kept.
    pub fn update(&mut self, seen: &Timeline) {
        let keep = |mine: &mut Option<DateTime<Utc>>, theirs: Option<DateTime<Utc>>| {
            if theirs.is_some() {
                *mine = theirs;
            }
        };
        keep(&mut self.created_at, seen.created_at);
        keep(&mut self.pull_started_at, seen.pull_started_at);
        keep(&mut self.pull_stopped_at, seen.pull_stopped_at);
        keep(&mut self.started_at, seen.started_at);
        keep(&mut self.stopping_at, seen.stopping_at);
        keep(&mut self.execution_stopped_at, seen.execution_stopped_at);
        keep(&mut self.stopped_at, seen.stopped_at);
        if seen.exit_code.is_some() {
            self.exit_code = seen.exit_code;
        }
        if seen.reason.is_some() {
            self.reason.clone_from(&seen.reason);
        }
    }
}

/// The spread of some durations: how many, the median, the 90th percentile (nearest rank) and
/// the longest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub n: usize,
    pub median_secs: f64,
    pub p90_secs: f64,
    pub max_secs: f64,
}

impl Spread {
    pub fn of(mut secs: Vec<f64>) -> Option<Spread> {
        if secs.is_empty() {
            return None;
        }
        secs.sort_by(f64::total_cmp);
        let n = secs.len();
        let median = match n % 2 {
            1 => secs[n / 2],
            _ => (secs[n / 2 - 1] + secs[n / 2]) / 2.0,
        };
        let p90 = secs[((n as f64 * 0.9).ceil() as usize).clamp(1, n) - 1];
        Some(Spread {
            n,
            median_secs: median,
            p90_secs: p90,
            max_secs: secs[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_800_000_000 + s, 0)
    }

    #[test]
    fn an_ecs_attempt_splits_into_its_five_phases() {
        let t = Timeline {
            attempt: 1,
            created_at: at(0),
            pull_started_at: at(12),
            pull_stopped_at: at(53),
            started_at: at(55),
            stopping_at: at(778),
            execution_stopped_at: at(778),
            stopped_at: at(800),
            ..Timeline::default()
        };
        let got: Vec<_> = Phase::ALL.iter().map(|p| t.secs(*p)).collect();
        assert_eq!(
            got,
            [Some(12.0), Some(41.0), Some(2.0), Some(723.0), Some(22.0)]
        );
    }

    #[test]
    fn a_local_attempt_is_created_started_and_ended() {
        let t = Timeline {
            attempt: 2,
            created_at: at(0),
            started_at: at(1),
            stopped_at: at(31),
            ..Timeline::default()
        };
        assert_eq!(t.secs(Phase::Provisioning), None);
        assert_eq!(t.secs(Phase::Pull), None);
        assert_eq!(t.secs(Phase::Start), Some(1.0));
        assert_eq!(t.secs(Phase::Run), Some(30.0));
        assert_eq!(t.secs(Phase::Stop), None);
    }

    #[test]
    fn a_later_look_adds_what_is_new_and_keeps_what_was_seen() {
        let mut t = Timeline {
            attempt: 1,
            created_at: at(0),
            ..Timeline::default()
        };
        t.update(&Timeline {
            attempt: 1,
            pull_started_at: at(5),
            ..Timeline::default()
        });
        assert_eq!((t.created_at, t.pull_started_at), (at(0), at(5)));
    }

    #[test]
    fn a_spread_has_the_median_the_p90_and_the_longest() {
        let s = Spread::of((1..=10).map(f64::from).collect()).unwrap();
        assert_eq!(
            (s.n, s.median_secs, s.p90_secs, s.max_secs),
            (10, 5.5, 9.0, 10.0)
        );
        assert_eq!(Spread::of(vec![]), None);
    }
}

//! Where a run's time went, phase by phase, over every attempt of its map tasks: "pull 41s
//! median, p90 55s; run 12m 3s median". What the summary and `status` print, `status -o json`
//! carries (with each task's own timelines) and the web view draws.

use super::secs;
use crate::record::{Phase, QueueRun, RunRecord, Spread, Stage, Timeline};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseTimes {
    pub phase: Phase,
    #[serde(flatten)]
    pub spread: Spread,
}

/// Each phase some attempt has both ends of, in the order they happen.
pub fn of(rec: &RunRecord) -> Vec<PhaseTimes> {
    let maps: Vec<_> = rec.tasks.iter().filter(|t| t.stage == Stage::Map).collect();
    spreads(&Phase::ALL, || maps.iter().flat_map(|t| t.timelines.iter()))
}

/// Queue mode: how the run's workers started (provisioning, pull, start; a worker's run and
/// stop are not a task's).
pub fn of_workers(q: &QueueRun) -> Vec<PhaseTimes> {
    let start_up = [Phase::Provisioning, Phase::Pull, Phase::Start];
    spreads(&start_up, || q.worker_timelines.values())
}

fn spreads<'a, I: Iterator<Item = &'a Timeline>>(
    phases: &[Phase],
    timelines: impl Fn() -> I,
) -> Vec<PhaseTimes> {
    phases
        .iter()
        .filter_map(|&phase| {
            let all = timelines().filter_map(|a| a.secs(phase));
            Some(PhaseTimes {
                phase,
                spread: Spread::of(all.collect())?,
            })
        })
        .collect()
}

/// One line of them ("provisioning 12.0s median, p90 20.0s, max 31.0s; pull …"); none when no
/// attempt has reported a phase yet.
pub fn line(phases: &[PhaseTimes]) -> Option<String> {
    let part = |p: &PhaseTimes| {
        let s = &p.spread;
        match s.n {
            1 => format!("{} {}", p.phase.as_str(), secs(s.median_secs)),
            _ => format!(
                "{} {} median, p90 {}, max {}",
                p.phase.as_str(),
                secs(s.median_secs),
                secs(s.p90_secs),
                secs(s.max_secs)
            ),
        }
    };
    (!phases.is_empty()).then(|| phases.iter().map(part).collect::<Vec<_>>().join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{TaskRecord, Timeline};
    use chrono::{DateTime, Utc};

    fn at(s: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_800_000_000 + s, 0)
    }

    #[test]
    fn every_attempt_of_the_map_tasks_counts_and_the_reduce_does_not() {
        let mut rec = crate::record::tests::record("20260101-000000-a-0001", "a");
        rec.tasks = (0..3)
            .map(|i| TaskRecord::new(i, serde_json::json!({}), None))
            .collect();
        rec.tasks.push(TaskRecord::reduce(3, None));
        let pulled = |t: &mut TaskRecord, attempt, pull: i64| {
            let seen = Timeline {
                pull_started_at: at(0),
                pull_stopped_at: at(pull),
                started_at: at(pull + 1),
                ..Timeline::default()
            };
            t.saw(attempt, &seen);
        };
        pulled(&mut rec.tasks[0], 1, 40);
        pulled(&mut rec.tasks[1], 1, 50);
        pulled(&mut rec.tasks[1], 2, 30);
        pulled(&mut rec.tasks[3], 1, 500);
        let phases = of(&rec);
        let kinds: Vec<_> = phases.iter().map(|p| p.phase).collect();
        assert_eq!(kinds, [Phase::Pull, Phase::Start]);
        assert_eq!(
            phases[0].spread.n, 3,
            "three attempts pulled (the reduce's is not counted)"
        );
        assert_eq!(
            line(&phases).unwrap(),
            "pull 40.0s median, p90 50.0s, max 50.0s; start 1.0s median, p90 1.0s, max 1.0s"
        );
        assert_eq!(line(&[]), None);
    }

    #[test]
    fn workers_show_their_start_up_only() {
        let mut q = crate::record::tests::queue_run();
        for (id, pull) in [("w1", 20), ("w2", 30)] {
            let started = Timeline {
                attempt: 1,
                created_at: at(0),
                pull_started_at: at(5),
                pull_stopped_at: at(5 + pull),
                started_at: at(6 + pull),
                stopped_at: at(600),
                ..Timeline::default()
            };
            q.worker_timelines.insert(id.into(), started);
        }
        let phases = of_workers(&q);
        let kinds: Vec<_> = phases.iter().map(|p| p.phase).collect();
        assert_eq!(kinds, [Phase::Provisioning, Phase::Pull, Phase::Start]);
        assert_eq!(phases[1].spread.median_secs, 25.0);
        assert_eq!(phases[1].spread.max_secs, 30.0);
    }
}

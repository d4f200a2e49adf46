//! The estimate before a run (`submit --dry-run`, and the `--max-cost` guard): how long a task
//! takes — the median and p90 of an earlier run's successful tasks (same image first, else the
//! same job), or else the job's timeout as an upper bound — times the tasks, priced for the
//! job's architecture and capacity, plus what queue-mode workers cost idling until they exit.

use super::{Dollars, Prices, Size, Usage, money};
use crate::store::index::{Durations, RunSummary};
use serde::Serialize;
use std::fmt;

/// How long a task is expected to take, and what says so.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Expected {
    pub median_secs: f64,
    pub p90_secs: f64,
    /// "run <id> (<n> tasks, same image)", or "the job's timeout".
    pub from: String,
    /// From an earlier run (else the timeout: an upper bound).
    pub measured: bool,
    /// That run, whose tasks' own durations stand for the same tasks (keys) now.
    #[serde(skip)]
    pub run: Option<String>,
}

impl Expected {
    /// From the job's latest finished run with task durations, preferring one of the same
    /// image; else the timeout.
    pub fn pick(runs: &[RunSummary], job: &str, image: &str, timeout_secs: u64) -> Expected {
        let with = |same: bool| {
            runs.iter()
                .filter(|r| r.job == job && r.finished && (!same || r.image == image))
                .find_map(|r| r.durations.as_ref().map(|d| (r, d)))
        };
        match with(true)
            .map(|x| (x, true))
            .or(with(false).map(|x| (x, false)))
        {
            Some(((run, d), same)) => Expected::measured(run, d, same),
            None => Expected {
                median_secs: timeout_secs as f64,
                p90_secs: timeout_secs as f64,
                from: "the job's timeout (no earlier run to learn from): an upper bound".into(),
                measured: false,
                run: None,
            },
        }
    }

    fn measured(run: &RunSummary, d: &Durations, same_image: bool) -> Expected {
        let which = if same_image {
            "same image"
        } else {
            "an earlier image"
        };
        Expected {
            median_secs: d.median_secs,
            p90_secs: d.p90_secs,
            from: format!("run {} ({} tasks, {which})", run.run_id, d.n),
            measured: true,
            run: Some(run.run_id.clone()),
        }
    }
}

/// What is priced: the tasks, their size, where they go.
pub struct Plan {
    pub tasks: usize,
    pub size: Size,
    /// Fargate Spot first (the job's capacity is spot and the run goes to ECS).
    pub spot: bool,
    /// Queue mode: the most workers, and how long each idles before it exits.
    pub workers: Option<(usize, f64)>,
    /// How many tasks run at once (the run's wall time is about tasks / this × duration):
    /// the run's concurrency, or fewer under the account's Fargate vCPU quotas; 0: none can.
    pub concurrency: usize,
    /// Driven in AWS (the job's driver, or a schedule's dispatcher): it runs as long as the run.
    pub dispatcher: bool,
    /// On ECS Managed Instances: what the instances cost idling after their last task until
    /// ECS retires them (`[resources] instance_idle`), USD.
    pub idle_usd: f64,
    /// The durations of tasks that ran before with the same key (image, command,
    /// configuration): each is expected to take what it took; the rest the median (or p90).
    pub known: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub tasks: usize,
    pub size: Size,
    pub duration: Expected,
    /// At the median duration, on the job's capacity (a range on Spot).
    pub usd: Dollars,
    /// At the p90 duration, on the job's capacity.
    pub usd_p90: Dollars,
    /// Every task on on-demand Fargate at the p90 duration (or the timeout), workers included:
    /// what `--max-cost` and `[cost] max_per_run` are held against.
    pub upper_usd: f64,
    /// Queue mode's workers idling until they exit.
    pub workers_usd: f64,
    /// jobrun's driver in AWS, for the run's wall time at p90 durations.
    pub dispatcher_usd: f64,
    /// Managed Instances idling until they are retired.
    #[serde(skip_serializing_if = "is_zero")]
    pub idle_usd: f64,
    /// How many tasks run at once, and the run's length at p90 durations (waves of them);
    /// none when no task can start (a quota of 0).
    pub at_once: usize,
    pub wall_secs: Option<f64>,
    pub spot_discount: Option<(f64, f64)>,
    pub prices: String,
}

impl Estimate {
    pub fn new(plan: &Plan, duration: Expected, p: &Prices) -> Estimate {
        let unknown = plan.tasks.saturating_sub(plan.known.len()) as f64;
        let known = plan.known.iter().fold(Usage::default(), |u, secs| {
            u.add(Usage::of(plan.size, *secs))
        });
        let at = |secs: f64| Usage::of(plan.size, secs).scale(unknown).add(known);
        let priced = |u: Usage| u.priced(p, plan.spot);
        let workers = plan
            .workers
            .map(|(w, idle)| Usage::of(plan.size, idle).scale(w as f64))
            .unwrap_or_default();
        let workers_usd = workers.on_demand(p);
        let waves = plan.tasks.div_ceil(plan.concurrency.max(1)) as f64;
        let wall_secs =
            (plan.concurrency > 0 || plan.tasks == 0).then_some(waves * duration.p90_secs);
        let dispatcher_usd = match plan.dispatcher {
            true => Usage::of(
                super::dispatcher(plan.size.public_ipv4),
                waves * duration.p90_secs,
            )
            .on_demand(p),
            false => 0.0,
        };
        let extra = Dollars::exact(dispatcher_usd + plan.idle_usd);
        Estimate {
            tasks: plan.tasks,
            size: plan.size,
            usd: priced(at(duration.median_secs).add(workers)).add(extra),
            usd_p90: priced(at(duration.p90_secs).add(workers)).add(extra),
            upper_usd: at(duration.p90_secs).on_demand(p)
                + workers_usd
                + dispatcher_usd
                + plan.idle_usd,
            workers_usd,
            dispatcher_usd,
            idle_usd: plan.idle_usd,
            at_once: plan.concurrency,
            wall_secs,
            spot_discount: plan.spot.then_some(p.spot_discount),
            prices: p.source.clone(),
            duration,
        }
    }
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// `4m12s`, `38s`, `1h05m`.
fn span(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.duration;
        match d.measured {
            true => writeln!(
                f,
                "duration per task: median {}, p90 {} (from {})",
                span(d.median_secs),
                span(d.p90_secs),
                d.from
            )?,
            false => writeln!(
                f,
                "duration per task: at most {} ({})",
                span(d.p90_secs),
                d.from
            )?,
        }
        match self.wall_secs {
            Some(w) => writeln!(
                f,
                "length: about {} ({} at once{})",
                span(w),
                self.at_once.min(self.tasks),
                if d.measured {
                    ", p90 durations"
                } else {
                    ", each task its timeout"
                }
            )?,
            None => writeln!(f, "length: never ends: no task can start (a quota of 0)")?,
        }
        let spot = match self.spot_discount {
            Some((lo, hi)) => format!(
                " on Spot (assumed {:.0}–{:.0} % off)",
                lo * 100.0,
                hi * 100.0
            ),
            None => " on-demand".into(),
        };
        match d.measured {
            true => writeln!(
                f,
                "estimated cost: {}{spot}, {} at p90 durations",
                self.usd, self.usd_p90
            )?,
            false => writeln!(f, "estimated cost: at most {}{spot}", self.usd_p90)?,
        }
        if self.dispatcher_usd > 0.0 {
            writeln!(
                f,
                "  including {} for jobrun's driver in AWS, for the run's length",
                money(self.dispatcher_usd)
            )?;
        }
        if self.idle_usd > 0.0 {
            writeln!(
                f,
                "  including {} for instances idling until ECS retires them",
                money(self.idle_usd)
            )?;
        }
        if self.workers_usd > 0.0 {
            writeln!(
                f,
                "  including {} for queue workers idling until they exit",
                money(self.workers_usd)
            )?;
        }
        write!(
            f,
            "upper bound: {} (every task on-demand at {}); prices: {}",
            money(self.upper_usd),
            if d.measured { "p90" } else { "the timeout" },
            self.prices
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Arch, CostSpec};

    fn summary(id: &str, image: &str, median: f64) -> RunSummary {
        let json = serde_json::json!({
            "run_id": id, "job": "j", "target": "ecs", "state": "succeeded", "finished": true,
            "total": 10, "succeeded": 10, "failed": 0, "created_at": "2026-01-01T00:00:00Z",
            "image": image, "durations": {"n": 10, "median_secs": median, "p90_secs": median * 2.0},
            "v": 3,
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_same_image_is_preferred_then_the_job_then_the_timeout() {
        let runs = vec![summary("b", "img2", 100.0), summary("a", "img1", 50.0)];
        let same = Expected::pick(&runs, "j", "img1", 3600);
        assert_eq!((same.median_secs, same.p90_secs), (50.0, 100.0));
        assert!(
            same.from.contains("run a (10 tasks, same image)"),
            "{}",
            same.from
        );
        let other = Expected::pick(&runs, "j", "img9", 3600);
        assert_eq!(other.median_secs, 100.0);
        assert!(other.from.contains("an earlier image"));
        let none = Expected::pick(&runs, "other-job", "img1", 3600);
        assert_eq!((none.median_secs, none.measured), (3600.0, false));
    }

    #[test]
    fn an_estimate_prices_the_tasks_on_their_capacity_and_bounds_it_on_demand() {
        let p = crate::cost::prices::lookup("us-east-1", Arch::Arm64, &CostSpec::default());
        let size = Size {
            vcpu: 1.0,
            gb: 2.0,
            storage_gb: 20,
            public_ipv4: false,
        };
        let duration = Expected {
            median_secs: 1800.0,
            p90_secs: 3600.0,
            from: "x".into(),
            measured: true,
            run: None,
        };
        let plan = Plan {
            tasks: 100,
            size,
            spot: true,
            workers: None,
            concurrency: 100,
            dispatcher: false,
            idle_usd: 0.0,
            known: vec![],
        };
        let e = Estimate::new(&plan, duration.clone(), &p);
        // 100 × ½ h × $0.0395 = $1.975 on demand; on Spot 30–50 % of it.
        assert!((e.usd.low - 1.975 * 0.3).abs() < 1e-9 && (e.usd.high - 1.975 * 0.5).abs() < 1e-9);
        assert!((e.upper_usd - 3.95).abs() < 1e-9);
        let text = e.to_string();
        assert!(text.contains("median 30m00s, p90 1h00m"), "{text}");
        assert!(
            text.contains("estimated cost: $0.59–$0.99 on Spot (assumed 50–70 % off)"),
            "{text}"
        );
        assert!(text.contains("upper bound: $3.95"), "{text}");
        // Queue workers idle 15 minutes each after the work.
        let queue = Plan {
            tasks: 100,
            size,
            spot: false,
            workers: Some((10, 900.0)),
            concurrency: 10,
            dispatcher: false,
            idle_usd: 0.0,
            known: vec![],
        };
        let q = Estimate::new(&queue, duration.clone(), &p);
        assert!((q.workers_usd - 10.0 * 0.25 * 0.0395).abs() < 1e-9);
        assert!((q.usd.low - (1.975 + q.workers_usd)).abs() < 1e-9);
        // Fired by a schedule, 100 tasks 10 at a time: the dispatcher runs 10 waves of p90.
        let fired = Plan {
            tasks: 100,
            size,
            spot: false,
            workers: None,
            concurrency: 10,
            dispatcher: true,
            idle_usd: 0.0,
            known: vec![],
        };
        let d = Estimate::new(&fired, duration, &p);
        let hourly = 0.25 * 0.03238 + 0.5 * 0.00356;
        assert!((d.dispatcher_usd - 10.0 * hourly).abs() < 1e-9);
        assert!((d.upper_usd - (3.95 + d.dispatcher_usd)).abs() < 1e-9);
    }

    /// Tasks that ran before with the same key are expected to take what they took; the rest
    /// the median.
    #[test]
    fn tasks_that_ran_before_take_what_they_took() {
        let size = Size {
            vcpu: 1.0,
            gb: 2.0,
            storage_gb: 20,
            public_ipv4: false,
        };
        let p = crate::cost::prices::lookup("us-east-1", Arch::Arm64, &CostSpec::default());
        let duration = Expected {
            median_secs: 3600.0,
            p90_secs: 3600.0,
            from: "x".into(),
            measured: true,
            run: None,
        };
        let plan = |known: Vec<f64>| Plan {
            tasks: 4,
            size,
            spot: false,
            workers: None,
            concurrency: 4,
            dispatcher: false,
            idle_usd: 0.0,
            known,
        };
        let all = Estimate::new(&plan(vec![]), duration.clone(), &p).upper_usd;
        let half = Estimate::new(&plan(vec![1800.0, 1800.0]), duration, &p).upper_usd;
        assert!((half - all * 0.75).abs() < 1e-9, "{half} vs {all}");
    }
}

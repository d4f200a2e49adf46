//! What `status`, `runs` and the end of `watch` print: types that are both `Display` (for people)
//! and `Serialize` (for `--output json`), built from a run record.

pub mod best;
pub mod driver;
pub mod flat;
pub mod grouped;
pub mod importance;
pub mod overview;
pub mod phases;
pub mod planned;
pub mod results;
pub mod savings;
pub mod schedules;
pub mod table;
pub mod usage;
mod waiting;
use crate::cost::RecordCost as _;
use crate::record::{RunRecord, TaskState};
use chrono::{DateTime, Utc};
pub use savings::{EstimateOff, Resumed};
use serde::Serialize;
use std::fmt;
use usage::{Grown, grown_line};
pub use waiting::Waiting;

#[derive(Debug, Serialize)]
pub struct RunStatus {
    pub run_id: String,
    pub job: String,
    pub target: String,
    pub image: String,
    pub state: crate::record::RunState,
    pub total: usize,
    pub succeeded: usize,
    /// Of the succeeded, those reused from earlier runs (they did not run).
    pub reused: usize,
    pub failed: usize,
    pub running: usize,
    pub queued: usize,
    pub cancelled: usize,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_secs: f64,
    /// `submit --key`, if the run was claimed under one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Queue mode: the job's queue and workers as last seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<crate::record::QueueStats>,
    /// Queue mode: how long after submit the first worker ran, and all wanted workers did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<WorkerTimes>,
    /// What the run cost so far (a local run: what it would have cost on Fargate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::RunCost>,
    /// Where the map tasks' attempts spent their time (median, p90, max per phase).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<phases::PhaseTimes>,
    /// The run's task size, and the tasks that needed more (retried after out-of-memory).
    pub size: crate::record::schema::TaskSize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grown: Vec<Grown>,
    /// What the tasks used of their size, and a smaller one that would have done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<usage::Used>,
    /// `[resources] size = "auto"`: where the run's size was learned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned: Option<crate::record::schema::LearnedSize>,
    /// A finished run: how long its tasks took next to what was expected at submit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<EstimateOff>,
    /// Tasks whose later attempts resumed from a checkpoint, and the run time of the attempts
    /// before them (work not done again, at most).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<Resumed>,
    /// Who won, by the run's objective (`[results] metric`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best: Option<best::Best>,
    /// Queued tasks AWS would not start yet, by why: "the account's Fargate vCPU quota",
    /// "Fargate capacity".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<Waiting>,
    /// A run driven in AWS: its driver as the run's lease says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<driver::DriverSeen>,
    pub tasks: Vec<TaskStatus>,
    /// Text lists every task that did not succeed (`status --tasks`), not the overview.
    #[serde(skip)]
    pub every_task: bool,
}

#[derive(Debug, Serialize)]
pub struct TaskStatus {
    pub index: usize,
    pub state: TaskState,
    pub exit_code: Option<i64>,
    pub attempts: u32,
    pub reason: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub log: Option<String>,
    pub config: crate::record::Config,
    /// Last lines of the log, for failed tasks (summary only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
    /// Where a running task is, in the target's own words (ECS: PROVISIONING, PENDING, RUNNING…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `reduce` for the run's reduce task (map tasks leave it out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<&'static str>,
    /// What the task left in result.json (`jobrun results` tables it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// What its attempts cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::TaskCost>,
    /// Each attempt's instants (ECS: created, pull started/stopped, started, stopping,
    /// execution stopped, stopped; locally: created, started, stopped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timelines: Vec<crate::record::Timeline>,
    /// `<run>#<index>`: it did not run, that task's result and outputs are its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
    /// The size its later attempts ran at, when an out-of-memory kill made it grow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<crate::record::schema::TaskSize>,
}

impl RunStatus {
    pub fn of(rec: &RunRecord) -> RunStatus {
        let end = rec.finished_at.unwrap_or_else(Utc::now);
        RunStatus {
            run_id: rec.run_id.clone(),
            job: rec.job.clone(),
            target: rec.place.target_name().to_string(),
            image: rec.image.reference.clone(),
            state: rec.state(),
            total: rec.tasks.len(),
            succeeded: rec.count(TaskState::Succeeded),
            reused: rec.reused_count(),
            failed: rec.count(TaskState::Failed),
            running: rec.count(TaskState::Running),
            queued: rec.count(TaskState::Queued),
            cancelled: rec.count(TaskState::Cancelled),
            created_at: rec.created_at,
            finished_at: rec.finished_at,
            duration_secs: crate::record::secs_between(rec.created_at, end),
            key: rec.key.clone(),
            every_task: false,
            queue: match &rec.place {
                crate::record::Place::Queue(_, q) => q.stats,
                _ => None,
            },
            workers: match &rec.place {
                crate::record::Place::Queue(_, q) => Some(WorkerTimes::of(rec.created_at, q)),
                _ => None,
            },
            cost: rec.cost(),
            phases: phases::of(rec),
            size: crate::record::schema::TaskSize {
                cpu: rec.settings.cpu,
                memory_mib: rec.settings.memory_mib,
            },
            grown: Grown::of(rec),
            used: usage::Used::of(rec),
            learned: rec.settings.learned.clone(),
            checkpoints: Resumed::of(rec),
            estimate: EstimateOff::of(rec),
            best: best::Best::for_run(rec),
            waiting: Waiting::of(rec),
            driver: None,
            tasks: rec
                .tasks
                .iter()
                .map(|t| TaskStatus {
                    index: t.index,
                    state: t.state,
                    exit_code: t.exit_code,
                    attempts: t.attempts,
                    reason: t.reason.clone(),
                    started_at: t.started_at,
                    finished_at: t.finished_at,
                    log: t.log.clone(),
                    config: t.config.clone(),
                    log_tail: t.log_tail.clone(),
                    phase: t.phase.clone(),
                    stage: (t.stage == crate::record::Stage::Reduce).then_some("reduce"),
                    result: t.result.clone(),
                    cost: rec.task_cost(t),
                    timelines: t.timelines.clone(),
                    size: t.size,
                    reused_from: t.reused_from.clone(),
                })
                .collect(),
        }
    }

    /// Adds the last lines of each failed task's log (read from the local log files; a remote
    /// target keeps them in the record).
    pub fn with_failure_tails(mut self, lines: usize) -> RunStatus {
        for t in self
            .tasks
            .iter_mut()
            .filter(|t| t.state == TaskState::Failed && t.log_tail.is_empty())
        {
            if let Some(text) = t.log.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
                let all: Vec<&str> = text.lines().collect();
                t.log_tail = all[all.len().saturating_sub(lines)..]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            }
        }
        self
    }

    pub fn counts_line(&self) -> String {
        let reused = match self.reused {
            0 => String::new(),
            n => format!(" ({n} reused)"),
        };
        let mut line = format!(
            "{} succeeded{reused}, {} failed, {} running, {} queued, {} cancelled (of {})",
            self.succeeded, self.failed, self.running, self.queued, self.cancelled, self.total
        );
        // Where the running ones are, when the target says (ECS: PROVISIONING → … → STOPPED).
        let mut phases: std::collections::BTreeMap<&str, usize> = Default::default();
        for t in self.tasks.iter().filter(|t| t.state == TaskState::Running) {
            if let Some(p) = &t.phase {
                *phases.entry(p.as_str()).or_default() += 1;
            }
        }
        if !phases.is_empty() {
            let parts: Vec<String> = phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
            line.push_str(&format!(" · {}", parts.join(", ")));
        }
        if let Some(q) = &self.queue {
            line.push_str(&format!(
                " · queue: {} waiting, {} in flight, {} dead-lettered; workers: {} wanted, {} starting, {} running",
                q.visible, q.in_flight, q.dead, q.desired, q.pending, q.workers
            ));
        }
        line
    }
}

/// Seconds from submit to the first running worker, and to every wanted worker running; how
/// the workers this run started spent their start (provisioning, pull, start).
#[derive(Debug, Serialize)]
pub struct WorkerTimes {
    pub first_running_secs: Option<f64>,
    pub all_wanted_secs: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<phases::PhaseTimes>,
}

impl WorkerTimes {
    fn of(created: DateTime<Utc>, q: &crate::record::QueueRun) -> WorkerTimes {
        let since = |t: Option<DateTime<Utc>>| t.map(|t| crate::record::secs_between(created, t));
        WorkerTimes {
            first_running_secs: since(q.first_worker_at),
            all_wanted_secs: since(q.all_workers_at),
            phases: phases::of_workers(q),
        }
    }
}

impl fmt::Display for WorkerTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.first_running_secs, self.all_wanted_secs) {
            (None, _) => write!(f, "workers: none seen running yet"),
            (Some(a), None) => write!(f, "workers: the first running {} after submit", secs(a)),
            (Some(a), Some(b)) => write!(
                f,
                "workers: the first running {} after submit, all wanted {} after",
                secs(a),
                secs(b)
            ),
        }?;
        let n = self.phases.iter().map(|p| p.spread.n).max();
        match (n, phases::line(&self.phases)) {
            (Some(n), Some(line)) => write!(f, "; {n} started: {line}"),
            _ => Ok(()),
        }
    }
}

/// A number as people read it: four significant digits, no trailing zeros (`0.002602`,
/// `1235`), scientific when very large or small (`1.500e-7`); JSON keeps full precision.
pub fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-3..6).contains(&magnitude) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - magnitude).max(0) as usize;
    let text = format!("{x:.decimals$}");
    match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => text,
    }
}

pub fn secs(d: f64) -> String {
    if d < 60.0 {
        format!("{d:.1}s")
    } else {
        humantime::format_duration(std::time::Duration::from_secs(d.round() as u64)).to_string()
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "run     {} ({})", self.run_id, self.target)?;
        writeln!(f, "job     {} ({})", self.job, self.image)?;
        if let Some(driver) = &self.driver {
            writeln!(f, "{driver}")?;
        }
        if let Some(key) = &self.key {
            writeln!(f, "key     {key}")?;
        }
        writeln!(
            f,
            "state   {} after {}",
            self.state,
            secs(self.duration_secs)
        )?;
        write!(f, "tasks   {}", self.counts_line())?;
        if !self.waiting.is_empty() {
            write!(f, "\nwaiting {}", Waiting::line(&self.waiting))?;
        }
        if let Some(cost) = &self.cost {
            write!(f, "\ncost    {cost}")?;
        }
        if let Some(line) = phases::line(&self.phases) {
            write!(f, "\nphases  {line}")?;
        }
        if let Some(workers) = &self.workers {
            write!(f, "\n{workers}")?;
        }
        if let Some(line) = grown_line(self) {
            write!(f, "\nmemory  {line}")?;
        }
        if let Some(l) = &self.learned {
            write!(f, "\nsize    {}, {}", self.size, usage::learned_line(l))?;
        }
        if let Some(used) = &self.used {
            write!(f, "\nused    {used}")?;
        }
        if let Some(c) = &self.checkpoints {
            write!(f, "\ncheckpt {c}")?;
        }
        if let Some(best) = &self.best {
            write!(f, "\n{best}")?;
        }
        if !self.every_task {
            if overview::write_overview(f, &self.tasks)? {
                write!(f, "\nevery task: jobrun status {} --tasks", self.run_id)?;
            }
            return Ok(());
        }
        for t in self
            .tasks
            .iter()
            .filter(|t| t.state != TaskState::Succeeded)
        {
            write!(
                f,
                "\n  #{:<4} {:<9} attempt {}",
                t.index,
                t.state.as_str(),
                t.attempts
            )?;
            if let Some(r) = &t.reason {
                write!(f, "  {r}")?;
            }
        }
        Ok(())
    }
}

/// The end-of-run summary: counts, duration, and each failed task with its exit code, reason,
/// log and last log lines.
#[derive(Debug, Serialize)]
pub struct Summary(pub RunStatus);

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        write!(
            f,
            "run {} {}: {} in {}",
            s.run_id,
            s.state,
            s.counts_line(),
            secs(s.duration_secs)
        )?;
        if let Some(workers) = &s.workers {
            write!(f, "\n{workers}")?;
        }
        if let Some(cost) = &s.cost {
            write!(f, "\n{cost}")?;
        }
        if let Some(line) = phases::line(&s.phases) {
            write!(f, "\ntime per attempt: {line}")?;
        }
        if let Some(line) = grown_line(s) {
            write!(f, "\n{line}")?;
        }
        if let Some(l) = &s.learned {
            write!(f, "\nsize {}, {}", s.size, usage::learned_line(l))?;
        }
        if let Some(used) = &s.used {
            write!(f, "\nused: {used}")?;
        }
        if let Some(c) = &s.checkpoints {
            write!(f, "\ncheckpoints: {c}")?;
        }
        if let Some(e) = &s.estimate {
            write!(f, "\nestimate: {e}")?;
        }
        if let Some(best) = &s.best {
            write!(f, "\n{best}")?;
        }
        if overview::write_overview(f, &s.tasks)? {
            write!(f, "\nmore: jobrun status {} --tasks", s.run_id)?;
        }
        Ok(())
    }
}

/// A submit that started nothing: its key had made a run already, or another run of the job
/// was active (overlap = skip).
#[derive(Debug, Serialize)]
pub struct NotStarted {
    pub started: bool,
    pub job: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The run it refers to: the key's run, or the active one.
    pub run_id: String,
    pub reason: String,
}

impl fmt::Display for NotStarted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)
    }
}

/// One line of `jobrun runs`.
#[derive(Debug, Serialize)]
pub struct RunLine {
    pub run_id: String,
    pub job: String,
    pub target: String,
    pub state: crate::record::RunState,
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A submission that started nothing (`skipped`): why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What it cost (local runs: on Fargate), with the usage it is priced from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::RunCost>,
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct RunList(pub Vec<RunLine>);

impl fmt::Display for RunList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "no runs yet");
        }
        // Columns as wide as their widest cell (Display impls ignore a width, so every cell is
        // made a string first).
        let cells: Vec<[String; 6]> = self
            .0
            .iter()
            .map(|r| {
                let cost = match &r.cost {
                    Some(c) if c.basis == crate::cost::Basis::Fargate => c.usd.to_string(),
                    Some(c) => format!("({})", c.usd),
                    None => "-".into(),
                };
                [
                    r.run_id.clone(),
                    r.state.to_string(),
                    r.total.to_string(),
                    r.succeeded.to_string(),
                    r.failed.to_string(),
                    cost,
                ]
            })
            .collect();
        let head = ["RUN", "STATE", "TOTAL", "OK", "FAIL", "COST"];
        let width = |i: usize| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        };
        let w: Vec<usize> = (0..6).map(width).collect();
        let line = |c: [&str; 6]| {
            format!(
                "{:<w0$} {:<w1$} {:>w2$} {:>w3$} {:>w4$} {:>w5$}",
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4],
                w5 = w[5]
            )
        };
        write!(f, "{}  created", line(head))?;
        for (r, c) in self.0.iter().zip(&cells) {
            let c: [&str; 6] = std::array::from_fn(|i| c[i].as_str());
            write!(
                f,
                "\n{}  {}",
                line(c),
                r.created_at.format("%Y-%m-%d %H:%M:%S UTC")
            )?;
            if let Some(key) = &r.key {
                write!(f, "  key {key}")?;
            }
            if let Some(reason) = &r.reason {
                write!(f, "  {reason}")?;
            }
        }
        Ok(())
    }
}

/// What `submit` (and `submit --resume`, `retry --detach`) says about the run it started.
#[derive(Serialize)]
pub struct Submitted {
    run_id: String,
    job: String,
    target: String,
    tasks: usize,
    concurrency: usize,
    image: String,
    /// `[resources] size = "auto"`: the size it runs at, and where it was learned.
    #[serde(skip_serializing_if = "Option::is_none")]
    learned: Option<(
        crate::record::schema::TaskSize,
        crate::record::schema::LearnedSize,
    )>,
}

impl Submitted {
    pub fn of(rec: &RunRecord) -> Submitted {
        Submitted {
            run_id: rec.run_id.clone(),
            job: rec.job.clone(),
            target: rec.place.target_name().to_string(),
            tasks: rec.tasks.len(),
            concurrency: rec.settings.concurrency,
            image: rec.image.reference.clone(),
            learned: rec.settings.learned.clone().map(|l| {
                let size = crate::record::schema::TaskSize {
                    cpu: rec.settings.cpu,
                    memory_mib: rec.settings.memory_mib,
                };
                (size, l)
            }),
        }
    }
}

impl fmt::Display for Submitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "run {}: {} tasks of {} on {} (at most {} at a time)",
            self.run_id, self.tasks, self.image, self.target, self.concurrency
        )?;
        if let Some((size, l)) = &self.learned {
            write!(f, "\nsize {size}, {}", usage::learned_line(l))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Timeline;

    #[test]
    fn numbers_for_people_have_four_significant_digits() {
        assert_eq!(short(0.0025650930533125584), "0.002565");
        assert_eq!(short(1234.5678), "1235");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(-12.0), "-12");
        assert_eq!(short(3.0e-7), "3.000e-7");
        assert_eq!(short(0.0), "0");
    }

    #[test]
    fn workers_say_when_they_ran_and_how_their_start_went() {
        let created = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |s: i64| Some(created + chrono::Duration::seconds(s));
        let mut q = crate::record::tests::queue_run();
        assert_eq!(
            WorkerTimes::of(created, &q).to_string(),
            "workers: none seen running yet"
        );
        q.first_worker_at = at(40);
        q.all_workers_at = at(58);
        for (id, pull) in [("a", 30), ("b", 40)] {
            let started = Timeline {
                attempt: 1,
                created_at: at(2),
                pull_started_at: at(10),
                pull_stopped_at: at(10 + pull),
                started_at: at(11 + pull),
                ..Timeline::default()
            };
            q.worker_timelines.insert(id.into(), started);
        }
        assert_eq!(
            WorkerTimes::of(created, &q).to_string(),
            "workers: the first running 40.0s after submit, all wanted 58.0s after; 2 started: \
             provisioning 8.0s median, p90 8.0s, max 8.0s; pull 35.0s median, p90 40.0s, max \
             40.0s; start 1.0s median, p90 1.0s, max 1.0s"
        );
    }

    #[test]
    fn the_runs_table_s_columns_line_up() {
        let line = |id: &str, state, total| RunLine {
            run_id: id.into(),
            job: "a".into(),
            target: "local".into(),
            state,
            total,
            succeeded: total,
            failed: 0,
            created_at: Utc::now(),
            key: None,
            reason: None,
            cost: None,
        };
        let text = RunList(vec![
            line(
                "20260101-000000-a-0001",
                crate::record::RunState::Succeeded,
                12345,
            ),
            line("-", crate::record::RunState::Skipped, 0),
            line(
                "20260101-000000-a-0002-longer",
                crate::record::RunState::Running,
                3,
            ),
        ])
        .to_string();
        let at: Vec<usize> = text
            .lines()
            .map(|l| l.find("  20").or_else(|| l.find("  created")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] == w[1]), "{text}");
    }
}

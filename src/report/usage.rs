//! What a run's tasks used of their size — the peak memory and average vCPUs of every measured
//! attempt (`usage::Measured`, kept with each bill) — and, on Fargate, the smallest size that
//! would have held every one of them with a margin, with what it would have saved at the same
//! durations. Never a size below any attempt's peak: a suggestion never kills a task.
//! `[resources] size = "auto"` takes that size for the job's next run ([`learn`]), with the
//! out-of-memory step-up as the net under a task that grew.

use crate::record::schema::{LearnedSize, TaskSize};
use crate::record::{RunRecord, Stage};
use crate::resources::{MemoryMib, Vcpu};
use serde::Serialize;
use std::fmt;

/// The margin a suggested size keeps above the highest peak (and the most vCPUs used).
pub const MARGIN: f64 = 0.25;
/// Attempts shorter than this say nothing of the vCPUs they used: their CPU time and their run
/// time are not measured over the same second (a container's start, a stats sample's period).
const TIMED_SECS: f64 = 2.0;
/// A suggestion is made only when it saves at least this share.
const WORTH_IT: f64 = 0.10;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Used {
    /// Attempts measured (map tasks').
    pub attempts: usize,
    /// The run's size.
    pub memory_mib: u32,
    pub vcpu: f64,
    /// Peak memory: the highest of any attempt, and the p90 and p99 of the attempts' peaks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_peak_mib: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_p90_mib: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_p99_mib: Option<f64>,
    /// vCPUs used on average (CPU time over run time, every measured attempt together), and
    /// the most one attempt used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpu_used: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpu_most: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<Suggestion>,
}

/// A smaller Fargate size that would have held every attempt.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Suggestion {
    pub cpu: f64,
    pub memory_mib: u32,
    /// The share of the compute cost it would have saved at the same durations.
    pub saving: f64,
}

/// The `q` quantile (0–1) of sorted values, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    (n > 0).then(|| sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
}

impl Used {
    /// From the record's measured attempts; none when no attempt was measured.
    pub fn of(rec: &RunRecord) -> Option<Used> {
        let bills = rec
            .tasks
            .iter()
            .filter(|t| t.stage == Stage::Map && t.reused_from.is_none())
            .flat_map(|t| t.bills.iter());
        let measured: Vec<_> = bills.filter_map(|b| Some((b.secs, b.usage?))).collect();
        if measured.is_empty() {
            return None;
        }
        let mut peaks: Vec<f64> = measured
            .iter()
            .filter_map(|(_, u)| u.memory_peak_mib)
            .collect();
        peaks.sort_by(f64::total_cmp);
        let timed: Vec<(f64, f64)> = measured
            .iter()
            .filter_map(|(secs, u)| Some((*secs, u.cpu_secs?)))
            .filter(|(secs, _)| *secs >= TIMED_SECS)
            .collect();
        let (run_secs, cpu_secs) = timed
            .iter()
            .fold((0.0, 0.0), |(a, b), (s, c)| (a + s, b + c));
        let mut used = Used {
            attempts: measured.len(),
            memory_mib: rec.settings.memory_mib,
            vcpu: rec.settings.cpu,
            memory_peak_mib: peaks.last().copied(),
            memory_p90_mib: quantile(&peaks, 0.9),
            memory_p99_mib: quantile(&peaks, 0.99),
            vcpu_used: (run_secs > 0.0).then(|| cpu_secs / run_secs),
            vcpu_most: timed.iter().map(|(s, c)| c / s).max_by(f64::total_cmp),
            suggestion: None,
        };
        // Fargate's price of a vCPU-hour against a GB-hour (about 9 on both architectures).
        let ratio = rec
            .settings
            .prices
            .as_ref()
            .filter(|p| p.instance.is_none() && p.gb_hour > 0.0)
            .map(|p| p.vcpu_hour / p.gb_hour);
        if rec.place.ecs().is_none_or(|r| r.site.instances.is_none()) {
            used.suggestion = used.suggest(ratio.unwrap_or(9.1));
        }
        Some(used)
    }

    /// The smallest Fargate size above the highest peak and the most vCPUs one attempt used,
    /// each with the margin (none: no peak measured, or beyond Fargate).
    pub fn fitting(&self) -> Option<(Vcpu, MemoryMib)> {
        fit(self.memory_peak_mib?, self.vcpu_most.unwrap_or(self.vcpu))
    }

    /// [`Used::fitting`], when it is smaller enough to matter.
    fn suggest(&self, vcpu_to_gb: f64) -> Option<Suggestion> {
        let (c, m) = self.fitting()?;
        // Fargate's price per second is linear in vCPUs and GB: the share saved, at the same
        // durations.
        let price = |vcpu: f64, mib: f64| vcpu * vcpu_to_gb + mib / 1024.0;
        let (now, then) = (
            price(self.vcpu, self.memory_mib as f64),
            price(c.as_f64(), m.0 as f64),
        );
        let saving = 1.0 - then / now;
        (saving >= WORTH_IT).then(|| Suggestion {
            cpu: c.as_f64(),
            memory_mib: m.0,
            saving,
        })
    }
}

/// The smallest Fargate size above `peak_mib` and `vcpu`, each with the margin.
fn fit(peak_mib: f64, vcpu: f64) -> Option<(Vcpu, MemoryMib)> {
    let min_memory = MemoryMib((peak_mib * (1.0 + MARGIN)).ceil() as u32);
    let min_cpu = Vcpu((vcpu * (1.0 + MARGIN) * 1024.0).ceil() as u32);
    crate::resources::smallest_fargate_size(min_cpu, min_memory)
}

/// A task's highest peak and most vCPUs over its measured attempts.
fn task_peak(t: &crate::record::TaskRecord) -> Option<(f64, f64)> {
    let measured = t.bills.iter().filter_map(|b| Some((b.secs, b.usage?)));
    measured.fold(None, |acc: Option<(f64, f64)>, (secs, u)| {
        let peak = u.memory_peak_mib?;
        let vcpu = u
            .cpu_secs
            .filter(|_| secs >= TIMED_SECS)
            .map_or(0.0, |c| c / secs);
        Some(acc.map_or((peak, vcpu), |(p, v)| (p.max(peak), v.max(vcpu))))
    })
}

/// What `size = "auto"` takes for a new run: the run's size, the sizes of configurations that
/// ran in the run it learns from (by task key), and where it was learned.
pub struct Learned {
    pub size: TaskSize,
    pub by_key: std::collections::HashMap<String, TaskSize>,
    pub note: LearnedSize,
}

/// `[resources] size = "auto"`: the size a new run of the job takes — [`Used::fitting`] of its
/// latest finished run on the same target whose attempts were measured, within `max_memory` —
/// and where it was learned. None: no such run here (the configured size, the first time).
pub fn learn(store: &crate::store::Store, job: &crate::config::Job) -> Option<Learned> {
    let target = match job.target {
        crate::config::TargetKind::Local => "local",
        crate::config::TargetKind::Ecs => "ecs",
    };
    let mut runs = store.summaries().ok()?.runs;
    runs.retain(|r| r.job == job.name && r.finished && r.target == target);
    runs.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let (run, rec, used) = runs.iter().find_map(|r| {
        let rec = store.load(&r.run_id).ok()?;
        let used = Used::of(&rec)?;
        Some((r.run_id.clone(), rec, used))
    })?;
    let r = &job.resources;
    let within = |(c, m): (Vcpu, MemoryMib)| {
        (m.0 <= r.max_memory.0).then(|| TaskSize {
            cpu: c.as_f64(),
            memory_mib: m.0,
        })
    };
    let size = within(used.fitting()?)?;
    let by_key = rec
        .tasks
        .iter()
        .filter(|t| t.stage == Stage::Map && t.reused_from.is_none())
        .filter_map(|t| {
            let (peak, vcpu) = task_peak(t)?;
            Some((t.key.clone()?, within(fit(peak, vcpu)?)?))
        })
        .collect();
    let configured = TaskSize {
        cpu: r.cpu.as_f64(),
        memory_mib: r.memory.0,
    };
    let peak_mib = used.memory_peak_mib.unwrap_or_default();
    let note = LearnedSize {
        from_run: run,
        peak_mib,
        configured,
        by_task: 0,
    };
    Some(Learned { size, by_key, note })
}

/// How `submit` says a learned size: `learned from run … (its highest peak 0.3 GB + 25 %;
/// configured 1 vCPU / 4GB)`.
pub fn learned_line(l: &LearnedSize) -> String {
    let by_task = match l.by_task {
        0 => String::new(),
        1 => "; 1 task by its own configuration's peak".to_string(),
        n => format!("; {n} tasks by their own configuration's peaks"),
    };
    format!(
        "learned from run {} (its highest peak {} + {:.0} %; configured {}{by_task})",
        l.from_run,
        gb(l.peak_mib),
        MARGIN * 100.0,
        l.configured
    )
}

fn gb(mib: f64) -> String {
    let g = mib / 1024.0;
    match g {
        g if g < 0.1 => format!("{mib:.0} MB"),
        g if g < 10.0 => format!("{g:.1} GB"),
        g => format!("{g:.0} GB"),
    }
}

impl fmt::Display for Used {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![];
        if let Some(peak) = self.memory_peak_mib {
            let p90 = self
                .memory_p90_mib
                .map(|p| format!(" (p90 {})", gb(p)))
                .unwrap_or_default();
            parts.push(format!(
                "memory peak {} of {}{p90}",
                gb(peak),
                gb(self.memory_mib as f64)
            ));
        }
        if let Some(v) = self.vcpu_used {
            parts.push(format!("CPU {v:.2} of {} vCPU", self.vcpu));
        }
        write!(f, "{}", parts.join("; "))?;
        if let Some(s) = &self.suggestion {
            write!(
                f,
                "\n  {} / {} vCPU would have cost {:.0} % less (highest peak + {:.0} %, at the same durations); \
                 `[resources] size = \"auto\"` takes it",
                MemoryMib(s.memory_mib),
                s.cpu,
                s.saving * 100.0,
                MARGIN * 100.0
            )?;
        }
        Ok(())
    }
}

/// Tasks that ended up at a size bigger than the run's.
#[derive(Debug, Serialize)]
pub struct Grown {
    pub size: crate::record::schema::TaskSize,
    pub tasks: usize,
}

impl Grown {
    pub fn of(rec: &RunRecord) -> Vec<Grown> {
        let mut grown: Vec<Grown> = vec![];
        for size in rec.tasks.iter().filter_map(|t| t.size) {
            match grown.iter_mut().find(|g| g.size == size) {
                Some(g) => g.tasks += 1,
                None => grown.push(Grown { size, tasks: 1 }),
            }
        }
        grown.sort_by_key(|g| g.size.memory_mib);
        grown
    }
}

/// "3 tasks needed 0.25 vCPU / 1GB (retried after out-of-memory at 0.25 vCPU / 512MB)".
pub fn grown_line(s: &super::RunStatus) -> Option<String> {
    let parts: Vec<String> = s
        .grown
        .iter()
        .map(|g| {
            let noun = if g.tasks == 1 { "task" } else { "tasks" };
            format!("{} {noun} needed {}", g.tasks, g.size)
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "{} (retried after out-of-memory at {})",
            parts.join(", "),
            s.size
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(memory_mib: u32, vcpu: f64, peaks: &[f64], vcpu_most: f64) -> Used {
        let mut sorted = peaks.to_vec();
        sorted.sort_by(f64::total_cmp);
        Used {
            attempts: peaks.len(),
            memory_mib,
            vcpu,
            memory_peak_mib: sorted.last().copied(),
            memory_p90_mib: quantile(&sorted, 0.9),
            memory_p99_mib: quantile(&sorted, 0.99),
            vcpu_used: Some(vcpu_most / 2.0),
            vcpu_most: Some(vcpu_most),
            suggestion: None,
        }
    }

    /// 4 GB / 2 vCPU tasks that peaked at 0.7 GB using at most 0.6 vCPU: 0.7 GB + 25 % and
    /// 0.6 vCPU + 25 % fit 1 vCPU, whose smallest memory is 2 GB.
    #[test]
    fn the_suggestion_holds_every_peak_with_the_margin_and_saves_enough() {
        let u = used(4096, 2.0, &[300.0, 500.0, 700.0], 0.6);
        let s = u.suggest(9.0).unwrap();
        assert_eq!((s.cpu, s.memory_mib), (1.0, 2048));
        assert!((s.saving - (1.0 - 11.0 / 22.0)).abs() < 1e-9, "{s:?}");
        // A peak just under the size: nothing smaller holds it with the margin.
        assert_eq!(used(2048, 1.0, &[1900.0], 0.9).suggest(9.0), None);
        // CPU-bound tasks keep their size (4 vCPU would cost more).
        assert_eq!(used(8192, 2.0, &[500.0], 1.9).suggest(9.0), None);
        let text = used(4096, 2.0, &[300.0, 700.0], 0.6).to_string();
        assert!(
            text.starts_with("memory peak 0.7 GB of 4.0 GB (p90 0.7 GB); CPU 0.30 of 2 vCPU"),
            "{text}"
        );
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.9), Some(9.0));
        assert_eq!(quantile(&v, 0.99), Some(10.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}

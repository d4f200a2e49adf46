//! What `submit --dry-run` prints: the run as it would start (tasks, size, where, capacity)
//! and its estimate; nothing was made.

use crate::cost::estimate::Estimate;
use crate::record::{Place, RunRecord};
use serde::Serialize;
use std::fmt;

#[derive(Debug, Serialize)]
pub struct Planned {
    pub dry_run: bool,
    pub job: String,
    pub tasks: usize,
    /// Of them, reused from earlier runs (they will not run; the estimate leaves them out).
    pub reused: usize,
    pub reduce: bool,
    pub target: &'static str,
    /// direct, queue, or the local engine.
    pub mode: &'static str,
    pub image: String,
    pub platform: String,
    pub capacity: String,
    pub estimate: Estimate,
    /// An ECS run: how many tasks the account's Fargate vCPU quotas let run at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quotas: Option<crate::quota::AtOnce>,
    /// `[resources] size = "auto"`: where the run's size was learned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned: Option<crate::record::schema::LearnedSize>,
}

impl Planned {
    pub fn of(
        rec: &RunRecord,
        estimate: Estimate,
        quotas: Option<crate::quota::AtOnce>,
    ) -> Planned {
        let (mode, capacity) = match &rec.place {
            Place::Local => (
                "local engine",
                "the local engine (priced as Fargate on-demand)".into(),
            ),
            Place::Ecs(run) => ("direct", capacity(run)),
            Place::Queue(run, _) => ("queue", capacity(run)),
        };
        Planned {
            dry_run: true,
            job: rec.job.clone(),
            tasks: rec.map_count(),
            reused: rec.reused_count(),
            reduce: rec.reduce_task().is_some(),
            target: rec.place.target_name(),
            mode,
            image: rec.image.reference.clone(),
            platform: rec.image.platform.clone(),
            capacity,
            estimate,
            quotas,
            learned: rec.settings.learned.clone(),
        }
    }
}

fn capacity(run: &crate::record::EcsRun) -> String {
    use crate::config::CapacityKind;
    let on = match run.site.instances {
        Some(_) => "ECS Managed Instances",
        None => "Fargate",
    };
    match (run.capacity.kind, run.capacity.spot_fallback) {
        (CapacityKind::Spot, true) => format!("{on} Spot (on-demand when Spot has none)"),
        (CapacityKind::Spot, false) => format!("{on} Spot"),
        (CapacityKind::OnDemand, _) => format!("on-demand {on}"),
    }
}

impl fmt::Display for Planned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reduce = if self.reduce { " and the reduce" } else { "" };
        let s = &self.estimate.size;
        let reused = match self.reused {
            0 => String::new(),
            n => format!(" ({n} reused from earlier runs, {} to run)", self.tasks - n),
        };
        writeln!(
            f,
            "plan: {} tasks{reused}{reduce} of job {} on {} ({}), {}",
            self.tasks, self.job, self.target, self.mode, self.image
        )?;
        writeln!(
            f,
            "size: {} vCPU, {} GB, {} GB storage, {}; {}",
            s.vcpu, s.gb, s.storage_gb, self.platform, self.capacity
        )?;
        if let Some(l) = &self.learned {
            writeln!(f, "  size {}", super::usage::learned_line(l))?;
        }
        if let Some(q) = &self.quotas {
            writeln!(f, "quota: {q}")?;
        }
        writeln!(f, "{}", self.estimate)?;
        write!(f, "dry run: nothing was created")
    }
}

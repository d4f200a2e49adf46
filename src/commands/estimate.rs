//! Before a run starts: its estimated duration and cost, printed by `submit --dry-run` (which
//! then stops, having made nothing) and held against `--max-cost` / `[cost] max_per_run`.

use super::request::SubmitRequest;
use crate::aws::Aws;
use crate::config::{CapacityKind, Job};
use crate::cost::SettingsSize as _;
use crate::cost::estimate::{Estimate, Expected, Plan};
use crate::cost::money;
use crate::error::{Exit, Failure, Result};
use crate::quota::{self, AtOnce};
use crate::record::{EcsRun, Place, RunRecord};
use crate::report::planned::Planned;
use crate::store::Store;
use crate::ui::Ui;
use std::time::Duration;

/// `Some(exit)` when the submit ends here: a dry run (after the plan is printed). `aws`: the
/// account an ECS run goes to, whose Fargate vCPU quotas bound how many tasks run at once.
pub async fn before_start(
    req: &SubmitRequest,
    rec: &RunRecord,
    store: &Store,
    aws: Option<&Aws>,
    ui: &Ui,
) -> Result<Option<Exit>> {
    let job = &req.job;
    let limit = req.max_cost.or(job.cost.max_per_run);
    // On Managed Instances EC2's GPU quotas are read before every run: 0 on many accounts.
    let instances = rec
        .settings
        .prices
        .as_ref()
        .is_some_and(|p| p.instance.is_some());
    if !req.dry_run && limit.is_none() && req.max_duration.is_none() && !instances {
        return Ok(None);
    }
    let at_once = match (rec.place.ecs(), aws) {
        (Some(run), Some(aws)) => Some(at_once(aws, rec, run).await),
        _ => None,
    };
    if let Some(a) = at_once
        .as_ref()
        .filter(|a| instances && a.tasks == 0 && !req.dry_run)
    {
        let q = &a.quotas[0];
        return Err(
            Failure::usage(format!("no task can start: {a}")).hint(format!(
                "ask AWS to raise quota {} ({} vCPU of {}s) in Service Quotas: {}",
                q.code,
                q.kind.name(),
                q.kind.of_what(),
                q.raise
            )),
        );
    }
    let estimate = estimate(job, rec, store, at_once.as_ref())?;
    if req.dry_run {
        ui.emit(&Planned::of(rec, estimate, at_once));
        return Ok(Some(Exit::Ok));
    }
    if let Some(max) = req.max_duration {
        too_long(&estimate, max, at_once.as_ref())?;
    }
    match limit {
        Some(max) if estimate.upper_usd > max => Err(Failure::usage(format!(
            "the run's estimated cost is up to {} ({} tasks; {}), over the limit of {}",
            money(estimate.upper_usd),
            rec.run_count(),
            estimate.duration.from,
            money(max)
        ))
        .hint("submit fewer configurations, or raise --max-cost / [cost] max_per_run (`submit --dry-run` shows the estimate)")),
        _ => Ok(None),
    }
}

/// `--max-duration`: refused when the run's length (its tasks in waves of as many as run at
/// once) is longer, or when no task can start at all.
fn too_long(estimate: &Estimate, max: Duration, at_once: Option<&AtOnce>) -> Result<()> {
    let length = match estimate.wall_secs {
        Some(w) if w <= max.as_secs_f64() => return Ok(()),
        Some(w) => format!(
            "about {}",
            humantime::format_duration(Duration::from_secs(w as u64))
        ),
        None => "forever (no task can start)".into(),
    };
    let why = match at_once {
        Some(a) if a.tasks <= estimate.at_once => format!("; {a}"),
        _ => String::new(),
    };
    Err(Failure::usage(format!(
        "the run would take {length} ({} at once), more than --max-duration {}{why}",
        estimate.at_once.min(estimate.tasks),
        humantime::format_duration(max)
    ))
    .hint("raise the account's Fargate vCPU quota, run fewer or smaller tasks, or allow longer (`submit --dry-run` shows the plan)"))
}

/// The vCPU quotas an ECS run's tasks go under (Fargate's, or on Managed Instances EC2's of
/// the instance family): its capacity's, and on-demand's too when a Spot run may fall back
/// to it (or keeps a base there).
async fn at_once(aws: &Aws, rec: &RunRecord, run: &EcsRun) -> AtOnce {
    let kinds = match run.capacity.kind {
        CapacityKind::OnDemand => vec![quota::Kind::OnDemand],
        CapacityKind::Spot if run.capacity.spot_fallback || run.capacity.on_demand_base > 0 => {
            vec![quota::Kind::Spot, quota::Kind::OnDemand]
        }
        CapacityKind::Spot => vec![quota::Kind::Spot],
    };
    // On Managed Instances EC2's quotas count the instances' vCPUs: a task takes its share.
    let instance = rec
        .settings
        .prices
        .as_ref()
        .and_then(|p| p.instance.as_ref());
    let (kinds, task_vcpu) = match instance {
        Some(i) => (
            kinds.into_iter().map(|k| k.for_instance(&i.kind)).collect(),
            f64::from(i.vcpu) / f64::from(i.tasks.max(1)),
        ),
        None => (kinds, rec.settings.size().vcpu),
    };
    let reads = kinds.into_iter().map(|k| quota::read(aws, k));
    AtOnce::of(task_vcpu, futures_util::future::join_all(reads).await)
}

/// What the tasks to run that ran in `run` with the same key (image, command, configuration)
/// took there.
fn known_durations(store: &Store, run: Option<&str>, rec: &RunRecord) -> Vec<f64> {
    use crate::record::{Stage, TaskState};
    let Some(earlier) = run.and_then(|r| store.load(r).ok()) else {
        return vec![];
    };
    let took: std::collections::HashMap<&str, f64> = earlier
        .tasks
        .iter()
        .filter(|t| t.stage == Stage::Map && t.state == TaskState::Succeeded)
        .filter_map(|t| {
            let secs = crate::record::secs_between(t.started_at?, t.finished_at?);
            Some((t.key.as_deref()?, secs))
        })
        .collect();
    rec.tasks
        .iter()
        .filter(|t| t.stage == Stage::Map && t.reused_from.is_none())
        .filter_map(|t| took.get(t.key.as_deref()?).copied())
        .collect()
}

/// The run's estimate: durations from the job's earlier runs, priced as the record is.
fn estimate(
    job: &Job,
    rec: &RunRecord,
    store: &Store,
    at_once: Option<&AtOnce>,
) -> Result<Estimate> {
    let runs = store.summaries()?.runs;
    let mut expected = Expected::pick(&runs, &job.name, &rec.image.id, rec.settings.timeout_secs);
    let known = known_durations(store, expected.run.as_deref(), rec);
    if !known.is_empty() {
        let n = known.len();
        expected.from += &format!("; {n} of the tasks by what the same task took there");
    }
    let spot = rec
        .place
        .ecs()
        .is_some_and(|r| r.capacity.kind == CapacityKind::Spot);
    let workers = match &rec.place {
        Place::Queue(_, q) => Some((
            (q.max_workers.max(1) as usize).min(rec.tasks.len()),
            job.ecs.queue.idle_exit.as_secs_f64(),
        )),
        _ => None,
    };
    // Only what will run is paid for: reused tasks cost nothing.
    let mut plan = Plan {
        tasks: rec.run_count(),
        size: rec.settings.size(),
        spot,
        workers,
        concurrency: at_once.map_or(rec.settings.concurrency, |a| {
            a.tasks.min(rec.settings.concurrency)
        }),
        dispatcher: rec.driven_in_aws(),
        idle_usd: 0.0,
        known,
    };
    let prices = rec
        .settings
        .prices
        .as_ref()
        .expect("a new record carries prices");
    // Each instance of the run's widest wave idles `instance_idle` after its last task.
    if let Some(i) = &prices.instance {
        let instances = plan
            .concurrency
            .min(plan.tasks)
            .div_ceil(i.tasks.max(1) as usize);
        let idle = job.resources.instance_idle.as_secs_f64() / 3600.0;
        plan.idle_usd = instances as f64 * idle * i.hour;
    }
    Ok(Estimate::new(&plan, expected, prices))
}

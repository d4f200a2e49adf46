//! Before a run starts: its estimated duration and cost, printed by `submit --dry-run` (which
//! then stops, having made nothing) and held against `--max-cost` / `[cost] max_per_run`.

use super::request::SubmitRequest;
use crate::config::{CapacityKind, Job};
use crate::cost::estimate::{Estimate, Expected, Plan};
use crate::cost::money;
use crate::error::{Exit, Failure, Result};
use crate::record::{Place, RunRecord};
use crate::report::planned::Planned;
use crate::store::Store;
use crate::ui::Ui;

/// `Some(exit)` when the submit ends here: a dry run (after the plan is printed).
pub fn before_start(
    req: &SubmitRequest,
    rec: &RunRecord,
    store: &Store,
    ui: &Ui,
) -> Result<Option<Exit>> {
    let job = &req.job;
    let limit = req.max_cost.or(job.cost.max_per_run);
    if !req.dry_run && limit.is_none() {
        return Ok(None);
    }
    let estimate = estimate(job, rec, store)?;
    if req.dry_run {
        ui.emit(&Planned::of(rec, estimate));
        return Ok(Some(Exit::Ok));
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

/// The run's estimate: durations from the job's earlier runs, priced as the record is.
fn estimate(job: &Job, rec: &RunRecord, store: &Store) -> Result<Estimate> {
    let runs = store.summaries()?.runs;
    let expected = Expected::pick(&runs, &job.name, &rec.image.id, rec.settings.timeout_secs);
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
    let plan = Plan {
        tasks: rec.run_count(),
        size: rec.settings.size(),
        spot,
        workers,
        concurrency: rec.settings.concurrency,
        dispatcher: rec.settings.dispatched,
    };
    let prices = rec
        .settings
        .prices
        .as_ref()
        .expect("a new record carries prices");
    Ok(Estimate::new(&plan, expected, prices))
}

//! `results`: the table of what a run's tasks produced (`report::results`), and `--download`
//! of their output folders — from the run's folder (local runs) or the job's bucket (ECS runs).

use super::common::{current, open_store, resolve};
use crate::cli::ResultsArgs;
use crate::dispatch::remote;
use crate::error::{Exit, Failure, Result};
use crate::outputs::{self, s3::Moved};
use crate::record::schema::Objective;
use crate::record::{RunRecord, Stage};
use crate::report::results::Results;
use crate::ui::{OutputFormat, Ui};
use crate::wire::{inputs_prefix, output_prefix};
use std::path::Path;

pub async fn results(file: Option<&Path>, args: ResultsArgs, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let rec = current(&store, resolve(&store, file, &args.run).await?).await?;
    let mut table = Results::by(&rec, objective(&rec, &args)?.as_ref());
    table.each_task = args.tasks;
    if let Some(key) = &args.sort {
        let column = table.column(key).ok_or_else(|| {
            Failure::usage(format!(
                "run {} has no column `{key}` to sort by",
                rec.run_id
            ))
            .hint(format!("its columns: {}", table.columns.join(", ")))
        })?;
        table.sort(&column, args.desc);
    }
    if let Some(n) = args.top {
        table.rows.truncate(n);
        if let Some(g) = table.groups.as_mut() {
            g.rows.truncate(n);
        }
    }
    if let Some(dir) = &args.download {
        let moved = download(&store, &rec, dir).await?;
        let skipped = match moved.skipped {
            0 => String::new(),
            n => format!("; {n} links, special files or unsafe names skipped (never followed)"),
        };
        ui.note(&format!(
            "outputs of run {} in {}: {} files fetched ({} bytes), {} already there{skipped}",
            rec.run_id,
            dir.display(),
            moved.files,
            moved.bytes,
            moved.unchanged
        ));
    }
    match ui.format {
        OutputFormat::Csv => {
            let csv = table.csv().map_err(|e| {
                Failure::env(format!("cannot write CSV: {e}")).hint("is stdout closed?")
            })?;
            use std::io::Write;
            let _ = crate::ui::Stdout.write_all(&csv);
        }
        _ => ui.emit(&table),
    }
    Ok(Exit::Ok)
}

/// The objective `--metric`, `--goal` and `--group` name, when they change the run's own.
fn objective(rec: &RunRecord, args: &ResultsArgs) -> Result<Option<Objective>> {
    let group = crate::record::schema::group_keys(&args.group)
        .map_err(|e| Failure::usage(e.replace("results.group", "--group")))?;
    let own = crate::report::best::objective_of(rec);
    let mut objective = match (&args.metric, own) {
        (Some(metric), own) => Objective {
            group: own.map(|o| o.group).unwrap_or_default(),
            ..Objective::named(metric, args.goal)
        },
        (None, Some(own)) if !group.is_empty() => own,
        (None, _) if !group.is_empty() => {
            return Err(Failure::usage(format!(
                "--group needs a metric: run {} has no [results] metric",
                rec.run_id
            ))
            .hint("add --metric KEY (and --goal maximize when larger is better)"));
        }
        (None, _) => return Ok(None),
    };
    if !group.is_empty() {
        let keys = rec
            .tasks
            .first()
            .map(|t| t.config.value())
            .unwrap_or_default();
        if let Some(missing) = group
            .iter()
            .find(|g| crate::report::flat::value_at(&keys, g).is_none())
        {
            return Err(Failure::usage(format!(
                "--group {missing}: the configurations of run {} have no key `{missing}`",
                rec.run_id
            ))
            .hint(format!("its keys: {}", crate::report::best::words(&keys))));
        }
        objective.group = group;
    }
    Ok(Some(objective))
}

/// Every task's output folder into `dir/<index>/` (the reduce's into `dir/reduce/`).
async fn download(store: &crate::store::Store, rec: &RunRecord, dir: &Path) -> Result<Moved> {
    let reduce = dir.join("reduce");
    let Some(run) = rec.place.ecs() else {
        let run_dir = store.run_dir(&rec.run_id);
        let copy = |from: &Path, to: &Path| {
            outputs::copy_dir(from, to).map_err(|e| {
                Failure::env(format!("cannot copy outputs to {}: {e}", dir.display()))
                    .hint("check that the folder can be written")
            })
        };
        let maps = copy(&outputs::local_inputs(&run_dir), dir)?;
        let reduced = copy(&run_dir.join("reduce"), &reduce)?;
        return Ok(maps + reduced);
    };
    let s3 = remote::aws_for(run).await?.s3();
    let bucket = &run.site.bucket;
    let maps = inputs_prefix(&rec.job, &rec.run_id);
    let maps = outputs::s3::download_prefix(&s3, bucket, &maps, dir).await?;
    let last = rec.tasks.len().saturating_sub(1);
    let reduced = output_prefix(&rec.job, &rec.run_id, last, Stage::Reduce);
    let reduced = outputs::s3::download_prefix(&s3, bucket, &reduced, &reduce).await?;
    Ok(maps + reduced)
}

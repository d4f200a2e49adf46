//! `jobrun schedule add|list|pause|resume|rm|run`, and `jobrun dispatch`, what a schedule
//! fires inside AWS. `add` checks everything first (name, expression, timezone, the
//! configurations, the job's AWS side), then builds and pushes jobrun's own image, converges
//! the dispatcher's side, stores what the schedule runs in the job's bucket and makes the
//! schedule. `dispatch` is `submit --key <schedule>.<scheduled time>` of the stored definition,
//! in the dispatcher's container.

use super::common::{load_aws, load_job, open_store};
use super::request::{SubmitRequest, Tasks};
use super::submit::make_run;
use crate::aws::{self, Aws};
use crate::cli::{
    DispatchArgs, RepositoryArgs, ScheduleAddArgs, ScheduleCommand, ScheduleListArgs,
    ScheduleNameArgs,
};
use crate::config::{self, Job, Overlap, Overrides, TargetKind};
use crate::error::{Exit, Result};
use crate::image::keep;
use crate::infra::dispatcher::{self, Delivery, ScheduleDef};
use crate::report::schedules::{Added, LastFire, ScheduleDone, ScheduleLine, ScheduleList};
use crate::schedule::{self, DispatchOverrides, ScheduleError, Stored, expr::When};
use crate::ui::Ui;
use std::path::Path;

pub async fn run(file: Option<&Path>, command: ScheduleCommand, ui: &Ui) -> Result<Exit> {
    match command {
        ScheduleCommand::Add(args) => add(file, &args, ui).await,
        ScheduleCommand::List(args) => list(file, &args, ui).await,
        ScheduleCommand::Pause(args) => set_state(file, &args, false, ui).await,
        ScheduleCommand::Resume(args) => set_state(file, &args, true, ui).await,
        ScheduleCommand::Rm(args) => rm(file, &args, ui).await,
        ScheduleCommand::Run(args) => fire(file, &args, ui).await,
    }
}

/// The job, which must run on ECS: schedules fire inside AWS.
fn ecs_job(file: Option<&Path>) -> Result<Job> {
    let job = load_job(file, &Overrides::default(), None)?;
    if job.target != TargetKind::Ecs {
        return Err(ScheduleError::NotEcs.into());
    }
    Ok(job)
}

fn when_of(args: &ScheduleAddArgs) -> Result<When> {
    let when = match (&args.cron, &args.rate, &args.at) {
        (Some(c), _, _) => When::cron(c),
        (_, Some(r), _) => When::rate(r),
        (_, _, Some(a)) => When::at(a),
        _ => unreachable!("clap requires one of --cron, --rate, --at"),
    };
    Ok(when.map_err(ScheduleError::from)?)
}

/// Everything `add` checks before it touches AWS or the engine.
struct Checked {
    job: Job,
    when: When,
    expression: String,
    tz: chrono_tz::Tz,
    configs: Vec<serde_json::Value>,
    job_toml: String,
}

fn check(file: Option<&Path>, args: &ScheduleAddArgs) -> Result<Checked> {
    let job = ecs_job(file)?;
    schedule::check_name(&args.name)?;
    let when = when_of(args)?;
    let expression = when.aws().map_err(ScheduleError::from)?;
    let tz = schedule::expr::timezone(&args.tz).map_err(ScheduleError::from)?;
    let configs = crate::plan::configurations(args.configs.as_deref(), &args.matrix)?;
    crate::plan::tasks(configs.clone(), job.run.command.as_deref(), "check")?;
    let path = config::locate(file)?;
    let text = std::fs::read_to_string(&path).map_err(|source| config::ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    Ok(Checked {
        job_toml: schedule::without_profile(&text)?,
        job,
        when,
        expression,
        tz,
        configs,
    })
}

async fn add(file: Option<&Path>, args: &ScheduleAddArgs, ui: &Ui) -> Result<Exit> {
    let c = check(file, args)?;
    let job = &c.job;
    let aws = load_aws(job).await?;
    let store = open_store()?;
    let outputs = super::submit::current_outputs(job, &store, &aws)?;
    let (image, built) = super::infra::dispatcher_image(job, &store, args.dry_run, ui).await?;
    let reference = image.reference.clone();
    let side = dispatcher::converge(job, &aws, &outputs, &image, args.dry_run).await?;
    let bucket = &outputs.site.bucket;
    let version = next_version(&aws, bucket, &job.name, &args.name).await?;
    let overlap = args.overlap.or(job.overlap).unwrap_or(Overlap::Skip);
    let stored = Stored {
        name: args.name.clone(),
        version,
        job: job.name.clone(),
        when: c.when.clone(),
        timezone: args.tz.clone(),
        overlap,
        configs: c.configs.clone(),
        job_toml: c.job_toml.clone(),
        outputs: outputs.clone(),
        dispatcher_image: reference.clone(),
        made_at: chrono::Utc::now(),
    };
    if !args.dry_run {
        pin_images(job, &store, &outputs.image, &reference, &args.name, ui).await?;
    }
    let made = match args.dry_run {
        true => false,
        false => store_and_schedule(&aws, &stored, &c.expression, &side, &outputs).await?,
    };
    let now = chrono::Utc::now();
    ui.emit(&Added {
        dry_run: args.dry_run,
        name: args.name.clone(),
        when: c.when.to_string(),
        expression: c.expression.clone(),
        timezone: args.tz.clone(),
        next_fire: c.when.next(c.tz, now, now),
        tasks: c.configs.len(),
        overlap: format!("{overlap:?}").to_lowercase(),
        version,
        made,
        dispatcher_image: reference,
        dispatcher_bytes: built.bytes,
        dispatcher_agent: built.agent.to_string(),
        changes: side.changes,
    });
    Ok(Exit::Ok)
}

/// Keeps the two images a schedule fires with out of reach of the repository's lifecycle
/// policy, before the schedule exists (see `image::keep`).
async fn pin_images(
    job: &Job,
    store: &crate::store::Store,
    job_image: &str,
    dispatcher_image: &str,
    name: &str,
    ui: &Ui,
) -> Result<()> {
    let [job_tag, dispatcher_tag] = keep::tags(name);
    let pins = [(job_image, job_tag), (dispatcher_image, dispatcher_tag)];
    let kept = keep::pin(job, store, &super::infra::registry_access(job), ui, &pins).await?;
    if kept == Some(crate::image::ecr::Keeping::Foreign) {
        ui.note(&format!(
            "the ECR repository's lifecycle policy is not jobrun's: make sure it never expires images tagged {}*, or this schedule's fires cannot pull their images",
            crate::image::ecr::KEEP_PREFIX
        ));
    }
    Ok(())
}

/// The next version number of a schedule's stored definition.
async fn next_version(aws: &Aws, bucket: &str, job: &str, name: &str) -> Result<u32> {
    let prefix = schedule::prefix(job, name);
    let listed = aws::list_objects(&aws.s3(), bucket, &prefix).await;
    let newest = aws::found(listed, &["NoSuchBucket"])?
        .iter()
        .flatten()
        .filter_map(|o| schedule::version_of(&o.rel))
        .max();
    Ok(newest.unwrap_or(0) + 1)
}

/// Stores the definition, then makes (or updates) the schedule that fires it. Returns whether
/// the schedule was made.
async fn store_and_schedule(
    aws: &Aws,
    stored: &Stored,
    expression: &str,
    side: &dispatcher::DispatcherSide,
    outputs: &crate::infra::Outputs,
) -> Result<bool> {
    let bucket = &outputs.site.bucket;
    let key = schedule::key(&stored.job, &stored.name, stored.version);
    let body = serde_json::to_vec_pretty(stored).expect("serialisable");
    aws::put_json(&aws.s3(), bucket, &key, body).await?;
    let overrides = DispatchOverrides::new(bucket, &key, schedule::SCHEDULED_TIME);
    let def = ScheduleDef {
        name: stored.name.clone(),
        expression: expression.to_string(),
        timezone: stored.timezone.clone(),
        description: format!("jobrun: job {} ({})", stored.job, stored.when),
        delivery: Delivery {
            cluster_arn: side.cluster_arn.clone(),
            role_arn: side.scheduler_role.clone(),
            task_definition: side.task_definition.clone(),
            subnets: outputs.site.subnets.clone(),
            security_groups: outputs.site.security_groups.clone(),
            assign_public_ip: outputs.site.assign_public_ip,
            dead_letters_arn: side.dead_letters_arn.clone(),
            overrides,
        },
    };
    Ok(dispatcher::put(aws, &side.group, &def, side.iam_changed).await?)
}

/// A schedule of the job, what it delivers (when jobrun made it) and its stored definition.
struct Found {
    got: dispatcher::Got,
    delivery: Option<Delivery>,
    stored: Option<Stored>,
}

async fn find(aws: &Aws, group: &str, job: &str, name: &str) -> Result<Found> {
    let missing = || ScheduleError::Missing {
        job: job.to_string(),
        name: name.to_string(),
    };
    let got = dispatcher::get(aws, group, name)
        .await?
        .ok_or_else(missing)?;
    let delivery = got.target().and_then(Delivery::of);
    let stored = match delivery.as_ref().and_then(|d| d.overrides.spec()) {
        Some((bucket, key)) => aws::get_json(&aws.s3(), &bucket, &key).await?,
        None => None,
    };
    Ok(Found {
        got,
        delivery,
        stored,
    })
}

async fn list(file: Option<&Path>, _: &ScheduleListArgs, ui: &Ui) -> Result<Exit> {
    let job = ecs_job(file)?;
    let aws = load_aws(&job).await?;
    let at = dispatcher::where_of(&job, &aws).await?;
    let store = open_store()?;
    let mut schedules = vec![];
    let mut fires = None;
    for name in dispatcher::list(&aws, &at.group).await? {
        let found = find(&aws, &at.group, &job.name, &name).await?;
        let mut gone = vec![];
        if let Some(s) = &found.stored {
            if fires.is_none() {
                fires = Some(recent_fires(&aws, &s.outputs.site.bucket, &job.name).await?);
            }
            let pinned = [s.outputs.image.as_str(), s.dispatcher_image.as_str()];
            gone = keep::gone(&job, &store, &super::infra::registry_access(&job), &pinned).await?;
        }
        let mut line = line(&name, found, fires.as_deref().unwrap_or_default());
        line.images_gone = gone;
        schedules.push(line);
    }
    ui.emit(&ScheduleList {
        job: job.name.clone(),
        schedules,
        failed_deliveries: dispatcher::failed_deliveries(&aws, &at).await?,
        dead_letters: at.dead_letters,
    });
    Ok(Exit::Ok)
}

/// The job's newest keyed fires in its bucket, runs and skips together, newest first.
async fn recent_fires(aws: &Aws, bucket: &str, job: &str) -> Result<Vec<LastFire>> {
    let runs = crate::dispatch::remote::recent(aws, bucket, job, 50).await?;
    let skips = crate::claim::skipped_in_bucket(aws, bucket, job, 50).await?;
    let mut fires: Vec<LastFire> = runs
        .into_iter()
        .filter_map(|r| {
            Some(LastFire {
                key: r.key.clone()?,
                at: r.created_at,
                state: r.state(),
                run_id: r.run_id,
                reason: None,
            })
        })
        .chain(skips.into_iter().filter_map(|s| {
            Some(LastFire {
                key: s.key?,
                at: s.at,
                state: crate::record::RunState::Skipped,
                run_id: s.active_run,
                reason: Some(s.reason),
            })
        }))
        .collect();
    fires.sort_by_key(|f| std::cmp::Reverse(f.at));
    Ok(fires)
}

fn line(name: &str, found: Found, fires: &[LastFire]) -> ScheduleLine {
    let got = &found.got;
    let now = chrono::Utc::now();
    let since = got
        .creation_date()
        .and_then(|d| chrono::DateTime::from_timestamp(d.secs(), 0))
        .unwrap_or(now);
    let tz_name = got.schedule_expression_timezone().unwrap_or("UTC");
    let tz = schedule::expr::timezone(tz_name).unwrap_or(chrono_tz::UTC);
    let enabled = got.state() != Some(&aws_sdk_scheduler::types::ScheduleState::Disabled);
    let prefix = format!("{name}.");
    let last_fire = fires.iter().find(|f| f.key.starts_with(&prefix)).cloned();
    let stored = found.stored.as_ref();
    ScheduleLine {
        name: name.to_string(),
        when: stored.map(|s| s.when.to_string()).unwrap_or_default(),
        expression: got.schedule_expression().unwrap_or_default().to_string(),
        timezone: tz_name.to_string(),
        next_fire: match enabled {
            true => stored.and_then(|s| s.when.next(tz, now, since)),
            false => None,
        },
        state: if enabled { "enabled" } else { "paused" }.into(),
        tasks: stored.map(|s| s.configs.len()),
        last_fire,
        images_gone: vec![],
    }
}

/// The job, AWS, its schedule group and the named schedule.
async fn named(file: Option<&Path>, args: &ScheduleNameArgs) -> Result<(Aws, String, Found)> {
    let job = ecs_job(file)?;
    let aws = load_aws(&job).await?;
    let group = dispatcher::where_of(&job, &aws).await?.group;
    let found = find(&aws, &group, &job.name, &args.name).await?;
    Ok((aws, group, found))
}

async fn set_state(
    file: Option<&Path>,
    args: &ScheduleNameArgs,
    enabled: bool,
    ui: &Ui,
) -> Result<Exit> {
    let (aws, group, found) = named(file, args).await?;
    dispatcher::set_state(&aws, &group, &found.got, enabled).await?;
    let done = match enabled {
        true => "resumed",
        false => "paused (it fires again after `jobrun schedule resume`)",
    };
    ui.emit(&ScheduleDone {
        name: args.name.clone(),
        done: done.into(),
    });
    Ok(Exit::Ok)
}

async fn rm(file: Option<&Path>, args: &ScheduleNameArgs, ui: &Ui) -> Result<Exit> {
    let (aws, group, _) = named(file, args).await?;
    dispatcher::delete_schedule(&aws, &group, &args.name).await?;
    let job = ecs_job(file)?;
    keep::release(&job, &super::infra::registry_access(&job), &args.name).await?;
    ui.emit(&ScheduleDone {
        name: args.name.clone(),
        done: "deleted (its runs stay; `jobrun down` removes the rest)".into(),
    });
    Ok(Exit::Ok)
}

/// `schedule run`: RunTask of the dispatcher as the schedule's target would, due now.
async fn fire(file: Option<&Path>, args: &ScheduleNameArgs, ui: &Ui) -> Result<Exit> {
    let (aws, _, found) = named(file, args).await?;
    let delivery = found.delivery.ok_or_else(|| {
        ScheduleError::Spec(
            args.name.clone(),
            "its target is not jobrun's dispatcher".into(),
        )
    })?;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let task = delivery.run_now(&aws, &now).await?;
    ui.emit(&ScheduleDone {
        name: args.name.clone(),
        done: format!("fired for {now}: dispatcher task {task}"),
    });
    Ok(Exit::Ok)
}

/// `jobrun dispatch s3://…/v<n>.json --at <time>`: the stored schedule submitted for one
/// scheduled time, watched to its end. Its exit code is the run's.
pub async fn dispatch(args: DispatchArgs, ui: &Ui) -> Result<Exit> {
    let bad = |why: &str| ScheduleError::Spec(args.spec.clone(), why.to_string());
    let (bucket, key) = args
        .spec
        .strip_prefix("s3://")
        .and_then(|u| u.split_once('/'))
        .ok_or_else(|| bad("not an s3://bucket/key URL"))?;
    let at = chrono::DateTime::parse_from_rfc3339(&args.at)
        .map_err(|_| bad("--at is not an RFC 3339 time"))?
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    // In AWS: the run's driver is this process (under the run's lease, as `jobrun drive`).
    crate::dispatch::be_driver(jobrun_agent::agent::whoami_task().await);
    let aws = crate::aws::Access::default().load().await?;
    let stored: Stored = aws::get_json(&aws.s3(), bucket, key)
        .await?
        .ok_or_else(|| bad("no such object"))?;
    let store = open_store()?;
    crate::state::save_outputs(&store, &stored.job, &stored.outputs)?;
    // The job as stored, named by its definition's URL (the run record's job file).
    let none = Overrides::default();
    let job = config::from_text(Path::new(&args.spec), &stored.job_toml, &none, &none)?;
    ui.note(&format!(
        "dispatch: schedule {} (version {}) due {at}",
        stored.name, stored.version
    ));
    let reuse = match job.run.reuse {
        true => crate::reuse::Reuse::Any,
        false => crate::reuse::Reuse::No,
    };
    let request = SubmitRequest {
        job,
        tasks: Tasks::Given(stored.configs),
        detach: false,
        build: false,
        key: Some(schedule::run_key(&stored.name, &at)),
        overlap: Some(stored.overlap),
        dry_run: false,
        // [cost] max_per_run of the stored jobrun.toml still applies.
        max_cost: None,
        max_duration: None,
        scheduled: true,
        aws: RepositoryArgs::default(),
        reuse,
    };
    make_run(request, ui).await
}

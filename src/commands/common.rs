//! What the commands share: the job in the current folder, the state directory, AWS access
//! (flags, then `[aws]` in jobrun.toml, then the standard chain) and the run a command names.

use crate::cli::RunArg;
use crate::config::{self, Job, Overrides, TargetKind};
use crate::error::Result;
use crate::record::RunRecord;
use crate::store::{Store, StoreError};
use clap::ArgMatches;
use std::path::Path;
use std::time::Duration;

pub fn load_job(
    file: Option<&Path>,
    overrides: &Overrides,
    matches: Option<&ArgMatches>,
) -> Result<Job> {
    let path = config::locate(file)?;
    let (env, flags) = overrides.split(matches);
    Ok(config::load(&path, &env, &flags)?)
}

/// The job in the current folder as written (no flags apply): `None` when there is no
/// jobrun.toml; one that does not load is its error (never "every job" or "any job's run").
pub fn current_job(file: Option<&Path>) -> Result<Option<Job>> {
    let path = match config::locate(file) {
        Ok(path) => path,
        Err(config::ConfigError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some(config::load(
        &path,
        &Overrides::default(),
        &Overrides::default(),
    )?))
}

pub fn open_store() -> Result<Store> {
    Ok(Store::open(Store::default_root())?)
}

/// The AWS profile and region a command uses for the job (see [`crate::aws::Access`]).
pub fn access(job: &Job) -> crate::aws::Access {
    crate::aws::Access::for_job(job.aws.profile.as_deref(), job.aws.region.as_deref())
}

pub async fn load_aws(job: &Job) -> Result<crate::aws::Aws> {
    Ok(access(job).load().await?)
}

/// Puts an ECS run's keep tag on its image (`image::keep`) before its tasks start (`submit`,
/// `retry`). Not being able to is a warning, not a refusal: the run can go, only its image may
/// expire while it lasts.
pub async fn hold_image(
    rec: &mut RunRecord,
    aws: &crate::aws::Aws,
    store: &Store,
    ui: &crate::ui::Ui,
) {
    let reference = rec.image.reference.clone();
    let Some(hold) = rec.place.ecs_mut().and_then(|run| run.keep.as_mut()) else {
        return;
    };
    if hold.held {
        return;
    }
    match crate::image::keep::hold(aws, store, &reference, &hold.tag).await {
        Ok(kept) => {
            hold.held = true;
            if kept == crate::image::ecr::Keeping::Foreign {
                ui.note(&format!(
                    "the ECR repository's lifecycle policy is not jobrun's: make sure it never expires images tagged {}*, or a long run may lose its image",
                    crate::image::ecr::KEEP_PREFIX
                ));
            }
        }
        Err(e) => ui.note(&format!(
            "warning: the run's image is not kept from the ECR lifecycle policy ({e}); `jobrun iam-policy --for run` lists what keeping it needs"
        )),
    }
}

/// How often a watch looks (`JOBRUN_POLL_INTERVAL`, for tests and impatient people).
pub fn poll_interval() -> Duration {
    std::env::var("JOBRUN_POLL_INTERVAL")
        .ok()
        .and_then(|s| config::parse_duration(&s).ok())
        .unwrap_or(crate::watch::DEFAULT_POLL)
}

/// A run as it stands now, for a command that only reads: a run on AWS goes on without jobrun,
/// so an unfinished one is looked at (what its tasks and results say), never moved on; a local
/// run's record is current already.
pub async fn current(store: &Store, rec: RunRecord) -> Result<RunRecord> {
    if rec.place == crate::record::Place::Local || rec.finished_at.is_some() {
        return Ok(rec);
    }
    let mut dispatcher = crate::dispatch::Dispatcher::for_run(&rec).await?;
    // Driven in AWS: the driver's copy in the bucket is the run as it stands.
    if crate::dispatch::only_followed(&rec) {
        return Ok(crate::watch::step(store, &mut dispatcher, &rec.run_id).await?);
    }
    Ok(crate::watch::look(store, &mut dispatcher, &rec.run_id).await?)
}

/// What a reading command says about a run only a driver moves on: its tasks that wait to
/// start (or to be sent to the queue).
pub fn waiting_note(rec: &RunRecord) -> Option<String> {
    let waiting = rec.startable().count();
    let here = !crate::dispatch::only_followed(rec);
    (here && rec.finished_at.is_none() && rec.place != crate::record::Place::Local && waiting > 0)
        .then(|| {
            format!(
                "{waiting} tasks wait to start: `jobrun watch {}` moves the run on",
                rec.run_id
            )
        })
}

/// The run a command names: from the local state folder, or else (given an id and a job file
/// for an ecs job) from the job's S3 bucket, which makes this machine's copy.
pub async fn resolve(store: &Store, file: Option<&Path>, arg: &RunArg) -> Result<RunRecord> {
    let job = match arg.run {
        None => current_job(file)?.map(|j| j.name),
        Some(_) => None,
    };
    match store.resolve(arg.run.as_deref(), job.as_deref()) {
        Ok(id) => {
            let rec = store.load(&id)?;
            if arg.run.is_none() && job.is_none() {
                // No job folder here: the latest run of any job, said so, not silently.
                crate::ui::Ui::new(crate::ui::OutputFormat::Text).note(&format!(
                    "no jobrun.toml here: run {} is the latest of any job (job {}); name a RUN, or run this in the job's folder",
                    rec.run_id, rec.job
                ));
            }
            Ok(rec)
        }
        Err(StoreError::NoSuchRun(wanted)) => {
            let found = match current_job(file)? {
                Some(job) => fetch_remote(store, &job, &wanted).await?,
                None => None,
            };
            found.ok_or_else(|| StoreError::NoSuchRun(wanted).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// A run of `job` by its id: from the local state folder, or else the job's bucket.
pub async fn run_of(store: &Store, job: &Job, run_id: &str) -> Result<RunRecord> {
    match store.resolve(Some(run_id), None) {
        Ok(id) => Ok(store.load(&id)?),
        Err(StoreError::NoSuchRun(wanted)) => fetch_remote(store, job, &wanted)
            .await?
            .ok_or_else(|| StoreError::NoSuchRun(wanted).into()),
        Err(e) => Err(e.into()),
    }
}

async fn fetch_remote(store: &Store, job: &Job, wanted: &str) -> Result<Option<RunRecord>> {
    if job.target != TargetKind::Ecs {
        return Ok(None);
    }
    let aws = load_aws(job).await?;
    let bucket = job_bucket(store, job, &aws).await?;
    let Some(rec) = crate::dispatch::remote::fetch(&aws, &bucket, &job.name, wanted).await? else {
        return Ok(None);
    };
    if !store.exists(&rec.run_id) {
        store.create(&rec)?;
    }
    Ok(Some(rec))
}

/// An ECS job's bucket: as `up` recorded it, else by its name rule (account and region).
pub async fn job_bucket(store: &Store, job: &Job, aws: &crate::aws::Aws) -> Result<String> {
    Ok(match crate::state::load_outputs(store, &job.name)? {
        Some(o) => o.site.bucket,
        None => crate::infra::Names::new(job, &aws.account().await?, &aws.region()).bucket,
    })
}

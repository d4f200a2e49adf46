//! `submit`: configurations → tasks → a new run record → its dispatcher, then watch (or detach).
//! Everything that can be wrong with the input is found before anything is created; on ECS the
//! record is in the job's bucket before the first task is launched.

use super::common::{load_aws, load_job, open_store};
use super::drive::{already_finished, attach, drive_detached, go_on};
use super::gate::{Gate, Pass, Shared};
use super::image::{build_and_record, push_latest};
use super::request::{SubmitRequest, Tasks};
use crate::aws::Aws;
use crate::cli::{RunArg, SubmitArgs};
use crate::config::{DispatchMode, Job, NotifyEvent, TargetKind};
use crate::dispatch::{Dispatcher, local::LocalDispatcher};
use crate::engine::Engine;
use crate::error::{Exit, Failure, Result};
use crate::image::{self, records::ImageRecords};
use crate::infra::Outputs;
use crate::plan;
use crate::record::{
    self, EcsRun, ImageRef, Place, QueueRun, ReduceSettings, RunRecord, RunSettings, TaskRecord,
};
use crate::report::Submitted;
use crate::store::Store;
use crate::ui::Ui;
use clap::ArgMatches;
use std::path::Path;

pub async fn submit(
    file: Option<&Path>,
    args: SubmitArgs,
    matches: Option<&ArgMatches>,
    ui: &Ui,
) -> Result<Exit> {
    if let Some(run) = &args.resume {
        return resume(file, run, args.detach, ui).await;
    }
    let job = load_job(file, &args.overrides, matches)?;
    make_run(SubmitRequest::of(job, args), ui).await
}

/// A new run of the request: checked, made and started (or only estimated: `--dry-run`).
pub async fn make_run(req: SubmitRequest, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let run_id = record::new_run_id(&req.job.name);
    let at = Submit {
        store,
        run_id,
        req: &req,
    };
    match req.job.target {
        TargetKind::Local => submit_local(at, ui).await,
        TargetKind::Ecs => submit_ecs(at, ui).await,
    }
}

/// What both targets' submits take.
struct Submit<'a> {
    store: Store,
    run_id: String,
    req: &'a SubmitRequest,
}

/// The key's run or the overlap policy may end the submit here; else the run is made, with its
/// key, and started.
async fn gate_then_start(
    gate: &Gate<'_>,
    at: &Submit<'_>,
    mut rec: RunRecord,
    dispatcher: impl AsyncFnOnce(&mut RunRecord) -> Result<Dispatcher>,
    ui: &Ui,
) -> Result<Exit> {
    if let Pass::Done(exit) = gate.before(&at.store, ui).await? {
        return Ok(exit);
    }
    if let Pass::Done(exit) = gate.claim(&at.store, &at.run_id, ui).await? {
        return Ok(exit);
    }
    rec.key = gate.key.clone();
    let started = async {
        let dispatcher = dispatcher(&mut rec).await?;
        start(&at.store, rec, dispatcher, at.req.detach, ui).await
    }
    .await;
    if started.is_err() && !at.store.exists(&at.run_id) {
        gate.release(&at.store).await;
    }
    started
}

/// `submit --resume RUN`: the same run, from where it stopped.
async fn resume(file: Option<&Path>, run: &str, detach: bool, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let arg = RunArg {
        run: Some(run.to_string()),
    };
    let rec = super::common::resolve(&store, file, &arg).await?;
    if rec.is_finished() {
        return Ok(already_finished(&rec, ui));
    }
    go_on(&store, rec, detach, ui).await
}

/// The tasks of `--configs` / `--matrix` or of configurations given, or where `--from-s3`
/// finds them (the bucket is listed once AWS is loaded).
enum Planned<'a> {
    Tasks(Vec<TaskRecord>),
    FromS3(&'a str),
}

fn planned<'a>(req: &'a SubmitRequest, run_id: &str) -> Result<Planned<'a>> {
    let configs = match &req.tasks {
        Tasks::Planned { configs, matrix } => plan::configurations(configs.as_deref(), matrix)?,
        Tasks::Given(configs) => configs.clone(),
        Tasks::FromS3(url) => return Ok(Planned::FromS3(url)),
    };
    if configs.len() > plan::MAX_TASKS {
        return Err(plan::PlanError::TooMany(format!("{} configurations", configs.len())).into());
    }
    let tasks = plan::tasks(configs, req.job.run.command.as_deref(), run_id)?;
    // What the target can carry: a local task gets its configuration and arguments through
    // the kernel's exec (one string at most 128 KiB); an ECS task through RunTask's overrides.
    let (config_limit, arg_limit) = match req.job.target {
        TargetKind::Local => (plan::LOCAL_VALUE_LIMIT, plan::LOCAL_VALUE_LIMIT),
        TargetKind::Ecs => (plan::ECS_CONFIG_LIMIT, plan::ECS_ARG_LIMIT),
    };
    plan::check_sizes(&tasks, config_limit, arg_limit)?;
    Ok(Planned::Tasks(tasks.into_iter().map(task_record).collect()))
}

/// `[resources] size = "auto"`: the run takes the size learned from the job's last measured
/// run (direct mode and local: queue mode's workers keep their task definition's size).
fn learn_size(store: &Store, job: &Job, rec: &mut RunRecord) {
    let auto = job.resources.size == crate::config::SizeRule::Auto;
    if !auto || matches!(rec.place, Place::Queue(..)) {
        return;
    }
    let Some(learned) = crate::report::usage::learn(store, job) else {
        return;
    };
    let size = learned.size;
    (rec.settings.cpu, rec.settings.memory_mib) = (size.cpu, size.memory_mib);
    let mut note = learned.note;
    // A configuration that ran there gets its own size (keys are made before this).
    for t in rec.tasks.iter_mut() {
        let own = t.key.as_ref().and_then(|k| learned.by_key.get(k));
        if let Some(own) = own.filter(|own| **own != size) {
            t.learned = Some(*own);
            note.by_task += 1;
        }
    }
    rec.settings.learned = Some(note);
}

/// What the run's tasks are expected to take, from the job's earlier runs (kept in the record,
/// so its end says how far that was off).
fn expect(store: &Store, job: &Job, rec: &mut RunRecord) {
    let Ok(listing) = store.summaries() else {
        return;
    };
    let timeout = rec.settings.timeout_secs;
    let e = crate::cost::estimate::Expected::pick(&listing.runs, &job.name, &rec.image.id, timeout);
    rec.settings.expected = e.measured.then_some(crate::record::schema::Expected {
        median_secs: e.median_secs,
        from: e.from,
    });
}

fn task_record(t: plan::TaskPlan) -> TaskRecord {
    TaskRecord::new(t.index, t.config, t.command)
}

/// A new run's record: the one place one is made. The job's reduce, if it has one, is the
/// last task.
fn new_record(
    job: &Job,
    run_id: &str,
    place: Place,
    image: ImageRef,
    mut tasks: Vec<TaskRecord>,
) -> Result<RunRecord> {
    if let Some(reduce) = &job.reduce {
        // The reduce's command is filled as a map task's is ({index} is its own, N; it has
        // no configuration), its values quoted in a shell script.
        let n = tasks.len();
        let command = plan::fill_command(&reduce.command, n, n, run_id, &serde_json::json!({}))
            .map_err(|m| plan::PlanError::Invalid(format!("reduce.command: {m}")))?;
        tasks.push(TaskRecord::reduce(n, Some(command)));
    }
    // Priced as Fargate in the run's region (a local run: the job's, else us-east-1).
    let region = match place.ecs() {
        Some(run) => run.site.region.clone(),
        None => job.aws.region.clone().unwrap_or_else(|| "us-east-1".into()),
    };
    // Priced for what the image is, which is the job's platform unless the engine says otherwise.
    let arch = crate::config::Platform::parse(&image.platform)
        .map(|p| p.arch)
        .unwrap_or(job.image.platform.arch);
    let mut settings = settings_of(job);
    settings.prices = Some(match job.managed_instances() {
        true => crate::cost::instances::lookup(&region, job).map_err(|m| {
            Failure::usage(m).hint(
                "name instance types jobrun prices ([resources] instance_types = [\"g6.*\"]), \
                 or give the price in [cost] vcpu_hour",
            )
        })?,
        false => crate::cost::prices::lookup(&region, arch, &job.cost),
    });
    let mut rec = RunRecord {
        schema: record::SCHEMA,
        run_id: run_id.to_string(),
        job: job.name.clone(),
        job_file: job.file.clone(),
        place,
        image,
        settings,
        created_at: chrono::Utc::now(),
        finished_at: None,
        cancel_requested: false,
        key: None,
        notifications: vec![],
        tasks,
    };
    // Every task's key, whether or not this submit reuses: later ones may.
    crate::reuse::set_keys(&mut rec);
    Ok(rec)
}

fn settings_of(job: &Job) -> RunSettings {
    RunSettings {
        timeout_secs: job.run.timeout.as_secs().max(1),
        max_attempts: job.run.max_attempts,
        concurrency: job.run.concurrency,
        cpu: job.resources.cpu.as_f64(),
        memory_mib: job.resources.memory.0,
        max_memory_mib: Some(job.resources.max_memory.0),
        env: job.run.env.clone(),
        retry_exit_codes: job.run.retry_exit_codes.clone(),
        notify: job.notify.clone(),
        reduce: job.reduce.as_ref().map(|r| ReduceSettings {
            when: r.when,
            image: None,
        }),
        storage_gb: job
            .resources
            .ephemeral_storage
            .unwrap_or(crate::cost::FREE_STORAGE_GB),
        // A local run is costed as it would be on Fargate, in the job's network.
        public_ipv4: job.ecs.assign_public_ip,
        prices: None,
        dispatched: false,
        objective: job.results.clone(),
        gpu: job.resources.gpu,
        learned: None,
        checkpoint_every_secs: job.run.checkpoint_every.map(|d| d.as_secs().max(1)),
        expected: None,
    }
}

/// Saves the new run, then watches it or leaves it to go on by itself.
async fn start(
    store: &Store,
    mut rec: RunRecord,
    mut dispatcher: Dispatcher,
    detach: bool,
    ui: &Ui,
) -> Result<Exit> {
    store.create(&rec)?;
    if rec.place == Place::Local && rec.reused_count() > 0 {
        for (i, why) in crate::reuse::copy_local(store, &mut rec) {
            ui.note(&format!(
                "task {i} runs after all: its earlier twin's outputs could not be copied: {why}"
            ));
        }
        store.save(&rec)?;
    }
    if let Some(spec) = rec
        .settings
        .notify
        .clone()
        .filter(|s| s.wants(NotifyEvent::Start))
    {
        let message = crate::notify::Message::of(&rec, NotifyEvent::Start);
        rec.notifications = crate::notify::send(&spec, &message).await;
        store.save(&rec)?;
    }
    let submitted = Submitted::of(&rec);
    // What follows keeps its own copy of the record: a second one of a big run is not held.
    let run_id = rec.run_id.clone();
    drop(rec);
    if detach {
        drive_detached(store, &mut dispatcher, &run_id).await?;
        ui.emit(&submitted);
        return Ok(Exit::Ok);
    }
    ui.note(&submitted.to_string());
    attach(store, &mut dispatcher, &run_id, ui).await
}

async fn submit_local(at: Submit<'_>, ui: &Ui) -> Result<Exit> {
    let (store, run_id, req) = (&at.store, &at.run_id, at.req);
    let job = &req.job;
    let gate = Gate::of(req)?;
    let Planned::Tasks(tasks) = planned(req, run_id)? else {
        return Err(Failure::usage("--from-s3 needs the ecs target")
            .hint("submit with --target ecs, or set job.target = \"ecs\""));
    };
    // Which earlier tasks there are to reuse: a bad `--reuse RUN` stops here, before anything.
    let earlier = crate::reuse::earlier(store, &job.name, &req.reuse)?;
    let engine = Engine::connect().await?;
    if job.resources.gpu > 0 {
        needs_gpus(&engine, job.resources.gpu).await?;
    }
    if req.build {
        let built = build_and_record(job, &engine, store, ui).await?;
        ui.note(&built.to_string());
    }
    let latest = image::latest_tag(&job.name);
    let inspect = engine
        .inspect_image(&latest)
        .await?
        .ok_or_else(|| image::ImageError::NotBuilt(latest.clone()))?;
    let image_id = inspect.id.clone().unwrap_or_default();
    let image = ImageRef {
        reference: format!("{}:{}", job.name, image::short_id(&image_id)),
        id: image_id,
        platform: image::platform_of(&inspect),
    };
    let mut rec = new_record(job, run_id, Place::Local, image, tasks)?;
    learn_size(store, job, &mut rec);
    expect(store, job, &mut rec);
    let reused = crate::reuse::reuse_local(store, &mut rec, &earlier)?;
    note_gone(&reused, ui);
    if let (Some(settings), Some(other)) = (
        rec.settings.reduce.as_mut(),
        job.reduce.as_ref().and_then(|r| r.image.as_ref()),
    ) {
        let found = engine.inspect_image(other).await?;
        let id = found.and_then(|i| i.id).ok_or_else(|| {
            Failure::usage(format!(
                "reduce.image {other} is not an image of the local engine"
            ))
            .hint("build or load it first (`docker images` lists what the engine has)")
        })?;
        settings.image = Some(id);
    }
    if let Some(exit) = super::estimate::before_start(req, &rec, store, None, ui).await? {
        return Ok(exit);
    }
    let local = async |_: &mut RunRecord| Ok(Dispatcher::Local(LocalDispatcher::new(engine)));
    gate_then_start(&gate, &at, rec, local, ui).await
}

/// `[resources] gpu` on the local engine: refused before anything starts when the engine has
/// no GPU runtime (its containers would fail to create, one by one).
async fn needs_gpus(engine: &Engine, gpu: u32) -> Result<()> {
    let runtimes = engine.runtimes().await?;
    if runtimes.iter().any(|r| r.starts_with("nvidia")) {
        return Ok(());
    }
    Err(Failure::env(format!(
        "[resources] gpu = {gpu}: the local Docker engine has no GPU runtime (it has {})",
        runtimes.join(", ")
    ))
    .hint(
        "install the NVIDIA Container Toolkit and register it with the engine \
         (`nvidia-ctk runtime configure --runtime=docker`, then restart it), or run where there is a GPU",
    ))
}

async fn submit_ecs(at: Submit<'_>, ui: &Ui) -> Result<Exit> {
    let (store, run_id, req) = (&at.store, &at.run_id, at.req);
    let job = &req.job;
    // Input first (nothing is created for bad input), then AWS.
    let mut gate = Gate::of(req)?;
    let planned_tasks = planned(req, run_id)?;
    let earlier = crate::reuse::earlier(store, &job.name, &req.reuse)?;
    let aws = load_aws(job).await?;
    let tasks = match planned_tasks {
        Planned::Tasks(tasks) => tasks,
        Planned::FromS3(url) => from_s3(job, &aws, url, run_id).await?,
    };
    if req.build {
        let engine = Engine::connect().await?;
        let built = build_and_record(job, &engine, store, ui).await?;
        ui.note(&built.to_string());
        let pushed = push_latest(job, &engine, store, &req.aws, ui).await?;
        ui.note(&pushed.to_string());
        super::infra::converge(job, &aws, store, false, ui).await?;
    }
    let outputs = current_outputs(job, store, &aws)?;
    if job.reduce.is_some() && !outputs.site.outputs {
        return Err(Failure::usage(format!(
            "job {} has a [reduce], but its image carries no jobrun to hand the map tasks' outputs to it",
            job.name
        ))
        .hint(format!(
            "its image was built with [run] outputs = false; remove that (or give [image] agent.{}), then `jobrun build --push` and `jobrun up`",
            job.image.platform.arch
        )));
    }
    let image = ImageRef {
        reference: outputs.image.clone(),
        id: outputs
            .image
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| outputs.image.clone()),
        platform: job.image.platform.to_string(),
    };
    let place = ecs_place(job, &outputs, run_id, req.scheduled)?;
    let mut rec = new_record(job, run_id, place, image, tasks)?;
    rec.settings.dispatched = req.scheduled;
    learn_size(store, job, &mut rec);
    expect(store, job, &mut rec);
    let s3 = aws.s3();
    let bucket = outputs.site.bucket.clone();
    if !earlier.is_empty() {
        let reused = crate::reuse::reuse_ecs(store, &mut rec, &earlier, &s3, &bucket).await?;
        note_gone(&reused, ui);
    }
    if let Some(exit) = super::estimate::before_start(req, &rec, store, Some(&aws), ui).await? {
        return Ok(exit);
    }
    gate.shared = Some(Shared {
        aws: &aws,
        bucket: &outputs.site.bucket,
    });
    let remote = async |rec: &mut RunRecord| {
        super::common::hold_image(rec, &aws, store, ui).await;
        let dispatcher = Dispatcher::create(rec, aws.clone()).await?;
        // The run exists in the bucket: the reused tasks' outputs are copied into it.
        for (i, why) in crate::reuse::copy_s3(&s3, &bucket, rec).await {
            ui.note(&format!(
                "task {i} runs after all: its earlier twin's outputs could not be copied: {why}"
            ));
        }
        // Its driver in AWS takes it from here (a scheduled run's dispatcher is its driver).
        if let Some(run) = rec.place.ecs().filter(|_| !req.scheduled) {
            crate::dispatch::remote::wake_driver(&aws, rec, run).await?;
        }
        Ok(dispatcher)
    };
    gate_then_start(&gate, &at, rec, remote, ui).await
}

/// Says which tasks run although an earlier twin had their key: its outputs were deleted.
fn note_gone(reused: &crate::reuse::Reused, ui: &Ui) {
    if !reused.outputs_gone.is_empty() {
        ui.note(&format!(
            "{} tasks run again: the outputs of their earlier twins are gone (tasks {})",
            reused.outputs_gone.len(),
            crate::report::overview::ranges(&reused.outputs_gone, 20)
        ));
    }
}

/// `--from-s3`: one task per object under the prefix.
async fn from_s3(job: &Job, aws: &Aws, url: &str, run_id: &str) -> Result<Vec<TaskRecord>> {
    let (configs, envs): (Vec<_>, Vec<_>) = plan::configurations_from_s3(aws, &job.ecs.inputs, url)
        .await?
        .into_iter()
        .unzip();
    let tasks = plan::tasks(configs, job.run.command.as_deref(), run_id)?;
    Ok(tasks
        .into_iter()
        .zip(envs)
        .map(|(t, env)| TaskRecord {
            env,
            ..task_record(t)
        })
        .collect())
}

/// What `up` made for the job, checked against this submit: same region, latest push.
pub(super) fn current_outputs(job: &Job, store: &Store, aws: &Aws) -> Result<Outputs> {
    let outputs = crate::state::load_outputs(store, &job.name)?.ok_or_else(|| {
        Failure::usage(format!("job {} has no AWS side yet", job.name))
            .hint("run `jobrun up` (after `jobrun build --push`), or submit with --build")
    })?;
    if outputs.site.region != aws.region() {
        return Err(Failure::usage(format!(
            "`jobrun up` ran in {}, but this submit uses {}",
            outputs.site.region,
            aws.region()
        ))
        .hint("pass the same --region (or AWS_REGION) to both"));
    }
    let records = ImageRecords::load(store, &job.name)?;
    if let Some((_, push)) = records.latest_push()
        && push.reference != outputs.image
    {
        return Err(Failure::usage(format!(
            "the task definition runs {}, but the last pushed image is {}",
            outputs.image, push.reference
        ))
        .hint("run `jobrun up` to register the new image"));
    }
    Ok(outputs)
}

/// Who drives the run: the job's driver service in AWS (`[ecs] driver = "aws"`), or this
/// machine. A scheduled run is driven by its dispatcher, in AWS, under the same lease.
fn driver_of(job: &Job, outputs: &Outputs, scheduled: bool) -> Result<Option<String>> {
    match (job.ecs.driver, &outputs.driver) {
        (crate::config::Driver::Here, _) => Ok(None),
        (crate::config::Driver::Aws, Some(service)) => Ok(Some(service.clone())),
        (crate::config::Driver::Aws, None) if scheduled => Ok(None),
        (crate::config::Driver::Aws, None) => Err(Failure::usage(format!(
            "job {} has no driver in AWS yet (its runs go on there without this machine)",
            job.name
        ))
        .hint("run `jobrun up` to make it, or submit with --driver here (the run then needs this machine awake until it ends)")),
    }
}

/// Where an ECS run's tasks go: direct, or through the job's queue. An image in ECR is kept
/// from the lifecycle policy while the run lasts (`image::keep`); a scheduled run's already is,
/// by its schedule's tag.
fn ecs_place(job: &Job, outputs: &Outputs, run_id: &str, scheduled: bool) -> Result<Place> {
    let started_by = crate::dispatch::ecs::started_by(run_id);
    let in_ecr = matches!(job.image.registry, crate::config::RegistrySpec::Ecr { .. });
    let ecs = EcsRun {
        site: outputs.site.clone(),
        profile: super::common::access(job).profile,
        keep: (in_ecr && !scheduled).then(|| crate::record::ImageHold {
            tag: crate::image::keep::run_tag(&started_by),
            held: false,
        }),
        started_by,
        capacity: job.ecs.capacity.clone(),
        rates: job.ecs.rates.clone(),
        driver: driver_of(job, outputs, scheduled)?,
    };
    if job.ecs.mode == DispatchMode::Direct {
        return Ok(Place::Ecs(ecs));
    }
    let q = outputs.queue.as_ref().ok_or_else(|| {
        Failure::usage(format!("job {} has no queue yet", job.name)).hint(
            "set mode = \"queue\" under [ecs] in jobrun.toml (or pass --mode queue) and run `jobrun up`",
        )
    })?;
    let queue = QueueRun {
        queue_url: q.queue_url.clone(),
        dlq_url: q.dlq_url.clone(),
        service: q.service.clone(),
        max_receive_count: q.max_receive_count,
        send_concurrency: job.ecs.queue.send_concurrency,
        max_workers: q.max_workers,
        stats: None,
        first_worker_at: None,
        all_workers_at: None,
        worker_timelines: Default::default(),
    };
    Ok(Place::Queue(ecs, queue))
}

//! One function per command, reading like the pipeline: config → plan → image → target → watch.

use crate::cli::{
    Cli, Command, InitArgs, LogsArgs, RetryArgs, RunArg, RunsArgs, SubmitArgs, WatchArgs,
};
use crate::config::{self, Job, Overrides};
use crate::engine::Engine;
use crate::error::{Exit, Failure, Result};
use crate::image;
use crate::plan;
use crate::record::{self, EcsRun, ImageRef, RunRecord, RunSettings, Store, TaskRecord, TaskState};
use crate::report::{RunLine, RunList, RunStatus};
use crate::target::{Target, local::LocalTarget};
use crate::ui::Ui;
use crate::watch::{self, Ended, WatchOptions};
use clap::ArgMatches;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

pub async fn run(cli: Cli, matches: &ArgMatches) -> Result<Exit> {
    let ui = Ui::new(cli.output);
    let sub = matches.subcommand().map(|(_, m)| m);
    let file = cli.file.as_deref();
    match cli.command {
        Command::Init(args) => init(args, &ui),
        Command::Build(args) => {
            let job = load_job(file, &args.overrides, sub)?;
            let store = open_store()?;
            let engine = Engine::connect().await?;
            let built = build_and_record(&job, &engine, &store, &ui).await?;
            if args.push {
                ui.note(&built.to_string());
                let pushed = push(&job, &engine, &store, &args.aws, &ui).await?;
                ui.emit(&pushed);
            } else {
                ui.emit(&built);
            }
            Ok(Exit::Ok)
        }
        Command::Push(args) => {
            let job = load_job(file, &args.overrides, sub)?;
            let store = open_store()?;
            let engine = Engine::connect().await?;
            let pushed = push(&job, &engine, &store, &args.aws, &ui).await?;
            ui.emit(&pushed);
            Ok(Exit::Ok)
        }
        Command::Up(args) => {
            let job = load_job(file, &args.overrides, sub)?;
            let store = open_store()?;
            let records = image::records::ImageRecords::load(&store, &job.name)?;
            let (image, agent) = match records.latest_push() {
                Some((img, push)) if img.platform != job.image.platform.to_string() => {
                    return Err(Failure::usage(format!(
                        "the last pushed image ({}) is {}, but the job's platform is {}",
                        push.reference, img.platform, job.image.platform
                    ))
                    .hint("jobrun build --push, for the job's platform"));
                }
                Some((img, push)) => (Some(push.reference.clone()), agent_of(img)),
                None => (None, None),
            };
            let aws = load_aws(&job, &args.aws).await?;
            let report = crate::infra::up(&job, &aws, image, agent, args.dry_run).await?;
            if !args.dry_run {
                save_outputs(&store, &job.name, &report.outputs)?;
            }
            ui.emit(&report);
            Ok(Exit::Ok)
        }
        Command::Down(args) => {
            use std::io::IsTerminal;
            let job = load_job(file, &Overrides::default(), None)?;
            if !args.yes && !std::io::stdin().is_terminal() {
                return Err(Failure::usage(
                    "down deletes resources and there is no terminal to ask",
                )
                .hint("run it with --yes"));
            }
            let aws = load_aws(&job, &args.aws).await?;
            let yes = args.yes;
            let report = crate::infra::down::down(&job, &aws, |changes| {
                if yes {
                    return true;
                }
                eprintln!(
                    "{}",
                    crate::infra::DownReport {
                        changes: changes.to_vec()
                    }
                );
                eprint!("delete the resources marked delete? [y/N] ");
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer).is_ok()
                    && answer.trim().eq_ignore_ascii_case("y")
            })
            .await?;
            ui.emit(&report);
            Ok(Exit::Ok)
        }
        Command::Images => {
            let job = load_job(file, &Overrides::default(), None)?;
            let store = open_store()?;
            ui.emit(&image::records::ImageRecords::load(&store, &job.name)?);
            Ok(Exit::Ok)
        }
        Command::Submit(args) => submit(file, args, sub, &ui).await,
        Command::Watch(args) => watch_cmd(file, args, &ui).await,
        Command::Status(args) => {
            let store = open_store()?;
            let mut rec = resolve(&store, file, &args).await?;
            // A run on AWS goes on without jobrun: ask it where it stands.
            if rec.ecs.is_some() && rec.finished_at.is_none() {
                let mut target = Target::for_run(&rec).await?;
                rec = watch::step(&store, &mut target, &rec.run_id).await?;
            }
            ui.emit(&RunStatus::of(&rec));
            Ok(Exit::Ok)
        }
        Command::Retry(args) => retry(file, args, &ui).await,
        Command::Agent(args) => {
            crate::agent::run(args).await?;
            Ok(Exit::Ok)
        }
        Command::Runs(args) => runs(file, args, &ui),
        Command::Logs(args) => logs(file, args).await,
        Command::Cancel(args) => cancel(file, args, &ui).await,
        Command::Config(args) => {
            let job = load_job(file, &args.overrides, sub)?;
            ui.emit(&JobView(job));
            Ok(Exit::Ok)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "jobrun", &mut std::io::stdout());
            Ok(Exit::Ok)
        }
    }
}

fn agent_of(img: &image::records::ImageRecord) -> Option<crate::infra::queue::AgentImage> {
    img.agent.as_ref().map(|a| crate::infra::queue::AgentImage {
        path: a.path.clone(),
        entrypoint: a.entrypoint.clone(),
        cmd: a.cmd.clone(),
    })
}

/// AWS access for a job: flags, then `[aws]` in jobrun.toml, then the standard chain.
async fn load_aws(job: &Job, args: &crate::cli::AwsArgs) -> Result<crate::aws::Aws> {
    let profile = args.profile.clone().or(job.aws.profile.clone());
    let region = args.region.clone().or(job.aws.region.clone());
    Ok(crate::aws::Aws::load(profile.as_deref(), region.as_deref()).await?)
}

/// Builds the image and records it with the job.
async fn build_and_record(
    job: &Job,
    engine: &Engine,
    store: &Store,
    ui: &Ui,
) -> Result<image::Built> {
    let built = image::build(job, engine, ui).await?;
    let mut records = image::records::ImageRecords::load(store, &job.name)?;
    records.built(image::records::ImageRecord {
        image_id: built.image_id.clone(),
        tags: built.tags.clone(),
        platform: built.platform.clone(),
        size_bytes: built.size_bytes,
        built_at: chrono::Utc::now(),
        pushes: vec![],
        agent: built.agent.clone(),
    });
    records.save(store, &job.name)?;
    Ok(built)
}

async fn push(
    job: &Job,
    engine: &Engine,
    store: &Store,
    aws: &crate::cli::AwsArgs,
    ui: &Ui,
) -> Result<image::push::Pushed> {
    // Flags, then `[aws]` in jobrun.toml, then the standard chain (as for `up`).
    let opts = image::push::AwsOptions {
        profile: aws.profile.clone().or(job.aws.profile.clone()),
        region: aws.region.clone().or(job.aws.region.clone()),
        update_repository: aws.update_repository,
    };
    Ok(image::push::push(job, engine, store, &opts, ui).await?)
}

fn load_job(
    file: Option<&std::path::Path>,
    overrides: &Overrides,
    matches: Option<&ArgMatches>,
) -> Result<Job> {
    let path = config::locate(file)?;
    let (env, flags) = overrides.split(matches);
    Ok(config::load(&path, &env, &flags)?)
}

/// The job in the current folder, if there is one (used to pick "the latest run of this job").
fn current_job_name(file: Option<&std::path::Path>) -> Option<String> {
    let path = config::locate(file).ok()?;
    config::load(&path, &Overrides::default(), &Overrides::default())
        .ok()
        .map(|j| j.name)
}

fn open_store() -> Result<Store> {
    Ok(Store::open(Store::default_root())?)
}

/// The run a command names: from the local state folder, or else (given an id and a job file
/// for an ecs job) from the job's S3 bucket, which makes this machine's copy.
async fn resolve(store: &Store, file: Option<&std::path::Path>, arg: &RunArg) -> Result<RunRecord> {
    let job = if arg.run.is_none() {
        current_job_name(file)
    } else {
        None
    };
    match store.resolve(arg.run.as_deref(), job.as_deref()) {
        Ok(id) => Ok(store.load(&id)?),
        Err(record::StoreError::NoSuchRun(wanted)) => {
            match fetch_remote(store, file, &wanted).await? {
                Some(rec) => Ok(rec),
                None => Err(record::StoreError::NoSuchRun(wanted).into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

async fn fetch_remote(
    store: &Store,
    file: Option<&std::path::Path>,
    wanted: &str,
) -> Result<Option<RunRecord>> {
    let Ok(path) = config::locate(file) else {
        return Ok(None);
    };
    let Ok(job) = config::load(&path, &Overrides::default(), &Overrides::default()) else {
        return Ok(None);
    };
    if job.target != crate::config::TargetKind::Ecs {
        return Ok(None);
    }
    let aws = load_aws(&job, &crate::cli::AwsArgs::default()).await?;
    let bucket = match load_outputs(store, &job.name) {
        Some(o) => o.bucket,
        None => crate::infra::Names::new(&job, &aws.account().await?, &aws.region()).bucket,
    };
    let Some(rec) = crate::target::ecs::fetch_remote(&aws, &bucket, &job.name, wanted).await?
    else {
        return Ok(None);
    };
    if !store.exists(&rec.run_id) {
        store.create(&rec)?;
    }
    Ok(Some(rec))
}

fn outputs_path(store: &Store, job: &str) -> std::path::PathBuf {
    store.job_dir(job).join("aws.json")
}

fn save_outputs(store: &Store, job: &str, outputs: &crate::infra::Outputs) -> Result<()> {
    Ok(record::write_json_atomic(
        &outputs_path(store, job),
        outputs,
    )?)
}

fn load_outputs(store: &Store, job: &str) -> Option<crate::infra::Outputs> {
    let bytes = std::fs::read(outputs_path(store, job)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn poll_interval() -> Duration {
    std::env::var("JOBRUN_POLL_INTERVAL")
        .ok()
        .and_then(|s| config::parse_duration(&s).ok())
        .unwrap_or(watch::DEFAULT_POLL)
}

fn init(args: InitArgs, ui: &Ui) -> Result<Exit> {
    let dir = args.dir.unwrap_or_else(|| ".".into());
    let name = args
        .name
        .unwrap_or_else(|| crate::init::name_from_dir(&dir));
    let written = crate::init::render(&args.template, &dir, &name)?;
    ui.emit(&Initialised {
        job: name,
        template: args.template,
        dir: dir.display().to_string(),
        files: written.iter().map(|p| p.display().to_string()).collect(),
    });
    Ok(Exit::Ok)
}

#[derive(Serialize)]
struct Initialised {
    job: String,
    template: String,
    dir: String,
    files: Vec<String>,
}

impl fmt::Display for Initialised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "created job `{}` from the {} template:",
            self.job, self.template
        )?;
        for file in &self.files {
            writeln!(f, "  {file}")?;
        }
        write!(
            f,
            "next: cd {} && jobrun build && jobrun submit --configs 4",
            self.dir
        )
    }
}

async fn submit(
    file: Option<&std::path::Path>,
    args: SubmitArgs,
    matches: Option<&ArgMatches>,
    ui: &Ui,
) -> Result<Exit> {
    if let Some(run) = &args.resume {
        return resume(file, run, args.detach, ui).await;
    }
    // Everything that can be wrong with the input is found before anything is created.
    let job = load_job(file, &args.overrides, matches)?;
    let store = open_store()?;
    let run_id = record::new_run_id(&job.name);
    match job.target {
        crate::config::TargetKind::Local => {
            if args.from_s3.is_some() {
                return Err(Failure::usage("--from-s3 needs the ecs target")
                    .hint("submit with --target ecs, or set job.target = \"ecs\""));
            }
            let configs = plan::configurations(args.configs.as_deref(), &args.matrix)?;
            let tasks = plan::tasks(configs, job.run.command.as_deref(), &run_id)?;
            submit_local(job, store, run_id, tasks, &args, ui).await
        }
        crate::config::TargetKind::Ecs => submit_ecs(job, store, run_id, &args, ui).await,
    }
}

fn settings_of(job: &Job) -> RunSettings {
    RunSettings {
        timeout_secs: job.run.timeout.as_secs().max(1),
        max_attempts: job.run.max_attempts,
        concurrency: job.run.concurrency,
        cpu: job.resources.cpu.as_f64(),
        memory_mib: job.resources.memory.0,
        env: job.run.env.clone(),
        retry_exit_codes: job.run.retry_exit_codes.clone(),
    }
}

fn task_records(tasks: Vec<plan::TaskPlan>) -> Vec<TaskRecord> {
    tasks
        .into_iter()
        .map(|t| TaskRecord::new(t.index, t.config, t.command))
        .collect()
}

async fn submit_local(
    job: Job,
    store: Store,
    run_id: String,
    tasks: Vec<plan::TaskPlan>,
    args: &SubmitArgs,
    ui: &Ui,
) -> Result<Exit> {
    let engine = Engine::connect().await?;
    if args.build {
        let built = build_and_record(&job, &engine, &store, ui).await?;
        ui.note(&built.to_string());
    }
    let latest = image::latest_tag(&job.name);
    let inspect = engine
        .inspect_image(&latest)
        .await?
        .ok_or_else(|| image::ImageError::NotBuilt(latest.clone()))?;
    let image_id = inspect.id.clone().unwrap_or_default();

    let rec = RunRecord {
        schema: record::SCHEMA,
        run_id: run_id.clone(),
        job: job.name.clone(),
        job_file: job.file.clone(),
        target: job.target.as_str().into(),
        image: ImageRef {
            reference: format!("{}:{}", job.name, image::short_id(&image_id)),
            id: image_id,
            platform: image::platform_of(&inspect),
        },
        settings: settings_of(&job),
        created_at: chrono::Utc::now(),
        finished_at: None,
        cancel_requested: false,
        ecs: None,
        tasks: task_records(tasks),
    };
    store.create(&rec)?;
    let submitted = Submitted::of(&rec);
    if args.detach {
        spawn_background(&store, &run_id)?;
        ui.emit(&submitted);
        return Ok(Exit::Ok);
    }
    ui.note(&submitted.to_string());
    let mut target = Target::Local(LocalTarget::new(engine));
    attach(&store, &mut target, &run_id, ui).await
}

/// `--from-s3 s3://bucket/prefix`: one configuration per object, listed page by page.
async fn configs_from_s3(
    job: &Job,
    aws: &crate::aws::Aws,
    url: &str,
) -> Result<
    Vec<(
        serde_json::Value,
        std::collections::BTreeMap<String, String>,
    )>,
> {
    let (bucket, prefix) = config::parse_s3_url(url)
        .map_err(|m| Failure::usage(m).hint("e.g. --from-s3 s3://my-bucket/inputs/"))?;
    let covered = job
        .ecs
        .inputs
        .iter()
        .any(|(b, p)| *b == bucket && prefix.starts_with(p.as_str()));
    if !covered {
        return Err(Failure::usage(format!(
            "the task role may not read {url}: it is not under any of ecs.inputs"
        ))
        .hint(format!(
            "add inputs = [\"{url}\"] under [ecs] in jobrun.toml and run `jobrun up`"
        )));
    }
    let mut configs = vec![];
    let mut pages = aws
        .s3()
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(crate::aws::op("ListObjectsV2"))?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            if key.ends_with('/') {
                continue;
            }
            let env = std::collections::BTreeMap::from([
                ("S3_BUCKET".to_string(), bucket.clone()),
                ("S3_KEY".to_string(), key.to_string()),
            ]);
            configs.push((serde_json::json!({"bucket": bucket, "key": key}), env));
        }
    }
    if configs.is_empty() {
        return Err(Failure::usage(format!("there are no objects under {url}"))
            .hint("check the bucket and prefix (`aws s3 ls`)"));
    }
    Ok(configs)
}

async fn submit_ecs(
    job: Job,
    store: Store,
    run_id: String,
    args: &SubmitArgs,
    ui: &Ui,
) -> Result<Exit> {
    // Input first (nothing is created for bad input), then AWS.
    let mut tasks = match &args.from_s3 {
        Some(_) => vec![],
        None => {
            let configs = plan::configurations(args.configs.as_deref(), &args.matrix)?;
            plan::tasks(configs, job.run.command.as_deref(), &run_id)?
        }
    };
    let aws = load_aws(&job, &args.aws).await?;
    let mut task_env = vec![];
    if let Some(url) = &args.from_s3 {
        let (configs, envs): (Vec<_>, Vec<_>) =
            configs_from_s3(&job, &aws, url).await?.into_iter().unzip();
        tasks = plan::tasks(configs, job.run.command.as_deref(), &run_id)?;
        task_env = envs;
    }
    if args.build {
        let engine = Engine::connect().await?;
        let built = build_and_record(&job, &engine, &store, ui).await?;
        ui.note(&built.to_string());
        let pushed = push(&job, &engine, &store, &args.aws, ui).await?;
        ui.note(&pushed.to_string());
        let records = image::records::ImageRecords::load(&store, &job.name)?;
        let agent = records.latest_push().and_then(|(img, _)| agent_of(img));
        let report =
            crate::infra::up(&job, &aws, Some(pushed.reference.clone()), agent, false).await?;
        save_outputs(&store, &job.name, &report.outputs)?;
    }
    let outputs = load_outputs(&store, &job.name).ok_or_else(|| {
        Failure::usage(format!("job {} has no AWS side yet", job.name))
            .hint("run `jobrun up` (after `jobrun build --push`), or submit with --build")
    })?;
    if outputs.region != aws.region() {
        return Err(Failure::usage(format!(
            "`jobrun up` ran in {}, but this submit uses {}",
            outputs.region,
            aws.region()
        ))
        .hint("pass the same --region (or AWS_REGION) to both"));
    }
    let records = image::records::ImageRecords::load(&store, &job.name)?;
    if let Some((_, push)) = records.latest_push()
        && push.reference != outputs.image
    {
        return Err(Failure::usage(format!(
            "the task definition runs {}, but the last pushed image is {}",
            outputs.image, push.reference
        ))
        .hint("run `jobrun up` to register the new image"));
    }
    let queue = match job.ecs.mode {
        crate::config::DispatchMode::Direct => None,
        crate::config::DispatchMode::Queue => {
            let q = outputs.queue.as_ref().ok_or_else(|| {
                Failure::usage(format!("job {} has no queue yet", job.name))
                    .hint("set mode = \"queue\" under [ecs] in jobrun.toml (or pass --mode queue) and run `jobrun up`")
            })?;
            Some(record::QueueRun {
                queue_url: q.queue_url.clone(),
                dlq_url: q.dlq_url.clone(),
                service: q.service.clone(),
                max_receive_count: q.max_receive_count,
                send_concurrency: job.ecs.queue.send_concurrency,
                stats: None,
            })
        }
    };
    let ecs = EcsRun {
        queue,
        region: outputs.region.clone(),
        profile: args.aws.profile.clone().or(job.aws.profile.clone()),
        cluster: outputs.cluster.clone(),
        task_definition: outputs.task_definition.clone(),
        bucket: outputs.bucket.clone(),
        log_group: outputs.log_group.clone(),
        subnets: outputs.subnets.clone(),
        security_groups: outputs.security_groups.clone(),
        assign_public_ip: outputs.assign_public_ip,
        started_by: crate::target::ecs::started_by(&run_id),
        capacity: job.ecs.capacity.clone(),
        rates: job.ecs.rates.clone(),
    };
    let mut records = task_records(tasks);
    for (t, env) in records.iter_mut().zip(task_env) {
        t.env = env;
    }
    let rec = RunRecord {
        schema: record::SCHEMA,
        run_id: run_id.clone(),
        job: job.name.clone(),
        job_file: job.file.clone(),
        target: job.target.as_str().into(),
        image: ImageRef {
            reference: outputs.image.clone(),
            id: outputs
                .image
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_else(|| outputs.image.clone()),
            platform: job.image.platform.to_string(),
        },
        settings: settings_of(&job),
        created_at: chrono::Utc::now(),
        finished_at: None,
        cancel_requested: false,
        ecs: Some(ecs.clone()),
        tasks: records,
    };
    // The record is in the job's bucket before the first task is launched.
    let mut target = if ecs.queue.is_some() {
        let target = crate::target::queue::QueueTarget::new(aws, ecs);
        target.create_remote(&rec).await?;
        Target::Queue(Box::new(target))
    } else {
        let target = crate::target::ecs::EcsTarget::new(aws, ecs);
        target.create_remote(&rec).await?;
        Target::Ecs(Box::new(target))
    };
    store.create(&rec)?;
    let submitted = Submitted::of(&rec);
    if args.detach {
        drive_detached(&store, &mut target, &run_id).await?;
        ui.emit(&submitted);
        return Ok(Exit::Ok);
    }
    ui.note(&submitted.to_string());
    attach(&store, &mut target, &run_id, ui).await
}

/// Leaves a run to go on without this process: on ECS everything that can start now is
/// dispatched first; what must still wait (local: everything; ECS: beyond the concurrency limit,
/// or waiting for capacity) is left to a background driver. Returns the record as left.
async fn drive_detached(store: &Store, target: &mut Target, run_id: &str) -> Result<RunRecord> {
    let mut rec = store.load(run_id)?;
    if let Target::Ecs(_) | Target::Queue(_) = target {
        loop {
            rec = watch::step(store, target, run_id).await?;
            if rec.is_finished() || !target.dispatching() {
                break;
            }
        }
    }
    if rec.count(TaskState::Queued) > 0 {
        spawn_background(store, run_id)?;
    }
    Ok(rec)
}

/// Says so, prints the summary, and gives the run's exit code.
fn already_finished(rec: &RunRecord, ui: &Ui) -> Exit {
    ui.note(&format!(
        "run {} is already finished ({})",
        rec.run_id,
        rec.state()
    ));
    watch::print_summary(ui, rec);
    if rec.all_succeeded() {
        Exit::Ok
    } else {
        Exit::TasksFailed
    }
}

/// `submit --resume RUN`: the same run, from where it stopped.
async fn resume(file: Option<&std::path::Path>, run: &str, detach: bool, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let rec = resolve(
        &store,
        file,
        &RunArg {
            run: Some(run.to_string()),
        },
    )
    .await?;
    if rec.is_finished() {
        return Ok(already_finished(&rec, ui));
    }
    go_on(&store, rec, detach, ui).await
}

/// Drives a run that has queued work: in the foreground, or detached.
async fn go_on(store: &Store, rec: RunRecord, detach: bool, ui: &Ui) -> Result<Exit> {
    let mut target = Target::for_run(&rec).await?;
    if !detach {
        return attach(store, &mut target, &rec.run_id, ui).await;
    }
    let rec = drive_detached(store, &mut target, &rec.run_id).await?;
    ui.emit(&Submitted::of(&rec));
    Ok(Exit::Ok)
}

/// `retry RUN --failed`: the failed tasks are queued again as new attempts of the same run.
async fn retry(file: Option<&std::path::Path>, args: RetryArgs, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let rec = resolve(&store, file, &args.run).await?;
    let mut target = Target::for_run(&rec).await?;
    // Bring the record up to date first, so "failed" means failed now.
    let rec = watch::step(&store, &mut target, &rec.run_id).await?;
    if !rec.is_finished() {
        return Err(
            Failure::usage(format!("run {} is still running", rec.run_id))
                .hint("wait for it (`jobrun watch`) or cancel it, then retry its failed tasks"),
        );
    }
    let rec = {
        let _lock = store.lock(&rec.run_id)?;
        let mut rec = store.load(&rec.run_id)?;
        let mut n = 0;
        for t in rec
            .tasks
            .iter_mut()
            .filter(|t| t.state == TaskState::Failed)
        {
            t.state = TaskState::Queued;
            t.retried_from = t.attempts;
            t.reason = Some(format!("retry of attempt {}", t.attempts));
            t.exit_code = None;
            t.finished_at = None;
            t.log_tail.clear();
            n += 1;
        }
        if n == 0 {
            ui.note(&format!("run {} has no failed tasks", rec.run_id));
            return Ok(Exit::Ok);
        }
        rec.finished_at = None;
        rec.cancel_requested = false;
        store.save(&rec)?;
        target.saved(&rec, true).await?;
        ui.note(&format!("run {}: retrying {n} failed tasks", rec.run_id));
        rec
    };
    go_on(&store, rec, args.detach, ui).await
}

#[derive(Serialize)]
struct Submitted {
    run_id: String,
    job: String,
    target: String,
    tasks: usize,
    concurrency: usize,
    image: String,
}

impl Submitted {
    fn of(rec: &RunRecord) -> Submitted {
        Submitted {
            run_id: rec.run_id.clone(),
            job: rec.job.clone(),
            target: rec.target.clone(),
            tasks: rec.tasks.len(),
            concurrency: rec.settings.concurrency,
            image: rec.image.reference.clone(),
        }
    }
}

impl fmt::Display for Submitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "run {}: {} tasks of {} on {} (at most {} at a time)",
            self.run_id, self.tasks, self.image, self.target, self.concurrency
        )
    }
}

/// Watches until the run is finished, or detaches on Ctrl-C and leaves a background driver.
async fn attach(store: &Store, target: &mut Target, run_id: &str, ui: &Ui) -> Result<Exit> {
    let opts = WatchOptions {
        poll: poll_interval(),
        detach_on_ctrl_c: true,
    };
    match watch::watch(store, target, run_id, ui, &opts).await? {
        Ended::Finished(rec) => {
            watch::print_summary(ui, &rec);
            Ok(if rec.all_succeeded() {
                Exit::Ok
            } else {
                Exit::TasksFailed
            })
        }
        Ended::Detached => {
            spawn_background(store, run_id)?;
            ui.note(&format!(
                "detached; the run goes on in the background. Re-attach with: jobrun watch {run_id}"
            ));
            Ok(Exit::Detached)
        }
    }
}

/// Starts `jobrun watch RUN --background` in its own process group, so the run keeps moving
/// (queued tasks start, finished ones are collected) without a terminal.
fn spawn_background(store: &Store, run_id: &str) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::env(format!("cannot find the jobrun executable: {e}")))?;
    let log_path = store.driver_log(run_id);
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Failure::env(format!("cannot write {}: {e}", log_path.display())))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Failure::env(format!("cannot write {}: {e}", log_path.display())))?;
    std::process::Command::new(exe)
        .args(["watch", run_id, "--background"])
        .env("JOBRUN_STATE_DIR", store_root_for_child())
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| Failure::env(format!("cannot start the background driver: {e}")))?;
    Ok(())
}

fn store_root_for_child() -> std::path::PathBuf {
    std::path::absolute(Store::default_root()).unwrap_or_else(|_| Store::default_root())
}

async fn watch_cmd(file: Option<&std::path::Path>, args: WatchArgs, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let rec = resolve(&store, file, &args.run).await?;
    if args.background {
        let mut target = Target::for_run(&rec).await?;
        let opts = WatchOptions {
            poll: poll_interval(),
            detach_on_ctrl_c: false,
        };
        watch::watch(&store, &mut target, &rec.run_id, &Ui::quiet(), &opts).await?;
        return Ok(Exit::Ok);
    }
    if rec.is_finished() && rec.finished_at.is_some() {
        // One more pass removes anything a crash left between saving the outcome and the
        // cleanup; the summary does not depend on it.
        match Target::for_run(&rec).await {
            Ok(mut target) => {
                if let Err(e) = watch::step(&store, &mut target, &rec.run_id).await {
                    tracing::warn!("cleaning up after run {}: {e}", rec.run_id);
                }
            }
            Err(e) => tracing::warn!("cleaning up after run {}: {e}", rec.run_id),
        }
        watch::print_summary(ui, &rec);
        return Ok(if rec.all_succeeded() {
            Exit::Ok
        } else {
            Exit::TasksFailed
        });
    }
    let mut target = Target::for_run(&rec).await?;
    attach(&store, &mut target, &rec.run_id, ui).await
}

async fn cancel(file: Option<&std::path::Path>, args: RunArg, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let rec = resolve(&store, file, &args).await?;
    let mut target = Target::for_run(&rec).await?;
    {
        let _lock = store.lock(&rec.run_id)?;
        let mut rec = store.load(&rec.run_id)?;
        if rec.is_finished() {
            already_finished(&rec, ui);
            return Ok(Exit::Ok);
        }
        rec.cancel_requested = true;
        store.save(&rec)?;
        target.saved(&rec, true).await?;
    }
    ui.note(&format!("cancelling run {}", rec.run_id));
    let opts = WatchOptions {
        poll: poll_interval(),
        detach_on_ctrl_c: false,
    };
    if let Ended::Finished(rec) =
        watch::watch(&store, &mut target, &rec.run_id, &Ui::quiet(), &opts).await?
    {
        watch::print_summary(ui, &rec);
    }
    Ok(Exit::Ok)
}

fn runs(file: Option<&std::path::Path>, args: RunsArgs, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let job = if args.all {
        None
    } else {
        current_job_name(file)
    };
    let mut records: Vec<RunRecord> = store
        .list()?
        .iter()
        .filter_map(|id| store.load(id).ok())
        .filter(|r| job.as_ref().is_none_or(|j| *j == r.job))
        .collect();
    records.sort_by(|a, b| (b.created_at, &b.run_id).cmp(&(a.created_at, &a.run_id)));
    let mut lines = vec![];
    for rec in records.into_iter().take(args.limit) {
        let s = RunStatus::of(&rec);
        lines.push(RunLine {
            run_id: s.run_id,
            job: s.job,
            target: s.target,
            state: s.state,
            total: s.total,
            succeeded: s.succeeded,
            failed: s.failed,
            created_at: s.created_at,
        });
    }
    ui.emit(&RunList(lines));
    Ok(Exit::Ok)
}

async fn logs(file: Option<&std::path::Path>, args: LogsArgs) -> Result<Exit> {
    let store = open_store()?;
    let rec = resolve(&store, file, &args.run).await?;
    if let Some(i) = args.index.filter(|i| *i >= rec.tasks.len()) {
        return Err(
            Failure::usage(format!("run {} has no task {i}", rec.run_id))
                .hint(format!("indexes go from 0 to {}", rec.tasks.len() - 1)),
        );
    }
    let target = Target::for_run(&rec).await?;
    let mut stdout = std::io::stdout();
    match args.index {
        Some(i) => target.logs(&rec, i, args.follow, &mut stdout).await?,
        None => {
            use std::io::Write;
            for t in &rec.tasks {
                let mut buf = Vec::new();
                target.logs(&rec, t.index, false, &mut buf).await?;
                for line in String::from_utf8_lossy(&buf).lines() {
                    let _ = writeln!(stdout, "[{}] {line}", t.index);
                }
            }
        }
    }
    Ok(Exit::Ok)
}

/// `jobrun config`: the resolved job as JSON (text output pretty-prints it).
#[derive(Serialize)]
#[serde(transparent)]
struct JobView(Job);

impl fmt::Display for JobView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            serde_json::to_string_pretty(&self.0).map_err(|_| fmt::Error)?
        )
    }
}

//! `up` and `down`: the job's AWS side, converged from the latest pushed image and removed again.
//! `converge` is the one "latest push → agent → up → remember the outputs" sequence, used by
//! `up` and by `submit --build`.

use super::common::{load_aws, load_job, open_store};
use crate::aws::Aws;
use crate::cli::{DownArgs, IamPolicyArgs, UpArgs};
use crate::config::{Job, Overrides};
use crate::engine::Engine;
use crate::error::{Exit, Failure, Result};
use crate::image::dispatcher as bundle;
use crate::image::push::push_image;
use crate::image::records::ImageRecords;
use crate::infra::UpReport;
use crate::infra::dispatcher::DispatcherImage;
use crate::store::Store;
use crate::ui::Ui;
use clap::ArgMatches;
use std::path::Path;

pub async fn up(
    file: Option<&Path>,
    args: &UpArgs,
    sub: Option<&ArgMatches>,
    ui: &Ui,
) -> Result<Exit> {
    let job = load_job(file, &args.overrides, sub)?;
    let store = open_store()?;
    let aws = load_aws(&job).await?;
    let report = converge(&job, &aws, &store, args.dry_run, ui).await?;
    ui.emit(&report);
    Ok(Exit::Ok)
}

/// Converges the job's AWS side for its latest pushed image (which must be of the job's
/// platform) and, unless it is a dry run, remembers what was made.
pub async fn converge(
    job: &Job,
    aws: &Aws,
    store: &Store,
    dry_run: bool,
    ui: &Ui,
) -> Result<UpReport> {
    let records = ImageRecords::load(store, &job.name)?;
    let (image, agent) = match records.latest_push() {
        Some((img, push))
            if crate::config::Platform::parse(&img.platform).ok() != Some(job.image.platform) =>
        {
            return Err(Failure::usage(format!(
                "the last pushed image ({}) is {}, but the job's platform is {}",
                push.reference, img.platform, job.image.platform
            ))
            .hint("jobrun build --push, for the job's platform"));
        }
        Some((img, push)) => (Some(push.reference.clone()), img.agent.clone()),
        None => (None, None),
    };
    let mut report = crate::infra::up(job, aws, image, agent, dry_run).await?;
    if job.ecs.driver == crate::config::Driver::Aws {
        let (service, changes) = driver(job, aws, store, &report.outputs, dry_run, ui).await?;
        report.outputs.driver = Some(service);
        report.changes.extend(changes);
    }
    if !dry_run {
        crate::state::save_outputs(store, &job.name, &report.outputs)?;
    }
    Ok(report)
}

/// The driver in AWS (`[ecs] driver = "aws"`): the dispatcher's image built and pushed, its
/// role, task definition and service converged (the role and task definition a schedule runs
/// too).
async fn driver(
    job: &Job,
    aws: &Aws,
    store: &Store,
    outputs: &crate::infra::Outputs,
    dry_run: bool,
    ui: &Ui,
) -> Result<(String, Vec<crate::infra::Change>)> {
    let image = match dry_run {
        true => planned_dispatcher_image(job, store, ui).await?,
        false => dispatcher_image(job, store, false, ui).await?.0,
    };
    let dispatcher = crate::infra::dispatcher::converge_driver(job, aws, outputs, &image, dry_run);
    Ok(dispatcher.await?)
}

/// What `up --dry-run` says of the dispatcher's image without making it (a dry run builds and
/// pushes nothing, and needs no Docker engine): where its jobrun comes from and how it starts.
async fn planned_dispatcher_image(job: &Job, store: &Store, ui: &Ui) -> Result<DispatcherImage> {
    let arch = crate::config::Platform::host().arch;
    use crate::image::agent::{Needs, find};
    let jobrun = find(&job.image.agent, arch, Needs::Dispatch, store, ui).await?;
    Ok(DispatcherImage {
        reference: format!("{}:dispatcher-… (to be built and pushed)", job.name),
        planned: true,
        entry: jobrun.info.entry,
        arch,
    })
}

/// jobrun's own image for the job's dispatcher and driver (`FROM scratch` and the in-AWS
/// jobrun), built, and pushed to the job's registry unless `dry_run`.
pub(super) async fn dispatcher_image(
    job: &Job,
    store: &Store,
    dry_run: bool,
    ui: &Ui,
) -> Result<(DispatcherImage, bundle::Built)> {
    let engine = Engine::connect().await?;
    let built = bundle::build(job, &engine, store, ui).await?;
    let reference = match dry_run {
        true => format!("{}:{} (to be pushed)", job.name, built.tag),
        false => {
            let tags = [built.tag.clone()];
            let opts = registry_access(job);
            let sent = push_image(job, &engine, store, &opts, ui, &built.image_id, &tags).await?;
            sent.reference()
        }
    };
    let image = DispatcherImage {
        reference,
        planned: false,
        entry: built.agent.entry.clone(),
        arch: built.platform.arch,
    };
    Ok((image, built))
}

/// `jobrun iam-policy`: what the caller needs, for the job's names in this account and region.
pub async fn iam_policy(file: Option<&Path>, args: &IamPolicyArgs, ui: &Ui) -> Result<Exit> {
    let job = load_job(file, &Overrides::default(), None)?;
    let aws = load_aws(&job).await?;
    let needs = match args.needs.as_slice() {
        [] => crate::infra::caller::Needs::ALL.to_vec(),
        some => some.to_vec(),
    };
    let policy = crate::infra::caller_policy(&job, &aws, &needs).await?;
    ui.emit(&policy);
    if policy.size > crate::infra::MANAGED_POLICY_LIMIT {
        ui.note(&format!(
            "{} characters: more than one customer-managed policy takes ({}); attach it as several, e.g. --for push,up / --for run,down / --for schedule",
            policy.size,
            crate::infra::MANAGED_POLICY_LIMIT
        ));
    }
    Ok(Exit::Ok)
}

pub async fn down(file: Option<&Path>, args: &DownArgs, ui: &Ui) -> Result<Exit> {
    use std::io::IsTerminal;
    let job = load_job(file, &Overrides::default(), None)?;
    if !args.yes && !std::io::stdin().is_terminal() {
        return Err(
            Failure::usage("down deletes resources and there is no terminal to ask")
                .hint("run it with --yes"),
        );
    }
    let aws = load_aws(&job).await?;
    let yes = args.yes;
    let report = crate::infra::down(&job, &aws, |changes| yes || confirm(changes)).await?;
    // What `up` made is gone: no aws.json may claim it (a submit then says to run `up`).
    crate::state::forget_outputs(&super::common::open_store()?, &job.name)?;
    ui.emit(&report);
    Ok(Exit::Ok)
}

/// Shows what `down` would delete and asks on the terminal.
fn confirm(changes: &[crate::infra::Change]) -> bool {
    let plan = crate::infra::DownReport {
        changes: changes.to_vec(),
    };
    eprintln!("{plan}");
    eprint!("delete the resources marked delete? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && answer.trim().eq_ignore_ascii_case("y")
}

/// Pushing and reading the job's registry for the dispatcher's image (a schedule's, the
/// driver's): the command's AWS access, an existing repository left as it is.
pub(super) fn registry_access(job: &Job) -> crate::image::push::AwsOptions {
    crate::image::push::AwsOptions {
        access: super::common::access(job),
        update_repository: false,
    }
}

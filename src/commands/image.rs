//! `build`, `push` and `images`: the job's image, built with the Docker engine, pushed by digest,
//! and recorded with the job (`jobs/<job>/images.json`) so `up` and `submit` use exactly it.

use super::common::{access, load_job, open_store};
use crate::cli::{BuildArgs, PushArgs, RepositoryArgs};
use crate::config::{Job, Overrides};
use crate::engine::Engine;
use crate::error::{Exit, Failure, Result};
use crate::image::{self, records::ImageRecords};
use crate::store::Store;
use crate::ui::Ui;
use clap::ArgMatches;
use std::path::Path;

pub async fn build(
    file: Option<&Path>,
    args: &BuildArgs,
    sub: Option<&ArgMatches>,
    ui: &Ui,
) -> Result<Exit> {
    let job = load_job(file, &args.overrides, sub)?;
    let store = open_store()?;
    let engine = Engine::connect().await?;
    let built = build_and_record(&job, &engine, &store, ui).await?;
    if args.push {
        ui.note(&built.to_string());
        let pushed = push_latest(&job, &engine, &store, &args.aws, ui).await?;
        ui.emit(&pushed);
    } else {
        ui.emit(&built);
    }
    Ok(Exit::Ok)
}

pub async fn push(
    file: Option<&Path>,
    args: &PushArgs,
    sub: Option<&ArgMatches>,
    ui: &Ui,
) -> Result<Exit> {
    let job = load_job(file, &args.overrides, sub)?;
    let store = open_store()?;
    let engine = Engine::connect().await?;
    let pushed = push_latest(&job, &engine, &store, &args.aws, ui).await?;
    ui.emit(&pushed);
    Ok(Exit::Ok)
}

pub fn images(file: Option<&Path>, ui: &Ui) -> Result<Exit> {
    let job = load_job(file, &Overrides::default(), None)?;
    let store = open_store()?;
    ui.emit(&ImageRecords::load(&store, &job.name)?);
    Ok(Exit::Ok)
}

/// `jobrun agent-image REF --amd64 FILE|self --arm64 FILE|self`: the release's agent image.
pub async fn agent_image(args: &crate::cli::AgentImageArgs, ui: &Ui) -> Result<Exit> {
    use crate::image::agent;
    let mut agents = vec![];
    for (arch, given) in [
        (agent::Arch::Amd64, &args.amd64),
        (agent::Arch::Arm64, &args.arm64),
    ] {
        let Some(given) = given else { continue };
        let found = match given.as_str() {
            "self" => agent::this(arch).map_err(|why| image::ImageError::BadAgent {
                what: "this jobrun".into(),
                why,
            })?,
            path => agent::from_file(Path::new(path), arch)?,
        };
        agents.push(found);
    }
    if agents.is_empty() {
        return Err(
            Failure::usage("agent-image needs --amd64 or --arm64 (or both)").hint(
                "e.g. jobrun agent-image REGISTRY/jobrun-agent:VERSION --amd64 FILE --arm64 FILE",
            ),
        );
    }
    let published = agent::pull::publish(&args.reference, &agents).await?;
    ui.emit(&published);
    Ok(Exit::Ok)
}

/// Builds the image and records it with the job.
pub async fn build_and_record(
    job: &Job,
    engine: &Engine,
    store: &Store,
    ui: &Ui,
) -> Result<image::Built> {
    let built = image::build(job, engine, store, ui).await?;
    let mut records = ImageRecords::load(store, &job.name)?;
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

/// Pushes the job's latest build (and records the push).
pub async fn push_latest(
    job: &Job,
    engine: &Engine,
    store: &Store,
    aws: &RepositoryArgs,
    ui: &Ui,
) -> Result<image::push::Pushed> {
    let opts = image::push::AwsOptions {
        access: access(job),
        update_repository: aws.update_repository,
    };
    Ok(image::push::push(job, engine, store, &opts, ui).await?)
}

//! The image: the pre-build command, the context tar, the build through the engine, the tags.
//!
//! Images are tagged `<job>:latest` and `<job>:<short image id>`; the image id is the engine's
//! content hash of the image (config + layers), so an unchanged build gets the same tag.

pub mod agent;
pub mod context;
pub mod dispatcher;
pub mod dockerignore;
pub mod ecr;
pub mod keep;
pub mod push;
pub mod records;

use crate::config::Job;
use crate::engine::{Engine, EngineError, LABEL_JOB};
use crate::ui::Ui;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("Dockerfile not found: {0}")]
    DockerfileMissing(PathBuf),
    #[error(transparent)]
    Context(#[from] context::ContextError),
    #[error("pre-build command `{command}` could not start: {source}")]
    PreBuildSpawn {
        command: String,
        source: std::io::Error,
    },
    #[error("pre-build command `{command}` failed ({status})")]
    PreBuild {
        command: String,
        status: String,
        /// The shell's exit code (127: a program it runs was not found).
        code: Option<i32>,
    },
    #[error("build failed at {step}: {message}")]
    Step { step: String, message: String },
    #[error(
        "the base image {image} is not in the local engine and its registry cannot be reached ({message})"
    )]
    BaseUnreachable { image: String, message: String },
    #[error("image {0} has not been built")]
    NotBuilt(String),
    #[error("the image was built for {got}, not for {wanted}")]
    WrongPlatform { wanted: String, got: String },
    #[error("no jobrun for linux/{arch} to put into the image ({})", tried.join("; "))]
    NoAgent {
        arch: crate::config::Arch,
        tried: Vec<String>,
    },
    #[error("{what} cannot be the jobrun in the image: {why}")]
    BadAgent { what: String, why: String },
    #[error("cannot pull the agent image {reference}: {source}")]
    AgentImage {
        reference: String,
        source: crate::registry::RegistryError,
    },
    #[error("cannot read the agent binary {path}: {source}")]
    AgentBinary {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The jobrun an image carries (`jobrun task` for direct mode, `jobrun agent` for queue mode),
/// how it is started, and the image's own entrypoint and command (what it runs for each task).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct AgentLayer {
    /// Where jobrun is in the image.
    pub path: String,
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Which jobrun it is and where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<agent::AgentInfo>,
}

impl AgentLayer {
    /// The argv that starts the image's jobrun: its own entry (images built before jobrun
    /// described itself: `[path]`).
    pub fn start(&self) -> Vec<String> {
        match &self.agent {
            Some(info) if !info.entry.is_empty() => info.entry.clone(),
            _ => vec![self.path.clone()],
        }
    }
}

/// The label an image's jobrun is described by (JSON of [`agent::AgentInfo`]).
const LABEL_AGENT: &str = "jobrun.agent.info";

/// The agent an image carries, read from its labels and config.
pub fn agent_of(inspect: &bollard::models::ImageInspect) -> Option<AgentLayer> {
    let config = inspect.config.as_ref()?;
    let labels = config.labels.as_ref()?;
    let path = labels.get("jobrun.agent")?.clone();
    let info: Option<agent::AgentInfo> = labels
        .get(LABEL_AGENT)
        .and_then(|j| serde_json::from_str(j).ok());
    Some(AgentLayer {
        path,
        entrypoint: config.entrypoint.clone().unwrap_or_default(),
        cmd: config.cmd.clone().unwrap_or_default(),
        agent: info,
    })
}

/// Where the agent lives in job images.
pub const AGENT_PATH: &str = agent::BINARY;

/// What a build produced, for humans (`Display`) and scripts (`Serialize`).
#[derive(Debug, Serialize)]
pub struct Built {
    pub job: String,
    pub image_id: String,
    pub tags: Vec<String>,
    pub platform: String,
    pub size_bytes: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentLayer>,
}

impl std::fmt::Display for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "built {} ({}, {}, {:.1} MB)",
            self.tags.join(", "),
            short_id(&self.image_id),
            self.platform,
            self.size_bytes as f64 / 1e6
        )?;
        if let Some(info) = self.agent.as_ref().and_then(|a| a.agent.as_ref()) {
            write!(f, "; in-AWS jobrun: {info}")?;
        }
        Ok(())
    }
}

pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

pub fn latest_tag(job: &str) -> String {
    format!("{job}:latest")
}

/// Checks what can be checked without the engine: the Dockerfile and `.dockerignore`.
pub fn preflight(job: &Job) -> Result<(), ImageError> {
    if !job.image.dockerfile.is_file() {
        return Err(ImageError::DockerfileMissing(job.image.dockerfile.clone()));
    }
    context::Context::scan(&job.image.context, &job.image.dockerfile)?;
    Ok(())
}

/// Runs the pre-build command (if any), then builds and tags the image.
pub async fn build(
    job: &Job,
    engine: &Engine,
    store: &crate::store::Store,
    ui: &Ui,
) -> Result<Built, ImageError> {
    preflight(job)?;
    // Found before the build, so a job that cannot have one fails before minutes of building.
    let jobrun = in_image_jobrun(job, store, ui).await?;
    if let Some(command) = &job.image.pre_build {
        pre_build(job, command, ui)?;
    }
    let wanted = job.image.platform.to_string();
    // The classic builder's cache does not key on the platform: after a build for another
    // platform it can hand back that platform's layers, and either the image comes out for the
    // wrong platform or a later step fails on a foreign-platform parent. Either way one build
    // without the cache is the answer.
    let first = match build_once(job, engine, ui, false).await {
        Ok(id) => {
            let inspect = inspect_id(engine, &id).await?;
            (platform_of(&inspect) == wanted).then_some((id, inspect))
        }
        Err(ImageError::Step { message, .. }) if is_platform_cache_miss(&message) => None,
        Err(e) => return Err(e),
    };
    let (image_id, inspect) = match first {
        Some(found) => found,
        None => {
            ui.note(&format!(
                "the build cache held layers of another platform; building again without the cache for {wanted}"
            ));
            let id = build_once(job, engine, ui, true).await?;
            let inspect = inspect_id(engine, &id).await?;
            (id, inspect)
        }
    };
    let got = platform_of(&inspect);
    if got != wanted {
        return Err(ImageError::WrongPlatform { wanted, got });
    }
    let (image_id, inspect, agent) = match jobrun {
        Some(jobrun) => {
            let config = inspect.config.as_ref();
            let layer = AgentLayer {
                path: AGENT_PATH.into(),
                entrypoint: config
                    .and_then(|c| c.entrypoint.clone())
                    .unwrap_or_default(),
                cmd: config.and_then(|c| c.cmd.clone()).unwrap_or_default(),
                agent: Some(jobrun.info.clone()),
            };
            let id = add_agent(job, engine, ui, &image_id, &jobrun).await?;
            let inspect = inspect_id(engine, &id).await?;
            (id, inspect, Some(layer))
        }
        None => (image_id, inspect, None),
    };
    let content_tag = short_id(&image_id).to_string();
    engine.tag_image(&image_id, &job.name, &content_tag).await?;
    engine.tag_image(&image_id, &job.name, "latest").await?;
    Ok(Built {
        job: job.name.clone(),
        tags: vec![format!("{}:{content_tag}", job.name), latest_tag(&job.name)],
        platform: got,
        size_bytes: inspect.size.unwrap_or(0),
        image_id,
        agent,
    })
}

/// The jobrun to put in an ECS job's image: queue workers are jobrun, and direct mode's tasks
/// keep their outputs through it, so an ECS image without one is refused unless the job says
/// `[run] outputs = false` (direct mode). Local jobs need none.
async fn in_image_jobrun(
    job: &Job,
    store: &crate::store::Store,
    ui: &Ui,
) -> Result<Option<agent::Agent>, ImageError> {
    use crate::config::{DispatchMode, TargetKind};
    if job.target != TargetKind::Ecs {
        return Ok(None);
    }
    if job.ecs.mode == DispatchMode::Direct && !job.run.outputs {
        return Ok(None);
    }
    let found = agent::find(
        &job.image.agent,
        job.image.platform.arch,
        agent::Needs::Tasks,
        store,
        ui,
    )
    .await?;
    tracing::info!("the image's jobrun: {}", found.info);
    Ok(Some(found))
}

/// Adds jobrun to a built image as one more layer (`COPY`, which needs no emulation for a
/// foreign architecture); the image's entrypoint and command are left as they were.
async fn add_agent(
    job: &Job,
    engine: &Engine,
    ui: &Ui,
    base: &str,
    jobrun: &agent::Agent,
) -> Result<String, ImageError> {
    let info = serde_json::to_string(&jobrun.info).expect("serialisable");
    let dockerfile = format!(
        "FROM {base}\nCOPY root/ /\nLABEL jobrun.agent={AGENT_PATH} {LABEL_AGENT}={}\n",
        serde_json::to_string(&info).expect("serialisable")
    );
    let mut files = vec![("Dockerfile".to_string(), dockerfile.into_bytes(), 0o644)];
    files.extend(jobrun.context_files("root/"));
    let body = tar_of(files).map_err(|source| ImageError::AgentBinary {
        path: AGENT_PATH.into(),
        source,
    })?;
    let what = format!("adding jobrun ({})", jobrun.info.source);
    let platform = job.image.platform.to_string();
    build_small(job, engine, ui, body, &platform, (&what, "adding jobrun")).await
}

/// A build context of a few files held in memory: (path, bytes, mode).
fn tar_of(files: Vec<(String, Vec<u8>, u32)>) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        tar.append_data(&mut header, name, data.as_slice())?;
    }
    tar.into_inner()
}

/// Builds a context of jobrun's own (`Dockerfile` at its root) for `platform`, labelled with
/// the job; returns the image id. `(spinner, step)`: what the spinner says, and the step a
/// failure before the Dockerfile's first step is named by.
async fn build_small(
    job: &Job,
    engine: &Engine,
    ui: &Ui,
    body: Vec<u8>,
    platform: &str,
    (spinner, step): (&str, &str),
) -> Result<String, ImageError> {
    let labels = HashMap::from([(LABEL_JOB.to_string(), job.name.clone())]);
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .rm(true)
        .forcerm(true)
        .labels(&labels)
        .platform(platform)
        .build();
    let spinner = ui.spinner(spinner.to_string());
    let chunk: Result<bytes::Bytes, std::io::Error> = Ok(bytes::Bytes::from(body));
    let stream = engine.build(options, futures_util::stream::iter([chunk]));
    let result = follow(stream, &spinner, step, &job.name).await;
    spinner.finish();
    result
}

/// The engine's only signal for a cached parent of another platform is its message (the build
/// API has no error codes): "image with reference … was found but does not match the specified
/// platform".
fn is_platform_cache_miss(message: &str) -> bool {
    message.contains("does not match the specified platform")
}

/// `os/arch` of an image as the engine reports it.
pub fn platform_of(inspect: &bollard::models::ImageInspect) -> String {
    format!(
        "{}/{}",
        inspect.os.as_deref().unwrap_or("linux"),
        inspect.architecture.as_deref().unwrap_or("unknown")
    )
}

async fn inspect_id(
    engine: &Engine,
    id: &str,
) -> Result<bollard::models::ImageInspect, ImageError> {
    engine
        .inspect_image(id)
        .await?
        .ok_or_else(|| ImageError::NotBuilt(id.to_string()))
}

/// One build through the engine, untagged; returns the image id. Output is shown step by step
/// and a failure names its step.
async fn build_once(
    job: &Job,
    engine: &Engine,
    ui: &Ui,
    no_cache: bool,
) -> Result<String, ImageError> {
    let ctx = context::Context::scan(&job.image.context, &job.image.dockerfile)?;
    tracing::debug!(entries = ctx.entries().len(), "build context scanned");
    let labels = HashMap::from([(LABEL_JOB.to_string(), job.name.clone())]);
    let build_args: HashMap<String, String> = job.image.build_args.clone().into_iter().collect();
    let options = BuildImageOptionsBuilder::default()
        .dockerfile(&ctx.dockerfile_in_context)
        .rm(true)
        .forcerm(true)
        .nocache(no_cache)
        .buildargs(&build_args)
        .labels(&labels)
        .platform(&job.image.platform.to_string())
        .build();

    let spinner = ui.spinner(format!("building {} for {}", job.name, job.image.platform));
    let stream = engine.build(options, ctx.stream());
    let result = follow(stream, &spinner, "the start of the build", &job.name).await;
    spinner.finish();
    result
}

/// Follows a build's output to its image id, showing it line by line; a failure names the
/// step it happened in.
async fn follow(
    stream: impl futures_util::Stream<Item = Result<bollard::models::BuildInfo, EngineError>>,
    spinner: &crate::ui::Spinner,
    first_step: &str,
    job: &str,
) -> Result<String, ImageError> {
    let mut stream = Box::pin(stream);
    let mut step = first_step.to_string();
    let mut instruction = String::new();
    let mut image_id = None;
    loop {
        let Some(item) = stream.next().await else {
            return image_id.ok_or_else(|| ImageError::NotBuilt(job.to_string()));
        };
        let info = match item {
            Ok(info) => info,
            Err(EngineError::Build(
                bollard::errors::Error::DockerResponseServerError { message, .. }
                | bollard::errors::Error::DockerStreamError { error: message },
            )) => return Err(step_failed(step, &instruction, message)),
            Err(e) => return Err(e.into()),
        };
        if let Some(detail) = info.error_detail {
            let message = detail.message.unwrap_or_else(|| "unknown error".into());
            return Err(step_failed(step, &instruction, message));
        }
        if let Some(id) = info.aux.and_then(|aux| aux.id) {
            image_id = Some(id);
        }
        if let Some(text) = info.stream {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                if line.starts_with("Step ") {
                    step = line.split(" : ").next().unwrap_or(line).to_string();
                    instruction = line.split_once(" : ").map_or("", |x| x.1).to_string();
                }
                if let Some(short) = line.strip_prefix("Successfully built ") {
                    image_id.get_or_insert_with(|| short.trim().to_string());
                }
                spinner.line(line);
            }
        }
    }
}

/// A failed build step; a `FROM` whose image the engine lacks and cannot fetch (its registry
/// unreachable: the engine says why in Go's words — `dial tcp`, `no such host`, a timeout — and
/// gives no code) is told as that.
fn step_failed(step: String, instruction: &str, message: String) -> ImageError {
    let base = instruction
        .strip_prefix("FROM ")
        .or_else(|| instruction.strip_prefix("from "))
        .and_then(|rest| rest.split_whitespace().find(|w| !w.starts_with("--")));
    let unreachable = [
        "dial tcp",
        "no such host",
        "i/o timeout",
        "connection refused",
        "TLS handshake timeout",
        "network is unreachable",
    ]
    .iter()
    .any(|m| message.contains(m));
    match base {
        Some(image) if unreachable => ImageError::BaseUnreachable {
            image: image.to_string(),
            message,
        },
        _ => ImageError::Step { step, message },
    }
}

/// Runs `[image] pre_build` with `sh -c` in the job folder; its output goes to stderr.
/// `JOBRUN_TARGET_OS` / `JOBRUN_TARGET_ARCH` / `JOBRUN_PLATFORM` tell it what to compile for.
fn pre_build(job: &Job, command: &str, ui: &Ui) -> Result<(), ImageError> {
    ui.note(&format!("pre-build: {command}"));
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(&job.dir)
        .env("JOBRUN_TARGET_OS", crate::config::Platform::OS)
        .env("JOBRUN_TARGET_ARCH", job.image.platform.arch.docker())
        .env("JOBRUN_PLATFORM", job.image.platform.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|source| ImageError::PreBuildSpawn {
            command: command.into(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(ImageError::PreBuild {
            command: command.into(),
            status: status.to_string(),
            code: status.code(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect(labels: &[(&str, &str)]) -> bollard::models::ImageInspect {
        bollard::models::ImageInspect {
            config: Some(bollard::models::ImageConfig {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                entrypoint: Some(vec!["/bin/job".into()]),
                cmd: Some(vec!["--fast".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_agent_starts_as_its_own_info_says_or_by_its_path() {
        let info = agent::AgentInfo {
            arch: crate::config::Arch::Arm64,
            version: "0.1.0".into(),
            sha256: "sha256:ab".into(),
            entry: vec!["/opt/jobrun/lib/ld.so".into(), AGENT_PATH.into()],
            source: agent::Source::This { packed: true },
            slim: false,
        };
        let json = serde_json::to_string(&info).unwrap();
        let described = agent_of(&inspect(&[
            ("jobrun.agent", AGENT_PATH),
            (LABEL_AGENT, &json),
        ]))
        .unwrap();
        assert_eq!(described.start(), info.entry);
        assert_eq!(described.entrypoint, ["/bin/job"]);
        assert_eq!(described.cmd, ["--fast"]);
        assert_eq!(described.agent, Some(info));
        // An image built before jobrun described itself: started by its path.
        let older = agent_of(&inspect(&[("jobrun.agent", "/jobrun")])).unwrap();
        assert_eq!(older.start(), ["/jobrun"]);
        assert!(agent_of(&inspect(&[])).is_none());
    }
}

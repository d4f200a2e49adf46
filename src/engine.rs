//! The Docker engine, through bollard, with one typed error per operation (the shape of
//! testcontainers-rs `core/client.rs`). Everything that talks to the engine goes through here.

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ImageInspect,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, TagImageOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt};
use std::collections::HashMap;

/// Container labels jobrun sets; `watch` finds a run's containers by them.
pub const LABEL_RUN: &str = "jobrun.run";
pub const LABEL_JOB: &str = "jobrun.job";
pub const LABEL_INDEX: &str = "jobrun.index";
pub const LABEL_ATTEMPT: &str = "jobrun.attempt";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {host}: {source}")]
    Connect { host: String, source: BollardError },
    #[error("image build request failed: {0}")]
    Build(#[source] BollardError),
    #[error("cannot inspect image {image}: {source}")]
    InspectImage { image: String, source: BollardError },
    #[error("cannot tag image {image} as {tag}: {source}")]
    TagImage {
        image: String,
        tag: String,
        source: BollardError,
    },
    #[error("cannot export image {image}: {source}")]
    ExportImage { image: String, source: BollardError },
    #[error("cannot create container {name}: {source}")]
    CreateContainer { name: String, source: BollardError },
    #[error("cannot start container {name}: {source}")]
    StartContainer { name: String, source: BollardError },
    #[error("cannot list containers: {0}")]
    ListContainers(#[source] BollardError),
    #[error("cannot inspect container {name}: {source}")]
    InspectContainer { name: String, source: BollardError },
    #[error("cannot kill container {name}: {source}")]
    KillContainer { name: String, source: BollardError },
    #[error("cannot remove container {name}: {source}")]
    RemoveContainer { name: String, source: BollardError },
    #[error("cannot read the logs of container {name}: {source}")]
    Logs { name: String, source: BollardError },
    #[error("cannot ask the Docker engine what it has: {0}")]
    Info(#[source] BollardError),
}

impl EngineError {
    /// The container is not there (404), or is being removed (a start's 409): it vanished
    /// under jobrun — removed by hand or by a prune, or made by a killed jobrun whose create
    /// the engine was still finishing or undoing. Told by the HTTP status alone.
    pub fn container_gone(&self) -> bool {
        match self {
            EngineError::InspectContainer { source, .. } | EngineError::Logs { source, .. } => {
                status(source) == Some(404)
            }
            EngineError::StartContainer { source, .. } => matches!(status(source), Some(404 | 409)),
            _ => false,
        }
    }
}

fn status(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

/// `[resources] gpu = N`: N of the engine's GPUs, as `docker run --gpus N` asks for them (a
/// device request with the `gpu` capability; the engine's NVIDIA runtime picks the devices).
pub fn gpu_request(count: u32) -> Option<Vec<bollard::models::DeviceRequest>> {
    (count > 0).then(|| {
        vec![bollard::models::DeviceRequest {
            count: Some(i64::from(count)),
            capabilities: Some(vec![vec!["gpu".to_string()]]),
            ..Default::default()
        }]
    })
}

impl Engine {
    /// Connects the way the docker CLI does (`DOCKER_HOST`, else the local socket) and agrees on
    /// an API version, which also proves the engine is there.
    pub async fn connect() -> Result<Engine, EngineError> {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let docker = Docker::connect_with_defaults().map_err(|source| EngineError::Connect {
            host: host.clone(),
            source,
        })?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|source| EngineError::Connect {
                host: host.clone(),
                source,
            })?;
        Ok(Engine { docker })
    }

    /// The container runtimes the engine has (`runc`, and `nvidia` once the NVIDIA Container
    /// Toolkit registered itself: what `docker run --gpus` needs).
    pub async fn runtimes(&self) -> Result<Vec<String>, EngineError> {
        let info = self.docker.info().await.map_err(EngineError::Info)?;
        Ok(info.runtimes.unwrap_or_default().into_keys().collect())
    }

    pub fn build(
        &self,
        options: bollard::query_parameters::BuildImageOptions,
        tar: impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    ) -> impl Stream<Item = Result<bollard::models::BuildInfo, EngineError>> + '_ {
        self.docker
            .build_image(options, None, Some(bollard::body_try_stream(tar)))
            .map(|r| r.map_err(EngineError::Build))
    }

    /// `None` when there is no such image.
    pub async fn inspect_image(&self, image: &str) -> Result<Option<ImageInspect>, EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(Some(i)),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(source) => Err(EngineError::InspectImage {
                image: image.into(),
                source,
            }),
        }
    }

    pub async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let opts = TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(tag)
            .build();
        self.docker
            .tag_image(image, Some(opts))
            .await
            .map_err(|source| EngineError::TagImage {
                image: image.into(),
                tag: format!("{repo}:{tag}"),
                source,
            })
    }

    /// Creates a named container. A container of that name already there is not an error: an
    /// earlier attempt to start the same task got that far before jobrun was stopped (its
    /// create may even be under way still, so the start that follows can find no container).
    pub async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<(), EngineError> {
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        match self.docker.create_container(Some(opts), body).await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(409) => Ok(()),
            Err(source) => Err(EngineError::CreateContainer {
                name: name.into(),
                source,
            }),
        }
    }

    pub async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.start_container(name, None).await {
            // 304: already started.
            Err(e) if status(&e) == Some(304) => Ok(()),
            r => r.map_err(|source| EngineError::StartContainer {
                name: name.into(),
                source,
            }),
        }
    }

    /// Every container (running or not) that carries `key=value`.
    pub async fn list_by_label(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<ContainerSummary>, EngineError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{key}={value}")])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(opts))
            .await
            .map_err(EngineError::ListContainers)
    }

    pub async fn inspect_container(
        &self,
        name: &str,
    ) -> Result<ContainerInspectResponse, EngineError> {
        self.docker
            .inspect_container(name, None)
            .await
            .map_err(|source| EngineError::InspectContainer {
                name: name.into(),
                source,
            })
    }

    /// SIGKILL; a container that is gone or already stopped is not an error.
    pub async fn kill_container(&self, name: &str) -> Result<(), EngineError> {
        let opts = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        match self.docker.kill_container(name, Some(opts)).await {
            Err(e) if matches!(status(&e), Some(404 | 409)) => Ok(()),
            r => r.map_err(|source| EngineError::KillContainer {
                name: name.into(),
                source,
            }),
        }
    }

    /// Force-removes; a container that is already gone is not an error.
    pub async fn remove_container(&self, name: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(name, Some(opts)).await {
            Err(e) if matches!(status(&e), Some(404)) => Ok(()),
            // 409: removal already in progress.
            Err(e) if matches!(status(&e), Some(409)) => Ok(()),
            r => r.map_err(|source| EngineError::RemoveContainer {
                name: name.into(),
                source,
            }),
        }
    }

    /// The container's stdout and stderr, as they were interleaved.
    pub fn logs(
        &self,
        name: &str,
        follow: bool,
    ) -> impl Stream<Item = Result<bytes::Bytes, EngineError>> + use<> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .build();
        let name = name.to_string();
        self.docker.logs(&name, Some(opts)).map(move |r| {
            r.map(|o| o.into_bytes())
                .map_err(|source| EngineError::Logs {
                    name: name.clone(),
                    source,
                })
        })
    }

    /// The image as a `docker save` tar stream.
    pub fn export_image(
        &self,
        image: &str,
    ) -> impl Stream<Item = Result<bytes::Bytes, EngineError>> + use<> {
        let image_name = image.to_string();
        self.docker.export_image(image).map(move |r| {
            r.map_err(|source| EngineError::ExportImage {
                image: image_name.clone(),
                source,
            })
        })
    }

    /// Resolves when the container is no longer running (or is gone). Errors only mean "look again".
    /// The engine's stats of a running container, about one a second, until it stops.
    pub fn stats(
        &self,
        name: &str,
    ) -> impl futures_util::Stream<Item = bollard::models::ContainerStatsResponse> + Send + 'static
    {
        let opts = bollard::query_parameters::StatsOptionsBuilder::default()
            .stream(true)
            .build();
        let s = self.docker.stats(name, Some(opts));
        s.take_while(|r| std::future::ready(r.is_ok()))
            .filter_map(|r| std::future::ready(r.ok()))
    }

    pub fn wait_container(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let docker = self.docker.clone();
        let name = name.to_string();
        async move {
            let opts = WaitContainerOptionsBuilder::default()
                .condition("not-running")
                .build();
            let mut s = docker.wait_container(&name, Some(opts));
            while s.next().await.is_some() {}
        }
    }
}

//! Pushing the job's image: read it out of the engine (`docker save` format), compress each
//! layer once (cached by its uncompressed digest), and upload through the registry API: layers
//! the registry already has are skipped and said so, transient failures are retried with
//! jittered exponential backoff, and the result is named by digest (`repo@sha256:…`).
//!
//! The image must be for the job's platform: an amd64 image is refused for an arm64 target
//! before anything is uploaded (Fargate would stop it with `exec format error`).

mod layers;

use super::records::{ImageRecords, PushRecord};
use super::{ImageError, short_id};
use crate::config::{Job, RegistrySpec};
use crate::engine::{Engine, EngineError};
use crate::registry::{Compression, Registry, RegistryError, dockercfg};
use crate::store::Store;
use crate::ui::Ui;
use backon::{ExponentialBuilder, Retryable};
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use layers::prepare_blobs;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("nowhere to push: the job has no registry")]
    NoRegistry,
    #[error("image {image} is {got} but the job's platform is {wanted}; it is not pushed")]
    PlatformMismatch {
        image: String,
        got: String,
        wanted: String,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Ecr(#[from] super::ecr::EcrError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("docker credentials: {0}")]
    Credentials(String),
    #[error("cannot read the image out of the engine: {0}")]
    Export(String),
    #[error("image {0} is not named by digest (host/repository@sha256:…)")]
    NotByDigest(String),
}

/// AWS settings from the command line.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub access: crate::aws::Access,
    /// Apply scan-on-push and the lifecycle policy to an ECR repository that already exists.
    pub update_repository: bool,
}

#[derive(Debug, Serialize)]
pub struct Pushed {
    pub image_id: String,
    pub platform: String,
    pub registry: String,
    pub repository: String,
    pub digest: String,
    pub reference: String,
    pub tags: Vec<String>,
    /// How the layers were compressed (gzip: a Docker v2 manifest; zstd: an OCI one).
    pub compression: Compression,
    pub layers_uploaded: usize,
    pub layers_skipped: usize,
    pub bytes_uploaded: u64,
    pub repository_created: bool,
}

impl std::fmt::Display for Pushed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pushed {} ({}, {}; tags {}; {} layer{} uploaded, {} already there, {:.1} MB sent)",
            self.reference,
            self.platform,
            self.compression,
            self.tags.join(", "),
            self.layers_uploaded,
            if self.layers_uploaded == 1 { "" } else { "s" },
            self.layers_skipped,
            self.bytes_uploaded as f64 / 1e6
        )
    }
}

/// Where the push goes, resolved (and for ECR, made to exist) before any upload.
pub(super) struct Destination {
    pub(super) registry: Registry,
    pub(super) repository: String,
    created: bool,
    /// The AWS access an ECR destination was reached with (none for other registries).
    pub(super) aws: Option<crate::aws::Aws>,
}

pub(super) async fn destination(
    job: &Job,
    store: &Store,
    aws: &AwsOptions,
    ui: &Ui,
) -> Result<Destination, PushError> {
    match &job.image.registry {
        RegistrySpec::None => Err(PushError::NoRegistry),
        RegistrySpec::Oci { host, namespace } => {
            let credentials = dockercfg::lookup(host).map_err(PushError::Credentials)?;
            let repository = if namespace.is_empty() {
                job.name.clone()
            } else {
                format!("{namespace}/{}", job.name)
            };
            Ok(Destination {
                registry: Registry::new(host, credentials),
                repository,
                created: false,
                aws: None,
            })
        }
        RegistrySpec::Ecr {
            repository_prefix,
            keep_images,
            scan_on_push,
            registry_endpoint,
        } => {
            let aws_ctx = aws.access.load().await?;
            let name = crate::config::ecr_repository_name(repository_prefix, &job.name);
            let repo = super::ecr::ensure_repository(
                &aws_ctx,
                &name,
                &job.name,
                *scan_on_push,
                *keep_images,
                aws.update_repository,
            )
            .await?;
            if repo.updated {
                ui.note(&format!(
                    "updated ECR repository {} (scan on push: {scan_on_push}, keeps {keep_images} images)",
                    repo.uri
                ));
            }
            if repo.created {
                ui.note(&format!(
                    "created ECR repository {} (scan on push, encrypted, keeps {keep_images} images)",
                    repo.uri
                ));
            }
            let login = super::ecr::login(&aws_ctx, store).await?;
            let host = registry_endpoint.clone().unwrap_or(login.endpoint.clone());
            Ok(Destination {
                registry: Registry::new(&host, Some(login.credentials())),
                repository: name,
                created: repo.created,
                aws: Some(aws_ctx),
            })
        }
    }
}

struct Blob {
    digest: String,
    size: u64,
    path: PathBuf,
    media_type: &'static str,
}

/// Pushes `<job>:latest`.
pub async fn push(
    job: &Job,
    engine: &Engine,
    store: &Store,
    aws: &AwsOptions,
    ui: &Ui,
) -> Result<Pushed, PushError> {
    let latest = super::latest_tag(&job.name);
    let inspect = engine
        .inspect_image(&latest)
        .await?
        .ok_or_else(|| ImageError::NotBuilt(latest.clone()))?;
    let image_id = inspect.id.clone().unwrap_or_default();
    let got = super::platform_of(&inspect);
    let wanted = job.image.platform.to_string();
    if got != wanted {
        return Err(PushError::PlatformMismatch {
            image: format!("{}:{}", job.name, short_id(&image_id)),
            got,
            wanted,
        });
    }
    let tags = tags_for(job, &image_id);
    let sent = push_image(job, engine, store, aws, ui, &image_id, &tags).await?;
    let (registry, repository, digest) = (sent.registry, sent.repository, sent.digest);
    let reference = format!("{registry}/{repository}@{digest}");
    let mut records = ImageRecords::load(store, &job.name)?;
    records.pushed(
        super::records::ImageRecord {
            image_id: image_id.clone(),
            tags: vec![latest.clone()],
            platform: wanted.clone(),
            size_bytes: inspect.size.unwrap_or(0),
            built_at: chrono::Utc::now(),
            pushes: vec![],
            agent: super::agent_of(&inspect),
        },
        PushRecord {
            registry: registry.clone(),
            repository: repository.clone(),
            digest: digest.clone(),
            reference: reference.clone(),
            tags: tags.clone(),
            pushed_at: chrono::Utc::now(),
            compression: job.image.compression,
        },
    );
    records.save(store, &job.name)?;
    Ok(Pushed {
        image_id,
        platform: wanted,
        registry,
        repository,
        digest,
        reference,
        tags,
        compression: job.image.compression,
        layers_uploaded: sent.uploaded,
        layers_skipped: sent.skipped,
        bytes_uploaded: sent.bytes,
        repository_created: sent.created,
    })
}

/// What one image's upload did.
pub struct Sent {
    pub registry: String,
    pub repository: String,
    pub digest: String,
    pub uploaded: usize,
    pub skipped: usize,
    pub bytes: u64,
    pub created: bool,
}

impl Sent {
    pub fn reference(&self) -> String {
        format!("{}/{}@{}", self.registry, self.repository, self.digest)
    }
}

/// Uploads an image of the engine to the job's repository under `tags`: the job's own
/// build, or jobrun's dispatcher image.
pub async fn push_image(
    job: &Job,
    engine: &Engine,
    store: &Store,
    aws: &AwsOptions,
    ui: &Ui,
    image_id: &str,
    tags: &[String],
) -> Result<Sent, PushError> {
    let dest = destination(job, store, aws, ui).await?;
    let compression = job.image.compression;
    let (_work, config, layers) =
        export_blobs(engine, store, image_id, &dest, compression, ui).await?;
    let registry = Arc::new(dest.registry);
    let (uploaded, skipped, bytes) =
        upload_blobs(&registry, &dest.repository, &config, &layers, ui).await?;
    let manifest = Manifest {
        compression,
        config: &config,
        layers: &layers,
    };
    let digest = put_manifests(&registry, &dest.repository, tags, &manifest).await?;
    Ok(Sent {
        registry: registry.host().to_string(),
        repository: dest.repository,
        digest,
        uploaded,
        skipped,
        bytes,
        created: dest.created,
    })
}

/// Reads the image out of the engine (`docker save` format) and prepares its blobs (compressed
/// layers from the cache where they are there already). The folder returned holds the export.
async fn export_blobs(
    engine: &Engine,
    store: &Store,
    image_id: &str,
    dest: &Destination,
    compression: Compression,
    ui: &Ui,
) -> Result<(tempfile::TempDir, Blob, Vec<Blob>), PushError> {
    let preparing = ui.spinner(format!(
        "preparing {} ({compression}) for {}/{}",
        short_id(image_id),
        dest.registry.host(),
        dest.repository
    ));
    let work =
        tempfile::tempdir_in(store_tmp(store)?).map_err(|e| PushError::Export(e.to_string()))?;
    let saved = work.path().join("image.tar");
    {
        let mut file =
            std::fs::File::create(&saved).map_err(|e| PushError::Export(e.to_string()))?;
        let mut stream = Box::pin(engine.export_image(image_id));
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?)
                .map_err(|e| PushError::Export(e.to_string()))?;
        }
    }
    let blob_dir = store.blob_dir();
    let (config, layers) =
        tokio::task::spawn_blocking(move || prepare_blobs(&saved, &blob_dir, compression))
            .await
            .map_err(|e| PushError::Export(e.to_string()))?
            .map_err(PushError::Export)?;
    preparing.finish();

    Ok((work, config, layers))
}

/// Uploads the layers (three at a time), then the config; returns (uploaded, skipped, bytes).
async fn upload_blobs(
    registry: &Arc<Registry>,
    repository: &str,
    config: &Blob,
    layers: &[Blob],
    ui: &Ui,
) -> Result<(usize, usize, u64), PushError> {
    let progress = Progress::new(ui);
    let mut uploaded = 0;
    let mut skipped = 0;
    let mut bytes = 0;
    // Layers in parallel (three at a time), then the config.
    let results: Vec<Result<bool, RegistryError>> = futures_util::stream::iter(layers.iter())
        .map(|blob| push_blob(registry.clone(), repository.to_string(), blob, &progress))
        .buffered(3)
        .collect()
        .await;
    for (blob, r) in layers.iter().zip(results) {
        if r? {
            uploaded += 1;
            bytes += blob.size;
        } else {
            skipped += 1;
        }
    }
    if push_blob(registry.clone(), repository.to_string(), config, &progress).await? {
        bytes += config.size;
    }
    progress.finish();

    Ok((uploaded, skipped, bytes))
}

/// An image's manifest: a Docker v2 one for gzip layers, an OCI image manifest for zstd ones
/// (the OCI image spec's manifest, whose layers may be `tar+zstd`:
/// https://github.com/opencontainers/image-spec/blob/main/manifest.md).
struct Manifest<'a> {
    compression: Compression,
    config: &'a Blob,
    layers: &'a [Blob],
}

impl Manifest<'_> {
    fn media_type(&self) -> &'static str {
        self.compression.manifest_type()
    }

    fn to_bytes(&self) -> Vec<u8> {
        let descriptor = |b: &Blob| serde_json::json!({ "mediaType": b.media_type, "size": b.size, "digest": b.digest });
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": self.media_type(),
            "config": descriptor(self.config),
            "layers": self.layers.iter().map(descriptor).collect::<Vec<_>>(),
        }))
        .expect("manifest serialises")
    }
}

/// Puts the manifest under every tag; returns its digest.
async fn put_manifests(
    registry: &Registry,
    repository: &str,
    tags: &[String],
    manifest: &Manifest<'_>,
) -> Result<String, PushError> {
    let (bytes, media_type) = (manifest.to_bytes(), manifest.media_type());
    let mut digest = String::new();
    for tag in tags {
        let put = || async {
            registry
                .put_manifest(repository, tag, media_type, &bytes)
                .await
        };
        digest = put
            .retry(backoff())
            .when(RegistryError::is_transient)
            .await?;
    }

    Ok(digest)
}

fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(4)
        .with_jitter()
}

fn store_tmp(store: &Store) -> Result<PathBuf, PushError> {
    let dir = store.blob_dir().join("tmp");
    std::fs::create_dir_all(&dir)
        .map_err(|e| PushError::Export(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

/// The content tag (short image id) and, in a git work tree, the commit (`-dirty` when the
/// tree has changes).
fn tags_for(job: &Job, image_id: &str) -> Vec<String> {
    let mut tags = vec![short_id(image_id).to_string()];
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(&job.dir)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(sha) = git(&["rev-parse", "--short", "HEAD"]).filter(|s| !s.is_empty()) {
        let dirty = git(&["status", "--porcelain", "--", "."]).is_some_and(|s| !s.is_empty());
        tags.push(if dirty {
            format!("git-{sha}-dirty")
        } else {
            format!("git-{sha}")
        });
    }
    tags
}

/// Uploads one blob unless the registry has it; true when it was uploaded.
async fn push_blob(
    registry: Arc<Registry>,
    repo: String,
    blob: &Blob,
    progress: &Progress,
) -> Result<bool, RegistryError> {
    let bar = progress.layer(blob);
    let exists = (|| async { registry.blob_exists(&repo, &blob.digest).await })
        .retry(backoff())
        .when(RegistryError::is_transient)
        .await?;
    if exists {
        progress.done(&bar, blob, false);
        return Ok(false);
    }
    let upload = || {
        let bar = bar.clone();
        let registry = registry.clone();
        let repo = repo.clone();
        async move {
            registry
                .upload_blob(&repo, &blob.digest, &blob.path, move |n| {
                    if let Some(b) = &bar {
                        b.set_position(n);
                    }
                })
                .await
        }
    };
    upload
        .retry(backoff())
        .when(RegistryError::is_transient)
        .await?;
    progress.done(&bar, blob, true);
    Ok(true)
}

/// Per-layer bars (bytes and rate) on a terminal; one line per layer otherwise.
struct Progress {
    multi: Option<MultiProgress>,
    quiet: bool,
}

impl Progress {
    fn new(ui: &Ui) -> Progress {
        Progress {
            multi: ui
                .tty
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8))),
            quiet: ui.quiet,
        }
    }

    fn label(blob: &Blob) -> String {
        let config = [Compression::Gzip, Compression::Zstd].map(Compression::config_type);
        let kind = if config.contains(&blob.media_type) {
            "config"
        } else {
            "layer"
        };
        format!("{kind} {}", short_id(&blob.digest))
    }

    fn layer(&self, blob: &Blob) -> Option<ProgressBar> {
        let multi = self.multi.as_ref()?;
        let bar = multi.add(ProgressBar::new(blob.size));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:<20} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {msg}",
            )
            .expect("template"),
        );
        bar.set_prefix(Self::label(blob));
        Some(bar)
    }

    fn done(&self, bar: &Option<ProgressBar>, blob: &Blob, uploaded: bool) {
        let what = if uploaded {
            "uploaded"
        } else {
            "already exists"
        };
        match bar {
            Some(b) => {
                if !uploaded {
                    b.set_position(blob.size);
                }
                b.finish_with_message(what);
            }
            None if !self.quiet => eprintln!(
                "{} ({:.1} MB): {what}",
                Self::label(blob),
                blob.size as f64 / 1e6
            ),
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

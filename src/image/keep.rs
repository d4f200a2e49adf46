//! What a schedule pinned stays in the job's ECR repository. `schedule add` fixes two images —
//! the job's image as `up` registered it and the dispatcher image — and every fire pulls them,
//! weeks later; ECR's lifecycle policy would expire them after `keep_images` newer pushes, and
//! the fire would stop with CannotPullContainerError after RunTask succeeded (nothing retries
//! or dead-letters that). So both get a `jobrun-keep-<schedule>` tag, which jobrun's lifecycle
//! policy never expires (`ecr::lifecycle_policy`), `schedule rm` takes it off, and
//! `schedule list` checks the images are still there.
//!
//! A run on ECS is the same in small: its tasks pull the image until the last one starts, and a
//! retry starts some again, so `submit` (and `retry`) tag it `jobrun-keep-run-<run>` and the
//! watcher that sees the run end takes the tag off (`hold`, `unhold`).

use super::ecr::{self, KEEP_PREFIX, Keeping};
use super::push::{AwsOptions, PushError, destination};
use crate::config::{Job, RegistrySpec};
use crate::registry::{self, Registry, RegistryError};
use crate::store::Store;
use crate::ui::Ui;

/// The manifest types jobrun pushes (and the agent image's index).
const MANIFESTS: [&str; 4] = [
    registry::MANIFEST_V2,
    registry::OCI_MANIFEST,
    registry::OCI_INDEX,
    registry::MANIFEST_LIST_V2,
];

/// A schedule's keep tags: its job image's, then its dispatcher image's.
pub fn tags(schedule: &str) -> [String; 2] {
    [
        format!("{KEEP_PREFIX}{schedule}"),
        format!("{KEEP_PREFIX}{schedule}-dispatcher"),
    ]
}

/// A run's keep tag (`started_by`: ≤ 36 characters of [A-Za-z0-9_-], see `dispatch::ecs`).
pub fn run_tag(started_by: &str) -> String {
    format!("{KEEP_PREFIX}run-{started_by}")
}

/// `host/repository@sha256:…` as (host, repository, digest).
fn parts(reference: &str) -> Option<(&str, &str, &str)> {
    let (name, digest) = reference.split_once('@')?;
    let (host, repository) = name.split_once('/')?;
    Some((host, repository, digest))
}

/// Tags each pinned image (reference by digest, tag) in the job's ECR repository — the
/// registry API's manifest PUT under one more tag, which ECR takes as PutImage (ECR User
/// Guide, "Retagging an image") — and makes sure the repository's policy keeps them. Images of
/// another repository, and registries other than ECR (no lifecycle policy of jobrun's), are
/// left alone: `None`.
pub async fn pin(
    job: &Job,
    store: &Store,
    aws: &AwsOptions,
    ui: &Ui,
    pins: &[(&str, String)],
) -> Result<Option<Keeping>, PushError> {
    if !matches!(job.image.registry, RegistrySpec::Ecr { .. }) {
        return Ok(None);
    }
    let dest = destination(job, store, aws, ui).await?;
    for (reference, tag) in pins {
        let Some((_, repository, digest)) = parts(reference) else {
            continue;
        };
        if repository != dest.repository {
            continue;
        }
        let got = dest
            .registry
            .get_manifest(repository, digest, &MANIFESTS)
            .await?;
        dest.registry
            .put_manifest(repository, tag, &got.media_type, &got.body)
            .await?;
    }
    let aws = dest
        .aws
        .as_ref()
        .expect("an ECR destination keeps its AWS access");
    Ok(Some(ecr::keep_pinned(aws, &dest.repository).await?))
}

/// Tags a run's image (`reference` by digest, in the job's ECR repository) with its keep tag and
/// makes sure the repository's policy keeps it. Needs no jobrun.toml: the record names the
/// image, and the ECR login is the run's AWS access's.
pub async fn hold(
    aws: &crate::aws::Aws,
    store: &Store,
    reference: &str,
    tag: &str,
) -> Result<Keeping, PushError> {
    let (host, repository, digest) =
        parts(reference).ok_or_else(|| PushError::NotByDigest(reference.to_string()))?;
    let login = ecr::login(aws, store).await?;
    let registry = Registry::new(host, Some(login.credentials()));
    let got = registry
        .get_manifest(repository, digest, &MANIFESTS)
        .await?;
    registry
        .put_manifest(repository, tag, &got.media_type, &got.body)
        .await?;
    Ok(ecr::keep_pinned(aws, repository).await?)
}

/// Takes a run's keep tag off its image again (BatchDeleteImage by tag; see `ecr::release`).
pub async fn unhold(aws: &crate::aws::Aws, reference: &str, tag: &str) -> Result<(), PushError> {
    let (_, repository, _) =
        parts(reference).ok_or_else(|| PushError::NotByDigest(reference.to_string()))?;
    ecr::release(aws, repository, &[tag.to_string()]).await?;
    Ok(())
}

/// Takes a removed schedule's keep tags off (ECR only).
pub async fn release(job: &Job, aws: &AwsOptions, schedule: &str) -> Result<(), PushError> {
    let RegistrySpec::Ecr {
        repository_prefix, ..
    } = &job.image.registry
    else {
        return Ok(());
    };
    let name = crate::config::ecr_repository_name(repository_prefix, &job.name);
    ecr::release(&aws.access.load().await?, &name, &tags(schedule)).await?;
    Ok(())
}

/// Of `references` (by digest), those the registry no longer has. Only reads: an ECR login
/// (GetAuthorizationToken) and manifest GETs; a missing image is the registry's 404
/// (MANIFEST_UNKNOWN, distribution spec; ECR answers the same).
pub async fn gone(
    job: &Job,
    store: &Store,
    aws: &AwsOptions,
    references: &[&str],
) -> Result<Vec<String>, PushError> {
    let mut missing = vec![];
    // One login per registry, however many references it holds.
    let mut registries: std::collections::HashMap<&str, Registry> = Default::default();
    for reference in references {
        let Some((host, repository, digest)) = parts(reference) else {
            continue;
        };
        if !registries.contains_key(host) {
            registries.insert(host, registry_for(job, store, aws, host).await?);
        }
        let registry = &registries[host];
        match registry.get_manifest(repository, digest, &MANIFESTS).await {
            Ok(_) => {}
            Err(RegistryError::Status { status: 404, .. }) => missing.push(reference.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(missing)
}

/// The registry at `host` with the job's credentials for it: the ECR login, or the Docker
/// configuration's.
async fn registry_for(
    job: &Job,
    store: &Store,
    aws: &AwsOptions,
    host: &str,
) -> Result<Registry, PushError> {
    let credentials = match &job.image.registry {
        RegistrySpec::Ecr { .. } => {
            let login = ecr::login(&aws.access.load().await?, store).await?;
            Some(login.credentials())
        }
        _ => crate::registry::dockercfg::lookup(host).map_err(PushError::Credentials)?,
    };
    Ok(Registry::new(host, credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_tags_are_valid_registry_tags_for_the_longest_schedule_name() {
        let name = "a".repeat(40);
        for tag in tags(&name) {
            // The distribution spec's tag grammar: [\w][\w.-]{0,127}.
            assert!(tag.len() <= 128 && tag.starts_with(KEEP_PREFIX), "{tag}");
            assert!(
                tag.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            );
        }
    }

    #[test]
    fn a_run_keep_tag_is_a_valid_registry_tag_and_kept_by_the_policy() {
        let tag = run_tag(&"r".repeat(36));
        assert!(tag.len() <= 128 && tag.starts_with(KEEP_PREFIX), "{tag}");
    }

    #[test]
    fn a_reference_by_digest_splits_into_host_repository_and_digest() {
        assert_eq!(
            parts("127.0.0.1:5000/jobs/wc@sha256:ab"),
            Some(("127.0.0.1:5000", "jobs/wc", "sha256:ab"))
        );
        assert_eq!(parts("wc:latest"), None);
    }
}

//! The agent image: jobrun's in-AWS binary for each architecture, published as one
//! multi-architecture OCI image (an image index with a linux/amd64 and a linux/arm64
//! manifest, each of one layer holding `opt/jobrun/…`, the config's entrypoint starting it).
//! `pull` takes the entry for one architecture, by the digest of its manifest; `publish` makes
//! the index from agents found as `build` finds them (the release recipe, and the tests).
//! The layout is the OCI image spec's (image-spec: image-index.md, manifest.md, config.md);
//! the registry calls are the distribution spec's.

use super::{Agent, AgentInfo, Arch, InImage, Source};
use crate::image::ImageError;
use crate::registry::{self, Registry};
use std::io::Read;

/// `host[:port]/repository[:tag]` or `…@sha256:…`; the host is required (there is no
/// default registry).
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub host: String,
    pub repository: String,
    /// A tag or a digest.
    pub reference: String,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, String> {
        let (name, reference) = match s.split_once('@') {
            Some((n, d)) => (n, d.to_string()),
            None => match s.rsplit_once(':') {
                Some((n, t)) if !t.contains('/') => (n, t.to_string()),
                _ => (s, "latest".to_string()),
            },
        };
        let (host, repository) = name
            .split_once('/')
            .filter(|(h, r)| {
                (h.contains('.') || h.contains(':') || *h == "localhost") && !r.is_empty()
            })
            .ok_or_else(|| {
                format!("`{s}` does not name a registry host (host[:port]/repository[:tag])")
            })?;
        if reference.is_empty() {
            return Err(format!("`{s}` has an empty tag"));
        }
        Ok(Reference {
            host: host.to_string(),
            repository: repository.to_string(),
            reference,
        })
    }
}

fn registry_for(r: &Reference) -> Registry {
    let credentials = registry::dockercfg::lookup(&r.host).ok().flatten();
    Registry::new(&r.host, credentials)
}

fn bad(reference: &str, why: impl Into<String>) -> ImageError {
    ImageError::BadAgent {
        what: format!("the agent image {reference}"),
        why: why.into(),
    }
}

fn pulling(reference: &str) -> impl Fn(registry::RegistryError) -> ImageError + '_ {
    move |source| ImageError::AgentImage {
        reference: reference.to_string(),
        source,
    }
}

/// The jobrun for `arch` from an agent image.
pub async fn pull(reference: &str, arch: Arch, ui: &crate::ui::Ui) -> Result<Agent, ImageError> {
    let r = Reference::parse(reference).map_err(|why| bad(reference, why))?;
    let reg = registry_for(&r);
    let spinner = ui.spinner(format!(
        "pulling the jobrun agent for {arch} from {reference}"
    ));
    let result = pull_from(&reg, &r, reference, arch).await;
    spinner.finish();
    result
}

async fn pull_from(
    reg: &Registry,
    r: &Reference,
    reference: &str,
    arch: Arch,
) -> Result<Agent, ImageError> {
    let accept = [
        registry::OCI_INDEX,
        registry::MANIFEST_LIST_V2,
        registry::OCI_MANIFEST,
        registry::MANIFEST_V2,
    ];
    let repo = &r.repository;
    let top = reg
        .get_manifest(repo, &r.reference, &accept)
        .await
        .map_err(pulling(reference))?;
    let top_json: serde_json::Value =
        serde_json::from_slice(&top.body).map_err(|e| bad(reference, e.to_string()))?;
    let is_index = [registry::OCI_INDEX, registry::MANIFEST_LIST_V2]
        .iter()
        .any(|t| top.media_type.starts_with(t));
    let entries = top_json.get("manifests").and_then(|m| m.as_array());
    let manifest = match entries.filter(|_| is_index || top.media_type.is_empty()) {
        Some(entries) => {
            let digest = entries
                .iter()
                .find(|m| {
                    m["platform"]["os"] == "linux" && m["platform"]["architecture"] == arch.docker()
                })
                .and_then(|m| m["digest"].as_str())
                .ok_or_else(|| bad(reference, format!("it has no linux/{arch} entry")))?;
            reg.get_manifest(repo, digest, &accept[2..])
                .await
                .map_err(pulling(reference))?
        }
        None => top,
    };
    let m: serde_json::Value =
        serde_json::from_slice(&manifest.body).map_err(|e| bad(reference, e.to_string()))?;
    let config_digest = m["config"]["digest"]
        .as_str()
        .ok_or_else(|| bad(reference, "its manifest has no config"))?;
    let config = reg
        .get_blob(repo, config_digest)
        .await
        .map_err(pulling(reference))?;
    let config: serde_json::Value =
        serde_json::from_slice(&config).map_err(|e| bad(reference, e.to_string()))?;
    if config["architecture"] != arch.docker() || config["os"] != "linux" {
        return Err(bad(
            reference,
            format!(
                "its entry for {arch} is an image for {}/{}",
                config["os"], config["architecture"]
            ),
        ));
    }
    let entry: Vec<String> = serde_json::from_value(config["config"]["Entrypoint"].clone())
        .map_err(|_| bad(reference, "its config has no entrypoint"))?;
    let mut files = vec![];
    for layer in m["layers"].as_array().into_iter().flatten() {
        let digest = layer["digest"].as_str().unwrap_or_default();
        let media = layer["mediaType"].as_str().unwrap_or_default();
        let blob = reg
            .get_blob(repo, digest)
            .await
            .map_err(pulling(reference))?;
        let tar = match media {
            m if m.ends_with("gzip") => {
                let mut out = vec![];
                flate2::read::GzDecoder::new(blob.as_slice())
                    .read_to_end(&mut out)
                    .map_err(|e| bad(reference, format!("layer {digest}: {e}")))?;
                out
            }
            m if m.ends_with("zstd") => zstd::decode_all(blob.as_slice())
                .map_err(|e| bad(reference, format!("layer {digest}: {e}")))?,
            m if m.ends_with(".tar") => blob,
            other => return Err(bad(reference, format!("layer type {other} is not read"))),
        };
        files.extend(untar(&tar).map_err(|e| bad(reference, e.to_string()))?);
    }
    agent_of(files, entry, arch, reference, &manifest.digest)
}

/// The agent a pulled image holds: its jobrun checked as any other, its entry one of its files.
fn agent_of(
    files: Vec<InImage>,
    entry: Vec<String>,
    arch: Arch,
    reference: &str,
    digest: &str,
) -> Result<Agent, ImageError> {
    let binary = files
        .iter()
        .find(|f| f.path == super::BINARY)
        .ok_or_else(|| bad(reference, format!("it has no {}", super::BINARY)))?;
    let packed = entry.len() > 1;
    let mark = super::check(&binary.bytes, arch, packed).map_err(|why| bad(reference, why))?;
    if !entry
        .first()
        .is_some_and(|e| files.iter().any(|f| &f.path == e))
    {
        return Err(bad(
            reference,
            format!("its entrypoint {entry:?} is not one of its files"),
        ));
    }
    let info = AgentInfo {
        arch,
        version: mark.version,
        slim: mark.slim,
        sha256: registry::sha256_digest(&binary.bytes),
        entry,
        source: Source::Image {
            reference: reference.to_string(),
            digest: digest.to_string(),
        },
    };
    Ok(Agent { info, files })
}

/// The regular files of a layer tar below `opt/jobrun/`, with their absolute paths.
pub fn untar(tar: &[u8]) -> std::io::Result<Vec<InImage>> {
    let mut archive = tar::Archive::new(tar);
    let mut out = vec![];
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let path = path.trim_start_matches('/');
        if !path.starts_with("opt/jobrun/") {
            continue;
        }
        let mode = entry.header().mode().unwrap_or(0o755);
        let mut bytes = vec![];
        entry.read_to_end(&mut bytes)?;
        out.push(InImage {
            path: format!("/{path}"),
            bytes,
            mode,
        });
    }
    Ok(out)
}

/// What `publish` made.
#[derive(Debug, serde::Serialize)]
pub struct Published {
    pub reference: String,
    pub index_digest: String,
    pub manifests: Vec<(Arch, String)>,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "published {} ({})", self.reference, self.index_digest)?;
        for (arch, digest) in &self.manifests {
            writeln!(f, "  linux/{arch}: {digest}")?;
        }
        Ok(())
    }
}

/// Uploads a blob unless the registry has it (through a temporary file: the upload streams
/// from disk).
async fn put_blob(
    reg: &Registry,
    repo: &str,
    bytes: &[u8],
    what: &str,
) -> Result<String, ImageError> {
    let digest = registry::sha256_digest(bytes);
    let err = pulling(what);
    if reg.blob_exists(repo, &digest).await.map_err(&err)? {
        return Ok(digest);
    }
    let tmp = tempfile::NamedTempFile::new().map_err(|source| ImageError::AgentBinary {
        path: std::env::temp_dir(),
        source,
    })?;
    std::fs::write(tmp.path(), bytes).map_err(|source| ImageError::AgentBinary {
        path: tmp.path().to_path_buf(),
        source,
    })?;
    reg.upload_blob(repo, &digest, tmp.path(), |_| {})
        .await
        .map_err(&err)?;
    Ok(digest)
}

/// Publishes `agents` (one per architecture) as one multi-architecture image at `reference`.
pub async fn publish(reference: &str, agents: &[Agent]) -> Result<Published, ImageError> {
    let r = Reference::parse(reference).map_err(|why| bad(reference, why))?;
    let reg = registry_for(&r);
    let repo = &r.repository;
    let mut entries = vec![];
    let mut manifests = vec![];
    for agent in agents {
        let tar = crate::image::tar_of(agent.context_files("")).map_err(|source| {
            ImageError::AgentBinary {
                path: "agent layer".into(),
                source,
            }
        })?;
        let diff_id = registry::sha256_digest(&tar);
        let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar).expect("writing to memory");
        let layer = gz.finish().expect("writing to memory");
        let labels = serde_json::json!({
            "jobrun.agent": serde_json::to_string(&agent.info).expect("serialisable"),
        });
        let config = serde_json::json!({
            "architecture": agent.info.arch,
            "os": "linux",
            "config": {"Entrypoint": agent.info.entry, "Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        let config = serde_json::to_vec(&config).expect("serialisable");
        let config_digest = put_blob(&reg, repo, &config, reference).await?;
        let layer_digest = put_blob(&reg, repo, &layer, reference).await?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": registry::OCI_MANIFEST,
            "config": {"mediaType": registry::OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": registry::OCI_LAYER_GZIP, "digest": layer_digest, "size": layer.len()}],
        });
        let body = serde_json::to_vec(&manifest).expect("serialisable");
        let digest = registry::sha256_digest(&body);
        reg.put_manifest(repo, &digest, registry::OCI_MANIFEST, &body)
            .await
            .map_err(pulling(reference))?;
        entries.push(serde_json::json!({
            "mediaType": registry::OCI_MANIFEST,
            "digest": digest,
            "size": body.len(),
            "platform": {"architecture": agent.info.arch, "os": "linux"},
        }));
        manifests.push((agent.info.arch, digest));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": registry::OCI_INDEX,
        "manifests": entries,
    });
    let body = serde_json::to_vec(&index).expect("serialisable");
    let index_digest = reg
        .put_manifest(repo, &r.reference, registry::OCI_INDEX, &body)
        .await
        .map_err(pulling(reference))?;
    Ok(Published {
        reference: reference.to_string(),
        index_digest,
        manifests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_host_and_a_tag_or_digest() {
        let r = Reference::parse("127.0.0.1:5000/jobrun-agent:0.1.0").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.reference.as_str()),
            ("127.0.0.1:5000", "jobrun-agent", "0.1.0")
        );
        let r = Reference::parse("public.ecr.aws/jobrun/agent@sha256:ab").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.reference.as_str()),
            ("jobrun/agent", "sha256:ab")
        );
        let r = Reference::parse("localhost/agent").unwrap();
        assert_eq!(r.reference, "latest");
        assert!(Reference::parse("jobrun/agent:1").is_err(), "no host");
        assert!(Reference::parse("agent").is_err());
    }

    #[test]
    fn a_layer_tar_gives_its_jobrun_files_only() {
        let tar = crate::image::tar_of(vec![
            ("opt/jobrun/jobrun".into(), b"bin".to_vec(), 0o755),
            ("opt/jobrun/lib/libc.so.6".into(), b"lib".to_vec(), 0o755),
            ("etc/passwd".into(), b"x".to_vec(), 0o644),
        ])
        .unwrap();
        let files = untar(&tar).unwrap();
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["/opt/jobrun/jobrun", "/opt/jobrun/lib/libc.so.6"]);
        assert_eq!(files[0].mode, 0o755);
    }
}

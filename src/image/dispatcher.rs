//! The schedules' dispatcher image (a Fargate task that runs `jobrun dispatch`): `FROM
//! scratch` and the same in-AWS jobrun that job images get (`agent.rs`: a static jobrun, an
//! agent image's, or this one packed with its loader), for the host's architecture. It needs
//! nothing else: the CA roots are in the binary (`tls.rs`), and `JOBRUN_SELF` says how to
//! start jobrun again (the background driver) when it is started through a packed loader.

use super::agent::{self, AgentInfo};
use super::{ImageError, build_small, tar_of};
use crate::config::Job;
use crate::engine::Engine;
use crate::ui::Ui;

/// The dispatcher's image as built.
pub struct Built {
    pub image_id: String,
    pub tag: String,
    pub platform: crate::config::Platform,
    /// What jobrun (and its libraries) take in the image.
    pub bytes: u64,
    /// The jobrun in it (its `entry` is how the image starts).
    pub agent: AgentInfo,
}

/// The build context: a Dockerfile and the agent's files.
fn context(jobrun: &agent::Agent) -> std::io::Result<Vec<u8>> {
    let entry = serde_json::to_string(&jobrun.info.entry).expect("strings");
    let this = jobrun.info.entry.join(" ");
    let info = serde_json::to_string(&jobrun.info).expect("serialisable");
    let dockerfile = format!(
        "FROM scratch\nCOPY root/ /\nENV JOBRUN_STATE_DIR=/tmp/jobrun JOBRUN_SELF=\"{this}\"\nENTRYPOINT {entry}\nLABEL jobrun.dispatcher={version} jobrun.agent.info={info}\n",
        version = env!("CARGO_PKG_VERSION"),
        info = serde_json::to_string(&info).expect("serialisable"),
    );
    let mut files = vec![("Dockerfile".to_string(), dockerfile.into_bytes(), 0o644)];
    files.extend(jobrun.context_files("root/"));
    files.push(("root/tmp/.keep".to_string(), vec![], 0o644));
    tar_of(files)
}

/// Builds the dispatcher's image for the host's architecture, tagged `<job>:dispatcher-<id>`.
pub async fn build(
    job: &Job,
    engine: &Engine,
    store: &crate::store::Store,
    ui: &Ui,
) -> Result<Built, ImageError> {
    let platform = crate::config::Platform::host();
    let jobrun = agent::find(
        &job.image.agent,
        platform.arch,
        agent::Needs::Dispatch,
        store,
        ui,
    )
    .await?;
    let body = context(&jobrun).map_err(|source| ImageError::AgentBinary {
        path: agent::BINARY.into(),
        source,
    })?;
    let what = (
        "building the dispatcher's image (jobrun)",
        "the dispatcher's image",
    );
    let image_id = build_small(job, engine, ui, body, &platform.to_string(), what).await?;
    let tag = format!("dispatcher-{}", super::short_id(&image_id));
    engine.tag_image(&image_id, &job.name, &tag).await?;
    Ok(Built {
        image_id,
        tag,
        platform,
        bytes: jobrun.size(),
        agent: jobrun.info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_is_scratch_the_agent_and_a_tmp() {
        let jobrun = agent::Agent {
            info: AgentInfo {
                arch: agent::Arch::Amd64,
                version: "0.1.0".into(),
                sha256: "sha256:ab".into(),
                entry: vec![
                    "/opt/jobrun/lib/ld.so".into(),
                    "--library-path".into(),
                    "/opt/jobrun/lib".into(),
                    agent::BINARY.into(),
                ],
                source: agent::Source::This { packed: true },
                slim: false,
            },
            files: vec![agent::InImage {
                path: agent::BINARY.into(),
                bytes: b"x".to_vec(),
                mode: 0o755,
            }],
        };
        let tar = context(&jobrun).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut names = vec![];
        let mut dockerfile = String::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            if name == "Dockerfile" {
                std::io::Read::read_to_string(&mut e, &mut dockerfile).unwrap();
            }
            names.push(name);
        }
        assert_eq!(
            names,
            ["Dockerfile", "root/opt/jobrun/jobrun", "root/tmp/.keep"]
        );
        assert!(dockerfile.starts_with("FROM scratch\n"), "{dockerfile}");
        assert!(
            dockerfile.contains(r#"ENTRYPOINT ["/opt/jobrun/lib/ld.so","--library-path","/opt/jobrun/lib","/opt/jobrun/jobrun"]"#),
            "{dockerfile}"
        );
        assert!(
            dockerfile.contains("JOBRUN_SELF=\"/opt/jobrun/lib/ld.so --library-path"),
            "{dockerfile}"
        );
        assert!(
            !dockerfile.contains("SSL_CERT_FILE"),
            "the roots are in the binary"
        );
    }
}

//! The jobrun that runs inside AWS — `jobrun task` (direct mode's entrypoint), `jobrun agent`
//! (queue workers) and `jobrun dispatch` (the schedules' dispatcher) — and where `jobrun build`
//! finds one for an image's architecture. It must start in any Linux image (`FROM scratch`,
//! busybox, Alpine, Debian) and never be a binary of another OS or architecture, or every task
//! of the job fails to start; and it must speak the wire format (`wire.rs`) of the jobrun that
//! dispatches. Sources, in order:
//!
//! 1. `[image] agent = { amd64 = "PATH", arm64 = "PATH" }`: a static Linux jobrun per
//!    architecture (air-gapped users; `just agent-arm64` builds one);
//! 2. the agent image — `[image] agent = "REF"`, else `JOBRUN_AGENT_IMAGE`, else
//!    [`DEFAULT_IMAGE`], jobrun's own version — first from the cache in the state folder
//!    (`agents/<version>-<arch>/`), else pulled for the platform and cached, recorded by the
//!    digest of the platform's manifest;
//! 3. on a Linux host of the image's architecture, the slim agent beside this jobrun
//!    (`jobrun-agent` in the same folder: a release archive's, or a source tree's
//!    `target/<profile>/`), packed with this jobrun's loader and libraries when it is linked
//!    dynamically (`packed.rs`);
//! 4. on a Linux host of the image's architecture, this very jobrun, packed likewise.
//!
//! The slim agent (`jobrun-agent`, its mark says `role=agent`) runs tasks and queue workers
//! only: for the schedules' dispatcher and the driver ([`Needs::Dispatch`]) a source that gives
//! one is passed over, and the agent image to pull is [`DEFAULT_DISPATCHER_IMAGE`] (the full
//! jobrun) unless the job names one.
//!
//! Each binary is read before it is used: ELF for Linux of the right architecture, static (or
//! packed), and carrying a mark (`wire::MARK`) with this jobrun's wire format. When no source has one, the
//! build fails and says what each source answered.

pub mod elf;
pub mod packed;
pub mod pull;

use super::ImageError;
pub use crate::config::Arch;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where jobrun is in every image it is put into.
pub const BINARY: &str = "/opt/jobrun/jobrun";

/// The multi-architecture agent image of this version that the release publishes: the slim
/// agent, for job images.
pub const DEFAULT_IMAGE: &str = concat!("public.ecr.aws/jobrun/agent:", env!("CARGO_PKG_VERSION"));

/// The release's image of the full jobrun, for the dispatcher's image.
pub const DEFAULT_DISPATCHER_IMAGE: &str =
    concat!("public.ecr.aws/jobrun/jobrun:", env!("CARGO_PKG_VERSION"));

/// The slim agent's file name, beside this jobrun.
pub const AGENT_FILE: &str = "jobrun-agent";

/// What the in-image jobrun will run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A job's tasks (`jobrun task`) or queue workers (`jobrun agent`): the slim agent will do.
    Tasks,
    /// The schedules' dispatcher and the driver: the full jobrun.
    Dispatch,
}

/// Where an in-image jobrun came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// `[image] agent.<arch>`.
    File { path: PathBuf },
    /// An agent image, by the digest of its manifest for the architecture.
    Image { reference: String, digest: String },
    /// The slim agent beside the jobrun that ran `build`.
    Beside { packed: bool },
    /// The jobrun that ran `build`: static, or packed with its loader and libraries.
    This { packed: bool },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File { path } => write!(f, "file {}", path.display()),
            Source::Image { reference, digest } => {
                let name = reference.split(['@']).next().unwrap_or(reference);
                let name = name.rsplit_once(':').filter(|(_, t)| !t.contains('/'));
                let name = name.map(|(n, _)| n).unwrap_or(reference);
                write!(f, "agent image {name}@{digest}")
            }
            Source::Beside { packed: false } => {
                write!(f, "the {AGENT_FILE} beside this jobrun (static)")
            }
            Source::Beside { packed: true } => write!(
                f,
                "the {AGENT_FILE} beside this jobrun, packed with its loader and libraries"
            ),
            Source::This { packed: false } => write!(f, "this jobrun (static)"),
            Source::This { packed: true } => {
                write!(f, "this jobrun, packed with its loader and libraries")
            }
        }
    }
}

/// What is known of an in-image jobrun: kept in the image's label, `images.json` and (as
/// `record::AgentUsed`) every ECS run's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentInfo {
    pub arch: Arch,
    pub version: String,
    /// Of the jobrun binary itself.
    pub sha256: String,
    /// The argv that starts it in the image.
    pub entry: Vec<String>,
    pub source: Source,
    /// The slim agent (`jobrun-agent`): tasks and queue workers only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub slim: bool,
}

impl AgentInfo {
    pub fn used(&self) -> crate::record::AgentUsed {
        crate::record::AgentUsed {
            version: self.version.clone(),
            arch: self.arch.to_string(),
            sha256: self.sha256.clone(),
            source: self.source.to_string(),
        }
    }
}

impl std::fmt::Display for AgentInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = if self.slim { AGENT_FILE } else { "jobrun" };
        write!(
            f,
            "{name} {} for {} ({}), from {}",
            self.version,
            self.arch,
            super::short_id(&self.sha256),
            self.source
        )
    }
}

/// A file that goes into the image: absolute path, bytes, mode.
#[derive(Debug, Clone)]
pub struct InImage {
    pub path: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// An in-image jobrun with its files.
#[derive(Debug, Clone)]
pub struct Agent {
    pub info: AgentInfo,
    pub files: Vec<InImage>,
}

/// `[image] agent` as the job says it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AgentSpec {
    /// Nothing said: the agent image, then this jobrun.
    #[default]
    Default,
    /// An agent image reference to pull.
    Image(String),
    /// Static jobruns by architecture.
    Files(std::collections::BTreeMap<Arch, PathBuf>),
}

impl AgentSpec {
    pub fn is_default(&self) -> bool {
        *self == AgentSpec::Default
    }
}

/// The agent image to take when the job names none: `JOBRUN_AGENT_IMAGE` (empty: none), else
/// [`DEFAULT_IMAGE`]; for the dispatcher `JOBRUN_DISPATCHER_IMAGE`, else
/// [`DEFAULT_DISPATCHER_IMAGE`] (an empty `JOBRUN_AGENT_IMAGE` turns both off).
pub fn default_image(needs: Needs) -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_string());
    let agent = var("JOBRUN_AGENT_IMAGE");
    let (named, default) = match needs {
        Needs::Tasks => (agent.clone(), DEFAULT_IMAGE),
        Needs::Dispatch => (var("JOBRUN_DISPATCHER_IMAGE"), DEFAULT_DISPATCHER_IMAGE),
    };
    match (named, agent) {
        (Some(v), _) if v.is_empty() => None,
        (Some(v), _) => Some(v),
        (None, Some(a)) if a.is_empty() => None,
        (None, _) => Some(default.to_string()),
    }
}

/// Finds the jobrun for an image of `arch`, in the order of the module's header.
pub async fn find(
    spec: &AgentSpec,
    arch: Arch,
    needs: Needs,
    store: &Store,
    ui: &crate::ui::Ui,
) -> Result<Agent, ImageError> {
    let mut tried = vec![];
    let fits = |agent: Agent, tried: &mut Vec<String>| match (needs, agent.info.slim) {
        (Needs::Dispatch, true) => {
            tried.push(format!(
                "{}: the slim agent runs tasks, not the dispatcher",
                agent.info
            ));
            None
        }
        _ => Some(agent),
    };
    if let AgentSpec::Files(files) = spec {
        match files.get(&arch) {
            Some(path) => {
                if let Some(agent) = fits(from_file(path, arch)?, &mut tried) {
                    return Ok(agent);
                }
            }
            None => tried.push(format!("[image] agent names no file for {arch}")),
        }
    }
    let (reference, named) = match spec {
        AgentSpec::Image(r) => (Some(r.clone()), true),
        _ => (default_image(needs), false),
    };
    match reference {
        Some(reference) => match pulled(&reference, arch, store, ui).await {
            Ok(agent) => {
                if let Some(agent) = fits(agent, &mut tried) {
                    return Ok(agent);
                }
            }
            Err(e) if !named => tried.push(format!("the agent image {reference}: {e}")),
            Err(e) => return Err(e),
        },
        None => tried.push("no agent image (JOBRUN_AGENT_IMAGE is empty)".into()),
    }
    if needs == Needs::Tasks {
        match beside(arch) {
            Ok(agent) => return Ok(agent),
            Err(why) => tried.push(why),
        }
    }
    this(arch).map_err(|why| {
        tried.push(why);
        ImageError::NoAgent { arch, tried }
    })
}

/// An agent image's jobrun for `arch`: from the cache, else pulled and cached.
async fn pulled(
    reference: &str,
    arch: Arch,
    store: &Store,
    ui: &crate::ui::Ui,
) -> Result<Agent, ImageError> {
    if let Some(agent) = cache::load(store, arch, reference) {
        return Ok(agent);
    }
    let agent = pull::pull(reference, arch, ui).await?;
    cache::save(store, &agent);
    Ok(agent)
}

/// A jobrun binary someone handed over, checked for the image's architecture.
pub fn from_file(path: &Path, arch: Arch) -> Result<Agent, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::AgentBinary {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |why: String| ImageError::BadAgent {
        what: path.display().to_string(),
        why,
    };
    let mark = check(&bytes, arch, false).map_err(bad)?;
    let info = AgentInfo {
        arch,
        version: mark.version,
        slim: mark.slim,
        sha256: crate::registry::sha256_digest(&bytes),
        entry: vec![BINARY.to_string()],
        source: Source::File {
            path: path.to_path_buf(),
        },
    };
    Ok(Agent {
        info,
        files: vec![InImage {
            path: BINARY.into(),
            bytes,
            mode: 0o755,
        }],
    })
}

/// Whether `bytes` can be the jobrun of an `arch` image: a Linux ELF binary of that
/// architecture, static unless `packed` (it brings its loader), speaking this wire format. Its
/// mark, read once (a scan of the whole binary), says its version and whether it is the slim
/// agent.
pub fn check(bytes: &[u8], arch: Arch, packed: bool) -> Result<elf::Mark, String> {
    let kind = elf::Kind::of(bytes);
    match &kind {
        elf::Kind::Elf { arch: Some(a), .. } if *a != arch => {
            return Err(format!("it is {}, the image is {arch}", kind.describe()));
        }
        elf::Kind::Elf {
            arch: Some(_),
            dynamic,
            ..
        } => {
            if *dynamic && !packed {
                return Err(format!(
                    "it is {}: it would start only in images with its C library (build it static, e.g. `just agent-{arch}`)",
                    kind.describe()
                ));
            }
        }
        _ => {
            return Err(format!(
                "it is {}, not a Linux {arch} jobrun",
                kind.describe()
            ));
        }
    }
    match elf::mark(bytes) {
        Some(mark) if mark.wire == crate::wire::WIRE => Ok(mark),
        Some(elf::Mark { wire, version, .. }) => Err(format!(
            "it is jobrun {version}, which speaks wire format {wire}; this jobrun ({}) speaks {}: use an agent of version {}",
            env!("CARGO_PKG_VERSION"),
            crate::wire::WIRE,
            env!("CARGO_PKG_VERSION")
        )),
        None => Err("it is not a jobrun (it carries no jobrun mark)".into()),
    }
}

/// This jobrun, when it can run in a Linux image of `arch`; else why not.
pub fn this(arch: Arch) -> Result<Agent, String> {
    if !cfg!(target_os = "linux") {
        return Err(format!(
            "this jobrun is a {} program, and only a Linux jobrun goes into an image",
            std::env::consts::OS
        ));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this jobrun: {e}"))?;
    let bytes = std::fs::read(&exe).map_err(|e| format!("cannot read {}: {e}", exe.display()))?;
    let packed = packed::Packed::this(exe.clone());
    let is_packed = !packed.libraries.is_empty();
    let mark = check(&bytes, arch, is_packed)
        .map_err(|why| format!("this jobrun ({}): {why}", exe.display()))?;
    let source = Source::This { packed: is_packed };
    packed_agent(&packed, &bytes, mark, arch, source)
}

/// The slim agent beside this jobrun, when there is one for `arch`: static, or packed with the
/// loader and libraries this jobrun runs with (the agent, a Rust program on the same C
/// library, needs no library this jobrun has not loaded).
pub fn beside(arch: Arch) -> Result<Agent, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this jobrun: {e}"))?;
    let path = exe.with_file_name(AGENT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "no {AGENT_FILE} beside this jobrun ({})",
                exe.display()
            ));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let dynamic = matches!(elf::Kind::of(&bytes), elf::Kind::Elf { dynamic: true, .. });
    let packed = packed::Packed {
        binary: path.clone(),
        libraries: if dynamic {
            packed::Packed::this(exe).libraries
        } else {
            vec![]
        },
    };
    let is_packed = !packed.libraries.is_empty();
    let mark =
        check(&bytes, arch, is_packed).map_err(|why| format!("{}: {why}", path.display()))?;
    if !mark.slim {
        return Err(format!("{}: it is not the slim agent", path.display()));
    }
    let source = Source::Beside { packed: is_packed };
    packed_agent(&packed, &bytes, mark, arch, source)
}

/// A checked binary and its libraries as the files of an in-image jobrun.
fn packed_agent(
    packed: &packed::Packed,
    bytes: &[u8],
    mark: elf::Mark,
    arch: Arch,
    source: Source,
) -> Result<Agent, String> {
    let mut files = vec![];
    for (path, host) in packed.files() {
        let bytes =
            std::fs::read(&host).map_err(|e| format!("cannot read {}: {e}", host.display()))?;
        files.push(InImage {
            path,
            bytes,
            mode: 0o755,
        });
    }
    let info = AgentInfo {
        arch,
        version: mark.version,
        sha256: crate::registry::sha256_digest(bytes),
        entry: packed.entry(),
        source,
        slim: mark.slim,
    };
    Ok(Agent { info, files })
}

impl Agent {
    /// The files as entries of a build context, below `under` (`opt/jobrun/…` at the root).
    pub fn context_files(&self, under: &str) -> Vec<(String, Vec<u8>, u32)> {
        self.files
            .iter()
            .map(|f| {
                let rel = f.path.trim_start_matches('/');
                (format!("{under}{rel}"), f.bytes.clone(), f.mode)
            })
            .collect()
    }

    /// Bytes the agent adds to an image.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.bytes.len() as u64).sum()
    }
}

/// Agents pulled from agent images, kept in the state folder by version and architecture:
/// `agents/<version>-<arch>/agent.json` (what it is, where from) and `files.tar`.
mod cache {
    use super::*;

    fn dir(store: &Store, arch: Arch) -> PathBuf {
        store
            .agent_dir()
            .join(format!("{}-{arch}", env!("CARGO_PKG_VERSION")))
    }

    /// The cached agent for `arch` if it came from `reference` and is whole.
    pub fn load(store: &Store, arch: Arch, reference: &str) -> Option<Agent> {
        let dir = dir(store, arch);
        let info: AgentInfo =
            serde_json::from_slice(&std::fs::read(dir.join("agent.json")).ok()?).ok()?;
        let from = matches!(&info.source, Source::Image { reference: r, .. } if r == reference);
        if !from || info.arch != arch || info.version != env!("CARGO_PKG_VERSION") {
            return None;
        }
        let tar = std::fs::read(dir.join("files.tar")).ok()?;
        let files = pull::untar(&tar).ok()?;
        let binary = files.iter().find(|f| f.path == BINARY)?;
        (crate::registry::sha256_digest(&binary.bytes) == info.sha256)
            .then_some(Agent { info, files })
    }

    /// Keeps a pulled agent; a cache that cannot be written only costs a pull next time.
    pub fn save(store: &Store, agent: &Agent) {
        let dir = dir(store, agent.info.arch);
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let tar = super::super::tar_of(agent.context_files(""))?;
            let tmp = dir.join("files.tar.tmp");
            std::fs::write(&tmp, tar)?;
            std::fs::rename(&tmp, dir.join("files.tar"))?;
            crate::store::write_json_atomic(&dir.join("agent.json"), &agent.info)
                .map_err(std::io::Error::other)
        })();
        if let Err(e) = result {
            tracing::warn!("cannot cache the agent in {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in jobrun binary for `arch`: an ELF header and the mark of `wire`.
    fn stand_in(machine: u16, p_type: u32, wire: u32) -> Vec<u8> {
        let mut b = elf::tests::fake_elf(machine, p_type);
        b.extend_from_slice(format!("\0jobrun-in-aws:wire={wire}:version=9.9.9\0").as_bytes());
        b
    }

    #[test]
    fn the_mark_says_this_wire_format_and_version() {
        let mark = elf::mark(crate::wire::MARK.as_bytes()).unwrap();
        assert_eq!(mark.wire, crate::wire::WIRE);
        assert_eq!(mark.version, env!("CARGO_PKG_VERSION"));
        // And this very test binary carries it (main's reference keeps it in jobrun; here
        // the constant itself is linked in by the line above).
        assert!(DEFAULT_IMAGE.ends_with(env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn only_a_static_linux_jobrun_of_the_images_architecture_speaking_this_wire_passes() {
        let ok = |bytes: &[u8], arch, packed| check(bytes, arch, packed).map(|_| ());
        assert_eq!(ok(&stand_in(183, 1, 1), Arch::Arm64, false), Ok(()));
        let e = check(&stand_in(183, 1, 1), Arch::Amd64, false).unwrap_err();
        assert!(
            e.contains("a Linux arm64 binary, the image is amd64"),
            "{e}"
        );
        let e = check(&stand_in(62, 3, 1), Arch::Amd64, false).unwrap_err();
        assert!(
            e.contains("linked dynamically") && e.contains("just agent-amd64"),
            "{e}"
        );
        assert_eq!(ok(&stand_in(62, 3, 1), Arch::Amd64, true), Ok(()), "packed");
        let e = check(&stand_in(62, 1, 7), Arch::Amd64, false).unwrap_err();
        assert!(e.contains("wire format 7"), "{e}");
        let e = check(&elf::tests::fake_elf(62, 1), Arch::Amd64, false).unwrap_err();
        assert!(e.contains("not a jobrun"), "{e}");
        let macho = [0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1];
        let e = check(&macho, Arch::Arm64, false).unwrap_err();
        assert!(e.contains("macOS"), "{e}");
    }

    #[test]
    fn a_file_source_is_checked_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("jobrun-arm64");
        std::fs::write(&p, stand_in(183, 1, 1)).unwrap();
        let a = from_file(&p, Arch::Arm64).unwrap();
        assert_eq!(a.info.entry, [BINARY]);
        assert_eq!(a.info.version, "9.9.9");
        assert_eq!(a.info.source, Source::File { path: p.clone() });
        assert!(matches!(
            from_file(&p, Arch::Amd64),
            Err(ImageError::BadAgent { .. })
        ));
        assert!(matches!(
            from_file(&dir.path().join("none"), Arch::Amd64),
            Err(ImageError::AgentBinary { .. })
        ));
    }

    #[test]
    fn this_jobrun_goes_in_for_its_own_architecture_only() {
        let host = Arch::host();
        let other = host.other();
        let e = this(other).unwrap_err();
        assert!(e.contains(&format!("the image is {other}")), "{e}");
        // The test binary is not a jobrun (no mark of its own is referenced by main here),
        // or it is: either way the answer is a checked one, never a binary of another arch.
        match this(host) {
            Ok(a) => assert_eq!(a.info.arch, host),
            Err(e) => assert!(e.contains("jobrun"), "{e}"),
        }
    }

    #[tokio::test]
    async fn the_order_is_file_then_cached_image_then_this_jobrun() {
        let state = tempfile::tempdir().unwrap();
        let store = Store::open(state.path().to_path_buf()).unwrap();
        let ui = crate::ui::Ui::quiet();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, stand_in(183, 1, 1)).unwrap();
        let files = AgentSpec::Files([(Arch::Arm64, p.clone())].into());
        let a = find(&files, Arch::Arm64, Needs::Tasks, &store, &ui)
            .await
            .unwrap();
        assert_eq!(a.info.source, Source::File { path: p.clone() });

        // A cached pull of the named image comes before any registry.
        let reference = "127.0.0.1:1/jobrun-agent:test".to_string();
        let mut cached = from_file(&p, Arch::Arm64).unwrap();
        cached.info.source = Source::Image {
            reference: reference.clone(),
            digest: "sha256:abc".into(),
        };
        cached.info.version = env!("CARGO_PKG_VERSION").into();
        cache::save(&store, &cached);
        let image = AgentSpec::Image(reference.clone());
        let a = find(&image, Arch::Arm64, Needs::Tasks, &store, &ui)
            .await
            .unwrap();
        assert_eq!(a.info.source, cached.info.source);
        assert_eq!(a.files[0].bytes, cached.files[0].bytes);
        // Another reference is not that cache: its pull fails (nothing listens on port 1),
        // and a named image that cannot be pulled is an error, not a fall-through.
        let other = AgentSpec::Image("127.0.0.1:1/other:test".into());
        assert!(
            find(&other, Arch::Arm64, Needs::Tasks, &store, &ui)
                .await
                .is_err()
        );

        // The slim agent runs tasks; for the dispatcher it is passed over, and said so.
        let slim = dir.path().join("slim");
        let mut bytes = elf::tests::fake_elf(183, 1);
        bytes.extend_from_slice(crate::wire::MARK_AGENT.as_bytes());
        std::fs::write(&slim, bytes).unwrap();
        let files = AgentSpec::Files([(Arch::Arm64, slim.clone())].into());
        let a = find(&files, Arch::Arm64, Needs::Tasks, &store, &ui)
            .await
            .unwrap();
        assert!(
            a.info.slim && a.info.to_string().starts_with("jobrun-agent "),
            "{}",
            a.info
        );
        let mut slim_cached = a.clone();
        slim_cached.info.source = cached.info.source.clone();
        cache::save(&store, &slim_cached);
        let e = find(&image, Arch::Arm64, Needs::Dispatch, &store, &ui).await;
        if Arch::host() != Arch::Arm64 {
            let Err(ImageError::NoAgent { tried, .. }) = e else {
                panic!("the slim agent taken for the dispatcher")
            };
            assert!(
                tried[0].contains("runs tasks, not the dispatcher"),
                "{tried:?}"
            );
        }
    }

    #[test]
    fn sources_read_as_people_say_them() {
        let s = Source::Image {
            reference: "127.0.0.1:5000/jobrun-agent:0.1.0".into(),
            digest: "sha256:ab".into(),
        };
        assert_eq!(
            s.to_string(),
            "agent image 127.0.0.1:5000/jobrun-agent@sha256:ab"
        );
        assert_eq!(
            Source::This { packed: true }.to_string(),
            "this jobrun, packed with its loader and libraries"
        );
    }
}

//! jobrun as an image of its own, for the schedules' dispatcher (a Fargate task that runs
//! `jobrun dispatch`): `FROM scratch`, this very jobrun, CA certificates, and — when this jobrun
//! is linked dynamically, as `cargo install` builds it on Linux — the dynamic loader and the
//! shared libraries this process has loaded (read from `/proc/self/maps`), started through
//! that loader. The image therefore needs no C library of its own and no tool beyond the
//! engine: a host with a newer glibc than any base image still gives a dispatcher that starts.
//! Only a Linux jobrun can be packed; the dispatcher runs on the host's architecture.

use super::{ImageError, build_small, tar_of};
use crate::config::Job;
use crate::engine::Engine;
use crate::ui::Ui;
use std::path::{Path, PathBuf};

/// Where jobrun and its libraries go in the image.
const HOME: &str = "opt/jobrun";

/// The files of a jobrun that runs anywhere, and how it is started.
#[derive(Debug)]
pub struct Bundle {
    pub binary: PathBuf,
    /// Shared objects this process loaded (the loader first), empty for a static jobrun.
    pub libraries: Vec<PathBuf>,
}

impl Bundle {
    /// This jobrun, as the running process sees itself.
    pub fn this() -> Result<Bundle, ImageError> {
        if !cfg!(target_os = "linux") {
            return Err(ImageError::NotLinux(std::env::consts::OS.to_string()));
        }
        let binary = std::env::current_exe().map_err(|source| ImageError::AgentBinary {
            path: "jobrun".into(),
            source,
        })?;
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        Ok(Bundle {
            binary,
            libraries: shared_objects(&maps),
        })
    }

    /// The image's entrypoint: the loader with the bundled libraries, or jobrun itself.
    pub fn entry(&self) -> Vec<String> {
        let jobrun = format!("/{HOME}/jobrun");
        match self.libraries.first().and_then(|l| l.file_name()) {
            Some(loader) => vec![
                format!("/{HOME}/lib/{}", loader.to_string_lossy()),
                "--library-path".into(),
                format!("/{HOME}/lib"),
                jobrun,
            ],
            None => vec![jobrun],
        }
    }

    /// Bytes that go into the image (binary and libraries).
    pub fn size(&self) -> u64 {
        std::iter::once(&self.binary)
            .chain(&self.libraries)
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The build context: a Dockerfile and the files, as a tar.
    fn context(&self) -> Result<Vec<u8>, ImageError> {
        let io = |source: std::io::Error| ImageError::AgentBinary {
            path: self.binary.clone(),
            source,
        };
        let certs = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
        let entry = serde_json::to_string(&self.entry()).expect("strings");
        // How jobrun starts itself again (a background driver): through the same loader.
        let this = self.entry().join(" ");
        let dockerfile = format!(
            "FROM scratch\nCOPY root/ /\nENV SSL_CERT_FILE={ca} JOBRUN_STATE_DIR=/tmp/jobrun JOBRUN_SELF=\"{this}\"\nENTRYPOINT {entry}\nLABEL jobrun.dispatcher={version}\n",
            ca = crate::agent::CA_BUNDLE,
            version = env!("CARGO_PKG_VERSION"),
        );
        let mut files = vec![
            ("Dockerfile".to_string(), dockerfile.into_bytes(), 0o644),
            (format!("root/{HOME}/jobrun"), read(&self.binary)?, 0o755),
        ];
        for lib in &self.libraries {
            let name = lib.file_name().unwrap_or_default().to_string_lossy();
            files.push((format!("root/{HOME}/lib/{name}"), read(lib)?, 0o755));
        }
        let ca = crate::agent::CA_BUNDLE.trim_start_matches('/');
        files.push((format!("root/{ca}"), certs, 0o644));
        files.push(("root/tmp/.keep".to_string(), vec![], 0o644));
        tar_of(files).map_err(io)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(|source| ImageError::AgentBinary {
        path: path.to_path_buf(),
        source,
    })
}

/// The shared objects of a process's memory map, the dynamic loader first; none for a
/// static process.
fn shared_objects(maps: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = vec![];
    for path in maps.lines().filter_map(|l| l.split_whitespace().nth(5)) {
        let name = Path::new(path)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let shared = name.ends_with(".so") || name.contains(".so.");
        if shared && path.starts_with('/') && !found.iter().any(|p| p == Path::new(path)) {
            found.push(PathBuf::from(path));
        }
    }
    let is_loader = |p: &PathBuf| {
        let n = p.file_name().unwrap_or_default().to_string_lossy();
        n.starts_with("ld-linux") || n.starts_with("ld-musl") || n.starts_with("ld64.so")
    };
    match found.iter().position(is_loader) {
        Some(i) => {
            let loader = found.remove(i);
            found.insert(0, loader);
            found
        }
        // Shared objects without a loader would not start: treat the binary as static.
        None => vec![],
    }
}

/// The dispatcher's image as built.
pub struct Built {
    pub image_id: String,
    pub tag: String,
    pub platform: String,
    /// What jobrun and its libraries take in the image.
    pub bytes: u64,
    pub entry: Vec<String>,
}

/// Builds the dispatcher's image for the host's platform, tagged `<job>:dispatcher-<id>`.
pub async fn build(job: &Job, engine: &Engine, ui: &Ui) -> Result<Built, ImageError> {
    let bundle = Bundle::this()?;
    let body = bundle.context()?;
    let platform = crate::config::Platform::host().to_string();
    let what = (
        "building the dispatcher's image (jobrun)",
        "the dispatcher's image",
    );
    let image_id = build_small(job, engine, ui, body, &platform, what).await?;
    let tag = format!("dispatcher-{}", super::short_id(&image_id));
    engine.tag_image(&image_id, &job.name, &tag).await?;
    Ok(Built {
        image_id,
        tag,
        platform,
        bytes: bundle.size(),
        entry: bundle.entry(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_comes_first_and_each_object_once() {
        let maps = "\
55d0 r--p 0 08:01 1 /usr/local/bin/jobrun
7f00 r--p 0 08:01 2 /usr/lib/x86_64-linux-gnu/libc.so.6
7f01 r-xp 0 08:01 2 /usr/lib/x86_64-linux-gnu/libc.so.6
7f02 r--p 0 08:01 3 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1
7f03 r--p 0 08:01 4 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7f04 rw-p 0 00:00 0 [heap]
7f05 r--p 0 08:01 5 /usr/lib/locale/C.utf8/LC_CTYPE
";
        let found = shared_objects(maps);
        let names: Vec<_> = found.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(
            names,
            ["ld-linux-x86-64.so.2", "libc.so.6", "libgcc_s.so.1"]
        );
        let bundle = Bundle {
            binary: "/usr/local/bin/jobrun".into(),
            libraries: found,
        };
        assert_eq!(
            bundle.entry(),
            [
                "/opt/jobrun/lib/ld-linux-x86-64.so.2",
                "--library-path",
                "/opt/jobrun/lib",
                "/opt/jobrun/jobrun"
            ]
        );
        assert!(
            shared_objects("55d0 r--p 0 08:01 1 /jobrun\n").is_empty(),
            "static"
        );
    }

    /// This test binary's own bundle starts in an empty root: checked by the integration test
    /// that runs the dispatcher image; here only that the map of a live process is read.
    #[test]
    fn this_process_has_a_bundle() {
        let b = Bundle::this().unwrap();
        assert!(b.binary.is_file());
        assert!(b.size() > 0);
    }
}

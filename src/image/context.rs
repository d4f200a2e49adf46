//! The build context: the job's folder as a tar stream, minus what `.dockerignore` excludes.
//! The tar is written on a blocking thread into a channel, so a large context is never held in
//! memory whole; the Dockerfile and `.dockerignore` always go in (Docker's CLI does the same).

use super::dockerignore::DockerIgnore;
use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Where the Dockerfile is put inside the context when it lives outside the context folder.
pub const OUTSIDE_DOCKERFILE: &str = ".jobrun.Dockerfile";

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context {0} is not a folder")]
    NotADir(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pattern(#[from] super::dockerignore::PatternError),
}

/// The files that go into the context, in tar order, and the Dockerfile's name inside it.
pub struct Context {
    root: PathBuf,
    entries: Vec<String>,
    dockerfile: PathBuf,
    pub dockerfile_in_context: String,
}

impl Context {
    /// Walks `root`, applying `.dockerignore`. Reading errors surface here, before any build starts.
    pub fn scan(root: &Path, dockerfile: &Path) -> Result<Context, ContextError> {
        if !root.is_dir() {
            return Err(ContextError::NotADir(root.to_path_buf()));
        }
        let ignore_path = root.join(".dockerignore");
        let ignore = match std::fs::read_to_string(&ignore_path) {
            Ok(text) => DockerIgnore::parse(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DockerIgnore::default(),
            Err(source) => {
                return Err(ContextError::Read {
                    path: ignore_path,
                    source,
                });
            }
        };
        let dockerfile_in_context = match dockerfile.strip_prefix(root) {
            Ok(rel) => rel.to_string_lossy().replace('\\', "/"),
            Err(_) => OUTSIDE_DOCKERFILE.to_string(),
        };
        let mut entries = vec![];
        walk(root, root, &ignore, &dockerfile_in_context, &mut entries)?;
        // The Dockerfile goes in even from a folder .dockerignore leaves out entirely.
        if dockerfile_in_context != OUTSIDE_DOCKERFILE && !entries.contains(&dockerfile_in_context)
        {
            entries.push(dockerfile_in_context.clone());
        }
        Ok(Context {
            root: root.to_path_buf(),
            entries,
            dockerfile: dockerfile.to_path_buf(),
            dockerfile_in_context,
        })
    }

    /// Paths (relative, `/`-separated) that will be sent.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Streams the tar: chunks of at most 64 KiB through a bounded channel.
    pub fn stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
        tokio::task::spawn_blocking(move || {
            let writer = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            if let Err(e) = self.write_tar(writer) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
    }

    fn write_tar(&self, writer: ChannelWriter) -> std::io::Result<()> {
        let mut tar = tar::Builder::new(writer);
        tar.follow_symlinks(false);
        // The tar crate writes a file with holes as a GNU sparse entry by default, which the
        // Docker engine refuses ("unhandled tar header type 83"): every file goes in whole.
        tar.sparse(false);
        tar.mode(tar::HeaderMode::Deterministic);
        for rel in &self.entries {
            tar.append_path_with_name(self.root.join(rel), rel)?;
        }
        if self.dockerfile_in_context == OUTSIDE_DOCKERFILE {
            tar.append_path_with_name(&self.dockerfile, OUTSIDE_DOCKERFILE)?;
        }
        let mut w = tar.into_inner()?;
        w.flush()
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    ignore: &DockerIgnore,
    dockerfile: &str,
    out: &mut Vec<String>,
) -> Result<(), ContextError> {
    let read = |source| ContextError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let rel = path
            .strip_prefix(root)
            .expect("walk stays under root")
            .to_string_lossy()
            .replace('\\', "/");
        let file_type = child.file_type().map_err(|source| ContextError::Read {
            path: path.clone(),
            source,
        })?;
        let always = rel == dockerfile || rel == ".dockerignore";
        let excluded = !always && ignore.excludes(&rel);
        if file_type.is_dir() {
            // An excluded folder is still walked when a later `!` line may re-include something in it.
            if !excluded {
                out.push(rel.clone());
            }
            if !excluded || ignore.has_exceptions() {
                walk(root, &path, ignore, dockerfile, out)?;
            }
        } else if !excluded {
            out.push(rel);
        }
    }
    Ok(())
}

const CHUNK: usize = 64 * 1024;

struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "build request ended"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_applies_dockerignore_but_keeps_build_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "Dockerfile",
            "main.rs",
            "notes.md",
            "README.md",
            "target/debug/big",
            "data/a.csv",
            "data/keep.csv",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        std::fs::write(
            root.join(".dockerignore"),
            "Dockerfile\n.dockerignore\ntarget\n*.md\n!README.md\ndata\n!data/keep.csv\n",
        )
        .unwrap();
        let ctx = Context::scan(root, &root.join("Dockerfile")).unwrap();
        assert_eq!(
            ctx.entries(),
            [
                ".dockerignore",
                "Dockerfile",
                "README.md",
                "data/keep.csv",
                "main.rs"
            ]
        );
        assert_eq!(ctx.dockerfile_in_context, "Dockerfile");

        // A Dockerfile in a folder that is excluded whole is still sent.
        std::fs::create_dir_all(root.join("docker")).unwrap();
        std::fs::write(root.join("docker/Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(root.join(".dockerignore"), "docker\n").unwrap();
        let ctx = Context::scan(root, &root.join("docker/Dockerfile")).unwrap();
        assert!(
            ctx.entries().contains(&"docker/Dockerfile".to_string()),
            "{:?}",
            ctx.entries()
        );
    }

    #[tokio::test]
    async fn stream_is_a_tar_of_the_entries() {
        use futures_util::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("big.bin"), vec![7u8; 300_000]).unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside.path(), "FROM scratch\n").unwrap();
        let ctx = Context::scan(dir.path(), outside.path()).unwrap();
        assert_eq!(ctx.dockerfile_in_context, OUTSIDE_DOCKERFILE);
        let chunks: Vec<Bytes> = ctx.stream().map(|c| c.unwrap()).collect().await;
        assert!(chunks.len() > 1, "streamed in chunks");
        let bytes: Vec<u8> = chunks.concat();
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["Dockerfile", "big.bin", OUTSIDE_DOCKERFILE]);
    }

    #[tokio::test]
    async fn a_file_with_holes_goes_in_as_a_plain_file() {
        use futures_util::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        // A hole of 4 MiB, then one byte: sparse on every filesystem that has holes.
        let f = std::fs::File::create(dir.path().join("holes.bin")).unwrap();
        f.set_len(4 << 20).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"x", 4 << 20).unwrap();
        let ctx = Context::scan(dir.path(), &dir.path().join("Dockerfile")).unwrap();
        let bytes: Vec<u8> = ctx
            .stream()
            .map(|c| c.unwrap())
            .collect::<Vec<Bytes>>()
            .await
            .concat();
        let mut archive = tar::Archive::new(&bytes[..]);
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            assert_eq!(
                entry.header().entry_type(),
                tar::EntryType::Regular,
                "{:?}",
                entry.path()
            );
        }
    }
}

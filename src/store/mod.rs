//! Where runs live: `$JOBRUN_STATE_DIR` (default `$XDG_STATE_HOME/jobrun`, else
//! `~/.local/state/jobrun`) holds `runs/<run-id>/run.json`, the task logs under
//! `runs/<run-id>/logs/<index>-<attempt>.log`, a `lock` file and, for detached runs,
//! `driver.log`. `run.json` is replaced atomically (write to a temporary file in the same folder,
//! fsync, rename), so a kill at any moment leaves either the old or the new record, never a torn
//! one. Whoever changes a record holds the run's lock for the read-modify-write, so a `watch` in
//! another terminal and a `cancel` never lose each other's writes.

pub mod index;
pub use index::Unreadable;

use crate::record::RunRecord;
use chrono::SubsecRound as _;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the state directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("run record {path} is unreadable: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("no run matches `{0}`")]
    NoSuchRun(String),
    #[error("`{0}` matches more than one run: {1}")]
    Ambiguous(String, String),
    #[error("there are no runs{0}")]
    NoRuns(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Atomic replace of a JSON file: a temporary file in the same folder, fsync, rename.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let dir = path.parent().expect("a file in a folder");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    // Streamed: a record of 10,000 tasks is never also held as one big buffer.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    out.flush().map_err(io(dir))?;
    drop(out);
    tmp.as_file().sync_all().map_err(io(dir))?;
    tmp.persist(path).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

pub struct Store {
    root: PathBuf,
}

/// One version of a run's record file. Every save writes a new file and renames it over the
/// old one, so a record saved since has another inode (the old file is still linked while the
/// new one is written) and other times: a stamp that is still the same means the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// Held while a run's record is read, changed and written back. Released on drop (or process death).
pub struct RunLock {
    _file: File,
}

impl Store {
    /// The state directory: `$JOBRUN_STATE_DIR`, `$XDG_STATE_HOME/jobrun`, or `~/.local/state/jobrun`.
    pub fn default_root() -> PathBuf {
        if let Some(p) = std::env::var_os("JOBRUN_STATE_DIR").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        if let Some(p) = std::env::var_os("XDG_STATE_HOME").filter(|p| !p.is_empty()) {
            return PathBuf::from(p).join("jobrun");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| ".".into());
        home.join(".local/state/jobrun")
    }

    pub fn open(root: PathBuf) -> Result<Store, StoreError> {
        // Absolute, so the folders under it can be bind-mounted into containers.
        let root = std::path::absolute(&root).unwrap_or(root);
        let runs = root.join("runs");
        std::fs::create_dir_all(&runs).map_err(io(&runs))?;
        Ok(Store { root })
    }

    /// Per-job state that is not a run: the image records (`jobs/<job>/images.json`).
    pub fn job_dir(&self, job: &str) -> PathBuf {
        self.root.join("jobs").join(job)
    }

    /// Cached registry tokens (files readable only by the user).
    pub fn auth_dir(&self) -> PathBuf {
        self.root.join("auth")
    }

    /// Compressed image layers, keyed by their uncompressed digest, so a push of layers that did
    /// not change compresses nothing again.
    pub fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// In-AWS jobruns taken from agent images, by version and architecture, so a build needs
    /// the registry once per version.
    pub fn agent_dir(&self) -> PathBuf {
        self.root.join("agents")
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.root.join("runs").join(run_id)
    }

    fn record_path(&self, run_id: &str) -> PathBuf {
        self.run_dir(run_id).join("run.json")
    }

    pub fn log_path(&self, run_id: &str, index: usize, attempt: u32) -> PathBuf {
        self.run_dir(run_id)
            .join("logs")
            .join(format!("{index}-{attempt}.log"))
    }

    pub fn driver_log(&self, run_id: &str) -> PathBuf {
        self.run_dir(run_id).join("driver.log")
    }

    /// Writes a new run's record; fails if the run already exists.
    pub fn create(&self, record: &RunRecord) -> Result<(), StoreError> {
        let dir = self.run_dir(&record.run_id);
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        let logs = dir.join("logs");
        std::fs::create_dir(&logs).map_err(io(&logs))?;
        self.save(record)
    }

    pub fn exists(&self, run_id: &str) -> bool {
        self.record_path(run_id).is_file()
    }

    pub fn load(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        let path = self.record_path(run_id);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NoSuchRun(run_id.to_string()),
            _ => StoreError::Io {
                path: path.clone(),
                source: e,
            },
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt { path, source })
    }

    /// The record with the stamp of the file it was read from (taken first: read under the
    /// run's lock, the two agree).
    pub fn load_stamped(&self, run_id: &str) -> Result<(RunRecord, Stamp), StoreError> {
        let stamp = self.stamp(run_id)?;
        Ok((self.load(run_id)?, stamp))
    }

    /// The stamp of the run's record file as it is now.
    pub fn stamp(&self, run_id: &str) -> Result<Stamp, StoreError> {
        let path = self.record_path(run_id);
        Stamp::of(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NoSuchRun(run_id.to_string()),
            _ => StoreError::Io { path, source: e },
        })
    }

    /// Atomic replace, so a kill at any moment leaves the old or the new record; then the
    /// run's summary for the index.
    pub fn save(&self, record: &RunRecord) -> Result<(), StoreError> {
        write_json_atomic(&self.record_path(&record.run_id), record)?;
        self.index(record)
    }

    /// Takes the run's lock (blocking until other writers are done).
    pub fn lock(&self, run_id: &str) -> Result<RunLock, StoreError> {
        let path = self.run_dir(run_id).join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(RunLock { _file: file })
    }

    /// Run ids, newest first.
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let runs = self.root.join("runs");
        let mut ids: Vec<String> = std::fs::read_dir(&runs)
            .map_err(io(&runs))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("run.json").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// Finds a run: an exact id or a unique prefix/suffix of one; without an id, the newest run
    /// of `job` (or of any job).
    pub fn resolve(&self, wanted: Option<&str>, job: Option<&str>) -> Result<String, StoreError> {
        let ids = self.list()?;
        match wanted {
            Some(w) => {
                if ids.iter().any(|id| id == w) {
                    return Ok(w.to_string());
                }
                let hits: Vec<&String> = ids
                    .iter()
                    .filter(|id| id.starts_with(w) || id.ends_with(w))
                    .collect();
                match hits.as_slice() {
                    [one] => Ok((*one).clone()),
                    [] => Err(StoreError::NoSuchRun(w.to_string())),
                    many => Err(StoreError::Ambiguous(
                        w.to_string(),
                        many.iter()
                            .take(5)
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    )),
                }
            }
            None => {
                // Newest by the record's own creation time; a newer run of the job whose
                // record cannot be read is that error, never the run before it.
                let listing = self.summaries()?;
                let newest = listing
                    .runs
                    .into_iter()
                    .find(|r| job.is_none_or(|j| r.job == j));
                let broken = listing.unreadable.into_iter().find(|u| {
                    job.is_none_or(|j| u.job.as_deref() == Some(j))
                        && newest.as_ref().is_none_or(|n| {
                            u.created_at
                                .is_none_or(|at| at >= n.created_at.trunc_subsecs(0))
                        })
                });
                if let Some(u) = broken {
                    self.load(&u.run_id)?;
                    return Ok(u.run_id);
                }
                newest.map(|r| r.run_id).ok_or_else(|| {
                    StoreError::NoRuns(job.map(|j| format!(" of job {j}")).unwrap_or_default())
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::record;

    #[test]
    fn save_load_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().into()).unwrap();
        store
            .create(&record("20260101-000000-a-0001", "a"))
            .unwrap();
        store
            .create(&record("20260102-000000-b-0002", "b"))
            .unwrap();
        assert!(
            store
                .create(&record("20260102-000000-b-0002", "b"))
                .is_err(),
            "never overwrite a run"
        );
        let r = store.load("20260101-000000-a-0001").unwrap();
        assert_eq!(r.job, "a");
        assert_eq!(store.resolve(None, None).unwrap(), "20260102-000000-b-0002");
        assert_eq!(
            store.resolve(None, Some("a")).unwrap(),
            "20260101-000000-a-0001"
        );
        assert_eq!(
            store.resolve(Some("0001"), None).unwrap(),
            "20260101-000000-a-0001"
        );
        assert!(matches!(
            store.resolve(Some("2026"), None),
            Err(StoreError::Ambiguous(..))
        ));
        assert!(matches!(
            store.resolve(None, Some("zz")),
            Err(StoreError::NoRuns(_))
        ));
        // every save is a new file: the stamp tells it, even with the same content
        let id = "20260101-000000-a-0001";
        let (r, before) = store.load_stamped(id).unwrap();
        assert_eq!(store.stamp(id).unwrap(), before);
        store.save(&r).unwrap();
        assert_ne!(store.stamp(id).unwrap(), before);
        // no temp files are left beside the record
        let names: Vec<_> = std::fs::read_dir(store.run_dir("20260101-000000-a-0001"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| n == "run.json" || n == "summary.json" || n == "logs"),
            "{names:?}"
        );
    }
}

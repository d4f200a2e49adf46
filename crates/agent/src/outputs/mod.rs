//! What a task leaves behind: the files in its `JOBRUN_OUTPUT_DIR`, and among them its
//! **result**, `result.json` (a JSON object, at most 64 KiB), which is kept in the run record.
//!
//! Where outputs live is the same layout for every place: a folder per map task
//! (`outputs/<index>/`) and one for the reduce (`reduce/`), under the run's folder in the state
//! directory (local runs: bind-mounted into the container) or under the run's prefix in the
//! job's bucket (ECS runs: uploaded by the jobrun inside the task, see `s3.rs`). The reduce
//! reads every map task's folder as `JOBRUN_INPUTS_DIR/<index>/`.
//!
//! What a task leaves is data, never a way out of its folder: every read of an output folder
//! goes through `files.rs` (no link followed, only regular files, bounded).

pub mod files;
pub mod s3;

use crate::record::{Stage, TaskRecord};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A task's result: this file in its output folder.
pub const RESULT_FILE: &str = "result.json";
/// The largest result kept in the record.
pub const RESULT_LIMIT: usize = 64 * 1024;
/// Where a local container sees its output folder, and the reduce its inputs.
pub const CONTAINER_OUTPUT: &str = "/jobrun/output";
pub const CONTAINER_INPUTS: &str = "/jobrun/inputs";
/// A local task's checkpoint folder in its container: `runs/<run>/checkpoints/<index>/` of the
/// state folder, the same for every attempt of the task.
pub const CONTAINER_CHECKPOINT: &str = "/jobrun/checkpoint";

/// A result as kept, or why it cannot be.
pub fn parse_result(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() > RESULT_LIMIT {
        return Err(too_large(bytes.len() as u64));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(format!(
            "result.json must hold a JSON object, not {}",
            kind_of(&other)
        )),
        Err(e) => Err(format!("result.json is not JSON: {e}")),
    }
}

fn too_large(len: u64) -> String {
    format!(
        "result.json is {} KiB, over the {} KiB a result may be (put large outputs in other files of JOBRUN_OUTPUT_DIR)",
        len.div_ceil(1024),
        RESULT_LIMIT / 1024
    )
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The result in an output folder: none when the task wrote no result.json.
pub fn read_result(dir: &Path) -> Option<ResultRead> {
    match files::read_bounded(dir, RESULT_FILE, RESULT_LIMIT) {
        Ok(None) => None,
        // Not read: only its size matters.
        Ok(Some(Err(size))) => Some(ResultRead::Kept(Err(too_large(size)))),
        Ok(Some(Ok(bytes))) => Some(ResultRead::Kept(parse_result(&bytes))),
        Err(e @ files::FileError::NotRegular { .. }) => Some(ResultRead::Refused(e.to_string())),
        Err(e) => Some(ResultRead::Kept(Err(format!("cannot read {e}")))),
    }
}

/// What became of a task's result.json.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultRead {
    /// Read: the result, or why it is not one (too large, not a JSON object); the task's
    /// outcome stands.
    Kept(Result<Value, String>),
    /// Not a regular file (a link, a pipe, a device): never read, and the attempt fails with
    /// this reason.
    Refused(String),
}

impl ResultRead {
    /// (what the task record keeps as its result, why the attempt fails).
    pub fn split(self) -> (Option<Result<Value, String>>, Option<String>) {
        match self {
            ResultRead::Kept(kept) => (Some(kept), None),
            ResultRead::Refused(why) => (None, Some(why)),
        }
    }
}

/// A task's output folder under a run's folder (local runs).
pub fn local_dir(run_dir: &Path, task: &TaskRecord) -> PathBuf {
    match task.stage {
        Stage::Map => local_inputs(run_dir).join(task.index.to_string()),
        Stage::Reduce => run_dir.join("reduce"),
    }
}

/// The map tasks' output folders, together: what the reduce reads.
pub fn local_inputs(run_dir: &Path) -> PathBuf {
    run_dir.join("outputs")
}

/// An empty folder for a new attempt (what an earlier attempt left is gone).
pub fn fresh_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(dir)
}

/// The regular files under a folder, as (path relative to it with `/`, size), sorted; links
/// and special files are left out (see [`files::list`] for what was skipped).
pub fn files_under(dir: &Path) -> Result<Vec<(String, u64)>, files::FileError> {
    Ok(files::list(dir)?
        .files
        .into_iter()
        .map(|f| (f.rel, f.size))
        .collect())
}

/// Copies every regular file under `from` to `to`, except files already there with the same
/// size and written no earlier than their source; links and special files are skipped (and
/// counted). Each file is read from the handle that was checked, never through a link.
pub fn copy_dir(from: &Path, to: &Path) -> Result<s3::Moved, files::FileError> {
    let mut moved = s3::Moved::default();
    let listing = files::list(from)?;
    moved.skipped = listing.skipped.len() as u64;
    for listed in listing.files {
        let src = match files::open(from, &listed.rel) {
            Ok(f) => f,
            // Gone, or swapped for a link, since it was listed: not a file to keep.
            Err(e) if e.is_not_found() => continue,
            Err(files::FileError::NotRegular { .. }) => {
                moved.skipped += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let dst = to.join(&listed.rel);
        if s3::unchanged(&dst, src.size, src.modified) {
            moved.unchanged += 1;
            continue;
        }
        let io = |source| files::FileError::Io {
            rel: listed.rel.clone(),
            source,
        };
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut out = std::fs::File::create(&dst).map_err(io)?;
        // At most the size it had when checked: a file that grows meanwhile is cut there.
        let copied = std::io::copy(&mut Read::take(&src.file, src.size), &mut out).map_err(io)?;
        if let Some(t) = src.modified {
            let _ = out.set_modified(t);
        }
        moved.files += 1;
        moved.bytes += copied;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_a_small_json_object() {
        assert_eq!(parse_result(br#"{"loss": 0.5}"#).unwrap()["loss"], 0.5);
        let e = parse_result(b"[1, 2]").unwrap_err();
        assert!(e.contains("JSON object, not an array"), "{e}");
        let e = parse_result(b"{oops").unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
        let big = format!(r#"{{"x": "{}"}}"#, "a".repeat(RESULT_LIMIT));
        let e = parse_result(big.as_bytes()).unwrap_err();
        assert!(e.contains("65 KiB, over the 64 KiB"), "{e}");
    }

    #[test]
    fn results_are_read_from_the_folder_when_there() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_result(dir.path()).is_none());
        std::fs::write(dir.path().join(RESULT_FILE), "x".repeat(RESULT_LIMIT + 10)).unwrap();
        let Some(ResultRead::Kept(Err(e))) = read_result(dir.path()) else {
            panic!("a large result is kept as an error")
        };
        assert!(e.contains("over the 64 KiB"), "{e}");
        std::fs::write(dir.path().join(RESULT_FILE), r#"{"n": 3}"#).unwrap();
        let Some(ResultRead::Kept(Ok(v))) = read_result(dir.path()) else {
            panic!("a result")
        };
        assert_eq!(v["n"], 3);
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/c.txt"), "hi").unwrap();
        assert_eq!(
            files_under(dir.path()).unwrap(),
            [("a/b/c.txt".to_string(), 2), ("result.json".to_string(), 8)]
        );
    }

    #[test]
    fn a_result_that_is_a_link_or_a_pipe_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::os::unix::fs::symlink("/dev/zero", d.join(RESULT_FILE)).unwrap();
        let Some(ResultRead::Refused(why)) = read_result(d) else {
            panic!("a link is refused")
        };
        assert!(why.contains("result.json is a symbolic link"), "{why}");
        std::fs::remove_file(d.join(RESULT_FILE)).unwrap();
        let fifo = d.join(RESULT_FILE);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // Returns at once (no writer is waited for) and says what it is.
        let Some(ResultRead::Refused(why)) = read_result(d) else {
            panic!("a pipe is refused")
        };
        assert!(why.contains("is a named pipe"), "{why}");
    }

    #[test]
    fn copies_take_files_only_and_never_follow_links() {
        let (from, to, host) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        std::fs::write(host.path().join("secret"), "host").unwrap();
        std::fs::create_dir_all(from.path().join("sub")).unwrap();
        std::fs::write(from.path().join("sub/a.txt"), "aaa").unwrap();
        std::os::unix::fs::symlink(host.path().join("secret"), from.path().join("b.txt")).unwrap();
        std::os::unix::fs::symlink(host.path(), from.path().join("dir")).unwrap();
        let moved = copy_dir(from.path(), to.path()).unwrap();
        assert_eq!((moved.files, moved.bytes, moved.skipped), (1, 3, 2));
        assert_eq!(
            std::fs::read_to_string(to.path().join("sub/a.txt")).unwrap(),
            "aaa"
        );
        assert!(!to.path().join("b.txt").exists() && !to.path().join("dir").exists());
        let again = copy_dir(from.path(), to.path()).unwrap();
        assert_eq!((again.files, again.unchanged), (0, 1));
    }
}

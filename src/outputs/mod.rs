//! What a task leaves behind: the files in its `JOBRUN_OUTPUT_DIR`, and among them its
//! **result**, `result.json` (a JSON object, at most 64 KiB), which is kept in the run record.
//!
//! Where outputs live is the same layout for every place: a folder per map task
//! (`outputs/<index>/`) and one for the reduce (`reduce/`), under the run's folder in the state
//! directory (local runs: bind-mounted into the container) or under the run's prefix in the
//! job's bucket (ECS runs: uploaded by the jobrun inside the task, see `s3.rs`). The reduce
//! reads every map task's folder as `JOBRUN_INPUTS_DIR/<index>/`.

pub mod s3;

use crate::record::{Stage, TaskRecord};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A task's result: this file in its output folder.
pub const RESULT_FILE: &str = "result.json";
/// The largest result kept in the record.
pub const RESULT_LIMIT: usize = 64 * 1024;
/// Where a local container sees its output folder, and the reduce its inputs.
pub const CONTAINER_OUTPUT: &str = "/jobrun/output";
pub const CONTAINER_INPUTS: &str = "/jobrun/inputs";

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
pub fn read_result(dir: &Path) -> Option<Result<Value, String>> {
    let path = dir.join(RESULT_FILE);
    let meta = std::fs::metadata(&path).ok()?;
    if meta.len() > RESULT_LIMIT as u64 {
        // Not read: only its size matters.
        return Some(Err(too_large(meta.len())));
    }
    Some(
        std::fs::read(&path)
            .map_err(|e| format!("cannot read result.json: {e}"))
            .and_then(|b| parse_result(&b)),
    )
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

/// The files under a folder, as (path relative to it with `/`, size), sorted.
pub fn files_under(dir: &Path) -> std::io::Result<Vec<(String, u64)>> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d == dir => return Ok(out),
            Err(e) => return Err(e),
        };
        for e in entries {
            let e = e?;
            let kind = e.file_type()?;
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_file() {
                let rel = e.path().strip_prefix(dir).expect("under dir").to_path_buf();
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, e.metadata()?.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Copies every file under `from` to `to`, except files already there with the same size and
/// written no earlier than their source.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<s3::Moved> {
    let mut moved = s3::Moved::default();
    for (rel, size) in files_under(from)? {
        let (src, dst) = (from.join(&rel), to.join(&rel));
        let modified = std::fs::metadata(&src)?.modified().ok();
        if s3::unchanged(&dst, size, modified) {
            moved.unchanged += 1;
            continue;
        }
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&src, &dst)?;
        moved.files += 1;
        moved.bytes += size;
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
        let e = read_result(dir.path()).unwrap().unwrap_err();
        assert!(e.contains("over the 64 KiB"), "{e}");
        std::fs::write(dir.path().join(RESULT_FILE), r#"{"n": 3}"#).unwrap();
        assert_eq!(read_result(dir.path()).unwrap().unwrap()["n"], 3);
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/c.txt"), "hi").unwrap();
        assert_eq!(
            files_under(dir.path()).unwrap(),
            [("a/b/c.txt".to_string(), 2), ("result.json".to_string(), 8)]
        );
    }
}

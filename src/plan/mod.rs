//! The plan: what "N configurations" means, expanded into one task per configuration.
//!
//! A configuration is a JSON object. `--configs N` gives `{"index": i}`; `--configs FILE` reads
//! `.jsonl`, `.json` (an array) or `.csv` (header row → keys); `--matrix key=a,b` multiplies.
//! Each task's command gets its `{index}` / `{config.KEY}` placeholders filled here, so a bad
//! placeholder or a bad line is reported before anything starts. A value is a value: in a
//! shell script it is quoted for where it lands (`jobrun_wire::placeholders`).

pub use jobrun_wire::placeholders::fill_command;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read configs file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    BadLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
    /// More tasks than one run may have.
    #[error("{0}: more than {MAX_TASKS} tasks, the most one run may have")]
    TooMany(String),
    #[error("{0}")]
    S3Url(String),
    #[error("the task role may not read {0}: it is not under any of ecs.inputs")]
    NotAnInput(String),
    #[error("there are no objects under {0}")]
    NoObjects(String),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
}

/// The most tasks one run may have. jobrun's own benchmarks (`bench/`: dispatch, watch, the
/// web view) go to 10,000 tasks, and AWS Batch caps an array job at the same 10,000: a larger
/// sweep is split into runs (or is a typo that would start a fleet).
pub const MAX_TASKS: usize = 10_000;
/// The largest configurations file read (a file of MAX_TASKS configurations of the local
/// size limit fits).
pub const MAX_CONFIGS_FILE: u64 = 1 << 30;
/// The most a configuration (as JSON) or one filled argument may be for a local task: Linux
/// takes at most 128 KiB in one argument or environment string (`MAX_ARG_STRLEN`), and a task
/// gets its configuration as `JOBRUN_CONFIG=…`.
pub const LOCAL_VALUE_LIMIT: usize = 128 * 1024 - 64;
/// The most a configuration may be on ECS (one above ECS's 8 KiB of overrides goes by S3),
/// and one filled argument (inside those 8 KiB of overrides, beside the environment).
pub const ECS_CONFIG_LIMIT: usize = 1024 * 1024;
pub const ECS_ARG_LIMIT: usize = 8 * 1024;

fn too_many(what: impl std::fmt::Display) -> PlanError {
    PlanError::TooMany(what.to_string())
}

/// One task of a run, before it is started.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPlan {
    pub index: usize,
    pub config: Value,
    /// The command with placeholders filled in; `None` runs the image's own command.
    pub command: Option<Vec<String>>,
}

/// Expands `--configs` and `--matrix` into configurations.
pub fn configurations(configs: Option<&str>, matrix: &[String]) -> Result<Vec<Value>, PlanError> {
    let base: Vec<Value> = match configs {
        None => vec![Value::Object(Map::new())],
        Some(text)
            if !text.is_empty()
                && text.bytes().all(|b| b.is_ascii_digit())
                && !Path::new(text).exists() =>
        {
            let n: usize = text
                .parse()
                .map_err(|_| too_many(format!("--configs {text}")))?;
            if n == 0 {
                return Err(PlanError::Invalid("--configs 0: nothing to run".into()));
            }
            if n > MAX_TASKS {
                return Err(too_many(format!("--configs {n}")));
            }
            (0..n).map(|i| serde_json::json!({ "index": i })).collect()
        }
        Some(path) => read_file(Path::new(path))?,
    };
    if configs.is_none() && matrix.is_empty() {
        return Err(PlanError::Invalid(
            "nothing to run: give --configs N, --configs FILE or --matrix KEY=A,B".into(),
        ));
    }
    let mut out = base;
    for spec in matrix {
        let (key, values) = spec
            .split_once('=')
            .filter(|(k, v)| !k.trim().is_empty() && !v.is_empty())
            .ok_or_else(|| {
                PlanError::Invalid(format!("--matrix `{spec}` is not of the form key=a,b,c"))
            })?;
        let values: Vec<Value> = values.split(',').map(scalar).collect();
        // Counted before it is made: a product of a few long lists is astronomically large.
        if out.len().saturating_mul(values.len()) > MAX_TASKS {
            return Err(too_many("--matrix"));
        }
        out = out
            .into_iter()
            .flat_map(|cfg| {
                values.iter().map(move |v| {
                    let mut obj = cfg.as_object().cloned().unwrap_or_default();
                    obj.insert(key.trim().to_string(), v.clone());
                    Value::Object(obj)
                })
            })
            .collect();
    }
    Ok(out)
}

/// `--matrix` values: numbers and booleans stay typed, anything else is a string.
fn scalar(s: &str) -> Value {
    match serde_json::from_str::<Value>(s) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(s.to_string()),
    }
}

fn read_file(path: &Path) -> Result<Vec<Value>, PlanError> {
    let read = |source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read)?.len();
    if size > MAX_CONFIGS_FILE {
        return Err(PlanError::Invalid(format!(
            "{} is {} MiB, over the {} MiB a configurations file may be",
            path.display(),
            size >> 20,
            MAX_CONFIGS_FILE >> 20
        )));
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let bad = |line: usize, message: String| PlanError::BadLine {
        path: path.to_path_buf(),
        line,
        message,
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let configs = match ext.as_str() {
        "jsonl" | "ndjson" => {
            let mut out = vec![];
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                if out.len() == MAX_TASKS {
                    return Err(too_many(path.display()));
                }
                let v: Value = serde_json::from_str(line)
                    .map_err(|e| bad(i + 1, format!("not valid JSON: {e}")))?;
                if !v.is_object() {
                    return Err(bad(i + 1, "each line must be a JSON object".into()));
                }
                out.push(v);
            }
            out
        }
        "json" => {
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| bad(e.line(), format!("not valid JSON: {e}")))?;
            let Value::Array(items) = v else {
                return Err(bad(
                    1,
                    "a .json configs file must hold an array of objects".into(),
                ));
            };
            if let Some(pos) = items.iter().position(|v| !v.is_object()) {
                return Err(bad(
                    1,
                    format!("item {pos} of the array is not a JSON object"),
                ));
            }
            items
        }
        "csv" => {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let headers = reader
                .headers()
                .map_err(|e| bad(1, format!("bad CSV header: {e}")))?
                .clone();
            let mut out = vec![];
            for record in reader.records() {
                let record = record.map_err(|e| {
                    let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                    bad(line, format!("bad CSV row: {e}"))
                })?;
                let obj: Map<String, Value> = headers
                    .iter()
                    .zip(record.iter())
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                    .collect();
                out.push(Value::Object(obj));
            }
            out
        }
        _ => {
            return Err(PlanError::Invalid(format!(
                "{}: unknown configs format; use .jsonl, .json or .csv, or a number",
                path.display()
            )));
        }
    };
    if configs.is_empty() {
        return Err(PlanError::Invalid(format!(
            "{}: holds no configurations",
            path.display()
        )));
    }
    if configs.len() > MAX_TASKS {
        return Err(too_many(path.display()));
    }
    Ok(configs)
}

/// One task per configuration, with each task's command filled in.
pub fn tasks(
    configs: Vec<Value>,
    command: Option<&[String]>,
    run_id: &str,
) -> Result<Vec<TaskPlan>, PlanError> {
    let count = configs.len();
    configs
        .into_iter()
        .enumerate()
        .map(|(index, config)| {
            let command = command
                .map(|argv| fill_command(argv, index, count, run_id, &config))
                .transpose()
                .map_err(|m| PlanError::Invalid(format!("task {index}: {m}")))?;
            Ok(TaskPlan {
                index,
                config,
                command,
            })
        })
        .collect()
}

/// Refuses configurations and filled arguments larger than the target carries, naming the
/// first task over (`arg_limit`: one argument; `config_limit`: a configuration as JSON).
pub fn check_sizes(
    tasks: &[TaskPlan],
    config_limit: usize,
    arg_limit: usize,
) -> Result<(), PlanError> {
    for t in tasks {
        let config = t.config.to_string().len();
        if config > config_limit {
            return Err(PlanError::Invalid(format!(
                "task {}: its configuration is {} KiB as JSON, over the {} KiB a task of this target can be given",
                t.index,
                config.div_ceil(1024),
                config_limit / 1024
            )));
        }
        let longest = t
            .command
            .iter()
            .flatten()
            .map(String::len)
            .max()
            .unwrap_or(0);
        if longest > arg_limit {
            return Err(PlanError::Invalid(format!(
                "task {}: its command has an argument of {} KiB after placeholders, over the {} KiB this target can pass",
                t.index,
                longest.div_ceil(1024),
                arg_limit / 1024
            )));
        }
    }
    Ok(())
}

/// A configuration with the extra environment of its task alone.
pub type WithEnv = (Value, std::collections::BTreeMap<String, String>);

/// `--from-s3 s3://bucket/prefix`: one configuration per object (`{"bucket", "key"}`, and
/// `S3_BUCKET`/`S3_KEY` in the task's environment), listed page by page. The prefix must be
/// under one of the job's `[ecs] inputs`, which the task role may read.
pub async fn configurations_from_s3(
    aws: &crate::aws::Aws,
    inputs: &[(String, String)],
    url: &str,
) -> Result<Vec<WithEnv>, PlanError> {
    let (bucket, prefix) = crate::config::parse_s3_url(url).map_err(PlanError::S3Url)?;
    let covered = inputs
        .iter()
        .any(|(b, p)| *b == bucket && prefix.starts_with(p.as_str()));
    if !covered {
        return Err(PlanError::NotAnInput(url.to_string()));
    }
    let mut configs = vec![];
    for listed in crate::aws::list_objects(&aws.s3(), &bucket, &prefix).await? {
        if listed.rel.ends_with('/') {
            continue;
        }
        if configs.len() == MAX_TASKS {
            return Err(too_many(url));
        }
        let key = format!("{prefix}{}", listed.rel);
        let mut env = std::collections::BTreeMap::from([
            ("S3_BUCKET".to_string(), bucket.clone()),
            ("S3_KEY".to_string(), key.clone()),
        ]);
        // The object's content, as S3 names it: in the task's key, so `--reuse` never
        // reuses a task whose object changed under the same name.
        if let Some(etag) = listed.etag {
            env.insert("S3_ETAG".to_string(), etag);
        }
        configs.push((serde_json::json!({"bucket": bucket, "key": key}), env));
    }
    if configs.is_empty() {
        return Err(PlanError::NoObjects(url.to_string()));
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn count_and_matrix_product() {
        let c = configurations(Some("3"), &[]).unwrap();
        assert_eq!(
            c,
            vec![json!({"index":0}), json!({"index":1}), json!({"index":2})]
        );
        let m = configurations(None, &["lr=0.1,0.01".into(), "model=a,b,c".into()]).unwrap();
        assert_eq!(m.len(), 6);
        assert_eq!(m[0], json!({"lr":0.1,"model":"a"}));
        assert_eq!(m[5], json!({"lr":0.01,"model":"c"}));
        assert!(configurations(None, &[]).is_err());
        assert!(configurations(Some("0"), &[]).is_err());
        assert!(configurations(None, &["novalue".into()]).is_err());
    }

    #[test]
    fn files_in_each_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            p.to_string_lossy().into_owned()
        };
        let jsonl = p("a.jsonl", "{\"x\":1}\n\n{\"x\":2}\n");
        assert_eq!(configurations(Some(&jsonl), &[]).unwrap().len(), 2);
        let json = p("a.json", "[{\"x\":1},{\"x\":2},{\"x\":3}]");
        assert_eq!(configurations(Some(&json), &[]).unwrap().len(), 3);
        let csv = p("a.csv", "name,size\nfoo,1\nbar,2\n");
        assert_eq!(
            configurations(Some(&csv), &[]).unwrap(),
            vec![
                json!({"name":"foo","size":"1"}),
                json!({"name":"bar","size":"2"})
            ]
        );
        let bad = p("bad.jsonl", "{\"x\":1}\n{\"x\":\n{\"x\":3}\n");
        let e = configurations(Some(&bad), &[]).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl:2: not valid JSON"), "{e}");
        let notobj = p("n.jsonl", "{\"x\":1}\n[1]\n");
        assert!(
            configurations(Some(&notobj), &[])
                .unwrap_err()
                .to_string()
                .contains(":2:")
        );
    }

    #[test]
    fn a_bad_placeholder_names_its_task() {
        let t = tasks(
            vec![json!({"a":1}), json!({})],
            Some(&["x{config.a}".to_string()]),
            "r",
        );
        assert!(t.unwrap_err().to_string().starts_with("task 1:"));
    }
}

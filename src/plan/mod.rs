//! The plan: what "N configurations" means, expanded into one task per configuration.
//!
//! A configuration is a JSON object. `--configs N` gives `{"index": i}`; `--configs FILE` reads
//! `.jsonl`, `.json` (an array) or `.csv` (header row → keys); `--matrix key=a,b` multiplies.
//! Each task's command gets its `{index}` / `{config.KEY}` placeholders filled here, so a bad
//! placeholder or a bad line is reported before anything starts.

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
    #[error("{0}")]
    S3Url(String),
    #[error("the task role may not read {0}: it is not under any of ecs.inputs")]
    NotAnInput(String),
    #[error("there are no objects under {0}")]
    NoObjects(String),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
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
                .map_err(|_| PlanError::Invalid(format!("--configs {text} is too large")))?;
            if n == 0 {
                return Err(PlanError::Invalid("--configs 0: nothing to run".into()));
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
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    })?;
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
                .map(|argv| {
                    argv.iter()
                        .map(|arg| fill(arg, index, count, run_id, &config))
                        .collect::<Result<Vec<_>, _>>()
                })
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

/// Fills `{index}`, `{count}`, `{run_id}`, `{config}` and `{config.KEY[.KEY]}`; `{{`/`}}` are literal braces.
pub fn fill(
    template: &str,
    index: usize,
    count: usize,
    run_id: &str,
    config: &Value,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(format!(
                "unmatched `}}` in `{template}` (write `}}}}` for a literal brace)"
            ));
        }
        let end = tail.find('}').ok_or_else(|| {
            format!("unclosed `{{` in `{template}` (write `{{{{` for a literal brace)")
        })?;
        let key = &tail[1..end];
        let value = match key {
            "index" => index.to_string(),
            "count" => count.to_string(),
            "run_id" => run_id.to_string(),
            "config" => config.to_string(),
            _ => {
                let path = key.strip_prefix("config.").ok_or_else(|| {
                    format!("unknown placeholder `{{{key}}}`; use {{index}}, {{count}}, {{run_id}}, {{config}} or {{config.KEY}}")
                })?;
                let mut v = config;
                for part in path.split('.') {
                    v = v.get(part).ok_or_else(|| {
                        format!("placeholder `{{{key}}}`: config {config} has no key `{path}`")
                    })?;
                }
                match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }
            }
        };
        out.push_str(&value);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
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
    fn placeholders() {
        let cfg = json!({"lr": 0.1, "name": "big", "nested": {"k": "v"}});
        assert_eq!(
            fill(
                "--lr={config.lr} --n {config.name} {config.nested.k} #{index}/{count}",
                3,
                10,
                "r1",
                &cfg
            )
            .unwrap(),
            "--lr=0.1 --n big v #3/10"
        );
        assert_eq!(fill("{{literal}}", 0, 1, "r", &cfg).unwrap(), "{literal}");
        assert!(
            fill("{config.missing}", 0, 1, "r", &cfg)
                .unwrap_err()
                .contains("no key `missing`")
        );
        assert!(fill("{nope}", 0, 1, "r", &cfg).is_err());
        assert!(fill("{index", 0, 1, "r", &cfg).is_err());
        let t = tasks(
            vec![json!({"a":1}), json!({})],
            Some(&["x{config.a}".to_string()]),
            "r",
        );
        assert!(t.unwrap_err().to_string().starts_with("task 1:"));
    }
}

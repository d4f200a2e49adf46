//! `init`, `config` and `completions`: starting a job folder and looking at what jobrun makes of it.

use super::common::load_job;
use crate::cli::{Cli, ConfigArgs, InitArgs};
use crate::config::Job;
use crate::error::{Exit, Result};
use crate::ui::Ui;
use clap::ArgMatches;
use serde::Serialize;
use std::fmt;
use std::path::Path;

pub fn init(args: InitArgs, ui: &Ui) -> Result<Exit> {
    let dir = args.dir.unwrap_or_else(|| ".".into());
    let name = args
        .name
        .unwrap_or_else(|| crate::init::name_from_dir(&dir));
    let written = crate::init::render(&args.template, &dir, &name)?;
    ui.emit(&Initialised {
        job: name,
        template: args.template,
        dir: dir.display().to_string(),
        files: written.iter().map(|p| p.display().to_string()).collect(),
    });
    Ok(Exit::Ok)
}

pub fn config(
    file: Option<&Path>,
    args: &ConfigArgs,
    sub: Option<&ArgMatches>,
    ui: &Ui,
) -> Result<Exit> {
    let mut job = load_job(file, &args.overrides, sub)?;
    // A webhook URL's path and query are its secret: only its host is shown.
    if let Some(url) = job.notify.as_mut().and_then(|n| n.webhook.as_mut()) {
        *url = crate::notify::redact(url);
    }
    ui.emit(&JobView(job));
    Ok(Exit::Ok)
}

pub fn completions(shell: clap_complete::Shell) -> Result<Exit> {
    use clap::CommandFactory;
    // Into a buffer, then through the quiet-pipe stdout: clap_complete panics on a write
    // error, so `jobrun completions bash | head` used to end in a panic.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "jobrun", &mut script);
    use std::io::Write;
    let _ = crate::ui::Stdout.write_all(&script);
    Ok(Exit::Ok)
}

/// The manual page, made from the same clap definition as `--help`.
pub fn man() -> Result<Exit> {
    use clap::CommandFactory;
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| crate::error::Failure::env(format!("cannot render the manual page: {e}")))?;
    use std::io::Write;
    let _ = crate::ui::Stdout.write_all(&page);
    Ok(Exit::Ok)
}

#[derive(Serialize)]
struct Initialised {
    job: String,
    template: String,
    dir: String,
    files: Vec<String>,
}

impl fmt::Display for Initialised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "created job `{}` from the {} template:",
            self.job, self.template
        )?;
        for file in &self.files {
            writeln!(f, "  {file}")?;
        }
        write!(
            f,
            "next: cd {} && jobrun build && jobrun submit --configs 4",
            self.dir
        )
    }
}

/// `jobrun config`: the resolved job as JSON (text output pretty-prints it).
#[derive(Serialize)]
#[serde(transparent)]
struct JobView(Job);

/// The effective settings as TOML in jobrun.toml's own layout — `[job]` (name, target, the
/// file and its folder), `[schedule]` — with nothing unset shown (JSON with `-o json`).
impl fmt::Display for JobView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match as_toml(&self.0) {
            Ok(text) => write!(f, "{text}"),
            Err(e) => write!(
                f,
                "# not expressible as TOML ({e}); as JSON:\n{}",
                serde_json::to_string_pretty(&self.0).unwrap_or_default()
            ),
        }
    }
}

fn as_toml(job: &Job) -> std::result::Result<String, String> {
    let mut all = serde_json::to_value(job).map_err(|e| e.to_string())?;
    let map = all.as_object_mut().ok_or("not a table")?;
    let mut head = serde_json::Map::new();
    for key in ["name", "target", "file", "dir"] {
        if let Some(v) = map.remove(key) {
            head.insert(key.into(), v);
        }
    }
    if let Some(overlap) = map.remove("overlap") {
        map.insert("schedule".into(), serde_json::json!({ "overlap": overlap }));
    }
    // Where the file is, not a setting: said in a comment above the settings.
    let from = head.remove("file");
    head.remove("dir");
    map.insert("job".into(), head.into());
    file_layout(map);
    // In the file's order (a JSON map sorts its keys), one section at a time.
    let order = [
        "job",
        "image",
        "ecr",
        "resources",
        "run",
        "ecs",
        "queue",
        "schedule",
        "notify",
        "reduce",
        "cost",
        "results",
        "aws",
    ];
    // Every section: those of the file's order first, then any other (none is dropped).
    let rest: Vec<String> = map
        .keys()
        .filter(|k| !order.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut sections = vec![];
    for key in order.iter().map(|k| k.to_string()).chain(rest) {
        let key = key.as_str();
        if let Some(v) = map.remove(key).filter(|v| !v.is_null()).map(without_nulls) {
            let one = serde_json::json!({ key: v });
            sections.push(toml::to_string(&one).map_err(|e| format!("{key}: {e}"))?);
        }
    }
    let from = from
        .as_ref()
        .and_then(|f| f.as_str())
        .map(|f| {
            format!(
                "# the settings of {f}, as jobrun resolves them (environment and flags included)\n"
            )
        })
        .unwrap_or_default();
    let machines = match job.managed_instances() {
        true => {
            "# its tasks run on ECS Managed Instances (it needs a GPU or instance types; Fargate has neither)\n"
        }
        false => "",
    };
    Ok(format!(
        "{from}{machines}{}",
        sections.join("\n").trim_end()
    ))
}

/// The resolved job in jobrun.toml's own keys, where they differ from the `Job` types': the
/// registry as `image.registry` and `[ecr]`; `[ecs]` capacity, rates flat; queue mode's
/// settings as `[queue]`; S3 prefixes as `s3://` URLs; what resolving adds (a notification's
/// profile) left out. So what `jobrun config` prints loads back.
fn file_layout(map: &mut serde_json::Map<String, serde_json::Value>) {
    use serde_json::{Value, json};
    let s3 = |v: &Value| match v.as_array().map(Vec::as_slice) {
        Some([b, p]) => Value::from(format!(
            "s3://{}/{}",
            b.as_str().unwrap_or_default(),
            p.as_str().unwrap_or_default()
        )),
        _ => v.clone(),
    };
    if let Some(image) = map.get_mut("image").and_then(Value::as_object_mut)
        && let Some(Value::Object(mut registry)) = image.remove("registry")
    {
        match registry.remove("kind").as_ref().and_then(Value::as_str) {
            Some("ecr") => {
                image.insert("registry".into(), json!("ecr"));
                map.insert("ecr".into(), Value::Object(registry));
            }
            Some("oci") => {
                let at = |k: &str| registry.get(k).and_then(Value::as_str).unwrap_or_default();
                let url = format!("{}/{}", at("host"), at("namespace"));
                image.insert("registry".into(), json!(url.trim_end_matches('/')));
            }
            _ => {}
        }
    }
    let Some(ecs) = map.get_mut("ecs").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(Value::Object(capacity)) = ecs.remove("capacity") {
        for (k, v) in capacity {
            ecs.insert(if k == "kind" { "capacity".into() } else { k }, v);
        }
    }
    if let Some(Value::Object(rates)) = ecs.remove("rates") {
        ecs.extend(rates);
    }
    if let Some(inputs) = ecs.get_mut("inputs").and_then(Value::as_array_mut) {
        for i in inputs.iter_mut() {
            *i = s3(i);
        }
    }
    let queue = ecs.remove("queue");
    if let Some(Value::Object(mut queue)) = queue {
        if let Some(trigger) = queue.get("s3_trigger").cloned() {
            queue.insert("s3_trigger".into(), s3(&trigger));
        }
        map.insert("queue".into(), Value::Object(queue));
    }
    if let Some(notify) = map.get_mut("notify").and_then(Value::as_object_mut) {
        notify.remove("profile");
    }
}

/// TOML has no null: unset settings are left out.
fn without_nulls(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use crate::config::Overrides;

    /// What `jobrun config` prints is a jobrun.toml: it loads back, to the same settings.
    #[test]
    fn the_printed_config_loads_back() {
        let text = r#"
[job]
name = "wc"
target = "ecs"

[image]
platform = "linux/arm64"
agent = { arm64 = "/opt/jobrun-arm64" }
build_args = { A = "1" }

[resources]
cpu = 1
memory = "2GB"
max_memory = "8GB"

[run]
command = ["python", "train.py", "{config.lr}"]
timeout = "30m"
retry_exit_codes = [2, 3]
env = { MODE = "full" }

[ecs]
capacity = "spot"
on_demand_base = 1
mode = "queue"
inputs = ["s3://data/in/"]
secrets = { TOKEN = "/jobrun/token" }

[queue]
max_workers = 20
visibility = "2h"

[ecr]
keep_images = 5

[notify]
sns_topic = "arn:aws:sns:us-east-1:123456789012:runs"

[reduce]
command = ["python", "reduce.py"]
when = "always"

[results]
metric = "loss"

[cost]
max_per_run = 10.0

[aws]
region = "eu-west-1"
"#;
        let none = Overrides::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobrun.toml");
        let job = crate::config::from_text(&path, text, &none, &none).unwrap();
        let printed = as_toml(&job).unwrap();
        let again = crate::config::from_text(&path, &printed, &none, &none)
            .unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&job).unwrap(),
            "{printed}"
        );
        assert_eq!(as_toml(&again).unwrap(), printed);
    }
}

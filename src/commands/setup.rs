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
    map.insert("job".into(), head.into());
    // In the file's order (a JSON map sorts its keys), one section at a time.
    let order = [
        "job",
        "image",
        "resources",
        "run",
        "ecs",
        "schedule",
        "notify",
        "results",
        "aws",
    ];
    let mut sections = vec![];
    for key in order {
        if let Some(v) = map.remove(key).filter(|v| !v.is_null()).map(without_nulls) {
            let one = serde_json::json!({ key: v });
            sections.push(toml::to_string(&one).map_err(|e| format!("{key}: {e}"))?);
        }
    }
    Ok(sections.join("\n").trim_end().to_string())
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

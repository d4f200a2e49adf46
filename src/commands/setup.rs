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
    clap_complete::generate(shell, &mut Cli::command(), "jobrun", &mut std::io::stdout());
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

impl fmt::Display for JobView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            serde_json::to_string_pretty(&self.0).map_err(|_| fmt::Error)?
        )
    }
}

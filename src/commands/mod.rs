//! One function per command, reading like the pipeline: config → plan → image → infra →
//! dispatch → watch. This file only routes a parsed command line to its group:
//! `image` (build, push, images), `infra` (up, down), `submit`, `runs` (watch, status, logs,
//! cancel, retry, runs), `web` (`jobrun ui`: the same reads and actions in a browser), `setup` (init, config, completions). `common` is what they share:
//! finding the job, the state directory, AWS access and the run a command names.

mod common;
mod drive;
mod driver;
mod estimate;
mod gate;
mod image;
mod infra;
mod request;
mod results;
mod runs;
mod schedule;
mod setup;
mod submit;
mod web;

use crate::cli::{Cli, Command};
use crate::error::{Exit, Result};
use clap::ArgMatches;

pub async fn run(cli: Cli, matches: &ArgMatches) -> Result<Exit> {
    let ui = crate::ui::Ui::new(cli.output);
    crate::aws::Access::set_flags(crate::aws::Access {
        profile: cli.profile.clone(),
        region: cli.region.clone(),
        in_aws: matches!(cli.command, Command::Drive(_) | Command::Dispatch(_)),
    });
    let sub = matches.subcommand().map(|(_, m)| m);
    let file = cli.file.as_deref();
    if cli.output == crate::ui::OutputFormat::Csv && !matches!(cli.command, Command::Results(_)) {
        return Err(
            crate::error::Failure::usage("-o csv is for `jobrun results` only")
                .hint("use -o json (or text) with this command"),
        );
    }
    match cli.command {
        Command::Init(args) => setup::init(args, &ui),
        Command::Config(args) => setup::config(file, &args, sub, &ui),
        Command::Completions { shell } => setup::completions(shell),
        Command::Man => setup::man(),
        Command::Build(args) => image::build(file, &args, sub, &ui).await,
        Command::Push(args) => image::push(file, &args, sub, &ui).await,
        Command::Images => image::images(file, &ui),
        Command::AgentImage(args) => image::agent_image(&args, &ui).await,
        Command::Up(args) => infra::up(file, &args, sub, &ui).await,
        Command::Down(args) => infra::down(file, &args, &ui).await,
        Command::IamPolicy(args) => infra::iam_policy(file, &args, &ui).await,
        Command::Submit(args) => submit::submit(file, args, sub, &ui).await,
        Command::Watch(args) => runs::watch(file, args, &ui).await,
        Command::Status(args) => runs::status(file, &args, &ui).await,
        Command::Logs(args) => runs::logs(file, args).await,
        Command::Cancel(args) => runs::cancel(file, args, &ui).await,
        Command::Retry(args) => runs::retry(file, args, &ui).await,
        Command::Runs(args) => runs::list(file, args, &ui),
        Command::Results(args) => results::results(file, args, &ui).await,
        Command::Ui(args) => web::ui(file, args).await,
        Command::Schedule(command) => schedule::run(file, command, &ui).await,
        Command::Dispatch(args) => schedule::dispatch(args, &ui).await,
        Command::Drive(args) => driver::drive(args, &ui).await,
    }
}

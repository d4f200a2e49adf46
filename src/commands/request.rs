//! What a submit is asked for: one request type that the command line (`submit`) and a
//! schedule's dispatcher (`jobrun dispatch`) both build, and that the gate, the estimate and
//! `submit::make_run` read. It is its own module so that they all depend on it and not on each
//! other.

use crate::cli::{RepositoryArgs, SubmitArgs};
use crate::config::{Job, Overlap};

/// What a submit is asked for, whoever asks: the command line (`SubmitArgs`), or a schedule's
/// dispatcher (`jobrun dispatch`, from the stored definition). From here on both are one path.
pub struct SubmitRequest {
    pub job: Job,
    pub tasks: Tasks,
    pub detach: bool,
    /// Build the image first (for the ecs target: build, push and `up`).
    pub build: bool,
    pub key: Option<String>,
    pub overlap: Option<Overlap>,
    pub dry_run: bool,
    pub max_cost: Option<f64>,
    /// `--max-duration`: refused when the run's estimated length is longer.
    pub max_duration: Option<std::time::Duration>,
    /// Submitted by a schedule's dispatcher, whose task is costed with the run.
    pub scheduled: bool,
    /// Where `--build` pushes to.
    pub aws: RepositoryArgs,
    /// Which earlier runs' tasks it may reuse.
    pub reuse: crate::reuse::Reuse,
}

/// Where a submit's tasks come from.
pub enum Tasks {
    /// `--configs N|FILE` and `--matrix`, planned here.
    Planned {
        configs: Option<String>,
        matrix: Vec<String>,
    },
    /// Configurations expanded before (a schedule's, at `schedule add`).
    Given(Vec<serde_json::Value>),
    /// `--from-s3`: one task per object under the prefix.
    FromS3(String),
}

impl SubmitRequest {
    /// The command line's request (`--resume` is not a request for a new run).
    pub fn of(job: Job, args: SubmitArgs) -> SubmitRequest {
        let tasks = match args.from_s3 {
            Some(url) => Tasks::FromS3(url),
            None => Tasks::Planned {
                configs: args.configs,
                matrix: args.matrix,
            },
        };
        use crate::reuse::Reuse;
        let reuse = match (args.no_reuse, args.reuse) {
            (true, _) => Reuse::No,
            (false, Some(run)) if run.is_empty() => Reuse::Any,
            (false, Some(run)) => Reuse::From(run),
            (false, None) if job.run.reuse => Reuse::Any,
            (false, None) => Reuse::No,
        };
        SubmitRequest {
            reuse,
            job,
            tasks,
            detach: args.detach,
            build: args.build,
            key: args.key,
            overlap: args.overlap,
            dry_run: args.dry_run,
            max_cost: args.max_cost,
            max_duration: args.max_duration,
            scheduled: args.scheduled,
            aws: args.aws,
        }
    }
}

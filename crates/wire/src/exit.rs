//! The process exit codes, documented in README.md: the CLI's, and the jobrun's inside a task
//! for what is its own (a task's own exit code is the command's, and `wire::NO_RECEIPT` says
//! the jobrun in it could not write its receipt).

/// The process exit codes, documented in README.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every task succeeded (or the command did what it was asked).
    Ok = 0,
    /// The run finished and at least one task failed or was cancelled.
    TasksFailed = 1,
    /// Usage, config or input error: nothing was started or created.
    Usage = 2,
    /// The environment is not usable: Docker engine unreachable, state directory not writable.
    Environment = 3,
    /// The image could not be built (pre-build command or a Dockerfile step failed).
    BuildFailed = 4,
    /// Ctrl-C detached from a run; its tasks keep running.
    Detached = 130,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

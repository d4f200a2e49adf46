//! jobrun's wire crate: what the jobrun on a user's machine and the jobrun inside a task (and
//! the driver in AWS) must agree on, with nothing that only one side needs — serde and chrono,
//! no AWS SDK, no engine, no terminal. The CLI and the slim in-AWS agent (`jobrun-agent`) both
//! build on it, so a change here is a change of the contract (`wire::WIRE`, the record's
//! schema and its golden test).
//!
//! - `record`: the run record (schema, tasks, timeline), as `runs/<run>.json` and S3 keep it;
//! - `wire`: the run's S3 layout, queue messages, receipts and result records;
//! - `layout`: where a job's things are in its bucket;
//! - `resources`: task sizes (Fargate's table of vCPU and memory pairs);
//! - `arn`: how an account's ARNs are spelled;
//! - `placeholders`: a task's command filled from its configuration, as data;
//! - `durations`: "90s", "30m", "1h", bounded;
//! - `usage`: what an attempt used;
//! - `exit`: the process exit codes.

pub mod arn;
pub mod durations;
pub mod exit;
pub mod layout;
pub mod placeholders;
pub mod record;
pub mod resources;
pub mod usage;
pub mod wire;

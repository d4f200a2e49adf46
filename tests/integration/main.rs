//! One integration-test binary that drives the real `jobrun` executable against the real Docker
//! engine (the shape of just's `tests/`). No test pulls an image: the test job is a static binary
//! (tests/fixtures/task.rs) in a FROM-scratch image that `jobrun build` makes.

mod docker_proxy;
mod harness;
mod services;

mod aws_rules;
mod bad_input;
mod build;
mod checkpoints;
mod configs;
mod cost;
mod driver;
mod ecs;
mod gpus;
mod in_aws;
mod infra;
mod init;
mod lifecycle;
mod local_faults;
mod outputs_ecs;
mod push;
mod queue;
mod quotas;
mod release;
mod results;
mod runs;
mod schedules;
mod task_data;
mod unattended;
mod usage;
mod web;

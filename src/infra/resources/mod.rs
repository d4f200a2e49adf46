//! The AWS resources of a job, one file each. Every file holds what `down` does with its
//! resource — discover and delete — side by side (`up`'s side moves here next). The files know
//! nothing of each other: `down` puts them in order.
//!
//! This file holds what they share: the context they read ([`Ctx`]) and what `down` found to
//! delete ([`Teardown`], [`Deletion`]).

pub mod bucket;
pub mod cluster;
pub mod iam;
pub mod logs;
pub mod network;
pub mod queue;
pub mod repository;
pub mod scaling;
pub mod service;
pub mod taskdef;
pub mod trigger;

use crate::aws::Aws;
use crate::config::Job;
use crate::infra::{Action, Change, InfraError, Names, TAG_JOB};

/// What every step reads: the job, the AWS clients, the job's names.
pub struct Ctx<'a> {
    pub job: &'a Job,
    pub aws: &'a Aws,
    pub names: Names,
}

impl<'a> Ctx<'a> {
    pub async fn new(job: &'a Job, aws: &'a Aws) -> Result<Ctx<'a>, InfraError> {
        let account = aws.account().await?;
        let region = aws.region();
        Ok(Ctx {
            job,
            aws,
            names: Names::new(job, &account, &region),
        })
    }

    /// Whether these tags mark a resource as made by jobrun for this job.
    pub fn ours<'t>(&self, mut tags: impl Iterator<Item = (&'t str, &'t str)>) -> bool {
        tags.any(|(k, v)| k == TAG_JOB && v == self.job.name)
    }
}

/// A resource `down` found for deletion, with what deleting it takes.
pub enum Deletion {
    /// The workers' service, with its scalable target and policy.
    Service {
        cluster: String,
        service: String,
        scalable_target: String,
    },
    Notification {
        bucket: String,
        id: String,
    },
    Queue(String),
    TaskDefinitions(Vec<String>),
    Cluster(String),
    SecurityGroup(String),
    Role(String),
    LogGroup(String),
    Bucket(String),
    Repository(String),
}

impl Deletion {
    pub async fn delete(self, aws: &Aws) -> Result<(), InfraError> {
        match self {
            Deletion::Service {
                cluster,
                service,
                scalable_target,
            } => {
                // The scaling goes first: it would otherwise act on a service being deleted.
                scaling::delete(aws, &scalable_target).await?;
                service::delete(aws, &cluster, &service).await
            }
            Deletion::Notification { bucket, id } => trigger::delete(aws, &bucket, &id).await,
            Deletion::Queue(url) => queue::delete(aws, &url).await,
            Deletion::TaskDefinitions(arns) => taskdef::delete(aws, &arns).await,
            Deletion::Cluster(name) => cluster::delete(aws, &name).await,
            Deletion::SecurityGroup(id) => network::delete(aws, &id).await,
            Deletion::Role(name) => iam::delete(aws, &name).await,
            Deletion::LogGroup(name) => logs::delete(aws, &name).await,
            Deletion::Bucket(name) => bucket::delete(aws, &name).await,
            Deletion::Repository(name) => repository::delete(aws, &name).await,
        }
    }
}

/// What `down` found: one change per resource, and what to delete, in order.
#[derive(Default)]
pub struct Teardown {
    pub changes: Vec<Change>,
    pub deletions: Vec<Deletion>,
}

impl Teardown {
    /// Notes a change; `deletion` is kept only when the change is a delete.
    pub fn plan(&mut self, change: Change, deletion: Option<Deletion>) {
        if let Some(d) = deletion.filter(|_| change.action == Action::Delete) {
            self.deletions.push(d);
        }
        self.changes.push(change);
    }
}

//! Every name derived from the job, in one place: what `up` makes and `down` looks for. Each is
//! checked against its service's naming rule ([`Rule`]) before `up`, `down` or `submit` makes a
//! call that writes, so a name AWS would refuse is one error up front.

use crate::config::Job;
use crate::config::rules::{Rule, RuleBroken};

/// A derived or configured name that its service would refuse.
#[derive(Debug, thiserror::Error)]
#[error("the {resource} name `{name}` would be refused: {broken}")]
pub struct NameError {
    pub resource: &'static str,
    pub name: String,
    pub broken: RuleBroken,
}

/// Every name derived from the job: what `up` makes and `down` looks for, in one place.
pub struct Names {
    pub cluster: String,
    pub log_group: String,
    pub execution_role: String,
    pub task_role: String,
    pub security_group: String,
    pub bucket: String,
    /// The task definition family of the job's own task.
    pub family: String,
    /// Queue mode: the work queue, its dead-letter queue, the workers' service, the agent's
    /// task definition family, the service's scalable target and jobrun's S3 notification id.
    pub queue: String,
    pub dlq: String,
    pub service: String,
    pub agent_family: String,
    pub scalable_target: String,
    pub notification: String,
    /// The ECR repository `push` makes, when the job's registry is ECR.
    pub repository: Option<String>,
    /// Schedules (`jobrun schedule`): the schedule group, the dispatcher's task definition
    /// family and role, the role EventBridge Scheduler runs it with, and the dead-letter
    /// queue of deliveries that failed.
    pub schedule_group: String,
    pub dispatcher_family: String,
    pub dispatcher_role: String,
    pub scheduler_role: String,
    pub schedule_dlq: String,
    /// The ECS service that keeps the job's driver (the dispatcher's task definition, running
    /// `jobrun drive`) while runs driven in AWS are unfinished; desired 0 otherwise.
    pub driver_service: String,
    /// ECS Managed Instances (a job with a GPU or instance types): the role ECS launches
    /// instances with, the instances' role (and its instance profile, of the same name: its
    /// name starts `ecsInstanceRole`, the only roles AWS's managed infrastructure policy may
    /// pass), and the Spot and on-demand capacity providers.
    pub infrastructure_role: String,
    pub instance_role: String,
    pub spot_provider: String,
    pub on_demand_provider: String,
}

impl Names {
    pub fn new(job: &Job, account: &str, region: &str) -> Names {
        let j = &job.name;
        let bucket = {
            let plain = format!("jobrun-{j}-{account}-{region}").replace('_', "-");
            if plain.len() <= 63 {
                plain
            } else {
                use sha2::Digest;
                let h = format!("{:x}", sha2::Sha256::digest(j.as_bytes()));
                format!("jobrun-{}-{account}-{region}", &h[..12])
            }
        };
        let cluster = job
            .ecs
            .cluster
            .clone()
            .unwrap_or_else(|| format!("jobrun-{j}"));
        let service = format!("jobrun-{j}-workers");
        let repository = job.ecr_repository();
        Names {
            scalable_target: format!("service/{cluster}/{service}"),
            cluster,
            log_group: format!("/jobrun/{j}"),
            execution_role: format!("jobrun-{j}-execution"),
            task_role: format!("jobrun-{j}-task"),
            security_group: format!("jobrun-{j}"),
            bucket: job.ecs.bucket.clone().unwrap_or(bucket),
            family: format!("jobrun-{j}"),
            queue: format!("jobrun-{j}"),
            dlq: format!("jobrun-{j}-dlq"),
            service,
            agent_family: format!("jobrun-{j}-agent"),
            notification: format!("jobrun-{j}"),
            repository,
            schedule_group: format!("jobrun-{j}"),
            dispatcher_family: format!("jobrun-{j}-dispatcher"),
            dispatcher_role: format!("jobrun-{j}-dispatcher"),
            scheduler_role: format!("jobrun-{j}-scheduler"),
            schedule_dlq: format!("jobrun-{j}-schedule-dlq"),
            driver_service: format!("jobrun-{j}-driver"),
            infrastructure_role: format!("jobrun-{j}-instances"),
            instance_role: format!("ecsInstanceRole-{j}"),
            spot_provider: format!("jobrun-{j}-spot"),
            on_demand_provider: format!("jobrun-{j}-on-demand"),
        }
    }
}

impl Names {
    /// Each name with the rule of the service it is given to.
    fn with_rules(&self) -> Vec<(&'static str, &str, Rule)> {
        let mut all = vec![
            ("ECS cluster", self.cluster.as_str(), Rule::Ecs),
            ("log group", &self.log_group, Rule::LogGroup),
            ("IAM role", &self.execution_role, Rule::IamRole),
            ("IAM role", &self.task_role, Rule::IamRole),
            ("security group", &self.security_group, Rule::SecurityGroup),
            ("S3 bucket", &self.bucket, Rule::S3Bucket),
            ("task definition family", &self.family, Rule::Ecs),
            ("SQS queue", &self.queue, Rule::SqsQueue),
            ("SQS queue", &self.dlq, Rule::SqsQueue),
            ("ECS service", &self.service, Rule::Ecs),
            ("task definition family", &self.agent_family, Rule::Ecs),
            ("schedule group", &self.schedule_group, Rule::Scheduler),
            ("task definition family", &self.dispatcher_family, Rule::Ecs),
            ("IAM role", &self.dispatcher_role, Rule::IamRole),
            ("IAM role", &self.scheduler_role, Rule::IamRole),
            ("SQS queue", &self.schedule_dlq, Rule::SqsQueue),
            ("ECS service", &self.driver_service, Rule::Ecs),
            ("IAM role", &self.infrastructure_role, Rule::IamRole),
            ("IAM role", &self.instance_role, Rule::IamRole),
            ("capacity provider", &self.spot_provider, Rule::Ecs),
            ("capacity provider", &self.on_demand_provider, Rule::Ecs),
        ];
        if let Some(repo) = &self.repository {
            all.push(("ECR repository", repo, Rule::EcrRepository));
        }
        all
    }

    /// The first name its service would refuse.
    pub fn check(&self) -> Result<(), NameError> {
        for (resource, name, rule) in self.with_rules() {
            rule.check(name).map_err(|broken| NameError {
                resource,
                name: name.to_string(),
                broken,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate_job_name;

    fn job(name: &str) -> Job {
        crate::config::ecs_job_for_tests(name)
    }

    /// Job names against every derived resource's rule: a name the job-name rule accepts
    /// gives names every service accepts (in the region with the longest name); each one it
    /// refuses breaks at least one service's rule.
    #[test]
    fn job_names_against_every_derived_rule() {
        let valid = [
            "wc",
            "a",
            "etl-2",
            "a_b",
            "retrain-weekly_v2",
            &"x".repeat(40),
        ];
        for name in valid {
            validate_job_name(name).unwrap();
            let names = Names::new(&job(name), "123456789012", "ap-southeast-5");
            names.check().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let invalid = [
            "etl-",
            "a_",
            "a--b",
            "a-_b",
            "-a",
            "_a",
            "Wc",
            "a.b",
            "a b",
            "a/b",
            &"x".repeat(48),
        ];
        for name in invalid {
            assert!(validate_job_name(name).is_err(), "{name} accepted");
            let names = Names::new(&job(name), "123456789012", "us-east-1");
            assert!(names.check().is_err(), "{name}: no service refuses it");
        }
        assert!(validate_job_name("").is_err());
    }

    #[test]
    fn a_configured_name_is_checked_too() {
        let mut j = job("wc");
        j.ecs.cluster = Some("shared.cluster".into());
        let e = Names::new(&j, "1", "us-east-1").check().unwrap_err();
        assert_eq!(e.resource, "ECS cluster");
    }
}

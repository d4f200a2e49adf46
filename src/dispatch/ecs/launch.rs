//! Launching one task: its overrides (command, environment, configuration — by S3 pointer when
//! too large for ECS's 8 KiB), tags and capacity providers, then one RunTask, paced to AWS's
//! rates and retried with a client token so a repeated call never launches a second task.

use super::{EcsDispatcher, OVERRIDES_LIMIT, client_token};
use crate::aws::{self, AwsError, retrying};
use crate::config::CapacityKind;
use crate::dispatch::remote::RemoteError;
use crate::record::{Placement, RunRecord};
use crate::wire::CONTAINER;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerOverride,
    KeyValuePair, LaunchType, NetworkConfiguration, Tag, TaskOverride,
};

/// What came of one RunTask (after its retries).
pub(super) enum Launch {
    Started {
        arn: String,
        phase: Option<String>,
    },
    /// No capacity anywhere we may go, or the account's Fargate vCPU quota is reached (`quota`):
    /// the task stays queued and is tried again — it is never a failed attempt.
    NoCapacity {
        why: String,
        quota: bool,
    },
    /// ECS would not launch it (and said why): this attempt failed.
    Refused(String),
    Error(AwsError),
}

pub(super) struct Dispatch {
    pub(super) index: usize,
    pub(super) attempt: u32,
    overrides: TaskOverride,
    tags: Vec<Tag>,
    placements: Vec<Placement>,
}

impl EcsDispatcher {
    /// The RunTask request of a queued task: overrides (a configuration too large for them is
    /// stored in S3 and passed by URL), tags, and which capacity to try in which order.
    pub(super) async fn prepare(&self, rec: &RunRecord, i: usize) -> Result<Dispatch, RemoteError> {
        let task = &rec.tasks[i];
        let attempt = task.attempts + 1;
        let mut env = crate::dispatch::task_env(rec, i, attempt);
        let config = task.config.to_string();
        let size = |env: &[(String, String)]| {
            let json_len = |s: &str| serde_json::to_string(s).map(|j| j.len()).unwrap_or(s.len());
            let vars: usize = env
                .iter()
                .map(|(k, v)| json_len(k) + json_len(v) + 30)
                .sum();
            let cmd: usize = task
                .command
                .iter()
                .flatten()
                .map(|a| serde_json::to_string(a).map(|s| s.len() + 1).unwrap_or(0))
                .sum();
            vars + cmd + 120
        };
        let mut with_config = env.clone();
        with_config.push(("JOBRUN_CONFIG".into(), config.clone()));
        if size(&with_config) <= OVERRIDES_LIMIT {
            env = with_config;
        } else {
            let url = self.remote.store_config(rec, i, &config).await?;
            env.push(("JOBRUN_CONFIG_URL".into(), url));
        }
        let mut container = ContainerOverride::builder().name(CONTAINER);
        for (k, v) in &env {
            container = container.environment(KeyValuePair::builder().name(k).value(v).build());
        }
        if let Some(cmd) = &task.command {
            container = container.set_command(Some(cmd.clone()));
        }
        let tag = |k: &str, v: String| Tag::builder().key(k).value(v).build();
        let tags = vec![
            tag(crate::infra::TAG_MANAGED, "jobrun".into()),
            tag(crate::infra::TAG_JOB, rec.job.clone()),
            tag("jobrun:run", rec.run_id.clone()),
            tag("jobrun:index", i.to_string()),
            tag("jobrun:attempt", attempt.to_string()),
        ];
        let cap = &self.remote.run.capacity;
        let wanted: &[&'static str] =
            if cap.kind == CapacityKind::OnDemand || i < cap.on_demand_base {
                &["FARGATE"]
            } else if cap.spot_fallback {
                &["FARGATE_SPOT", "FARGATE"]
            } else {
                &["FARGATE_SPOT"]
            };
        let placements = self.remote.run.site.providers.placements(wanted);
        Ok(Dispatch {
            index: i,
            attempt,
            overrides: task_size(task, &rec.settings)
                .container_overrides(container.build())
                .build(),
            tags,
            placements,
        })
    }

    /// One RunTask, paced and retried; on Spot without capacity, on-demand when allowed.
    pub(super) async fn launch(&self, run_id: &str, d: &Dispatch) -> Launch {
        let tr = self.tries.get(&(d.index, d.attempt)).copied().unwrap_or(0);
        let mut capacity_reason = String::new();
        let mut quota = false;
        for placement in &d.placements {
            let token = client_token(run_id, d.index, d.attempt, placement.label(), tr);
            let (strategy, launch_type) = request_parts(*placement, &self.remote.run.site);
            let sent = retrying(|| async {
                self.pacer.run_task.until_ready().await;
                self.pacer.launch.until_ready().await;
                self.ecs
                    .run_task()
                    .cluster(&self.remote.run.site.cluster)
                    .task_definition(&self.remote.run.site.task_definition)
                    .set_capacity_provider_strategy(strategy.clone())
                    .set_launch_type(launch_type.clone())
                    .network_configuration(
                        NetworkConfiguration::builder()
                            .awsvpc_configuration(
                                AwsVpcConfiguration::builder()
                                    .set_subnets(Some(self.remote.run.site.subnets.clone()))
                                    .set_security_groups(Some(
                                        self.remote.run.site.security_groups.clone(),
                                    ))
                                    .assign_public_ip(if self.remote.run.site.assign_public_ip {
                                        AssignPublicIp::Enabled
                                    } else {
                                        AssignPublicIp::Disabled
                                    })
                                    .build()
                                    .expect("subnets set"),
                            )
                            .build(),
                    )
                    .overrides(d.overrides.clone())
                    .started_by(&self.remote.run.started_by)
                    .set_tags(Some(d.tags.clone()))
                    .enable_ecs_managed_tags(true)
                    .client_token(&token)
                    .send()
                    .await
                    .map_err(aws::op("RunTask"))
            })
            .await;
            let out = match sent {
                Ok(out) => out,
                // ECS refused this request (e.g. overrides too long): this attempt failed, the
                // others go on. Anything else (access, network) stops the dispatch.
                Err(e)
                    if matches!(
                        e.code(),
                        Some("InvalidParameterException" | "ClientException")
                    ) =>
                {
                    return Launch::Refused(e.to_string());
                }
                Err(e) => return Launch::Error(e),
            };
            if let Some(t) = out.tasks().first() {
                return Launch::Started {
                    arn: t.task_arn().unwrap_or_default().to_string(),
                    phase: t.last_status().map(str::to_string),
                };
            }
            let reason = out
                .failures()
                .iter()
                .map(|f| {
                    let r = f.reason().unwrap_or("unknown");
                    match f.detail() {
                        Some(d) => format!("{r} ({d})"),
                        None => r.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            let reasons = || {
                out.failures()
                    .iter()
                    .map(|f| f.reason().unwrap_or_default())
            };
            let over_quota = reasons().any(over_quota);
            let capacity = over_quota || reasons().any(no_capacity);
            quota |= over_quota;
            if !capacity {
                return Launch::Refused(if reason.is_empty() {
                    "RunTask started no task and gave no reason".into()
                } else {
                    reason
                });
            }
            capacity_reason = format!("{}: {reason}", placement.label());
        }
        Launch::NoCapacity {
            why: capacity_reason,
            quota,
        }
    }
}

/// RunTask's failure reasons are codes (`RESOURCE:MEMORY`, …) or, for Fargate, fixed sentences
/// (Amazon ECS Developer Guide, "API failure reasons" and "Troubleshooting service event
/// messages"); a Failure has no other field to match. Fargate without capacity right now:
/// "Capacity is unavailable at this time. Please try again later or in a different
/// availability zone" (knowledge center, "ecs-fargate-runtask-capacity").
fn no_capacity(reason: &str) -> bool {
    reason.starts_with("RESOURCE:") || reason.starts_with("Capacity is unavailable")
}

/// The account's Fargate quota reached: "You’ve reached the limit on the number of vCPUs you
/// can run concurrently" (the task-count quota before 2022: "… number of tasks you can run
/// concurrently"); AWS writes a typographic apostrophe, users' reports a plain one, so the
/// match starts after it.
fn over_quota(reason: &str) -> bool {
    reason.contains("reached the limit on the number of vCPUs you can run concurrently")
        || reason.contains("reached the limit on the number of tasks you can run concurrently")
}

/// A placement as RunTask takes it: a capacity provider strategy, or the launch type. On
/// Managed Instances the strategy names the job's provider and never a launch type (RunTask:
/// "If a capacityProviderStrategy is specified, the launchType parameter must be omitted",
/// https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RunTask.html).
fn request_parts(
    placement: Placement,
    site: &crate::record::EcsSite,
) -> (
    Option<Vec<CapacityProviderStrategyItem>>,
    Option<LaunchType>,
) {
    match placement {
        Placement::Provider(p) => {
            let item = CapacityProviderStrategyItem::builder()
                .capacity_provider(site.provider_name(p))
                .weight(1)
                .build()
                .expect("provider set");
            (Some(vec![item]), None)
        }
        Placement::LaunchType => (None, Some(LaunchType::Fargate)),
    }
}

/// The task-level size override of a task that grew after an out-of-memory kill (RunTask's
/// `overrides.cpu` / `overrides.memory`, in CPU units and MiB as strings; the pair must be a
/// valid Fargate size: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_TaskOverride.html).
/// A run whose size was learned (`size = "auto"`) overrides every task's; other tasks run at
/// the task definition's size.
fn task_size(
    task: &crate::record::TaskRecord,
    settings: &crate::record::RunSettings,
) -> aws_sdk_ecs::types::builders::TaskOverrideBuilder {
    let builder = TaskOverride::builder();
    let learned = settings.learned.is_some() || task.learned.is_some();
    let size = task
        .size
        .or(learned.then(|| crate::dispatch::size_of(task, settings)));
    match size {
        Some(size) => builder
            .cpu(size.cpu_units().to_string())
            .memory(size.memory_mib.to_string()),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_reason_and_a_capacity_reason_are_told_apart() {
        let quota =
            "You\u{2019}ve reached the limit on the number of vCPUs you can run concurrently";
        assert!(over_quota(quota) && !no_capacity(quota));
        assert!(over_quota(
            "You've reached the limit on the number of tasks you can run concurrently"
        ));
        let none = "Capacity is unavailable at this time. Please try again later or in a different availability zone";
        assert!(no_capacity(none) && !over_quota(none));
        assert!(no_capacity("RESOURCE:MEMORY"));
        assert!(!no_capacity("MISSING") && !over_quota("MISSING"));
    }
}

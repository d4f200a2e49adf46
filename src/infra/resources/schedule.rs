//! EventBridge Scheduler: the job's schedule group (`jobrun-<job>`, tagged; schedules
//! themselves take no tags) and the schedules in it. A schedule's target is ECS RunTask of the
//! dispatcher's task definition; its input is that task's overrides (the dispatcher's command,
//! with the scheduled time filled in by Scheduler). `down` deletes the group, which deletes
//! its schedules.

use super::{Ctx, Deletion, Resource, Teardown};
use crate::aws::{self, Aws};
use crate::infra::{Action, Change, InfraError, TAG_JOB, TAG_MANAGED, change};
use crate::schedule::DispatchOverrides;
use aws_sdk_scheduler::types::ScheduleGroupState;
use aws_sdk_scheduler::types::{
    AssignPublicIp, AwsVpcConfiguration, DeadLetterConfig, EcsParameters, FlexibleTimeWindow,
    FlexibleTimeWindowMode, LaunchType, NetworkConfiguration, RetryPolicy, ScheduleState, Target,
};

const KIND: &str = "schedule group";
const GONE: &[&str] = &["ResourceNotFoundException"];

/// The job's schedule group; converges to its name.
pub struct ScheduleGroup;

impl Resource for ScheduleGroup {
    type Seen = bool;
    type Out = String;

    async fn observe(&self, cx: &Ctx<'_>) -> Result<bool, InfraError> {
        Ok(group_exists(cx.aws, &cx.names.schedule_group).await?)
    }

    fn compare(&self, cx: &Ctx<'_>, exists: &bool) -> Result<Change, InfraError> {
        let name = &cx.names.schedule_group;
        Ok(match exists {
            true => change(KIND, name, Action::Unchanged, "exists"),
            false => change(KIND, name, Action::Create, "missing"),
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, _: bool) -> Result<String, InfraError> {
        use aws_sdk_scheduler::types::Tag;
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().expect("set");
        let name = &cx.names.schedule_group;
        // A group being deleted (`down` just before) is DELETING until its schedules are gone,
        // and CreateScheduleGroup answers ConflictException meanwhile (Scheduler API
        // Reference, ScheduleGroupSummary State: ACTIVE | DELETING): that is retried, without
        // a fixed sleep, until the group is gone and made again; an ACTIVE one is ours.
        super::settling(true, &[DELETING], || async {
            let made = cx
                .aws
                .scheduler()
                .create_schedule_group()
                .name(name)
                .tags(tag(TAG_MANAGED, "jobrun"))
                .tags(tag(TAG_JOB, &cx.job.name))
                .send()
                .await
                .map_err(aws::op("CreateScheduleGroup"));
            match made {
                Err(e) if e.code() == Some("ConflictException") => {
                    match group_state(cx.aws, name).await? {
                        Some(ScheduleGroupState::Deleting) => Err(aws::AwsError::Service {
                            operation: "CreateScheduleGroup",
                            code: DELETING.into(),
                            message: format!("schedule group {name} is still being deleted"),
                        }),
                        _ => Ok(()),
                    }
                }
                made => made.map(|_| ()),
            }
        })
        .await?;
        Ok(name.clone())
    }

    fn current(&self, cx: &Ctx<'_>, _: bool) -> String {
        cx.names.schedule_group.clone()
    }
}

/// jobrun's own code for "the group is DELETING" while it waits for it.
const DELETING: &str = "ScheduleGroupDeleting";

/// A group that is being deleted counts as missing: `up` makes it again once it is gone.
async fn group_exists(aws: &Aws, name: &str) -> Result<bool, aws::AwsError> {
    Ok(group_state(aws, name)
        .await?
        .is_some_and(|s| s != ScheduleGroupState::Deleting))
}

async fn group_state(aws: &Aws, name: &str) -> Result<Option<ScheduleGroupState>, aws::AwsError> {
    let got = aws
        .scheduler()
        .get_schedule_group()
        .name(name)
        .send()
        .await
        .map_err(aws::op("GetScheduleGroup"));
    Ok(aws::found(got, GONE)?.map(|g| g.state().cloned().unwrap_or(ScheduleGroupState::Active)))
}

/// What a schedule's delivery runs: the dispatcher's task on the job's cluster.
pub struct Delivery {
    pub cluster_arn: String,
    pub role_arn: String,
    pub task_definition: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    pub dead_letters_arn: String,
    /// RunTask's `overrides` (Scheduler passes a templated ECS target's input so, as JSON).
    pub overrides: DispatchOverrides,
}

/// A schedule as jobrun makes it.
pub struct ScheduleDef {
    pub name: String,
    pub expression: String,
    pub timezone: String,
    pub description: String,
    pub delivery: Delivery,
}

impl Delivery {
    fn target(&self) -> Target {
        let ip = match self.assign_public_ip {
            true => AssignPublicIp::Enabled,
            false => AssignPublicIp::Disabled,
        };
        let network = AwsVpcConfiguration::builder()
            .set_subnets(Some(self.subnets.clone()))
            .set_security_groups(Some(self.security_groups.clone()))
            .assign_public_ip(ip)
            .build()
            .expect("subnets set");
        let ecs = EcsParameters::builder()
            .task_definition_arn(&self.task_definition)
            .task_count(1)
            .launch_type(LaunchType::Fargate)
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(network)
                    .build(),
            )
            .build()
            .expect("task definition set");
        // Scheduler retries a delivery that failed (RunTask refused or throttled) for up to an
        // hour, then hands it to the dead-letter queue.
        let retry = RetryPolicy::builder()
            .maximum_event_age_in_seconds(3_600)
            .maximum_retry_attempts(10)
            .build();
        Target::builder()
            .arn(&self.cluster_arn)
            .role_arn(&self.role_arn)
            .input(self.overrides.to_json())
            .ecs_parameters(ecs)
            .retry_policy(retry)
            .dead_letter_config(
                DeadLetterConfig::builder()
                    .arn(&self.dead_letters_arn)
                    .build(),
            )
            .build()
            .expect("arn and role set")
    }

    /// A schedule's target read back (GetSchedule), as `target` wrote it; `None` for a target
    /// jobrun did not make (no ECS parameters, or an input that is not its overrides).
    pub fn of(target: &Target) -> Option<Delivery> {
        let ecs = target.ecs_parameters()?;
        let net = ecs
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration());
        Some(Delivery {
            cluster_arn: target.arn().to_string(),
            role_arn: target.role_arn().to_string(),
            task_definition: ecs.task_definition_arn().to_string(),
            subnets: net.map(|n| n.subnets().to_vec()).unwrap_or_default(),
            security_groups: net
                .map(|n| n.security_groups().to_vec())
                .unwrap_or_default(),
            assign_public_ip: net.and_then(|n| n.assign_public_ip())
                == Some(&AssignPublicIp::Enabled),
            dead_letters_arn: target
                .dead_letter_config()
                .and_then(|d| d.arn())
                .unwrap_or_default()
                .to_string(),
            overrides: DispatchOverrides::parse(target.input()?)?,
        })
    }

    /// One delivery now, due `at`: the RunTask Scheduler's templated ECS target makes (Amazon
    /// ECS API Reference, RunTask: `overrides.containerOverrides[].command`; awsvpc needs a
    /// `networkConfiguration` with subnets). Returns the dispatcher task's ARN.
    pub async fn run_now(&self, aws: &Aws, at: &str) -> Result<String, InfraError> {
        use aws_sdk_ecs::types as ecs;
        let ip = match self.assign_public_ip {
            true => ecs::AssignPublicIp::Enabled,
            false => ecs::AssignPublicIp::Disabled,
        };
        let network = ecs::AwsVpcConfiguration::builder()
            .set_subnets(Some(self.subnets.clone()))
            .set_security_groups(Some(self.security_groups.clone()))
            .assign_public_ip(ip)
            .build()
            .map_err(|e| InfraError::Refused(format!("the schedule's network: {e}")))?;
        let overrides = self.overrides.clone().due_at(at);
        let containers = overrides.container_overrides.into_iter().map(|c| {
            ecs::ContainerOverride::builder()
                .name(c.name)
                .set_command(Some(c.command))
                .build()
        });
        let out = aws
            .ecs()
            .run_task()
            .cluster(&self.cluster_arn)
            .task_definition(&self.task_definition)
            .launch_type(ecs::LaunchType::Fargate)
            .network_configuration(
                ecs::NetworkConfiguration::builder()
                    .awsvpc_configuration(network)
                    .build(),
            )
            .overrides(
                ecs::TaskOverride::builder()
                    .set_container_overrides(Some(containers.collect()))
                    .build(),
            )
            .send()
            .await
            .map_err(aws::op("RunTask"))?;
        if let Some(f) = out.failures().first() {
            let reason = f.reason().unwrap_or("no reason given");
            return Err(InfraError::Refused(format!(
                "ECS did not start the dispatcher: {reason}"
            )));
        }
        let task = out.tasks().first().and_then(|t| t.task_arn());
        Ok(task.unwrap_or_default().to_string())
    }
}

fn off() -> FlexibleTimeWindow {
    FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .expect("mode set")
}

/// A schedule's definition on a CreateSchedule or UpdateSchedule request: the two builders are
/// different types with the same setters, and both must say every field.
macro_rules! defined {
    ($request:expr, $group:expr, $def:expr) => {
        $request
            .group_name($group)
            .name(&$def.name)
            .description(&$def.description)
            .schedule_expression(&$def.expression)
            .schedule_expression_timezone(&$def.timezone)
            .flexible_time_window(off())
            .target($def.delivery.target())
    };
}

/// Makes the schedule, or (it exists) replaces its definition; a paused schedule stays paused.
/// Returns whether it was made.
///
/// Scheduler checks at CreateSchedule and UpdateSchedule that it can assume the target's role,
/// and answers ValidationException when it cannot — which a role made seconds earlier meets
/// while IAM settles (EventBridge Scheduler User Guide, "Troubleshooting": "The execution role
/// you provide must allow AWS EventBridge Scheduler to assume the role"; IAM User Guide,
/// "Changes that I make are not always immediately visible"). With `fresh_role` (this command
/// made or changed the role) that answer is retried as `up` retries ECS's.
pub async fn put(
    aws: &Aws,
    group: &str,
    def: &ScheduleDef,
    fresh_role: bool,
) -> Result<bool, InfraError> {
    let client = aws.scheduler();
    const NOT_ASSUMABLE_YET: &[&str] = &["ValidationException"];
    let state = match get(aws, group, &def.name).await? {
        Some(s) => s.state().cloned().unwrap_or(ScheduleState::Enabled),
        None => {
            super::settling(fresh_role, NOT_ASSUMABLE_YET, || async {
                defined!(client.create_schedule(), group, def)
                    .state(ScheduleState::Enabled)
                    .send()
                    .await
                    .map_err(aws::op("CreateSchedule"))
                    .map(|_| ())
            })
            .await?;
            return Ok(true);
        }
    };
    // UpdateSchedule replaces the whole definition: every field is sent again.
    super::settling(fresh_role, NOT_ASSUMABLE_YET, || async {
        defined!(client.update_schedule(), group, def)
            .state(state.clone())
            .send()
            .await
            .map_err(aws::op("UpdateSchedule"))
            .map(|_| ())
    })
    .await?;
    Ok(false)
}

pub type Got = aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput;

/// The schedule, `None` when there is no such schedule.
pub async fn get(aws: &Aws, group: &str, name: &str) -> Result<Option<Got>, InfraError> {
    let got = aws
        .scheduler()
        .get_schedule()
        .group_name(group)
        .name(name)
        .send()
        .await
        .map_err(aws::op("GetSchedule"));
    Ok(aws::found(got, GONE)?)
}

/// The names of the group's schedules (every page); none when the group is not there.
pub async fn list(aws: &Aws, group: &str) -> Result<Vec<String>, InfraError> {
    let (client, mut names, mut next) = (aws.scheduler(), vec![], None::<String>);
    loop {
        let page = client
            .list_schedules()
            .group_name(group)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(aws::op("ListSchedules"));
        let Some(page) = aws::found(page, GONE)? else {
            return Ok(names);
        };
        names.extend(
            page.schedules()
                .iter()
                .filter_map(|s| s.name())
                .map(String::from),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => return Ok(names),
        }
    }
}

/// Pauses or resumes: the definition as it is, sent again with the new state.
pub async fn set_state(aws: &Aws, group: &str, got: &Got, enabled: bool) -> Result<(), InfraError> {
    let state = match enabled {
        true => ScheduleState::Enabled,
        false => ScheduleState::Disabled,
    };
    aws.scheduler()
        .update_schedule()
        .group_name(group)
        .name(got.name().unwrap_or_default())
        .set_description(got.description().map(String::from))
        .set_schedule_expression(got.schedule_expression().map(String::from))
        .set_schedule_expression_timezone(got.schedule_expression_timezone().map(String::from))
        .set_start_date(got.start_date().cloned())
        .set_end_date(got.end_date().cloned())
        .set_flexible_time_window(got.flexible_time_window().cloned())
        .set_target(got.target().cloned())
        .set_kms_key_arn(got.kms_key_arn().map(String::from))
        .state(state)
        .send()
        .await
        .map_err(aws::op("UpdateSchedule"))?;
    Ok(())
}

/// Deletes one schedule; one already gone is fine.
pub async fn delete_schedule(aws: &Aws, group: &str, name: &str) -> Result<(), InfraError> {
    let deleted = aws
        .scheduler()
        .delete_schedule()
        .group_name(group)
        .name(name)
        .send()
        .await
        .map_err(aws::op("DeleteSchedule"));
    aws::found(deleted, GONE)?;
    Ok(())
}

/// `up`'s line about the job's schedules, when it has any: `schedule add` converges their
/// side (and stores the jobrun.toml they run), `up` only shows it.
pub async fn seen(cx: &Ctx<'_>) -> Result<Option<Change>, InfraError> {
    let name = &cx.names.schedule_group;
    if !group_exists(cx.aws, name).await? {
        return Ok(None);
    }
    let n = list(cx.aws, name).await?.len();
    let why = format!(
        "{n} schedules; they run jobrun.toml as it was at `schedule add` (add them again after a change)"
    );
    Ok(Some(change(KIND, name, Action::Unchanged, why)))
}

/// `down`: the group when it carries the job's tags (its schedules go with it).
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let name = &cx.names.schedule_group;
    let got = cx
        .aws
        .scheduler()
        .get_schedule_group()
        .name(name)
        .send()
        .await
        .map_err(aws::op("GetScheduleGroup"));
    let Some(group) = aws::found(got, GONE)? else {
        found.plan(change(KIND, name, Action::Absent, "not there"), None);
        return Ok(());
    };
    let tags = cx
        .aws
        .scheduler()
        .list_tags_for_resource()
        .resource_arn(group.arn().unwrap_or_default())
        .send()
        .await
        .map_err(aws::op("ListTagsForResource"))?;
    let ours = cx.ours(tags.tags().iter().map(|t| (t.key(), t.value())));
    let c = match ours {
        true => {
            let n = list(cx.aws, name).await?.len();
            let why = format!("made by jobrun for this job, with its {n} schedules");
            change(KIND, name, Action::Delete, why)
        }
        false => change(KIND, name, Action::Keep, "not tagged for this job"),
    };
    found.plan(c, Some(Deletion::ScheduleGroup(name.clone())));
    Ok(())
}

/// Deletes the group (Scheduler deletes its schedules with it).
pub async fn delete(aws: &Aws, name: &str) -> Result<(), InfraError> {
    let deleted = aws
        .scheduler()
        .delete_schedule_group()
        .name(name)
        .send()
        .await
        .map_err(aws::op("DeleteScheduleGroup"));
    aws::found(deleted, GONE)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::SCHEDULED_TIME;

    fn delivery(public: bool) -> Delivery {
        Delivery {
            cluster_arn: "arn:aws:ecs:eu-west-1:1:cluster/jobrun-wc".into(),
            role_arn: "arn:aws:iam::1:role/jobrun-wc-scheduler".into(),
            task_definition: "arn:aws:ecs:eu-west-1:1:task-definition/jobrun-wc-dispatcher:3"
                .into(),
            subnets: vec!["subnet-1".into(), "subnet-2".into()],
            security_groups: vec!["sg-1".into()],
            assign_public_ip: public,
            dead_letters_arn: "arn:aws:sqs:eu-west-1:1:jobrun-wc-schedules-dlq".into(),
            overrides: DispatchOverrides::new(
                "b",
                "jobs/wc/schedules/w/v000001.json",
                SCHEDULED_TIME,
            ),
        }
    }

    /// What `schedule run` fires is read back from the target `schedule add` wrote, field for
    /// field: the same cluster, task definition, network and command.
    #[test]
    fn a_target_reads_back_as_the_delivery_it_was_made_of() {
        for public in [true, false] {
            let made = delivery(public);
            let read = Delivery::of(&made.target()).expect("jobrun's own target");
            assert_eq!(read.cluster_arn, made.cluster_arn);
            assert_eq!(read.role_arn, made.role_arn);
            assert_eq!(read.task_definition, made.task_definition);
            assert_eq!(read.subnets, made.subnets);
            assert_eq!(read.security_groups, made.security_groups);
            assert_eq!(read.assign_public_ip, public);
            assert_eq!(read.dead_letters_arn, made.dead_letters_arn);
            assert_eq!(read.overrides, made.overrides);
        }
    }

    #[test]
    fn a_target_jobrun_did_not_make_is_no_delivery() {
        let mut target = delivery(true).target();
        target.input = Some("{\"hello\": 1}".into());
        assert!(Delivery::of(&target).is_none());
        target.input = None;
        assert!(Delivery::of(&target).is_none());
    }
}

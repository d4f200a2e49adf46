//! What `jobrun schedule` needs of the caller, and what `down` needs to remove it again.

use super::{DELETE_ROLES, MAKE_ROLES, Scope, allow, allow_if};
use serde_json::{Value, json};

/// `schedule add` and the rest: the schedule group and its schedules, the dispatcher's and
/// the scheduler's roles (the latter passed only to EventBridge Scheduler), the dispatcher's
/// task definition (and `schedule run`'s RunTask of it), the schedules' dead-letter queue.
pub(super) fn schedule(s: &Scope<'_>) -> Vec<Value> {
    let (n, a) = (s.names, s.arns);
    let group = &n.schedule_group;
    let dispatcher = s.ecs(&format!("task-definition/{}:*", n.dispatcher_family));
    let mut st = schedule_teardown(s);
    st.extend(dispatcher_task(s));
    st.extend([
        allow(
            "MakeScheduleGroup",
            &["scheduler:CreateScheduleGroup", "scheduler:TagResource"],
            vec![a.regional("scheduler", &format!("schedule-group/{group}"))],
        ),
        allow(
            "Schedules",
            &[
                "scheduler:GetSchedule",
                "scheduler:CreateSchedule",
                "scheduler:UpdateSchedule",
                "scheduler:DeleteSchedule",
            ],
            vec![a.regional("scheduler", &format!("schedule/{group}/*"))],
        ),
        allow(
            "MakeScheduleRoles",
            MAKE_ROLES,
            vec![a.role(&n.dispatcher_role), a.role(&n.scheduler_role)],
        ),
        allow_if(
            "PassTheSchedulerRole",
            &["iam:PassRole"],
            vec![a.role(&n.scheduler_role)],
            json!({"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}),
        ),
        allow_if(
            "RunTheDispatcher",
            &["ecs:RunTask"],
            vec![dispatcher],
            json!({"ArnEquals": {"ecs:cluster": s.cluster()}}),
        ),
        allow(
            "MakeScheduleDeadLetters",
            &[
                "sqs:CreateQueue",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
                "sqs:TagQueue",
            ],
            vec![a.regional("sqs", &n.schedule_dlq)],
        ),
    ]);
    st
}

/// The dispatcher's task definition and the roles it runs with, passed to ECS: what a
/// schedule fires and what the driver's service runs.
pub(super) fn dispatcher_task(s: &Scope<'_>) -> Vec<Value> {
    let (n, a) = (s.names, s.arns);
    vec![
        allow_if(
            "PassTheDispatcherRoles",
            &["iam:PassRole"],
            vec![a.role(&n.execution_role), a.role(&n.dispatcher_role)],
            json!({"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}),
        ),
        allow(
            "DispatcherTaskDefinition",
            &[
                "ecs:DescribeTaskDefinition",
                "ecs:RegisterTaskDefinition",
                "ecs:TagResource",
            ],
            vec!["*".into()],
        ),
    ]
}

/// What `up` reads of the schedules (it shows their group in its plan).
pub(super) fn schedule_read(s: &Scope<'_>) -> Vec<Value> {
    let (n, a) = (s.names, s.arns);
    let group = a.regional("scheduler", &format!("schedule-group/{}", n.schedule_group));
    vec![
        allow(
            "ReadScheduleGroup",
            &[
                "scheduler:GetScheduleGroup",
                "scheduler:ListTagsForResource",
            ],
            vec![group],
        ),
        allow(
            "ListSchedules",
            &["scheduler:ListSchedules"],
            vec!["*".into()],
        ),
    ]
}

/// What `down` (and `schedule list`) read and delete of the schedules.
pub(super) fn schedule_teardown(s: &Scope<'_>) -> Vec<Value> {
    let (n, a) = (s.names, s.arns);
    let group = a.regional("scheduler", &format!("schedule-group/{}", n.schedule_group));
    let mut st = schedule_read(s);
    st.extend([
        allow(
            "DownScheduleGroup",
            &["scheduler:DeleteScheduleGroup"],
            vec![group],
        ),
        allow(
            "DownScheduleRoles",
            DELETE_ROLES,
            vec![a.role(&n.dispatcher_role), a.role(&n.scheduler_role)],
        ),
        allow(
            "DownScheduleDeadLetters",
            &["sqs:GetQueueUrl", "sqs:ListQueueTags", "sqs:DeleteQueue"],
            vec![a.regional("sqs", &n.schedule_dlq)],
        ),
    ]);
    st
}

//! What queue mode needs of the caller: `up` makes the queues, the workers' service and its
//! scaling; `down` removes them (whatever the mode says now).

use super::{Scope, allow};
use serde_json::Value;

pub(super) fn up_queue(s: &Scope<'_>) -> Vec<Value> {
    vec![
        allow(
            "UpQueues",
            &[
                "sqs:CreateQueue",
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
                "sqs:TagQueue",
            ],
            s.queues(),
        ),
        allow(
            "UpWorkers",
            &[
                "ecs:CreateService",
                "ecs:UpdateService",
                "ecs:DescribeServices",
                "ecs:TagResource",
            ],
            vec![s.service()],
        ),
        allow(
            "UpScaling",
            &[
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:DescribeScalingPolicies",
                "application-autoscaling:TagResource",
            ],
            vec!["*".into()],
        ),
        s.scaling_alarms(),
    ]
}

/// `down` looks for queue mode's resources whatever the mode: a job may have been switched
/// from queue to direct since they were made.
pub(super) fn down_queue(s: &Scope<'_>) -> Vec<Value> {
    vec![
        allow(
            "DownQueues",
            &["sqs:GetQueueUrl", "sqs:ListQueueTags", "sqs:DeleteQueue"],
            s.queues(),
        ),
        allow(
            "DownWorkers",
            &["ecs:DescribeServices", "ecs:DeleteService"],
            vec![s.service()],
        ),
        allow(
            "DownScaling",
            &[
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
                "application-autoscaling:DeleteScalingPolicy",
                "application-autoscaling:DeregisterScalableTarget",
            ],
            vec!["*".into()],
        ),
        s.scaling_alarms(),
    ]
}

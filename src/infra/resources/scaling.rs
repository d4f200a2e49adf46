//! Queue mode's autoscaling: Application Auto Scaling on the workers' service's desired count
//! (a scalable target from 0 to `max_workers`) and one target-tracking policy.
//!
//! The policy tracks a metric-math expression over the queue's own metrics:
//! `(visible + in_flight) / (in_flight + 0.5)`, target 1. Each worker takes one message at a
//! time, so `in_flight` counts the busy workers. With no worker, one waiting message gives 2
//! (> 1: scale out from zero, which a plain "backlog per task" target above 1 never does); with
//! every message taken it stays just under 1 (no scale-in of busy workers, who are protected
//! from scale-in anyway); a drained queue gives 0 (back to zero). No CloudWatch client and no
//! Container Insights are needed.

use super::{Ctx, Resource};
use crate::aws::{self, Aws};
use crate::infra::{Action, Change, InfraError, change};
use aws_sdk_applicationautoscaling::types::{
    ScalableDimension, ScalableTarget as Registered, ServiceNamespace,
};
use serde_json::{Value, json};

pub const SCALING_POLICY: &str = "jobrun-backlog";
const DIMENSION: ScalableDimension = ScalableDimension::EcsServiceDesiredCount;

/// The scaling policy's customized metric: backlog over busy workers, from SQS metrics only.
fn scaling_metric(queue: &str) -> Value {
    let metric = |id: &str, name: &str| {
        json!({
            "Id": id,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": name,
                    "Dimensions": [{"Name": "QueueName", "Value": queue}]
                },
                "Stat": "Maximum"
            },
            "ReturnData": false
        })
    };
    json!({
        "Metrics": [
            metric("visible", "ApproximateNumberOfMessagesVisible"),
            metric("inflight", "ApproximateNumberOfMessagesNotVisible"),
            {
                "Id": "backlog",
                "Expression": "(visible + inflight) / (inflight + 0.5)",
                "Label": "backlog per busy worker",
                "ReturnData": true
            }
        ]
    })
}

/// The service's desired count, scalable from 0 to `max_workers`.
pub struct ScalableTarget;

impl Resource for ScalableTarget {
    type Seen = Option<Registered>;
    type Out = ();

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Option<Registered>, InfraError> {
        let targets = cx
            .aws
            .autoscaling()
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_ids(&cx.names.scalable_target)
            .scalable_dimension(DIMENSION)
            .send()
            .await
            .map_err(aws::op("DescribeScalableTargets"))?;
        Ok(targets.scalable_targets().first().cloned())
    }

    fn compare(&self, cx: &Ctx<'_>, have: &Option<Registered>) -> Result<Change, InfraError> {
        const KIND: &str = "scalable target";
        let rid = &cx.names.scalable_target;
        let max = cx.job.ecs.queue.max_workers as i32;
        Ok(match have {
            None => change(
                KIND,
                rid,
                Action::Create,
                format!("missing (0 to {max} workers)"),
            ),
            Some(t) if t.min_capacity() == 0 && t.max_capacity() == max => {
                change(KIND, rid, Action::Unchanged, format!("0 to {max} workers"))
            }
            Some(t) => change(
                KIND,
                rid,
                Action::Update,
                format!(
                    "{} to {} → 0 to {max} workers",
                    t.min_capacity(),
                    t.max_capacity()
                ),
            ),
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, _: Option<Registered>) -> Result<(), InfraError> {
        let request = cx
            .aws
            .autoscaling()
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(&cx.names.scalable_target)
            .scalable_dimension(DIMENSION)
            .min_capacity(0)
            .max_capacity(cx.job.ecs.queue.max_workers as i32);
        // Application Auto Scaling answers ValidationException for a role it cannot assume yet.
        cx.settling(&["ValidationException"], || async {
            let sent = request.clone().send().await;
            sent.map_err(aws::op("RegisterScalableTarget"))
        })
        .await?;
        Ok(())
    }

    fn current(&self, _: &Ctx<'_>, _: Option<Registered>) {}
}

/// The target-tracking policy on the queue's backlog.
pub struct ScalingPolicy;

/// The expressions of a metric specification, in order (the raw metrics give empty ones).
fn expressions(metrics: &Value) -> Vec<String> {
    metrics["Metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| m["Expression"].as_str().unwrap_or_default().to_string())
        .collect()
}

impl Resource for ScalingPolicy {
    /// The policy's target value and metric expressions.
    type Seen = Option<(f64, Vec<String>)>;
    type Out = ();

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Self::Seen, InfraError> {
        let policies = cx
            .aws
            .autoscaling()
            .describe_scaling_policies()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(&cx.names.scalable_target)
            .scalable_dimension(DIMENSION)
            .policy_names(SCALING_POLICY)
            .send()
            .await
            .map_err(aws::op("DescribeScalingPolicies"))?;
        let config = policies
            .scaling_policies()
            .first()
            .and_then(|p| p.target_tracking_scaling_policy_configuration());
        Ok(config.map(|c| {
            let exprs = c.customized_metric_specification().map(|m| {
                m.metrics()
                    .iter()
                    .map(|q| q.expression().map(str::to_string).unwrap_or_default())
                    .collect()
            });
            (c.target_value(), exprs.unwrap_or_default())
        }))
    }

    fn compare(&self, cx: &Ctx<'_>, have: &Self::Seen) -> Result<Change, InfraError> {
        const KIND: &str = "scaling policy";
        let want = expressions(&scaling_metric(&cx.names.queue));
        Ok(match have {
            None => change(
                KIND,
                SCALING_POLICY,
                Action::Create,
                "missing (target 1 waiting message per busy worker)",
            ),
            Some((t, e)) if *t == 1.0 && *e == want => change(
                KIND,
                SCALING_POLICY,
                Action::Unchanged,
                "target tracking on queue backlog",
            ),
            Some(_) => change(
                KIND,
                SCALING_POLICY,
                Action::Update,
                "metric or target differs",
            ),
        })
    }

    async fn converge(&self, cx: &Ctx<'_>, _: Self::Seen) -> Result<(), InfraError> {
        use aws_sdk_applicationautoscaling::types::*;
        let metrics = metric_queries(&cx.names.queue);
        cx.aws
            .autoscaling()
            .put_scaling_policy()
            .policy_name(SCALING_POLICY)
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(&cx.names.scalable_target)
            .scalable_dimension(DIMENSION)
            .policy_type(PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(
                TargetTrackingScalingPolicyConfiguration::builder()
                    .target_value(1.0)
                    .scale_out_cooldown(60)
                    .scale_in_cooldown(120)
                    .customized_metric_specification(
                        CustomizedMetricSpecification::builder()
                            .set_metrics(Some(metrics))
                            .build(),
                    )
                    .build()
                    .expect("target value"),
            )
            .send()
            .await
            .map_err(aws::op("PutScalingPolicy"))?;
        Ok(())
    }

    fn current(&self, _: &Ctx<'_>, _: Self::Seen) {}
}

/// [`scaling_metric`] as the SDK's metric queries.
fn metric_queries(
    queue: &str,
) -> Vec<aws_sdk_applicationautoscaling::types::TargetTrackingMetricDataQuery> {
    use aws_sdk_applicationautoscaling::types::*;
    let want = scaling_metric(queue);
    let metric_stat = |stat: &Value| {
        let metric = &stat["Metric"];
        TargetTrackingMetricStat::builder()
            .stat(stat["Stat"].as_str().unwrap_or("Maximum"))
            .metric(
                TargetTrackingMetric::builder()
                    .namespace(metric["Namespace"].as_str().unwrap_or_default())
                    .metric_name(metric["MetricName"].as_str().unwrap_or_default())
                    .dimensions(
                        TargetTrackingMetricDimension::builder()
                            .name("QueueName")
                            .value(queue)
                            .build()
                            .expect("name and value"),
                    )
                    .build(),
            )
            .build()
            .expect("stat and metric")
    };
    want["Metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| {
            let mut q = TargetTrackingMetricDataQuery::builder()
                .id(m["Id"].as_str().unwrap_or_default())
                .return_data(m["ReturnData"].as_bool().unwrap_or(false));
            if let Some(e) = m["Expression"].as_str() {
                q = q
                    .expression(e)
                    .label(m["Label"].as_str().unwrap_or_default());
            }
            if let Some(stat) = m.get("MetricStat") {
                q = q.metric_stat(metric_stat(stat));
            }
            q.build().expect("id")
        })
        .collect()
}

/// Deletes the policy and the scalable target of a service (either may be gone already).
pub async fn delete(aws: &Aws, scalable_target: &str) -> Result<(), InfraError> {
    let aas = aws.autoscaling();
    let gone = ["ObjectNotFoundException"];
    aws::found(
        aas.delete_scaling_policy()
            .policy_name(SCALING_POLICY)
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(scalable_target)
            .scalable_dimension(DIMENSION)
            .send()
            .await
            .map_err(aws::op("DeleteScalingPolicy")),
        &gone,
    )?;
    aws::found(
        aas.deregister_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(scalable_target)
            .scalable_dimension(DIMENSION)
            .send()
            .await
            .map_err(aws::op("DeregisterScalableTarget")),
        &gone,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expression as CloudWatch evaluates it, for given metric values.
    fn backlog(visible: f64, inflight: f64) -> f64 {
        (visible + inflight) / (inflight + 0.5)
    }

    #[test]
    fn one_message_scales_out_from_zero_and_a_drained_queue_scales_to_zero() {
        let m = scaling_metric("q");
        assert_eq!(
            m["Metrics"][2]["Expression"],
            "(visible + inflight) / (inflight + 0.5)"
        );
        assert!(backlog(1.0, 0.0) > 1.0);
        assert_eq!(backlog(0.0, 0.0), 0.0);
        for busy in 1..50 {
            let b = busy as f64;
            // Every message taken: at most the ceiling of the current count is wanted.
            assert!((b * backlog(0.0, b)).ceil() <= b);
        }
    }
}

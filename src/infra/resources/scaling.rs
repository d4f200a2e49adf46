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

use crate::aws::{self, Aws};
use crate::infra::InfraError;
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};

pub const SCALING_POLICY: &str = "jobrun-backlog";

const DIMENSION: ScalableDimension = ScalableDimension::EcsServiceDesiredCount;

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

//! Queue mode's side of `jobrun up`/`down`: the SQS queue and its dead-letter queue, the
//! workers' ECS service (desired count 0, owned by the autoscaler from then on), Application
//! Auto Scaling on the service's desired count, and optionally S3 ObjectCreated notifications
//! into the queue.
//!
//! Scaling is one target-tracking policy on a metric-math expression over the queue's own
//! metrics: `(visible + in_flight) / (in_flight + 0.5)`, target 1. Each worker takes one message
//! at a time, so `in_flight` counts the busy workers. With no worker, one waiting message gives
//! 2 (> 1: scale out from zero, which a plain "backlog per task" target above 1 never does);
//! with every message taken it stays just under 1 (no scale-in of busy workers, who are
//! protected from scale-in anyway); a drained queue gives 0 (back to zero). No CloudWatch client
//! and no Container Insights are needed.

use super::{Action, Ctx, InfraError, QueueOutputs, TAG_JOB, TAG_MANAGED, change};
use crate::aws::{self};
use crate::config::{CapacityKind, Job};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use std::collections::HashMap;

pub const SCALING_POLICY: &str = "jobrun-backlog";
const DLQ_RETENTION: &str = "1209600";

/// The work queue and its dead-letter queue, as `up` left them.
pub struct Queues {
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
    pub dlq_arn: String,
}

/// The scaling policy's customized metric: backlog over busy workers, from SQS metrics only.
pub fn scaling_metric(queue: &str) -> Value {
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

fn sqs_attrs(
    pairs: impl IntoIterator<Item = (QueueAttributeName, String)>,
) -> HashMap<QueueAttributeName, String> {
    pairs.into_iter().collect()
}

/// The service of that name when it is active (with its tags), `None` when there is none (or
/// no cluster).
async fn active_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    name: &str,
) -> Result<Option<aws_sdk_ecs::types::Service>, InfraError> {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(name)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .map_err(aws::op("DescribeServices"));
    Ok(
        aws::found(out, &["ClusterNotFoundException"])?.and_then(|o| {
            o.services()
                .iter()
                .find(|s| s.status() == Some("ACTIVE"))
                .cloned()
        }),
    )
}

/// A queue's URL, `None` when there is no such queue.
async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<Option<String>, InfraError> {
    let got = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(aws::op("GetQueueUrl"));
    Ok(aws::found(
        got,
        &[
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ],
    )?
    .and_then(|o| o.queue_url().map(str::to_string)))
}

/// The image's agent: where `jobrun build` put it, and the image's own entrypoint and command.
#[derive(Debug, Clone)]
pub struct AgentImage {
    pub path: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl Ctx<'_> {
    /// One queue, converged to `want` (a redrive policy compares as JSON).
    async fn queue(
        &mut self,
        kind: &'static str,
        name: &str,
        want: HashMap<QueueAttributeName, String>,
    ) -> Result<(String, String), InfraError> {
        let sqs = self.aws.sqs();
        let arn = format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account);
        let url = queue_url(&sqs, name).await?;
        let mut differs = vec![];
        if let Some(url) = &url {
            let have = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .map_err(aws::op("GetQueueAttributes"))?;
            let have = have.attributes().cloned().unwrap_or_default();
            for (k, v) in &want {
                let same = match (have.get(k), k) {
                    (Some(h), QueueAttributeName::RedrivePolicy | QueueAttributeName::Policy) => {
                        serde_json::from_str::<Value>(h).ok() == serde_json::from_str(v).ok()
                    }
                    (Some(h), _) => h == v,
                    (None, _) => false,
                };
                if !same {
                    differs.push(k.as_str().to_string());
                }
            }
        }
        let c = match (&url, differs.is_empty()) {
            (None, _) => change(kind, name, Action::Create, "missing"),
            (Some(_), true) => change(kind, name, Action::Unchanged, "attributes as wanted"),
            (Some(_), false) => change(
                kind,
                name,
                Action::Update,
                format!("{} differ", differs.join(", ")),
            ),
        };
        if !self.record(c) {
            return Ok((
                url.unwrap_or_else(|| format!("({name}, to be created)")),
                arn,
            ));
        }
        let url = match url {
            None => sqs
                .create_queue()
                .queue_name(name)
                .set_attributes(Some(want))
                .tags(TAG_MANAGED, "jobrun")
                .tags(TAG_JOB, &self.job.name)
                .send()
                .await
                .map_err(aws::op("CreateQueue"))?
                .queue_url()
                .unwrap_or_default()
                .to_string(),
            Some(url) => {
                sqs.set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(want))
                    .send()
                    .await
                    .map_err(aws::op("SetQueueAttributes"))?;
                url
            }
        };
        Ok((url, arn))
    }

    /// The queue and its dead-letter queue.
    pub(super) async fn queues(&mut self) -> Result<Queues, InfraError> {
        let q = &self.job.ecs.queue;
        let (dlq_url, dlq_arn) = self
            .queue(
                "dead-letter queue",
                &self.names.dlq.clone(),
                sqs_attrs([(
                    QueueAttributeName::MessageRetentionPeriod,
                    DLQ_RETENTION.into(),
                )]),
            )
            .await?;
        let mut want = sqs_attrs([
            (
                QueueAttributeName::VisibilityTimeout,
                q.visibility.as_secs().to_string(),
            ),
            (
                QueueAttributeName::ReceiveMessageWaitTimeSeconds,
                "20".into(),
            ),
            (
                QueueAttributeName::MessageRetentionPeriod,
                DLQ_RETENTION.into(),
            ),
            (
                QueueAttributeName::RedrivePolicy,
                json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": q.max_receive_count})
                    .to_string(),
            ),
        ]);
        let arn = format!(
            "arn:aws:sqs:{}:{}:{}",
            self.region, self.account, self.names.queue
        );
        if let Some((bucket, _)) = &q.s3_trigger {
            want.insert(
                QueueAttributeName::Policy,
                json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "S3ObjectCreated",
                        "Effect": "Allow",
                        "Principal": {"Service": "s3.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": arn,
                        "Condition": {"ArnLike": {"aws:SourceArn": format!("arn:aws:s3:::{bucket}")}}
                    }]
                })
                .to_string(),
            );
        }
        let (url, arn) = self
            .queue("sqs queue", &self.names.queue.clone(), want)
            .await?;
        Ok(Queues {
            url,
            arn,
            dlq_url,
            dlq_arn,
        })
    }

    /// The workers' service: the agent task definition, desired count 0 when made.
    pub(super) async fn service(
        &mut self,
        task_definition: &str,
        subnets: &[String],
        security_groups: &[String],
    ) -> Result<String, InfraError> {
        use aws_sdk_ecs::types::*;
        let ecs = self.aws.ecs();
        let name = self.names.service.clone();
        let found = active_service(&ecs, &self.names.cluster, &name).await?;
        let provider = match self.job.ecs.capacity.kind {
            CapacityKind::OnDemand => "FARGATE",
            CapacityKind::Spot => "FARGATE_SPOT",
        };
        // What differs from what the job wants (a service ECS describes without a capacity
        // strategy, as emulators do, is not counted as different there).
        let differs = |s: &Service| {
            let mut why = vec![];
            if s.task_definition() != Some(task_definition) {
                why.push("agent task definition");
            }
            let sorted = |v: &[String]| {
                let mut v = v.to_vec();
                v.sort();
                v
            };
            let net = s
                .network_configuration()
                .and_then(|n| n.awsvpc_configuration());
            let public = if self.job.ecs.assign_public_ip {
                AssignPublicIp::Enabled
            } else {
                AssignPublicIp::Disabled
            };
            let same_net = net.is_some_and(|a| {
                sorted(a.subnets()) == sorted(subnets)
                    && sorted(a.security_groups()) == sorted(security_groups)
                    && a.assign_public_ip().is_none_or(|p| *p == public)
            });
            if !same_net {
                why.push("network");
            }
            let strategy = s.capacity_provider_strategy();
            if !strategy.is_empty() && strategy[0].capacity_provider() != provider {
                why.push("capacity provider");
            }
            why
        };
        let c = match &found {
            None => change("ecs service", &name, Action::Create, "missing (desired 0)"),
            Some(s) if differs(s).is_empty() => change(
                "ecs service",
                &name,
                Action::Unchanged,
                format!(
                    "{} running, {} desired",
                    s.running_count(),
                    s.desired_count()
                ),
            ),
            Some(s) => change(
                "ecs service",
                &name,
                Action::Update,
                format!("{} changed", differs(s).join(", ")),
            ),
        };
        let capacity_changed = found
            .as_ref()
            .is_some_and(|s| differs(s).contains(&"capacity provider"));
        if !self.record(c) {
            return Ok(name);
        }
        let strategy = CapacityProviderStrategyItem::builder()
            .capacity_provider(provider)
            .weight(1)
            .build()
            .expect("provider set");
        let network = NetworkConfiguration::builder()
            .awsvpc_configuration(
                AwsVpcConfiguration::builder()
                    .set_subnets(Some(subnets.to_vec()))
                    .set_security_groups(Some(security_groups.to_vec()))
                    .assign_public_ip(if self.job.ecs.assign_public_ip {
                        AssignPublicIp::Enabled
                    } else {
                        AssignPublicIp::Disabled
                    })
                    .build()
                    .expect("subnets set"),
            )
            .build();
        if found.is_none() {
            let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
            ecs.create_service()
                .cluster(&self.names.cluster)
                .service_name(&name)
                .task_definition(task_definition)
                .desired_count(0)
                .capacity_provider_strategy(strategy)
                .network_configuration(network)
                .tags(tag(TAG_MANAGED, "jobrun"))
                .tags(tag(TAG_JOB, &self.job.name))
                .propagate_tags(PropagateTags::Service)
                .send()
                .await
                .map_err(aws::op("CreateService"))?;
        } else {
            let mut update = ecs
                .update_service()
                .cluster(&self.names.cluster)
                .service(&name)
                .task_definition(task_definition)
                .network_configuration(network);
            if capacity_changed {
                // ECS takes a new capacity strategy only with a new deployment.
                update = update
                    .capacity_provider_strategy(strategy)
                    .force_new_deployment(true);
            }
            update.send().await.map_err(aws::op("UpdateService"))?;
        }
        Ok(name)
    }

    /// The scalable target (min 0, max `max_workers`) and the backlog policy.
    pub(super) async fn scaling(&mut self) -> Result<(), InfraError> {
        use aws_sdk_applicationautoscaling::types::*;
        let aas = self.aws.autoscaling();
        let rid = self.names.scalable_target.clone();
        let max = self.job.ecs.queue.max_workers as i32;
        let targets = aas
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_ids(&rid)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .send()
            .await
            .map_err(aws::op("DescribeScalableTargets"))?;
        let have = targets.scalable_targets().first();
        let c = match have {
            None => change(
                "scalable target",
                &rid,
                Action::Create,
                format!("missing (0 to {max} workers)"),
            ),
            Some(t) if t.min_capacity() == 0 && t.max_capacity() == max => change(
                "scalable target",
                &rid,
                Action::Unchanged,
                format!("0 to {max} workers"),
            ),
            Some(t) => change(
                "scalable target",
                &rid,
                Action::Update,
                format!(
                    "{} to {} → 0 to {max} workers",
                    t.min_capacity(),
                    t.max_capacity()
                ),
            ),
        };
        if self.record(c) {
            aas.register_scalable_target()
                .service_namespace(ServiceNamespace::Ecs)
                .resource_id(&rid)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .min_capacity(0)
                .max_capacity(max)
                .send()
                .await
                .map_err(aws::op("RegisterScalableTarget"))?;
        }
        let queue = self.names.queue.clone();
        let want = scaling_metric(&queue);
        let policies = aas
            .describe_scaling_policies()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(&rid)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .policy_names(SCALING_POLICY)
            .send()
            .await
            .map_err(aws::op("DescribeScalingPolicies"))?;
        let have = policies
            .scaling_policies()
            .first()
            .and_then(|p| p.target_tracking_scaling_policy_configuration())
            .map(|c| {
                (
                    c.target_value(),
                    c.customized_metric_specification()
                        .map(|m| {
                            m.metrics()
                                .iter()
                                .map(|q| q.expression().map(str::to_string).unwrap_or_default())
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default(),
                )
            });
        let want_exprs: Vec<String> = want["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|m| m["Expression"].as_str().unwrap_or_default().to_string())
            .collect();
        let c = match &have {
            None => change(
                "scaling policy",
                SCALING_POLICY,
                Action::Create,
                "missing (target 1 waiting message per busy worker)",
            ),
            Some((t, e)) if *t == 1.0 && *e == want_exprs => change(
                "scaling policy",
                SCALING_POLICY,
                Action::Unchanged,
                "target tracking on queue backlog",
            ),
            Some(_) => change(
                "scaling policy",
                SCALING_POLICY,
                Action::Update,
                "metric or target differs",
            ),
        };
        if !self.record(c) {
            return Ok(());
        }
        let metrics: Vec<TargetTrackingMetricDataQuery> = want["Metrics"]
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
                    let metric = &stat["Metric"];
                    q = q.metric_stat(
                        TargetTrackingMetricStat::builder()
                            .stat(stat["Stat"].as_str().unwrap_or("Maximum"))
                            .metric(
                                TargetTrackingMetric::builder()
                                    .namespace(metric["Namespace"].as_str().unwrap_or_default())
                                    .metric_name(metric["MetricName"].as_str().unwrap_or_default())
                                    .dimensions(
                                        TargetTrackingMetricDimension::builder()
                                            .name("QueueName")
                                            .value(&queue)
                                            .build()
                                            .expect("name and value"),
                                    )
                                    .build(),
                            )
                            .build()
                            .expect("stat and metric"),
                    );
                }
                q.build().expect("id")
            })
            .collect();
        aas.put_scaling_policy()
            .policy_name(SCALING_POLICY)
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(&rid)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
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

    /// ObjectCreated notifications of the trigger prefix into the queue (other notification
    /// settings of the bucket are kept).
    pub(super) async fn s3_trigger(&mut self, queue_arn: &str) -> Result<(), InfraError> {
        use aws_sdk_s3::types::*;
        let Some((bucket, prefix)) = self.job.ecs.queue.s3_trigger.clone() else {
            return Ok(());
        };
        // jobrun writes its records under `jobs/` of the job's bucket: a trigger there would
        // start a task for every record a task writes.
        if bucket == self.names.bucket
            && ("jobs/".starts_with(&prefix) || prefix.starts_with("jobs/"))
        {
            return Err(InfraError::TriggerLoop(format!("s3://{bucket}/{prefix}")));
        }
        let s3 = self.aws.s3();
        let id = self.names.notification.clone();
        let have = s3
            .get_bucket_notification_configuration()
            .bucket(&bucket)
            .send()
            .await
            .map_err(aws::op("GetBucketNotificationConfiguration"));
        // The job's own bucket does not exist yet in a dry run: nothing is set on it.
        let have = match aws::found(have, &["NoSuchBucket"])? {
            Some(have) => have,
            None if !self.apply => {
                aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput::builder().build()
            }
            None => {
                return Err(InfraError::MissingConfigured {
                    kind: "bucket",
                    name: bucket,
                });
            }
        };
        let mine = have
            .queue_configurations()
            .iter()
            .find(|q| q.id() == Some(id.as_str()));
        let rule_prefix = |q: &QueueConfiguration| {
            q.filter()
                .and_then(|f| f.key())
                .map(|k| {
                    k.filter_rules()
                        .iter()
                        .filter_map(|r| r.value().map(str::to_string))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let url = format!("s3://{bucket}/{prefix}");
        let c = match mine {
            None => change(
                "s3 notification",
                &url,
                Action::Create,
                "ObjectCreated → queue",
            ),
            Some(q) if q.queue_arn() == queue_arn && rule_prefix(q) == vec![prefix.clone()] => {
                change(
                    "s3 notification",
                    &url,
                    Action::Unchanged,
                    "ObjectCreated → queue",
                )
            }
            Some(_) => change(
                "s3 notification",
                &url,
                Action::Update,
                "queue or prefix differs",
            ),
        };
        if !self.record(c) {
            return Ok(());
        }
        let mut queues: Vec<QueueConfiguration> = have
            .queue_configurations()
            .iter()
            .filter(|q| q.id() != Some(id.as_str()))
            .cloned()
            .collect();
        queues.push(
            QueueConfiguration::builder()
                .id(&id)
                .queue_arn(queue_arn)
                .events(Event::from("s3:ObjectCreated:*"))
                .filter(
                    NotificationConfigurationFilter::builder()
                        .key(
                            S3KeyFilter::builder()
                                .filter_rules(
                                    FilterRule::builder()
                                        .name(FilterRuleName::Prefix)
                                        .value(&prefix)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
                .expect("queue and events"),
        );
        put_notifications(&s3, &bucket, &have, queues).await
    }
}

/// The environment of the agent container: where the queue and results are, and what to run.
pub fn agent_env(
    job: &Job,
    agent: &AgentImage,
    queue_url: &str,
    bucket: &str,
    log_group: &str,
    max_receive_count: u32,
) -> Vec<(String, String)> {
    let q = &job.ecs.queue;
    vec![
        ("JOBRUN_QUEUE_URL".into(), queue_url.into()),
        ("JOBRUN_BUCKET".into(), bucket.into()),
        ("JOBRUN_JOB".into(), job.name.clone()),
        ("JOBRUN_LOG_GROUP".into(), log_group.into()),
        (
            "JOBRUN_IDLE_EXIT".into(),
            format!("{}s", q.idle_exit.as_secs()),
        ),
        (
            "JOBRUN_VISIBILITY".into(),
            format!("{}s", q.visibility.as_secs()),
        ),
        ("JOBRUN_MAX_RECEIVES".into(), max_receive_count.to_string()),
        (
            "JOBRUN_TIMEOUT".into(),
            format!("{}s", job.run.timeout.as_secs()),
        ),
        (
            "JOBRUN_ENTRYPOINT".into(),
            serde_json::to_string(&agent.entrypoint).expect("strings"),
        ),
        (
            "JOBRUN_DEFAULT_COMMAND".into(),
            serde_json::to_string(job.run.command.as_ref().unwrap_or(&agent.cmd)).expect("strings"),
        ),
    ]
}

/// What `up` made in queue mode, as saved for `submit`.
pub fn outputs(
    job: &Job,
    queues: Queues,
    service: String,
    agent_task_definition: String,
) -> QueueOutputs {
    QueueOutputs {
        queue_url: queues.url,
        queue_arn: queues.arn,
        dlq_url: queues.dlq_url,
        dlq_arn: queues.dlq_arn,
        max_receive_count: job.ecs.queue.max_receive_count,
        service,
        agent_task_definition,
        max_workers: job.ecs.queue.max_workers,
    }
}

/// Writes a bucket's notifications with `queues` as its queue configurations, keeping the rest.
async fn put_notifications(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    have: &aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput,
    queues: Vec<aws_sdk_s3::types::QueueConfiguration>,
) -> Result<(), InfraError> {
    use aws_sdk_s3::types::NotificationConfiguration;
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .set_queue_configurations(Some(queues))
                .set_topic_configurations(Some(have.topic_configurations().to_vec()))
                .set_lambda_function_configurations(Some(
                    have.lambda_function_configurations().to_vec(),
                ))
                .set_event_bridge_configuration(have.event_bridge_configuration().cloned())
                .build(),
        )
        .send()
        .await
        .map_err(aws::op("PutBucketNotificationConfiguration"))?;
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

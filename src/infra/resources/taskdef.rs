//! The task definitions: the job's own (family `jobrun-<job>`), in queue mode the workers'
//! (`jobrun-<job>-agent`: the same image, `jobrun agent` as entrypoint), and for schedules the
//! dispatcher's (`jobrun-<job>-dispatcher`: jobrun's own small image, 0.25 vCPU). A new
//! revision is registered only when a field jobrun sets differs from the latest one; the
//! comparison is on a JSON shape of those fields, read back the same way from ECS.

use super::{Ctx, Deletion, Resource, Teardown};
use crate::aws::{self, Aws};
use crate::config::Arch;
use crate::image::AgentLayer;
use crate::infra::{Action, Change, InfraError, TAG_JOB, TAG_MANAGED, change};
use crate::wire::{CONTAINER, LOG_STREAM_PREFIX};
use aws_sdk_ecs::types::TaskDefinition as Registered;
use serde_json::Value;
use std::collections::BTreeMap;

const KIND: &str = "task definition";

/// A task definition as jobrun wants it; converges to the ARN of its latest revision.
pub struct TaskDefinition {
    family: String,
    /// The agent's entrypoint (queue mode), else none: the image's own.
    entry_point: Option<Vec<String>>,
    /// The fields jobrun sets, in the form [`shape_of`] reads back.
    want: Value,
    /// `up --dry-run`: the image is not built yet, so it is not compared.
    image_pending: bool,
}

impl TaskDefinition {
    /// The job's own task: the image's command, or with jobrun in the image, that command run
    /// by `jobrun task`, which uploads the task's output folder when it ends.
    pub fn job(
        cx: &Ctx<'_>,
        image: &str,
        (exec_arn, task_arn): (&str, &str),
        agent: Option<&AgentLayer>,
    ) -> TaskDefinition {
        let family = cx.names.family.clone();
        let (entry, env) = match agent {
            Some(agent) => (
                [agent.start(), vec!["task".into(), "--".into()]].concat(),
                command_env(cx, agent),
            ),
            None => (vec![], vec![]),
        };
        let want = wanted(cx, image, (exec_arn, task_arn), &entry, &env);
        TaskDefinition {
            family,
            entry_point: agent.map(|_| entry),
            want,
            image_pending: false,
        }
    }

    /// Queue mode's worker: `jobrun agent`, told where the queue and results are. `roles`
    /// are the execution and task roles' ARNs.
    pub fn agent(
        cx: &Ctx<'_>,
        roles: (&str, &str),
        image: &str,
        agent: &AgentLayer,
        queue_url: &str,
    ) -> TaskDefinition {
        let entry = [agent.start(), vec!["agent".to_string()]].concat();
        let env = agent_env(cx, agent, queue_url);
        let want = wanted(cx, image, roles, &entry, &env);
        TaskDefinition {
            family: cx.names.agent_family.clone(),
            entry_point: Some(entry),
            want,
            image_pending: false,
        }
    }

    /// The dispatcher (a schedule's, and the driver's): jobrun's own image (`entry` runs it), 0.25 vCPU and 0.5 GB
    /// for the host's architecture, the job's execution role (pull from the job's repository,
    /// write the job's log group) and the dispatcher's own role.
    pub fn dispatcher(
        cx: &Ctx<'_>,
        (exec_arn, task_arn): (&str, &str),
        image: &str,
        entry: &[String],
        arch: Arch,
    ) -> TaskDefinition {
        let env: BTreeMap<String, String> = [
            ("AWS_REGION", cx.arns.region.as_str()),
            ("JOBRUN_STATE_DIR", "/tmp/jobrun"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let want = serde_json::json!({
            "cpu": "256",
            "memory": "512",
            "architecture": arch.ecs(),
            "ephemeral_storage": null,
            "execution_role": exec_arn,
            "task_role": task_arn,
            "image": image,
            "environment": env,
            "entry_point": entry,
            // What the driver's service runs: `jobrun drive` over the job's runs driven in
            // AWS. A schedule's target overrides it with `dispatch …`.
            "command": [
                "drive", "--bucket", cx.names.bucket, "--job", cx.job.name,
                "--cluster", cx.names.cluster, "--service", cx.names.driver_service,
            ],
            "secrets": {},
            "log_group": cx.names.log_group,
            "log_prefix": "dispatcher",
            "stop_timeout": 120,
            // jobrun's own task stays on Fargate, whatever the job's tasks run on.
            "compatibility": "FARGATE",
            "gpu": null,
        });
        TaskDefinition {
            family: cx.names.dispatcher_family.clone(),
            entry_point: Some(entry.to_vec()),
            want,
            image_pending: false,
        }
    }
}

/// What the jobrun in the image needs to run the job's command: where outputs go, and the
/// image's own entrypoint and command (a task definition's entrypoint replaces both).
fn command_env(cx: &Ctx<'_>, agent: &AgentLayer) -> Vec<(String, String)> {
    let json = |v: &Vec<String>| serde_json::to_string(v).expect("strings");
    vec![
        ("JOBRUN_BUCKET".into(), cx.names.bucket.clone()),
        ("JOBRUN_ENTRYPOINT".into(), json(&agent.entrypoint)),
        (
            "JOBRUN_DEFAULT_COMMAND".into(),
            json(cx.job.run.command.as_ref().unwrap_or(&agent.cmd)),
        ),
    ]
}

/// The environment of the agent container: where the queue and results are, and what to run.
fn agent_env(cx: &Ctx<'_>, agent: &AgentLayer, queue_url: &str) -> Vec<(String, String)> {
    let job = cx.job;
    let q = &job.ecs.queue;
    let secs = |d: std::time::Duration| format!("{}s", d.as_secs());
    let mut env = command_env(cx, agent);
    env.extend([
        ("JOBRUN_QUEUE_URL".into(), queue_url.into()),
        ("JOBRUN_JOB".into(), job.name.clone()),
        ("JOBRUN_LOG_GROUP".into(), cx.names.log_group.clone()),
        ("JOBRUN_IDLE_EXIT".into(), secs(q.idle_exit)),
        ("JOBRUN_VISIBILITY".into(), secs(q.visibility)),
        (
            "JOBRUN_MAX_RECEIVES".into(),
            q.max_receive_count.to_string(),
        ),
        ("JOBRUN_TIMEOUT".into(), secs(job.run.timeout)),
    ]);
    env
}

/// The task definition as jobrun wants it, in a form that compares with what ECS returns:
/// `roles` are the execution and task roles' ARNs; `entry_point` and `extra_env` are the
/// agent's (queue mode), else empty.
fn wanted(
    cx: &Ctx<'_>,
    image: &str,
    (exec_arn, task_arn): (&str, &str),
    entry_point: &[String],
    extra_env: &[(String, String)],
) -> Value {
    let job = cx.job;
    let mut env = job.run.env.clone();
    env.extend(extra_env.iter().cloned());
    let secrets: BTreeMap<_, _> = job
        .ecs
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), cx.secret_arn(v)))
        .collect();
    // On Managed Instances the disk is the instances' (their provider's storage size), and
    // GPUs are the container's resource requirement (task_definition_parameters-managed-instances.html).
    let instances = job.managed_instances();
    serde_json::json!({
        "cpu": job.resources.cpu.0.to_string(),
        "memory": job.resources.memory.0.to_string(),
        "architecture": job.image.platform.arch.ecs(),
        "ephemeral_storage": job.resources.ephemeral_storage.filter(|_| !instances),
        "compatibility": if instances { "MANAGED_INSTANCES" } else { "FARGATE" },
        "gpu": (job.resources.gpu > 0).then(|| job.resources.gpu.to_string()),
        "execution_role": exec_arn,
        "task_role": task_arn,
        "image": image,
        "environment": env,
        "entry_point": entry_point,
        "command": [],
        "secrets": secrets,
        "log_group": cx.names.log_group,
        "log_prefix": LOG_STREAM_PREFIX,
        "stop_timeout": 120,
    })
}

/// The fields jobrun sets, read back from a registered task definition.
fn shape_of(td: &Registered) -> Value {
    let c = td
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(CONTAINER));
    let env: BTreeMap<String, String> = c
        .map(|c| {
            c.environment()
                .iter()
                .filter_map(|kv| Some((kv.name()?.to_string(), kv.value()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let secrets: BTreeMap<String, String> = c
        .map(|c| {
            c.secrets()
                .iter()
                .map(|s| (s.name().to_string(), s.value_from().to_string()))
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "cpu": td.cpu().unwrap_or_default(),
        "memory": td.memory().unwrap_or_default(),
        "architecture": td.runtime_platform().and_then(|p| p.cpu_architecture()).map(|a| a.as_str()).unwrap_or(Arch::Amd64.ecs()),
        "ephemeral_storage": td.ephemeral_storage().map(|e| e.size_in_gib()),
        "execution_role": td.execution_role_arn().unwrap_or_default(),
        "task_role": td.task_role_arn().unwrap_or_default(),
        "image": c.and_then(|c| c.image()).unwrap_or_default(),
        "environment": env,
        "entry_point": c.map(|c| c.entry_point().to_vec()).unwrap_or_default(),
        "command": c.map(|c| c.command().to_vec()).unwrap_or_default(),
        "secrets": secrets,
        "log_group": c.and_then(|c| c.log_configuration()).and_then(|l| l.options()).and_then(|o| o.get("awslogs-group")).cloned().unwrap_or_default(),
        "log_prefix": c.and_then(|c| c.log_configuration()).and_then(|l| l.options()).and_then(|o| o.get("awslogs-stream-prefix")).cloned().unwrap_or_default(),
        "stop_timeout": c.and_then(|c| c.stop_timeout()).unwrap_or_default(),
        "compatibility": td.requires_compatibilities().first().map(|c| c.as_str()).unwrap_or("FARGATE"),
        "gpu": c.and_then(|c| c.resource_requirements().iter().find(|r| r.r#type().as_str() == "GPU")).map(|r| r.value()),
    })
}

impl TaskDefinition {
    /// For `up --dry-run`, which builds no image: everything but the image is compared.
    pub fn image_pending(mut self) -> TaskDefinition {
        self.image_pending = true;
        self
    }
}

impl Resource for TaskDefinition {
    type Seen = Option<Registered>;
    type Out = String;

    async fn observe(&self, cx: &Ctx<'_>) -> Result<Option<Registered>, InfraError> {
        let described = cx
            .aws
            .ecs()
            .describe_task_definition()
            .task_definition(&self.family)
            .send()
            .await
            .map_err(aws::op("DescribeTaskDefinition"));
        Ok(
            aws::found(described, &["ClientException", "ResourceNotFoundException"])?
                .and_then(|out| out.task_definition().cloned()),
        )
    }

    fn compare(&self, _: &Ctx<'_>, current: &Option<Registered>) -> Result<Change, InfraError> {
        let family = &self.family;
        let Some(current) = current else {
            return Ok(change(KIND, family, Action::Create, "missing"));
        };
        let mut have = shape_of(current);
        let mut want = self.want.clone();
        let pending = match self.image_pending {
            true => {
                for v in [&mut have, &mut want] {
                    v.as_object_mut().map(|o| o.remove("image"));
                }
                " (its image is built and pushed by `up`, then compared)"
            }
            false => "",
        };
        if have == want {
            let why = format!("revision {}{pending}", current.revision());
            return Ok(change(KIND, family, Action::Unchanged, why));
        }
        let differs = super::differing(&want, &have);
        Ok(change(
            KIND,
            family,
            Action::Update,
            format!("new revision: {} changed{pending}", differs.join(", ")),
        ))
    }

    async fn converge(&self, cx: &Ctx<'_>, _: Option<Registered>) -> Result<String, InfraError> {
        self.register(cx).await
    }

    fn current(&self, _: &Ctx<'_>, current: Option<Registered>) -> String {
        current
            .as_ref()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_string)
            .unwrap_or_else(|| format!("{} (to be registered)", self.family))
    }
}

impl TaskDefinition {
    /// The one container, `job`: the image, its environment, secrets and log driver.
    fn container(&self, cx: &Ctx<'_>) -> aws_sdk_ecs::types::ContainerDefinition {
        use aws_sdk_ecs::types::*;
        let want = |k: &str| self.want[k].as_str().unwrap_or_default();
        let mut container = ContainerDefinition::builder()
            .name(CONTAINER)
            .image(want("image"))
            .essential(true)
            .memory(want("memory").parse().unwrap_or(512))
            .stop_timeout(120)
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", &cx.names.log_group)
                    .options("awslogs-region", &cx.arns.region)
                    .options("awslogs-stream-prefix", want("log_prefix"))
                    .build()
                    .expect("log driver set"),
            );
        for (k, v) in self.want["environment"].as_object().expect("object") {
            container = container.environment(
                KeyValuePair::builder()
                    .name(k)
                    .value(v.as_str().unwrap_or_default())
                    .build(),
            );
        }
        container = container.set_entry_point(self.entry_point.clone());
        if let Some(gpu) = self.want["gpu"].as_str() {
            container = container.resource_requirements(
                ResourceRequirement::builder()
                    .r#type(ResourceType::Gpu)
                    .value(gpu)
                    .build()
                    .expect("type and value"),
            );
        }
        let command: Vec<String> = self.want["command"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if !command.is_empty() {
            container = container.set_command(Some(command));
        }
        for (k, v) in self.want["secrets"].as_object().expect("object") {
            container = container.secrets(
                Secret::builder()
                    .name(k)
                    .value_from(v.as_str().unwrap_or_default())
                    .build()
                    .expect("name and value"),
            );
        }
        container.build()
    }

    async fn register(&self, cx: &Ctx<'_>) -> Result<String, InfraError> {
        use aws_sdk_ecs::types::*;
        let want = |k: &str| self.want[k].as_str().unwrap_or_default();
        let arch = CpuArchitecture::from(want("architecture"));
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let request = cx
            .aws
            .ecs()
            .register_task_definition()
            .family(&self.family)
            .requires_compatibilities(Compatibility::from(want("compatibility")))
            .network_mode(NetworkMode::Awsvpc)
            .cpu(want("cpu"))
            .memory(want("memory"))
            .runtime_platform(
                RuntimePlatform::builder()
                    .cpu_architecture(arch)
                    .operating_system_family(OsFamily::Linux)
                    .build(),
            )
            // Unset, the task has Fargate's 20 GiB (RegisterTaskDefinition, ephemeralStorage).
            .set_ephemeral_storage(
                self.want["ephemeral_storage"]
                    .as_i64()
                    .map(|gib| EphemeralStorage::builder().size_in_gib(gib as i32).build()),
            )
            .execution_role_arn(want("execution_role"))
            .task_role_arn(want("task_role"))
            .container_definitions(self.container(cx))
            .tags(tag(TAG_MANAGED, "jobrun"))
            .tags(tag(TAG_JOB, &cx.job.name));
        // ECS answers ClientException for a role it cannot use yet.
        let out = cx
            .settling(&["ClientException"], || async {
                let sent = request.clone().send().await;
                sent.map_err(aws::op("RegisterTaskDefinition"))
            })
            .await?;
        Ok(out
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .unwrap_or_default()
            .to_string())
    }
}

/// The active revisions of a family (every page).
async fn list_family(ecs: &aws_sdk_ecs::Client, family: &str) -> Result<Vec<String>, InfraError> {
    let mut listed = vec![];
    let mut next: Option<String> = None;
    loop {
        let page = ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(aws::op("ListTaskDefinitions"))?;
        listed.extend(
            page.task_definition_arns()
                .iter()
                .filter(|a| a.contains(&format!(":task-definition/{family}:")))
                .cloned(),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(listed)
}

/// `down`: the active revisions of both families, each checked for the job's tags.
pub async fn discover(cx: &Ctx<'_>, found: &mut Teardown) -> Result<(), InfraError> {
    let ecs = cx.aws.ecs();
    let names = &cx.names;
    for family in [&names.family, &names.agent_family, &names.dispatcher_family] {
        let (mut arns, mut foreign) = (vec![], 0);
        for arn in list_family(&ecs, family).await? {
            let described = ecs
                .describe_task_definition()
                .task_definition(&arn)
                .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
                .send()
                .await
                .map_err(aws::op("DescribeTaskDefinition"))?;
            let tags = described.tags().iter();
            if cx.ours(tags.filter_map(|t| Some((t.key()?, t.value()?)))) {
                arns.push(arn);
            } else {
                foreign += 1;
            }
        }
        if foreign > 0 {
            let why = format!("{foreign} revisions not tagged for this job");
            found.plan(change(KIND, family, Action::Keep, why), None);
        }
        let c = if arns.is_empty() {
            change(
                KIND,
                family,
                Action::Absent,
                "no active revision of this job",
            )
        } else {
            let why = format!("{} revisions", arns.len());
            change(KIND, family, Action::Delete, why)
        };
        found.plan(c, Some(Deletion::TaskDefinitions(arns)));
    }
    Ok(())
}

pub async fn delete(aws: &Aws, arns: &[String]) -> Result<(), InfraError> {
    let ecs = aws.ecs();
    for arn in arns {
        ecs.deregister_task_definition()
            .task_definition(arn)
            .send()
            .await
            .map_err(aws::op("DeregisterTaskDefinition"))?;
    }
    Ok(())
}

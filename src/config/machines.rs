//! `[resources] gpu`, `gpu_type`, `instance_types` and `instance_idle`: what a task needs
//! beyond Fargate's sizes, checked as EC2 and ECS take it (ECS Managed Instances' instance
//! requirements, https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_InstanceRequirementsRequest.html).

use super::file::ResourcesSection;
use std::time::Duration;

/// What a job asks of the machines under its tasks, beyond a Fargate size.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Machines {
    pub gpu: u32,
    pub gpu_type: Option<String>,
    pub instance_types: Vec<String>,
    pub instance_idle: Duration,
}

/// How long an idle Managed Instance is kept for the next task before ECS retires it (its
/// `infrastructureOptimization.scaleInAfter`, 0–3600 s): long enough for a sweep's next wave
/// or a retry, short enough that an idle job costs minutes, not hours.
pub const DEFAULT_INSTANCE_IDLE: Duration = Duration::from_secs(300);

/// EC2's accelerator names (ECS's `InstanceRequirementsRequest.acceleratorNames`).
const GPU_TYPES: [&str; 14] = [
    "a100",
    "inferentia",
    "k520",
    "k80",
    "m60",
    "radeon-pro-v520",
    "t4",
    "vu9p",
    "v100",
    "a10g",
    "h100",
    "t4g",
    "l40s",
    "l4",
];

/// A task size on ECS Managed Instances: any vCPU and memory an instance holds, from ECS's
/// least (0.125 vCPU, 128 MiB: RegisterTaskDefinition), disk 20–200 GiB as on Fargate
/// (the instances' storage size).
pub(super) fn check_instance_size(
    cpu: crate::resources::Vcpu,
    memory: crate::resources::MemoryMib,
    disk: Option<u32>,
) -> Result<(), String> {
    if cpu.0 < 128 || memory.0 < 128 {
        return Err(format!(
            "resources: cpu = {cpu}, memory = {memory}: a task needs at least 0.125 vCPU and 128 MiB"
        ));
    }
    match disk {
        Some(gib) if !(20..=200).contains(&gib) => Err(format!(
            "resources.ephemeral_storage = {gib}: the instances' disk is 20 to 200 GiB"
        )),
        _ => Ok(()),
    }
}

/// `[resources] gpu`, `gpu_type`, `instance_types` and `instance_idle`: a count of 1–8 (the
/// most GPUs one instance has), an accelerator EC2 names, instance types as ECS's
/// `allowedInstanceTypes` takes them (1–30 of `[a-zA-Z0-9.*-]`, at most 400), and at most an
/// hour (`scaleInAfter`'s bound,
/// https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_InfrastructureOptimization.html).
pub(super) fn machines(file: &ResourcesSection) -> Result<Machines, String> {
    let gpu = file.gpu.unwrap_or(0);
    if gpu > 8 {
        return Err(format!(
            "resources.gpu = {gpu}: a task has at most 8 GPUs (the most one instance has)"
        ));
    }
    let gpu_type = match &file.gpu_type {
        None => None,
        Some(_) if gpu == 0 => {
            return Err("resources.gpu_type needs resources.gpu, the GPUs per task".into());
        }
        Some(t) => {
            let name = t.trim().to_ascii_lowercase();
            if !GPU_TYPES.contains(&name.as_str()) {
                return Err(format!(
                    "resources.gpu_type = {t:?} is not a GPU EC2 names; one of {}",
                    GPU_TYPES.join(", ")
                ));
            }
            Some(name)
        }
    };
    let shaped = |t: &String| {
        (1..=30).contains(&t.len())
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '*' | '-'))
    };
    if let Some(bad) = file.instance_types.iter().find(|t| !shaped(t)) {
        return Err(format!(
            "resources.instance_types: {bad:?} is not an EC2 instance type (like \"g6.xlarge\" or \"g6.*\")"
        ));
    }
    if file.instance_types.len() > 400 {
        return Err("resources.instance_types: at most 400".into());
    }
    let instance_idle = file.instance_idle.unwrap_or(DEFAULT_INSTANCE_IDLE);
    if instance_idle > Duration::from_secs(3600) {
        return Err(format!(
            "resources.instance_idle = {:?}: ECS keeps an idle instance at most an hour (\"1h\")",
            humantime::format_duration(instance_idle).to_string()
        ));
    }
    Ok(Machines {
        gpu,
        gpu_type,
        instance_types: file.instance_types.clone(),
        instance_idle,
    })
}

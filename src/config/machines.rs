//! `[resources] gpu`, `gpu_type` and `instance_types`: what a task needs beyond Fargate's
//! sizes, checked as EC2 and ECS take it (ECS Managed Instances' instance requirements).

use super::file::ResourcesSection;

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

/// `[resources] gpu`, `gpu_type` and `instance_types`: a count of 1–8 (the most GPUs one
/// instance has), an accelerator EC2 names, instance types as ECS's `allowedInstanceTypes`
/// takes them (1–30 of `[a-zA-Z0-9.*-]`, at most 400).
pub(super) fn machines(
    file: &ResourcesSection,
) -> Result<(u32, Option<String>, Vec<String>), String> {
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
    Ok((gpu, gpu_type, file.instance_types.clone()))
}

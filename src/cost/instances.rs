//! What a run costs on ECS Managed Instances: EC2 instances ECS launches for the job's tasks,
//! billed per second with a one-minute minimum (EC2 Linux: "billed on one second increments,
//! with a minimum of 60 seconds", aws.amazon.com/about-aws/whats-new/2017/10/) plus ECS's
//! management fee per instance-hour. A task pays its share of the instance it runs on: the
//! cheapest instance type in the table (`instances.toml`) that fits a task and is allowed by
//! `[resources]`, divided by how many tasks it holds at once. That share is expressed as the
//! run's per-vCPU-hour price, so the Fargate formula (`Usage`) prices it unchanged.

use crate::config::{Arch, Job};
use crate::record::schema::{InstancePrice, Prices};
use serde::Deserialize;
use std::collections::BTreeMap;

const TABLE: &str = include_str!("instances.toml");
const FALLBACK: &str = "us-east-1";
/// The share of an instance's memory a task may take: ECS and its agent keep some for
/// themselves (an assumption: AWS states no figure for Managed Instances).
const USABLE_MEMORY: f64 = 0.9;

#[derive(Deserialize)]
struct Table {
    date: String,
    management_fee_share: f64,
    regions: BTreeMap<String, BTreeMap<String, Instance>>,
}

#[derive(Deserialize, Clone)]
struct Instance {
    vcpu: u32,
    memory_gib: u32,
    gpus: u32,
    gpu: String,
    hour: f64,
    #[serde(default = "x86")]
    arch: Arch,
}

fn x86() -> Arch {
    Arch::Amd64
}

impl Instance {
    /// How many tasks of this job fit on it at once (0: none).
    fn holds(&self, job: &Job) -> u32 {
        let r = &job.resources;
        let by_cpu = (f64::from(self.vcpu) * 1024.0 / f64::from(r.cpu.0)).floor() as u32;
        let mib = f64::from(self.memory_gib) * 1024.0 * USABLE_MEMORY;
        let by_memory = (mib / f64::from(r.memory.0)).floor() as u32;
        let by_gpu = match r.gpu {
            0 => u32::MAX,
            g => self.gpus / g,
        };
        by_cpu.min(by_memory).min(by_gpu)
    }

    fn allowed(&self, kind: &str, job: &Job) -> bool {
        let r = &job.resources;
        let named = r.gpu_type.as_deref().is_none_or(|t| t == self.gpu)
            && self.arch == job.image.platform.arch;
        let listed =
            r.instance_types.is_empty() || r.instance_types.iter().any(|p| matches_type(p, kind));
        named && listed
    }
}

/// `g6.*` or `g6.xlarge` against `g6.2xlarge`: ECS's `allowedInstanceTypes` patterns, where
/// `*` stands for any characters.
fn matches_type(pattern: &str, kind: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == kind,
        Some((head, rest)) => {
            let Some(after) = kind.strip_prefix(head) else {
                return false;
            };
            (0..=after.len()).any(|i| after.is_char_boundary(i) && matches_type(rest, &after[i..]))
        }
    }
}

/// The prices of a Managed Instances run in `region`: a task's share of the cheapest instance
/// type that fits it. An error says why none does.
pub fn lookup(region: &str, job: &Job) -> Result<Prices, String> {
    let table: Table = toml::from_str(TABLE).expect("the shipped instance table parses");
    let (name, types) = match table.regions.get(region) {
        Some(t) => (region.to_string(), t),
        None => (
            format!("{FALLBACK} prices (none for {region})"),
            &table.regions[FALLBACK],
        ),
    };
    let fee = 1.0 + table.management_fee_share;
    let best = types
        .iter()
        .filter(|(kind, i)| i.allowed(kind, job) && i.holds(job) > 0)
        .map(|(kind, i)| (kind, i, i.hour * fee / f64::from(i.holds(job))))
        .min_by(|a, b| a.2.total_cmp(&b.2));
    let Some((kind, instance, task_hour)) = best else {
        return Err(format!(
            "no instance type jobrun has prices for fits a task of {} vCPU, {} and {} GPU{}",
            job.resources.cpu,
            job.resources.memory,
            job.resources.gpu,
            job.resources
                .gpu_type
                .as_deref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        ));
    };
    let holds = instance.holds(job);
    let vcpu = f64::from(job.resources.cpu);
    let spec = &job.cost;
    let prices = super::prices::lookup(region, job.image.platform.arch, spec);
    let source = match spec.vcpu_hour {
        Some(_) => "[cost] in jobrun.toml".to_string(),
        None => format!(
            "{kind} ({} vCPU, {} GiB, {} {}) on ECS Managed Instances: EC2 ${}/h + management fee \
             (assumed {:.1} %), {holds} task{} per instance; {name} of {}",
            instance.vcpu,
            instance.memory_gib,
            instance.gpus,
            instance.gpu.to_uppercase(),
            instance.hour,
            table.management_fee_share * 100.0,
            if holds == 1 { "" } else { "s" },
            table.date
        ),
    };
    Ok(Prices {
        vcpu_hour: spec.vcpu_hour.unwrap_or(task_hour / vcpu),
        // Memory and disk come with the instance: its price covers them.
        gb_hour: spec.gb_hour.unwrap_or(0.0),
        storage_gb_hour: 0.0,
        source,
        instance: Some(InstancePrice {
            kind: kind.clone(),
            hour: instance.hour * fee,
            tasks: holds,
            vcpu: instance.vcpu,
        }),
        ..prices
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu_job(extra: &str) -> Job {
        let text = format!("[job]\nname = \"t\"\ntarget = \"ecs\"\n[resources]\ngpu = 1\n{extra}");
        let none = crate::config::Overrides::default();
        let path = std::path::Path::new("/nowhere/jobrun.toml");
        crate::config::from_text(path, &text, &none, &none).unwrap()
    }

    #[test]
    fn instance_patterns_match_as_ecs_reads_them() {
        assert!(matches_type("g6.*", "g6.2xlarge"));
        assert!(matches_type("g6.xlarge", "g6.xlarge"));
        assert!(!matches_type("g6.*", "g6e.xlarge"));
        assert!(matches_type("g*.xlarge", "g6e.xlarge"));
        assert!(!matches_type("g*.xlarge", "g6e.2xlarge2"));
        assert!(matches_type("*", "p5.48xlarge"));
    }

    /// A 4 vCPU / 16 GB task with one GPU: the cheapest type that holds it is priced, with the
    /// management fee, and a small task shares an instance with others.
    #[test]
    fn a_task_pays_its_share_of_the_cheapest_instance_that_fits() {
        let p = lookup("us-east-1", &gpu_job("cpu = 1\nmemory = \"4GB\"\n")).unwrap();
        let i = p.instance.clone().unwrap();
        // g4dn.xlarge (T4), the cheapest GPU type: 1 GPU per instance, so one task.
        assert_eq!((i.kind.as_str(), i.tasks), ("g4dn.xlarge", 1));
        assert!((i.hour - 0.526 * 1.078).abs() < 1e-9);
        assert!(
            (p.vcpu_hour - i.hour).abs() < 1e-9,
            "1 vCPU pays the instance"
        );
        let l4 = lookup(
            "us-east-1",
            &gpu_job("gpu_type = \"l4\"\ncpu = 8\nmemory = \"30GB\"\n"),
        );
        let l4 = l4.unwrap().instance.unwrap();
        // 30 GB does not fit g6.2xlarge's 32 GiB less ECS's share; four such tasks share a
        // g6.12xlarge's four L4s for less than one g6.4xlarge each.
        assert_eq!((l4.kind.as_str(), l4.tasks), ("g6.12xlarge", 4));
        let allowed = lookup("us-east-1", &gpu_job("instance_types = [\"g5.*\"]\n")).unwrap();
        assert_eq!(allowed.instance.unwrap().kind, "g5.xlarge");
        // An arm64 image runs on Graviton GPU instances only.
        let graviton = gpu_job("[image]\nplatform = \"linux/arm64\"\n");
        let g = lookup("us-east-1", &graviton).unwrap().instance.unwrap();
        assert_eq!(g.kind, "g5g.xlarge");
        let none = lookup("us-east-1", &gpu_job("gpu_type = \"k80\"\n")).unwrap_err();
        assert!(none.contains("no instance type"), "{none}");
    }
}

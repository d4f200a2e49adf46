//! What an attempt used: the most memory it held at once and the CPU time it took, measured
//! where it ran, so a run can say how much of its size its tasks used and what size would
//! have done.
//!
//! In AWS the in-image jobrun (`jobrun task`) measures the container's cgroup around the job's
//! process — the cgroup, not the ECS task metadata endpoint's stats, because it is there in
//! every container (Fargate and Managed Instances, and `docker run` when a test plays ECS),
//! needs no HTTP client in the agent, and gives the kernel's own peak rather than samples:
//! cgroup v2 (Fargate's) `memory.peak` (kernel 5.19 and later; on older kernels the highest
//! `memory.current` sampled each second) and `cpu.stat`'s `usage_usec`; cgroup v1
//! `memory/memory.max_usage_in_bytes` and `cpuacct/cpuacct.usage` (nanoseconds). Locally the
//! engine's stats of the container (`dispatch::local::stats`).
//!
//! No crate reads both cgroup versions' few files (cgroupfs reads v2 only and brings nix and
//! openat), so the readers are here: fixed kernel paths, each file read to at most 64 KiB.

use std::io::Read;
use std::path::{Path, PathBuf};

pub use jobrun_wire::usage::{MIB, Measured};

/// A small kernel file, at most 64 KiB of it.
fn read_small(path: &Path) -> Option<String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

fn number(path: &Path) -> Option<u64> {
    read_small(path)?.trim().parse().ok()
}

/// `usage_usec 1234` out of cgroup v2's `cpu.stat`.
fn usage_usec(cpu_stat: &str) -> Option<u64> {
    cpu_stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == "usage_usec").then(|| v.trim().parse().ok())?
    })
}

/// A cgroup hierarchy, as this container sees it.
#[derive(Debug, Clone)]
pub enum Cgroup {
    /// v2: one folder (`/sys/fs/cgroup`).
    V2(PathBuf),
    /// v1: one folder per controller under the root.
    V1(PathBuf),
}

impl Cgroup {
    /// The container's own hierarchy under `root` (`/sys/fs/cgroup`), or none readable.
    pub fn at(root: &Path) -> Option<Cgroup> {
        if root.join("cgroup.controllers").is_file() {
            return Some(Cgroup::V2(root.to_path_buf()));
        }
        root.join("memory")
            .is_dir()
            .then(|| Cgroup::V1(root.to_path_buf()))
    }

    /// CPU time used so far, seconds.
    pub fn cpu_secs(&self) -> Option<f64> {
        match self {
            Cgroup::V2(d) => usage_usec(&read_small(&d.join("cpu.stat"))?).map(|u| u as f64 / 1e6),
            Cgroup::V1(d) => ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]
                .iter()
                .find_map(|c| number(&d.join(c).join("cpuacct.usage")))
                .map(|ns| ns as f64 / 1e9),
        }
    }

    /// The kernel's own peak of memory use, MiB, where it keeps one.
    pub fn memory_peak_mib(&self) -> Option<f64> {
        let file = match self {
            Cgroup::V2(d) => d.join("memory.peak"),
            Cgroup::V1(d) => d.join("memory").join("memory.max_usage_in_bytes"),
        };
        number(&file).map(|b| b as f64 / MIB)
    }

    /// Memory in use now, MiB.
    pub fn memory_now_mib(&self) -> Option<f64> {
        let file = match self {
            Cgroup::V2(d) => d.join("memory.current"),
            Cgroup::V1(d) => d.join("memory").join("memory.usage_in_bytes"),
        };
        number(&file).map(|b| b as f64 / MIB)
    }
}

/// Measures a cgroup from now until [`Meter::stop`]: CPU time as the difference, memory as the
/// kernel's peak or, without one, the highest use sampled by [`Meter::sample`].
pub struct Meter {
    cgroup: Option<Cgroup>,
    cpu_at_start: Option<f64>,
    sampled_peak: Option<f64>,
}

impl Meter {
    pub fn start(root: &Path) -> Meter {
        let cgroup = Cgroup::at(root);
        let cpu_at_start = cgroup.as_ref().and_then(Cgroup::cpu_secs);
        let mut meter = Meter {
            cgroup,
            cpu_at_start,
            sampled_peak: None,
        };
        meter.sample();
        meter
    }

    /// Notes the memory in use now (called about once a second while the job runs).
    pub fn sample(&mut self) {
        if let Some(now) = self.cgroup.as_ref().and_then(Cgroup::memory_now_mib) {
            self.sampled_peak = Some(self.sampled_peak.map_or(now, |p| p.max(now)));
        }
    }

    pub fn stop(mut self) -> Measured {
        self.sample();
        let Some(cg) = &self.cgroup else {
            return Measured::default();
        };
        let peak = match (cg.memory_peak_mib(), self.sampled_peak) {
            (Some(k), Some(s)) => Some(k.max(s)),
            (k, s) => k.or(s),
        };
        let cpu = match (cg.cpu_secs(), self.cpu_at_start) {
            (Some(end), Some(start)) => Some((end - start).max(0.0)),
            _ => None,
        };
        Measured {
            memory_peak_mib: peak,
            cpu_secs: cpu,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, body: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    /// cgroup v2 as Fargate mounts it: the peak is the kernel's, CPU the difference.
    #[test]
    fn cgroup_v2_files_are_read() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "cgroup.controllers", "cpu memory pids\n");
        write(
            d.path(),
            "cpu.stat",
            "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\n",
        );
        write(d.path(), "memory.current", "104857600\n");
        write(d.path(), "memory.peak", "734003200\n");
        let mut meter = Meter::start(d.path());
        write(
            d.path(),
            "cpu.stat",
            "usage_usec 5000000\nuser_usec 4000000\n",
        );
        meter.sample();
        let m = meter.stop();
        assert_eq!(m.memory_peak_mib, Some(700.0));
        assert_eq!(m.cpu_secs, Some(3.0));
        // A kernel before 5.19 has no memory.peak: the highest sample stands for it.
        std::fs::remove_file(d.path().join("memory.peak")).unwrap();
        let mut meter = Meter::start(d.path());
        write(d.path(), "memory.current", "314572800\n");
        meter.sample();
        write(d.path(), "memory.current", "1048576\n");
        assert_eq!(meter.stop().memory_peak_mib, Some(300.0));
    }

    /// cgroup v1 as this machine's engine mounts it: a folder per controller, the CPU time in
    /// nanoseconds, whichever of the cpuacct folders' names the host uses.
    #[test]
    fn cgroup_v1_files_are_read() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "memory/memory.max_usage_in_bytes", "524288000\n");
        write(d.path(), "memory/memory.usage_in_bytes", "1048576\n");
        write(d.path(), "cpu,cpuacct/cpuacct.usage", "1000000000\n");
        let meter = Meter::start(d.path());
        write(d.path(), "cpu,cpuacct/cpuacct.usage", "3500000000\n");
        let m = meter.stop();
        assert_eq!(m.memory_peak_mib, Some(500.0));
        assert_eq!(m.cpu_secs, Some(2.5));
        // Nothing readable: nothing measured, never a made-up number.
        let empty = tempfile::tempdir().unwrap();
        assert!(Meter::start(empty.path()).stop().is_empty());
        write(empty.path(), "cpu.stat", "garbage");
        assert!(Meter::start(empty.path()).stop().is_empty());
    }
}

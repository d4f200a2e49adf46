//! Task size: vCPU, memory and ephemeral storage, checked against Fargate's table of valid pairs
//! so a job that would be refused by Fargate is refused here first, even on the local target.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Memory in MiB, written in `jobrun.toml` as `"2GB"`, `"512MB"`, `"2GiB"` or a number of MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MemoryMib(pub u32);

impl MemoryMib {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num.parse().map_err(|_| {
            format!("`{text}` is not a memory size (examples: \"2GB\", \"512MB\", 2048)")
        })?;
        let mib = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "m" | "mb" | "mib" => value,
            "g" | "gb" | "gib" => value * 1024.0,
            other => return Err(format!("unknown memory unit `{other}` (use MB or GB)")),
        };
        if mib < 1.0 || mib.fract() != 0.0 || mib > u32::MAX as f64 {
            return Err(format!("`{text}` is not a whole number of MiB"));
        }
        Ok(MemoryMib(mib as u32))
    }
}

impl fmt::Display for MemoryMib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1024) {
            write!(f, "{}GB", self.0 / 1024)
        } else {
            write!(f, "{}MB", self.0)
        }
    }
}

impl<'de> Deserialize<'de> for MemoryMib {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u32),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a memory size like \"2GB\" or a number of MiB")
        })? {
            Raw::Int(n) => Ok(MemoryMib(n)),
            Raw::Text(s) => MemoryMib::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// vCPU as Fargate counts them (0.25 … 16), stored as CPU units (1 vCPU = 1024 units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "f64")]
pub struct Vcpu(pub u32);

impl From<Vcpu> for f64 {
    fn from(v: Vcpu) -> f64 {
        v.0 as f64 / 1024.0
    }
}

impl Vcpu {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text
            .trim()
            .trim_end_matches("vCPU")
            .trim_end_matches("vcpu")
            .trim();
        let v: f64 = t
            .parse()
            .map_err(|_| format!("`{text}` is not a vCPU count (examples: 0.25, 1, 4)"))?;
        Self::from_f64(v)
    }
    fn from_f64(v: f64) -> Result<Self, String> {
        let units = v * 1024.0;
        if units.is_nan() || units < 1.0 || units.fract() != 0.0 {
            return Err(format!("{v} is not a valid vCPU count"));
        }
        Ok(Vcpu(units as u32))
    }
    pub fn as_f64(self) -> f64 {
        self.into()
    }
}

impl fmt::Display for Vcpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Vcpu {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a vCPU count like 0.5 or 2"))?
        {
            Raw::Num(n) => Vcpu::from_f64(n).map_err(serde::de::Error::custom),
            Raw::Text(s) => Vcpu::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// Fargate's valid memory sizes (MiB) for each vCPU size, from the ECS task size table.
fn fargate_memory_options(cpu: Vcpu) -> Option<Vec<u32>> {
    let gb = |from: u32, to: u32, step: u32| {
        (from..=to)
            .step_by(step as usize)
            .map(|g| g * 1024)
            .collect()
    };
    Some(match cpu.0 {
        256 => vec![512, 1024, 2048],
        512 => gb(1, 4, 1),
        1024 => gb(2, 8, 1),
        2048 => gb(4, 16, 1),
        4096 => gb(8, 30, 1),
        8192 => gb(16, 60, 4),
        16384 => gb(32, 120, 8),
        _ => return None,
    })
}

fn describe(options: &[u32]) -> String {
    let show = |m: u32| MemoryMib(m).to_string();
    if options.len() <= 4 {
        options
            .iter()
            .map(|m| show(*m))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        let step = options[1] - options[0];
        format!(
            "{} to {} in {} steps",
            show(options[0]),
            show(*options.last().unwrap()),
            show(step)
        )
    }
}

/// Fargate's vCPU sizes, smallest first (units of 1/1024 vCPU).
const VCPU_SIZES: [u32; 7] = [256, 512, 1024, 2048, 4096, 8192, 16384];

/// The next Fargate size after an out-of-memory kill: the next memory step for the same vCPU,
/// else the next vCPU with the smallest of its memory sizes above `memory` — never above
/// `max` (none: `max` is reached).
pub fn next_size(cpu: Vcpu, memory: MemoryMib, max: MemoryMib) -> Option<(Vcpu, MemoryMib)> {
    let above = |c: u32| {
        fargate_memory_options(Vcpu(c))?
            .into_iter()
            .find(|m| *m > memory.0)
    };
    VCPU_SIZES
        .iter()
        .filter(|c| **c >= cpu.0)
        .find_map(|c| above(*c).map(|m| (Vcpu(*c), MemoryMib(m))))
        .filter(|(_, m)| m.0 <= max.0)
}

/// The smallest Fargate size with at least `cpu` and `memory`: the fewest vCPUs that can have
/// that memory, with their smallest memory size above it (none: beyond Fargate).
pub fn smallest_fargate_size(cpu: Vcpu, memory: MemoryMib) -> Option<(Vcpu, MemoryMib)> {
    VCPU_SIZES.iter().filter(|c| **c >= cpu.0).find_map(|c| {
        let m = fargate_memory_options(Vcpu(*c))?
            .into_iter()
            .find(|m| *m >= memory.0)?;
        Some((Vcpu(*c), MemoryMib(m)))
    })
}

/// Whether `memory` is a Fargate memory size (with some vCPU size).
pub fn is_fargate_memory(memory: MemoryMib) -> bool {
    VCPU_SIZES
        .iter()
        .filter_map(|c| fargate_memory_options(Vcpu(*c)))
        .any(|options| options.contains(&memory.0))
}

/// Checks a cpu/memory pair (and ephemeral storage in GiB) against Fargate's limits.
pub fn validate_fargate(
    cpu: Vcpu,
    memory: MemoryMib,
    ephemeral_gib: Option<u32>,
) -> Result<(), String> {
    let Some(options) = fargate_memory_options(cpu) else {
        return Err(format!(
            "cpu = {cpu} is not a Fargate size; valid vCPU sizes are 0.25, 0.5, 1, 2, 4, 8, 16"
        ));
    };
    if !options.contains(&memory.0) {
        return Err(format!(
            "memory = {memory} is not valid with cpu = {cpu} on Fargate; with {cpu} vCPU use {}",
            describe(&options)
        ));
    }
    // RegisterTaskDefinition, EphemeralStorage: sizeInGiB is 21-200 (ECS API Reference).
    if let Some(ephemeral_gib) = ephemeral_gib.filter(|g| !(21..=200).contains(g)) {
        return Err(format!(
            "ephemeral_storage = {ephemeral_gib} GiB is outside Fargate's 21–200 GiB"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(cpu: &str, mem: &str) -> bool {
        validate_fargate(
            Vcpu::parse(cpu).unwrap(),
            MemoryMib::parse(mem).unwrap(),
            None,
        )
        .is_ok()
    }

    #[test]
    fn after_out_of_memory_the_next_size_is_the_next_step_then_the_next_vcpu() {
        let size = |c: &str, m: &str| (Vcpu::parse(c).unwrap(), MemoryMib::parse(m).unwrap());
        let next = |c: &str, m: &str, max: &str| {
            let (c, m) = size(c, m);
            next_size(c, m, MemoryMib::parse(max).unwrap())
        };
        assert_eq!(next("0.25", "512MB", "1GB"), Some(size("0.25", "1GB")));
        assert_eq!(next("0.25", "2GB", "8GB"), Some(size("0.5", "3GB")));
        assert_eq!(next("4", "30GB", "60GB"), Some(size("8", "32GB")));
        assert_eq!(next("0.25", "1GB", "1GB"), None, "max_memory reached");
        assert_eq!(next("16", "120GB", "240GB"), None, "the largest size");
        assert!(is_fargate_memory(MemoryMib::parse("30GB").unwrap()));
        assert!(!is_fargate_memory(MemoryMib::parse("1536MB").unwrap()));
    }

    #[test]
    fn fargate_table_edges() {
        assert!(ok("0.25", "512MB"));
        assert!(ok("0.25", "2GB"));
        assert!(!ok("0.25", "3GB"));
        assert!(ok("0.5", "1GB") && ok("0.5", "4GB") && !ok("0.5", "5GB"));
        assert!(ok("1", "2GB") && ok("1", "8GB") && !ok("1", "1GB") && !ok("1", "9GB"));
        assert!(ok("2", "4GB") && ok("2", "16GB") && !ok("2", "17GB"));
        assert!(ok("4", "8GB") && ok("4", "30GB") && !ok("4", "31GB"));
        assert!(ok("8", "16GB") && ok("8", "20GB") && !ok("8", "18GB") && ok("8", "60GB"));
        assert!(ok("16", "32GB") && ok("16", "40GB") && ok("16", "120GB"));
        assert!(!ok("16", "36GB") && !ok("16", "128GB"));
        assert!(!ok("3", "8GB"));
        assert!(!ok("1", "2.5GB"));
        assert!(validate_fargate(Vcpu(1024), MemoryMib(2048), Some(20)).is_err());
        assert!(validate_fargate(Vcpu(1024), MemoryMib(2048), Some(201)).is_err());
        assert!(validate_fargate(Vcpu(1024), MemoryMib(2048), Some(200)).is_ok());
        assert!(validate_fargate(Vcpu(1024), MemoryMib(2048), None).is_ok());
    }

    #[test]
    fn memory_units() {
        assert_eq!(MemoryMib::parse("2GB").unwrap(), MemoryMib(2048));
        assert_eq!(MemoryMib::parse("0.5GB").unwrap(), MemoryMib(512));
        assert_eq!(MemoryMib::parse("512 MiB").unwrap(), MemoryMib(512));
        assert_eq!(MemoryMib::parse("1024").unwrap(), MemoryMib(1024));
        assert!(MemoryMib::parse("lots").is_err());
        assert!(MemoryMib::parse("2TB").is_err());
    }

    #[test]
    fn error_names_valid_range() {
        let e = validate_fargate(Vcpu(16384), MemoryMib(36 * 1024), None).unwrap_err();
        assert!(e.contains("32GB to 120GB in 8GB steps"), "{e}");
    }
}

//! The CPU architecture of a job's image: the one spelling of it. Docker and OCI say
//! `amd64`/`arm64`, ECS's task definitions say `X86_64`/`ARM64`, Rust and ELF say
//! `x86_64`/`aarch64`, and Fargate's price list says x86 or ARM; every place that needs one of
//! those names asks an [`Arch`] for it, instead of comparing strings.

use serde::{Deserialize, Serialize};

/// The two architectures Fargate runs (and jobrun builds for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// Docker's and OCI's name (`linux/<this>` platforms, image configs, manifest indexes),
    /// which is also how jobrun.toml and the command line spell it.
    pub fn docker(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// ECS's `runtimePlatform.cpuArchitecture`.
    pub fn ecs(self) -> &'static str {
        match self {
            Arch::Amd64 => "X86_64",
            Arch::Arm64 => "ARM64",
        }
    }

    /// ECS's name read back (DescribeTaskDefinition); ECS leaves it out for X86_64.
    pub fn from_ecs(name: Option<&str>) -> Option<Arch> {
        match name {
            None | Some("X86_64") => Some(Arch::Amd64),
            Some("ARM64") => Some(Arch::Arm64),
            Some(_) => None,
        }
    }

    /// Its name in Fargate's price list (Linux/x86 or Linux/ARM, Graviton), as cost reports
    /// say where their prices come from.
    pub fn price_name(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86",
            Arch::Arm64 => "arm64",
        }
    }

    /// Docker's name, or the Rust / ELF / `uname -m` one (`x86_64`, `aarch64`).
    pub fn parse(name: &str) -> Option<Arch> {
        match name {
            "amd64" | "x86_64" => Some(Arch::Amd64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// The machine this jobrun was compiled for (and so runs on).
    pub fn host() -> Arch {
        Arch::parse(std::env::consts::ARCH).unwrap_or(Arch::Amd64)
    }

    /// The other one.
    pub fn other(self) -> Arch {
        match self {
            Arch::Amd64 => Arch::Arm64,
            Arch::Arm64 => Arch::Amd64,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.docker())
    }
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Arch::parse(s).ok_or_else(|| format!("`{s}` is not an architecture (amd64, arm64)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_arch_has_its_docker_ecs_and_price_names_and_reads_back_from_each() {
        let table = [
            (Arch::Amd64, "amd64", "x86_64", "X86_64", "x86"),
            (Arch::Arm64, "arm64", "aarch64", "ARM64", "arm64"),
        ];
        for (arch, docker, rust, ecs, price) in table {
            assert_eq!(arch.docker(), docker);
            assert_eq!(arch.to_string(), docker);
            assert_eq!(arch.ecs(), ecs);
            assert_eq!(arch.price_name(), price);
            assert_eq!(Arch::parse(docker), Some(arch));
            assert_eq!(Arch::parse(rust), Some(arch));
            assert_eq!(Arch::from_ecs(Some(ecs)), Some(arch));
            assert_eq!(docker.parse::<Arch>(), Ok(arch));
            assert_eq!(arch.other().other(), arch);
            assert_ne!(arch.other(), arch);
            // Serialised (records, agent.json, jobrun.toml keys) as Docker spells it.
            assert_eq!(
                serde_json::to_string(&arch).unwrap(),
                format!("\"{docker}\"")
            );
        }
        assert_eq!(Arch::from_ecs(None), Some(Arch::Amd64), "ECS's default");
        assert_eq!(Arch::parse("riscv64"), None);
        assert_eq!(
            Arch::from_ecs(Some("arm64")),
            None,
            "ECS's names are upper case"
        );
        assert!("x86".parse::<Arch>().unwrap_err().contains("amd64, arm64"));
        assert_eq!(
            Arch::host().docker(),
            Arch::parse(std::env::consts::ARCH).unwrap().docker()
        );
    }
}

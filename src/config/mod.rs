//! `jobrun.toml`: the job's settings, layered as environment (`JOBRUN_*`) < file < flags.
//!
//! The file is parsed strictly (unknown keys and type errors name the key, file and line), then the
//! [`Overrides`] (one clap struct, filled from flags or from the environment) are laid over it and
//! everything resolves into a [`Job`], validated (Fargate cpu/memory table included) before any
//! command touches the engine.

//!
//! `file` is the file as written, `resolve` lays the layers and checks, `job` is the result.

mod arch;
mod file;
mod job;
mod machines;
mod resolve;
pub mod rules;

pub use job::*;
pub use resolve::Overrides;

use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "jobrun.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no {FILE_NAME} in {0}")]
    NotFound(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}{message}")]
    Parse {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Finds the job file: `--file`, or `jobrun.toml` in the current folder.
pub fn locate(file: Option<&Path>) -> Result<PathBuf, ConfigError> {
    let path = match file {
        Some(p) => p.to_path_buf(),
        None => std::env::current_dir()
            .map_err(|source| ConfigError::Read {
                path: ".".into(),
                source,
            })?
            .join(FILE_NAME),
    };
    if path.is_file() {
        Ok(std::path::absolute(&path).unwrap_or(path))
    } else if file.is_none() {
        Err(ConfigError::NotFound(
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        ))
    } else {
        Err(ConfigError::Read {
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            path,
        })
    }
}

/// Reads and resolves a job: file < environment-less defaults, then `env` below and `flags` above the file.
pub fn load(path: &Path, env: &Overrides, flags: &Overrides) -> Result<Job, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    from_text(path, &text, env, flags)
}

/// A job from jobrun.toml's text, as if read from `path` (a schedule's dispatcher has the text
/// from the job's bucket, and names the stored definition).
pub fn from_text(
    path: &Path,
    text: &str,
    env: &Overrides,
    flags: &Overrides,
) -> Result<Job, ConfigError> {
    let file: file::FileConfig =
        toml::from_str(text).map_err(|e| file::parse_error(path, text, &e))?;
    resolve::resolve(path, file, env, flags)
}

/// A job of the ecs target named `name`, for other modules' tests (the name is set after
/// loading, so names the job-name rule refuses can be tried too).
#[cfg(test)]
pub fn ecs_job_for_tests(name: &str) -> Job {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, "[job]\nname = \"wc\"\ntarget = \"ecs\"\n").unwrap();
    let mut job = load(&path, &Overrides::default(), &Overrides::default()).unwrap();
    job.name = name.to_string();
    job
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Vcpu;

    fn load_str(text: &str, env: &Overrides, flags: &Overrides) -> Result<Job, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, text).unwrap();
        load(&path, env, flags)
    }

    /// `[resources] gpu`, `gpu_type`, `instance_types`, `instance_idle`: checked as EC2 and ECS
    /// take them; on ECS they move the job to Managed Instances (Fargate has no GPU).
    #[test]
    fn gpus_are_counted_named_and_refused_where_they_cannot_run() {
        let none = (&Overrides::default(), &Overrides::default());
        let job = |extra: &str| {
            load_str(&format!("[job]\nname = \"wc\"\n{extra}"), none.0, none.1)
                .map_err(|e| e.to_string())
        };
        let r = job("[resources]\ngpu = 1\ngpu_type = \"L4\"\ninstance_types = [\"g6.*\"]\n")
            .unwrap()
            .resources;
        assert_eq!((r.gpu, r.gpu_type.as_deref()), (1, Some("l4")));
        assert!(r.beyond_fargate());
        assert!(!job("").unwrap().resources.beyond_fargate());
        for (bad, says) in [
            ("gpu = 9", "at most 8 GPUs"),
            ("gpu_type = \"l4\"", "gpu_type needs resources.gpu"),
            ("gpu = 1\ngpu_type = \"rtx4090\"", "not a GPU EC2 names"),
            (
                "instance_types = [\"g6 xlarge\"]",
                "not an EC2 instance type",
            ),
        ] {
            let e = job(&format!("[resources]\n{bad}\n")).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let ecs = load_str(
            "[job]\nname = \"wc\"\ntarget = \"ecs\"\n[resources]\ngpu = 1\ninstance_idle = \"90s\"\n",
            none.0,
            none.1,
        )
        .unwrap();
        assert!(
            ecs.managed_instances(),
            "an ECS job with a GPU runs on Managed Instances"
        );
        assert_eq!(ecs.resources.instance_idle.as_secs(), 90);
        assert!(!job("[resources]\ngpu = 1\n").unwrap().managed_instances());
        assert_eq!(job("").unwrap().resources.instance_idle.as_secs(), 300);
        let e = job("[resources]\ninstance_idle = \"2h\"\n").unwrap_err();
        assert!(e.contains("at most an hour"), "{e}");
    }

    #[test]
    fn results_name_a_metric_and_its_goal() {
        let none = (&Overrides::default(), &Overrides::default());
        let job = |extra: &str| load_str(&format!("[job]\nname = \"wc\"\n{extra}"), none.0, none.1);
        assert_eq!(job("").unwrap().results, None);
        let o = job("[results]\nmetric = \"result.loss\"\n")
            .unwrap()
            .results
            .unwrap();
        assert_eq!((o.metric.as_str(), o.goal), ("loss", Goal::Minimize));
        let o = job("[results]\nmetric = \"acc\"\ngoal = \"maximize\"\n")
            .unwrap()
            .results;
        assert_eq!(o.unwrap().goal, Goal::Maximize);
        let e = job("[results]\ngoal = \"maximize\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("results.goal needs results.metric"), "{e}");
        let e = job("[results]\nmetric = \"loss\"\ngoal = \"lowest\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("results.goal"), "{e}");
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let job = load_str(
            "[job]\nname = \"wc\"\n",
            &Overrides::default(),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(job.name, "wc");
        assert_eq!(job.run.max_attempts, 1);
        assert_eq!(job.run.timeout, DEFAULT_TIMEOUT);
        assert_eq!(job.resources.cpu, Vcpu(1024));
        assert_eq!(job.image.platform, Platform::host());
        assert!(job.image.dockerfile.ends_with("Dockerfile"));
    }

    #[test]
    fn secrets_and_their_kms_keys_must_be_references() {
        let with = |ecs: &str| {
            load_str(
                &format!("[job]\nname = \"wc\"\ntarget = \"ecs\"\n[ecs]\n{ecs}\n"),
                &Overrides::default(),
                &Overrides::default(),
            )
        };
        let ok = with(
            "secrets = { A = \"arn:aws-cn:secretsmanager:cn-north-1:1:secret:db:pw::\", B = \"/db/pass\" }\nsecrets_kms_keys = [\"arn:aws-cn:kms:cn-north-1:1:key/k-1\"]",
        )
        .unwrap();
        assert_eq!(ok.ecs.secrets_kms_keys.len(), 1);
        let e = with("secrets_kms_keys = [\"arn:aws:kms:us-east-1:1:alias/db\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a KMS key ARN"), "{e}");
        let e = with("secrets = { A = \"hunter2\" }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("never the secret itself"), "{e}");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = load_str(
            "[job]\nname = \"wc\"\n\n[run]\nconcurency = 3\n",
            &Overrides::default(),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("jobrun.toml:5: run.concurency: unknown field `concurency`"),
            "{e}"
        );
    }

    #[test]
    fn type_error_names_key_and_line() {
        let e = load_str(
            "[job]\nname = \"wc\"\n[run]\nmax_attempts = \"three\"\n",
            &Overrides::default(),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(":4: run.max_attempts: invalid type"), "{e}");
    }

    #[test]
    fn layering_env_below_file_below_flags() {
        let text = "[job]\nname = \"wc\"\n[run]\nconcurrency = 3\n";
        let env = Overrides {
            concurrency: Some(7),
            max_attempts: Some(4),
            ..Default::default()
        };
        let job = load_str(text, &env, &Overrides::default()).unwrap();
        assert_eq!(job.run.concurrency, 3, "file beats environment");
        assert_eq!(
            job.run.max_attempts, 4,
            "environment fills what the file leaves out"
        );
        let flags = Overrides {
            concurrency: Some(9),
            ..Default::default()
        };
        let job = load_str(text, &env, &flags).unwrap();
        assert_eq!(job.run.concurrency, 9, "flags beat the file");
    }

    #[test]
    fn invalid_pair_is_refused() {
        let e = load_str(
            "[job]\nname = \"wc\"\n[resources]\ncpu = 0.25\nmemory = \"4GB\"\n",
            &Overrides::default(),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not valid with cpu = 0.25"), "{e}");
    }

    #[test]
    fn ecs_target_defaults_to_arm64_and_ecr() {
        let job = load_str(
            "[job]\nname = \"wc\"\ntarget = \"ecs\"\n",
            &Overrides::default(),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(job.image.platform.to_string(), "linux/arm64");
        assert!(matches!(
            job.image.registry,
            RegistrySpec::Ecr {
                keep_images: 20,
                ..
            }
        ));
        let job = load_str(
            "[job]\nname = \"wc\"\n[image]\nregistry = \"127.0.0.1:5000/team/ml\"\n",
            &Overrides::default(),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            job.image.registry,
            RegistrySpec::Oci {
                host: "127.0.0.1:5000".into(),
                namespace: "team/ml".into()
            }
        );
    }

    #[test]
    fn bad_job_name() {
        assert!(validate_job_name("Word Count").is_err());
        assert!(validate_job_name("wordcount-2").is_ok());
    }
}

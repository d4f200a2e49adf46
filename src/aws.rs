//! AWS access for the CLI: which identity and region a command acts under ([`Access`]), over
//! jobrun's AWS crate (`jobrun-aws`: the clients, errors matched by code, the S3 object calls),
//! whose names are re-exported here.

pub use jobrun_aws::s3::*;
pub use jobrun_aws::{Aws, AwsError, backoff, found, op, retrying};

/// Which AWS identity and region a command acts under: the one rule, in one place. The
/// command's `--profile` / `--region` first, then the job's `[aws]` (as jobrun.toml says it, or
/// as a run recorded it at submit), then the standard chain (`AWS_PROFILE` / `AWS_REGION`, the
/// profile's region, "default"). `commands::run` sets the flags once per command, so a command
/// never acts under two identities (the run's watch, its notification and the command itself
/// all ask here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub profile: Option<String>,
    pub region: Option<String>,
    /// In AWS (the driver, a schedule's dispatcher): a profile a run recorded on the machine
    /// that submitted it means nothing here; the task role's credentials are the chain's.
    pub in_aws: bool,
}

static FLAGS: std::sync::OnceLock<Access> = std::sync::OnceLock::new();

impl Access {
    /// The command line's `--profile` / `--region`; the first call wins.
    pub fn set_flags(flags: Access) {
        let _ = FLAGS.set(flags);
    }

    fn flags() -> Access {
        FLAGS.get().cloned().unwrap_or_default()
    }

    /// For a job: the flags, then its `[aws]`.
    pub fn for_job(profile: Option<&str>, region: Option<&str>) -> Access {
        Self::flags().over(profile, region)
    }

    /// For what lives in one region already (a run's cluster and bucket, a topic): the flags'
    /// profile, then the one recorded; the region is that place's, whatever `--region` says.
    pub fn in_region(profile: Option<&str>, region: &str) -> Access {
        Access {
            region: Some(region.to_string()),
            ..Self::flags().over(profile, None)
        }
    }

    fn over(self, profile: Option<&str>, region: Option<&str>) -> Access {
        let recorded = profile.filter(|_| !self.in_aws).map(str::to_string);
        Access {
            profile: self.profile.or(recorded),
            region: self.region.or(region.map(str::to_string)),
            in_aws: self.in_aws,
        }
    }

    pub async fn load(&self) -> Result<Aws, AwsError> {
        Aws::load(self.profile.as_deref(), self.region.as_deref()).await
    }
}

#[cfg(test)]
mod tests {
    use super::Access;

    fn access(profile: Option<&str>, region: Option<&str>) -> Access {
        Access {
            profile: profile.map(str::to_string),
            region: region.map(str::to_string),
            in_aws: false,
        }
    }

    #[test]
    fn flags_win_over_the_job_and_the_job_over_the_chain() {
        let job = (Some("ml"), Some("eu-west-1"));
        assert_eq!(
            access(Some("me"), Some("us-east-2")).over(job.0, job.1),
            access(Some("me"), Some("us-east-2"))
        );
        assert_eq!(
            access(None, None).over(job.0, job.1),
            access(Some("ml"), Some("eu-west-1"))
        );
        // Neither says: the standard chain decides (AWS_PROFILE, AWS_REGION, "default").
        assert_eq!(access(None, None).over(None, None), access(None, None));
        assert_eq!(
            access(Some("me"), None).over(None, Some("eu-west-1")),
            access(Some("me"), Some("eu-west-1"))
        );
    }
}

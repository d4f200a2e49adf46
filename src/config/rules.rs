//! What AWS lets each kind of name be, as its API reference states it. Every name jobrun makes
//! from the job's name (bucket, roles, queues, cluster, repository, …) and every name given in
//! jobrun.toml is checked against its service's rule before anything is created, so a name AWS
//! would refuse half way through `up` is one clear error up front instead.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// ECR: 2–256 characters, `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`.
    EcrRepository,
    /// S3 (general purpose): 3–63 of `a-z 0-9 . -`, a letter or digit at both ends, no `..`,
    /// not an IP address, none of the reserved prefixes and suffixes.
    S3Bucket,
    /// IAM: 1–64 of `A-Z a-z 0-9 + = , . @ _ -`.
    IamRole,
    /// SQS (standard queues): 1–80 of `A-Z a-z 0-9 _ -`.
    SqsQueue,
    /// CloudWatch Logs: 1–512 of `A-Z a-z 0-9 . _ - / #`.
    LogGroup,
    /// ECS clusters, services and task definition families: 1–255 of `A-Z a-z 0-9 _ -`.
    Ecs,
    /// EC2 security groups: 1–255 characters, not starting with `sg-`.
    SecurityGroup,
    /// EventBridge Scheduler schedules and schedule groups: 1–64 of `A-Z a-z 0-9 . _ -`.
    Scheduler,
}

impl Rule {
    /// `Ok` when AWS accepts `name` for this kind of resource.
    pub fn check(self, name: &str) -> Result<(), RuleBroken> {
        let ok = match self {
            Rule::EcrRepository => (2..=256).contains(&name.len()) && name.split('/').all(ecr_part),
            Rule::S3Bucket => bucket(name),
            Rule::IamRole => within(name, 64, "+=,.@_-"),
            Rule::SqsQueue => within(name, 80, "_-"),
            Rule::LogGroup => within(name, 512, "._-/#"),
            Rule::Ecs => within(name, 255, "_-"),
            Rule::Scheduler => within(name, 64, "._-"),
            Rule::SecurityGroup => {
                (1..=255).contains(&name.len()) && !name.starts_with("sg-") && name.is_ascii()
            }
        };
        if ok { Ok(()) } else { Err(RuleBroken(self)) }
    }

    /// The rule in words, for the error.
    pub fn text(self) -> &'static str {
        match self {
            Rule::EcrRepository => {
                "ECR repository names are 2-256 characters of lowercase letters and digits, in words joined by single '.', '_', '-' or '/'"
            }
            Rule::S3Bucket => {
                "S3 bucket names are 3-63 characters of lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
            }
            Rule::IamRole => "IAM role names are 1-64 characters of letters, digits and '+=,.@_-'",
            Rule::SqsQueue => "SQS queue names are 1-80 characters of letters, digits, '_' and '-'",
            Rule::LogGroup => "log group names are 1-512 characters of letters, digits and '._-/#'",
            Rule::Ecs => "ECS names are 1-255 characters of letters, digits, '_' and '-'",
            Rule::Scheduler => {
                "schedule names are 1-64 characters of letters, digits, '.', '_' and '-'"
            }
            Rule::SecurityGroup => {
                "security group names are 1-255 ASCII characters, not starting with 'sg-'"
            }
        }
    }
}

/// Which rule a name broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleBroken(pub Rule);

impl fmt::Display for RuleBroken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.text())
    }
}

/// `len` in 1..=max, and only ASCII letters, digits and the `extra` characters.
fn within(name: &str, max: usize, extra: &str) -> bool {
    (1..=max).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// One `/`-separated part of an ECR repository name: words of `[a-z0-9]`, joined by one of
/// `._-`.
fn ecr_part(part: &str) -> bool {
    let word = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    part.split(['.', '_', '-']).all(word)
}

fn bucket(name: &str) -> bool {
    const RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const RESERVED_SUFFIXES: [&str; 4] = ["-s3alias", "--ol-s3", "--x-s3", "--table-s3"];
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ip_like = name.split('.').count() == 4
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && ends_ok(name.chars().next())
        && ends_ok(name.chars().last())
        && !name.contains("..")
        && !ip_like
        && !RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
        && !RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_against_aws_examples() {
        let table: &[(Rule, &str, bool)] = &[
            (Rule::EcrRepository, "jobrun/wc", true),
            (Rule::EcrRepository, "team.a/jobrun/etl_2-x", true),
            (Rule::EcrRepository, "jobrun/etl-", false),
            (Rule::EcrRepository, "jobrun/a--b", false),
            (Rule::EcrRepository, "jobrun/a_", false),
            (Rule::EcrRepository, "jobrun//a", false),
            (Rule::EcrRepository, "jobrun/Wc", false),
            (Rule::EcrRepository, "a", false),
            (Rule::S3Bucket, "jobrun-wc-123456789012-us-east-1", true),
            (Rule::S3Bucket, "my.bucket", true),
            (Rule::S3Bucket, "ab", false),
            (Rule::S3Bucket, "My-Bucket", false),
            (Rule::S3Bucket, "my_bucket", false),
            (Rule::S3Bucket, "-bucket", false),
            (Rule::S3Bucket, "my..bucket", false),
            (Rule::S3Bucket, "192.168.5.4", false),
            (Rule::S3Bucket, "xn--bucket", false),
            (Rule::S3Bucket, "bucket-s3alias", false),
            (Rule::S3Bucket, &"a".repeat(64), false),
            (Rule::IamRole, "jobrun-wc-execution", true),
            (Rule::IamRole, &"a".repeat(65), false),
            (Rule::IamRole, "a/b", false),
            (Rule::SqsQueue, "jobrun-wc-dlq", true),
            (Rule::SqsQueue, "jobrun.wc", false),
            (Rule::SqsQueue, &"q".repeat(81), false),
            (Rule::LogGroup, "/jobrun/wc", true),
            (Rule::LogGroup, "/jobrun/w c", false),
            (Rule::Ecs, "jobrun-wc_1", true),
            (Rule::Ecs, "jobrun.wc", false),
            (Rule::Ecs, "", false),
            (Rule::SecurityGroup, "jobrun-wc", true),
            (Rule::SecurityGroup, "sg-wc", false),
        ];
        for (rule, name, ok) in table {
            assert_eq!(rule.check(name).is_ok(), *ok, "{rule:?} {name}");
        }
    }
}

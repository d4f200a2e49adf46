//! ARNs, spelled once. An ARN starts with its partition — `aws`, `aws-cn` (China),
//! `aws-us-gov` (GovCloud), the ISO partitions — so a hard-coded `arn:aws:` names nothing in
//! those regions. [`Arns`] builds every ARN jobrun writes into a policy or compares with an
//! answer, from the partition of the caller's own identity (GetCallerIdentity), or of the
//! region when no identity is at hand; [`Arn::parse`] reads one given in jobrun.toml.

use std::fmt;

/// The partition a region belongs to, by AWS's region prefixes (the SDK's partition table).
pub fn partition_of_region(region: &str) -> &'static str {
    const PREFIXES: [(&str, &str); 6] = [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-isof-", "aws-iso-f"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map(|(_, partition)| *partition)
        .unwrap_or("aws")
}

/// One ARN taken apart: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    /// Everything after the fifth colon (it may hold colons itself).
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// `None` unless `text` has the six parts of an ARN with a known partition.
    pub fn parse(text: &'a str) -> Option<Arn<'a>> {
        let mut parts = text.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let partition = parts.next()?;
        let arn = Arn {
            partition,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        };
        let known = partition == "aws" || partition.starts_with("aws-");
        (known && !arn.service.is_empty() && !arn.resource.is_empty()).then_some(arn)
    }
}

impl fmt::Display for Arn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Arn {
            partition,
            service,
            region,
            account,
            resource,
        } = self;
        write!(f, "arn:{partition}:{service}:{region}:{account}:{resource}")
    }
}

/// Builds the ARNs of one account in one region.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Arns {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Arns {
    /// The partition is the one of `identity` (the caller's ARN) when it parses, else the
    /// region's.
    pub fn new(identity: Option<&str>, region: &str, account: &str) -> Arns {
        let partition = identity
            .and_then(Arn::parse)
            .map(|a| a.partition.to_string())
            .unwrap_or_else(|| partition_of_region(region).to_string());
        Arns {
            partition,
            region: region.to_string(),
            account: account.to_string(),
        }
    }

    /// A resource of a regional service of this account: `arn:P:SERVICE:REGION:ACCOUNT:RESOURCE`.
    pub fn regional(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }

    /// An IAM role of this account.
    pub fn role(&self, name: &str) -> String {
        format!("arn:{}:iam::{}:role/{name}", self.partition, self.account)
    }

    /// A bucket, or with a key pattern, objects in it (S3 ARNs name no region or account).
    pub fn s3(&self, bucket: &str, key: Option<&str>) -> String {
        match key {
            Some(key) => format!("arn:{}:s3:::{bucket}/{key}", self.partition),
            None => format!("arn:{}:s3:::{bucket}", self.partition),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_china_and_govcloud() {
        for (region, partition) in [
            ("us-east-1", "aws"),
            ("eu-west-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
        ] {
            assert_eq!(partition_of_region(region), partition, "{region}");
        }
        let cn = Arns::new(None, "cn-north-1", "123456789012");
        assert_eq!(
            cn.regional("sqs", "jobrun-wc"),
            "arn:aws-cn:sqs:cn-north-1:123456789012:jobrun-wc"
        );
        assert_eq!(
            cn.role("jobrun-wc-task"),
            "arn:aws-cn:iam::123456789012:role/jobrun-wc-task"
        );
        assert_eq!(cn.s3("b", Some("jobs/wc/*")), "arn:aws-cn:s3:::b/jobs/wc/*");
        let gov = Arns::new(None, "us-gov-west-1", "1");
        assert_eq!(
            gov.regional("logs", "log-group:/jobrun/wc"),
            "arn:aws-us-gov:logs:us-gov-west-1:1:log-group:/jobrun/wc"
        );
        assert_eq!(gov.s3("b", None), "arn:aws-us-gov:s3:::b");
    }

    #[test]
    fn the_identity_decides_the_partition() {
        let arns = Arns::new(Some("arn:aws-us-gov:iam::1:user/ci"), "us-gov-east-1", "1");
        assert_eq!(arns.partition, "aws-us-gov");
        // An identity that does not parse falls back to the region's partition.
        assert_eq!(
            Arns::new(Some("nonsense"), "cn-north-1", "1").partition,
            "aws-cn"
        );
    }

    #[test]
    fn parse_keeps_colons_in_the_resource() {
        let text = "arn:aws-cn:secretsmanager:cn-north-1:1:secret:db-AbCdEf:password::";
        let arn = Arn::parse(text).unwrap();
        assert_eq!(arn.partition, "aws-cn");
        assert_eq!(arn.service, "secretsmanager");
        assert_eq!(arn.resource, "secret:db-AbCdEf:password::");
        assert_eq!(arn.to_string(), text);
        assert!(Arn::parse("arn:foo:s3:::b").is_none());
        assert!(Arn::parse("/param").is_none());
    }
}

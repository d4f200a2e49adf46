//! The account's Fargate vCPU quotas: how many vCPUs of Fargate (on-demand, and Spot) the
//! account may run at once in a Region. They are small on new accounts, and a run beyond them
//! does not fail: RunTask refuses the tasks over the quota, which then wait (see
//! `dispatch::ecs::launch`) until others end. So a run is planned under them: `submit
//! --dry-run` says how many tasks run at once and what that makes of the run's length, and
//! `--max-duration` refuses a run that cannot end in time.
//!
//! Read with Service Quotas' GetServiceQuota (service code `fargate`; quota codes L-3032A538
//! "Fargate On-Demand vCPU resource count" and L-36FBB829 "Fargate Spot vCPU resource count";
//! on ECS Managed Instances EC2's, service code `ec2`: L-DB2E81BA "Running On-Demand G and VT
//! instances", L-3819A6DF "All G and VT Spot Instance Requests", L-417A185B "Running
//! On-Demand P instances", L-7212CCBC "All P Spot Instance Requests", in vCPUs of instances,
//! 0 on many new accounts):
//! https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_GetServiceQuota.html
//! — NoSuchResourceException when the account has no value of its own, then the AWS default
//! (GetAWSDefaultServiceQuota); a caller that may not read them gets AWS's default, said as such.

use crate::aws::{self, Aws};
use serde::Serialize;
use std::fmt;

/// Which vCPU quota: Fargate's, or EC2's of the GPU instance families Managed Instances use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    OnDemand,
    Spot,
    GOnDemand,
    GSpot,
    POnDemand,
    PSpot,
}

impl Kind {
    pub fn code(self) -> &'static str {
        match self {
            Kind::OnDemand => "L-3032A538",
            Kind::Spot => "L-36FBB829",
            Kind::GOnDemand => "L-DB2E81BA",
            Kind::GSpot => "L-3819A6DF",
            Kind::POnDemand => "L-417A185B",
            Kind::PSpot => "L-7212CCBC",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::OnDemand | Kind::GOnDemand | Kind::POnDemand => "on-demand",
            Kind::Spot | Kind::GSpot | Kind::PSpot => "Spot",
        }
    }

    /// The quota as Service Quotas' ARNs name it: `<service>/<code>`.
    pub fn resource(self) -> String {
        format!("{}/{}", self.service(), self.code())
    }

    /// Service Quotas' service code.
    fn service(self) -> &'static str {
        match self {
            Kind::OnDemand | Kind::Spot => "fargate",
            _ => "ec2",
        }
    }

    /// What the quota counts the vCPUs of.
    pub fn of_what(self) -> &'static str {
        match self {
            Kind::OnDemand | Kind::Spot => "Fargate",
            Kind::GOnDemand | Kind::GSpot => "EC2 G and VT instance",
            Kind::POnDemand | Kind::PSpot => "EC2 P instance",
        }
    }

    /// The EC2 quota of this purchase option for an instance type (`g6.xlarge`, `p5.48xlarge`).
    pub fn for_instance(self, instance: &str) -> Kind {
        let spot = matches!(self, Kind::Spot | Kind::GSpot | Kind::PSpot);
        match (spot, instance.starts_with('p')) {
            (true, false) => Kind::GSpot,
            (true, true) => Kind::PSpot,
            (false, false) => Kind::GOnDemand,
            (false, true) => Kind::POnDemand,
        }
    }
}

/// AWS's default value of both quotas (Service Quotas, "AWS default quota value"), for a caller
/// that may not read the account's own; a new account may have less until it has run tasks.
pub const AWS_DEFAULT_VCPU: f64 = 4000.0;

/// One quota and where its value comes from.
#[derive(Debug, Clone, Serialize)]
pub struct Quota {
    pub kind: Kind,
    pub code: &'static str,
    pub vcpu: f64,
    /// "the account's", "AWS's default (the account has none of its own)", or why it is
    /// assumed.
    pub source: String,
    /// Where to ask for more.
    pub raise: String,
}

impl Quota {
    /// How many tasks of `task_vcpu` fit under it at once.
    pub fn tasks(&self, task_vcpu: f64) -> usize {
        if task_vcpu <= 0.0 || self.vcpu.is_infinite() {
            return usize::MAX;
        }
        (self.vcpu / task_vcpu + 1e-9).floor().max(0.0) as usize
    }
}

/// The Service Quotas console page of a quota, in the Region.
pub fn console_link(region: &str, kind: Kind) -> String {
    format!(
        "https://{region}.console.aws.amazon.com/servicequotas/home/services/{}/quotas/{}",
        kind.service(),
        kind.code()
    )
}

/// The quota of `kind` in the account and Region of `aws`.
pub async fn read(aws: &Aws, kind: Kind) -> Quota {
    let sq = aws.service_quotas();
    let got = aws::retrying(|| async {
        sq.get_service_quota()
            .service_code(kind.service())
            .quota_code(kind.code())
            .send()
            .await
            .map_err(aws::op("GetServiceQuota"))
    })
    .await;
    let value = |q: Option<&aws_sdk_servicequotas::types::ServiceQuota>| q.and_then(|q| q.value());
    let (vcpu, source) = match got {
        Ok(out) => match value(out.quota()) {
            Some(v) => (v, "the account's".to_string()),
            None => assumed(kind, "GetServiceQuota gave no value"),
        },
        Err(e) if e.code() == Some("NoSuchResourceException") => {
            let default = aws::retrying(|| async {
                sq.get_aws_default_service_quota()
                    .service_code(kind.service())
                    .quota_code(kind.code())
                    .send()
                    .await
                    .map_err(aws::op("GetAWSDefaultServiceQuota"))
            })
            .await;
            match default.ok().and_then(|o| value(o.quota())) {
                Some(v) => (v, "AWS's default".to_string()),
                None => assumed(kind, "the account has no value of its own"),
            }
        }
        Err(e) => assumed(
            kind,
            &format!(
                "not read: {}",
                e.code().unwrap_or("no answer from Service Quotas")
            ),
        ),
    };
    Quota {
        kind,
        code: kind.code(),
        vcpu,
        source,
        raise: console_link(&aws.region(), kind),
    }
}

/// A quota that could not be read: Fargate's AWS default, said as assumed; EC2's GPU quotas
/// have no default jobrun may assume (0 on many accounts), so they bound nothing and say so.
fn assumed(kind: Kind, why: &str) -> (f64, String) {
    match kind.service() {
        "fargate" => (
            AWS_DEFAULT_VCPU,
            format!("assumed AWS's default ({why}; new accounts often have less)"),
        ),
        _ => (
            f64::INFINITY,
            format!("not known ({why}; it is 0 on many accounts: check it)"),
        ),
    }
}

/// What the quotas allow a run at once: tasks of one size, first on the job's capacity, then
/// on-demand when a Spot job may fall back.
#[derive(Debug, Clone, Serialize)]
pub struct AtOnce {
    /// Tasks that may run at once under the quotas.
    pub tasks: usize,
    pub task_vcpu: f64,
    pub quotas: Vec<Quota>,
}

impl AtOnce {
    pub fn of(task_vcpu: f64, quotas: Vec<Quota>) -> AtOnce {
        let tasks = quotas
            .iter()
            .map(|q| q.tasks(task_vcpu))
            .fold(0usize, usize::saturating_add);
        AtOnce {
            tasks,
            task_vcpu,
            quotas,
        }
    }
}

impl fmt::Display for AtOnce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quotas: Vec<String> = self
            .quotas
            .iter()
            .map(|q| match q.vcpu.is_finite() {
                true => format!("{} quota {} vCPU, {}", q.kind.name(), q.vcpu, q.source),
                false => format!("{} quota {}", q.kind.name(), q.source),
            })
            .collect();
        let at_most = match self.tasks {
            usize::MAX => "no known bound on the".to_string(),
            n => format!("at most {n}"),
        };
        write!(
            f,
            "{at_most} tasks of {} vCPU at once under the account's {} vCPU quotas ({})",
            self.task_vcpu,
            self.quotas.first().map_or("Fargate", |q| q.kind.of_what()),
            quotas.join("; ")
        )?;
        if let Some(q) = self.quotas.first() {
            write!(f, "; raise it here: {}", q.raise)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(kind: Kind, vcpu: f64) -> Quota {
        Quota {
            kind,
            code: kind.code(),
            vcpu,
            source: "the account's".into(),
            raise: console_link("us-east-1", kind),
        }
    }

    #[test]
    fn tasks_at_once_are_whole_tasks_under_each_quota_added() {
        assert_eq!(quota(Kind::Spot, 6.0).tasks(2.0), 3);
        assert_eq!(quota(Kind::Spot, 6.0).tasks(4.0), 1);
        assert_eq!(quota(Kind::Spot, 0.0).tasks(0.25), 0);
        assert_eq!(quota(Kind::Spot, 1.0).tasks(0.25), 4);
        let both = AtOnce::of(
            2.0,
            vec![quota(Kind::Spot, 6.0), quota(Kind::OnDemand, 4.0)],
        );
        assert_eq!(both.tasks, 5);
        let text = both.to_string();
        assert!(
            text.starts_with("at most 5 tasks of 2 vCPU at once under the account's Fargate vCPU quotas (Spot quota 6 vCPU, the account's; on-demand quota 4 vCPU"),
            "{text}"
        );
        assert!(
            text.ends_with("raise it here: https://us-east-1.console.aws.amazon.com/servicequotas/home/services/fargate/quotas/L-36FBB829"),
            "{text}"
        );
    }
}

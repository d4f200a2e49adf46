//! Where an ECS run's tasks go in AWS: what `up` made (`EcsSite`), and which Fargate capacity
//! providers its cluster has, from which each try of a task picks its placement.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What `jobrun up` made that a run's tasks go to: the same fields in `up`'s outputs and in
/// every ECS run's record.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EcsSite {
    pub region: String,
    pub cluster: String,
    pub task_definition: String,
    pub bucket: String,
    pub log_group: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    /// Which Fargate capacity providers the cluster has (records from before this field: the
    /// two of jobrun's own cluster).
    #[serde(default)]
    pub providers: ClusterProviders,
    /// When `up` last made or changed the job's IAM roles: a task that fails to start soon
    /// after may have met IAM still settling, and its reason says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_changed_at: Option<DateTime<Utc>>,
    /// The job's tasks run under the jobrun in its image, which uploads their output folders
    /// (and receipts of them): false for images built without one.
    #[serde(default)]
    pub outputs: bool,
    /// Which jobrun the image carries (records from before this field, and images without
    /// one: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentUsed>,
    /// A job with a GPU or instance types: its ECS Managed Instances capacity providers, which
    /// its tasks ask instead of FARGATE_SPOT and FARGATE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<InstanceProviders>,
}

/// The two ECS Managed Instances capacity providers `up` makes for a job (a provider's
/// purchase option cannot change in place, so there is one per option).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InstanceProviders {
    pub spot: String,
    pub on_demand: String,
}

impl EcsSite {
    /// The capacity provider a placement's provider stands for at this site: Fargate's own, or
    /// on Managed Instances the job's provider of the same purchase option.
    pub fn provider_name<'a>(&'a self, provider: &'a str) -> &'a str {
        match (&self.instances, provider) {
            (Some(i), "FARGATE_SPOT") => &i.spot,
            (Some(i), _) => &i.on_demand,
            (None, p) => p,
        }
    }

    /// Whether a task that ECS placed with this capacity provider runs on Spot.
    pub fn is_spot(&self, provider: &str) -> bool {
        provider == "FARGATE_SPOT" || self.instances.as_ref().is_some_and(|i| i.spot == provider)
    }
}

/// The jobrun inside a run's tasks: its version, architecture, the digest of its binary and
/// where `build` took it from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AgentUsed {
    pub version: String,
    pub arch: String,
    pub sha256: String,
    pub source: String,
}

/// The Fargate capacity providers of a cluster. A strategy naming a provider the cluster lacks
/// is refused for every task, so dispatch asks only for what is there, and without any goes by
/// launch type FARGATE (on-demand), which every cluster takes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterProviders {
    /// FARGATE and FARGATE_SPOT: jobrun's own cluster.
    #[default]
    FargateAndSpot,
    FargateOnly,
    SpotOnly,
    /// Neither: launch type FARGATE.
    None,
}

/// Where one try of a task asks for capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A capacity provider strategy of this one provider.
    Provider(&'static str),
    /// `launchType: FARGATE` (on-demand), for a cluster without Fargate capacity providers.
    LaunchType,
}

impl Placement {
    pub fn label(self) -> &'static str {
        match self {
            Placement::Provider(p) => p,
            Placement::LaunchType => "FARGATE launch type",
        }
    }
}

impl ClusterProviders {
    /// From a cluster's capacity providers, as DescribeClusters lists them.
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> ClusterProviders {
        let names: Vec<&str> = names.into_iter().collect();
        match (names.contains(&"FARGATE"), names.contains(&"FARGATE_SPOT")) {
            (true, true) => ClusterProviders::FargateAndSpot,
            (true, false) => ClusterProviders::FargateOnly,
            (false, true) => ClusterProviders::SpotOnly,
            (false, false) => ClusterProviders::None,
        }
    }

    pub fn has(self, provider: &str) -> bool {
        match self {
            ClusterProviders::FargateAndSpot => provider == "FARGATE" || provider == "FARGATE_SPOT",
            ClusterProviders::FargateOnly => provider == "FARGATE",
            ClusterProviders::SpotOnly => provider == "FARGATE_SPOT",
            ClusterProviders::None => false,
        }
    }

    /// The wanted providers, in order, as this cluster can give them: Spot it lacks becomes
    /// on-demand, on-demand without the FARGATE provider becomes the launch type.
    pub fn placements(self, wanted: &[&'static str]) -> Vec<Placement> {
        let mut out = vec![];
        for &p in wanted {
            let placement = if self.has(p) {
                Placement::Provider(p)
            } else if self.has("FARGATE") {
                Placement::Provider("FARGATE")
            } else {
                Placement::LaunchType
            };
            if !out.contains(&placement) {
                out.push(placement);
            }
        }
        out
    }

    /// What `up` says about a configured cluster's capacity, for the job's capacity kind.
    pub fn explain(self, spot_wanted: bool) -> &'static str {
        match (self, spot_wanted) {
            (ClusterProviders::FargateAndSpot, _) => "FARGATE and FARGATE_SPOT",
            (ClusterProviders::FargateOnly, false) => "FARGATE",
            (ClusterProviders::FargateOnly, true) => {
                "no FARGATE_SPOT capacity provider: tasks run on on-demand FARGATE"
            }
            (ClusterProviders::SpotOnly, true) => {
                "FARGATE_SPOT; on-demand tries go by launch type FARGATE"
            }
            (ClusterProviders::SpotOnly, false) => {
                "no FARGATE capacity provider: tasks go by launch type FARGATE"
            }
            (ClusterProviders::None, _) => {
                "no Fargate capacity providers: tasks run on-demand by launch type FARGATE, never on Spot"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_ask_only_for_what_the_cluster_has() {
        use ClusterProviders as C;
        use Placement::{LaunchType, Provider};
        let spot_then_on_demand = ["FARGATE_SPOT", "FARGATE"];
        assert_eq!(
            C::FargateAndSpot.placements(&spot_then_on_demand),
            [Provider("FARGATE_SPOT"), Provider("FARGATE")]
        );
        assert_eq!(
            C::FargateOnly.placements(&spot_then_on_demand),
            [Provider("FARGATE")]
        );
        assert_eq!(
            C::FargateOnly.placements(&["FARGATE_SPOT"]),
            [Provider("FARGATE")]
        );
        assert_eq!(
            C::SpotOnly.placements(&spot_then_on_demand),
            [Provider("FARGATE_SPOT"), LaunchType]
        );
        assert_eq!(C::None.placements(&spot_then_on_demand), [LaunchType]);
        assert_eq!(C::None.placements(&["FARGATE"]), [LaunchType]);
        assert_eq!(C::of(["FARGATE", "FARGATE_SPOT"]), C::FargateAndSpot);
        assert_eq!(C::of(["EC2_PROVIDER"]), C::None);
        // Records written before the field existed are of jobrun's own two-provider cluster.
        let old: EcsSite = serde_json::from_str(r#"{"region":"r","cluster":"c","task_definition":"t","bucket":"b","log_group":"g","subnets":[],"security_groups":[],"assign_public_ip":true}"#).unwrap();
        assert_eq!(old.providers, C::FargateAndSpot);
    }
}

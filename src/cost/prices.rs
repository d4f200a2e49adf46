//! Where prices come from: the table shipped with jobrun (`prices.toml`: per region, ARM and
//! x86 vCPU-hours and GB-hours, extra storage, the Spot discount assumed) or `[cost]` in
//! jobrun.toml. The result travels in the run record, so a run's cost is always computed with
//! the prices it was submitted under.

use crate::config::{Arch, CostSpec};
pub use crate::record::schema::Prices;
use serde::Deserialize;
use std::collections::BTreeMap;

const TABLE: &str = include_str!("prices.toml");
/// The region whose prices stand in for a region the table lacks.
const FALLBACK: &str = "us-east-1";

#[derive(Deserialize)]
struct Table {
    date: String,
    public_ipv4_hour: f64,
    regions: BTreeMap<String, Region>,
    spot: Spot,
}

#[derive(Deserialize)]
struct Region {
    x86: Compute,
    arm: Compute,
    storage_gb_hour: f64,
}

#[derive(Deserialize, Clone, Copy)]
struct Compute {
    vcpu_hour: f64,
    gb_hour: f64,
}

#[derive(Deserialize)]
struct Spot {
    discount_low: f64,
    discount_high: f64,
}

// Prices are the record's (jobrun-wire); where they come from is this module's.
/// The prices for a region and architecture, with `[cost]` on top.
pub fn lookup(region: &str, arch: Arch, spec: &CostSpec) -> Prices {
    let table: Table = toml::from_str(TABLE).expect("the shipped price table parses");
    let (name, region_prices) = match table.regions.get(region) {
        Some(r) => (region.to_string(), r),
        None => (
            format!("{FALLBACK} prices (none for {region})"),
            &table.regions[FALLBACK],
        ),
    };
    let compute = match arch {
        Arch::Arm64 => region_prices.arm,
        Arch::Amd64 => region_prices.x86,
    };
    let overridden = spec.vcpu_hour.is_some() || spec.gb_hour.is_some();
    let source = if overridden {
        "[cost] in jobrun.toml".to_string()
    } else {
        format!("{name} of {}, {}", table.date, arch.price_name())
    };
    Prices {
        vcpu_hour: spec.vcpu_hour.unwrap_or(compute.vcpu_hour),
        gb_hour: spec.gb_hour.unwrap_or(compute.gb_hour),
        storage_gb_hour: spec
            .storage_gb_hour
            .unwrap_or(region_prices.storage_gb_hour),
        public_ipv4_hour: table.public_ipv4_hour,
        spot_discount: match spec.spot_discount {
            Some(d) => (d, d),
            None => (table.spot.discount_low, table.spot.discount_high),
        },
        source,
        instance: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_us_east_1_and_stands_in_for_other_regions() {
        let none = CostSpec::default();
        let arm = crate::cost::prices::lookup("us-east-1", Arch::Arm64, &none);
        assert_eq!((arm.vcpu_hour, arm.gb_hour), (0.03238, 0.00356));
        assert_eq!(arm.storage_gb_hour, 0.000111);
        assert_eq!(arm.spot_discount, (0.5, 0.7));
        let x86 = crate::cost::prices::lookup("us-east-1", Arch::Amd64, &none);
        assert_eq!((x86.vcpu_hour, x86.gb_hour), (0.04048, 0.004445));
        let far = crate::cost::prices::lookup("ap-south-2", Arch::Arm64, &none);
        assert_eq!(far.vcpu_hour, 0.03238);
        assert!(far.source.contains("none for ap-south-2"), "{}", far.source);
        let own = CostSpec {
            vcpu_hour: Some(0.03),
            spot_discount: Some(0.6),
            ..CostSpec::default()
        };
        let negotiated = crate::cost::prices::lookup("us-east-1", Arch::Arm64, &own);
        assert_eq!((negotiated.vcpu_hour, negotiated.gb_hour), (0.03, 0.00356));
        assert_eq!(negotiated.spot_discount, (0.6, 0.6));
        assert!(negotiated.source.contains("[cost]"));
    }
}

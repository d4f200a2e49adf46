//! What a run costs on Fargate: the formula (per second, one-minute minimum per task attempt,
//! vCPU-hours and GB-hours at the architecture's prices, ephemeral storage beyond 20 GB, Spot
//! as a range of assumed discounts), the actual cost of a run from the billed interval of every
//! attempt its record keeps (ECS: image pull or start → stop, as Fargate bills), and the
//! estimate before a run (`estimate.rs`). Prices are data (`prices.rs`).

pub mod estimate;
pub mod instances;
pub mod prices;
mod run;
pub use run::{RecordCost, SettingsSize};

pub use crate::record::schema::Bill;
pub use prices::Prices;

use serde::{Deserialize, Serialize};
use std::fmt;

/// What one task asks Fargate for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Size {
    pub vcpu: f64,
    pub gb: f64,
    /// Ephemeral storage, GiB (20 come with every task).
    pub storage_gb: u32,
    /// The task has a public IPv4 address (`assign_public_ip`), which AWS bills by the hour
    /// whatever it runs on (VPC pricing, "Public IPv4 address", since 2024-02-01).
    pub public_ipv4: bool,
}

impl Size {
    /// This size with another task size's vCPU and memory (an attempt that ran bigger).
    pub fn at(self, other: Option<crate::record::schema::TaskSize>) -> Size {
        match other {
            Some(t) => Size {
                vcpu: t.cpu,
                gb: f64::from(t.memory_mib) / 1024.0,
                ..self
            },
            None => self,
        }
    }
}

/// The ephemeral storage every Fargate task has without paying for it, GiB (Fargate pricing:
/// "20 GB of ephemeral storage by default", more is billed per GB-hour).
pub const FREE_STORAGE_GB: u32 = 20;

/// jobrun's task in AWS (`infra::dispatcher`: a schedule's dispatcher, the job's driver): it
/// runs as long as the run it drives.
/// It runs in the job's network, so it has a public address when the job's tasks do.
pub fn dispatcher(public_ipv4: bool) -> Size {
    Size {
        vcpu: 0.25,
        gb: 0.5,
        storage_gb: FREE_STORAGE_GB,
        public_ipv4,
    }
}

/// The seconds Fargate bills for an attempt that ran `secs`: whole seconds, at least a minute.
pub fn billed_secs(secs: f64) -> f64 {
    secs.max(0.0).ceil().max(60.0)
}

/// Resource-hours, the quantities Fargate prices.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    pub vcpu_hours: f64,
    pub gb_hours: f64,
    /// Storage beyond the 20 GB every task gets.
    pub storage_gb_hours: f64,
    /// Hours of public IPv4 addresses (never discounted on Spot).
    #[serde(default)]
    pub ipv4_hours: f64,
}

impl Usage {
    /// One attempt of `secs` (billed as Fargate bills it).
    pub fn of(size: Size, secs: f64) -> Usage {
        let hours = billed_secs(secs) / 3600.0;
        Usage {
            vcpu_hours: size.vcpu * hours,
            gb_hours: size.gb * hours,
            storage_gb_hours: f64::from(size.storage_gb.saturating_sub(FREE_STORAGE_GB)) * hours,
            ipv4_hours: if size.public_ipv4 { hours } else { 0.0 },
        }
    }

    pub fn add(self, o: Usage) -> Usage {
        Usage {
            vcpu_hours: self.vcpu_hours + o.vcpu_hours,
            gb_hours: self.gb_hours + o.gb_hours,
            storage_gb_hours: self.storage_gb_hours + o.storage_gb_hours,
            ipv4_hours: self.ipv4_hours + o.ipv4_hours,
        }
    }

    pub fn scale(self, k: f64) -> Usage {
        Usage {
            vcpu_hours: self.vcpu_hours * k,
            gb_hours: self.gb_hours * k,
            storage_gb_hours: self.storage_gb_hours * k,
            ipv4_hours: self.ipv4_hours * k,
        }
    }

    /// What Fargate itself bills (what Spot discounts).
    fn fargate(self, p: &Prices) -> f64 {
        self.vcpu_hours * p.vcpu_hour
            + self.gb_hours * p.gb_hour
            + self.storage_gb_hours * p.storage_gb_hour
    }

    /// Its price on on-demand Fargate, with its public addresses.
    pub fn on_demand(self, p: &Prices) -> f64 {
        self.fargate(p) + self.ipv4_hours * p.public_ipv4_hour
    }

    /// Its price on Spot, as (low, high) for the discount range assumed; the public addresses
    /// are billed in full.
    pub fn spot(self, p: &Prices) -> (f64, f64) {
        let (fargate, ipv4) = (self.fargate(p), self.ipv4_hours * p.public_ipv4_hour);
        (
            fargate * (1.0 - p.spot_discount.1) + ipv4,
            fargate * (1.0 - p.spot_discount.0) + ipv4,
        )
    }

    /// Its price on Spot (a range) or on demand.
    pub fn priced(self, p: &Prices, spot: bool) -> Dollars {
        match spot {
            true => {
                let (low, high) = self.spot(p);
                Dollars { low, high }
            }
            false => Dollars::exact(self.on_demand(p)),
        }
    }
}

/// Dollars as a range (one value twice when nothing ran on Spot).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Dollars {
    pub low: f64,
    pub high: f64,
}

impl Dollars {
    pub fn exact(x: f64) -> Dollars {
        Dollars { low: x, high: x }
    }
    pub fn add(self, o: Dollars) -> Dollars {
        Dollars {
            low: self.low + o.low,
            high: self.high + o.high,
        }
    }
}

/// `$0.0042`, `$0.59`, `$3.14`: cents from ten cents up, four decimals below.
pub fn money(x: f64) -> String {
    if x.abs() >= 0.1 {
        format!("${x:.2}")
    } else {
        format!("${x:.4}")
    }
}

impl fmt::Display for Dollars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if (self.high - self.low).abs() < 1e-9 {
            write!(f, "{}", money(self.low))
        } else {
            write!(f, "{}–{}", money(self.low), money(self.high))
        }
    }
}

/// What one task's attempts cost (every attempt, failed and retried ones included).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskCost {
    pub billed_secs: f64,
    pub attempts: usize,
    #[serde(flatten)]
    pub usage: Usage,
    pub usd: Dollars,
}

impl TaskCost {
    /// A task's attempts, priced.
    pub fn of(bills: &[Bill], size: Size, p: &Prices) -> TaskCost {
        let mut usage = Usage::default();
        let mut usd = Dollars::default();
        let mut billed = 0.0;
        for b in bills {
            let u = Usage::of(size.at(b.size), b.secs);
            usage = usage.add(u);
            billed += billed_secs(b.secs);
            usd = usd.add(u.priced(p, b.spot));
        }
        TaskCost {
            billed_secs: billed,
            attempts: bills.len(),
            usage,
            usd,
        }
    }
}

/// What a cost is of: Fargate, or what a local run would have cost there.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    Fargate,
    FargateEquivalent,
}

/// What a run cost (or, run locally, would have cost on Fargate), from its attempts so far.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunCost {
    pub basis: Basis,
    #[serde(flatten)]
    pub usage: Usage,
    pub usd: Dollars,
    /// Attempts that ran on Spot (priced at the discount assumed).
    pub spot_attempts: usize,
    /// jobrun's driver in AWS (on-demand; a scheduled run's dispatcher), included in `usd`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dispatcher_usd: f64,
    pub attempts: usize,
    pub spot_discount: (f64, f64),
    pub prices: String,
}

impl RunCost {
    /// Every attempt of every task (each task's bills), priced; with a scheduled run's
    /// dispatcher, which ran `dispatcher_secs`.
    pub fn of<'a>(
        basis: Basis,
        size: Size,
        p: &Prices,
        tasks: impl IntoIterator<Item = &'a [Bill]>,
        dispatcher_secs: Option<f64>,
    ) -> RunCost {
        let dispatcher = dispatcher_secs.map(|s| Usage::of(dispatcher(size.public_ipv4), s));
        let dispatcher_usd = dispatcher.map(|u| u.on_demand(p)).unwrap_or(0.0);
        let mut cost = RunCost {
            basis,
            usage: dispatcher.unwrap_or_default(),
            usd: Dollars::exact(dispatcher_usd),
            dispatcher_usd,
            spot_attempts: 0,
            attempts: 0,
            spot_discount: p.spot_discount,
            prices: p.source.clone(),
        };
        for bills in tasks {
            let tc = TaskCost::of(bills, size, p);
            cost.usage = cost.usage.add(tc.usage);
            cost.usd = cost.usd.add(tc.usd);
            cost.attempts += tc.attempts;
            cost.spot_attempts += bills.iter().filter(|b| b.spot).count();
        }
        cost
    }
}

impl fmt::Display for RunCost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.basis {
            Basis::FargateEquivalent => "on Fargate it would have cost",
            Basis::Fargate => "cost",
        };
        write!(
            f,
            "{what} {} ({:.2} vCPU-h, {:.2} GB-h over {} attempts",
            self.usd, self.usage.vcpu_hours, self.usage.gb_hours, self.attempts
        )?;
        if self.spot_attempts > 0 {
            let (lo, hi) = self.spot_discount;
            write!(
                f,
                "; {} on Spot, assumed {:.0}–{:.0} % off",
                self.spot_attempts,
                lo * 100.0,
                hi * 100.0
            )?;
        }
        if self.dispatcher_usd > 0.0 {
            write!(
                f,
                "; {} of it jobrun's driver in AWS",
                money(self.dispatcher_usd)
            )?;
        }
        write!(f, "; prices: {})", self.prices)
    }
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Arch, CostSpec};

    fn cents(x: f64) -> i64 {
        (x * 100.0).round() as i64
    }

    fn us_east(arch: Arch) -> Prices {
        crate::cost::prices::lookup("us-east-1", arch, &CostSpec::default())
    }

    #[test]
    fn seconds_are_billed_whole_with_a_one_minute_minimum() {
        assert_eq!(billed_secs(0.0), 60.0);
        assert_eq!(billed_secs(59.2), 60.0);
        assert_eq!(billed_secs(60.0), 60.0);
        assert_eq!(billed_secs(60.01), 61.0);
        assert_eq!(billed_secs(3599.5), 3600.0);
        assert_eq!(billed_secs(-5.0), 60.0);
    }

    #[test]
    fn the_formula_matches_hand_computed_cases() {
        let size = Size {
            vcpu: 1.0,
            gb: 2.0,
            storage_gb: 20,
            public_ipv4: false,
        };
        // 1 vCPU, 2 GB, one hour, x86: 0.04048 + 2 × 0.004445 = $0.04937.
        let hour = Usage::of(size, 3600.0);
        assert!((hour.on_demand(&us_east(Arch::Amd64)) - 0.04937).abs() < 1e-9);
        // ARM: 0.03238 + 2 × 0.00356 = $0.03950, about 20 % less.
        assert!((hour.on_demand(&us_east(Arch::Arm64)) - 0.0395).abs() < 1e-9);
        // 100 tasks of 30 s: each billed a minute: 100/60 h × $0.0395 = $0.0658 → 7 cents.
        let short = Usage::of(size, 30.0).scale(100.0);
        assert_eq!(cents(short.on_demand(&us_east(Arch::Arm64))), 7);
        // Storage beyond 20 GB: 4 vCPU, 16 GB, 120 GiB for 10 h on x86:
        // 10 × (4 × 0.04048 + 16 × 0.004445 + 100 × 0.000111) = $2.4414 → $2.44.
        let big = Size {
            vcpu: 4.0,
            gb: 16.0,
            storage_gb: 120,
            public_ipv4: false,
        };
        let ten = Usage::of(big, 36_000.0);
        assert!((ten.storage_gb_hours - 1000.0).abs() < 1e-9);
        assert_eq!(cents(ten.on_demand(&us_east(Arch::Amd64))), 244);
        // Spot at 50–70 % off: $0.73–$1.22.
        let (low, high) = ten.spot(&us_east(Arch::Amd64));
        assert_eq!((cents(low), cents(high)), (73, 122));
        // With a public IPv4 address: 10 h × $0.005 = $0.05 more, on Spot too (no discount).
        let public = Usage::of(
            Size {
                public_ipv4: true,
                ..big
            },
            36_000.0,
        );
        assert!((public.ipv4_hours - 10.0).abs() < 1e-9);
        assert_eq!(cents(public.on_demand(&us_east(Arch::Amd64))), 249);
        let (low, high) = public.spot(&us_east(Arch::Amd64));
        assert_eq!((cents(low), cents(high)), (78, 127));
    }

    #[test]
    fn an_attempt_is_priced_at_the_size_it_ran_at() {
        let size = Size {
            vcpu: 0.25,
            gb: 0.5,
            storage_gb: 20,
            public_ipv4: false,
        };
        let bill = |attempt, size| Bill {
            attempt,
            secs: 3600.0,
            spot: false,
            size,
            usage: None,
        };
        let bigger = crate::record::schema::TaskSize {
            cpu: 0.25,
            memory_mib: 1024,
        };
        let p = us_east(Arch::Arm64);
        let c = TaskCost::of(&[bill(1, None), bill(2, Some(bigger))], size, &p);
        // An hour at 0.5 GB, then an hour at 1 GB, both at 0.25 vCPU.
        assert!((c.usage.gb_hours - 1.5).abs() < 1e-9, "{:?}", c.usage);
        assert!((c.usage.vcpu_hours - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_run_costs_every_attempt_spot_ones_as_a_range() {
        let size = Size {
            vcpu: 1.0,
            gb: 2.0,
            storage_gb: 20,
            public_ipv4: false,
        };
        // An attempt interrupted on Spot after 10 minutes, then one hour on demand.
        let bills = [
            Bill {
                attempt: 1,
                secs: 600.0,
                spot: true,
                size: None,
                usage: None,
            },
            Bill {
                attempt: 2,
                secs: 3600.0,
                spot: false,
                size: None,
                usage: None,
            },
        ];
        let p = us_east(Arch::Arm64);
        let cost = RunCost::of(Basis::FargateEquivalent, size, &p, [&bills[..], &[]], None);
        assert_eq!(cost.attempts, 2);
        assert_eq!(cost.spot_attempts, 1);
        // 1/6 h × $0.0395 = $0.00658 at 50–70 % off, plus $0.0395 on demand.
        assert!((cost.usd.low - (0.0395 + 0.0395 / 6.0 * 0.3)).abs() < 1e-9);
        assert!((cost.usd.high - (0.0395 + 0.0395 / 6.0 * 0.5)).abs() < 1e-9);
        assert!((cost.usage.vcpu_hours - (1.0 / 6.0 + 1.0)).abs() < 1e-9);
        let text = cost.to_string();
        // What the same attempts would have cost on Fargate.
        assert!(
            text.starts_with("on Fargate it would have cost $0.0415–$0.0428 (1.17 vCPU-h"),
            "{text}"
        );
        assert!(text.contains("1 on Spot, assumed 50–70 % off"), "{text}");
        // A scheduled run pays for its dispatcher too: 0.25 vCPU and 0.5 GB, on demand, for
        // the hour the run took: $0.00988 at arm64 prices (no public address here).
        let fired = RunCost::of(Basis::Fargate, size, &p, [&bills[..]], Some(3600.0));
        let dispatcher = 0.25 * 0.03238 + 0.5 * 0.00356;
        assert!((fired.dispatcher_usd - dispatcher).abs() < 1e-12);
        assert!((fired.usd.low - cost.usd.low - dispatcher).abs() < 1e-12);
        assert!(
            fired
                .to_string()
                .contains("$0.0099 of it jobrun's driver in AWS"),
            "{fired}"
        );
        // With public addresses, the tasks' and the dispatcher's are billed in full: $0.005
        // more for the dispatcher's hour.
        let public = Size {
            public_ipv4: true,
            ..size
        };
        let fired = RunCost::of(Basis::Fargate, public, &p, [&bills[..]], Some(3600.0));
        assert!((fired.dispatcher_usd - dispatcher - 0.005).abs() < 1e-12);
    }
}

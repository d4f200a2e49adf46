//! What a run record cost: the record keeps the settings and bills (`record::schema`), and
//! pricing them is this module's, so the record's schema does not depend on how it is priced.

use super::{Basis, RunCost, Size, TaskCost};
use crate::record::{Place, RunRecord, RunSettings, TaskRecord, secs_between};
use chrono::Utc;

/// A run's size, as pricing reads its settings (the settings are the record's: jobrun-wire).
pub trait SettingsSize {
    fn size(&self) -> Size;
}

impl SettingsSize for RunSettings {
    /// What one task asks Fargate for.
    fn size(&self) -> Size {
        Size {
            vcpu: self.cpu,
            gb: f64::from(self.memory_mib) / 1024.0,
            storage_gb: self.storage_gb,
            public_ipv4: self.public_ipv4,
        }
    }
}

/// What a run record cost (the record is jobrun-wire's; pricing it is this module's).
pub trait RecordCost {
    fn cost(&self) -> Option<RunCost>;
    fn task_cost(&self, t: &TaskRecord) -> Option<TaskCost>;
}

impl RecordCost for RunRecord {
    /// What the run cost so far (a local run: what Fargate would have charged); none for a
    /// record without prices (from before jobrun priced runs).
    fn cost(&self) -> Option<RunCost> {
        let prices = self.settings.prices.as_ref()?;
        let basis = match self.place {
            Place::Local => Basis::FargateEquivalent,
            _ => Basis::Fargate,
        };
        let bills = self.tasks.iter().map(|t| &t.bills[..]);
        let end = self.finished_at.unwrap_or_else(Utc::now);
        let dispatcher = self
            .driven_in_aws()
            .then(|| secs_between(self.created_at, end));
        Some(RunCost::of(
            basis,
            self.settings.size(),
            prices,
            bills,
            dispatcher,
        ))
    }

    /// One task's share of the cost.
    fn task_cost(&self, t: &TaskRecord) -> Option<TaskCost> {
        let prices = self.settings.prices.as_ref()?;
        (!t.bills.is_empty()).then(|| TaskCost::of(&t.bills, self.settings.size(), prices))
    }
}

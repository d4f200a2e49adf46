//! What a run did not pay twice for, and what it learned: tasks that resumed from a checkpoint
//! (and the run time of the attempts before them), and how far the estimate it was submitted
//! with — learned from an earlier run — was off.

use super::secs;
use crate::record::RunRecord;
use serde::Serialize;
use std::fmt;

/// How far the estimate a run was submitted with was off: the median task duration expected
/// (learned from an earlier run) and the one measured.
#[derive(Debug, Serialize)]
pub struct EstimateOff {
    pub expected_secs: f64,
    pub took_secs: f64,
    pub from: String,
}

impl EstimateOff {
    pub fn of(rec: &RunRecord) -> Option<EstimateOff> {
        let expected = rec.settings.expected.as_ref()?;
        rec.finished_at?;
        let took = crate::store::index::Durations::of(rec)?;
        Some(EstimateOff {
            expected_secs: expected.median_secs,
            took_secs: took.median_secs,
            from: expected.from.clone(),
        })
    }
}

impl fmt::Display for EstimateOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let off = self.took_secs / self.expected_secs.max(1e-9) - 1.0;
        let took = secs(self.took_secs);
        let how = match off {
            o if o.abs() < 0.005 => {
                return write!(
                    f,
                    "a task took {took} (median), as expected from {}",
                    self.from
                );
            }
            o if o > 0.0 => format!("{:.0} % longer", o * 100.0),
            o => format!("{:.0} % shorter", -o * 100.0),
        };
        write!(
            f,
            "a task took {took} (median): {how} than the {} expected from {}",
            secs(self.expected_secs),
            self.from
        )
    }
}

/// Tasks that resumed from their checkpoints.
#[derive(Debug, Serialize)]
pub struct Resumed {
    pub tasks: usize,
    pub kept_secs: f64,
}

impl Resumed {
    pub fn of(rec: &RunRecord) -> Option<Resumed> {
        let resumed: Vec<_> = rec.tasks.iter().filter(|t| !t.resumed.is_empty()).collect();
        (!resumed.is_empty()).then(|| Resumed {
            tasks: resumed.len(),
            kept_secs: resumed.iter().map(|t| t.kept_by_checkpoints_secs()).sum(),
        })
    }
}

impl fmt::Display for Resumed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.tasks == 1 { "task" } else { "tasks" };
        write!(
            f,
            "{} {noun} resumed from a checkpoint (up to {} of run time not spent again)",
            self.tasks,
            secs(self.kept_secs)
        )
    }
}

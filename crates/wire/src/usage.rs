//! What an attempt used, as a task's receipt and the run record carry it (the jobrun in a task
//! measures it: `jobrun_agent::meter`; the local engine: `dispatch::local::watching`).

use serde::{Deserialize, Serialize};

/// What one attempt used.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Measured {
    /// The most memory it held at once, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak_mib: Option<f64>,
    /// The CPU time it took, seconds (over its run time: the vCPUs it used on average).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_secs: Option<f64>,
}

impl Measured {
    pub fn is_empty(&self) -> bool {
        self.memory_peak_mib.is_none() && self.cpu_secs.is_none()
    }
}

pub const MIB: f64 = 1024.0 * 1024.0;

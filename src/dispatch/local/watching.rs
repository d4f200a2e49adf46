//! What the local dispatcher watches while a container runs: its end (the engine's wait), what
//! it uses (the engine's stats: peak memory and CPU time, kept with the attempt's bill), and
//! the task's checkpoint folder, the same for every attempt.

use super::LocalDispatcher;
use crate::usage::Measured;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};

impl LocalDispatcher {
    /// Waits for the container's end in the background, noting what it uses meanwhile.
    pub(super) fn watch_container(&mut self, name: &str) {
        if self.waiting.insert(name.to_string()) {
            let wait = self.engine.wait_container(name);
            let stats = self.engine.stats(name);
            let (tx, measured, key) = (self.tx.clone(), self.measured.clone(), name.to_string());
            tokio::spawn(async move {
                let watch = async move {
                    futures_util::pin_mut!(stats);
                    while let Some(s) = stats.next().await {
                        let mut all = measured.lock().expect("not poisoned");
                        fold_engine_stats(all.entry(key.clone()).or_default(), &s);
                    }
                };
                tokio::pin!(wait);
                tokio::select! {
                    _ = &mut wait => {}
                    _ = watch => wait.await,
                }
                let _ = tx.send(());
            });
        }
    }
}

/// Folds one of the engine's stats of a running container (`GET /containers/{id}/stats`) into
/// what the attempt used so far.
fn fold_engine_stats(seen: &mut Measured, s: &bollard::models::ContainerStatsResponse) {
    if let Some(m) = &s.memory_stats {
        // v1 keeps the peak; v2 does not, so the highest sample stands for it.
        if let Some(b) = m.max_usage.or(m.usage).filter(|b| *b > 0) {
            let mib = b as f64 / crate::usage::MIB;
            seen.memory_peak_mib = Some(seen.memory_peak_mib.map_or(mib, |p| p.max(mib)));
        }
    }
    let cpu = s.cpu_stats.as_ref().and_then(|c| c.cpu_usage.as_ref());
    if let Some(ns) = cpu.and_then(|u| u.total_usage).filter(|n| *n > 0) {
        seen.cpu_secs = Some(ns as f64 / 1e9);
    }
}

/// A task's checkpoint folder on this machine, kept across its attempts.
pub(super) fn checkpoint_dir(run_dir: &Path, i: usize) -> PathBuf {
    run_dir.join("checkpoints").join(i.to_string())
}

/// Whether a task's checkpoint folder holds anything (read as a listing: nothing in it is
/// opened or followed).
pub(super) fn has_checkpoint(run_dir: &Path, i: usize) -> bool {
    std::fs::read_dir(checkpoint_dir(run_dir, i)).is_ok_and(|mut d| d.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_stats_keep_the_highest_memory_and_the_latest_cpu() {
        let stats = |usage: u64, max: Option<u64>, cpu: u64| {
            serde_json::from_value::<bollard::models::ContainerStatsResponse>(serde_json::json!({
                "memory_stats": {"usage": usage, "max_usage": max},
                "cpu_stats": {"cpu_usage": {"total_usage": cpu}},
            }))
            .unwrap()
        };
        let mut seen = Measured::default();
        fold_engine_stats(&mut seen, &stats(200 * 1024 * 1024, None, 1_000_000_000));
        fold_engine_stats(&mut seen, &stats(100 * 1024 * 1024, None, 2_000_000_000));
        assert_eq!(seen.memory_peak_mib, Some(200.0));
        assert_eq!(seen.cpu_secs, Some(2.0));
        fold_engine_stats(&mut seen, &stats(0, Some(300 * 1024 * 1024), 0));
        assert_eq!(
            (seen.memory_peak_mib, seen.cpu_secs),
            (Some(300.0), Some(2.0))
        );
    }
}

//! Which configuration keys matter for the metric: for each numeric configuration key, the
//! Spearman rank correlation of its values with the metric over the succeeded map tasks that
//! have both — what Weights & Biases shows as a sweep's parameter importance next to its
//! correlation. Rank correlation rather than Pearson's: a learning rate swept over decades
//! (0.001, 0.01, 0.1) counts by its order, not its size. +1: the metric rises with the key;
//! −1: it falls; near 0: no monotone relation (a U-shape reads as 0 — look at the plot).

use crate::record::{RunRecord, Stage, TaskState};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Importance {
    /// The configuration key (`lr`; nested keys joined with dots).
    pub key: String,
    pub rank_correlation: f64,
    /// Tasks that have both.
    pub n: usize,
}

/// Every numeric configuration key's rank correlation with `metric`, strongest first (keys
/// with fewer than 3 tasks or a single value left out).
pub fn of(rec: &RunRecord, metric: &str) -> Vec<Importance> {
    let mut pairs: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for t in rec
        .tasks
        .iter()
        .filter(|t| t.stage == Stage::Map && t.state == TaskState::Succeeded)
    {
        let Some(y) = t
            .result
            .as_ref()
            .and_then(|r| super::flat::value_of(r, metric))
        else {
            continue;
        };
        // The configuration's keys as `results` flattens them (nested ones joined with dots).
        let mut flat = serde_json::Map::new();
        super::flat::flatten("config", &t.config.value(), &mut flat);
        for (k, v) in flat {
            if let Some(x) = v.as_f64().filter(|x| x.is_finite()) {
                let key = k.strip_prefix("config.").unwrap_or(&k).to_string();
                pairs.entry(key).or_default().push((x, y));
            }
        }
    }
    let mut all: Vec<Importance> = pairs
        .into_iter()
        .filter_map(|(key, xy)| {
            let rho = spearman(&xy)?;
            Some(Importance {
                key,
                rank_correlation: rho,
                n: xy.len(),
            })
        })
        .collect();
    all.sort_by(|a, b| {
        b.rank_correlation
            .abs()
            .total_cmp(&a.rank_correlation.abs())
            .then_with(|| a.key.cmp(&b.key))
    });
    all
}

/// Ranks from 1, ties sharing their mean rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = mean;
        }
        i = j + 1;
    }
    out
}

/// Spearman's ρ (Pearson's correlation of the ranks); none for fewer than 3 pairs or a
/// constant side.
fn spearman(xy: &[(f64, f64)]) -> Option<f64> {
    if xy.len() < 3 {
        return None;
    }
    let rx = ranks(&xy.iter().map(|p| p.0).collect::<Vec<_>>());
    let ry = ranks(&xy.iter().map(|p| p.1).collect::<Vec<_>>());
    let n = xy.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// `importance (rank correlation with loss over 4 tasks): lr −0.80, width +0.40`.
pub struct Line<'a> {
    pub metric: &'a str,
    pub all: &'a [Importance],
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.all.iter().map(|i| i.n).max().unwrap_or(0);
        let parts: Vec<String> = self
            .all
            .iter()
            .map(|i| {
                let rho = format!("{:+.2}", i.rank_correlation).replace('-', "−");
                format!("{} {rho}", crate::ui::printable(&i.key, ""))
            })
            .collect();
        write!(
            f,
            "importance (rank correlation with {} over {n} tasks): {}",
            self.metric,
            parts.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_their_rank_and_rho_reads_the_order() {
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), [2.0, 3.5, 3.5, 1.0]);
        let rising = [(0.001, 1.0), (0.01, 2.0), (0.1, 3.0), (1.0, 40.0)];
        assert!((spearman(&rising).unwrap() - 1.0).abs() < 1e-12);
        let falling: Vec<(f64, f64)> = rising.iter().map(|&(x, y)| (x, -y)).collect();
        assert!((spearman(&falling).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(
            spearman(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]),
            None,
            "constant key"
        );
        assert_eq!(spearman(&[(1.0, 1.0), (2.0, 2.0)]), None, "two tasks");
    }

    #[test]
    fn keys_strongest_first_from_a_run() {
        let mut rec = crate::record::tests::record("20260101-000000-a-0001", "a");
        let now = chrono::Utc::now();
        let rows = [
            (0.001, 1, 0.9),
            (0.01, 2, 0.5),
            (0.1, 1, 0.3),
            (1.0, 2, 0.1),
        ];
        rec.tasks = rows
            .iter()
            .enumerate()
            .map(|(i, &(lr, seed, loss))| {
                let mut t = crate::record::TaskRecord::new(
                    i,
                    serde_json::json!({"lr": lr, "seed": seed, "name": "x"}),
                    None,
                );
                t.start(1, format!("c{i}"), now);
                t.succeed(now);
                t.result = Some(serde_json::json!({"loss": loss}));
                t
            })
            .collect();
        let all = of(&rec, "loss");
        assert_eq!(all.len(), 2, "the string key is no number: {all:?}");
        assert_eq!(all[0].key, "lr");
        assert!((all[0].rank_correlation + 1.0).abs() < 1e-12);
        let text = Line {
            metric: "loss",
            all: &all,
        }
        .to_string();
        assert!(
            text.starts_with(
                "importance (rank correlation with loss over 4 tasks): lr −1.00, seed "
            ),
            "{text}"
        );
    }
}

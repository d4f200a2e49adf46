//! Repeats of one configuration: with `[results] group = ["seed"]`, tasks whose configurations
//! differ only in those keys are one configuration, told by the mean of their results, the
//! sample standard deviation and how many there are. One rule for the winner (`best`), the
//! table of `jobrun results` and the ui's error bars.

use crate::record::{RunRecord, Stage, TaskState};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A configuration and the map tasks that ran it (in index order).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The configuration without the grouped keys.
    pub config: Value,
    pub tasks: Vec<usize>,
}

/// A configuration's keys without `keys` (dotted paths reach into nested objects: `opt.seed`).
pub fn without(config: &Value, keys: &[String]) -> Value {
    let mut config = config.clone();
    for key in keys {
        let (path, last) = key.rsplit_once('.').unwrap_or(("", key));
        let parent = match path {
            "" => Some(&mut config),
            path => path.split('.').try_fold(&mut config, |at, p| at.get_mut(p)),
        };
        if let Some(o) = parent.and_then(Value::as_object_mut) {
            o.remove(last);
        }
    }
    config
}

/// The run's map tasks as configurations, in the order their first task comes.
pub fn groups(rec: &RunRecord, keys: &[String]) -> Vec<Group> {
    let mut out: Vec<Group> = vec![];
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in rec.tasks.iter().filter(|t| t.stage == Stage::Map) {
        let config = without(&t.config.value(), keys);
        // Canonical text: the same configuration whatever order its keys came in.
        let mut flat = Map::new();
        super::flat::flatten("", &config, &mut flat);
        let mut key: Vec<(String, Value)> = flat.into_iter().collect();
        key.sort_by(|a, b| a.0.cmp(&b.0));
        let key = serde_json::to_string(&key).unwrap_or_default();
        match seen.get(&key) {
            Some(&at) => out[at].tasks.push(t.index),
            None => {
                seen.insert(key, out.len());
                out.push(Group {
                    config,
                    tasks: vec![t.index],
                });
            }
        }
    }
    out
}

/// The mean, the sample standard deviation (n − 1; 0 for one value) and the count of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub mean: f64,
    pub sd: f64,
    pub n: usize,
}

impl Stats {
    pub fn of(values: &[f64]) -> Option<Stats> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = match n {
            1 => 0.0,
            _ => (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt(),
        };
        Some(Stats { mean, sd, n })
    }
}

/// Each of `tasks` that succeeded with a number under `metric`: its index and that number.
pub fn values(rec: &RunRecord, tasks: &[usize], metric: &str) -> Vec<(usize, f64)> {
    tasks
        .iter()
        .filter_map(|&i| rec.tasks.get(i))
        .filter(|t| t.state == TaskState::Succeeded)
        .filter_map(|t| Some((t.index, super::flat::value_of(t.result.as_ref()?, metric)?)))
        .collect()
}

/// `jobrun results` with a group: one row per configuration — its keys (without the grouped
/// ones), `n` (its tasks), each numeric result key as `{mean, sd, n}` over the succeeded
/// repeats that have it, and the tasks. Best mean first when the run has a winner.
#[derive(Debug, Serialize)]
pub struct Table {
    pub by: Vec<String>,
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Value>>,
}

impl Table {
    /// From the run and its per-task table (`columns`, `rows` as `results` has them).
    pub fn of(
        rec: &RunRecord,
        by: &[String],
        task_columns: &[String],
        task_rows: &[Map<String, Value>],
    ) -> Table {
        let per_task: HashMap<u64, &Map<String, Value>> = task_rows
            .iter()
            .filter_map(|r| Some((r.get("index")?.as_u64()?, r)))
            .collect();
        let numeric = |c: &&String| {
            c.starts_with("result.")
                && task_rows
                    .iter()
                    .any(|r| r.get(*c).is_some_and(Value::is_number))
        };
        let results: Vec<String> = task_columns.iter().filter(numeric).cloned().collect();
        let mut columns: Vec<String> = vec![];
        let mut rows = vec![];
        for g in groups(rec, by) {
            let mut row = Map::new();
            super::flat::flatten("config", &g.config, &mut row);
            row.insert("n".into(), g.tasks.len().into());
            let members: Vec<&Map<String, Value>> = g
                .tasks
                .iter()
                .filter_map(|i| per_task.get(&(*i as u64)).copied())
                .filter(|r| r.get("state").and_then(Value::as_str) == Some("succeeded"))
                .collect();
            for c in &results {
                let values: Vec<f64> = members
                    .iter()
                    .filter_map(|r| r.get(c)?.as_f64())
                    .filter(|v| v.is_finite())
                    .collect();
                if let Some(s) = Stats::of(&values) {
                    row.insert(c.clone(), serde_json::to_value(s).unwrap_or_default());
                }
            }
            row.insert("tasks".into(), g.tasks.into());
            for k in row.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
            rows.push(row);
        }
        // Configuration keys first, then n, the results and the tasks, as the first row has them.
        columns.sort_by_key(|c| match c.as_str() {
            c if c.starts_with("config.") => 0,
            "n" => 1,
            "tasks" => 3,
            _ => 2,
        });
        Table {
            by: by.to_vec(),
            columns,
            rows,
        }
    }

    /// Whether a row (a configuration) holds task `index` among its tasks.
    pub fn holds(row: &Map<String, Value>, index: usize) -> bool {
        row.get("tasks")
            .and_then(Value::as_array)
            .is_some_and(|t| t.contains(&Value::from(index)))
    }

    /// The rows best mean first (stable: equal means keep their order).
    pub fn ranked(mut self, metric: &str, goal: crate::record::schema::Goal) -> Table {
        let column = format!("result.{metric}");
        let mean = |r: &Map<String, Value>| r.get(&column).and_then(|s| s["mean"].as_f64());
        self.rows.sort_by(|a, b| match (mean(a), mean(b)) {
            (Some(x), Some(y)) => match goal {
                crate::record::schema::Goal::Minimize => x.total_cmp(&y),
                crate::record::schema::Goal::Maximize => y.total_cmp(&x),
            },
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        self
    }

    /// A cell: `mean ± sd` for a result, the tasks as `#0 #5 #9`, else as `results` shows it.
    fn cell(v: Option<&Value>) -> String {
        match v {
            Some(Value::Object(s)) => {
                let (mean, sd) = (
                    s["mean"].as_f64().unwrap_or(0.0),
                    s["sd"].as_f64().unwrap_or(0.0),
                );
                match s["n"].as_u64() {
                    Some(1) => super::short(mean),
                    _ => format!("{} ± {}", super::short(mean), super::short(sd)),
                }
            }
            Some(Value::Array(tasks)) => {
                let names: Vec<String> = tasks.iter().map(|t| format!("#{t}")).collect();
                names.join(" ")
            }
            other => super::table::text_cell(other),
        }
    }

    /// The text table, the row holding task `best` marked.
    pub fn write(&self, f: &mut std::fmt::Formatter<'_>, best: Option<usize>) -> std::fmt::Result {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| self.columns.iter().map(|c| Table::cell(r.get(c))).collect())
            .collect();
        let numeric: Vec<bool> = self
            .columns
            .iter()
            .map(|c| {
                c != "tasks"
                    && self
                        .rows
                        .iter()
                        .filter_map(|r| r.get(c).filter(|v| !v.is_null()))
                        .all(|v| v.is_number() || v.is_object())
            })
            .collect();
        let marks: Vec<bool> = self
            .rows
            .iter()
            .map(|r| best.is_some_and(|i| Table::holds(r, i)))
            .collect();
        writeln!(
            f,
            "{} configurations ({} grouped):",
            self.rows.len(),
            self.by.join(", ")
        )?;
        super::table::write_table(f, &self.columns, &cells, &numeric, &marks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repeats_are_one_configuration_whatever_the_order_of_their_keys() {
        let mut rec = crate::record::tests::record("20260101-000000-a-0001", "a");
        let configs = [
            json!({"lr": 0.1, "seed": 1}),
            json!({"seed": 2, "lr": 0.1}),
            json!({"lr": 0.2, "seed": 1}),
            json!({"lr": 0.1, "seed": 3, "opt": {"seed": 1}}),
        ];
        rec.tasks = configs
            .iter()
            .enumerate()
            .map(|(i, c)| crate::record::TaskRecord::new(i, c.clone(), None))
            .collect();
        let g = groups(&rec, &["seed".into()]);
        assert_eq!(
            g.iter().map(|g| g.tasks.clone()).collect::<Vec<_>>(),
            [vec![0, 1], vec![2], vec![3]]
        );
        assert_eq!(g[0].config, json!({"lr": 0.1}));
        let nested = groups(&rec, &["seed".into(), "opt.seed".into()]);
        assert_eq!(nested[0].tasks, [0, 1, 3], "an emptied object is no key");
    }

    #[test]
    fn stats_are_the_mean_and_the_sample_deviation() {
        assert_eq!(Stats::of(&[]), None);
        let one = Stats::of(&[2.0]).unwrap();
        assert_eq!((one.mean, one.sd, one.n), (2.0, 0.0, 1));
        let s = Stats::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(s.mean, 2.5);
        assert!((s.sd - 1.2909944).abs() < 1e-6, "{}", s.sd);
    }
}

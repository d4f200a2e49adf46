//! Who won: what a sweep is run for, said in one line. The winner is the succeeded map task
//! whose result has the best value of the run's metric (`[results] metric`, smallest or
//! largest by `goal`); a tie goes to the lower index. Tasks without a number under the metric
//! (failed, no result.json, another key) take no part, and with none there is no winner —
//! nothing claims one. A run without `[results] metric` whose reduce names a best value
//! (`best_loss`) is judged by that key (`loss`), its goal read off where that value lies
//! among the tasks' (the smallest: minimize; the largest: maximize; else no winner).

use super::short;
use crate::record::schema::{Goal, Objective};
use crate::record::{RunRecord, Stage, TaskState};
use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// The winning task of a run, the runner-up and the median, for people and for scripts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Best {
    pub metric: String,
    pub goal: Goal,
    pub index: usize,
    pub value: f64,
    pub config: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second: Option<Runner>,
    /// The median over every task that has the metric.
    pub median: f64,
    /// How many tasks (with `group`: configurations) have the metric.
    pub of: usize,
    /// With `[results] group`: the winner's value is the mean over its repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
}

/// How the repeats of the winning configuration spread around its mean.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Spread {
    /// The sample standard deviation (0 for one repeat).
    pub sd: f64,
    /// How many repeats have the metric.
    pub n: usize,
    /// The keys that are repeats (`seed`).
    pub by: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Runner {
    pub index: usize,
    pub value: f64,
}

impl Best {
    /// The run's winner by its objective (see [`objective_of`]).
    pub fn for_run(rec: &RunRecord) -> Option<Best> {
        Best::of(rec, &objective_of(rec)?)
    }

    /// The run's winner by `objective`, if any task has the metric: the task with the best
    /// value, or with `group`, the configuration with the best mean (named by its first task).
    pub fn of(rec: &RunRecord, objective: &Objective) -> Option<Best> {
        let metric = &objective.metric;
        let mut scored: Vec<Scored> = match objective.group.is_empty() {
            true => rec
                .tasks
                .iter()
                .filter(|t| t.stage == Stage::Map && t.state == TaskState::Succeeded)
                .filter_map(|t| {
                    let value = super::flat::value_of(t.result.as_ref()?, metric)?;
                    Some((t.index, value, t.config.value(), None))
                })
                .collect(),
            false => super::grouped::groups(rec, &objective.group)
                .into_iter()
                .filter_map(|g| {
                    let scored = super::grouped::values(rec, &g.tasks, metric);
                    let values: Vec<f64> = scored.iter().map(|v| v.1).collect();
                    let s = super::grouped::Stats::of(&values)?;
                    let spread = Spread {
                        sd: s.sd,
                        n: s.n,
                        by: objective.group.clone(),
                    };
                    // Named by its first task that counts (not a failed one).
                    Some((scored[0].0, s.mean, g.config, Some(spread)))
                })
                .collect(),
        };
        // Best first; equal values keep index order (the sort is stable).
        scored.sort_by(|a, b| match objective.goal {
            Goal::Minimize => a.1.total_cmp(&b.1),
            Goal::Maximize => b.1.total_cmp(&a.1),
        });
        let mut values: Vec<f64> = scored.iter().map(|s| s.1).collect();
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let second = scored.get(1).map(|s| Runner {
            index: s.0,
            value: s.1,
        });
        let (index, value, config, spread) = scored.into_iter().next()?;
        let median = match n % 2 {
            1 => values[n / 2],
            _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
        };
        Some(Best {
            metric: metric.clone(),
            goal: objective.goal,
            index,
            value,
            config,
            second,
            median,
            of: n,
            spread,
        })
    }
}

/// What a run is judged by: `[results] metric` (or `submit --metric`), else the reduce's
/// `best_*` key.
pub fn objective_of(rec: &RunRecord) -> Option<Objective> {
    rec.settings.objective.clone().or_else(|| inferred(rec))
}

/// A contender: its (first) task, its value (or mean), its configuration, its spread.
type Scored = (usize, f64, Value, Option<Spread>);

/// The objective a reduce's result names: its first `best_<key>` number whose `<key>` the map
/// tasks' results have, with the goal that makes it the best (none when it is neither the
/// smallest nor the largest of theirs).
fn inferred(rec: &RunRecord) -> Option<Objective> {
    let reduce = rec.tasks.iter().find(|t| t.stage == Stage::Reduce)?;
    let result = reduce.result.as_ref()?.as_object()?;
    result.iter().find_map(|(k, v)| {
        let metric = k.strip_prefix("best_")?;
        let best = v.as_f64()?;
        let values: Vec<f64> = rec
            .tasks
            .iter()
            .filter(|t| t.stage == Stage::Map && t.state == TaskState::Succeeded)
            .filter_map(|t| super::flat::value_of(t.result.as_ref()?, metric))
            .collect();
        let min = values.iter().copied().reduce(f64::min)?;
        let max = values.iter().copied().reduce(f64::max)?;
        let goal = match best {
            b if b == min => Goal::Minimize,
            b if b == max => Goal::Maximize,
            _ => return None,
        };
        Some(Objective {
            metric: metric.to_string(),
            goal,
            group: vec![],
        })
    })
}

/// A configuration as `key=value` words (`lr=0.1 width=64`), nested keys joined with dots
/// as `results` flattens them.
pub fn words(config: &Value) -> String {
    let mut flat = serde_json::Map::new();
    super::flat::flatten("config", config, &mut flat);
    let words: Vec<String> = flat
        .iter()
        .map(|(k, v)| {
            let key = k.strip_prefix("config.").unwrap_or(k);
            match v {
                Value::String(s) => format!("{key}={s}"),
                Value::Number(n) => format!("{key}={}", n.as_f64().map_or(n.to_string(), short)),
                other => format!("{key}={other}"),
            }
        })
        .collect();
    words.join(" ")
}

impl fmt::Display for Best {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = crate::ui::printable(&words(&self.config), "").into_owned();
        write!(f, "best: #{}", self.index)?;
        if !config.is_empty() {
            write!(f, " {config}")?;
        }
        write!(f, " → {} {}", self.metric, short(self.value))?;
        let goal = match self.goal {
            Goal::Minimize => "smallest",
            Goal::Maximize => "largest",
        };
        let mut said = vec![];
        let (goal, of, one) = match &self.spread {
            Some(s) => {
                write!(f, " ± {}", short(s.sd))?;
                said.push(format!("mean of {} over {}", s.n, s.by.join(", ")));
                (format!("{goal} mean"), " configurations", "configuration")
            }
            None => (goal.to_string(), "", "task"),
        };
        said.push(match &self.second {
            Some(r) => format!(
                "{goal} of {}{of}; 2nd: #{} {}, median {}",
                self.of,
                r.index,
                short(r.value),
                short(self.median)
            ),
            None => format!("the only {one} with {}", self.metric),
        });
        write!(f, " ({})", said.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::record;
    use serde_json::json;

    fn run(results: &[Option<Value>], failed: &[usize]) -> RunRecord {
        let mut rec = record("20260101-000000-a-0001", "a");
        rec.tasks = results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut t = crate::record::TaskRecord::new(i, json!({"lr": i as f64 / 10.0}), None);
                t.start(1, format!("c{i}"), chrono::Utc::now());
                match failed.contains(&i) {
                    true => t.cancel("x", chrono::Utc::now()),
                    false => t.succeed(chrono::Utc::now()),
                }
                t.result = r.clone();
                t
            })
            .collect();
        rec
    }

    fn objective(metric: &str, goal: Goal) -> Objective {
        Objective {
            metric: metric.into(),
            goal,
            group: vec![],
        }
    }

    #[test]
    fn the_best_value_wins_ties_go_to_the_lower_index_and_missing_values_take_no_part() {
        let rec = run(
            &[
                Some(json!({"loss": 0.5})),
                Some(json!({"loss": 0.2})),
                None,
                Some(json!({"loss": "n/a"})),
                Some(json!({"loss": 0.2})),
                Some(json!({"loss": 0.01})),
                Some(json!({"loss": 0.9, "eval": {"acc": 0.7}})),
            ],
            &[5],
        );
        let best = Best::of(&rec, &objective("loss", Goal::Minimize)).unwrap();
        assert_eq!((best.index, best.value), (1, 0.2));
        assert_eq!(
            best.second,
            Some(Runner {
                index: 4,
                value: 0.2
            })
        );
        assert_eq!((best.of, best.median), (4, 0.35));
        assert_eq!(
            best.to_string(),
            "best: #1 lr=0.1 → loss 0.2 (smallest of 4; 2nd: #4 0.2, median 0.35)"
        );
        let most = Best::of(&rec, &objective("loss", Goal::Maximize)).unwrap();
        assert_eq!(most.index, 6);
        let nested = Best::of(&rec, &objective("eval.acc", Goal::Maximize)).unwrap();
        assert_eq!((nested.index, nested.second.clone()), (6, None));
        assert!(
            nested
                .to_string()
                .ends_with("(the only task with eval.acc)"),
            "{nested}"
        );
        assert!(Best::of(&rec, &objective("accuracy", Goal::Maximize)).is_none());
    }

    /// With `group`, repeats are one configuration: the best mean wins, named by its first
    /// task, its spread said; a failed repeat takes no part in the mean.
    #[test]
    fn with_a_group_the_best_mean_wins() {
        let mut rec = run(
            &[
                Some(json!({"loss": 0.1})),
                Some(json!({"loss": 0.6})),
                Some(json!({"loss": 0.3})),
                Some(json!({"loss": 0.3})),
                Some(json!({"loss": 0.0})),
            ],
            &[4],
        );
        let lrs = [0.1, 0.1, 0.2, 0.2, 0.1];
        for (i, t) in rec.tasks.iter_mut().enumerate() {
            t.config = crate::record::Config::of(&json!({"lr": lrs[i], "seed": i}));
        }
        let mut o = objective("loss", Goal::Minimize);
        assert_eq!(Best::of(&rec, &o).unwrap().index, 0, "alone, #0 wins");
        o.group = vec!["seed".into()];
        let best = Best::of(&rec, &o).unwrap();
        assert_eq!((best.index, best.value, best.of), (2, 0.3, 2));
        assert_eq!(best.config, json!({"lr": 0.2}));
        assert_eq!(
            best.to_string(),
            "best: #2 lr=0.2 → loss 0.3 ± 0 (mean of 2 over seed; smallest mean of 2 \
             configurations; 2nd: #0 0.35, median 0.325)"
        );
    }

    /// Without `[results] metric`, the reduce's `best_loss` names the metric; where it lies
    /// among the tasks' values gives the goal; a `best_` key that is neither end names none.
    #[test]
    fn the_reduce_s_best_key_is_the_objective_when_none_is_set() {
        let mut rec = run(
            &[
                Some(json!({"loss": 0.5, "acc": 0.7})),
                Some(json!({"loss": 0.2, "acc": 0.9})),
            ],
            &[],
        );
        assert!(Best::for_run(&rec).is_none(), "no objective, no reduce");
        let mut reduce = crate::record::TaskRecord::new(2, json!({}), None);
        reduce.stage = Stage::Reduce;
        reduce.result = Some(json!({"best_acc": 0.9, "best_loss": 0.2, "n": 2}));
        rec.tasks.push(reduce);
        let best = Best::for_run(&rec).unwrap();
        // Keys in order: best_acc first; 0.9 is the largest acc.
        assert_eq!(
            (best.metric.as_str(), best.goal, best.index),
            ("acc", Goal::Maximize, 1)
        );
        rec.tasks[2].result = Some(json!({"best_loss": 0.3}));
        assert!(Best::for_run(&rec).is_none(), "0.3 is neither end");
        rec.settings.objective = Some(objective("loss", Goal::Maximize));
        assert_eq!(
            Best::for_run(&rec).unwrap().index,
            0,
            "the set objective wins"
        );
    }
}

//! `jobrun results`: what each task of a run produced, as one table of configuration → result.
//! Keys are flattened (`config.lr`, `result.loss`, nested objects joined with dots), a value a
//! task lacks is empty (null in JSON), and numbers stay numbers in JSON and CSV.

use crate::record::{RunRecord, Stage, TaskRecord};
use serde::Serialize;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Serialize)]
pub struct Results {
    pub run_id: String,
    pub columns: Vec<String>,
    /// One row per map task (or the `--top` of them, in `--sort` order).
    pub rows: Vec<Map<String, Value>>,
    /// The reduce task's row, when the run has one.
    pub reduce: Option<Map<String, Value>>,
    /// The winning task by the run's objective (`[results] metric`, or `--metric`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best: Option<super::best::Best>,
    /// With a winner: how each numeric configuration key goes with its metric.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub importance: Vec<super::importance::Importance>,
    /// With `[results] group`: one row per configuration (mean ± sd of its repeats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<super::grouped::Table>,
    /// Text shows every task even with a group (`results --tasks`).
    #[serde(skip)]
    pub each_task: bool,
}

impl Results {
    /// The run's results, judged by its own objective (see [`super::best::objective_of`]).
    pub fn of(rec: &RunRecord) -> Results {
        Results::by(rec, None)
    }

    /// The run's results judged by `objective` (`results --metric`, a page's `?metric=`), else
    /// by its own: the winner, the importance and the groups made once.
    pub fn by(rec: &RunRecord, objective: Option<&crate::record::schema::Objective>) -> Results {
        let best = match objective {
            Some(o) => super::best::Best::of(rec, o),
            None => super::best::Best::for_run(rec),
        };
        Results::unjudged(rec).judged(rec, best)
    }

    /// Every map task as a row, before anyone is named the winner.
    fn unjudged(rec: &RunRecord) -> Results {
        let maps: Vec<&TaskRecord> = rec.tasks.iter().filter(|t| t.stage == Stage::Map).collect();
        let rows: Vec<Map<String, Value>> = maps.iter().map(|t| row(t)).collect();
        // Keys in the order the configurations (and the results) give them, first seen first.
        let (mut config, mut result) = (Vec::new(), Vec::new());
        let mut errors = false;
        let mut reused = false;
        for r in &rows {
            for k in r.keys() {
                let to = match k {
                    k if k.starts_with("config.") => &mut config,
                    k if k.starts_with("result.") => &mut result,
                    _ => continue,
                };
                if !to.contains(k) {
                    to.push(k.clone());
                }
            }
            errors |= r.contains_key("result_error");
            reused |= r.contains_key("reused_from");
        }
        let mut columns = vec!["index".to_string(), "state".to_string()];
        columns.extend(config);
        columns.extend(result);
        columns.push("duration_s".into());
        if errors {
            columns.push("result_error".into());
        }
        if reused {
            columns.push("reused_from".into());
        }
        Results {
            run_id: rec.run_id.clone(),
            columns,
            rows,
            reduce: rec.reduce_task().map(row),
            best: None,
            importance: vec![],
            groups: None,
            each_task: false,
        }
    }

    fn judged(mut self, rec: &RunRecord, best: Option<super::best::Best>) -> Results {
        self.importance = best
            .as_ref()
            .map(|b| super::importance::of(rec, &b.metric))
            .unwrap_or_default();
        let group = best.as_ref().and_then(|b| b.spread.as_ref()).map(|s| &s.by);
        // A grouped key is a repeat (a seed), not a choice: it has no importance to tell.
        if let Some(by) = group {
            self.importance.retain(|i| !by.contains(&i.key));
        }
        self.groups = best.as_ref().zip(group).map(|(b, by)| {
            super::grouped::Table::of(rec, by, &self.columns, &self.rows).ranked(&b.metric, b.goal)
        });
        self.best = best;
        self
    }

    /// The column a `--sort` key names: itself, else `result.KEY`, else `config.KEY`.
    pub fn column(&self, key: &str) -> Option<String> {
        [
            key.to_string(),
            format!("result.{key}"),
            format!("config.{key}"),
        ]
        .into_iter()
        .find(|c| self.columns.contains(c))
    }

    /// Orders the rows by a column (numbers by value, then text; missing values last).
    pub fn sort(&mut self, column: &str, descending: bool) {
        self.rows.sort_by(|a, b| {
            let (x, y) = (a.get(column), b.get(column));
            match (present(x), present(y)) {
                (Some(x), Some(y)) => {
                    let o = compare(x, y);
                    if descending { o.reverse() } else { o }
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        });
    }

    /// The rows as CSV: a header of the columns, empty cells for missing values.
    pub fn csv(&self) -> Result<Vec<u8>, csv::Error> {
        self.csv_with(|c| c.to_string(), super::table::cell)
    }

    /// The rows as CSV with the header and each value written by these functions (the web
    /// view's download neutralises what a spreadsheet would run).
    pub fn csv_with(
        &self,
        header: impl Fn(&str) -> String,
        value: impl Fn(Option<&Value>) -> String,
    ) -> Result<Vec<u8>, csv::Error> {
        let mut w = csv::Writer::from_writer(vec![]);
        w.write_record(self.columns.iter().map(|c| header(c)))?;
        for r in &self.rows {
            w.write_record(self.columns.iter().map(|c| value(r.get(c))))?;
        }
        w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
    }
}

fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn compare(x: &Value, y: &Value) -> Ordering {
    match (x.as_f64(), y.as_f64()) {
        (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => super::table::cell(Some(x)).cmp(&super::table::cell(Some(y))),
    }
}

/// One task as a flat row.
fn row(t: &TaskRecord) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("index".into(), t.index.into());
    r.insert("state".into(), t.state.as_str().into());
    super::flat::flatten("config", &t.config.value(), &mut r);
    if let Some(result) = &t.result {
        super::flat::flatten("result", result, &mut r);
    }
    let duration = match (t.started_at, t.finished_at) {
        (Some(s), Some(f)) => Value::from(crate::record::secs_between(s, f)),
        _ => Value::Null,
    };
    r.insert("duration_s".into(), duration);
    if let Some(e) = &t.result_error {
        r.insert("result_error".into(), e.clone().into());
    }
    if let Some(from) = &t.reused_from {
        r.insert("reused_from".into(), from.clone().into());
    }
    r
}

impl fmt::Display for Results {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.groups {
            Some(g) if !self.each_task => g.write(f, self.best.as_ref().map(|b| b.index))?,
            _ => self.task_table(f)?,
        }
        if let Some(best) = &self.best {
            writeln!(f, "{best}")?;
            if !self.importance.is_empty() {
                let line = super::importance::Line {
                    metric: &best.metric,
                    all: &self.importance,
                };
                writeln!(f, "{line}")?;
            }
        }
        Ok(())
    }
}

impl Results {
    /// One line per task; the reduce is one more row of the same table (index `reduce`), its
    /// own result keys added as columns.
    fn task_table(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys = self.columns.clone();
        if let Some(reduce) = &self.reduce {
            for k in reduce
                .keys()
                .filter(|k| k.starts_with("result.") || *k == "result_error")
            {
                if !keys.contains(k) {
                    let at = keys
                        .iter()
                        .position(|c| c == "duration_s")
                        .unwrap_or(keys.len());
                    keys.insert(at, k.clone());
                }
            }
        }
        let reduce_row = self.reduce.as_ref().map(|r| {
            let mut r = r.clone();
            r.insert("index".into(), Value::from("reduce"));
            r
        });
        let rows: Vec<&Map<String, Value>> = self.rows.iter().chain(reduce_row.as_ref()).collect();
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                keys.iter()
                    .map(|c| super::table::text_cell(r.get(c)))
                    .collect()
            })
            .collect();
        // A column of numbers (every map task's value present is one) is right-aligned, header
        // too; the reduce's `reduce` in the index column does not change that.
        let numeric: Vec<bool> = keys
            .iter()
            .map(|c| {
                let mut present = rows
                    .iter()
                    .filter(|r| c != "index" || r.get("index").is_some_and(Value::is_number))
                    .filter_map(|r| present(r.get(c)))
                    .peekable();
                present.peek().is_some() && present.all(Value::is_number)
            })
            .collect();
        let best = self.best.as_ref().map(|b| Value::from(b.index));
        let marks: Vec<bool> = rows
            .iter()
            .map(|r| best.is_some() && r.get("index") == best.as_ref())
            .collect();
        super::table::write_table(f, &keys, &cells, &numeric, &marks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::record;
    use serde_json::json;

    fn run() -> RunRecord {
        let mut rec = record("20260101-000000-a-0001", "a");
        rec.tasks = (0..4)
            .map(|i| {
                let mut t = TaskRecord::new(
                    i,
                    json!({"lr": 0.1 * i as f64, "opt": {"name": "sgd"}}),
                    None,
                );
                t.succeed(chrono::Utc::now());
                t
            })
            .collect();
        rec.tasks[0].result = Some(json!({"loss": 3.0, "tags": ["a"]}));
        rec.tasks[1].result = Some(json!({"loss": 1.5}));
        rec.tasks[2].result_error = Some("result.json must hold a JSON object".into());
        rec.tasks[3].result = Some(json!({"loss": 2.0}));
        rec
    }

    #[test]
    fn rows_are_flat_and_missing_values_empty() {
        let r = Results::of(&run());
        assert_eq!(
            r.columns,
            [
                "index",
                "state",
                "config.lr",
                "config.opt.name",
                "result.loss",
                "result.tags",
                "duration_s",
                "result_error"
            ]
        );
        assert_eq!(r.rows[0]["result.tags"], json!(["a"]));
        assert!(!r.rows[2].contains_key("result.loss"));
        let csv = String::from_utf8(r.csv().unwrap()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "index,state,config.lr,config.opt.name,result.loss,result.tags,duration_s,result_error"
        );
        assert_eq!(lines[1], r#"0,succeeded,0.0,sgd,3.0,"[""a""]",,"#);
        assert!(
            lines[3].starts_with("2,succeeded,0.2,sgd,,,,result.json must hold"),
            "{}",
            lines[3]
        );
    }

    #[test]
    fn a_duration_is_never_negative() {
        // Docker can stamp a task of under a millisecond as finished before it started.
        let mut rec = run();
        let start = chrono::Utc::now();
        rec.tasks[0].started_at = Some(start);
        rec.tasks[0].finished_at = Some(start - chrono::Duration::milliseconds(1));
        rec.tasks[1].started_at = Some(start);
        rec.tasks[1].finished_at = Some(start + chrono::Duration::milliseconds(1500));
        let r = Results::of(&rec);
        assert_eq!(r.rows[0]["duration_s"], json!(0.0));
        assert_eq!(r.rows[1]["duration_s"], json!(1.5));
    }

    #[test]
    fn sorting_puts_numbers_in_order_and_missing_last() {
        let mut r = Results::of(&run());
        let col = r.column("loss").unwrap();
        assert_eq!(col, "result.loss");
        r.sort(&col, false);
        let order: Vec<u64> = r
            .rows
            .iter()
            .map(|r| r["index"].as_u64().unwrap())
            .collect();
        assert_eq!(order, [1, 3, 0, 2]);
        r.sort(&col, true);
        let order: Vec<u64> = r
            .rows
            .iter()
            .map(|r| r["index"].as_u64().unwrap())
            .collect();
        assert_eq!(order, [0, 3, 1, 2]);
        assert_eq!(r.column("opt.name").as_deref(), Some("config.opt.name"));
        assert_eq!(r.column("nope"), None);
    }

    #[test]
    fn text_is_for_people_numbers_short_and_right_aligned_the_best_marked() {
        let mut rec = run();
        rec.tasks[1].result = Some(json!({"loss": 0.0025650930533125584}));
        rec.settings.objective = Some(crate::record::schema::Objective {
            metric: "loss".into(),
            goal: Default::default(),
            group: vec![],
        });
        let r = Results::of(&rec);
        let text = r.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("index  state"), "{text}");
        // Four significant digits in text; JSON keeps every digit.
        assert!(lines[2].contains("0.002565  "), "{text}");
        assert_eq!(r.rows[1]["result.loss"], 0.0025650930533125584);
        assert!(lines[2].ends_with("← best"), "{text}");
        assert!(!lines[1].contains("best"), "{text}");
        // `loss` values end in the same column (right-aligned): 3, 0.002565, 2.
        let end = |l: &str, v: &str| l.find(v).map(|i| i + v.len());
        assert_eq!(
            end(lines[1], "  3  "),
            end(lines[2], "0.002565  "),
            "{text}"
        );
        assert!(
            text.contains("(smallest of 3; 2nd: #3 2, median 2)\n"),
            "{text}"
        );
        // Then which numeric key goes with the loss (opt.name is no number).
        assert!(
            text.trim_end()
                .ends_with("importance (rank correlation with loss over 3 tasks): lr −0.50"),
            "{text}"
        );
    }
}

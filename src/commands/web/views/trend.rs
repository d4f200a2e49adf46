//! A result key across a job's runs: one value per run (the reduce's, the winner's, or the
//! smallest), opening on the job's objective, and the change said in %.

use super::{human, page, state_badge};
use crate::record::{RunRecord, RunState};
use crate::report::RunLine;
use crate::report::results::Results;
use maud::{Markup, PreEscaped, html};
use serde::Serialize;
use serde_json::{Map, Value};

/// A result key across a job's runs.
pub struct Trend {
    pub job: String,
    pub key: String,
    pub schedule: String,
    pub keys: Vec<String>,
    pub points: Vec<TrendPoint>,
}

impl Trend {
    /// "0.0026 → 0.0025 (−1.4 %) over 5 runs": the first and the last value, and the change.
    pub fn change(&self) -> Option<String> {
        let values: Vec<f64> = self.points.iter().filter_map(|p| p.value).collect();
        let (&first, &last) = (values.first()?, values.last()?);
        if values.len() < 2 {
            return None;
        }
        let pct = match first {
            0.0 => String::new(),
            _ => format!(" ({:+.1} %)", (last - first) / first.abs() * 100.0).replace('-', "−"),
        };
        Some(format!(
            "{} → {}{pct} over {} runs",
            human(&serde_json::json!(first)),
            human(&serde_json::json!(last)),
            values.len()
        ))
    }
}

#[derive(Serialize)]
pub struct TrendPoint {
    pub run_id: String,
    pub at: String,
    pub state: RunState,
    /// The value and where it came from (`reduce`, `best of N`), or why there is none.
    pub value: Option<f64>,
    pub from: String,
}

impl TrendPoint {
    /// A run's value of `key`: the reduce's, else its winner's when `key` is its objective's
    /// metric (which goal wins is the run's), else the smallest of its tasks'.
    pub fn of(l: &RunLine, rec: &RunRecord, r: &Results, key: Option<&str>) -> TrendPoint {
        let key = key.unwrap_or_default();
        let reduce = r
            .reduce
            .as_ref()
            .and_then(|row| row.get(key))
            .and_then(Value::as_f64);
        let best = crate::report::best::Best::for_run(rec)
            .filter(|b| key.strip_prefix("result.") == Some(b.metric.as_str()));
        let maps: Vec<f64> = r
            .rows
            .iter()
            .filter_map(|row| row.get(key)?.as_f64())
            .collect();
        let (value, from) = match (reduce, best) {
            (Some(v), _) => (Some(v), "the reduce".to_string()),
            (None, Some(b)) => (
                Some(b.value),
                format!(
                    "best of {}: #{} {}",
                    b.of,
                    b.index,
                    crate::report::best::words(&b.config)
                ),
            ),
            (None, None) if !maps.is_empty() => (
                maps.iter().copied().reduce(f64::min),
                format!("smallest of {} tasks", maps.len()),
            ),
            (None, None) => (None, format!("no {key}")),
        };
        TrendPoint {
            run_id: l.run_id.clone(),
            at: l.created_at.format("%Y-%m-%d %H:%M").to_string(),
            state: l.state,
            value,
            from,
        }
    }

    /// The key a run's trend opens on: its objective, else its reduce's first number, else its
    /// tasks' first numeric result.
    pub fn default_key(rec: &RunRecord, r: &Results) -> Option<String> {
        if let Some(b) = crate::report::best::Best::for_run(rec) {
            return Some(format!("result.{}", b.metric));
        }
        let numeric = |row: &Map<String, Value>| {
            row.iter()
                .find(|(k, v)| k.starts_with("result.") && v.is_number())
                .map(|(k, _)| k.clone())
        };
        r.reduce
            .as_ref()
            .and_then(numeric)
            .or_else(|| r.rows.iter().find_map(numeric))
    }

    pub fn unreadable(l: &RunLine, error: String) -> TrendPoint {
        TrendPoint {
            run_id: l.run_id.clone(),
            at: l.created_at.format("%Y-%m-%d %H:%M").to_string(),
            state: RunState::Unreadable,
            value: None,
            from: error,
        }
    }
}

pub fn trend_page(t: &Trend) -> Markup {
    let data = super::script_json(&serde_json::json!({ "key": t.key, "points": t.points }));
    page(
        &format!("trend of {}", t.job),
        html! {
            h1 { "trend of " (t.job) }
            form.filters method="get" action={ "/jobs/" (t.job) "/trend" } {
                label { "result " select name="key" { option value="" { "-" } @for k in &t.keys { option value=(k) selected[*k == t.key] { (k) } } } }
                label { "schedule " input name="schedule" placeholder="every run" value=(t.schedule); }
                button { "show" }
            }
            @if !t.key.is_empty() {
                @if let Some(c) = t.change() { p #trend-change { (t.key) ": " (c) } }
                div.plot { canvas #trend {} }
                script #trend-data type="application/json" { (PreEscaped(data)) }
            }
            table #trend-table {
                thead { tr { th { "run" } th { "when" } th { "state" } th.n { (t.key) } th { "from" } } }
                tbody { @for p in &t.points { tr {
                    td { a href={ "/runs/" (p.run_id) } { (p.run_id) } }
                    td { (p.at) } td { (state_badge(p.state)) }
                    td.n { (p.value.map(|v| human(&serde_json::json!(v))).unwrap_or_default()) }
                    td { (p.from) }
                } } }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trend_says_its_change_in_percent() {
        let point = |v: Option<f64>| TrendPoint {
            run_id: "r".into(),
            at: "t".into(),
            state: RunState::Succeeded,
            value: v,
            from: String::new(),
        };
        let mut t = Trend {
            job: "a".into(),
            key: "result.loss".into(),
            schedule: String::new(),
            keys: vec![],
            points: vec![point(Some(0.0026)), point(None), point(Some(0.002564))],
        };
        assert_eq!(
            t.change().unwrap(),
            "0.0026 → 0.002564 (−1.4 %) over 2 runs"
        );
        t.points.truncate(1);
        assert_eq!(t.change(), None, "one value is no change");
    }
}
